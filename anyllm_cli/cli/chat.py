"""``anyllm chat``: one prompt, the answer streamed to the terminal (or a pipe)."""

from __future__ import annotations

import os
import sys
import time
from contextlib import aclosing
from typing import TYPE_CHECKING, Annotated, Any

import typer

from anyllm_cli.cli import options as o
from anyllm_cli.cli.common import (
    fail,
    flag_params,
    install_warning_printer,
    load_and_resolve,
    open_llm,
    parse_options,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from typing import TextIO

    from anyllm_cli.anyllm import AnyLLM
    from anyllm_cli.assemble import ChunkAccumulator
    from anyllm_cli.render import Renderer
    from anyllm_cli.types import ChatCompletionChunk, CompletionUsage


def register(app: typer.Typer) -> None:
    app.command("chat", epilog=EXAMPLES)(chat)


EXAMPLES = (
    "Examples:  anyllm chat 'Explain TCP slow start'  ·  "
    "git diff | anyllm chat -p groq 'Review this'  ·  "
    "anyllm chat -m openai:gpt-4.1-mini --json 'Hi'"
)


def chat(
    prompt: Annotated[list[str] | None, typer.Argument(
        metavar="PROMPT",
        help="The prompt. Text on stdin comes first, then a blank line, then this.",
        show_default=False)] = None,
    profile: o.ProfileOpt = None,
    model: o.ModelOpt = None,
    system: o.SystemOpt = None,
    temperature: o.TemperatureOpt = None,
    top_p: o.TopPOpt = None,
    max_tokens: o.MaxTokensOpt = None,
    stop: o.StopOpt = None,
    seed: o.SeedOpt = None,
    reasoning_effort: o.ReasoningEffortOpt = None,
    option: o.OptionOpt = None,
    schema: Annotated[str | None, typer.Option(
        "--schema", metavar="JSON|@FILE", rich_help_panel=o.PANEL_PARAMS,
        help="Structured output: a JSON Schema (inline, or @file). Sent through the provider's "
             "native mechanism; the answer is validated against it (exit 1 if it fails).",
        show_default=False)] = None,
    no_stream: Annotated[bool, typer.Option(
        "--no-stream", rich_help_panel=o.PANEL_OUTPUT,
        help="Ask for the whole reply at once.")] = False,
    json_out: Annotated[bool, typer.Option(
        "--json", rich_help_panel=o.PANEL_OUTPUT,
        help="Print one OpenAI chat.completion JSON object.")] = False,
    jsonl_out: Annotated[bool, typer.Option(
        "--jsonl", rich_help_panel=o.PANEL_OUTPUT,
        help="Print each chat.completion.chunk as a JSON line as it arrives.")] = False,
    show_reasoning: Annotated[bool | None, typer.Option(
        "--show-reasoning/--hide-reasoning", rich_help_panel=o.PANEL_OUTPUT,
        help="Show the model's reasoning (dimmed on a terminal, on stderr when piped). "
             "Default: shown on a terminal, hidden when piped.", show_default=False)] = None,
    usage: Annotated[bool, typer.Option(
        "--usage", "-u", rich_help_panel=o.PANEL_OUTPUT,
        help="Print token usage and timing on stderr.")] = False,
    api_base: o.ApiBaseOpt = None,
    timeout: o.TimeoutOpt = None,
    strict: o.StrictOpt = False,
    config: o.ConfigOpt = None,
) -> None:
    """Send a prompt and stream the answer: Markdown on a terminal, plain text when piped."""
    if json_out and jsonl_out:
        fail("--json and --jsonl cannot be used together", 2)
    text = read_prompt(prompt)
    if not text.strip():
        fail("no prompt: give one as an argument or on stdin", 2)
    install_warning_printer()
    cfg, resolved = load_and_resolve(config, profile, model)
    params: dict[str, Any] = dict(resolved.params)
    params.update(parse_options(option, "--option/-o"))
    params.update(flag_params(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                              stop=stop, seed=seed, reasoning_effort=reasoning_effort))
    schema_obj = load_schema(schema) if schema is not None else None
    if schema_obj is not None:
        params["response_format"] = response_format_for(schema_obj)
    system_prompt = system if system is not None else params.pop("system", None)
    params.pop("system", None)
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": text})

    tty = sys.stdout.isatty()
    mode = "json" if json_out else "jsonl" if jsonl_out else "text"
    renderer = None
    if mode == "text":
        from anyllm_cli.render import make_renderer

        renderer = make_renderer(tty=tty, no_color=bool(os.environ.get("NO_COLOR")),
                                 show_reasoning=show_reasoning, out=sys.stdout, err=sys.stderr)
    run = _Run(mode=mode, renderer=renderer, usage=usage, schema=schema_obj)
    import asyncio

    try:
        code = asyncio.run(run.main(cfg, resolved, messages, params, stream=not no_stream,
                                    api_base=api_base, timeout=timeout, strict=strict))
    except KeyboardInterrupt:
        if renderer is not None:
            renderer.abort()
        sys.stdout.flush()
        print("\nanyllm: interrupted", file=sys.stderr, flush=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def load_schema(value: str) -> dict[str, Any]:
    """``--schema`` value -> a JSON Schema object: inline JSON or ``@path``; exits 2 if bad.

    An OpenAI ``json_schema`` wrapper (``{"name": ..., "schema": {...}}``) is accepted too.
    """
    import json
    from pathlib import Path

    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).expanduser().read_text()
        except OSError as exc:
            fail(f"--schema: cannot read {value[1:]}: {exc.strerror}", 2)
    try:
        obj = json.loads(text)
    except ValueError as exc:
        fail(f"--schema: not valid JSON ({exc})", 2)
    if not isinstance(obj, dict):
        fail("--schema: expected a JSON Schema object", 2)
    if "schema" in obj and isinstance(obj["schema"], dict) and "name" in obj:
        obj = obj["schema"]
    from jsonschema.validators import validator_for

    try:
        validator_for(obj).check_schema(obj)
    except Exception as exc:  # jsonschema.SchemaError
        fail(f"--schema: not a valid JSON Schema: {getattr(exc, 'message', exc)}", 2)
    return dict(obj)


def response_format_for(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI ``response_format`` for a schema; each backend maps it to its native form."""
    import re

    name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "response"))[:64]
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def check_against_schema(text: str, schema: dict[str, Any]) -> str | None:
    """None when ``text`` is JSON valid against ``schema``, else a one-line reason."""
    import json

    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    body = text.strip()
    if body.startswith("```"):  # some models fence JSON even when asked for JSON only
        body = body.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        return f"the answer is not JSON ({exc})"
    error = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    return f"the answer does not match the schema at {error.json_path}: {error.message}"


def read_prompt(args: list[str] | None) -> str:
    """stdin (when it is not a terminal) first, a blank line, then the arguments."""
    parts = []
    stdin = sys.stdin
    if stdin is not None and not stdin.isatty():
        try:
            piped = stdin.read()
        except (OSError, ValueError):
            piped = ""
        if piped.strip():
            parts.append(piped.rstrip("\n"))
    if args:
        parts.append(" ".join(args))
    return "\n\n".join(parts)


class _Run:
    """One chat request and its output; kept as an object so an interrupt can reach the
    renderer."""

    def __init__(self, *, mode: str, renderer: Renderer | None, usage: bool,
                 schema: dict[str, Any] | None = None) -> None:
        self.mode = mode
        self.schema = schema
        self.answer = ""
        self.renderer = renderer
        self.show_usage = usage
        self.usage: CompletionUsage | None = None
        self.started = time.perf_counter()
        self.first_token: float | None = None

    async def main(self, cfg: Any, resolved: Any, messages: list[dict[str, Any]],
                   params: dict[str, Any], *, stream: bool, api_base: str | None,
                   timeout: float | None, strict: bool) -> int:
        from anyllm_cli.errors import AnyLLMError

        llm: AnyLLM | None = None
        try:
            llm = await open_llm(cfg, resolved, api_base=api_base, timeout=timeout,
                                 strict=strict)
            if self.mode == "json" or not stream:
                await self._whole(llm, resolved.model, messages, params)
            else:
                await self._stream(llm, resolved.model, messages, params)
        except AnyLLMError as exc:
            if self.renderer is not None:
                self.renderer.abort()
            sys.stdout.flush()
            print(f"anyllm: {exc}", file=sys.stderr, flush=True)
            return exc.exit_code
        finally:
            if llm is not None:
                await llm.aclose()
        self._print_usage()
        if self.schema is not None:
            problem = check_against_schema(self.answer, self.schema)
            if problem is not None:
                print(f"anyllm: {problem}", file=sys.stderr, flush=True)
                return 1
        return 0

    async def _whole(self, llm: AnyLLM, model: str, messages: list[dict[str, Any]],
                     params: dict[str, Any]) -> None:
        reply = await llm.acompletion(model, messages, **params)
        self.first_token = time.perf_counter()
        self.usage = reply.usage
        if reply.choices:
            self.answer = reply.choices[0].message.content or ""
        if self.mode == "json":
            sys.stdout.write(reply.to_json() + "\n")
            sys.stdout.flush()
            return
        assert self.renderer is not None
        for choice in reply.choices[:1]:
            if choice.message.reasoning:
                self.renderer.reasoning(choice.message.reasoning)
            self.renderer.content(choice.message.content or choice.message.refusal or "")
            _tool_calls_text(self.renderer, choice.message.tool_calls)
        self.renderer.finish()

    async def _stream(self, llm: AnyLLM, model: str, messages: list[dict[str, Any]],
                      params: dict[str, Any]) -> None:
        from anyllm_cli.assemble import ChunkAccumulator

        out = sys.stdout
        acc = ChunkAccumulator()  # tool calls are shown whole, once their arguments are complete
        async with aclosing(llm.acompletion_stream(model, messages, **params)) as stream:
            await self._consume(stream, acc, out)
        result = acc.result()
        if result.choices:
            self.answer = result.choices[0].message.content or ""
        if self.renderer is not None:
            if result.choices:
                _tool_calls_text(self.renderer, result.choices[0].message.tool_calls)
            self.renderer.finish()

    async def _consume(self, stream: AsyncGenerator[ChatCompletionChunk, None],
                       acc: ChunkAccumulator, out: TextIO) -> None:
        async for chunk in stream:
            if chunk.usage is not None:
                self.usage = chunk.usage
            acc.add(chunk)
            if self.mode == "jsonl":
                out.write(chunk.to_json() + "\n")
                out.flush()
                continue
            self._render(chunk)

    def _render(self, chunk: ChatCompletionChunk) -> None:
        assert self.renderer is not None
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # n > 1: the terminal shows the first choice; --json/--jsonl carry all
            delta = choice.delta
            if self.first_token is None and (delta.content or delta.reasoning):
                self.first_token = time.perf_counter()
            if delta.reasoning:
                self.renderer.reasoning(delta.reasoning)
            if delta.content:
                self.renderer.content(delta.content)
            if delta.refusal:
                self.renderer.content(delta.refusal)

    def _print_usage(self) -> None:
        if not self.show_usage:
            return
        elapsed = time.perf_counter() - self.started
        parts = []
        if self.usage is not None:
            u = self.usage
            parts.append(f"{u.prompt_tokens} prompt + {u.completion_tokens} completion = "
                         f"{u.total_tokens} tokens")
        else:
            parts.append("usage not reported by the provider")
        if self.first_token is not None:
            parts.append(f"first token {self.first_token - self.started:.2f} s")
        parts.append(f"total {elapsed:.2f} s")
        print("usage: " + ", ".join(parts), file=sys.stderr, flush=True)


def _tool_calls_text(renderer: Renderer, tool_calls: Any) -> None:
    for call in tool_calls or ():
        renderer.content(f"\n\n→ tool call `{call.function.name}({call.function.arguments})`\n")
