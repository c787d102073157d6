"""OpenAI Chat Completions, and every host that speaks it (Groq, DeepSeek, OpenRouter, vLLM, ...).

Source: OpenAI API reference, ``POST /v1/chat/completions`` (openai/openai-openapi
``CreateChatCompletionRequest`` / ``CreateChatCompletionResponse`` /
``CreateChatCompletionStreamResponse``); host quirks in shared/reference/wire-formats.md §1.2.
The stream is SSE, data-only, ended by ``data: [DONE]``; an ``error`` object may arrive inside a
200 stream (Groq, OpenRouter) and is raised as the matching :class:`AnyLLMError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import httpx
from pydantic import ValidationError

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.errors import (
    AnyLLMError,
    StreamError,
    error_from_response,
    status_of_error,
    validation_error_text,
)
from anyllm_cli.transport.http import HTTPTransport, transport_options
from anyllm_cli.types import ChatCompletion, ChatCompletionChunk, CompletionParams, Model

CHAT_PATH = "chat/completions"


class OpenAIBackend(AnyLLM):
    """The ``openai`` wire API. Undeclared parameters (``-o top_k=40``) are sent as-is."""

    PASSES_EXTRA: ClassVar[bool] = True

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        key, hint = self._resolve_api_key(api_key, kwargs)
        base = self._api_base(api_base)
        headers = {"accept": "application/json", **self.provider.headers}
        if key:
            headers["authorization"] = f"Bearer {key}"
        self.transport = HTTPTransport(
            provider=self.provider.name, base_url=base, headers=headers,
            options=transport_options(kwargs), key_hint=hint, error_parser=self._parse_error)

    def _chat_path(self, body: dict[str, Any]) -> str:
        """The request path, relative to the base URL (Azure routes by deployment)."""
        return CHAT_PATH

    def _parse_error(self, response: httpx.Response, body: Any) -> AnyLLMError | None:
        """Hook for hosts whose error bodies are not OpenAI's: a specific error, or None for
        the default mapping (``errors.error_from_response``)."""
        return None

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def alist_models(self) -> list[Model]:
        """``GET /models`` (OpenAI ``ListModelsResponse``)."""
        data = await self.transport.get_json("models")
        items = data.get("data", []) if isinstance(data, dict) else []
        return [Model.model_validate(m) for m in items if isinstance(m, dict) and "id" in m]

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        body = self._convert_completion_params(params, self.report_unsupported)
        data = await self.transport.post_json(self._chat_path(body), body)
        return self._convert_completion_response(data, provider=self.provider.name)

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        body = self._convert_completion_params(params, self.report_unsupported)
        if self.provider.capabilities.stream_usage and "stream_options" not in body:
            body["stream_options"] = {"include_usage": True}
        name = self.provider.name
        async with self.transport.stream("POST", self._chat_path(body), json_body=body,
                                         headers={"accept": "text/event-stream"}) as opened:
            async for event in opened.aiter_sse():
                if event.data == "[DONE]":
                    return
                chunk = self._convert_completion_chunk_response(event.data, provider=name)
                if chunk is not None:
                    yield chunk

    # --- conversions (pure) ------------------------------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams,
                                   report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """CompletionParams -> the JSON body of ``POST /chat/completions`` (same names; nothing
        is translated, so nothing is reported)."""
        body: dict[str, Any] = {"model": params.model, "messages": params.messages}
        body.update(params.set_params())
        body.update(params.extra)
        return body

    @staticmethod
    def _convert_completion_response(data: Any, *, provider: str | None = None) -> ChatCompletion:
        """A ``chat.completion`` JSON object -> :class:`ChatCompletion`.

        Raises :class:`AnyLLMError` when the body is an error object or not a completion.
        """
        if isinstance(data, dict) and data.get("error"):
            raise error_from_response(status_of_error(data["error"]), data, provider=provider)
        try:
            return ChatCompletion.model_validate(data)
        except ValidationError as exc:
            raise AnyLLMError(f"Malformed response: not a chat completion ({_problem(exc)})",
                              provider=provider) from None

    @staticmethod
    def _convert_completion_chunk_response(data: str | bytes | dict[str, Any], *,
                                           provider: str | None = None
                                           ) -> ChatCompletionChunk | None:
        """One SSE ``data`` payload -> :class:`ChatCompletionChunk` (None for an empty payload).

        Raises the mapped :class:`AnyLLMError` for an in-stream ``error`` object and
        :class:`StreamError` for a payload that is not a chunk.
        """
        if isinstance(data, dict):
            obj: Any = data
        else:
            if not data.strip():
                return None
            # Fast path: pydantic parses the JSON itself; only payloads that mention "error"
            # are decoded twice to look for a top-level error object.
            has_error = ('"error"' in data) if isinstance(data, str) else (b'"error"' in data)
            if not has_error:
                try:
                    return ChatCompletionChunk.model_validate_json(data)
                except ValidationError as exc:
                    raise StreamError(f"Stream failed: malformed chunk ({_problem(exc)}): "
                                      f"{_preview(data)}", provider=provider) from None
            try:
                obj = json.loads(data)
            except ValueError:
                raise StreamError(f"Stream failed: malformed chunk (not JSON): {_preview(data)}",
                                  provider=provider) from None
        if isinstance(obj, dict) and obj.get("error"):
            raise error_from_response(status_of_error(obj["error"]), obj, provider=provider)
        try:
            return ChatCompletionChunk.model_validate(obj)
        except ValidationError as exc:
            raise StreamError(f"Stream failed: malformed chunk ({_problem(exc)}): {_preview(data)}",
                              provider=provider) from None


def _problem(exc: ValidationError) -> str:
    loc, msg = validation_error_text(exc)
    return f"{loc}: {msg}"


def _preview(data: str | bytes | dict[str, Any]) -> str:
    text = data if isinstance(data, str) else (
        data.decode("utf-8", "replace") if isinstance(data, bytes) else json.dumps(data))
    return text[:120] + ("…" if len(text) > 120 else "")


BACKEND = OpenAIBackend
