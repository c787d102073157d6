"""Helpers every command shares: parameters from flags, profile resolution, errors on stderr."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import typer

if TYPE_CHECKING:
    from anyllm_cli.anyllm import AnyLLM
    from anyllm_cli.config import Config, Resolved


def fail(message: str, code: int) -> NoReturn:
    """Print ``anyllm: <message>`` on stderr (one line, redacted) and exit with ``code``."""
    from anyllm_cli.errors import redact

    print(f"anyllm: {redact(message)}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def parse_options(options: list[str] | None, flag: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict; VALUE parsed as JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for item in options or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"{flag}: expected KEY=VALUE, got {item!r}", 2)
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def flag_params(**flags: Any) -> dict[str, Any]:
    """The completion parameters given as flags (None = not given). ``stop`` may be a list."""
    out = {k: v for k, v in flags.items() if v is not None and v != []}
    stop = out.get("stop")
    if isinstance(stop, list) and len(stop) == 1:
        out["stop"] = stop[0]
    return out


def install_warning_printer() -> None:
    """Library warnings (AnyLLMWarning) become ``anyllm: warning: ...`` lines on stderr."""
    from anyllm_cli.errors import AnyLLMWarning, redact

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        print(f"anyllm: warning: {redact(str(message))}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    warnings.simplefilter("always", AnyLLMWarning)


def load_and_resolve(config_file: Path | None, profile: str | None, model: str | None
                     ) -> tuple[Config, Resolved]:
    """Load the config and resolve the profile; config errors exit 2 with one line."""
    from anyllm_cli.config import load_config, resolve
    from anyllm_cli.errors import AnyLLMError

    try:
        config = load_config(config_file)
        resolved = resolve(config, profile, model)
    except AnyLLMError as exc:
        fail(str(exc), exc.exit_code)
    warn_permissions(config)
    return config, resolved


async def open_llm(config: Config, resolved: Resolved, *, api_base: str | None,
                   timeout: float | None, strict: bool, **extra: Any) -> AnyLLM:
    """Create the backend instance for a resolved profile (key from the profile or catalog).
    ``extra``: further ``AnyLLM.acreate`` keywords (e.g. ``max_retries``)."""
    from anyllm_cli.anyllm import AnyLLM

    prof = resolved.profile
    return await AnyLLM.acreate(
        resolved.provider,
        api_key=prof.api_key if prof else None,
        api_base=api_base,
        api_key_env=prof.api_key_env if prof else None,
        api_key_cmd=prof.api_key_cmd if prof else None,
        timeout=timeout,
        strict=strict,
        **extra,
    )


def warn_permissions(cfg: Config) -> None:
    """``anyllm: warning: ...`` on stderr when the file holds an api_key others can read."""
    from anyllm_cli.config_write import permission_warning

    message = permission_warning(cfg.path, any(p.api_key for p in cfg.profiles.values()))
    if message:
        print(f"anyllm: warning: {message}", file=sys.stderr, flush=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *,
                out: TextIO | None = None, styles: Sequence[str | None] | None = None,
                wrap: Sequence[bool] | None = None) -> None:
    """Print a table: a Rich table when ``out`` is a terminal, else plain columns separated by
    two spaces (header first, no trailing spaces, cells on one line) for ``grep``/``awk``.

    ``styles``: a Rich style per row (terminal only), e.g. ``"red"`` for a failed check.
    ``wrap``: per column, whether long cells wrap on a terminal (else they are cut with …).
    """
    stream = out if out is not None else sys.stdout
    if stream.isatty():
        _rich_table(headers, rows, stream, styles, wrap)
        return
    cells = [[" ".join(str(c).split()) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        stream.write(line.rstrip() + "\n")
    stream.flush()


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[str]], stream: TextIO,
                styles: Sequence[str | None] | None, wrap: Sequence[bool] | None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, header in enumerate(headers):
        folds = bool(wrap and wrap[i])
        # Columns that do not wrap keep their width (names, ids, times); the wrapping ones
        # (messages, lists) give way when the terminal is narrow.
        longest = max([len(header)] + [len(str(row[i])) for row in rows])
        table.add_column(header, overflow="fold" if folds else "ellipsis", no_wrap=not folds,
                         min_width=None if folds else min(longest, 40))
    for i, row in enumerate(rows):
        table.add_row(*(str(c) for c in row), style=styles[i] if styles else None)
    # Rich reads NO_COLOR itself; highlight=False: no colouring of numbers and paths.
    Console(file=stream, highlight=False).print(table)
