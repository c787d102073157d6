"""Helpers every command shares: parameters from flags, profile resolution, errors on stderr."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

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
        return config, resolve(config, profile, model)
    except AnyLLMError as exc:
        fail(str(exc), exc.exit_code)


async def open_llm(config: Config, resolved: Resolved, *, api_base: str | None,
                   timeout: float | None, strict: bool) -> AnyLLM:
    """Create the backend instance for a resolved profile (key from the profile or catalog)."""
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
    )
