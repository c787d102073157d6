"""Writing the configuration file: profiles added or removed, the default profile, a starter file.

A change is made on the parsed document (``tomllib``) and written back with ``tomli-w``, so every
table and key the change does not touch is kept, but TOML formatting is not (tomli-w writes no
comments). What a rewrite keeps and loses:

- kept: every key and value, the order of keys and tables, the file's opening comment block (the
  comment and blank lines before the first key or table, e.g. the whole ``anyllm config init``
  starter text), which is copied back verbatim;
- lost: every other comment (whole-line and end-of-line) and blank-line layout; inline tables and
  dotted keys become ``[table]`` sections; literal strings become basic strings; numbers are
  written in decimal (``0x10`` -> ``16``, ``1_000`` -> ``1000``, ``1e3`` -> ``1000.0``); datetimes
  are written as ``1979-05-27 07:32:00+00:00``.

When a rewrite would drop comments, the previous file is saved beside it as ``<name>.bak`` and
:func:`write_document` returns how many comments were dropped, so the command can say so.

Every write is atomic (a temporary file in the same directory, validated with
:func:`anyllm_cli.config.load_config`, then ``os.replace``) and leaves the file with mode 0600: a
config may hold an ``api_key``. A symlinked config is written through to its target.
"""

from __future__ import annotations

import os
import stat
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from anyllm_cli.errors import ConfigError

FILE_MODE = 0o600
DIR_MODE = 0o700


def read_document(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed TOML document and its text; a missing file is ``({}, "")``.

    Raises :class:`ConfigError` naming the file for unreadable or invalid TOML.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}, ""
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def opening_comments(text: str) -> str:
    """The comment and blank lines before the first key or table of ``text`` (kept verbatim by
    a rewrite), ending with a newline, or ``""``."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        kept.append(line)
    head = "".join(kept).rstrip()
    return head + "\n" if head else ""


def count_comments(text: str) -> int:
    """How many comments (``#`` outside strings) ``text`` holds. A small TOML scanner: basic,
    literal and multi-line strings are skipped, so a ``#`` in a URL or a prompt is no comment."""
    count = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#":
            count += 1
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            delim = c * 3 if text.startswith(c * 3, i) else c
            i = _string_end(text, i + len(delim), delim)
        else:
            i += 1
    return count


def _string_end(text: str, i: int, delim: str) -> int:
    """The index just past the string whose body starts at ``i`` and closes with ``delim``."""
    escapes = delim[0] == '"'
    n = len(text)
    while i < n:
        if escapes and text[i] == "\\":
            i += 2
            continue
        if len(delim) == 1 and text[i] == "\n":  # an unterminated one-line string: stop there
            return i
        if text.startswith(delim, i):
            i += len(delim)
            # A multi-line string may end with up to two quotes right before its delimiter.
            while len(delim) == 3 and i < n and text[i] == delim[0]:
                i += 1
            return i
        i += 1
    return n


def render_document(data: dict[str, Any], original: str = "") -> str:
    """``data`` as TOML text, after ``original``'s opening comment block."""
    import tomli_w

    body = tomli_w.dumps(data, multiline_strings=True)
    head = opening_comments(original)
    if head and body:
        return head + "\n" + body
    return head or body


def write_document(path: Path, data: dict[str, Any], original: str = "") -> int:
    """Validate ``data`` as a configuration and write it to ``path`` atomically, mode 0600.

    ``original`` is the file's text before the change: its opening comment block is kept, and
    when other comments would be lost the old file is copied to ``<path>.bak`` first. Returns
    the number of comments dropped (0 when none). Raises :class:`ConfigError` (naming ``path``
    and the key) when the result would not load, leaving the file untouched.
    """
    text = render_document(data, original)
    dropped = count_comments(original) - count_comments(opening_comments(original))
    target = path.resolve() if path.is_symlink() else path
    if dropped > 0:
        write_text(target.with_name(target.name + ".bak"), original, validate=False)
    write_text(target, text, validate=True, shown_as=path)
    return max(dropped, 0)


def write_text(path: Path, text: str, *, validate: bool = True,
               shown_as: Path | None = None) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (parent directories created 0700).

    With ``validate``, the new text must load as a configuration first; a :class:`ConfigError`
    then names ``shown_as`` (default ``path``), not the temporary file. A symlink is written
    through to its target.
    """
    from anyllm_cli.config import load_config

    if path.is_symlink():  # a dotfiles link: write its target, keep the link
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        if validate:
            try:
                load_config(tmp)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace(str(tmp), str(shown_as or path))) from None
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# The edits


def add_profile(path: Path, name: str, table: dict[str, Any], *, replace: bool = False,
                make_default: bool = False) -> int:
    """Add ``[profiles.<name>]`` (``table``: provider, model, api_key_env, ... params) to the
    file, creating it when missing. Returns the number of comments dropped by the rewrite.

    Raises :class:`ConfigError` when the profile exists and ``replace`` is False, or when the
    result is not a valid configuration (e.g. an unknown provider).
    """
    data, original = read_document(path)
    profiles = data.setdefault("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: profiles: expected a table")
    if name in profiles and not replace:
        raise ConfigError(f"{path}: profiles.{name} already exists (use --force to replace it)")
    profiles[name] = table
    if make_default:
        data = {"default_profile": name, **{k: v for k, v in data.items()
                                            if k != "default_profile"}}
    return write_document(path, data, original)


def remove_profile(path: Path, name: str) -> tuple[bool, int]:
    """Remove ``[profiles.<name>]``. Returns ``(default_cleared, comments_dropped)``:
    ``default_cleared`` is True when ``default_profile`` named it and was removed too.

    Raises :class:`ConfigError` when there is no such profile.
    """
    data, original = read_document(path)
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or name not in profiles:
        raise ConfigError(f"{path}: no profile named {name!r}; "
                          f"profiles: {_names(profiles if isinstance(profiles, dict) else {})}")
    del profiles[name]
    if not profiles:
        del data["profiles"]
    cleared = data.get("default_profile") == name
    if cleared:
        del data["default_profile"]
    return cleared, write_document(path, data, original)


def set_default(path: Path, name: str) -> int:
    """Set ``default_profile = name`` (a profile, or a provider name from the catalog).

    Returns the number of comments dropped. Raises :class:`ConfigError` when ``name`` is neither.
    """
    data, original = read_document(path)
    data = {"default_profile": name, **{k: v for k, v in data.items() if k != "default_profile"}}
    return write_document(path, data, original)


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


# --------------------------------------------------------------------------------------------
# The starter file


def starter_text(catalog: dict[str, Any] | None = None) -> str:
    """The commented starter config of ``anyllm config init``: every line a comment, so it loads
    as an empty configuration. ``catalog`` (name -> LLMProvider) lists the providers and their
    key variables at the end; default: the built-in catalog."""
    if catalog is None:
        from anyllm_cli.catalog import builtin_providers

        catalog = dict(builtin_providers())
    table = []
    for name, entry in sorted(catalog.items()):
        keys = " or ".join(entry.api_key_env) if entry.api_key_required else "no key"
        table.append((name, keys, entry.default_model or "(no default model)"))
    w1 = max((len(r[0]) for r in table), default=0)
    w2 = max((len(r[1]) for r in table), default=0)
    rows = [f"#   {a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in table]
    return STARTER.format(providers="\n".join(rows)) + "\n"


STARTER = """\
# anyllm configuration (TOML). Every line here is a comment: uncomment and edit.
# This file may hold secrets: keep it private (anyllm writes it with mode 0600). Prefer
# api_key_env or api_key_cmd to api_key.
# Commands that change it:  anyllm profiles add|remove|default,  anyllm config edit.
# They keep this opening comment block but drop comments further down.
#
# The profile used without -p (overridden by $ANYLLM_PROFILE): a profile or provider name.
# default_profile = "work"
#
# A profile: a provider from the catalog (anyllm providers), a model and defaults.
# [profiles.work]
# provider = "openai"
# model = "gpt-4.1-mini"
# api_key_env = "WORK_OPENAI_KEY"    # optional; default: the provider's key variable
# api_key_cmd = "pass show openai"   # optional: a command that prints the key
# api_base = "https://..."           # optional: another base URL
# [profiles.work.params]             # default completion parameters
# temperature = 0.2
# system = "Be terse."
#
# A provider of your own, same fields as the built-in ones (e.g. a gateway or a local server):
# [providers.mycorp]
# backend = "openai"
# api_base = "https://llm.mycorp.example/v1"
# api_key_env = "MYCORP_KEY"
# default_model = "mycorp-large"
#
# Built-in providers: name, key variable, default model.
{providers}"""


# --------------------------------------------------------------------------------------------
# Permissions


def permission_warning(path: Path, has_api_key: bool) -> str | None:
    """A warning when ``path`` holds an ``api_key`` and group or others may read it, else None.

    ``has_api_key``: whether any profile of the file sets ``api_key``. Not checked on Windows
    (POSIX mode bits mean nothing there).
    """
    if not has_api_key or os.name == "nt":
        return None
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o044:
        return None
    return (f"{path} holds an api_key and is readable by group or others "
            f"(mode {mode:04o}): run  chmod 600 {path}")


def document_has_api_key(data: Any) -> bool:
    """Whether a parsed document sets ``api_key`` anywhere (profiles, or a table a future
    version adds)."""
    if isinstance(data, dict):
        return any(k == "api_key" or document_has_api_key(v) for k, v in data.items())
    if isinstance(data, list):
        return any(document_has_api_key(v) for v in data)
    return False


def api_key_values(data: Any) -> list[str]:
    """Every string value of an ``api_key`` key in a parsed document (for masking)."""
    out: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "api_key" and isinstance(v, str):
                out.append(v)
            else:
                out.extend(api_key_values(v))
    elif isinstance(data, list):
        for v in data:
            out.extend(api_key_values(v))
    return out
