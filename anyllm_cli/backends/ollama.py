"""Ollama's native chat API: ``POST /api/chat``, streamed as newline-delimited JSON.

Source: Ollama API reference (ollama/ollama ``docs/openapi.yaml`` ``ChatRequest`` /
``ChatResponse`` / ``ChatStreamEvent``, ``docs/api.md``, ``api/types.go``); summary in
shared/reference/wire-formats.md §6.

What differs from OpenAI's shape, and how it is translated:

* Sampling settings live in ``options`` (``max_tokens`` is ``num_predict``); Ollama's own
  settings (``top_k``, ``num_ctx``, ``min_p``, ...) are accepted as extras (``-o top_k=20``) and go
  there too; ``keep_alive`` is an extra at the top level.
* ``response_format`` becomes ``format``: ``"json"`` for ``json_object``, the schema object
  itself for ``json_schema``.
* ``reasoning_effort`` becomes ``think``: ``none`` -> false, ``medium`` -> true, ``low`` /
  ``high`` -> the level string, ``minimal`` -> ``"low"`` (reported). ``medium`` is sent as true
  because Ollama refuses level strings for models without levels (every model but gpt-oss:
  ``think value "medium" is not supported for this model``, ollama/ollama#12561); when a level is
  refused that way, the request is retried once with ``think: true`` and the change reported.
  ``message.thinking`` becomes ``reasoning``.
* Tool-call ``arguments`` are JSON objects on Ollama's side and JSON strings on OpenAI's; they
  are converted both ways. A streamed tool call arrives whole: it becomes one delta with its
  ``index``, ``id`` (synthesised when Ollama sends none), name and the complete arguments.
* Images are base64 strings in ``message.images``: ``data:`` URLs are unpacked; ``http(s)`` URLs
  cannot be sent (no fetching in a conversion) and are reported as dropped.
* There is no response id and no ``tool_choice``: an id is made up per reply; ``tool_choice``
  ``"none"`` is honoured by not sending the tools, ``"required"`` / a named function are reported.
* ``done_reason`` ``stop`` becomes ``tool_calls`` when tool calls were emitted (Ollama says
  ``stop`` after tool calls); ``length`` stays ``length``. ``prompt_eval_count`` / ``eval_count``
  become ``usage``.
* Errors: a non-2xx status with ``{"error": "..."}``; inside a 200 stream, a line
  ``{"error": "..."}`` (``docs/api/errors.mdx``), raised as :class:`ProviderError` after the
  chunks already delivered.
"""

from __future__ import annotations

import json
import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, ClassVar

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.backends._content import parse_data_url
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    InvalidRequestError,
    StreamError,
    error_from_response,
)
from anyllm_cli.transport.http import HTTPTransport, transport_options
from anyllm_cli.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChoiceLogprobs,
    ChunkChoice,
    CompletionParams,
    CompletionUsage,
    FinishReason,
    Function,
    Model,
)

CHAT_PATH = "api/chat"
TAGS_PATH = "api/tags"

Report = Callable[[str], None]

OPTION_EXTRAS = frozenset({
    "top_k", "min_p", "typical_p", "repeat_last_n", "repeat_penalty", "num_ctx", "num_keep",
    "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread",
})
"""Ollama ``options`` beyond OpenAI's names (``api/types.go`` ``Options``), taken as extras."""
TOP_LEVEL_EXTRAS = frozenset({"keep_alive"})

_THINK: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": True,
                                 "high": "high", "xhigh": "max", "max": "max"}


def _warn(message: str) -> None:
    warnings.warn(message, AnyLLMWarning, stacklevel=3)


class OllamaBackend(AnyLLM):
    """The ``ollama`` wire API. No key is needed locally; ``OLLAMA_API_KEY`` (ollama.com) is sent
    as ``Authorization: Bearer``."""

    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = frozenset({
        "tools", "tool_choice", "temperature", "top_p", "max_tokens", "max_completion_tokens",
        "stop", "stream", "seed", "presence_penalty", "frequency_penalty", "logprobs",
        "top_logprobs", "response_format", "reasoning_effort",
    })

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        key, hint = self._resolve_api_key(api_key, kwargs)
        base = api_base or self.provider.api_base or "http://localhost:11434"
        headers = {"accept": "application/json", **self.provider.headers}
        if key:
            headers["authorization"] = f"Bearer {key}"
        self.transport = HTTPTransport(
            provider=self.provider.name, base_url=base, headers=headers,
            options=transport_options(kwargs), key_hint=hint)

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        return [k for k in extra if k not in OPTION_EXTRAS | TOP_LEVEL_EXTRAS]

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def alist_models(self) -> list[Model]:
        """``GET /api/tags``: the models pulled on this server (``models[].name``)."""
        data = await self.transport.get_json(TAGS_PATH)
        items = data.get("models", []) if isinstance(data, dict) else []
        return [Model(id=m["name"], created=_timestamp(m.get("modified_at")), owned_by="ollama")
                for m in items if isinstance(m, dict) and isinstance(m.get("name"), str)]

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        body = self._convert_completion_params(params, self.report_unsupported)
        try:
            data = await self.transport.post_json(CHAT_PATH, body)
        except InvalidRequestError as exc:
            if not self._think_level_refused(body, exc):
                raise
            data = await self.transport.post_json(CHAT_PATH, body)
        return self._convert_completion_response(data, provider=self.provider.name)

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        body = self._convert_completion_params(params, self.report_unsupported)
        state = OllamaStreamState(provider=self.provider.name)
        headers = {"accept": "application/x-ndjson"}
        for attempt in (0, 1):
            try:
                async with self.transport.stream("POST", CHAT_PATH, json_body=body,
                                                 headers=headers) as opened:
                    async for line in opened.aiter_ndjson():
                        for chunk in self._convert_completion_chunk_response(line, state):
                            yield chunk
                return
            except InvalidRequestError as exc:
                if attempt or not self._think_level_refused(body, exc):
                    raise

    def _think_level_refused(self, body: dict[str, Any], exc: AnyLLMError) -> bool:
        """True (and ``body`` changed to ``think: true``) when the model refused a think level."""
        level = body.get("think")
        if not isinstance(level, str) or "think value" not in str(exc.provider_message or ""):
            return False
        self.report_unsupported(f"{self.provider.name}: model {body.get('model')} has no "
                                f"thinking levels; sent think=true instead of {level!r}",
                                parameter="reasoning_effort")
        body["think"] = True
        return True

    # --- conversions (pure) ------------------------------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams,
                                   report: Report | None = None) -> dict[str, Any]:
        """CompletionParams -> the JSON body of ``POST /api/chat``.

        ``report`` is called for each value or content part that cannot be carried.
        """
        say = report or _warn
        body: dict[str, Any] = {
            "model": params.model,
            "messages": _convert_messages(params.messages, say),
            "stream": bool(params.stream),
        }
        options: dict[str, Any] = {}
        max_tokens = params.max_completion_tokens or params.max_tokens
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(params, name)
            if value is not None:
                options[name] = value
        if params.stop is not None:
            options["stop"] = [params.stop] if isinstance(params.stop, str) else params.stop
        extra = params.extra
        options.update({k: v for k, v in extra.items() if k in OPTION_EXTRAS})
        if options:
            body["options"] = options
        body.update({k: v for k, v in extra.items() if k in TOP_LEVEL_EXTRAS})

        fmt = _format_of(params.response_format, say)
        if fmt is not None:
            body["format"] = fmt
        if params.reasoning_effort is not None:
            think = _THINK.get(params.reasoning_effort)
            if think is None:
                say(f"ollama: unknown reasoning_effort {params.reasoning_effort!r}; not sent")
            else:
                if params.reasoning_effort == "minimal":
                    say("ollama: reasoning_effort 'minimal' has no Ollama level; sent 'low'")
                body["think"] = think
        if params.logprobs is not None:
            body["logprobs"] = params.logprobs
        if params.top_logprobs is not None:
            body["top_logprobs"] = params.top_logprobs

        tools = _convert_tools(params.tools, say)
        choice = params.tool_choice
        if choice == "none":
            tools = []  # no tools offered: the model cannot call one
        elif choice not in (None, "auto") and tools:
            say(f"ollama: tool_choice {choice!r} cannot be expressed (Ollama has no "
                "tool_choice); the model may answer without calling a tool")
        if tools:
            body["tools"] = tools
        return body

    @staticmethod
    def _convert_completion_response(data: Any, *, provider: str | None = None,
                                     id: str | None = None) -> ChatCompletion:
        """A whole ``/api/chat`` reply (``stream: false``) -> :class:`ChatCompletion`.

        Raises the mapped :class:`AnyLLMError` for an ``{"error": ...}`` body.
        """
        if not isinstance(data, dict) or "message" not in data:
            if isinstance(data, dict) and data.get("error"):
                raise error_from_response(500, data, provider=provider)
            raise AnyLLMError("Malformed response: not an Ollama chat reply", provider=provider)
        message = data.get("message") or {}
        calls = [
            ChatCompletionMessageToolCall(id=tc_id, function=Function(name=name, arguments=args))
            for _, tc_id, name, args in _tool_calls_of(message, 0)
        ]
        has_tools = bool(calls)
        logprobs = _logprobs_of(data)
        choice = Choice(
            index=0,
            message=ChatCompletionMessage(
                content=message.get("content") or (None if has_tools else ""),
                reasoning=message.get("thinking") or None,
                tool_calls=calls or None),
            finish_reason=_finish_reason(data.get("done_reason"), has_tools),
            logprobs=ChoiceLogprobs(content=logprobs) if logprobs else None,
        )
        return ChatCompletion(id=id or _new_id(), created=_timestamp(data.get("created_at")),
                              model=str(data.get("model") or ""), choices=[choice],
                              usage=_usage_of(data))

    @staticmethod
    def _convert_completion_chunk_response(line: Any, state: OllamaStreamState
                                           ) -> list[ChatCompletionChunk]:
        """One NDJSON line of the stream -> the chunks it stands for (see
        :class:`OllamaStreamState`)."""
        return state.convert(line)


class OllamaStreamState:
    """Converts the lines of one ``/api/chat`` stream, in order, into chunks. No I/O.

    Each ``done: false`` line becomes one chunk (the first with ``role``); the ``done: true``
    line becomes a chunk with ``finish_reason`` and then a usage chunk (``choices: []``), as
    OpenAI sends with ``include_usage``. An ``{"error": ...}`` line raises
    :class:`ProviderError` (via :func:`error_from_response`).
    """

    def __init__(self, *, provider: str | None = None, id: str | None = None) -> None:
        self.provider = provider
        self.id = id or _new_id()
        self.created: int | None = None
        self.model = ""
        self.tool_count = 0
        self.started = False

    def convert(self, line: Any) -> list[ChatCompletionChunk]:
        if not isinstance(line, dict):
            raise StreamError(f"Stream failed: unexpected line {str(line)[:120]}",
                              provider=self.provider)
        if line.get("error"):
            raise error_from_response(500, line, provider=self.provider)
        if self.created is None:
            self.created = _timestamp(line.get("created_at"))
            self.model = str(line.get("model") or "")
        message = line.get("message") or {}
        delta = ChoiceDelta(role=None if self.started else "assistant")
        if message.get("content") or not self.started:
            delta.content = message.get("content") or ""
        if message.get("thinking"):
            delta.reasoning = message["thinking"]
        calls = _tool_calls_of(message, self.tool_count)
        if calls:
            self.tool_count += len(calls)
            delta.tool_calls = [
                ChoiceDeltaToolCall(index=i, id=tc_id, type="function",
                                    function=ChoiceDeltaToolCallFunction(name=name,
                                                                         arguments=args))
                for i, tc_id, name, args in calls]
        logprobs = _logprobs_of(line)
        out: list[ChatCompletionChunk] = []
        if (not self.started or delta.content or delta.reasoning or calls or logprobs):
            out.append(self._chunk([ChunkChoice(
                index=0, delta=delta,
                logprobs=ChoiceLogprobs(content=logprobs) if logprobs else None)]))
        self.started = True
        if line.get("done"):
            finish = _finish_reason(line.get("done_reason"), self.tool_count > 0)
            out.append(self._chunk([ChunkChoice(index=0, delta=ChoiceDelta(),
                                                finish_reason=finish)]))
            usage = _usage_of(line)
            if usage is not None:
                out.append(self._chunk([], usage=usage))
        return out

    def _chunk(self, choices: list[ChunkChoice], usage: CompletionUsage | None = None
               ) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created or int(time.time()),
                                   model=self.model, choices=choices, usage=usage)


# --- helpers (pure) --------------------------------------------------------------------------


def _new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _timestamp(value: Any) -> int:
    """Ollama's RFC 3339 time (nanosecond fractions) -> Unix seconds; now when absent."""
    if isinstance(value, str) and value:
        text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00"))
        try:
            return int(datetime.fromisoformat(text).timestamp())
        except ValueError:
            pass
    return int(time.time())


def _finish_reason(done_reason: Any, has_tools: bool) -> FinishReason:
    if done_reason == "length":
        return "length"
    return "tool_calls" if has_tools else "stop"


def _usage_of(data: dict[str, Any]) -> CompletionUsage | None:
    prompt, completion = data.get("prompt_eval_count"), data.get("eval_count")
    if prompt is None and completion is None:
        return None
    p, c = int(prompt or 0), int(completion or 0)
    return CompletionUsage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


def _logprobs_of(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Ollama ``logprobs`` items -> OpenAI ``ChatCompletionTokenLogprob`` (same field names;
    ``bytes`` and ``top_logprobs`` are required there)."""
    items = data.get("logprobs")
    if not isinstance(items, list) or not items:
        return None

    def one(item: dict[str, Any]) -> dict[str, Any]:
        return {"token": item.get("token", ""), "logprob": item.get("logprob", 0.0),
                "bytes": item.get("bytes")}

    return [{**one(it), "top_logprobs": [one(t) for t in it.get("top_logprobs") or []]}
            for it in items if isinstance(it, dict)]


def _tool_calls_of(message: dict[str, Any], first_index: int
                   ) -> list[tuple[int, str, str, str]]:
    """``message.tool_calls`` -> ``(index, id, name, arguments JSON string)`` per call."""
    out = []
    for n, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        text = args if isinstance(args, str) else json.dumps(
            args if args is not None else {}, ensure_ascii=False)
        index = first_index + n
        out.append((index, str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                    str(fn.get("name") or ""), text))
    return out


def _format_of(response_format: dict[str, Any] | None, say: Report) -> Any:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
        say("ollama: response_format json_schema without a schema; sent format 'json'")
        return "json"
    if kind != "text":
        say(f"ollama: response_format type {kind!r} is not supported; not sent")
    return None


def _convert_tools(tools: list[dict[str, Any]] | None, say: Report) -> list[dict[str, Any]]:
    out = []
    for tool in tools or []:
        if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
            fn = {k: v for k, v in tool["function"].items() if k != "strict"}
            out.append({"type": "function", "function": fn})
        else:
            say(f"ollama: tool of type {tool.get('type')!r} is not supported; dropped")
    return out


def _convert_messages(messages: list[dict[str, Any]], say: Report) -> list[dict[str, Any]]:
    """OpenAI messages -> Ollama messages (text content, ``images``, ``thinking``,
    ``tool_calls`` with object arguments, ``tool_name`` on tool results)."""
    names: dict[str, str] = {}
    out = []
    for m in messages:
        role = "system" if m["role"] == "developer" else m["role"]
        text, images = _content_of(m.get("content"), say)
        msg: dict[str, Any] = {"role": role, "content": text}
        if images:
            msg["images"] = images
        if role == "assistant":
            thinking = m.get("reasoning") or m.get("reasoning_content")
            if thinking:
                msg["thinking"] = thinking
            calls = []
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                if tc.get("id"):
                    names[tc["id"]] = fn.get("name", "")
                call: dict[str, Any] = {"function": {
                    "name": fn.get("name", ""),
                    "arguments": _arguments_object(fn.get("arguments"), say)}}
                if tc.get("id"):
                    call["id"] = tc["id"]
                calls.append(call)
            if calls:
                msg["tool_calls"] = calls
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if call_id:
                msg["tool_call_id"] = call_id
            name = m.get("name") or names.get(call_id or "")
            if name:
                msg["tool_name"] = name
        out.append(msg)
    return out


def _content_of(content: Any, say: Report) -> tuple[str, list[str]]:
    """OpenAI content (string or parts) -> (text, base64 images)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url", "") if isinstance(ref, dict) else str(ref or "")
            parsed = parse_data_url(url)
            if parsed is not None:
                images.append(parsed[1])
            else:
                say(f"ollama: image URL {url[:60]!r} cannot be sent (Ollama takes base64 "
                    "images only; use a data: URL); dropped")
        else:
            say(f"ollama: content part of type {kind!r} is not supported; dropped")
    return "\n".join(texts), images


def _arguments_object(arguments: Any, say: Report) -> Any:
    """An OpenAI ``arguments`` JSON string -> the object Ollama expects."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        say("ollama: tool call arguments in the history are not JSON; sent as {}")
        return {}
    return value if isinstance(value, dict) else {}


BACKEND = OllamaBackend
