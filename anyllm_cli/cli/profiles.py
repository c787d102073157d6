"""``anyllm profiles list|show|add|remove|default``: the config's profiles, read and written.

Writes go through :mod:`anyllm_cli.config_write` (tomli-w: unrelated tables and keys are kept,
comments below the file's opening comment block are not; the old file is then kept as ``.bak``).
``show`` never prints a key: an ``api_key`` in the file is shown as ``"***"``, key variables by
name with whether they are set.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from anyllm_cli.cli import options as o

if TYPE_CHECKING:
    from anyllm_cli.config import Config, Profile

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""Profile names: no ``:`` (``-m profile:model`` splits on it), no spaces (shell-friendly)."""

profiles_app = typer.Typer(
    name="profiles", no_args_is_help=True, rich_markup_mode=None,
    help="List, show, add and remove profiles, and pick the default one.")


def register(app: typer.Typer) -> None:
    app.add_typer(profiles_app, name="profiles")


JsonOpt = Annotated[bool, typer.Option("--json", rich_help_panel=o.PANEL_OUTPUT,
                                       help="Print JSON instead of text.")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The profile's name.",
                                        show_default=False)]


@profiles_app.command("list", epilog="Examples:  anyllm profiles list  ·  "
                                     "anyllm profiles list --json | jq -r '.[].name'")
def list_profiles(json_out: JsonOpt = False, config: o.ConfigOpt = None) -> None:
    """List the profiles: name, provider, model, and * for the default one.

    MODEL shows the catalog's default model in parentheses when the profile sets none. --json
    prints an array of {name, provider, model, default}.
    """
    cfg = _load(config)
    rows = []
    out = []
    for name, prof in cfg.profiles.items():
        entry = cfg.catalog[prof.provider]
        model = prof.model or (f"({entry.default_model})" if entry.default_model else "-")
        is_default = name == cfg.default_profile
        out.append({"name": name, "provider": prof.provider,
                    "model": prof.model or entry.default_model, "default": is_default})
        rows.append([name, prof.provider, model, "*" if is_default else ""])
    if json_out:
        print(json.dumps(out, indent=2))
        return
    if not rows:
        _note(f"no profiles in {cfg.path}; add one with  anyllm profiles add NAME "
              "--provider PROVIDER")
        return
    from anyllm_cli.cli.common import print_table

    print_table(["NAME", "PROVIDER", "MODEL", "DEFAULT"], rows)


@profiles_app.command("show", epilog="Example:  anyllm profiles show work")
def show(profile_name: NameArg, json_out: JsonOpt = False, config: o.ConfigOpt = None) -> None:
    """Show one profile's settings and where its key comes from, never the key itself.

    An api_key in the file shows as "***"; key variables are named with whether each is set.
    The text form is the profile's TOML table followed by # comment lines for the effective
    model, base URL and key source.
    """
    cfg = _load(config)
    prof = _profile(cfg, profile_name)
    entry = cfg.catalog[prof.provider]
    table = prof.model_dump(exclude_defaults=True)
    if prof.api_key is not None:
        table["api_key"] = "***"
    keys = key_sources(prof, entry.api_key_env)
    effective = {
        "model": prof.model or entry.default_model,
        "api_base": prof.api_base or entry.api_base,
        "key": keys,
        "default": profile_name == cfg.default_profile,
    }
    if json_out:
        print(json.dumps({"name": profile_name, **table, "effective": effective}, indent=2))
        return
    import tomli_w

    sys.stdout.write(tomli_w.dumps({"profiles": {profile_name: table}}, multiline_strings=True))
    lines = [f"model: {effective['model'] or '(none: pass -m)'}"
             + ("" if prof.model else " (the provider's default)"),
             f"api_base: {effective['api_base'] or '(none)'}"
             + ("" if prof.api_base else " (from the catalog)")]
    if keys:
        lines.append("key, first found of: " + ", ".join(_key_text(k) for k in keys))
    elif entry.api_key_required:
        lines.append("key: none configured")
    else:
        lines.append("key: not needed")
    if effective["default"]:
        lines.append("this is the default profile")
    sys.stdout.write("\n" + "".join(f"# {line}\n" for line in lines))


def key_sources(prof: Profile, catalog_vars: list[str]) -> list[dict[str, Any]]:
    """Where the key may come from, in the order tried: the file's api_key, api_key_cmd, the
    profile's api_key_env, the catalog's variables. Each ``{source, name?, set?}``; no values."""
    import os

    out: list[dict[str, Any]] = []
    if prof.api_key is not None:
        out.append({"source": "api_key", "set": bool(prof.api_key)})
    if prof.api_key_cmd:
        out.append({"source": "api_key_cmd", "command": prof.api_key_cmd})
    names = ([prof.api_key_env] if prof.api_key_env else []) + catalog_vars
    for var in dict.fromkeys(names):
        out.append({"source": "env", "name": var, "set": bool(os.environ.get(var))})
    return out


def _key_text(key: dict[str, Any]) -> str:
    if key["source"] == "api_key":
        return "api_key in the config file"
    if key["source"] == "api_key_cmd":
        return f"the output of api_key_cmd ({key['command']})"
    return f"${key['name']} ({'set' if key['set'] else 'not set'})"


@profiles_app.command("add", epilog=(
    "Examples:  anyllm profiles add work --provider openai --model gpt-4.1-mini "
    "--api-key-env WORK_OPENAI_KEY --default  ·  "
    "anyllm profiles add fast --provider groq --param temperature=0.2 "
    "--param 'system=Be terse.'"))
def add(
    name: NameArg,
    provider: Annotated[str, typer.Option(
        "--provider", metavar="PROVIDER", show_default=False,
        help="A provider from the catalog (see anyllm providers).")],
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL",
        help="The model. Default: the provider's default model.")] = None,
    api_key_env: Annotated[str | None, typer.Option(
        "--api-key-env", metavar="VAR",
        help="Read the key from this environment variable (before the provider's own).")] = None,
    api_key_cmd: Annotated[str | None, typer.Option(
        "--api-key-cmd", metavar="COMMAND",
        help="A command that prints the key, e.g. 'pass show openai'.")] = None,
    api_base: Annotated[str | None, typer.Option(
        "--api-base", metavar="URL", help="Override the provider's base URL.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="KEY=VALUE",
        help="A default completion parameter (repeatable), e.g. temperature=0.2 or "
             "system=TEXT; VALUE is parsed as JSON when it parses, else taken as a "
             "string.")] = None,
    default: Annotated[bool, typer.Option(
        "--default", help="Also make it the default profile.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", "-f", help="Replace a profile of the same name.")] = False,
    config: o.ConfigOpt = None,
) -> None:
    """Add a profile to the config file (created, mode 0600, when missing).

    The provider is checked against the catalog and the parameters against the completion
    parameters. The file is rewritten with tomli-w: other tables and keys are kept, and so is
    the file's opening comment block; other comments are dropped (the previous file is then
    kept as config.toml.bak and a note says so).
    """
    from anyllm_cli.cli.common import fail, parse_options
    from anyllm_cli.config_write import add_profile

    if not NAME_RE.fullmatch(name):
        fail(f"invalid profile name {name!r}: use letters, digits, '_', '.' and '-' "
             "(no ':' or spaces)", 2)
    cfg = _load(config, create=True)
    if provider not in cfg.catalog:
        fail(f"unknown provider {provider!r}; known: {', '.join(sorted(cfg.catalog))}", 2)
    params = parse_options(param, "--param")
    _check_params(params)
    table: dict[str, Any] = {"provider": provider}
    for key, value in (("model", model), ("api_key_env", api_key_env),
                       ("api_key_cmd", api_key_cmd), ("api_base", api_base)):
        if value is not None:
            table[key] = value
    if params:
        table["params"] = params
    dropped = _write(cfg.path, lambda: add_profile(cfg.path, name, table, replace=force,
                                                   make_default=default))
    what = "replaced" if force and name in cfg.profiles else "added"
    _note(f"{what} profile {name} ({provider}) in {cfg.path}"
          + (" as the default profile" if default else ""))
    _dropped_note(cfg.path, dropped)


@profiles_app.command("remove", epilog="Example:  anyllm profiles remove old")
def remove(profile_name: NameArg, config: o.ConfigOpt = None) -> None:
    """Remove a profile from the config file (and default_profile when it named it)."""
    from anyllm_cli.config_write import remove_profile

    cfg = _load(config)
    _profile(cfg, profile_name)
    cleared, dropped = _write(cfg.path, lambda: remove_profile(cfg.path, profile_name))
    _note(f"removed profile {profile_name} from {cfg.path}"
          + ("; there is no default profile now" if cleared else ""))
    _dropped_note(cfg.path, dropped)


@profiles_app.command("default", epilog="Examples:  anyllm profiles default work  ·  "
                                        "anyllm profiles default")
def default(
    profile: Annotated[str | None, typer.Argument(
        metavar="NAME", help="A profile (or provider) name. Without it: print the current "
                               "default.", show_default=False)] = None,
    config: o.ConfigOpt = None,
) -> None:
    """Set default_profile, the profile used without -p; without NAME, print it.

    NAME may also be a provider from the catalog (then its default model is used).
    $ANYLLM_PROFILE, when set, still wins over the file.
    """
    from anyllm_cli.cli.common import fail
    from anyllm_cli.config_write import set_default

    cfg = _load(config)
    if profile is None:
        if cfg.default_profile:
            print(cfg.default_profile)
        else:
            _note(f"no default_profile in {cfg.path}")
        return
    if profile not in cfg.profiles and profile not in cfg.catalog:
        known = sorted(cfg.profiles) or ["none"]
        fail(f"no profile or provider named {profile!r}; profiles: {', '.join(known)}", 2)
    dropped = _write(cfg.path, lambda: set_default(cfg.path, profile))
    _note(f"default profile is now {profile} ({cfg.path})")
    _dropped_note(cfg.path, dropped)


# --------------------------------------------------------------------------------------------


def _load(config: Path | None, *, create: bool = False) -> Config:
    """Load the config (exit 2 on error) and warn when it holds a key others can read. With
    ``create``, a ``--config`` file that does not exist yet is an empty config (``add`` creates
    it)."""
    from anyllm_cli.catalog import merged_catalog
    from anyllm_cli.cli.common import fail, warn_permissions
    from anyllm_cli.config import Config, load_config
    from anyllm_cli.errors import AnyLLMError

    if create and config is not None and not config.expanduser().exists():
        return Config(path=config.expanduser(), catalog=merged_catalog())
    try:
        cfg = load_config(config)
    except AnyLLMError as exc:
        fail(str(exc), exc.exit_code)
    warn_permissions(cfg)
    return cfg


def _profile(cfg: Config, name: str) -> Profile:
    from anyllm_cli.cli.common import fail

    try:
        return cfg.profiles[name]
    except KeyError:
        known = ", ".join(sorted(cfg.profiles)) or "none"
        fail(f"no profile named {name!r} in {cfg.path}; profiles: {known}", 2)


def _check_params(params: dict[str, Any]) -> None:
    """Refuse a parameter value a request would refuse later (e.g. temperature=hot)."""
    from pydantic import ValidationError

    from anyllm_cli.cli.common import fail
    from anyllm_cli.errors import validation_error_text
    from anyllm_cli.types import CompletionParams

    rest = {k: v for k, v in params.items() if k != "system"}
    if "system" in params and not isinstance(params["system"], str):
        fail("--param system: expected text", 2)
    try:
        CompletionParams(model="m", messages=[{"role": "user", "content": "x"}], **rest)
    except ValidationError as exc:
        loc, msg = validation_error_text(exc)
        fail(f"--param {loc}: {msg}", 2)


def _write(path: Path, change: Any) -> Any:
    from anyllm_cli.cli.common import fail
    from anyllm_cli.errors import AnyLLMError

    try:
        return change()
    except AnyLLMError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror}", 2)


def _note(message: str) -> None:
    print(f"anyllm: {message}", file=sys.stderr, flush=True)


def _dropped_note(path: Path, dropped: int) -> None:
    if dropped:
        _note(f"note: {dropped} comment{'s' if dropped != 1 else ''} below the opening comment "
              f"block could not be kept (tomli-w writes none); the previous file is "
              f"{path.resolve()}.bak")
