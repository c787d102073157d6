"""Azure OpenAI: the OpenAI chat-completions wire format on Azure's deployment URLs.

Source: openai/openai-python ``lib/azure.py`` (URL scheme, ``api-key`` header, deployment
routing) and Microsoft's Azure OpenAI REST reference; stream quirks observed in
``vercel__ai/packages/openai/src/chat/__fixtures__/azure-model-router.1.chunks.txt``
(wire-formats.md §1.1).

URLs. The endpoint is ``api_base``, else the catalog's ``api_base``, else
``$AZURE_OPENAI_ENDPOINT`` (``https://<resource>.openai.azure.com``):

* deployment API: ``{endpoint}/openai/deployments/{model}/chat/completions?api-version=V``,
  the model being the deployment name. ``V`` is ``options.api_version``, else
  ``$OPENAI_API_VERSION``, else :data:`DEFAULT_API_VERSION`. An endpoint that already names a
  deployment (``.../openai/deployments/<name>``) is used as it is.
* v1 API: an endpoint ending in ``/openai/v1`` gets plain ``/chat/completions`` with no
  api-version, and the deployment name as ``model`` in the body.

Auth: header ``api-key: <key>`` (``AZURE_OPENAI_API_KEY``), accepted by both APIs; with
``options.auth = "bearer"`` the key goes as ``Authorization: Bearer`` (a Microsoft Entra token).

Stream: chunks with no choices and no usage (the first one carries only
``prompt_filter_results``, with ``object: ""``) are skipped; ``content_filter_results`` are kept
as extra fields; ``finish_reason: "content_filter"`` is OpenAI's own value.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from anyllm_cli.backends.openai import CHAT_PATH, OpenAIBackend
from anyllm_cli.errors import ConfigError
from anyllm_cli.transport.http import HTTPTransport, transport_options
from anyllm_cli.types import ChatCompletionChunk

DEFAULT_API_VERSION = "2024-10-21"
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
API_VERSION_ENV = "OPENAI_API_VERSION"


def azure_urls(endpoint: str, api_version: str) -> tuple[str, dict[str, str], bool]:
    """An endpoint -> (base URL, query parameters, whether to route by deployment)."""
    base = endpoint.rstrip("/")
    if base.endswith("/openai/v1"):
        return base, {}, False
    if "/openai/deployments/" in base:
        return base, {"api-version": api_version}, False
    if not base.endswith("/openai"):
        base += "/openai"
    return base, {"api-version": api_version}, True


class AzureBackend(OpenAIBackend):
    """The ``azure`` wire API: OpenAI's, with Azure's URLs, auth header and stream quirks."""

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        key, hint = self._resolve_api_key(api_key, kwargs)
        endpoint = api_base or self.provider.api_base or os.environ.get(ENDPOINT_ENV)
        if not endpoint:
            raise ConfigError(
                f"{self.provider.name}: no endpoint: set {ENDPOINT_ENV} "
                "(https://<resource>.openai.azure.com) or api_base", provider=self.provider.name)
        options = self.provider.options
        version = str(kwargs.pop("api_version", None) or options.get("api_version")
                      or os.environ.get(API_VERSION_ENV) or DEFAULT_API_VERSION)
        base, query, route = azure_urls(endpoint, version)
        headers = {"accept": "application/json", **self.provider.headers}
        if key:
            if str(options.get("auth", "api-key")).lower() == "bearer":
                headers["authorization"] = f"Bearer {key}"
            else:
                headers["api-key"] = key
        self.route_deployments = route
        self.transport = HTTPTransport(
            provider=self.provider.name, base_url=base, headers=headers, params=query,
            options=transport_options(kwargs), key_hint=hint, error_parser=self._parse_error)

    def _chat_path(self, body: dict[str, Any]) -> str:
        """``deployments/{model}/chat/completions`` when the base URL names no deployment, as
        openai-python's AzureOpenAI routes it."""
        if self.route_deployments and body.get("model"):
            return f"deployments/{quote(str(body['model']), safe='')}/{CHAT_PATH}"
        return CHAT_PATH

    @staticmethod
    def _convert_completion_chunk_response(data: str | bytes | dict[str, Any], *,
                                           provider: str | None = None
                                           ) -> ChatCompletionChunk | None:
        """One SSE ``data`` payload -> chunk; None for Azure's filter-only chunks (no choices,
        no usage, e.g. the first one with ``prompt_filter_results``)."""
        if isinstance(data, dict):
            suspect = not data.get("choices")
        elif isinstance(data, str):
            suspect = "prompt_filter_results" in data or '"choices":[]' in data
        else:
            suspect = b"prompt_filter_results" in data or b'"choices":[]' in data
        if suspect:
            obj = data if isinstance(data, dict) else _loads(data)
            if isinstance(obj, dict) and not obj.get("choices") and not obj.get("usage") \
                    and not obj.get("error"):
                return None
        return OpenAIBackend._convert_completion_chunk_response(data, provider=provider)


def _loads(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None  # the OpenAI converter reports the malformed payload


BACKEND = AzureBackend
