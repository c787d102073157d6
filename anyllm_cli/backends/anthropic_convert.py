"""Pure conversions between OpenAI chat completions and the Anthropic Messages API. No I/O.

Source: Anthropic API reference, ``POST /v1/messages`` (anthropics/anthropic-sdk-python
``MessageCreateParams``, ``Message``, ``RawMessageStreamEvent``, ``StopReason``); summary and
recorded examples in shared/reference/wire-formats.md §2.

Request (:func:`convert_params`): ``system``/``developer`` messages become the top-level
``system``; ``role: tool`` messages become ``tool_result`` blocks in one user turn; assistant
``tool_calls`` become ``tool_use`` blocks; OpenAI image parts become ``image`` blocks; tools
get an ``input_schema``; ``reasoning_effort`` becomes an extended-thinking budget
(:data:`THINKING_BUDGETS`); ``response_format`` json_schema becomes ``output_config.format``.

Reply (:func:`convert_message`, :class:`StreamConverter`): ``text`` blocks -> ``content``,
``thinking`` -> ``reasoning``, ``tool_use`` -> ``tool_calls``; stop reasons per wire-formats.md
§0.2. The thinking blocks themselves (with their ``signature``, which Anthropic needs to accept
them back) are kept on the message as the extra field ``thinking_blocks``: a list of the native
blocks, ``{"type": "thinking", "thinking", "signature"}`` or ``{"type": "redacted_thinking",
"data"}``. Send an assistant message carrying ``thinking_blocks`` (or ``reasoning`` plus
``reasoning_signature``) back in the next request and it is converted into ``thinking`` blocks
again, as a tool-use loop with thinking requires.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anyllm_cli.backends._content import parse_data_url
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    ContextLengthExceededError,
    InvalidParameterError,
    StreamError,
    error_from_response,
)
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
)

Report = Callable[[str], None]

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the caller gives none (Anthropic requires it; 4096 is the value of
the API reference's examples and fits every current Claude model's output limit)."""

THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 4096,
    "high": 16384,
    "xhigh": 32768,
}
"""``reasoning_effort`` -> ``thinking.budget_tokens`` (tokens). 1024 is the API's minimum budget;
``none`` sends no ``thinking``. ``max_tokens`` must exceed the budget: without a caller's
``max_tokens`` the request asks for budget + :data:`DEFAULT_MAX_TOKENS`."""

MAX_TEMPERATURE = 1.0
"""Anthropic's temperature range is 0–1 (OpenAI's is 0–2); larger values are clamped."""

THINKING_MIN_TOP_P = 0.95
"""With extended thinking, Anthropic accepts ``top_p`` only between 0.95 and 1 and no
temperature other than 1 (extended-thinking guide, "Feature compatibility")."""

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic ``stop_reason`` -> OpenAI ``finish_reason`` (wire-formats.md §0.2); unknown -> stop."""

ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Anthropic ``error.type`` -> HTTP status (API reference, "Errors"); for errors inside a stream."""

NATIVE_EXTRAS = frozenset({"top_k", "thinking", "metadata", "service_tier", "output_config"})
"""Anthropic request fields accepted as extras (``-o top_k=40``) and sent as they are.
A ``thinking`` extra replaces the one derived from ``reasoning_effort``; an ``output_config``
extra (e.g. ``{"effort": "low"}``) is merged with the one made from ``response_format``."""

JSON_OBJECT_INSTRUCTION = "Respond with a single JSON object and nothing else."

_CONTEXT_HINTS = ("prompt is too long", "context window", "context length")


def _warn(message: str) -> None:
    warnings.warn(message, AnyLLMWarning, stacklevel=3)


# --- request ---------------------------------------------------------------------------------


def convert_params(params: CompletionParams, report: Report | None = None) -> dict[str, Any]:
    """CompletionParams -> the JSON body of ``POST /v1/messages`` (without ``stream``).

    ``report(message)`` is called for every value clamped or translated approximately and every
    content part dropped (default: an :class:`AnyLLMWarning`). Raises
    :class:`InvalidParameterError` for a message Anthropic cannot represent at all (e.g. tool-call
    arguments that are not a JSON object).
    """
    rep: Report = report or _warn
    system, messages = convert_messages(params.messages, rep)
    body: dict[str, Any] = {"model": params.model}

    extra = {k: v for k, v in params.extra.items() if k in NATIVE_EXTRAS}
    thinking: dict[str, Any] | None = extra.pop("thinking", None)
    budget: int | None = None
    if thinking is None and params.reasoning_effort is not None:
        effort = params.reasoning_effort
        if effort in THINKING_BUDGETS:
            thinking = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
        elif effort != "none":
            rep(f"Anthropic has no reasoning_effort {effort!r} (known: none, "
                f"{', '.join(THINKING_BUDGETS)}); no thinking was requested")
    tool_choice = convert_tool_choice(params, rep)
    if thinking is not None and tool_choice is not None and tool_choice["type"] in ("any", "tool"):
        # Anthropic refuses thinking with forced tool use; the forced call is the stronger ask.
        rep("Anthropic cannot think while tool_choice forces a tool call; thinking was not "
            "requested")
        thinking = None
    if thinking is not None and thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens") or 0)

    requested = params.max_completion_tokens if params.max_completion_tokens is not None \
        else params.max_tokens
    max_tokens = requested if requested is not None else DEFAULT_MAX_TOKENS
    if budget:
        if requested is None:
            max_tokens = budget + DEFAULT_MAX_TOKENS
        elif requested <= budget:
            max_tokens = budget + requested
            rep(f"Anthropic needs max_tokens above the thinking budget ({budget} tokens): "
                f"max_tokens {requested} becomes {max_tokens}")
    body["max_tokens"] = max_tokens

    if system:
        body["system"] = system
    body["messages"] = messages
    if params.stop is not None:
        body["stop_sequences"] = [params.stop] if isinstance(params.stop, str) else \
            list(params.stop)

    temperature, top_p = params.temperature, params.top_p
    if temperature is not None and temperature > MAX_TEMPERATURE:
        rep(f"Anthropic's temperature range is 0-1: temperature {temperature:g} becomes "
            f"{MAX_TEMPERATURE:g}")
        temperature = MAX_TEMPERATURE
    if thinking is not None:
        if temperature is not None and temperature != 1:
            rep(f"Anthropic takes no temperature with thinking: temperature {temperature:g} "
                "was not sent")
            temperature = None
        if top_p is not None and top_p < THINKING_MIN_TOP_P:
            rep(f"Anthropic takes top_p from {THINKING_MIN_TOP_P} to 1 with thinking: top_p "
                f"{top_p:g} becomes {THINKING_MIN_TOP_P}")
            top_p = THINKING_MIN_TOP_P
    if temperature is not None and top_p is not None:
        # Current models answer 400 "`temperature` and `top_p` cannot both be specified".
        rep(f"Anthropic takes temperature or top_p, not both: top_p {top_p:g} was not sent")
        top_p = None
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p

    tools = convert_tools(params.tools, rep) if params.tools else None
    if tools:
        body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    elif tool_choice is not None and tool_choice["type"] != "none":
        rep("tool_choice was given without tools; it was not sent")
    if thinking is not None:
        body["thinking"] = thinking

    fmt = params.response_format
    if fmt:
        kind = fmt.get("type")
        if kind == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            if isinstance(schema, dict):
                extra["output_config"] = {**(extra.get("output_config") or {}),
                                          "format": {"type": "json_schema", "schema": schema}}
            else:
                rep("response_format json_schema has no schema; it was not sent")
        elif kind == "json_object":
            # Anthropic has no schema-less JSON mode: ask for it in the system prompt.
            rep("Anthropic has no JSON mode without a schema: response_format json_object "
                "was sent as a system instruction")
            body["system"] = _append_system(body.get("system"), JSON_OBJECT_INSTRUCTION)
        elif kind != "text":
            rep(f"Anthropic has no response_format {kind!r}; it was not sent")

    if params.user is not None:
        body["metadata"] = {"user_id": params.user}
    if params.n is not None and params.n > 1:
        rep(f"Anthropic returns one choice per request: n={params.n} becomes 1")
    if params.logprobs:
        rep("Anthropic returns no log probabilities: logprobs was not sent")
    body.update(extra)
    return body


def _append_system(system: str | list[dict[str, Any]] | None,
                   text: str) -> str | list[dict[str, Any]]:
    if not system:
        return text
    if isinstance(system, str):
        return f"{system}\n\n{text}"
    return [*system, {"type": "text", "text": text}]


def convert_messages(messages: list[dict[str, Any]], report: Report
                     ) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """OpenAI messages -> (Anthropic ``system``, Anthropic ``messages``).

    ``system``/``developer`` messages (anywhere) are joined into ``system``: a string for one
    plain-text message, else a list of text blocks. Consecutive ``tool`` messages become one user
    message of ``tool_result`` blocks.
    """
    system_parts: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    tool_turn: list[dict[str, Any]] | None = None  # the open user turn of tool results
    for message in messages:
        role = message.get("role")
        if message.get("name") and role in ("user", "assistant", "system", "developer"):
            report(f"Anthropic has no message names: name {message['name']!r} was not sent")
        if role in ("system", "developer"):
            system_parts.extend(_text_blocks(message.get("content"), report, role))
            continue
        if role == "tool":
            result = _tool_result(message, report)
            if tool_turn is None:
                tool_turn = [result]
                out.append({"role": "user", "content": tool_turn})
            else:
                tool_turn.append(result)
            continue
        tool_turn = None
        if role == "user":
            out.append({"role": "user", "content": _user_content(message.get("content"), report)})
        elif role == "assistant":
            content = _assistant_content(message, report)
            if content:
                out.append({"role": "assistant", "content": content})
    system: str | list[dict[str, Any]] | None = None
    if len(system_parts) == 1 and set(system_parts[0]) == {"type", "text"}:
        system = system_parts[0]["text"]
    elif system_parts:
        system = system_parts
    return system, out


def _text_blocks(content: Any, report: Report, role: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            blocks.append(_text_block(part))
        else:
            report(f"Anthropic takes only text in a {role} message: a "
                   f"{_part_type(part)!r} part was not sent")
    return blocks


def _text_block(part: dict[str, Any]) -> dict[str, Any]:
    block = {"type": "text", "text": part.get("text", "")}
    if "cache_control" in part:  # Anthropic prompt caching, passed through
        block["cache_control"] = part["cache_control"]
    return block


def _part_type(part: Any) -> str:
    return str(part.get("type")) if isinstance(part, dict) else type(part).__name__


def _user_content(content: Any, report: Report) -> str | list[dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = _part_type(part)
        if kind == "text":
            blocks.append(_text_block(part))
        elif kind == "image_url":
            image = _image_block(part.get("image_url"), report)
            if image is not None:
                blocks.append(image)
        elif kind == "file":
            document = _document_block(part.get("file") or {}, report)
            if document is not None:
                blocks.append(document)
        elif kind in ("image", "document") and isinstance(part.get("source"), dict):
            blocks.append(part)  # already a native Anthropic block
        else:
            report(f"Anthropic cannot take a {kind!r} content part; it was not sent")
    return blocks


def _image_block(image: Any, report: Report) -> dict[str, Any] | None:
    """OpenAI ``image_url`` -> an ``image`` block: data URLs as a base64 source, others as a
    URL source."""
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        report("an image_url part without a URL was not sent")
        return None
    detail = image.get("detail") if isinstance(image, dict) else None
    if detail in ("low", "high"):
        report(f"Anthropic has no image detail setting: detail {detail!r} was not sent")
    if url.startswith("data:"):
        parsed = parse_data_url(url)
        if parsed is None:
            report("an image data URL that is not base64 was not sent")
            return None
        media_type, data = parsed
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _document_block(file: dict[str, Any], report: Report) -> dict[str, Any] | None:
    """OpenAI ``file`` part with inline PDF data -> a ``document`` block."""
    parsed = parse_data_url(str(file.get("file_data") or ""))
    if parsed is None or parsed[0] != "application/pdf":
        report("Anthropic takes files only as inline PDF data (file_data data URL); a file "
               "part was not sent")
        return None
    block: dict[str, Any] = {"type": "document", "source": {
        "type": "base64", "media_type": parsed[0], "data": parsed[1]}}
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _assistant_content(message: dict[str, Any], report: Report) -> str | list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    thinking = message.get("thinking_blocks")
    if isinstance(thinking, list):
        blocks.extend(b for b in thinking if isinstance(b, dict))
    elif message.get("reasoning") and message.get("reasoning_signature"):
        blocks.append({"type": "thinking", "thinking": message["reasoning"],
                       "signature": message["reasoning_signature"]})
    # Reasoning without a signature (e.g. from another provider) cannot be verified by
    # Anthropic, and earlier turns' thinking is not used by the model anyway: it is not sent.
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:
            kind = _part_type(part)
            if kind == "text":
                blocks.append(_text_block(part))
            elif kind == "refusal":
                blocks.append({"type": "text", "text": part.get("refusal", "")})
            else:
                report(f"Anthropic cannot take a {kind!r} part in an assistant message; "
                       "it was not sent")
    for call in message.get("tool_calls") or ():
        blocks.append(_tool_use_block(call))
    if len(blocks) == 1 and blocks[0]["type"] == "text" and set(blocks[0]) == {"type", "text"}:
        text: str = blocks[0]["text"]
        return text
    return blocks


def _tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidParameterError(
            f"tool call {call.get('id')!r}: arguments must be a JSON object for Anthropic, "
            f"got {str(raw)[:80]!r}")
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
            "input": arguments}


def _tool_result(message: dict[str, Any], report: Report) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, list):
        block["content"] = _user_content(content, report)
    else:
        block["content"] = "" if content is None else str(content)
    return block


def convert_tools(tools: list[dict[str, Any]], report: Report) -> list[dict[str, Any]]:
    """OpenAI function tools -> Anthropic tools (``input_schema``). Tools already in Anthropic's
    shape (with a top-level ``name``, e.g. ``{"type": "web_search_20250305", "name":
    "web_search"}``) are sent as they are."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
            fn = tool["function"]
            entry: dict[str, Any] = {"name": fn.get("name")}
            if fn.get("description") is not None:
                entry["description"] = fn["description"]
            entry["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
            if fn.get("strict") is not None:
                entry["strict"] = fn["strict"]
            out.append(entry)
        elif "name" in tool:
            out.append(tool)
        else:
            report(f"Anthropic cannot take a {tool.get('type')!r} tool; it was not sent")
    return out


def convert_tool_choice(params: CompletionParams, report: Report) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` + ``parallel_tool_calls`` -> Anthropic ``tool_choice``:
    auto -> auto, required -> any, a named function -> tool, none -> none;
    ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use: true``."""
    choice = params.tool_choice
    out: dict[str, Any] | None = None
    if choice in ("auto", "required", "none"):
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[str(choice)]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif isinstance(choice, dict) and choice.get("type") in ("auto", "any", "tool", "none"):
        out = dict(choice)  # already Anthropic's shape
    elif choice is not None:
        report(f"Anthropic cannot take tool_choice {choice!r}; it was not sent")
    if params.parallel_tool_calls is False and params.tools:
        if out is None:
            out = {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


# --- replies ---------------------------------------------------------------------------------


def convert_usage(usage: dict[str, Any] | None) -> CompletionUsage | None:
    """Anthropic usage -> OpenAI usage. ``prompt_tokens`` counts every input token, cached or
    not (input + cache_creation_input + cache_read_input), as OpenAI's does;
    ``prompt_tokens_details.cached_tokens`` is ``cache_read_input_tokens`` and
    ``completion_tokens_details.reasoning_tokens`` is ``output_tokens_details.thinking_tokens``."""
    if not usage:
        return None
    cached = usage.get("cache_read_input_tokens")
    prompt = int(usage.get("input_tokens") or 0) + int(cached or 0) + \
        int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    out = CompletionUsage(prompt_tokens=prompt, completion_tokens=completion,
                          total_tokens=prompt + completion)
    if cached is not None:
        out.prompt_tokens_details = {"cached_tokens": int(cached)}
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if thinking is not None:
        out.completion_tokens_details = {"reasoning_tokens": int(thinking)}
    return out


def finish_reason(stop_reason: str | None) -> FinishReason | None:
    """Anthropic ``stop_reason`` -> OpenAI ``finish_reason`` (None while unknown)."""
    if stop_reason is None:
        return None
    return STOP_REASONS.get(stop_reason, "stop")


def _refusal_text(stop_reason: str | None, stop_details: Any) -> str | None:
    if stop_reason == "refusal" and isinstance(stop_details, dict):
        explanation = stop_details.get("explanation")
        if isinstance(explanation, str) and explanation:
            return explanation
    return None


def error_from_body(status: int | None, body: Any, *, provider: str | None,
                    key_hint: str | None = None, retry_after: float | None = None
                    ) -> AnyLLMError:
    """An Anthropic error body ``{"type": "error", "error": {"type", "message"}}`` -> the
    matching :class:`AnyLLMError`. ``status`` None (an error inside a 200 stream) is derived from
    ``error.type`` (:data:`ERROR_STATUS`, e.g. ``overloaded_error`` -> 529 ProviderError)."""
    err = body.get("error") if isinstance(body, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    if status is None:
        status = ERROR_STATUS.get(str(kind), 500)
    error = error_from_response(status, body, provider=provider, retry_after=retry_after,
                                key_hint=key_hint)
    message = (err.get("message") if isinstance(err, dict) else None) or ""
    if status == 400 and any(h in str(message).lower() for h in _CONTEXT_HINTS) and \
            not isinstance(error, ContextLengthExceededError):
        # "prompt is too long: 210000 tokens > 200000 maximum"
        return ContextLengthExceededError(provider=provider, status_code=status,
                                          provider_message=str(message), body=body)
    return error


def convert_message(data: Any, *, provider: str | None = None,
                    created: int | None = None) -> ChatCompletion:
    """An Anthropic ``Message`` -> :class:`ChatCompletion` (one choice). ``created`` defaults to
    now (Anthropic sends no timestamp). Server-tool blocks (``server_tool_use``,
    ``web_search_tool_result``, ...) ran at Anthropic and are not tool calls for the caller: only
    their text answer is kept.

    Raises the mapped :class:`AnyLLMError` for an error body, :class:`AnyLLMError` for a body
    that is not a message.
    """
    if isinstance(data, dict) and data.get("type") == "error":
        raise error_from_body(None, data, provider=provider)
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise AnyLLMError("Malformed response: not an Anthropic message", provider=provider,
                          provider_message=str(data)[:200])
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[ChatCompletionMessageToolCall] = []
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            thinking_blocks.append({"type": "thinking", "thinking": block.get("thinking", ""),
                                    "signature": block.get("signature", "")})
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data", "")})
        elif kind == "tool_use":
            tool_calls.append(ChatCompletionMessageToolCall(
                id=block.get("id", ""),
                function=Function(name=block.get("name", ""),
                                  arguments=json.dumps(block.get("input") or {},
                                                       ensure_ascii=False))))
    stop_reason = data.get("stop_reason")
    refusal = _refusal_text(stop_reason, data.get("stop_details"))
    extra: dict[str, Any] = {"thinking_blocks": thinking_blocks} if thinking_blocks else {}
    message = ChatCompletionMessage(
        content="".join(texts) if texts or not (tool_calls or refusal) else None,
        refusal=refusal,
        reasoning="".join(reasoning) or None,
        tool_calls=tool_calls or None,
        **extra,
    )
    return ChatCompletion(
        id=str(data.get("id", "")),
        created=int(time.time()) if created is None else created,
        model=str(data.get("model", "")),
        choices=[Choice(index=0, message=message, finish_reason=finish_reason(stop_reason)
                        or "stop")],
        usage=convert_usage(data.get("usage")),
    )


@dataclass
class _Block:
    """What the stream converter remembers about one open content block."""

    kind: str  # text | thinking | redacted_thinking | tool_use | ignored
    tool_index: int = -1
    args_sent: bool = False
    thinking: list[str] = field(default_factory=list)
    signature: str = ""
    data: str = ""


class StreamConverter:
    """Turns Anthropic stream events into :class:`ChatCompletionChunk` objects. No I/O.

    One instance per stream: ``convert(data)`` for each SSE ``data`` payload (the event name is
    the payload's ``type``), then ``close()`` at the end of the body. Emits, in order: a first
    chunk with ``role: assistant``; ``content`` / ``reasoning`` fragments; tool calls with their
    OpenAI ``index`` (0, 1, ... in order of appearance), ``id``, ``type`` and ``name`` on the
    first fragment and argument fragments after (``"{}"`` for a call that streamed none);
    ``thinking_blocks`` (one native block, with its signature) when a thinking block ends; the
    ``finish_reason`` at ``message_delta``; a usage chunk (``choices: []``) at ``message_stop``.

    Raises the mapped :class:`AnyLLMError` for an ``error`` event (``overloaded_error`` ->
    :class:`ProviderError` 529, ...) and :class:`StreamError` for a payload that is not JSON.
    """

    def __init__(self, *, provider: str | None = None, created: int | None = None) -> None:
        self.provider = provider
        self.id = ""
        self.model = ""
        self.created = int(time.time()) if created is None else created
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, _Block] = {}
        self.tool_count = 0
        self.started = False
        self.finished = False
        self.usage_sent = False
        self.done = False
        """True after ``message_stop``: nothing more will come."""

    def _chunk(self, delta: ChoiceDelta | None = None, finish: FinishReason | None = None
               ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model,
            choices=[ChunkChoice(index=0, delta=delta or ChoiceDelta(), finish_reason=finish)])

    def _usage_chunk(self) -> list[ChatCompletionChunk]:
        usage = convert_usage(self.usage)
        if usage is None or self.usage_sent:
            return []
        self.usage_sent = True
        return [ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                    choices=[], usage=usage)]

    def convert(self, data: str | bytes | dict[str, Any]) -> list[ChatCompletionChunk]:
        """One event payload -> the chunks it makes (often none: ``ping``, block starts)."""
        if isinstance(data, dict):
            event: Any = data
        else:
            if not data.strip():
                return []
            try:
                event = json.loads(data)
            except ValueError:
                text = data if isinstance(data, str) else data.decode("utf-8", "replace")
                raise StreamError(f"Stream failed: malformed event (not JSON): {text[:120]}",
                                  provider=self.provider) from None
        if not isinstance(event, dict):
            return []
        kind = event.get("type")
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            return []  # ping, and event types newer than this converter
        chunks: list[ChatCompletionChunk] = handler(event)
        return chunks

    def close(self) -> list[ChatCompletionChunk]:
        """End of body: the usage chunk if ``message_stop`` never came after a finish."""
        return self._usage_chunk() if self.finished else []

    # --- event handlers ----------------------------------------------------------------------

    def _on_error(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        raise error_from_body(None, event, provider=self.provider)

    def _on_message_start(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        message = event.get("message") or {}
        if self.started:  # a repeated message_start (seen in vercel/ai fixtures) adds nothing
            return []
        self.started = True
        self.id = str(message.get("id") or "")
        self.model = str(message.get("model") or "")
        self.usage.update(message.get("usage") or {})
        return [self._chunk(ChoiceDelta(role="assistant", content=""))]

    def _on_content_block_start(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        block = event.get("content_block") or {}
        index = int(event.get("index", len(self.blocks)))
        kind = block.get("type")
        if kind == "text":
            self.blocks[index] = _Block("text")
            text = block.get("text")
            return [self._chunk(ChoiceDelta(content=text))] if text else []
        if kind == "thinking":
            state = _Block("thinking", signature=str(block.get("signature") or ""))
            self.blocks[index] = state
            if block.get("thinking"):
                state.thinking.append(block["thinking"])
                return [self._chunk(ChoiceDelta(reasoning=block["thinking"]))]
            return []
        if kind == "redacted_thinking":
            self.blocks[index] = _Block("redacted_thinking", data=str(block.get("data") or ""))
            return []
        if kind == "tool_use":
            state = _Block("tool_use", tool_index=self.tool_count)
            self.tool_count += 1
            self.blocks[index] = state
            arguments = ""
            if block.get("input"):
                arguments = json.dumps(block["input"], ensure_ascii=False)
                state.args_sent = True
            call = ChoiceDeltaToolCall(
                index=state.tool_index, id=block.get("id"), type="function",
                function=ChoiceDeltaToolCallFunction(name=block.get("name"),
                                                     arguments=arguments))
            return [self._chunk(ChoiceDelta(tool_calls=[call]))]
        # Server tools (run by Anthropic), compaction, fallback notices: not part of the answer.
        self.blocks[index] = _Block("ignored")
        return []

    def _on_content_block_delta(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        delta = event.get("delta") or {}
        state = self.blocks.get(int(event.get("index", -1)))
        if state is not None and state.kind == "ignored":
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [self._chunk(ChoiceDelta(content=text))] if text else []
        if kind == "thinking_delta":
            text = delta.get("thinking")
            if not text:
                return []
            if state is not None:
                state.thinking.append(text)
            return [self._chunk(ChoiceDelta(reasoning=text))]
        if kind == "signature_delta":
            if state is not None:
                state.signature += str(delta.get("signature") or "")
            return []
        if kind == "input_json_delta" and state is not None and state.kind == "tool_use":
            fragment = delta.get("partial_json")
            if not fragment:
                return []
            state.args_sent = True
            call = ChoiceDeltaToolCall(index=state.tool_index,
                                       function=ChoiceDeltaToolCallFunction(arguments=fragment))
            return [self._chunk(ChoiceDelta(tool_calls=[call]))]
        return []  # citations_delta and newer delta types

    def _on_content_block_stop(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        state = self.blocks.get(int(event.get("index", -1)))
        if state is None:
            return []
        if state.kind == "tool_use" and not state.args_sent:
            # A call without arguments streams only "": send "{}" so the arguments parse.
            state.args_sent = True
            call = ChoiceDeltaToolCall(index=state.tool_index,
                                       function=ChoiceDeltaToolCallFunction(arguments="{}"))
            return [self._chunk(ChoiceDelta(tool_calls=[call]))]
        if state.kind == "thinking":
            block = {"type": "thinking", "thinking": "".join(state.thinking),
                     "signature": state.signature}
            return [self._chunk(ChoiceDelta(thinking_blocks=[block]))]
        if state.kind == "redacted_thinking":
            block = {"type": "redacted_thinking", "data": state.data}
            return [self._chunk(ChoiceDelta(thinking_blocks=[block]))]
        return []

    def _on_message_delta(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        delta = event.get("delta") or {}
        # Usage here is cumulative (output_tokens, and input/cache counts when present).
        self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        finish = finish_reason(delta.get("stop_reason"))
        if finish is None:
            return []
        self.finished = True
        refusal = _refusal_text(delta.get("stop_reason"), delta.get("stop_details"))
        return [self._chunk(ChoiceDelta(refusal=refusal), finish)]

    def _on_message_stop(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        self.done = True
        return self._usage_chunk()
