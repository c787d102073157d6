"""Anthropic Messages API (Claude).

Source: Anthropic API reference, ``POST /v1/messages`` and ``GET /v1/models``
(platform.claude.com/docs/en/api; anthropics/anthropic-sdk-python types), summarised with
recorded examples in shared/reference/wire-formats.md §2. Auth is the ``x-api-key`` header with
``anthropic-version: 2023-06-01``. The stream is SSE with named events (``message_start``,
``content_block_start/delta/stop``, ``message_delta``, ``message_stop``, ``ping``, ``error``)
and ends with ``message_stop``; an ``error`` event inside a 200 stream is raised as the matching
:class:`AnyLLMError`.

The conversions are pure functions in :mod:`anyllm_cli.backends.anthropic_convert`: see there
for the mapping of each parameter (``max_tokens`` defaults to
:data:`~anyllm_cli.backends.anthropic_convert.DEFAULT_MAX_TOKENS` = 4096 because Anthropic
requires it; ``reasoning_effort`` low/medium/high -> thinking budgets of 1024/4096/16384
tokens) and for ``thinking_blocks``, which carries thinking signatures from one turn to the next.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

import httpx

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.backends.anthropic_convert import (
    NATIVE_EXTRAS,
    Report,
    StreamConverter,
    convert_message,
    convert_params,
    error_from_body,
)
from anyllm_cli.errors import AnyLLMError
from anyllm_cli.transport.http import HTTPTransport, parse_retry_after, transport_options
from anyllm_cli.types import ChatCompletion, ChatCompletionChunk, CompletionParams, Model

ANTHROPIC_VERSION = "2023-06-01"
MESSAGES_PATH = "messages"
MODELS_PAGE = 1000  # the largest page GET /v1/models allows


class AnthropicBackend(AnyLLM):
    """The ``anthropic`` wire API. Extras sent as they are: ``top_k``, ``thinking`` (replaces
    the one made from ``reasoning_effort``), ``metadata``, ``service_tier``, ``output_config``
    (merged with the structured-output format)."""

    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = frozenset({
        "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens",
        "max_completion_tokens", "stop", "response_format", "reasoning_effort", "user",
        # Accepted so that the harmless values (n=1, logprobs=false) pass quietly; the
        # conversion reports n > 1 and logprobs=true.
        "n", "logprobs",
    })

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        key, hint = self._resolve_api_key(api_key, kwargs)
        base = self._api_base(api_base)
        headers = {"accept": "application/json", "anthropic-version": ANTHROPIC_VERSION,
                   **self.provider.headers}
        if key:
            headers["x-api-key"] = key
        self.key_hint = hint
        self.transport = HTTPTransport(
            provider=self.provider.name, base_url=base, headers=headers,
            options=transport_options(kwargs), key_hint=hint, error_parser=self._parse_error)

    def _parse_error(self, response: httpx.Response, body: Any) -> AnyLLMError | None:
        """HTTP error with an Anthropic error body -> the matching error (None: not one)."""
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            return None
        return error_from_body(response.status_code, body, provider=self.provider.name,
                               key_hint=self.key_hint,
                               retry_after=parse_retry_after(response.headers))

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        return [name for name in extra if name not in NATIVE_EXTRAS]

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def alist_models(self) -> list[Model]:
        """``GET /v1/models``, every page (``data[].id``, ``created_at`` RFC 3339 -> Unix
        seconds). Raises :class:`AnyLLMError` as the transport does."""
        models: list[Model] = []
        after: str | None = None
        while True:
            path = f"models?limit={MODELS_PAGE}" + (f"&after_id={after}" if after else "")
            data = await self.transport.get_json(path)
            items = data.get("data", []) if isinstance(data, dict) else []
            models.extend(_model(m) for m in items if isinstance(m, dict) and "id" in m)
            if not (isinstance(data, dict) and data.get("has_more") and data.get("last_id")):
                return models
            after = str(data["last_id"])

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        body = self._convert_completion_params(params, self.report_unsupported)
        data = await self.transport.post_json(MESSAGES_PATH, body)
        return self._convert_completion_response(data, provider=self.provider.name)

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        body = self._convert_completion_params(params, self.report_unsupported)
        body["stream"] = True
        state = StreamConverter(provider=self.provider.name)
        async with self.transport.stream("POST", MESSAGES_PATH, json_body=body,
                                         headers={"accept": "text/event-stream"}) as opened:
            async for event in opened.aiter_sse():
                for chunk in self._convert_completion_chunk_response(event.data, state):
                    yield chunk
                if state.done:
                    return
        for chunk in state.close():
            yield chunk

    # --- conversions (pure) ------------------------------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams, report: Report | None = None
                                   ) -> dict[str, Any]:
        """CompletionParams -> the ``POST /v1/messages`` body; see
        :func:`~anyllm_cli.backends.anthropic_convert.convert_params`."""
        return convert_params(params, report)

    @staticmethod
    def _convert_completion_response(data: Any, *, provider: str | None = None
                                      ) -> ChatCompletion:
        """An Anthropic ``Message`` -> :class:`ChatCompletion`; see
        :func:`~anyllm_cli.backends.anthropic_convert.convert_message`."""
        return convert_message(data, provider=provider)

    @staticmethod
    def _convert_completion_chunk_response(data: str | bytes | dict[str, Any],
                                           state: StreamConverter) -> list[ChatCompletionChunk]:
        """One SSE ``data`` payload -> chunks, through the stream's ``state``; see
        :class:`~anyllm_cli.backends.anthropic_convert.StreamConverter`."""
        return state.convert(data)


def _model(item: dict[str, Any]) -> Model:
    created = 0
    stamp = item.get("created_at")
    if isinstance(stamp, str):
        try:
            created = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
        except ValueError:
            created = 0
    return Model(id=str(item["id"]), created=created, owned_by="anthropic",
                 display_name=item.get("display_name"))


BACKEND = AnthropicBackend
