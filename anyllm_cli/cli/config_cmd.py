"""``anyllm config path|show|init|edit``: the configuration file itself.

``show`` prints the file as written (comments included) with every ``api_key`` value masked;
``init`` writes a commented starter file (mode 0600); ``edit`` opens ``$VISUAL``/``$EDITOR`` on it
and validates the result.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from anyllm_cli.cli import options as o

config_app = typer.Typer(
    name="config", no_args_is_help=True, rich_markup_mode=None,
    help="Where the config file is, show it (keys masked), create it, edit it.")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


# ``api_key = <string>`` as a key of its own (not ``my_api_key``), bare or quoted, in a table
# or an inline table; multi-line strings first so ``"""`` is not read as ``""`` + ``"``.
API_KEY_RE = re.compile(
    r"""(?P<key>(?<![\w-])(?:api_key|"api_key"|'api_key')\s*=\s*)"""
    r'''(?P<value>"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')''')


def mask_api_keys(text: str, values: list[str] | None = None) -> str:
    """``text`` with every ``api_key`` string value replaced by ``"***"``; any of ``values`` (the
    parsed keys) still left anywhere is masked as ``***`` too."""
    masked = API_KEY_RE.sub(lambda m: m.group("key") + '"***"', text)
    for value in sorted(values or (), key=len, reverse=True):
        if len(value) >= 4:
            masked = masked.replace(value, "***")
    return masked


@config_app.command("path", epilog="Example:  $EDITOR \"$(anyllm config path)\"")
def path_cmd(config: o.ConfigOpt = None) -> None:
    """Print the config file's path (--config, else $ANYLLM_CONFIG, else the platform config
    directory); a note on stderr says when it does not exist yet."""
    target = _path(config)
    print(target)
    if not target.exists():
        print("anyllm: note: the file does not exist yet; create it with  anyllm config init",
              file=sys.stderr)


@config_app.command("show", epilog="Example:  anyllm config show")
def show(config: o.ConfigOpt = None) -> None:
    """Print the config file with every api_key value masked as "***".

    The text is printed as written, comments included. Exit 2 (after printing) when the file
    is not a valid configuration, with the error naming the file and the key.
    """
    from anyllm_cli.cli.common import fail
    from anyllm_cli.config_write import api_key_values, document_has_api_key, permission_warning

    target = _path(config)
    try:
        text = target.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        fail(f"{target}: config file not found; create it with  anyllm config init", 2)
    except OSError as exc:
        fail(f"{target}: cannot read config file: {exc.strerror}", 2)
    import tomllib

    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = None
    sys.stdout.write(mask_api_keys(text, api_key_values(data)))
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    warning = permission_warning(target, document_has_api_key(data) or
                                 bool(API_KEY_RE.search(text)))
    if warning:
        print(f"anyllm: warning: {warning}", file=sys.stderr, flush=True)
    _validate_or_exit(target)


@config_app.command("init", epilog="Examples:  anyllm config init  ·  "
                                   "anyllm config init --force --config ./anyllm.toml")
def init(
    force: Annotated[bool, typer.Option(
        "--force", "-f", help="Overwrite an existing file.")] = False,
    config: o.ConfigOpt = None,
) -> None:
    """Write a commented starter config file (mode 0600): an example profile and provider, and
    the built-in providers with their key variables, all commented out.

    Refuses to overwrite an existing file unless --force.
    """
    from anyllm_cli.cli.common import fail

    target = _path(config)
    if target.exists() and not force:
        fail(f"{target} already exists; use --force to overwrite it", 2)
    _write_starter(target)
    print(f"anyllm: wrote a starter config to {target}", file=sys.stderr)


@config_app.command("edit", epilog="Examples:  anyllm config edit  ·  "
                                   "EDITOR=nano anyllm config edit")
def edit(config: o.ConfigOpt = None) -> None:
    """Open the config file in $VISUAL, else $EDITOR, else vi (a starter file is written first
    when there is none), then validate it.

    An invalid file is reported with the file and key (exit 2); on a terminal you are offered
    to edit it again.
    """
    import os
    import shlex
    import subprocess

    from anyllm_cli.cli.common import fail

    target = _path(config)
    if not target.exists():
        _write_starter(target)
        print(f"anyllm: wrote a starter config to {target}", file=sys.stderr)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(editor)
    except ValueError as exc:
        fail(f"cannot parse the editor command {editor!r}: {exc}", 2)
    while True:
        try:
            code = subprocess.call([*argv, str(target)])
        except OSError as exc:
            fail(f"cannot run the editor {editor!r}: {exc.strerror}; set $VISUAL or $EDITOR", 2)
        if code != 0:
            fail(f"the editor {editor!r} exited with status {code}; {target} was not checked", 2)
        error = _config_error(target)
        if error is None:
            break
        print(f"anyllm: {error}", file=sys.stderr, flush=True)
        if not (sys.stdin.isatty() and sys.stderr.isatty()) or not typer.confirm(
                "Edit the file again?", default=True, err=True):
            raise typer.Exit(2)
    from anyllm_cli.cli.common import warn_permissions
    from anyllm_cli.config import load_config

    warn_permissions(load_config(target))


def _path(config: Path | None) -> Path:
    from anyllm_cli.config import config_path

    return config_path(config)[0]


def _write_starter(target: Path) -> None:
    from anyllm_cli.cli.common import fail
    from anyllm_cli.config_write import starter_text, write_text

    try:
        write_text(target, starter_text(), validate=False)
    except OSError as exc:
        fail(f"{target}: cannot write: {exc.strerror}", 2)


def _config_error(target: Path) -> str | None:
    from anyllm_cli.config import load_config
    from anyllm_cli.errors import AnyLLMError

    try:
        load_config(target)
    except AnyLLMError as exc:
        return str(exc)
    return None


def _validate_or_exit(target: Path) -> None:
    error = _config_error(target)
    if error is not None:
        print(f"anyllm: {error}", file=sys.stderr, flush=True)
        raise typer.Exit(2)
