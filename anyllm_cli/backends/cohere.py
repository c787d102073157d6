"""Cohere's v2 chat API: ``POST /v2/chat``, streamed as named Server-Sent Events.

Source: Cohere API reference, "Chat" v2 (cohere-ai/cohere-developer-experience
``cohere-openapi.yaml``; cohere-ai/cohere-python ``src/cohere/v2/raw_client.py`` and
``types/*``); summary in shared/reference/wire-formats.md §5. Recorded traffic:
langchain-ai/langchain-cohere cassettes and vercel/ai ``packages/cohere`` fixtures.

Request translation (OpenAI -> Cohere):

* messages: ``developer`` -> ``system``; assistant ``tool_calls`` keep OpenAI's shape, and the
  assistant's ``reasoning`` goes back as ``tool_plan`` when it made tool calls (see below);
  ``tool`` messages keep ``tool_call_id``; ``image_url`` parts are passed as Cohere ``image_url``
  content blocks, other part types are reported and dropped.
* ``top_p`` -> ``p`` (0.01–0.99), extra ``top_k`` -> ``k`` (0–500), ``stop`` ->
  ``stop_sequences`` (at most 5), ``max_completion_tokens`` -> ``max_tokens``. Cohere's ranges are
  narrower than OpenAI's (``temperature`` 0–1, penalties 0–1): values outside are clamped and
  reported.
* ``response_format``: ``json_object`` -> ``{"type": "json_object"}``; ``json_schema`` ->
  ``{"type": "json_object", "json_schema": <schema>}`` (``JsonResponseFormatV2``).
* ``tool_choice``: Cohere knows only ``REQUIRED`` and ``NONE``; ``auto`` is its default. A named
  function is emulated exactly: only that tool is sent, with ``REQUIRED``. ``strict: true`` on
  the tools becomes ``strict_tools``.
* ``reasoning_effort``: ``none`` -> ``thinking: {"type": "disabled"}``; any other level ->
  ``{"type": "enabled"}`` (Cohere has a token budget, not levels: reported).

Response translation:

* ``content`` blocks: ``text`` -> ``content``, ``thinking`` -> ``reasoning``.
* ``tool_plan`` (the model's plan before it calls tools: "I will use the weather tool to ...")
  is the model thinking aloud, not the answer: it goes to ``reasoning`` too, so piped output
  carries only answers and tool calls. It is sent back as ``tool_plan`` in the history.
* ``tool_calls`` keep their shape; empty or ``"null"`` arguments (observed, vercel/ai
  ``cohere-null-args.json``, ``cohere-empty-tool-call.chunks.txt``) become ``"{}"``.
* ``finish_reason``: ``COMPLETE``/``STOP_SEQUENCE`` -> stop, ``MAX_TOKENS`` -> length,
  ``TOOL_CALL`` -> tool_calls; ``ERROR``/``TIMEOUT`` are raised (:class:`ProviderError`,
  :class:`APITimeoutError`) after the chunks already delivered.
* ``usage.tokens.input_tokens``/``output_tokens`` -> prompt/completion tokens (billed units
  when ``tokens`` is absent); ``cached_tokens`` -> ``prompt_tokens_details.cached_tokens``.
* Cohere's reply has no timestamp and no model: ``created`` is the time of receipt and
  ``model`` the requested model. Citations are not carried (no OpenAI equivalent).

Errors are ``{"message": ...}`` bodies; 498 (invalid token) is treated as 401.

Models: v2 has no model listing; ``GET /v1/models?endpoint=chat`` (the v1 endpoint, still the
documented one) is used, derived from the base URL by replacing a trailing ``/v2``.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, ClassVar

import httpx

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    APITimeoutError,
    ProviderError,
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
    ChunkChoice,
    CompletionParams,
    CompletionUsage,
    FinishReason,
    Function,
    Model,
)

CHAT_PATH = "chat"

Report = Callable[[str], None]

COHERE_EXTRAS = frozenset({"top_k", "safety_mode", "documents", "citation_options", "priority",
                           "strict_tools"})
"""Extras understood here: ``top_k`` (sent as ``k``) and Cohere request fields sent as-is."""

_FINISH: dict[str, FinishReason] = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop",
                                    "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
MAX_STOP_SEQUENCES = 5


def _warn(message: str) -> None:
    warnings.warn(message, AnyLLMWarning, stacklevel=3)


class CohereBackend(AnyLLM):
    """The ``cohere`` wire API (api.cohere.com v2)."""

    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = frozenset({
        "tools", "tool_choice", "temperature", "top_p", "max_tokens", "max_completion_tokens",
        "stop", "stream", "seed", "presence_penalty", "frequency_penalty", "response_format",
        "reasoning_effort",
    })

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        key, hint = self._resolve_api_key(api_key, kwargs)
        self.base_url = (api_base or self.provider.api_base or "https://api.cohere.com/v2"
                         ).rstrip("/")
        headers = {"accept": "application/json", **self.provider.headers}
        if key:
            headers["authorization"] = f"Bearer {key}"
        self.transport = HTTPTransport(
            provider=self.provider.name, base_url=self.base_url, headers=headers,
            options=transport_options(kwargs), key_hint=hint,
            error_parser=partial(_parse_error, provider=self.provider.name, key_hint=hint))

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        return [k for k in extra if k not in COHERE_EXTRAS]

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def alist_models(self) -> list[Model]:
        """``GET /v1/models?endpoint=chat`` (``models[].name``); v2 has no listing."""
        data = await self.transport.get_json(models_url(self.base_url))
        items = data.get("models", []) if isinstance(data, dict) else []
        return [Model(id=m["name"], owned_by="cohere")
                for m in items if isinstance(m, dict) and isinstance(m.get("name"), str)]

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        body = self._convert_completion_params(params, self.report_unsupported)
        data = await self.transport.post_json(CHAT_PATH, body)
        return self._convert_completion_response(data, model=params.model,
                                                 provider=self.provider.name)

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        body = self._convert_completion_params(params, self.report_unsupported)
        state = CohereStreamState(model=params.model, provider=self.provider.name)
        async with self.transport.stream("POST", CHAT_PATH, json_body=body,
                                         headers={"accept": "text/event-stream"}) as opened:
            async for event in opened.aiter_sse():
                if event.data == "[DONE]":
                    return
                for chunk in self._convert_completion_chunk_response(event.data, state):
                    yield chunk

    # --- conversions (pure) ------------------------------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams,
                                   report: Report | None = None) -> dict[str, Any]:
        """CompletionParams -> the JSON body of ``POST /v2/chat``.

        ``report`` is called for each value clamped or content part dropped.
        """
        say = report or _warn
        body: dict[str, Any] = {"model": params.model,
                                "messages": _convert_messages(params.messages, say)}
        tools = _convert_tools(params.tools, say)
        choice = params.tool_choice
        if choice == "required":
            body["tool_choice"] = "REQUIRED"
        elif choice == "none":
            body["tool_choice"] = "NONE"
        elif isinstance(choice, dict) and choice.get("type") == "function":
            name = (choice.get("function") or {}).get("name")
            tools = [t for t in tools if t["function"].get("name") == name]
            if not tools:
                say(f"cohere: tool_choice names {name!r}, which is not among the tools")
            body["tool_choice"] = "REQUIRED"
        elif choice not in (None, "auto"):
            say(f"cohere: tool_choice {choice!r} cannot be expressed; not sent")
        if tools:
            body["tools"] = tools
            if any((t.get("function") or {}).get("strict") for t in params.tools or []):
                body["strict_tools"] = True
        else:
            body.pop("tool_choice", None)  # nothing to choose from

        if params.temperature is not None:
            body["temperature"] = _clamp("temperature", params.temperature, 0.0, 1.0, say)
        if params.top_p is not None:
            body["p"] = _clamp("top_p", params.top_p, 0.01, 0.99, say)
        extra = params.extra
        if extra.get("top_k") is not None:
            body["k"] = int(_clamp("top_k", extra["top_k"], 0, 500, say))
        max_tokens = params.max_completion_tokens or params.max_tokens
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if params.stop is not None:
            stops = [params.stop] if isinstance(params.stop, str) else list(params.stop)
            if len(stops) > MAX_STOP_SEQUENCES:
                say(f"cohere: at most {MAX_STOP_SEQUENCES} stop sequences; the rest were "
                    "not sent")
                stops = stops[:MAX_STOP_SEQUENCES]
            body["stop_sequences"] = stops
        if params.seed is not None:
            body["seed"] = params.seed
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(params, name)
            if value is not None:
                body[name] = _clamp(name, value, 0.0, 1.0, say)
        fmt = _response_format(params.response_format, say)
        if fmt is not None:
            body["response_format"] = fmt
        if params.reasoning_effort is not None:
            if params.reasoning_effort == "none":
                body["thinking"] = {"type": "disabled"}
            else:
                say(f"cohere: reasoning_effort {params.reasoning_effort!r} has no Cohere "
                    "level; thinking was enabled without a token budget")
                body["thinking"] = {"type": "enabled"}
        body.update({k: v for k, v in extra.items() if k in COHERE_EXTRAS and k != "top_k"})
        body["stream"] = bool(params.stream)
        return body

    @staticmethod
    def _convert_completion_response(data: Any, *, model: str = "",
                                     provider: str | None = None) -> ChatCompletion:
        """A whole v2 chat reply -> :class:`ChatCompletion`.

        Raises :class:`ProviderError` / :class:`APITimeoutError` for ``finish_reason``
        ``ERROR`` / ``TIMEOUT``, and :class:`AnyLLMError` for a body that is not a reply.
        """
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            if isinstance(data, dict) and data.get("message"):
                raise error_from_response(500, data, provider=provider)
            raise AnyLLMError("Malformed response: not a Cohere chat reply", provider=provider)
        message = data["message"]
        texts: list[str] = []
        thoughts: list[str] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                texts.append(str(block.get("text") or ""))
            elif block.get("type") == "thinking":
                thoughts.append(str(block.get("thinking") or ""))
        if message.get("tool_plan"):
            thoughts.append(str(message["tool_plan"]))
        calls = [
            ChatCompletionMessageToolCall(
                id=str(tc.get("id") or f"call_{i}"),
                function=Function(name=str((tc.get("function") or {}).get("name") or ""),
                                  arguments=_arguments((tc.get("function") or {})
                                                       .get("arguments"))))
            for i, tc in enumerate(message.get("tool_calls") or []) if isinstance(tc, dict)
        ]
        finish = _finish_reason(data.get("finish_reason"), None, provider, stream=False)
        choice = Choice(
            index=0,
            message=ChatCompletionMessage(
                content="".join(texts) if texts or not calls else None,
                reasoning="\n\n".join(t for t in thoughts if t) or None,
                tool_calls=calls or None),
            finish_reason=finish)
        return ChatCompletion(id=str(data.get("id") or ""), created=int(time.time()),
                              model=model, choices=[choice], usage=_usage(data.get("usage")))

    @staticmethod
    def _convert_completion_chunk_response(data: str | dict[str, Any],
                                           state: CohereStreamState) -> list[ChatCompletionChunk]:
        """One SSE ``data`` payload of the stream -> the chunks it stands for (see
        :class:`CohereStreamState`)."""
        return state.convert(data)


class CohereStreamState:
    """Converts the events of one v2 chat stream, in order, into chunks. No I/O.

    ``message-start`` -> a chunk with ``role``; ``content-delta`` -> ``content`` or
    ``reasoning`` (by the block's key, ``text`` or ``thinking``); ``tool-plan-delta`` ->
    ``reasoning``; ``tool-call-start`` -> the call's first fragment (``index``, ``id``, name);
    ``tool-call-delta`` -> an argument fragment; ``tool-call-end`` -> ``"{}"`` when the call had
    no arguments; ``message-end`` -> a chunk with ``finish_reason``, then a usage chunk
    (``choices: []``). ``content-start``/``-end``, ``citation-*`` and ``debug`` carry nothing
    OpenAI has. Cohere's ``index`` on tool-call events is mapped to a running call index.
    """

    def __init__(self, *, model: str = "", provider: str | None = None,
                 created: int | None = None) -> None:
        self.model = model
        self.provider = provider
        self.created = created if created is not None else int(time.time())
        self.id = ""
        self.calls: dict[int, int] = {}  # Cohere's index -> OpenAI tool-call index
        self.has_arguments: set[int] = set()

    def convert(self, data: str | dict[str, Any]) -> list[ChatCompletionChunk]:
        if isinstance(data, str):
            if not data.strip():
                return []
            try:
                event = json.loads(data)
            except ValueError:
                raise StreamError(f"Stream failed: malformed event (not JSON): {data[:120]}",
                                  provider=self.provider) from None
        else:
            event = data
        if not isinstance(event, dict):
            raise StreamError("Stream failed: malformed event (not an object)",
                              provider=self.provider)
        kind = event.get("type")
        delta_obj = event.get("delta") or {}
        message = delta_obj.get("message") or {} if isinstance(delta_obj, dict) else {}
        if kind is None and event.get("message"):
            raise error_from_response(500, event, provider=self.provider)
        if kind == "message-start":
            self.id = str(event.get("id") or self.id)
            return [self._chunk(ChoiceDelta(role="assistant", content=""))]
        if kind == "content-start":
            return self._content(message.get("content"))
        if kind == "content-delta":
            return self._content(message.get("content"))
        if kind == "tool-plan-delta":
            plan = message.get("tool_plan")
            return [self._chunk(ChoiceDelta(reasoning=plan))] if plan else []
        if kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            if isinstance(call, list):  # the spec's type says list; the wire sends an object
                call = call[0] if call else {}
            index = self.calls.setdefault(int(event.get("index", len(self.calls))),
                                          len(self.calls))
            fn = call.get("function") or {}
            args = fn.get("arguments") or ""
            if args:
                self.has_arguments.add(index)
            return [self._chunk(ChoiceDelta(tool_calls=[ChoiceDeltaToolCall(
                index=index, id=str(call.get("id") or f"call_{index}"), type="function",
                function=ChoiceDeltaToolCallFunction(name=fn.get("name") or "",
                                                     arguments=args))]))]
        if kind == "tool-call-delta":
            call = message.get("tool_calls") or {}
            if isinstance(call, list):
                call = call[0] if call else {}
            args = (call.get("function") or {}).get("arguments") or ""
            index = self._call_index(event)
            if not args:
                return []
            self.has_arguments.add(index)
            return [self._tool_arguments(index, args)]
        if kind == "tool-call-end":
            index = self._call_index(event)
            if index in self.has_arguments:
                return []
            self.has_arguments.add(index)
            return [self._tool_arguments(index, "{}")]
        if kind == "message-end":
            finish = _finish_reason(delta_obj.get("finish_reason"), delta_obj.get("error"),
                                    self.provider, stream=True)
            out = [self._chunk(ChoiceDelta(), finish_reason=finish)]
            usage = _usage(delta_obj.get("usage"))
            if usage is not None:
                out.append(ChatCompletionChunk(id=self.id, created=self.created,
                                               model=self.model, choices=[], usage=usage))
            return out
        return []  # content-end, citation-start/-end, debug: nothing to carry

    def _call_index(self, event: dict[str, Any]) -> int:
        cohere_index = int(event.get("index", 0))
        if cohere_index not in self.calls:
            raise StreamError(f"Stream failed: tool-call event for unknown index {cohere_index}",
                              provider=self.provider)
        return self.calls[cohere_index]

    def _content(self, block: Any) -> list[ChatCompletionChunk]:
        if not isinstance(block, dict):
            return []
        if block.get("text"):
            return [self._chunk(ChoiceDelta(content=block["text"]))]
        if block.get("thinking"):
            return [self._chunk(ChoiceDelta(reasoning=block["thinking"]))]
        return []

    def _tool_arguments(self, index: int, arguments: str) -> ChatCompletionChunk:
        return self._chunk(ChoiceDelta(tool_calls=[ChoiceDeltaToolCall(
            index=index, function=ChoiceDeltaToolCallFunction(arguments=arguments))]))

    def _chunk(self, delta: ChoiceDelta, finish_reason: FinishReason | None = None
               ) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                   choices=[ChunkChoice(index=0, delta=delta,
                                                        finish_reason=finish_reason)])


# --- helpers (pure) --------------------------------------------------------------------------


def models_url(base_url: str) -> str:
    """The v1 model listing next to a v2 base URL (absolute, so the v2 prefix is not kept)."""
    base = base_url.rstrip("/")
    if base.endswith("/v2"):
        base = base[:-3] + "/v1"
    return f"{base}/models?endpoint=chat&page_size=1000"


def _finish_reason(value: Any, error: Any, provider: str | None, *, stream: bool
                   ) -> FinishReason:
    if value in _FINISH:
        return _FINISH[str(value)]
    detail = f": {error}" if error else ""
    if value == "TIMEOUT":
        raise APITimeoutError(f"Timed out: Cohere stopped the reply (TIMEOUT){detail}",
                              provider=provider)
    if value == "ERROR":
        cls: type[AnyLLMError] = StreamError if stream else ProviderError
        raise cls(f"Cohere reported an error while generating the reply{detail}",
                  provider=provider)
    return "stop"  # an unknown future reason: the reply is complete as far as we can tell


def _usage(usage: Any) -> CompletionUsage | None:
    if not isinstance(usage, dict):
        return None
    tokens = usage.get("tokens") or usage.get("billed_units") or {}
    prompt = int(tokens.get("input_tokens") or 0)
    completion = int(tokens.get("output_tokens") or 0)
    out = CompletionUsage(prompt_tokens=prompt, completion_tokens=completion,
                          total_tokens=prompt + completion)
    if usage.get("cached_tokens") is not None:
        out.prompt_tokens_details = {"cached_tokens": int(usage["cached_tokens"])}
    return out


def _arguments(value: Any) -> str:
    """Cohere arguments -> a JSON object string (``""``/``"null"`` -> ``"{}"``)."""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if not value or (isinstance(value, str) and value.strip() == "null"):
        return "{}"
    return str(value)


def _clamp(name: str, value: float, low: float, high: float, say: Report) -> float:
    if value < low or value > high:
        clamped = min(max(value, low), high)
        say(f"cohere: {name}={value} is outside Cohere's range {low}–{high}; sent {clamped}")
        return clamped
    return value


def _response_format(fmt: dict[str, Any] | None, say: Report) -> dict[str, Any] | None:
    if not fmt:
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            say("cohere: response_format json_schema without a schema; sent json_object")
            return {"type": "json_object"}
        return {"type": "json_object", "json_schema": schema}
    if kind != "text":
        say(f"cohere: response_format type {kind!r} is not supported; not sent")
    return None


def _convert_tools(tools: list[dict[str, Any]] | None, say: Report) -> list[dict[str, Any]]:
    out = []
    for tool in tools or []:
        fn = tool.get("function") if tool.get("type") == "function" else None
        if isinstance(fn, dict):
            out.append({"type": "function", "function": {
                k: v for k, v in fn.items() if k in ("name", "description", "parameters")}})
        else:
            say(f"cohere: tool of type {tool.get('type')!r} is not supported; dropped")
    return out


def _convert_messages(messages: list[dict[str, Any]], say: Report) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        role = "system" if m["role"] == "developer" else m["role"]
        content = m.get("content")
        msg: dict[str, Any] = {"role": role}
        if role == "user":
            msg["content"] = _user_content(content, say)
        else:
            text = _text_of(content, role, say)
            if text or role != "assistant":
                msg["content"] = text
        if role == "assistant" and m.get("tool_calls"):
            msg["tool_calls"] = [
                {"id": tc.get("id"), "type": "function",
                 "function": {"name": (tc.get("function") or {}).get("name", ""),
                              "arguments": _arguments((tc.get("function") or {})
                                                      .get("arguments"))}}
                for tc in m["tool_calls"]]
            plan = m.get("reasoning") or m.get("reasoning_content")
            if plan:
                msg["tool_plan"] = plan
        if role == "tool":
            msg["tool_call_id"] = m.get("tool_call_id")
        out.append(msg)
    return out


def _user_content(content: Any, say: Report) -> Any:
    """A user message's content: a string, or Cohere ``text`` / ``image_url`` blocks."""
    if content is None or isinstance(content, str):
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url", "") if isinstance(ref, dict) else str(ref or "")
            blocks.append({"type": "image_url", "image_url": {"url": url}})
        else:
            say(f"cohere: content part of type {kind!r} is not supported; dropped")
    return blocks


def _text_of(content: Any, role: str, say: Report) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            kind = part.get("type") if isinstance(part, dict) else None
            say(f"cohere: {role} content part of type {kind!r} is not supported; dropped")
    return "\n".join(texts)


def _parse_error(response: httpx.Response, body: Any, *, provider: str | None = None,
                 key_hint: str | None = None) -> AnyLLMError | None:
    """498 (Cohere's "invalid token") is an authentication failure; the rest use the default
    mapping, which reads ``{"message": ...}``."""
    if response.status_code == 498:
        return error_from_response(401, body, provider=provider, key_hint=key_hint)
    return None


BACKEND = CohereBackend
