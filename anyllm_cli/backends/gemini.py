"""Google Gemini API (v1beta ``generateContent``), and Vertex AI's Gemini endpoint.

Source: ai.google.dev/api (``models.generateContent``, ``models.streamGenerateContent``,
``models.list``); shared/reference/wire-formats.md §3. Requests go to
``{api_base}/models/{model}:generateContent`` or ``:streamGenerateContent?alt=sse`` with the key
in ``x-goog-api-key``. The stream is SSE, one whole ``GenerateContentResponse`` per ``data:``
holding only the new parts, with no end marker: EOF ends it. Errors are
``{"error": {"code", "message", "status", "details"}}``; a 429's ``RetryInfo.retryDelay``
("34.4s") sets the wait before the transport retries.

Vertex AI speaks the same body format: a catalog entry with ``options.platform = "vertex"``
(``providers/vertex.toml``) sends ``Authorization: Bearer <token>`` instead, to
``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/
publishers/google/models/{model}:...``; ``{project}`` and ``{location}`` in ``api_base`` come from
``options.project`` / ``options.location``, else ``GOOGLE_CLOUD_PROJECT`` /
``GOOGLE_CLOUD_LOCATION`` (location default ``us-central1``; ``global`` uses
``aiplatform.googleapis.com``).

The conversions are pure functions in :mod:`anyllm_cli.backends.gemini_convert`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.backends.gemini_convert import (
    EXTRA_PARAMS,
    SUPPORTED_PARAMS,
    GeminiStream,
    Report,
    convert_models,
    convert_params,
    convert_response,
    google_error,
)
from anyllm_cli.errors import AnyLLMError, ConfigError
from anyllm_cli.transport.http import HTTPTransport, parse_retry_after, transport_options
from anyllm_cli.types import ChatCompletion, ChatCompletionChunk, CompletionParams, Model

DEFAULT_VERTEX_LOCATION = "us-central1"


def model_path(model: str) -> str:
    """The resource path of a model: ``gemini-2.5-flash`` -> ``models/gemini-2.5-flash``; a name
    that already has a collection (``models/...``, ``tunedModels/...``) is kept."""
    name = model.strip()
    return quote(name if "/" in name else f"models/{name}", safe="/-._~@")


def vertex_base(template: str, options: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Fill ``{project}`` / ``{location}`` in a Vertex ``api_base``.

    Raises :class:`ConfigError` when the template needs a project and none is configured.
    """
    location = str(options.get("location") or environ.get("GOOGLE_CLOUD_LOCATION")
                   or DEFAULT_VERTEX_LOCATION)
    project = options.get("project") or environ.get("GOOGLE_CLOUD_PROJECT")
    if "{project}" in template and not project:
        raise ConfigError("vertex needs a Google Cloud project: set GOOGLE_CLOUD_PROJECT or "
                          "options.project in the provider's config")
    base = template.replace("{project}", str(project or "")).replace("{location}", location)
    return base.replace("://global-aiplatform.", "://aiplatform.")


class GeminiBackend(AnyLLM):
    """The ``gemini`` wire API (Gemini API, or Vertex AI with ``options.platform = "vertex"``).

    Extras it understands: ``top_k``, ``thinking_budget``, ``include_thoughts``,
    ``safety_settings`` (see :data:`~anyllm_cli.backends.gemini_convert.EXTRA_PARAMS`).
    """

    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = SUPPORTED_PARAMS

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        key, hint = self._resolve_api_key(api_key, kwargs)
        options = self.provider.options
        self.vertex = options.get("platform") == "vertex"
        base = self._api_base(api_base)
        if self.vertex:
            base = vertex_base(base, options, os.environ)
        headers = {"accept": "application/json", **self.provider.headers}
        if key:
            if self.vertex:
                headers["authorization"] = f"Bearer {key}"
            else:
                headers["x-goog-api-key"] = key
        self.key_hint = hint
        self.transport = HTTPTransport(
            provider=self.provider.name, base_url=base, headers=headers,
            options=transport_options(kwargs), key_hint=hint, error_parser=self._parse_error)

    def _parse_error(self, response: httpx.Response, body: Any) -> AnyLLMError | None:
        """The transport's hook: Google error bodies, with RetryInfo and API_KEY_INVALID."""
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            return None
        return google_error(response.status_code, body, provider=self.provider.name,
                            retry_after=parse_retry_after(response.headers),
                            key_hint=self.key_hint)

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        return [name for name in extra if name not in EXTRA_PARAMS]

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def alist_models(self) -> list[Model]:
        """``GET /models`` (``ListModelsResponse``, all pages): the models that can chat.

        Raises :class:`AnyLLMError` on Vertex, which lists publisher models elsewhere.
        """
        if self.vertex:
            return await super().alist_models()
        models: list[Model] = []
        token = ""
        for _ in range(50):  # a bound in case a server keeps sending the same page token
            path = "models?pageSize=1000" + (f"&pageToken={quote(token)}" if token else "")
            data = await self.transport.get_json(path)
            models.extend(convert_models(data))
            token = str(data.get("nextPageToken") or "") if isinstance(data, dict) else ""
            if not token:
                break
        return models

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        body = self._convert_completion_params(params, self.report_unsupported)
        data = await self.transport.post_json(f"{model_path(params.model)}:generateContent",
                                              body)
        return self._convert_completion_response(data, model=params.model,
                                                 provider=self.provider.name)

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        body = self._convert_completion_params(params, self.report_unsupported)
        state = GeminiStream(params.model, provider=self.provider.name)
        path = f"{model_path(params.model)}:streamGenerateContent?alt=sse"
        async with self.transport.stream("POST", path, json_body=body,
                                         headers={"accept": "text/event-stream"}) as opened:
            async for event in opened.aiter_sse():
                if not event.data.strip():
                    continue
                for chunk in self._convert_completion_chunk_response(event.data, state):
                    yield chunk
        for chunk in state.finish():
            yield chunk

    # --- conversions (pure; see gemini_convert) ---------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams, report: Report | None = None
                                   ) -> dict[str, Any]:
        """CompletionParams -> ``GenerateContentRequest`` body; see
        :func:`~anyllm_cli.backends.gemini_convert.convert_params`."""
        return convert_params(params, report)

    @staticmethod
    def _convert_completion_response(data: Any, *, model: str, provider: str | None = None
                                     ) -> ChatCompletion:
        """``GenerateContentResponse`` -> ChatCompletion; see
        :func:`~anyllm_cli.backends.gemini_convert.convert_response`."""
        return convert_response(data, model=model, provider=provider)

    @staticmethod
    def _convert_completion_chunk_response(event: Any, state: GeminiStream
                                           ) -> list[ChatCompletionChunk]:
        """One stream event -> chunks, through the per-stream ``state``; see
        :class:`~anyllm_cli.backends.gemini_convert.GeminiStream`."""
        return state.convert(event)


BACKEND = GeminiBackend
