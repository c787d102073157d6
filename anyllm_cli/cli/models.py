"""``anyllm models``: the models a provider offers now (a live request where it has a listing;
the GGUF files it can find for ``local``)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from anyllm_cli.cli import options as o

if TYPE_CHECKING:
    from anyllm_cli.config import Config, Resolved
    from anyllm_cli.types import Model


def register(app: typer.Typer) -> None:
    app.command("models", epilog=EXAMPLES)(models)


EXAMPLES = ("Examples:  anyllm models -p groq  ·  anyllm models -p local  ·  "
            "anyllm models -p openai --json | jq -r '.data[].id'")


def models(
    profile: o.ProfileOpt = None,
    json_out: Annotated[bool, typer.Option(
        "--json", rich_help_panel=o.PANEL_OUTPUT,
        help="Print OpenAI's model list object: {\"object\": \"list\", \"data\": [{id, object, "
             "created, owned_by}]}, in the provider's order.")] = False,
    api_base: o.ApiBaseOpt = None,
    timeout: o.TimeoutOpt = None,
    config: o.ConfigOpt = None,
) -> None:
    """List the models of a profile's or provider's host, asked live (OpenAI-compatible
    /models, Anthropic, Gemini, Ollama /api/tags, Mistral, Cohere); for local, the GGUF models
    it can find (the packaged default and $ANYLLM_MODELS_DIR).

    On a terminal: a table of id, owner and creation date; piped: one id per line, sorted. Exit
    1 when the provider has no model listing (capabilities.models = "no" in the catalog) or the
    request fails.
    """
    from anyllm_cli.cli.common import fail, install_warning_printer, load_and_resolve

    install_warning_printer()
    cfg, resolved = load_and_resolve(config, profile, None)  # warns about file permissions
    if resolved.provider.capabilities.models == "no":
        fail(f"{resolved.provider.name} has no model listing (its catalog entry says "
             "capabilities.models = \"no\")", 1)
    import asyncio

    found = asyncio.run(_list(cfg, resolved, api_base=api_base, timeout=timeout))
    if json_out:
        print(json.dumps({"object": "list", "data": [m.to_dict() for m in found]}, indent=2))
        return
    ordered = sorted(found, key=lambda m: m.id)
    if not sys.stdout.isatty():
        sys.stdout.write("".join(f"{m.id}\n" for m in ordered))
        return
    if not ordered:
        print(f"anyllm: {resolved.label} lists no models", file=sys.stderr)
        return
    from anyllm_cli.cli.common import print_table

    print_table(["ID", "OWNED BY", "CREATED"],
                [[m.id, m.owned_by or "-", _date(m.created)] for m in ordered],
                wrap=[False, True, False])


async def _list(cfg: Config, resolved: Resolved, *, api_base: str | None,
                timeout: float | None) -> list[Model]:
    from anyllm_cli.cli.common import fail, open_llm
    from anyllm_cli.errors import AnyLLMError

    llm = None
    try:
        llm = await open_llm(cfg, resolved, api_base=api_base, timeout=timeout, strict=False)
        return await llm.alist_models()
    except AnyLLMError as exc:
        fail(str(exc), exc.exit_code)
    finally:
        if llm is not None:
            await llm.aclose()


def _date(created: int) -> str:
    if not created:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d")
