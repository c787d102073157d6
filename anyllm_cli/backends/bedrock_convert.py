"""Pure conversions between OpenAI chat-completions and AWS Bedrock Converse / ConverseStream.

Source: Bedrock Runtime service model (boto/botocore
``botocore/data/bedrock-runtime/2023-09-30/service-2.json``: ``ConverseRequest``,
``ConverseResponse``, ``ConverseStreamOutput``, ``StopReason``, ``TokenUsage``) and
shared/reference/wire-formats.md §7. No I/O here: the backend (``bedrock.py``) sends and reads.

Reasoning round trip: Bedrock's ``reasoningContent`` carries a ``signature`` (or opaque
``redactedContent``) that Claude needs back in later turns. OpenAI's shape has no field for it, so
it travels as ``reasoning_details`` (OpenRouter's convention): a list of
``{"type": "reasoning.text", "text", "signature"}`` / ``{"type": "reasoning.encrypted", "data"}``
on the message (and on stream deltas).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from anyllm_cli.backends._content import parse_data_url
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    AuthenticationError,
    ContextLengthExceededError,
    InvalidParameterError,
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

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    # malformed_model_output / malformed_tool_use have no OpenAI equivalent: "stop" (§0.2).
}

EXCEPTION_STATUS: dict[str, int] = {
    # httpStatusCode of each ConverseStreamOutput exception member in the service model.
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}

THINKING_BUDGET: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
"""reasoning_effort -> Claude ``thinking.budget_tokens`` (Anthropic's minimum is 1024)."""
ANSWER_TOKENS = 4096
"""Room left for the answer above the thinking budget when no max_tokens was given."""

NATIVE_EXTRAS = frozenset({
    "additionalModelRequestFields", "additionalModelResponseFieldPaths", "guardrailConfig",
    "performanceConfig", "serviceTier", "requestMetadata", "promptVariables",
})
"""ConverseRequest members accepted as extras (``-o serviceTier='{"type":"priority"}'``), sent
as given; ``additionalModelRequestFields`` is merged with what the conversion puts there."""
MODEL_EXTRAS = frozenset({"top_k"})
"""Extras sent inside ``additionalModelRequestFields`` (Claude, Mistral, Cohere take ``top_k``)."""

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                 "image/gif": "gif", "image/webp": "webp"}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}
_AUTH_HINTS = ("unrecognizedclient", "invalidsignature", "expiredtoken", "security token",
               "signature", "api key", "authentication", "invalidclienttokenid")
_CONTEXT_HINTS = ("too long", "too many input tokens", "context window", "context length",
                  "maximum context", "input length")


def _warn(message: str) -> None:
    warnings.warn(message, AnyLLMWarning, stacklevel=3)


# --- request -----------------------------------------------------------------------------------


def convert_params(params: CompletionParams, report: Report | None = None) -> dict[str, Any]:
    """CompletionParams -> the JSON body of ``POST /model/{modelId}/converse[-stream]``.

    The model id goes in the path, not the body. ``report(message)`` is called for every value
    clamped or content part dropped (default: an :class:`AnyLLMWarning`). Raises
    :class:`InvalidParameterError` for messages that cannot be converted at all (a tool
    message without ``tool_call_id``).
    """
    say: Report = report or _warn
    messages, system = convert_messages(params.messages, say)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system

    inference: dict[str, Any] = {}
    max_tokens = params.max_completion_tokens or params.max_tokens
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if params.temperature is not None:
        temperature = params.temperature
        if temperature > 1:
            say(f"Bedrock takes temperature 0..1; {temperature:g} was sent as 1")
            temperature = 1.0
        inference["temperature"] = temperature
    if params.top_p is not None:
        inference["topP"] = params.top_p
    if params.stop is not None:
        stops = [params.stop] if isinstance(params.stop, str) else list(params.stop)
        if stops:
            inference["stopSequences"] = stops

    model_fields: dict[str, Any] = {}
    if params.reasoning_effort and params.reasoning_effort != "none":
        _reasoning(params.model, params.reasoning_effort, inference, model_fields, say)

    tool_config = _tool_config(params, messages, say)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    if params.parallel_tool_calls is False:
        say("Bedrock Converse cannot turn off parallel tool calls; parallel_tool_calls=false "
            "was not sent")

    output = _output_config(params.response_format, say)
    if output is not None:
        body["outputConfig"] = output

    for name, value in params.extra.items():
        if name in MODEL_EXTRAS:
            model_fields[name] = value
        elif name == "additionalModelRequestFields" and isinstance(value, dict):
            model_fields.update(value)
        elif name in NATIVE_EXTRAS:
            body[name] = value
    if inference:
        body["inferenceConfig"] = inference
    if model_fields:
        body["additionalModelRequestFields"] = model_fields
    return body


def _reasoning(model: str, effort: str, inference: dict[str, Any],
               model_fields: dict[str, Any], say: Report) -> None:
    """reasoning_effort -> the model family's native switch, in additionalModelRequestFields."""
    low = model.lower()
    if "anthropic.claude" in low:
        budget = THINKING_BUDGET.get(effort, THINKING_BUDGET["high"])
        if effort not in THINKING_BUDGET:
            say(f"reasoning_effort {effort!r} was sent as a thinking budget of {budget} tokens")
        max_tokens = inference.get("maxTokens")
        if max_tokens is None:
            inference["maxTokens"] = budget + ANSWER_TOKENS
        elif max_tokens <= budget:
            # Claude requires budget_tokens < max_tokens and budget_tokens >= 1024.
            if max_tokens <= 1024:
                say(f"max_tokens {max_tokens} leaves no room for Claude's thinking (minimum "
                    f"1024 tokens); reasoning_effort was not sent")
                return
            say(f"thinking budget for reasoning_effort {effort!r} clamped to {max_tokens - 1} "
                f"tokens to stay below max_tokens")
            budget = max_tokens - 1
        model_fields["thinking"] = {"type": "enabled", "budget_tokens": budget}
        # Extended thinking refuses temperature other than 1 and top_p below 0.95.
        temperature = inference.get("temperature")
        if temperature is not None and temperature != 1:
            say("Claude takes no temperature with thinking enabled; temperature was not sent")
            del inference["temperature"]
        top_p = inference.get("topP")
        if top_p is not None and top_p < 0.95:
            say("Claude takes top_p >= 0.95 with thinking enabled; top_p was not sent")
            del inference["topP"]
    elif "openai.gpt-oss" in low:
        model_fields["reasoning_effort"] = "low" if effort == "minimal" else effort
    else:
        say(f"Bedrock has no known reasoning switch for {model}; reasoning_effort was not sent")


def _tool_config(params: CompletionParams, messages: list[dict[str, Any]], say: Report
                 ) -> dict[str, Any] | None:
    tools: list[dict[str, Any]] = []
    for tool in params.tools or ():
        fn = tool.get("function") if tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not fn.get("name"):
            say(f"Bedrock Converse takes function tools only; a {tool.get('type')!r} tool was "
                f"not sent")
            continue
        spec: dict[str, Any] = {
            "name": fn["name"],
            "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}},
        }
        if fn.get("description"):
            spec["description"] = fn["description"]
        if fn.get("strict"):
            spec["strict"] = True
        tools.append({"toolSpec": spec})
    if not tools:
        return None
    choice = params.tool_choice
    config: dict[str, Any] = {"tools": tools}
    if choice is None or choice == "auto":
        return config
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "none":
        used = any("toolUse" in block or "toolResult" in block
                   for m in messages for block in m["content"])
        if used:
            # Bedrock refuses toolUse/toolResult history without a toolConfig.
            say("Bedrock Converse has no tool_choice 'none'; it was sent as 'auto' because the "
                "history holds tool calls")
            return config
        say("Bedrock Converse has no tool_choice 'none'; the tools were not sent")
        return None
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name", "")}}
    else:
        say(f"Bedrock Converse cannot express tool_choice {choice!r}; it was sent as 'auto'")
    return config


def _output_config(response_format: dict[str, Any] | None, say: Report
                   ) -> dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        definition: dict[str, Any] = {"schema": json.dumps(schema, separators=(",", ":"))}
        if spec.get("name"):
            definition["name"] = spec["name"]
        if spec.get("description"):
            definition["description"] = spec["description"]
        return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}
    if kind == "json_object":
        say("Bedrock Converse has JSON output only with a schema; response_format json_object "
            "was not sent (give a json_schema)")
    elif kind != "text":
        say(f"Bedrock Converse cannot take response_format {kind!r}; it was not sent")
    return None


def convert_messages(messages: list[dict[str, Any]], say: Report
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (Converse ``messages``, ``system`` blocks).

    System and developer messages become ``system`` text blocks; tool messages become
    ``toolResult`` blocks in a user turn; consecutive turns of one role are merged (Converse
    requires user and assistant to alternate).
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            text = _plain_text(message.get("content"), say, "system message")
            if text:
                system.append({"text": text})
            continue
        if role == "tool":
            blocks = [_tool_result(message, say)]
            role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(message, say)
        else:
            blocks = _user_blocks(message.get("content"), say)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns, system


def _plain_text(content: Any, say: Report, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
            texts.append(str(part.get("text", "")))
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            say(f"Bedrock takes text only in a {where}; a {kind!r} part was dropped")
    return "\n".join(texts)


def _user_blocks(content: Any, say: Report) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        block = _part_block(part, say)
        if block is not None:
            blocks.append(block)
    return blocks


def _part_block(part: Any, say: Report) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("text", "input_text", "refusal"):
        text = part.get("text") if kind != "refusal" else part.get("refusal")
        return {"text": str(text)} if text else None
    if kind == "image_url":
        spec = part.get("image_url")
        url = spec.get("url", "") if isinstance(spec, dict) else str(spec or "")
        parsed = parse_data_url(url)
        fmt = IMAGE_FORMATS.get(parsed[0]) if parsed else None
        if parsed is None or fmt is None:
            say("Bedrock takes images as inline data (data:image/png|jpeg|gif|webp;base64,...); "
                f"an image {_short(url)} was dropped")
            return None
        return {"image": {"format": fmt, "source": {"bytes": parsed[1]}}}
    if kind == "file":
        spec = part.get("file") or {}
        parsed = parse_data_url(str(spec.get("file_data", "")))
        fmt = DOCUMENT_FORMATS.get(parsed[0]) if parsed else None
        if parsed is None or fmt is None:
            say("Bedrock takes documents as inline data (pdf, csv, doc(x), xls(x), html, txt, "
                "md); a file part was dropped")
            return None
        # Document names: alphanumerics, whitespace, hyphens, parentheses and brackets.
        name = re.sub(r"[^\w\s\-()\[\]]", "-", str(spec.get("filename") or "document"))
        return {"document": {"format": fmt, "name": name[:200], "source": {"bytes": parsed[1]}}}
    say(f"Bedrock Converse cannot take a {kind!r} content part; it was dropped")
    return None


def _short(url: str) -> str:
    return repr(url[:40] + "…") if len(url) > 40 else repr(url)


def _assistant_blocks(message: dict[str, Any], say: Report) -> list[dict[str, Any]]:
    blocks = _reasoning_blocks(message, say)
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"text": content})
    elif content:
        blocks.extend(b for b in (_part_block(p, say) for p in content) if b is not None)
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw)
        except ValueError:
            args = None
        if not isinstance(args, dict):
            say(f"tool call {fn.get('name')!r} has arguments that are not a JSON object; "
                f"they were sent as {{}}")
            args = {}
        blocks.append({"toolUse": {"toolUseId": call.get("id", ""), "name": fn.get("name", ""),
                                   "input": args}})
    return blocks


def _reasoning_blocks(message: dict[str, Any], say: Report) -> list[dict[str, Any]]:
    details = message.get("reasoning_details")
    blocks: list[dict[str, Any]] = []
    if isinstance(details, list) and details:
        for item in details:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "reasoning.encrypted" and item.get("data"):
                blocks.append({"reasoningContent": {"redactedContent": item["data"]}})
            elif item.get("type") == "reasoning.text":
                text_block: dict[str, Any] = {"text": item.get("text") or ""}
                if item.get("signature"):
                    text_block["signature"] = item["signature"]
                blocks.append({"reasoningContent": {"reasoningText": text_block}})
        return blocks
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if reasoning:
        # Claude rejects thinking blocks sent back without their signature.
        say("an assistant message's reasoning has no signature (reasoning_details) and was not "
            "sent back to Bedrock")
    return blocks


def _tool_result(message: dict[str, Any], say: Report) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise InvalidParameterError("a tool message needs a tool_call_id")
    content = message.get("content")
    blocks: list[dict[str, Any]]
    if isinstance(content, list):
        blocks = [b for b in (_part_block(p, say) for p in content) if b is not None]
    else:
        blocks = [{"text": "" if content is None else str(content)}]
    return {"toolResult": {"toolUseId": call_id, "content": blocks or [{"text": ""}]}}


# --- response ----------------------------------------------------------------------------------


def finish_reason(stop_reason: str | None) -> FinishReason:
    """Bedrock ``stopReason`` -> OpenAI finish_reason (wire-formats.md §0.2)."""
    return STOP_REASONS.get(stop_reason or "", "stop")


def convert_usage(usage: Mapping[str, Any]) -> CompletionUsage:
    """Bedrock ``TokenUsage`` -> CompletionUsage. Cache reads and writes count as prompt tokens
    (as OpenAI's prompt_tokens includes cached ones); reads also go to ``cached_tokens``."""
    read = int(usage.get("cacheReadInputTokens") or 0)
    written = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + read + written
    completion = int(usage.get("outputTokens") or 0)
    total = usage.get("totalTokens")
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion,
        total_tokens=int(total) if isinstance(total, int) else prompt + completion,
        prompt_tokens_details={"cached_tokens": read} if "cacheReadInputTokens" in usage else None,
    )


def convert_response(data: Any, *, model: str, id: str, created: int,
                     provider: str | None = None) -> ChatCompletion:
    """A ``ConverseResponse`` JSON object -> ChatCompletion (one choice).

    Raises :class:`AnyLLMError` when the body is not a Converse response.
    """
    if not isinstance(data, dict) or not isinstance(data.get("output"), dict):
        raise AnyLLMError("Malformed response: not a Bedrock Converse response",
                          provider=provider)
    message = data["output"].get("message") or {}
    texts: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[ChatCompletionMessageToolCall] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append(ChatCompletionMessageToolCall(
                id=use.get("toolUseId", ""),
                function=Function(name=use.get("name", ""),
                                  arguments=json.dumps(use.get("input") or {},
                                                       ensure_ascii=False))))
        elif isinstance(block.get("reasoningContent"), dict):
            rc = block["reasoningContent"]
            rt = rc.get("reasoningText")
            if isinstance(rt, dict):
                reasoning.append(rt.get("text") or "")
                detail = {"type": "reasoning.text", "text": rt.get("text") or ""}
                if rt.get("signature"):
                    detail["signature"] = rt["signature"]
                details.append(detail)
            if rc.get("redactedContent"):
                details.append({"type": "reasoning.encrypted", "data": rc["redactedContent"]})
    extra: dict[str, Any] = {"reasoning_details": details} if details else {}
    reply = ChatCompletionMessage(
        content="".join(texts) if texts or not calls else None,
        reasoning="".join(reasoning) or None,
        tool_calls=calls or None,
        **extra,
    )
    usage = data.get("usage")
    return ChatCompletion(
        id=id, created=created, model=model,
        choices=[Choice(index=0, message=reply,
                        finish_reason=finish_reason(data.get("stopReason")))],
        usage=convert_usage(usage) if isinstance(usage, dict) else None,
    )


def exception_error(kind: str, body: Any, *, provider: str | None) -> AnyLLMError:
    """An exception event (``:exception-type`` + payload ``{"message": ...}``) -> the mapped
    :class:`AnyLLMError` (throttling -> RateLimitError, validation -> InvalidRequestError,
    model-stream / internal / unavailable -> ProviderError)."""
    status = EXCEPTION_STATUS.get(kind, 500)
    message = body.get("message") if isinstance(body, dict) else None
    original = body.get("originalMessage") if isinstance(body, dict) else None
    text = f"{kind}: {message or original or 'no message'}"
    if original and message and original not in message:
        text += f" ({original})"
    return http_error(status, {"message": text}, provider=provider)


def http_error(status: int, body: Any, *, provider: str | None, error_type: str | None = None,
               retry_after: float | None = None, key_hint: str | None = None) -> AnyLLMError:
    """A Bedrock error (``{"message": ...}`` body, ``x-amzn-ErrorType`` header) -> AnyLLMError."""
    message = (body.get("message") or body.get("Message")) if isinstance(body, dict) else None
    if error_type:
        kind = error_type.split(":", 1)[0]
        message = f"{kind}: {message}" if message else kind
    payload = {"message": message} if message else body
    if status == 403 and any(h in (message or "").lower() for h in _AUTH_HINTS):
        # AWS answers 403 for a bad key or signature, where OpenAI-style APIs say 401.
        detail = f"Authentication failed: {key_hint} was rejected" if key_hint else ""
        return AuthenticationError(detail, provider=provider, status_code=status,
                                   provider_message=message, body=body)
    if status == 400 and message and any(h in message.lower() for h in _CONTEXT_HINTS):
        return ContextLengthExceededError(provider=provider, status_code=status,
                                          provider_message=message, body=body)
    return error_from_response(status, payload, provider=provider, retry_after=retry_after,
                               key_hint=key_hint)


# --- stream ------------------------------------------------------------------------------------


class ConverseStreamConverter:
    """ConverseStream events -> ChatCompletionChunks, for one stream (pure; holds the state).

    Events are ``ConverseStreamOutput`` unions, ``{"contentBlockDelta": {...}}`` (as
    the vercel recordings store them). Text and reasoning deltas map to ``delta.content`` /
    ``delta.reasoning``; a ``toolUse`` block gets the next tool-call ``index``, with ``id`` and
    ``name`` on its first fragment and argument fragments after; a tool call that streamed no
    arguments gets ``"{}"``. ``messageStop`` gives the finish chunk and ``metadata`` the usage
    chunk, sent after the finish chunk whichever of the two comes first. An exception member
    raises the mapped :class:`AnyLLMError`.
    """

    def __init__(self, *, id: str, model: str, created: int, provider: str | None = None) -> None:
        self.id = id
        self.model = model
        self.created = created
        self.provider = provider
        self._role_sent = False
        self._finished = False
        self._usage: CompletionUsage | None = None
        self._tools: dict[int, int] = {}  # content block index -> tool-call index
        self._tool_args: dict[int, bool] = {}  # content block index -> any argument text sent

    def convert(self, event: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        """One event -> zero or more chunks. Unknown events are ignored (forward compatible)."""
        out: list[ChatCompletionChunk] = []
        for kind, body in event.items():
            if kind in EXCEPTION_STATUS or kind.endswith("Exception"):
                raise exception_error(kind, body, provider=self.provider)
            if not isinstance(body, dict):
                continue
            if kind == "messageStart":
                out.append(self._chunk(ChoiceDelta(content="")))
            elif kind == "contentBlockStart":
                out.extend(self._block_start(body))
            elif kind == "contentBlockDelta":
                out.extend(self._block_delta(body))
            elif kind == "contentBlockStop":
                index = body.get("contentBlockIndex", -1)
                if index in self._tools and not self._tool_args.get(index):
                    self._tool_args[index] = True
                    out.append(self._tool_chunk(index, arguments="{}"))
            elif kind == "messageStop":
                self._finished = True
                out.append(self._chunk(ChoiceDelta(), finish_reason(body.get("stopReason"))))
                if self._usage is not None:
                    out.append(self._usage_chunk(self._usage))
            elif kind == "metadata" and isinstance(body.get("usage"), dict):
                usage = convert_usage(body["usage"])
                if self._finished:
                    out.append(self._usage_chunk(usage))
                else:
                    self._usage = usage
        return out

    def _block_start(self, body: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        start = body.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return []
        index = body.get("contentBlockIndex", len(self._tools))
        self._tools[index] = len(self._tools)
        call = ChoiceDeltaToolCall(
            index=self._tools[index], id=use.get("toolUseId", ""), type="function",
            function=ChoiceDeltaToolCallFunction(name=use.get("name", ""), arguments=""))
        return [self._chunk(ChoiceDelta(tool_calls=[call]))]

    def _block_delta(self, body: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        delta = body.get("delta")
        if not isinstance(delta, dict):
            return []
        index = body.get("contentBlockIndex", 0)
        if isinstance(delta.get("text"), str):
            return [self._chunk(ChoiceDelta(content=delta["text"]))] if delta["text"] else []
        use = delta.get("toolUse")
        if isinstance(use, dict):
            fragment = use.get("input")
            if not isinstance(fragment, str) or not fragment or index not in self._tools:
                return []
            self._tool_args[index] = True
            return [self._tool_chunk(index, arguments=fragment)]
        rc = delta.get("reasoningContent")
        if isinstance(rc, dict):
            if rc.get("text"):
                return [self._chunk(ChoiceDelta(reasoning=rc["text"]))]
            if rc.get("signature"):
                detail = {"type": "reasoning.text", "signature": rc["signature"]}
                return [self._chunk(ChoiceDelta(reasoning_details=[detail]))]
            if rc.get("redactedContent"):
                detail = {"type": "reasoning.encrypted", "data": rc["redactedContent"]}
                return [self._chunk(ChoiceDelta(reasoning_details=[detail]))]
        return []

    def _tool_chunk(self, block: int, *, arguments: str) -> ChatCompletionChunk:
        call = ChoiceDeltaToolCall(index=self._tools[block],
                                   function=ChoiceDeltaToolCallFunction(arguments=arguments))
        return self._chunk(ChoiceDelta(tool_calls=[call]))

    def _chunk(self, delta: ChoiceDelta, finish: FinishReason | None = None
               ) -> ChatCompletionChunk:
        if not self._role_sent:
            delta.role = "assistant"
            self._role_sent = True
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                   choices=[ChunkChoice(index=0, delta=delta,
                                                        finish_reason=finish)])

    def _usage_chunk(self, usage: CompletionUsage) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                   choices=[], usage=usage)
