"""Pure conversions between OpenAI chat completions and the Gemini API ``generateContent``.

Source: Gemini API reference v1beta (``GenerateContentRequest``, ``GenerateContentResponse``,
``Content``/``Part``, ``GenerationConfig``, ``ThinkingConfig``, ``FunctionCallingConfig``;
mirrored in googleapis/python-genai ``types.py``) and shared/reference/wire-formats.md §3. No I/O
here: the backend (:mod:`anyllm_cli.backends.gemini`) sends what :func:`convert_params` builds and
feeds what comes back to :func:`convert_response` or a :class:`GeminiStream`.

Decisions where the sources are silent (each also said where it is made):

* Tool schemas go in ``parametersJsonSchema`` and structured output in ``responseJsonSchema``:
  both take standard JSON Schema (``$defs``/``$ref``, ``additionalProperties``, ``oneOf`` ...),
  so the OpenAI schema is sent untouched. The older ``parameters`` / ``responseSchema`` fields
  take an OpenAPI subset that rejects many keywords with HTTP 400 (wire-formats.md §3.1).
* Function calls carry no id on the Gemini API: each gets ``call_<responseId>_<n>`` (``n``
  counting the calls of that response), or the id Gemini sent when it sent one.
* ``thoughtSignature`` is kept where Google's own OpenAI-compatible endpoint keeps it:
  ``extra_content = {"google": {"thought_signature": ...}}`` on the tool call (for a
  ``functionCall`` part) or on the message / delta (for a text part), and sent back on the same
  kind of part in the next request.
* A prompt Gemini blocks (``promptFeedback.blockReason``, no candidates) is not an exception: it
  becomes a reply with ``finish_reason: "content_filter"`` and a ``refusal`` naming the reason,
  as OpenAI reports filtered output; batch runs keep one result line per request.
"""

from __future__ import annotations

import itertools
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from anyllm_cli.backends._content import parse_data_url
from anyllm_cli.errors import (
    AnyLLMError,
    AuthenticationError,
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
    ChoiceLogprobs,
    ChunkChoice,
    CompletionParams,
    CompletionUsage,
    FinishReason,
    Function,
    Model,
    OpenAIModel,
)

Report = Callable[[str], None]

SUPPORTED_PARAMS = frozenset({
    "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "n", "stop", "seed", "presence_penalty", "frequency_penalty",
    "logprobs", "top_logprobs", "response_format", "reasoning_effort",
})
"""CompletionParams with a Gemini equivalent. ``user`` and ``logit_bias`` have none."""

EXTRA_PARAMS = frozenset({"top_k", "thinking_budget", "include_thoughts", "safety_settings"})
"""Gemini-only settings accepted as extras (``-o top_k=40``): ``generationConfig.topK``,
``thinkingConfig.thinkingBudget`` / ``includeThoughts``, and ``safetySettings`` (a list of
``{"category", "threshold"}``, sent as given)."""

SKIP_SIGNATURE = "skip_thought_signature_validator"
"""The placeholder Google documents for a Gemini 3 function call whose history has no
signature (ai.google.dev/gemini-api/docs/thought-signatures)."""

THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
"""``reasoning_effort`` -> ``thinkingBudget`` (tokens) for Gemini 2.x: low/medium/high are the
budgets Google's OpenAI-compatible endpoint uses (ai.google.dev/gemini-api/docs/openai); 0 turns
thinking off (2.5 Pro cannot, and answers 400); minimal is our choice (the 2.5 Flash-Lite floor)."""

THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
"""``reasoning_effort`` -> ``thinkingLevel`` for Gemini 3 and later (which levels a model takes
varies: the API answers 400 for one it lacks)."""

_CONTENT_FILTER = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})


def finish_reason(native: str | None, had_tool_calls: bool) -> FinishReason | None:
    """Gemini ``finishReason`` -> OpenAI ``finish_reason`` (wire-formats.md §0.2).

    ``STOP`` is ``tool_calls`` when the candidate made function calls; ``MAX_TOKENS`` is
    ``length``; the safety family is ``content_filter``; the others (``OTHER``, ``LANGUAGE``,
    ``MALFORMED_FUNCTION_CALL`` ...) have no OpenAI equivalent and become ``stop``.
    """
    if not native:
        return None
    if native == "MAX_TOKENS":
        return "length"
    if native in _CONTENT_FILTER:
        return "content_filter"
    return "tool_calls" if had_tool_calls else "stop"


# --- request ---------------------------------------------------------------------------------


def gemini_major(model: str) -> int | None:
    """The major version in a model name (``gemini-3-pro-preview`` -> 3), None for aliases
    such as ``gemini-flash-latest``."""
    m = re.search(r"gemini-(\d+)", model)
    return int(m.group(1)) if m else None


def convert_params(params: CompletionParams, report: Report | None = None) -> dict[str, Any]:
    """CompletionParams -> a ``GenerateContentRequest`` body (the model goes in the URL).

    ``report(message)`` is called for every value that cannot be carried (a content part, a
    tool type, ``parallel_tool_calls=False`` ...). Raises :class:`InvalidParameterError` for a
    malformed message (a tool result whose call is unknown, arguments that are not JSON).
    """
    say: Report = report or (lambda _msg: None)
    system, contents = convert_messages(params.messages, params.model, say)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if params.tools:
        tools = convert_tools(params.tools, say)
        if tools:
            body["tools"] = tools
    if params.tool_choice is not None:
        config = convert_tool_choice(params.tool_choice, say)
        if config:
            body["toolConfig"] = {"functionCallingConfig": config}
    if params.parallel_tool_calls is False:
        say("gemini cannot turn off parallel function calls; parallel_tool_calls=false was "
            "not sent")
    generation = generation_config(params, say)
    if generation:
        body["generationConfig"] = generation
    safety = params.extra.get("safety_settings")
    if safety is not None:
        body["safetySettings"] = safety
    return body


def generation_config(params: CompletionParams, report: Report) -> dict[str, Any]:
    """The ``generationConfig`` object: sampling, limits, output format and thinking."""
    cfg: dict[str, Any] = {}
    simple = (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
              ("n", "candidateCount"), ("presence_penalty", "presencePenalty"),
              ("frequency_penalty", "frequencyPenalty"), ("logprobs", "responseLogprobs"),
              ("top_logprobs", "logprobs"))
    for name, native in simple:
        value = getattr(params, name)
        if value is not None:
            cfg[native] = value
    top_k = params.extra.get("top_k")
    if top_k is not None:
        cfg["topK"] = top_k
    limit = params.max_completion_tokens if params.max_completion_tokens is not None \
        else params.max_tokens
    if limit is not None:
        cfg["maxOutputTokens"] = limit
    if params.stop is not None:
        cfg["stopSequences"] = [params.stop] if isinstance(params.stop, str) else list(params.stop)
    if params.response_format is not None:
        cfg.update(response_format(params.response_format, report))
    thinking = thinking_config(params.reasoning_effort, params.model, report)
    for extra, native in (("thinking_budget", "thinkingBudget"),
                          ("include_thoughts", "includeThoughts")):
        if extra in params.extra:
            thinking = {**(thinking or {}), native: params.extra[extra]}
    if thinking:
        cfg["thinkingConfig"] = thinking
    return cfg


def response_format(fmt: dict[str, Any], report: Report) -> dict[str, Any]:
    """OpenAI ``response_format`` -> ``responseMimeType`` (+ ``responseJsonSchema``).

    ``json_schema`` sends the schema as standard JSON Schema (``responseJsonSchema``); Gemini
    always holds the output to it, so ``strict`` needs no counterpart.
    """
    kind = fmt.get("type")
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if isinstance(spec, dict) and spec.get("schema") is not None:
            out["responseJsonSchema"] = spec["schema"]
        return out
    if kind not in (None, "text"):
        report(f"gemini has no response_format of type {kind!r}; it was not sent")
    return {}


def thinking_config(effort: str | None, model: str, report: Report) -> dict[str, Any] | None:
    """``reasoning_effort`` -> ``thinkingConfig``.

    Gemini 3 and later take ``thinkingLevel`` (MINIMAL/LOW/MEDIUM/HIGH) and cannot turn thinking
    off: ``none`` is sent as MINIMAL, with a report. Other models (2.x and aliases such as
    ``gemini-flash-latest``, which also accept it) take ``thinkingBudget`` in tokens, see
    :data:`THINKING_BUDGETS`. ``includeThoughts`` is true whenever reasoning is asked for, so
    the thought summaries arrive as ``reasoning``.
    """
    if effort is None:
        return None
    if effort not in THINKING_BUDGETS:
        report(f"gemini has no reasoning_effort {effort!r} (none, minimal, low, medium, high); "
               "it was not sent")
        return None
    major = gemini_major(model)
    if major is not None and major >= 3:
        if effort == "none":
            report(f"{model} cannot turn thinking off; reasoning_effort 'none' was sent as "
                   "thinkingLevel MINIMAL")
            return {"thinkingLevel": "MINIMAL"}
        return {"thinkingLevel": THINKING_LEVELS[effort], "includeThoughts": True}
    if effort == "none":
        return {"thinkingBudget": 0}
    return {"thinkingBudget": THINKING_BUDGETS[effort], "includeThoughts": True}


def convert_tools(tools: list[dict[str, Any]], report: Report) -> list[dict[str, Any]]:
    """OpenAI ``tools`` -> one ``{"functionDeclarations": [...]}`` tool.

    Each function's ``parameters`` go unchanged into ``parametersJsonSchema`` (standard JSON
    Schema, see the module notes); ``strict`` has no counterpart and is not needed. A dict
    without ``type`` is taken as a native Gemini tool (``{"googleSearch": {}}``,
    ``{"codeExecution": {}}``) and sent as given; other tool types are reported.
    """
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, dict):
            report(f"gemini: a tool must be an object, got {tool!r}; it was not sent")
            continue
        if "type" not in tool:
            native.append(tool)
            continue
        fn = tool.get("function")
        if tool["type"] != "function" or not isinstance(fn, dict) or not fn.get("name"):
            report(f"gemini has no tool of type {tool['type']!r}; it was not sent")
            continue
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if fn.get("parameters") is not None:
            decl["parametersJsonSchema"] = fn["parameters"]
        declarations.append(decl)
    out = [{"functionDeclarations": declarations}] if declarations else []
    return out + native


def convert_tool_choice(choice: str | dict[str, Any], report: Report) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` -> ``functionCallingConfig``: auto -> AUTO, required -> ANY,
    none -> NONE, a named function -> ANY with ``allowedFunctionNames``."""
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if isinstance(choice, str):
        if choice in modes:
            return {"mode": modes[choice]}
        report(f"gemini has no tool_choice {choice!r}; it was not sent")
        return None
    if choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    if choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = [t.get("function", {}).get("name") for t in allowed.get("tools", [])
                 if isinstance(t, dict)]
        if allowed.get("mode") == "required" and all(names):
            return {"mode": "ANY", "allowedFunctionNames": names}
        report("gemini restricts functions only when one must be called (mode required); "
               "tool_choice allowed_tools was sent as AUTO")
        return {"mode": "AUTO"}
    report(f"gemini cannot express tool_choice {choice!r}; it was not sent")
    return None


def convert_messages(messages: list[dict[str, Any]], model: str, report: Report
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (``systemInstruction`` parts, ``contents``).

    system and developer messages (wherever they are) become the system instruction; user ->
    ``user``, assistant -> ``model``; tool results -> ``functionResponse`` parts in a ``user``
    content, named after the assistant tool call with the same id. Neighbouring contents of one
    role are merged (parallel calls' results must share one content). ``reasoning`` in an
    assistant message is not sent back: Gemini keeps its thoughts in the signatures.
    """
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    gemini3 = (gemini_major(model) or 0) >= 3

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(content, f"{role} message", report))
        elif role == "user":
            add("user", user_parts(content, report))
        elif role == "assistant":
            add("model", _assistant_parts(message, call_names, gemini3, report))
        elif role == "tool":
            add("user", [_function_response(message, call_names)])
    return system, contents


def _texts(content: Any, where: str, report: Report) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
            out.append(str(part.get("text", part.get("refusal", ""))))
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            report(f"gemini takes only text in a {where}; a {kind!r} part was not sent")
    return out


def user_parts(content: Any, report: Report) -> list[dict[str, Any]]:
    """A user message's content -> Gemini parts: text, images (``image_url``: a data URL ->
    ``inlineData``, an http(s)/gs URL -> ``fileData`` with the MIME type guessed from the name,
    JPEG when it cannot be), ``input_audio`` and ``file`` data -> ``inlineData``."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url", "") if isinstance(image, dict) else str(image)
            converted = _media_part(url, "image/jpeg")
            if converted is None:
                report(f"gemini takes images as data: or http(s)/gs URLs; {url[:60]!r} was "
                       "not sent")
            else:
                parts.append(converted)
            if isinstance(image, dict) and image.get("detail") not in (None, "auto"):
                report("gemini has no image detail setting; detail "
                       f"{image.get('detail')!r} was not sent")
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            fmt = audio.get("format", "wav")
            parts.append({"inlineData": {"mimeType": f"audio/{fmt}", "data": audio.get("data")}})
        elif kind == "file" and (part.get("file") or {}).get("file_data"):
            converted = _media_part(part["file"]["file_data"], "application/octet-stream")
            if converted is None:
                report("gemini takes file data as a data: URL; a file part was not sent")
            else:
                parts.append(converted)
        else:
            report(f"gemini cannot take a {kind!r} content part; it was not sent")
    return parts


def _media_part(url: str, default_mime: str) -> dict[str, Any] | None:
    parsed = parse_data_url(url)
    if parsed is not None:
        return {"inlineData": {"mimeType": parsed[0] or default_mime, "data": parsed[1]}}
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https", "gs"):
        mime = mimetypes.guess_type(urlsplit(url).path)[0] or default_mime
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    return None


def _signature(obj: dict[str, Any]) -> str | None:
    extra = obj.get("extra_content")
    if isinstance(extra, dict) and isinstance(extra.get("google"), dict):
        sig = extra["google"].get("thought_signature")
        if isinstance(sig, str) and sig:
            return sig
    sig = obj.get("thought_signature")
    return sig if isinstance(sig, str) and sig else None


def _assistant_parts(message: dict[str, Any], call_names: dict[str, str], gemini3: bool,
                     report: Report) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": t} for t in
                                   _texts(message.get("content"), "assistant message", report)]
    signature = _signature(message)
    if signature:
        if not parts:
            parts.append({"text": ""})
        parts[-1]["thoughtSignature"] = signature
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        name = fn.get("name") or ""
        raw = fn.get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise InvalidParameterError(
                f"tool call {call.get('id')!r} ({name}): arguments are not JSON: {raw[:80]!r}"
            ) from None
        fc: dict[str, Any] = {"name": name, "args": args if isinstance(args, dict) else {}}
        if call.get("id"):
            fc["id"] = call["id"]
            call_names[call["id"]] = name
        part: dict[str, Any] = {"functionCall": fc}
        sig = _signature(call)
        if sig:
            part["thoughtSignature"] = sig
        elif gemini3 and i == 0:
            # Gemini 3 refuses a call without one (history from another model or tool).
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    return parts


def _function_response(message: dict[str, Any], call_names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id or "") or message.get("name")
    if not name:
        raise InvalidParameterError(
            f"tool message with tool_call_id {call_id!r} follows no assistant tool call of "
            "that id; gemini needs the function's name")
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    try:
        value = json.loads(content) if isinstance(content, str) else content
    except ValueError:
        value = content
    response = value if isinstance(value, dict) else {"result": value}
    out: dict[str, Any] = {"name": name, "response": response}
    if call_id:
        out["id"] = call_id
    return {"functionResponse": out}


# --- response --------------------------------------------------------------------------------


def convert_usage(meta: dict[str, Any] | None) -> CompletionUsage | None:
    """``usageMetadata`` -> :class:`CompletionUsage` (tokens).

    prompt = ``promptTokenCount`` + ``toolUsePromptTokenCount``; completion =
    ``candidatesTokenCount`` + ``thoughtsTokenCount`` (Gemini counts thoughts apart; OpenAI
    counts reasoning tokens in the completion, and ``completion_tokens_details.reasoning_tokens``
    says how many); ``cachedContentTokenCount`` -> ``prompt_tokens_details.cached_tokens``.
    """
    if not meta or "promptTokenCount" not in meta:
        return None
    prompt = int(meta.get("promptTokenCount", 0)) + int(meta.get("toolUsePromptTokenCount", 0))
    thoughts = int(meta.get("thoughtsTokenCount", 0))
    completion = int(meta.get("candidatesTokenCount", 0)) + thoughts
    usage = CompletionUsage(prompt_tokens=prompt, completion_tokens=completion,
                            total_tokens=int(meta.get("totalTokenCount", prompt + completion)))
    if thoughts:
        usage.completion_tokens_details = {"reasoning_tokens": thoughts}
    if meta.get("cachedContentTokenCount"):
        usage.prompt_tokens_details = {"cached_tokens": int(meta["cachedContentTokenCount"])}
    return usage


def convert_logprobs(result: dict[str, Any] | None) -> ChoiceLogprobs | None:
    """``logprobsResult`` -> OpenAI logprobs: ``chosenCandidates[i]`` is token i, with
    ``topCandidates[i].candidates`` as its ``top_logprobs``."""
    if not result or not result.get("chosenCandidates"):
        return None
    tops = result.get("topCandidates") or []

    def entry(c: dict[str, Any]) -> dict[str, Any]:
        token = str(c.get("token", ""))
        return {"token": token, "logprob": float(c.get("logProbability", 0.0)),
                "bytes": list(token.encode("utf-8"))}

    content = []
    for i, chosen in enumerate(result["chosenCandidates"]):
        item = entry(chosen)
        alts = tops[i].get("candidates", []) if i < len(tops) else []
        item["top_logprobs"] = [entry(a) for a in alts]
        content.append(item)
    return ChoiceLogprobs(content=content)


def _attach_signature(obj: OpenAIModel, signature: str) -> None:
    """Keep a ``thoughtSignature`` as Google's OpenAI-compatible endpoint does (an extra field,
    serialised with the object)."""
    setattr(obj, "extra_content", {"google": {"thought_signature": signature}})  # noqa: B010


def _arguments(args: Any) -> str:
    return json.dumps(args if args is not None else {}, ensure_ascii=False)


def _prompt_blocked(data: dict[str, Any]) -> str | None:
    """The refusal text for a blocked prompt, or None when the prompt was not blocked."""
    feedback = data.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    if not reason or data.get("candidates"):
        return None
    detail = feedback.get("blockReasonMessage")
    return f"The prompt was blocked by Gemini ({reason})" + (f": {detail}" if detail else "")


def raise_for_error(data: Any, provider: str | None) -> None:
    """Raise the mapped :class:`AnyLLMError` when ``data`` is a Google error object
    (``{"error": {"code", "message", "status", "details"}}``), inside a 200 stream or not."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = data["error"].get("code")
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        raise google_error(status, data, provider=provider)


@dataclass
class _CallIds:
    """Tool-call ids for one response: Gemini's own when it sent one, else ``call_<rid>_<n>``."""

    response_id: str = ""
    count: int = 0

    def next(self, native: str | None) -> str:
        self.count += 1
        if native:
            return native
        return f"call_{self.response_id}_{self.count - 1}" if self.response_id \
            else f"call_{self.count - 1}"


def convert_response(data: Any, *, model: str, provider: str | None = None) -> ChatCompletion:
    """A whole ``GenerateContentResponse`` -> :class:`ChatCompletion`.

    Text parts -> ``content``; ``thought: true`` parts -> ``reasoning``; ``functionCall`` parts
    -> ``tool_calls``; ``executableCode`` / ``codeExecutionResult`` parts (the code execution
    tool) -> fenced blocks in ``content``. ``model`` is used when the reply names no
    ``modelVersion``. Raises the mapped :class:`AnyLLMError` for an error body and
    :class:`AnyLLMError` for a body that is not a response.
    """
    raise_for_error(data, provider)
    if not isinstance(data, dict):
        raise AnyLLMError("Malformed response: not a Gemini GenerateContentResponse",
                          provider=provider)
    response_id = str(data.get("responseId") or f"gemini-{uuid.uuid4().hex}")
    ids = _CallIds(str(data.get("responseId") or ""))
    choices: list[Choice] = []
    blocked = _prompt_blocked(data)
    if blocked:
        choices.append(Choice(index=0, message=ChatCompletionMessage(refusal=blocked),
                              finish_reason="content_filter"))
    for n, cand in enumerate(data.get("candidates") or []):
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ChatCompletionMessageToolCall] = []
        signature = None
        for part in (cand.get("content") or {}).get("parts") or []:
            fc = part.get("functionCall")
            if fc is not None:
                call = ChatCompletionMessageToolCall(
                    id=ids.next(fc.get("id")),
                    function=Function(name=fc.get("name", ""),
                                      arguments=_arguments(fc.get("args"))))
                if part.get("thoughtSignature"):
                    _attach_signature(call, part["thoughtSignature"])
                calls.append(call)
                continue
            piece = _part_text(part)
            if piece is not None:
                (reasoning if part.get("thought") else text).append(piece)
            if part.get("thoughtSignature") and not part.get("thought"):
                signature = part["thoughtSignature"]
        message = ChatCompletionMessage(
            content="".join(text) if text or not calls else None,
            reasoning="".join(reasoning) or None,
            tool_calls=calls or None)
        if signature:
            _attach_signature(message, signature)
        choices.append(Choice(
            index=int(cand.get("index", n)), message=message,
            finish_reason=finish_reason(cand.get("finishReason"), bool(calls)),
            logprobs=convert_logprobs(cand.get("logprobsResult"))))
    return ChatCompletion(
        id=response_id, created=int(time.time()), model=str(data.get("modelVersion") or model),
        choices=choices, usage=convert_usage(data.get("usageMetadata")))


def _part_text(part: dict[str, Any]) -> str | None:
    if "text" in part:
        return str(part["text"])
    code = part.get("executableCode")
    if isinstance(code, dict):
        lang = str(code.get("language", "")).lower().replace("language_unspecified", "")
        return f"\n```{lang}\n{code.get('code', '')}\n```\n"
    result = part.get("codeExecutionResult")
    if isinstance(result, dict):
        return f"\n```\n{result.get('output', '')}\n```\n"
    return None


# --- stream ----------------------------------------------------------------------------------


@dataclass
class _PendingCall:
    """A function call Vertex streams in pieces (``streamFunctionCallArguments``)."""

    name: str
    id: str | None
    signature: str | None
    args: dict[str, Any] = field(default_factory=dict)
    open_string: tuple[str | int, ...] | None = None


@dataclass
class _CandidateState:
    started: bool = False
    tool_calls: int = 0
    finished: bool = False
    pending: _PendingCall | None = None


_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]")


def _json_path(path: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    for key, index, quoted in _PATH_STEP.findall(path.removeprefix("$")):
        steps.append(int(index) if index else (quoted or key))
    return tuple(steps)


def _set_path(root: dict[str, Any], path: tuple[str | int, ...], value: Any,
              append: bool) -> None:
    node: Any = root
    for step, nxt in itertools.pairwise(path):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(step, int):
            while len(node) <= step:
                node.append(None)
            if node[step] is None:
                node[step] = empty
            node = node[step]
        else:
            node = node.setdefault(step, empty)
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
        node[last] = (node[last] or "") + value if append else value
    else:
        node[last] = node.get(last, "") + value if append else value


class GeminiStream:
    """Converts the events of one ``streamGenerateContent?alt=sse`` response, in order.

    ``convert(event) -> list[ChatCompletionChunk]`` per decoded event (a whole
    ``GenerateContentResponse`` holding only the new parts), then ``finish()`` at EOF (Gemini
    sends no end marker): it flushes a function call still being assembled and returns the
    closing usage chunk (``choices: []``) built from the LAST ``usageMetadata`` (every event
    carries one; earlier ones are partial). A function call arrives whole on the Gemini API and
    becomes one tool-call delta with id, name and all arguments; Vertex's streamed
    ``partialArgs`` are assembled first and sent the same way. No I/O.
    """

    def __init__(self, model: str, *, provider: str | None = None) -> None:
        self.model = model
        self.provider = provider
        self.id = ""
        self.created = int(time.time())
        self.usage: CompletionUsage | None = None
        self.ids = _CallIds()
        self.candidates: dict[int, _CandidateState] = {}

    def _chunk(self, choices: list[ChunkChoice], usage: CompletionUsage | None = None
               ) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                   choices=choices, usage=usage)

    def convert(self, event: Any) -> list[ChatCompletionChunk]:
        """One event (parsed JSON or its text) -> chunks. Raises the mapped
        :class:`AnyLLMError` for an in-stream error object, :class:`StreamError` for an event
        that is not a response."""
        if isinstance(event, (str, bytes)):
            try:
                event = json.loads(event)
            except ValueError:
                text = event if isinstance(event, str) else event.decode("utf-8", "replace")
                raise StreamError(f"Stream failed: malformed event (not JSON): {text[:120]}",
                                  provider=self.provider) from None
        raise_for_error(event, self.provider)
        if not isinstance(event, dict):
            raise StreamError("Stream failed: malformed event (not an object)",
                              provider=self.provider)
        if not self.id:
            self.id = str(event.get("responseId") or f"gemini-{uuid.uuid4().hex}")
            self.ids.response_id = str(event.get("responseId") or "")
        if event.get("modelVersion"):
            self.model = str(event["modelVersion"])
        usage = convert_usage(event.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        out: list[ChatCompletionChunk] = []
        blocked = _prompt_blocked(event)
        if blocked:
            state = self.candidates.setdefault(0, _CandidateState())
            state.finished = True
            out.append(self._chunk([ChunkChoice(
                index=0, delta=ChoiceDelta(role="assistant", refusal=blocked),
                finish_reason="content_filter")]))
        for n, cand in enumerate(event.get("candidates") or []):
            out.extend(self._candidate(int(cand.get("index", n)), cand))
        return out

    def _candidate(self, index: int, cand: dict[str, Any]) -> list[ChatCompletionChunk]:
        state = self.candidates.setdefault(index, _CandidateState())
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ChoiceDeltaToolCall] = []
        signature = None
        for part in (cand.get("content") or {}).get("parts") or []:
            fc = part.get("functionCall")
            if fc is not None:
                calls.extend(self._function_call(state, fc, part.get("thoughtSignature")))
                continue
            piece = _part_text(part)
            if piece:
                (reasoning if part.get("thought") else text).append(piece)
            if part.get("thoughtSignature") and not part.get("thought"):
                signature = part["thoughtSignature"]
        native_finish = cand.get("finishReason")
        if native_finish and state.pending is not None:
            calls.extend(self._flush(state))
        finish = finish_reason(native_finish, state.tool_calls > 0)
        logprobs = convert_logprobs(cand.get("logprobsResult"))
        if not (text or reasoning or calls or signature or finish or logprobs):
            return []
        delta = ChoiceDelta(content="".join(text) or None, reasoning="".join(reasoning) or None,
                            tool_calls=calls or None)
        if not state.started:
            state.started = True
            delta.role = "assistant"
        if signature:
            _attach_signature(delta, signature)
        if finish:
            state.finished = True
        return [self._chunk([ChunkChoice(index=index, delta=delta, finish_reason=finish,
                                         logprobs=logprobs)])]

    def _function_call(self, state: _CandidateState, fc: dict[str, Any],
                       signature: str | None) -> list[ChoiceDeltaToolCall]:
        out: list[ChoiceDeltaToolCall] = []
        partial = fc.get("partialArgs")
        if fc.get("name"):
            if state.pending is not None:
                out.extend(self._flush(state))
            if not fc.get("willContinue") and partial is None:
                out.append(self._delta(state, fc.get("name", ""), fc.get("id"),
                                       _arguments(fc.get("args")), signature))
                return out
            state.pending = _PendingCall(fc["name"], fc.get("id"), signature,
                                         dict(fc.get("args") or {}))
        pending = state.pending
        if pending is None:
            return out  # a closing or empty piece with nothing open
        for item in partial or ():
            path = _json_path(str(item.get("jsonPath", "$")))
            if not path:
                continue
            if "stringValue" in item:
                _set_path(pending.args, path, str(item["stringValue"]),
                          append=pending.open_string == path)
                pending.open_string = path if item.get("willContinue") else None
                continue
            pending.open_string = None
            if "numberValue" in item or "boolValue" in item:
                value = item.get("numberValue", item.get("boolValue"))
            elif "nullValue" in item:
                value = None
            else:
                continue
            _set_path(pending.args, path, value, append=False)
        if not fc.get("willContinue") and not fc.get("name"):
            out.extend(self._flush(state))
        return out

    def _flush(self, state: _CandidateState) -> list[ChoiceDeltaToolCall]:
        pending, state.pending = state.pending, None
        if pending is None:
            return []
        return [self._delta(state, pending.name, pending.id, _arguments(pending.args),
                            pending.signature)]

    def _delta(self, state: _CandidateState, name: str, native_id: str | None, arguments: str,
               signature: str | None) -> ChoiceDeltaToolCall:
        call = ChoiceDeltaToolCall(
            index=state.tool_calls, id=self.ids.next(native_id), type="function",
            function=ChoiceDeltaToolCallFunction(name=name, arguments=arguments))
        if signature:
            _attach_signature(call, signature)
        state.tool_calls += 1
        return call

    def finish(self) -> list[ChatCompletionChunk]:
        """At EOF: a function call still open, then the usage chunk (when usage was sent)."""
        out: list[ChatCompletionChunk] = []
        for index, state in sorted(self.candidates.items()):
            if state.pending is not None:
                calls = self._flush(state)
                out.append(self._chunk([ChunkChoice(index=index,
                                                    delta=ChoiceDelta(tool_calls=calls))]))
        if self.usage is not None and self.id:
            out.append(self._chunk([], usage=self.usage))
        return out


# --- errors and models -----------------------------------------------------------------------


def parse_duration(value: Any) -> float | None:
    """A protobuf JSON ``Duration`` (``"34.4s"``) -> seconds; None when it is not one."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _details(body: Any) -> Iterable[dict[str, Any]]:
    err = body.get("error") if isinstance(body, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def retry_delay(body: Any) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail of an error body, if any."""
    for detail in _details(body):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return parse_duration(detail.get("retryDelay"))
    return None


def google_error(status: int, body: Any, *, provider: str | None,
                 retry_after: float | None = None, key_hint: str | None = None
                 ) -> AnyLLMError:
    """A Google API error (``{"error": {"code", "message", "status", "details"}}``) -> the
    matching :class:`AnyLLMError`.

    ``RetryInfo.retryDelay`` gives a 429's ``retry_after`` (seconds), before any
    ``Retry-After`` header; a 400 whose ``ErrorInfo.reason`` is ``API_KEY_INVALID`` (Gemini's
    answer to a wrong key) is an :class:`AuthenticationError`.
    """
    if any(d.get("reason") == "API_KEY_INVALID" for d in _details(body)):
        err = body["error"]
        detail = f"Authentication failed: {key_hint} was rejected" if key_hint else ""
        return AuthenticationError(detail, provider=provider, status_code=status,
                                   provider_message=err.get("message"), body=body)
    delay = retry_delay(body)
    return error_from_response(status, body, provider=provider,
                               retry_after=delay if delay is not None else retry_after,
                               key_hint=key_hint)


def convert_models(data: Any) -> list[Model]:
    """``GET /models`` (``ListModelsResponse``) -> :class:`Model` list: ``models/gemini-2.5-flash``
    -> id ``gemini-2.5-flash``; only models that can ``generateContent`` (chat) are kept."""
    out: list[Model] = []
    for item in (data.get("models") or []) if isinstance(data, dict) else []:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        methods = item.get("supportedGenerationMethods")
        if methods is not None and "generateContent" not in methods:
            continue
        out.append(Model(id=str(item["name"]).removeprefix("models/"), owned_by="google"))
    return out
