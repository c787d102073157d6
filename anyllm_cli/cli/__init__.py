"""The ``anyllm`` command line (Typer). Commands are thin: parse -> resolve profile -> AnyLLM ->
render. Heavy modules (httpx, pydantic models, backends, rich Markdown) are imported inside the
command functions, so ``anyllm --help`` stays fast."""

from __future__ import annotations

import os
import sys

import typer

from anyllm_cli import __version__

app = typer.Typer(
    name="anyllm",
    help="Talk to any LLM provider from the shell: streaming chat, JSONL batches, CI smoke "
         "checks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: Typer's Rich help imports rich.markdown and rich.traceback (~50 ms).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"anyllm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Talk to any LLM provider from the shell: streaming chat, JSONL batches, CI smoke checks.

    Exit status: 0 success; 1 provider, network or smoke failure; 2 usage, config or input
    error; 130 interrupted.
    """


# Each command module adds its commands; they import only typer at module level.
from anyllm_cli.cli import (  # noqa: E402
    batch,
    chat,
    complete,
    config_cmd,
    models,
    profiles,
    providers,
    smoke,
)

for _module in (chat, batch, smoke, profiles, config_cmd, providers, models, complete):
    _module.register(app)


def main() -> None:
    """Console-script entry point: runs the app; an unexpected error prints one line, no
    traceback (set ANYLLM_DEBUG=1 to see it)."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        code = app(standalone_mode=False, prog_name="anyllm")
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:
        # One line on stderr (scripts grep it), not Typer's box.
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "anyllm"
        print(f"anyllm: {exc.format_message()} (see: {where} --help)", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, no traceback
        from anyllm_cli.errors import redact

        if os.environ.get("ANYLLM_DEBUG"):
            import traceback

            # Even the traceback goes through redact: an exception may carry a key.
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        else:
            print(f"anyllm: internal error: {type(exc).__name__}: {redact(str(exc))} "
                  "(ANYLLM_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
