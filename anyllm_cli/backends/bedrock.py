"""AWS Bedrock through the Converse API: ``POST /model/{modelId}/converse`` and
``/converse-stream`` (binary ``application/vnd.amazon.eventstream``).

Source: Bedrock Runtime API reference and service model (boto/botocore
``botocore/data/bedrock-runtime/2023-09-30/service-2.json``); shared/reference/wire-formats.md §7.

Auth, in this order: a Bedrock API key (``AWS_BEARER_TOKEN_BEDROCK``, or the profile's key) as
``Authorization: Bearer``; else AWS SigV4 (signing name ``bedrock``) with the standard credential
chain of botocore (extra ``[bedrock]``: environment, shared files, SSO, container, instance
metadata). Region: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the catalog's ``options.region``, the
AWS profile's region, else ``us-east-1``. The conversions live in ``bedrock_convert.py``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Generator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.backends import bedrock_convert as conv
from anyllm_cli.backends.bedrock_convert import ConverseStreamConverter
from anyllm_cli.errors import (
    AnyLLMError,
    AuthenticationError,
    ConfigError,
    MissingApiKeyError,
    ProviderError,
    StreamError,
)
from anyllm_cli.transport.eventstream import EventStreamMessage
from anyllm_cli.transport.http import HTTPTransport, parse_retry_after, transport_options
from anyllm_cli.types import ChatCompletion, ChatCompletionChunk, CompletionParams, Model

DEFAULT_REGION = "us-east-1"
SIGNING_NAME = "bedrock"  # the service model's signingName (not "bedrock-runtime")
KEY_ENV = "AWS_BEARER_TOKEN_BEDROCK"
# Headers covered by the signature: what AWS requires (host, x-amz-*) plus the content type.
# Transport-level headers (connection, accept-encoding, content-length) are left out, so a proxy
# that rewrites them cannot break the signature.
SIGNED_HEADERS = frozenset({"content-type", "host"})


def model_path(model: str, operation: str) -> str:
    """``model/{modelId}/{operation}`` with the model id percent-encoded as one path segment
    (``:`` -> ``%3A``, ``/`` of an ARN -> ``%2F``)."""
    return f"model/{quote(model, safe='')}/{operation}"


def resolve_region(options: Mapping[str, Any], environ: Mapping[str, str] | None = None
                   ) -> str | None:
    """The region from ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or ``options["region"]``."""
    env = os.environ if environ is None else environ
    value = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or options.get("region")
    return str(value) if value else None


def sigv4_headers(method: str, url: str, headers: Mapping[str, str], body: bytes, *,
                  access_key: str, secret_key: str, token: str | None, region: str,
                  service: str = SIGNING_NAME, now: datetime | None = None) -> dict[str, str]:
    """The headers that sign one request with AWS Signature Version 4 (botocore's signer):
    ``Authorization``, ``X-Amz-Date`` and, with a session token, ``X-Amz-Security-Token``.

    ``url`` is exactly as sent (already percent-encoded); every header in ``headers`` is signed,
    plus ``host`` (from the URL when absent). ``now`` (UTC) defaults to the current time.
    Raises ImportError without botocore (extra ``[bedrock]``).
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer = SigV4Auth(Credentials(access_key, secret_key, token), service, region)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    # SigV4Auth.add_auth reads the clock itself; these are its steps with our timestamp, so the
    # same code path signs real requests and the AWS test-suite vectors.
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    out: dict[str, str] = {}
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        value = request.headers.get(name)
        if value:
            out[name] = value
    return out


class SigV4Auth(httpx.Auth):
    """httpx auth hook: signs each request as sent (every retry anew, with a fresh date).

    ``credentials`` is a botocore credentials object (refreshable ones refresh themselves).
    """

    requires_request_body = True

    def __init__(self, credentials: Any, region: str, service: str = SIGNING_NAME) -> None:
        self.credentials = credentials
        self.region = region
        self.service = service

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.exceptions import BotoCoreError

        try:
            frozen = self.credentials.get_frozen_credentials()
        except BotoCoreError as exc:  # an expired SSO session, a failing credential_process...
            raise AuthenticationError(f"Authentication failed: AWS credentials: {exc}",
                                      provider="bedrock") from None
        signed = {k: v for k, v in request.headers.items() if k.lower() in SIGNED_HEADERS
                  or k.lower().startswith("x-amz-")}
        request.headers.update(sigv4_headers(
            request.method, str(request.url), signed, request.content,
            access_key=frozen.access_key, secret_key=frozen.secret_key, token=frozen.token,
            region=self.region, service=self.service))
        yield request


def _aws_credentials(provider: str) -> tuple[Any, str | None]:
    """(botocore credentials or None, the profile's region) from the standard chain.

    Raises :class:`ConfigError` for a broken AWS configuration (an unknown AWS_PROFILE, ...).
    """
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return None, None
    try:
        session = botocore.session.Session()
        return session.get_credentials(), session.get_config_variable("region")
    except BotoCoreError as exc:
        raise ConfigError(f"AWS credentials: {exc}", provider=provider) from None


class BedrockBackend(AnyLLM):
    """The ``bedrock`` wire API (Converse). Extras: ``top_k`` and the native ConverseRequest
    members (``guardrailConfig``, ``serviceTier``, ``additionalModelRequestFields``, ...)."""

    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = frozenset({
        "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_tokens",
        "max_completion_tokens", "stop", "stream", "stream_options", "response_format",
        "reasoning_effort",
    })

    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        key, hint = self._resolve_api_key(api_key, kwargs)
        options = self.provider.options
        region = kwargs.pop("region", None) or resolve_region(options)
        headers = {"accept": "application/json", **self.provider.headers}
        credentials = None
        if key:
            headers["authorization"] = f"Bearer {key}"
        else:
            credentials, profile_region = _aws_credentials(self.provider.name)
            if credentials is None:
                raise MissingApiKeyError(
                    f"No API key for {self.provider.name}: set {KEY_ENV} (a Bedrock API key), "
                    "or AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                    "AWS_PROFILE; needs pip install 'anyllm-cli[bedrock]')",
                    provider=self.provider.name)
            region = region or profile_region
            hint = f"the AWS credentials ({getattr(credentials, 'method', None) or 'chain'})"
        self.region = region or DEFAULT_REGION
        base = (api_base or self.provider.api_base
                or f"https://bedrock-runtime.{self.region}.amazonaws.com")
        self.api_base = base.replace("{region}", self.region)
        self.transport = HTTPTransport(
            provider=self.provider.name, base_url=self.api_base, headers=headers,
            options=transport_options(kwargs), key_hint=hint, error_parser=self._parse_error,
            auth=SigV4Auth(credentials, self.region) if credentials is not None else None)

    def _parse_error(self, response: httpx.Response, body: Any) -> AnyLLMError | None:
        return conv.http_error(
            response.status_code, body, provider=self.provider.name,
            error_type=response.headers.get("x-amzn-errortype"),
            retry_after=parse_retry_after(response.headers), key_hint=self.transport.key_hint)

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        known = conv.MODEL_EXTRAS | conv.NATIVE_EXTRAS
        return [k for k in extra if k not in known]

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def alist_models(self) -> list[Model]:
        """``GET /foundation-models?byOutputModality=TEXT`` on the control-plane host
        (``bedrock.{region}.amazonaws.com``; Bedrock ``ListFoundationModels``). Lists base model
        ids; newer models are invoked through inference profiles (``us.`` / ``eu.`` prefixes)."""
        url = self.provider.options.get("models_api_base") or _control_plane(self.api_base)
        data = await self.transport.get_json(
            f"{str(url).rstrip('/')}/foundation-models?byOutputModality=TEXT")
        items = data.get("modelSummaries", []) if isinstance(data, dict) else []
        return [Model(id=m["modelId"], owned_by=str(m.get("providerName", "")))
                for m in items if isinstance(m, dict) and m.get("modelId")]

    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        body = self._convert_completion_params(params, self.report_unsupported)
        data = await self.transport.post_json(model_path(params.model, "converse"), body)
        return self._convert_completion_response(
            data, model=params.model, id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()), provider=self.provider.name)

    async def _acompletion_stream(self, params: CompletionParams
                                  ) -> AsyncIterator[ChatCompletionChunk]:
        body = self._convert_completion_params(params, self.report_unsupported)
        name = self.provider.name
        async with self.transport.stream(
                "POST", model_path(params.model, "converse-stream"), json_body=body,
                headers={"accept": "application/vnd.amazon.eventstream"}) as opened:
            request_id = opened.response.headers.get("x-amzn-requestid")
            converter = ConverseStreamConverter(
                id=f"chatcmpl-{request_id or uuid.uuid4().hex}", model=params.model,
                created=int(time.time()), provider=name)
            async for message in opened.aiter_eventstream():
                for chunk in converter.convert(event_of(message, provider=name)):
                    yield chunk

    # --- conversions (pure; in bedrock_convert.py) -------------------------------------------

    @staticmethod
    def _convert_completion_params(params: CompletionParams,
                                   report: conv.Report | None = None) -> dict[str, Any]:
        """CompletionParams -> Converse request body (``bedrock_convert.convert_params``)."""
        return conv.convert_params(params, report)

    @staticmethod
    def _convert_completion_response(data: Any, *, model: str, id: str, created: int,
                                     provider: str | None = None) -> ChatCompletion:
        """ConverseResponse JSON -> ChatCompletion (``bedrock_convert.convert_response``)."""
        return conv.convert_response(data, model=model, id=id, created=created, provider=provider)

    @staticmethod
    def _convert_completion_chunk_response(event: Mapping[str, Any],
                                           state: ConverseStreamConverter
                                           ) -> list[ChatCompletionChunk]:
        """One ConverseStream event (``{"contentBlockDelta": {...}}``) -> chunks."""
        return state.convert(event)



def event_of(message: EventStreamMessage, *, provider: str | None = None) -> dict[str, Any]:
    """An event-stream message -> a ConverseStreamOutput union ``{event-type: payload}``.

    Exception messages become ``{exception-type: payload}`` (the converter raises them); an
    ``error`` message raises :class:`ProviderError` here; a payload that is not JSON raises
    :class:`StreamError`.
    """
    kind = message.message_type
    if kind == "error":
        code = message.header(":error-code") or "error"
        text = message.header(":error-message") or message.payload.decode("utf-8", "replace")
        raise ProviderError(f"Stream failed: {code}: {text}", provider=provider)
    name = message.exception_type if kind == "exception" else message.event_type
    try:
        payload = json.loads(message.payload) if message.payload else {}
    except ValueError:
        raise StreamError(f"Stream failed: a {name} event is not JSON", provider=provider) \
            from None
    return {name or "unknown": payload}


def _control_plane(api_base: str) -> str:
    """``https://bedrock-runtime.X.amazonaws.com`` -> ``https://bedrock.X.amazonaws.com``; other
    bases (proxies, test servers) are used as they are."""
    parts = urlsplit(api_base)
    if parts.hostname and parts.hostname.startswith("bedrock-runtime."):
        host = parts.netloc.replace("bedrock-runtime.", "bedrock.", 1)
        return f"{parts.scheme}://{host}"
    return api_base


BACKEND = BedrockBackend
