"""``anyllm _complete KIND``: names for the shell completion scripts (hidden command).

KIND is ``profiles`` (profile names from the user's config), ``providers`` (catalog names: the
built-in providers plus the config's ``[providers.*]``) or ``targets`` (both: what ``-p`` takes).
Names are printed one per line on stdout. This runs on every <Tab>, so it is quiet and cheap: no
httpx, no backends, and a missing or broken config never makes it fail — it then prints what it
can (the built-in catalog) and exits 0.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

KINDS = ("profiles", "providers", "targets")


def register(app: typer.Typer) -> None:
    app.command("_complete", hidden=True, add_help_option=False)(complete)


def complete(
    kind: Annotated[str, typer.Argument(
        metavar="KIND", help="profiles, providers or targets (profiles and providers).",
        show_default=False)],
) -> None:
    """Print profile and/or provider names, one per line, for shell completion."""
    if kind not in KINDS:
        print(f"anyllm: _complete: KIND must be one of {', '.join(KINDS)}", file=sys.stderr)
        raise typer.Exit(2)
    profiles, providers = names()
    out: list[str] = []
    if kind in ("profiles", "targets"):
        out.extend(profiles)
    if kind in ("providers", "targets"):
        out.extend(p for p in providers if p not in out)
    if out:
        sys.stdout.write("\n".join(out) + "\n")


def names() -> tuple[list[str], list[str]]:
    """``(profile names, provider names)``, each sorted. Never raises."""
    try:
        from anyllm_cli.config import load_config

        cfg = load_config(None)
        return sorted(cfg.profiles), sorted(cfg.catalog)
    except Exception:
        pass
    # A config that does not validate: its table names are still worth offering when the TOML
    # parses; a file that does not even parse leaves the built-in catalog.
    profiles, user_providers = _raw_tables()
    return sorted(profiles), sorted(set(_builtin_names()) | set(user_providers))


def _builtin_names() -> list[str]:
    try:
        from anyllm_cli.catalog import builtin_providers

        return list(builtin_providers())
    except Exception:
        return []


def _raw_tables() -> tuple[list[str], list[str]]:
    """Keys of ``[profiles]`` and ``[providers]`` read straight from the TOML, or empty."""
    try:
        import tomllib

        from anyllm_cli.config import config_path

        path, _ = config_path(None)
        data: Any = tomllib.loads(path.read_bytes().decode("utf-8"))
        return _keys(data.get("profiles")), _keys(data.get("providers"))
    except Exception:
        return [], []


def _keys(table: Any) -> list[str]:
    if not isinstance(table, dict):
        return []
    return [k for k, v in table.items() if isinstance(k, str) and isinstance(v, dict)]
