"""The shared HTTP layer: one ``httpx.AsyncClient`` per backend instance, timeouts, retries.

Retries follow the official OpenAI and Anthropic SDKs (shared/reference/wire-formats.md §0.3):
408, 409, 429 and 5xx responses and connection failures are retried with exponential backoff and
jitter, honouring ``x-should-retry``, ``retry-after-ms`` and ``Retry-After`` (seconds or an HTTP
date). A stream is retried only until its response headers arrive: once the first chunk reached
the caller, a failure is raised, never replayed.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from anyllm_cli.errors import (
    AnyLLMError,
    APIConnectionError,
    APITimeoutError,
    RateLimitError,
    StreamError,
    error_from_response,
    redact,
)
from anyllm_cli.transport.eventstream import EventStreamDecoder, EventStreamMessage
from anyllm_cli.transport.ndjson import NDJSONDecoder
from anyllm_cli.transport.sse import ServerSentEvent, SSEDecoder

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass(slots=True)
class TransportOptions:
    """Timeouts in seconds; ``timeout`` bounds each of connect, read (the gap between two reads
    of a stream), write and pool wait; ``total_timeout`` bounds a whole request including the
    stream (None: unbounded). ``max_retries`` counts retries after the first attempt."""

    timeout: float = 60.0
    connect_timeout: float = 10.0
    total_timeout: float | None = None
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be a number of seconds or an HTTP date (RFC 9110 §10.2.3).
    Returns None when absent or unparsable.
    """
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    wait: float = when.timestamp() - (now if now is not None else time.time())
    return max(0.0, wait)


def transport_options(kwargs: Mapping[str, Any]) -> TransportOptions:
    """TransportOptions from the common ``acreate`` keywords (timeout, total_timeout,
    max_retries, backoff_base, connect_timeout); other keywords are ignored here."""
    opts = TransportOptions()
    for name in ("timeout", "total_timeout", "max_retries", "backoff_base", "connect_timeout"):
        value = kwargs.get(name)
        if value is not None:
            setattr(opts, name, value)
    return opts


def backoff_delay(attempt: int, opts: TransportOptions) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based), in seconds."""
    delay: float = min(opts.backoff_base * 2.0**attempt, opts.backoff_max)
    return delay * (1 - 0.25 * random.random())


ErrorParser = Callable[[httpx.Response, Any], AnyLLMError | None]
"""A backend hook that turns an error response (and its parsed body) into a specific error."""


class HTTPTransport:
    """Sends JSON requests for one backend instance and maps failures to :class:`AnyLLMError`.

    ``key_hint`` names where the API key came from (a variable name, never the key) for 401s.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        options: TransportOptions | None = None,
        key_hint: str | None = None,
        error_parser: ErrorParser | None = None,
        params: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        self.provider = provider
        self.options = options or TransportOptions()
        self.key_hint = key_hint
        self.error_parser = error_parser
        o = self.options
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/" if base_url else "",
            headers=dict(headers or {}),
            params=dict(params or {}),
            timeout=httpx.Timeout(o.timeout, connect=min(o.connect_timeout, o.timeout)),
            follow_redirects=False,
            auth=auth,  # e.g. SigV4 (Bedrock): signs every request, retries included
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def add_response_hook(self, hook: Callable[[httpx.Response], Awaitable[None]]) -> None:
        """Call ``hook`` with every response this transport receives, retries included,
        before its body is read."""
        hooks = self.client.event_hooks
        hooks["response"] = [*hooks.get("response", []), hook]
        self.client.event_hooks = hooks

    def _url(self, path: str) -> str:
        # Relative to the base URL so that "/v1" style prefixes in api_base are kept.
        return path.lstrip("/")

    async def post_json(self, path: str, body: Any, *, headers: Mapping[str, str] | None = None
                        ) -> Any:
        """POST ``body`` as JSON, return the parsed JSON reply. Retries as the module says."""
        async with self.stream("POST", path, json_body=body, headers=headers) as opened:
            return await opened.json()

    async def get_json(self, path: str) -> Any:
        """GET ``path`` and return the parsed JSON reply."""
        async with self.stream("GET", path) as opened:
            return await opened.json()

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[OpenResponse]:
        """Open a request, retrying until a 2xx response's headers arrive, and yield it.

        Read its body with :meth:`OpenResponse.aiter_bytes`, which maps read failures.
        Raises the mapped :class:`AnyLLMError` for an error status once retries are spent.
        """
        content = json.dumps(json_body, separators=(",", ":")).encode() if json_body is not None \
            else None
        req_headers = {"content-type": "application/json"} if content is not None else {}
        if headers:
            req_headers.update(headers)
        deadline = (time.monotonic() + self.options.total_timeout
                    if self.options.total_timeout else None)
        response = await self._send_with_retries(method, path, content, req_headers, deadline)
        try:
            yield OpenResponse(self, response, deadline)
        finally:
            await response.aclose()

    async def _send_with_retries(
        self, method: str, path: str, content: bytes | None, headers: dict[str, str],
        deadline: float | None,
    ) -> httpx.Response:
        opts = self.options
        attempt = 0
        while True:
            try:
                request = self.client.build_request(method, self._url(path), content=content,
                                                    headers=headers)
                response: httpx.Response = await self._with_deadline(
                    self.client.send(request, stream=True), deadline)
            except (httpx.TimeoutException, TimeoutError) as exc:
                error: AnyLLMError = APITimeoutError(
                    f"Timed out: no response from {self.provider} within "
                    f"{self._limit_text(exc)}", provider=self.provider)
                retry_after = None
            except httpx.TransportError as exc:
                error = APIConnectionError(
                    f"Connection failed: could not reach {self.provider} at "
                    f"{self.client.base_url}: {_exc_text(exc)}", provider=self.provider)
                retry_after = None
            else:
                if response.status_code < 400:
                    return response
                error, retry_after = await self._error_for(response)
                should = response.headers.get("x-should-retry")
                retryable = (should == "true") or (
                    should != "false" and response.status_code in RETRY_STATUSES)
                if not retryable:
                    raise error
            if attempt >= opts.max_retries:
                raise error
            if retry_after is not None and retry_after > opts.max_retry_after:
                raise error  # the server asks for a longer pause than a CLI user would wait
            delay = retry_after if retry_after is not None else backoff_delay(attempt, opts)
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise error
            attempt += 1
            await asyncio.sleep(delay)

    def _limit_text(self, exc: BaseException) -> str:
        if isinstance(exc, httpx.ConnectTimeout):
            return f"{min(self.options.connect_timeout, self.options.timeout):g} s (connect)"
        if isinstance(exc, TimeoutError) and self.options.total_timeout:
            return f"{self.options.total_timeout:g} s (total)"
        return f"{self.options.timeout:g} s"

    async def _error_for(self, response: httpx.Response) -> tuple[AnyLLMError, float | None]:
        try:
            raw = await response.aread()
        except httpx.HTTPError:
            raw = b""
        finally:
            await response.aclose()
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        retry_after = parse_retry_after(response.headers)
        error = self.error_parser(response, body) if self.error_parser else None
        if error is None:
            error = error_from_response(
                response.status_code, body, provider=self.provider, text=text,
                retry_after=retry_after, key_hint=self.key_hint)
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            retry_after = error.retry_after
        return error, retry_after

    @staticmethod
    async def _with_deadline(awaitable: Any, deadline: float | None) -> Any:
        if deadline is None:
            return await awaitable
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        async with asyncio.timeout(remaining):
            return await awaitable


class OpenResponse:
    """A response whose headers arrived with a 2xx status; its body not read yet."""

    __slots__ = ("deadline", "response", "transport")

    def __init__(self, transport: HTTPTransport, response: httpx.Response,
                 deadline: float | None) -> None:
        self.transport = transport
        self.response = response
        self.deadline = deadline

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The decoded body as it arrives; read failures become anyllm errors.

        A stall longer than the read timeout raises :class:`APITimeoutError`; a connection cut
        raises :class:`StreamError`. What was yielded before stays with the caller.
        """
        t = self.transport
        iterator = self.response.aiter_bytes().__aiter__()
        while True:
            try:
                piece = await t._with_deadline(iterator.__anext__(), self.deadline)
            except StopAsyncIteration:
                return
            except (httpx.TimeoutException, TimeoutError) as exc:
                raise APITimeoutError(
                    f"Timed out: the stream from {t.provider} stalled for "
                    f"{t._limit_text(exc)}", provider=t.provider) from None
            except httpx.DecodingError as exc:
                raise StreamError(f"Stream failed: undecodable body ({_exc_text(exc)})",
                                  provider=t.provider) from None
            except httpx.TransportError as exc:
                raise StreamError(
                    f"Stream failed: the connection to {t.provider} broke "
                    f"({_exc_text(exc)})", provider=t.provider) from None
            yield piece

    async def aiter_sse(self) -> AsyncIterator[ServerSentEvent]:
        """The body decoded as Server-Sent Events (including a last event with no blank line)."""
        decoder = SSEDecoder()
        async for piece in self.aiter_bytes():
            for event in decoder.feed(piece):
                yield event
        for event in decoder.close():
            yield event

    async def aiter_ndjson(self) -> AsyncIterator[Any]:
        """The body decoded as newline-delimited JSON values."""
        decoder = NDJSONDecoder()
        async for piece in self.aiter_bytes():
            for value in decoder.feed(piece):
                yield value
        for value in decoder.close():
            yield value

    async def aiter_eventstream(self) -> AsyncIterator[EventStreamMessage]:
        """The body decoded as AWS event-stream messages (CRC-checked)."""
        decoder = EventStreamDecoder(provider=self.transport.provider)
        async for piece in self.aiter_bytes():
            for message in decoder.feed(piece):
                yield message
        decoder.close()

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])

    async def json(self) -> Any:
        """The whole body parsed as JSON; raises :class:`AnyLLMError` when it is not JSON."""
        raw = await self.read()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise AnyLLMError(
                "Malformed response: the body is not JSON", provider=self.transport.provider,
                status_code=self.response.status_code,
                provider_message=raw[:200].decode(errors="replace"),
            ) from exc


def _exc_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact(text.splitlines()[0] if text else type(exc).__name__)
