"""Mistral AI chat completions: OpenAI's shape, with differences translated here.

Source: Mistral API reference, ``POST /v1/chat/completions`` (mistralai/client-python
``docs/models/chatcompletionrequest.md``, ``chatcompletionresponse.md``,
``completionchunk.md``, ``httpvalidationerror.md``); summary in shared/reference/wire-formats.md
§4. Transport, authentication (``Authorization: Bearer``), ``GET /models`` and in-stream error
objects are the :mod:`~anyllm_cli.backends.openai` backend's.

Differences:

* ``seed`` is ``random_seed``; ``tool_choice: "required"`` is ``"any"``;
  ``max_completion_tokens`` is ``max_tokens``; the ``developer`` role is ``system``.
* Mistral refuses unknown fields (422 "extra inputs are not permitted"), so only the parameters
  it declares are sent, plus its own extras (``safe_prompt``, ``prompt_mode``, ``prediction``,
  ``metadata``, ``guardrails``, ``prompt_cache_key``); ``reasoning``/``refusal``/``annotations``
  of earlier assistant turns are not sent back.
* A streamed tool call comes whole, without ``index`` or ``type`` (observed, vercel/ai
  ``mistral-tool-call.chunks.txt``): both are added, numbering calls in order of arrival.
* Magistral models send ``content`` as a list of chunks: ``{"type": "thinking", "thinking":
  [{"type": "text", "text": ...}]}`` parts become ``reasoning``, ``{"type": "text"}`` parts
  ``content`` (observed, ``mistral-reasoning.chunks.txt`` / ``.json``).
* ``finish_reason`` ``model_length`` is ``length``; ``error`` (the model failed mid-answer) is
  raised as :class:`ProviderError` / :class:`StreamError`, as it has no OpenAI equivalent.
* A 422 ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`` becomes
  :class:`InvalidRequestError` naming each field (``messages.0.role: Input should be ...``).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import httpx

from anyllm_cli.backends.openai import CHAT_PATH, OpenAIBackend
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    ProviderError,
    StreamError,
    error_from_response,
    status_of_error,
)
from anyllm_cli.types import ChatCompletion, ChatCompletionChunk, CompletionParams

Report = Callable[[str], None]

MISTRAL_EXTRAS = frozenset({"safe_prompt", "prompt_mode", "prediction", "metadata", "guardrails",
                            "prompt_cache_key", "random_seed"})
"""Request fields of Mistral's own, accepted as extras (``-o safe_prompt=true``)."""

_MESSAGE_FIELDS = {
    "system": ("role", "content"),
    "user": ("role", "content"),
    "assistant": ("role", "content", "tool_calls", "prefix"),
    "tool": ("role", "content", "tool_call_id", "name"),
}
"""Fields of Mistral's message types (``SystemMessage``, ``UserMessage``, ...)."""


def _warn(message: str) -> None:
    warnings.warn(message, AnyLLMWarning, stacklevel=3)


class MistralBackend(OpenAIBackend):
    """The ``mistral`` wire API (api.mistral.ai and hosts of Mistral's own API)."""

    PASSES_EXTRA: ClassVar[bool] = False
    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = frozenset({
        "tools", "tool_choice", "temperature", "top_p", "max_tokens", "max_completion_tokens",
        "n", "stop", "stream", "seed", "presence_penalty", "frequency_penalty",
        "response_format", "parallel_tool_calls", "reasoning_effort",
    })

    def _parse_error(self, response: httpx.Response, body: Any) -> AnyLLMError | None:
        return parse_validation_error(response, body, provider=self.provider.name)

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        return [k for k in extra if k not in MISTRAL_EXTRAS]

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        body = self._convert_completion_params(params, self.report_unsupported)
        data = await self.transport.post_json(CHAT_PATH, body)
        return self._convert_completion_response(data, provider=self.provider.name)

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        body = self._convert_completion_params(params, self.report_unsupported)
        state = MistralStreamState(provider=self.provider.name)
        async with self.transport.stream("POST", CHAT_PATH, json_body=body,
                                         headers={"accept": "text/event-stream"}) as opened:
            async for event in opened.aiter_sse():
                if event.data == "[DONE]":
                    return
                chunk = self._convert_completion_chunk_response(event.data, state)
                if chunk is not None:
                    yield chunk

    # --- conversions (pure) ------------------------------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams,
                                   report: Report | None = None) -> dict[str, Any]:
        """CompletionParams -> the JSON body of Mistral's ``POST /chat/completions``."""
        say = report or _warn
        body = OpenAIBackend._convert_completion_params(params)
        body["messages"] = [_convert_message(m) for m in params.messages]
        body.pop("stream_options", None)
        if "seed" in body:
            body["random_seed"] = body.pop("seed")
        if "max_completion_tokens" in body:
            body["max_tokens"] = body.pop("max_completion_tokens")
        choice = body.get("tool_choice")
        if choice == "required":
            body["tool_choice"] = "any"
        elif isinstance(choice, dict) and choice.get("type") != "function":
            say(f"mistral: tool_choice of type {choice.get('type')!r} is not supported; "
                "sent 'any'")
            body["tool_choice"] = "any"
        return body

    @staticmethod
    def _convert_completion_response(data: Any, *,
                                     provider: str | None = None) -> ChatCompletion:
        """A Mistral ``chat.completion`` -> :class:`ChatCompletion` (list content split into
        ``content`` and ``reasoning``; ``model_length`` -> ``length``).

        Raises :class:`ProviderError` for ``finish_reason: "error"`` and the mapped
        :class:`AnyLLMError` for an error body.
        """
        if isinstance(data, dict) and isinstance(data.get("choices"), list):
            data = copy.copy(data)
            data["choices"] = [_normalize_choice(c, "message", provider)
                               for c in data["choices"]]
        return OpenAIBackend._convert_completion_response(data, provider=provider)

    @staticmethod
    def _convert_completion_chunk_response(data: str | bytes | dict[str, Any],  # type: ignore[override]
                                           state: MistralStreamState | None = None
                                           ) -> ChatCompletionChunk | None:
        """One SSE ``data`` payload -> :class:`ChatCompletionChunk` (None for an empty one).

        ``state`` numbers tool calls that arrive without ``index`` across the stream.
        Raises as :meth:`OpenAIBackend._convert_completion_chunk_response`, and
        :class:`StreamError` for ``finish_reason: "error"``.
        """
        state = state or MistralStreamState()
        return state.convert(data)


class MistralStreamState:
    """Per-stream state: the next tool-call ``index`` to give a call that has none. No I/O."""

    def __init__(self, *, provider: str | None = None) -> None:
        self.provider = provider
        self.next_index = 0

    def convert(self, data: str | bytes | dict[str, Any]) -> ChatCompletionChunk | None:
        if not isinstance(data, dict):
            if not data.strip():
                return None
            raw = data
            try:
                data = json.loads(raw)
            except ValueError:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                raise StreamError(f"Stream failed: malformed chunk (not JSON): {text[:120]}",
                                  provider=self.provider) from None
        if not isinstance(data, dict):
            raise StreamError("Stream failed: malformed chunk (not an object)",
                              provider=self.provider)
        if data.get("object") == "error":  # Mistral's error shape: {"object": "error", ...}
            raise error_from_response(status_of_error(data), data, provider=self.provider)
        if isinstance(data.get("choices"), list) and not data.get("error"):
            data = copy.copy(data)
            choices = []
            for c in data["choices"]:
                c = _normalize_choice(c, "delta", self.provider, stream=True)
                delta = c.get("delta") or {}
                if delta.get("tool_calls"):
                    delta["tool_calls"] = [self._indexed(tc) for tc in delta["tool_calls"]]
                choices.append(c)
            data["choices"] = choices
        return OpenAIBackend._convert_completion_chunk_response(data, provider=self.provider)

    def _indexed(self, call: dict[str, Any]) -> dict[str, Any]:
        call = dict(call)
        if call.get("index") is None:
            call["index"] = self.next_index
            call.setdefault("type", "function")
        self.next_index = max(self.next_index, int(call["index"]) + 1)
        fn = call.get("function")
        if isinstance(fn, dict) and fn.get("name") == "":
            # Later fragments of an incremental call repeat an empty name; OpenAI omits it.
            call["function"] = {k: v for k, v in fn.items() if k != "name"}
        return call


# --- helpers (pure) --------------------------------------------------------------------------


def _convert_message(message: dict[str, Any]) -> dict[str, Any]:
    role = "system" if message.get("role") == "developer" else message.get("role", "user")
    fields = _MESSAGE_FIELDS.get(role, ("role", "content"))
    out = {k: v for k, v in message.items() if k in fields and v is not None}
    out["role"] = role
    return out


def _normalize_choice(choice: Any, key: str, provider: str | None, *, stream: bool = False
                      ) -> Any:
    """Split list ``content`` into text and thinking; map Mistral's extra finish reasons."""
    if not isinstance(choice, dict):
        return choice
    choice = dict(choice)
    finish = choice.get("finish_reason")
    if finish == "model_length":
        choice["finish_reason"] = "length"
    elif finish == "error":
        cls: type[AnyLLMError] = StreamError if stream else ProviderError
        raise cls("Mistral reported an error while generating the reply (finish_reason "
                  "'error')", provider=provider)
    message = choice.get(key)
    if isinstance(message, dict) and isinstance(message.get("content"), list):
        message = dict(message)
        text, thinking = _split_content(message["content"])
        message["content"] = text
        if thinking:
            message["reasoning"] = thinking
        choice[key] = message
    return choice


def _split_content(parts: list[Any]) -> tuple[str, str]:
    """Mistral content chunks -> (text, thinking)."""
    text: list[str] = []
    thinking: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            text.append(str(part.get("text") or ""))
        elif part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            else:
                thinking.extend(str(p.get("text") or "") for p in inner or []
                                if isinstance(p, dict) and p.get("type") == "text")
    return "".join(text), "".join(thinking)


def parse_validation_error(response: httpx.Response, body: Any, *, provider: str | None = None
                           ) -> AnyLLMError | None:
    """A 422 ``HTTPValidationError`` -> :class:`InvalidRequestError` naming each field; else
    None (the default mapping reads Mistral's ``{"message": ...}`` bodies)."""
    if not isinstance(body, dict) or not isinstance(body.get("detail"), list):
        return None
    parts = []
    for item in body["detail"]:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc") or [] if p != "body"]
        msg = str(item.get("msg") or item.get("type") or "invalid")
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    if not parts:
        return None
    error = error_from_response(response.status_code, {"message": "; ".join(parts)},
                                provider=provider)
    error.body = body
    return error


BACKEND = MistralBackend
