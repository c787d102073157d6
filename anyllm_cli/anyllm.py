"""The :class:`AnyLLM` base class: the contract every backend follows.

Usage::

    async with await AnyLLM.acreate("groq") as llm:
        reply = await llm.acompletion(model="llama-3.3-70b-versatile",
                                      messages=[{"role": "user", "content": "Hi"}])
        async for chunk in llm.acompletion_stream(messages=[...], temperature=0.2):
            ...

The parameters of ``acompletion`` / ``acompletion_stream`` are those of
:class:`~anyllm_cli.types.CompletionParams`, declared there once; this class validates them,
reports what the provider cannot take, and hands a ``CompletionParams`` to the backend's
``_acompletion`` / ``_acompletion_stream``. Backends convert with three pure static functions:
``_convert_completion_params`` (params -> native body), ``_convert_completion_response`` (native
reply -> ChatCompletion) and ``_convert_completion_chunk_response`` (native event -> chunk).
"""

from __future__ import annotations

import asyncio
import importlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import ValidationError

if TYPE_CHECKING:
    import httpx

from anyllm_cli.catalog import LLMProvider, get_provider
from anyllm_cli.errors import (
    AnyLLMError,
    AnyLLMWarning,
    InvalidParameterError,
    MissingApiKeyError,
    StreamError,
    UnsupportedParameterError,
    register_secret,
    validation_error_text,
)
from anyllm_cli.types import (
    ChatCompletion,
    ChatCompletionChunk,
    CompletionParams,
    Message,
    Model,
)


def backend_class(backend: str) -> type[AnyLLM]:
    """Import ``anyllm_cli.backends.<backend>`` (only now: start-up stays lean) and return its
    ``BACKEND`` class."""
    module = importlib.import_module(f"anyllm_cli.backends.{backend}")
    cls: type[AnyLLM] = module.BACKEND
    return cls


class AnyLLM(ABC):
    """A connection to one provider through its wire API.

    Construct with :meth:`acreate`. Keyword settings understood by every backend:
    ``strict`` (bool: refuse instead of warn about parameters the provider cannot take),
    ``timeout`` (seconds per connect/read/write; a stream may be silent that long),
    ``total_timeout`` (seconds for a whole request), ``max_retries``,
    ``api_key_env`` (a variable to read the key from, before the catalog's),
    ``api_key_cmd`` (a command that prints the key).
    """

    SUPPORTED_PARAMS: ClassVar[frozenset[str] | None] = None
    """CompletionParams this wire API can express; None means all of them."""
    PASSES_EXTRA: ClassVar[bool] = False
    """Whether undeclared parameters are sent to the provider as-is (OpenAI-compatible hosts)."""

    def __init__(
        self,
        provider: LLMProvider,
        api_key: str | None = None,
        api_base: str | None = None,
        *,
        strict: bool = False,
        **kwargs: Any,
    ) -> None:
        self.provider = provider
        self.strict = strict
        self._init_client(api_key, api_base, **kwargs)

    # --- construction ------------------------------------------------------------------------

    @classmethod
    async def acreate(
        cls,
        provider: str | LLMProvider,
        api_key: str | None = None,
        api_base: str | None = None,
        **kwargs: Any,
    ) -> AnyLLM:
        """Create the backend instance for ``provider`` (a catalog name or an entry).

        ``catalog`` (a mapping of name -> LLMProvider, e.g. from the user's config) may be passed
        to look names up in. Raises :class:`UnsupportedProviderError` for an unknown name and
        :class:`MissingApiKeyError` when the provider needs a key and none is found.
        """
        catalog = kwargs.pop("catalog", None)
        entry = provider if isinstance(provider, LLMProvider) else get_provider(provider, catalog)
        impl = backend_class(entry.backend)
        key_cmd = kwargs.pop("api_key_cmd", None)
        if api_key is None and key_cmd:
            from anyllm_cli.config import run_key_command

            api_key = await asyncio.to_thread(run_key_command, key_cmd, entry.name)
            kwargs.setdefault("key_hint", "api_key_cmd")
        return impl(entry, api_key, api_base, **kwargs)

    @abstractmethod
    def _init_client(self, api_key: str | None, api_base: str | None, **kwargs: Any) -> None:
        """Set up the client: resolve the key (see :meth:`_resolve_api_key`) and the transport."""

    def _resolve_api_key(
        self, api_key: str | None, kwargs: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        """The key and a hint naming where it came from (never the key itself).

        Takes ``api_key_env`` and ``key_hint`` out of the ``acreate`` keywords ``kwargs``.
        Order: the explicit ``api_key``, the variable ``api_key_env``, the catalog's variables.
        Raises :class:`MissingApiKeyError` naming the variables when the provider needs a key.
        """
        import os

        api_key_env: str | None = kwargs.pop("api_key_env", None)
        key_hint: str | None = kwargs.pop("key_hint", None)

        if api_key:
            register_secret(api_key)
            return api_key, key_hint or "the API key given"
        if api_key_env and os.environ.get(api_key_env):
            key = os.environ[api_key_env]
            register_secret(key)
            return key, api_key_env
        found = self.provider.key_from_env()
        if found:
            register_secret(found[1])
            return found[1], found[0]
        if self.provider.api_key_required:
            names = ([api_key_env] if api_key_env else []) + self.provider.api_key_env
            wanted = " or ".join(dict.fromkeys(names)) or "an api_key"
            raise MissingApiKeyError(
                f"No API key for {self.provider.name}: set {wanted}",
                provider=self.provider.name)
        return None, None

    def _api_base(self, api_base: str | None) -> str:
        """The base URL: the one given, else the catalog's. Raises :class:`AnyLLMError` when
        neither exists."""
        base = api_base or self.provider.api_base
        if not base:
            raise AnyLLMError(f"{self.provider.name}: no api_base configured",
                              provider=self.provider.name)
        return base

    # --- the public calls --------------------------------------------------------------------

    async def acompletion(
        self, model: str | None = None, messages: list[Message] | None = None, **kwargs: Any
    ) -> ChatCompletion:
        """One whole reply. ``kwargs`` are :class:`CompletionParams` fields (temperature,
        max_tokens, tools, ...) plus provider extras. ``model`` defaults to the catalog's.

        Raises :class:`InvalidParameterError` for a malformed parameter,
        :class:`UnsupportedParameterError` under strict mode, and the transport's
        :class:`AnyLLMError` subclasses for provider failures.
        """
        params = self.prepare_params(model, messages, kwargs, stream=False)
        return await self._acompletion(params)

    def acompletion_stream(
        self, model: str | None = None, messages: list[Message] | None = None, **kwargs: Any
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The reply as :class:`ChatCompletionChunk` objects, as they arrive.

        An async generator: leave early with ``contextlib.aclosing`` (or call ``aclose()``) so
        the connection is released at once.

        Raises as :meth:`acompletion`; in addition, :class:`StreamError` ("stream ended early")
        after the last chunk when the stream stopped before any choice had a finish reason.
        """
        params = self.prepare_params(model, messages, kwargs, stream=True)
        return self._checked_stream(params)

    async def _checked_stream(self, params: CompletionParams
                              ) -> AsyncGenerator[ChatCompletionChunk, None]:
        finished = False
        chunks = self._acompletion_stream(params)
        try:
            async for chunk in chunks:
                if not finished:
                    finished = any(c.finish_reason for c in chunk.choices)
                yield chunk
        finally:
            # Close the backend's generator (and its HTTP response) now when the caller stops
            # early, not later from the garbage collector on a closing event loop.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if not finished:
            raise StreamError("Stream failed: the stream ended early, before a finish reason",
                              provider=self.provider.name)

    @abstractmethod
    async def _acompletion(self, params: CompletionParams) -> ChatCompletion:
        """Send ``params`` (already checked) and return the converted reply."""

    @abstractmethod
    def _acompletion_stream(self, params: CompletionParams) -> AsyncIterator[ChatCompletionChunk]:
        """Send ``params`` with streaming and yield converted chunks."""

    def add_response_hook(self, hook: Callable[[httpx.Response], Awaitable[None]]) -> None:
        """Call ``hook`` with every HTTP response this instance receives, retries included
        (``anyllm batch`` uses it to pause the whole batch on a 429 and to read request ids).
        Backends without HTTP (``local``) have no responses: nothing is called."""
        from anyllm_cli.transport.http import HTTPTransport

        transport = getattr(self, "transport", None)
        if isinstance(transport, HTTPTransport):
            transport.add_response_hook(hook)

    @staticmethod
    def _convert_completion_params(params: CompletionParams,
                                   report: Callable[[str], None] | None = None) -> dict[str, Any]:
        """CompletionParams -> the provider's native request (pure). ``report`` is called with
        a message for every value clamped or content part dropped. Each backend defines it."""
        raise NotImplementedError

    async def alist_models(self) -> list[Model]:
        """The models the provider offers now (a live request where the provider has one).

        Raises :class:`AnyLLMError` when the provider has no model listing.
        """
        raise AnyLLMError(f"{self.provider.name} has no model listing",
                          provider=self.provider.name)

    # --- parameter checking ------------------------------------------------------------------

    def prepare_params(self, model: str | None, messages: list[Message] | None,
                       kwargs: dict[str, Any], *, stream: bool) -> CompletionParams:
        """Validate the call's parameters and drop (with a warning) or refuse (strict) those the
        provider cannot take."""
        model = model or kwargs.pop("model", None) or self.provider.default_model
        if messages is None:
            messages = kwargs.pop("messages", None)
        if not model:
            raise InvalidParameterError(f"no model given and {self.provider.name} has no default")
        if not messages:
            raise InvalidParameterError("messages must be a non-empty list")
        kwargs["stream"] = stream
        try:
            params = CompletionParams(model=model, messages=messages, **kwargs)
        except ValidationError as exc:
            loc, msg = validation_error_text(exc)
            raise InvalidParameterError(f"parameter {loc}: {msg}") from None
        for message in params.messages:
            if not isinstance(message, dict) or message.get("role") not in (
                    "system", "developer", "user", "assistant", "tool"):
                raise InvalidParameterError(f"invalid message (needs a known role): {message!r}")
        refused = set(self.provider.unsupported_params)
        supported = self.SUPPORTED_PARAMS
        drop: list[str] = []
        for name in params.set_params():
            if name in ("stream", "stream_options"):
                continue
            if name in refused or (supported is not None and name not in supported):
                drop.append(name)
        if not self.PASSES_EXTRA:
            drop.extend(self._unknown_extras(params.extra))
        for name in drop:
            self.report_unsupported(f"{self.provider.name} does not support the parameter "
                                    f"{name!r}; it was not sent", parameter=name)
            if name in type(params).model_fields:
                setattr(params, name, None)
            elif params.model_extra is not None:
                params.model_extra.pop(name, None)
        return params

    def _unknown_extras(self, extra: dict[str, Any]) -> list[str]:
        """Extras a non-passthrough backend cannot use; backends that know some override this."""
        return list(extra)

    def report_unsupported(self, message: str, *, parameter: str | None = None) -> None:
        """A parameter, value or content part the provider cannot carry: warn, or raise under
        strict mode. Backends call this for what they clamp or drop while converting."""
        if self.strict:
            raise UnsupportedParameterError(message, provider=self.provider.name)
        warnings.warn(message, AnyLLMWarning, stacklevel=3)

    # --- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:  # noqa: B027 - backends without resources keep the default
        """Release connections (and worker threads)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
