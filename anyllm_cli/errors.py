"""The error hierarchy. Every failure the library raises is an :class:`AnyLLMError`.

An error carries the provider name, the HTTP status (when there was a response) and the
provider's own message, and reads as two parts on one line, a short reason then the detail:
``Authentication failed: OPENAI_API_KEY was rejected by openai (401): Incorrect API key``.
API keys never appear in a message: :func:`redact` masks every secret registered with
:func:`register_secret` in any text an error carries.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AnyLLMError",
    "AnyLLMWarning",
    "AuthenticationError",
    "ConfigError",
    "ContextLengthExceededError",
    "InvalidParameterError",
    "InvalidRequestError",
    "MissingApiKeyError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "StreamError",
    "UnsupportedParameterError",
    "UnsupportedProviderError",
    "error_from_response",
    "redact",
    "redact_value",
    "register_secret",
    "status_of_error",
    "validation_error_text",
]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_re: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember a secret (an API key) so that :func:`redact` masks it everywhere."""
    global _secret_re
    if not value or len(value) < 4:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first so a key that contains another is masked whole.
        alts = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(s) for s in alts))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    pattern = _secret_re
    if pattern is None or not text:
        return text
    return pattern.sub("***", text)


def redact_value(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every registered secret masked."""
    if _secret_re is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class AnyLLMWarning(UserWarning):
    """A parameter was dropped, clamped or translated approximately for a provider."""


class AnyLLMError(Exception):
    """Base of every anyllm error.

    Attributes: ``provider`` (catalog name or None), ``status_code`` (HTTP status or None),
    ``provider_message`` (the provider's own error text, redacted), ``body`` (the parsed error body
    when it was JSON).
    """

    reason = "Request failed"
    exit_code = 1
    """The CLI's exit status for this error: 1 provider/network, 2 usage/config/input."""

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        body: Any = None,
    ) -> None:
        self.provider = provider
        self.status_code = status_code
        self.provider_message = redact(provider_message) if provider_message else None
        # The body may echo the key (OpenAI: "Incorrect API key provided: sk-..."), and batch
        # writes it to the output file: masked here, once, for every path that shows it.
        self.body = redact_value(body)
        self.detail = redact(message)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        head = self.detail or self.reason
        status = f"HTTP {self.status_code}" if self.status_code else ""
        where = [w for w in (self.provider, status) if w]
        if where:
            head = f"{head} ({', '.join(where)})"
        if self.provider_message and self.provider_message not in head:
            head = f"{head}: {self.provider_message}"
        return redact(head)


class ConfigError(AnyLLMError):
    """The configuration file or a profile is invalid (exit code 2)."""

    reason = "Configuration error"
    exit_code = 2


class MissingApiKeyError(AnyLLMError):
    """No API key could be found for a provider; names the variable(s) to set."""

    reason = "No API key"
    exit_code = 2


class UnsupportedProviderError(AnyLLMError):
    """The provider name is neither in the catalog nor in the user's config; lists the known."""

    reason = "Unknown provider"
    exit_code = 2


class UnsupportedParameterError(AnyLLMError):
    """A parameter the provider cannot take, under strict mode (exit code 2)."""

    reason = "Unsupported parameter"
    exit_code = 2


class AuthenticationError(AnyLLMError):
    """HTTP 401: the key was rejected."""

    reason = "Authentication failed"


class PermissionDeniedError(AnyLLMError):
    """HTTP 403: the key may not use this model or endpoint."""

    reason = "Permission denied"


class NotFoundError(AnyLLMError):
    """HTTP 404: unknown model or endpoint."""

    reason = "Not found"


class RateLimitError(AnyLLMError):
    """HTTP 429. ``retry_after`` is the delay the provider asked for, in seconds, if any."""

    reason = "Rate limited"

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class InvalidRequestError(AnyLLMError):
    """HTTP 400/409/413/422: the provider rejected the request."""

    reason = "Invalid request"


class InvalidParameterError(InvalidRequestError):
    """A parameter or message was malformed before anything was sent (exit code 2)."""

    reason = "Invalid parameter"
    exit_code = 2


class ContextLengthExceededError(InvalidRequestError):
    """The prompt plus the requested output exceeds the model's context window."""

    reason = "Context length exceeded"


class ProviderError(AnyLLMError):
    """HTTP 5xx, or any other failure reported by the provider."""

    reason = "Provider error"


class APITimeoutError(AnyLLMError):
    """No response, or no data for longer than the read timeout (seconds)."""

    reason = "Timed out"


class APIConnectionError(AnyLLMError):
    """The connection could not be made or was lost before a response."""

    reason = "Connection failed"


class StreamError(AnyLLMError):
    """The stream broke after it started: ended early, cut, or carried a malformed event.

    The chunks delivered before the error stay valid; the CLI keeps the partial answer.
    """

    reason = "Stream failed"


_CONTEXT_HINTS = ("context_length_exceeded", "context length", "maximum context", "too many tokens")


def _message_from_body(body: Any) -> str | None:
    """Pull the human message out of the error body shapes the providers use."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "msg", "detail"):
                val = err.get(key)
                if isinstance(val, str) and val:
                    return val
            if isinstance(err.get("detail"), list):  # Mistral 422 / FastAPI validation
                return "; ".join(str(d.get("msg", d)) for d in err["detail"] if d)
        if isinstance(err, str):
            return err
    if isinstance(body, list) and body:
        return _message_from_body(body[0])
    return None


def validation_error_text(exc: ValidationError) -> tuple[str, str]:
    """The first error of a pydantic ``ValidationError`` as ``(dotted location, message)``,
    for one-line messages that name the key."""
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]), str(err["msg"])


def status_of_error(error: Any) -> int:
    """The HTTP status an error object inside a 200 body stands for (Groq: ``status_code``;
    OpenRouter: ``code``; others: ``status``); 500 when it names none."""
    if isinstance(error, dict):
        for key in ("status_code", "code", "status"):
            value = error.get(key)
            if isinstance(value, int) and 400 <= value < 600:
                return value
    return 500


def error_from_response(
    status: int,
    body: Any,
    *,
    provider: str | None,
    text: str = "",
    retry_after: float | None = None,
    key_hint: str | None = None,
) -> AnyLLMError:
    """Map an HTTP error status and body to the right :class:`AnyLLMError` subclass.

    ``body`` is the parsed JSON body (or None); ``text`` the raw body used when no message can be
    found in it; ``key_hint`` names where the key came from (e.g. ``OPENAI_API_KEY``) for 401s.
    """
    message = _message_from_body(body) or (text.strip()[:500] if text else None)
    kw: dict[str, Any] = {
        "provider": provider,
        "status_code": status,
        "provider_message": message,
        "body": body,
    }
    if status == 401:
        detail = f"Authentication failed: {key_hint} was rejected" if key_hint else ""
        return AuthenticationError(detail, **kw)
    if status == 403:
        return PermissionDeniedError(**kw)
    if status == 404:
        return NotFoundError(**kw)
    if status == 429:
        return RateLimitError(retry_after=retry_after, **kw)
    if status in (400, 409, 413, 422):
        low = (message or "").lower() + str(body).lower()
        if any(h in low for h in _CONTEXT_HINTS):
            return ContextLengthExceededError(**kw)
        return InvalidRequestError(**kw)
    if status == 408:
        return APITimeoutError(**kw)
    return ProviderError(**kw)
