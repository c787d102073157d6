"""``anyllm providers``: the catalog (built-in providers and the config's ``[providers.*]``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from anyllm_cli.cli import options as o

if TYPE_CHECKING:
    from anyllm_cli.catalog import LLMProvider

CAPABILITIES = ("streaming", "tools", "structured_output", "reasoning", "images", "models")
SHORT = {"streaming": "stream", "tools": "tools", "structured_output": "schema",
         "reasoning": "reasoning", "images": "images", "models": "models"}


def register(app: typer.Typer) -> None:
    app.command("providers", epilog=EXAMPLES)(providers)


EXAMPLES = ("Examples:  anyllm providers  ·  "
            "anyllm providers --json | jq -r '.[] | select(.key_set) | .name'")


def providers(
    json_out: Annotated[bool, typer.Option(
        "--json", rich_help_panel=o.PANEL_OUTPUT,
        help="Print a JSON array: one object per provider with name, backend, api_base, "
             "api_key_env ([{name, set}]), key_set, default_model, capabilities, user_defined, "
             "source.")] = False,
    config: o.ConfigOpt = None,
) -> None:
    """List the providers anyllm can reach: the built-in catalog and the [providers.*] tables of
    the config.

    For each: the backend (wire API), the key variables and whether each is set (never the key),
    the default model and the capabilities. In the table, CAPABILITIES lists what the provider
    does natively; a trailing ~ marks an emulated one (e.g. schema~), and what it cannot do is
    left out. USER says "yes" for providers the config defines and "override" for built-in
    ones it changes.
    """
    from anyllm_cli.cli.common import fail, print_table
    from anyllm_cli.config import load_config
    from anyllm_cli.errors import AnyLLMError

    try:
        cfg = load_config(config)
    except AnyLLMError as exc:
        fail(str(exc), exc.exit_code)
    entries = [cfg.catalog[name] for name in sorted(cfg.catalog)]
    if json_out:
        print(json.dumps([provider_json(e) for e in entries], indent=2))
        return
    rows = [[e.name, e.backend, _keys_cell(e), e.default_model or "-", capabilities_cell(e),
             origin(e)] for e in entries]
    print_table(["NAME", "BACKEND", "KEY", "DEFAULT MODEL", "CAPABILITIES", "USER"], rows,
                wrap=[False, False, True, True, True, False])


def provider_json(entry: LLMProvider) -> dict[str, Any]:
    """One catalog entry as printed by ``--json`` (key variables with ``set``, never values)."""
    keys = [{"name": var, "set": bool(_env(var))} for var in entry.api_key_env]
    caps = entry.capabilities.model_dump()
    return {
        "name": entry.name,
        "backend": entry.backend,
        "description": entry.description,
        "api_base": entry.api_base,
        "api_key_env": keys,
        "api_key_required": entry.api_key_required,
        "key_set": any(k["set"] for k in keys),
        "default_model": entry.default_model,
        "capabilities": {name: caps[name] for name in CAPABILITIES},
        "docs_url": entry.docs_url,
        "user_defined": origin(entry) != "",
        "source": entry.source,
    }


def origin(entry: LLMProvider) -> str:
    """``""`` for a built-in entry, ``"yes"`` for one the config defines, ``"override"`` for a
    built-in one the config changes."""
    from anyllm_cli.catalog import builtin_providers

    builtin = builtin_providers().get(entry.name)
    if builtin is None:
        return "yes"
    return "" if entry.source == builtin.source else "override"


def _env(name: str) -> str:
    import os

    return os.environ.get(name, "")


def _keys_cell(entry: LLMProvider) -> str:
    if not entry.api_key_env:
        return "-" if not entry.api_key_required else "(none configured)"
    marks = [f"{var} ({'set' if _env(var) else 'not set'})" for var in entry.api_key_env]
    cell = ", ".join(marks)
    return cell if entry.api_key_required else f"{cell}, optional"


def capabilities_cell(entry: LLMProvider) -> str:
    """``stream tools schema~ ...``: native ones, emulated ones with ``~``, the rest left out."""
    caps = entry.capabilities.model_dump()
    out = []
    for name in CAPABILITIES:
        if caps[name] == "native":
            out.append(SHORT[name])
        elif caps[name] == "emulated":
            out.append(SHORT[name] + "~")
    return " ".join(out) or "-"


# --------------------------------------------------------------------------------------------
# Tables
