"""anyllm: one interface to every LLM provider, in the OpenAI chat-completions shape.

Library use::

    from anyllm_cli import AnyLLM
    llm = await AnyLLM.acreate("anthropic")
    reply = await llm.acompletion(model="...", messages=[{"role": "user", "content": "Hi"}])

Names are imported lazily on first access, so ``import anyllm_cli`` (and ``anyllm --help``)
loads neither pydantic models, httpx nor any backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AnyLLM": "anyllm_cli.anyllm",
    "LLMProvider": "anyllm_cli.catalog",
    "ChunkAccumulator": "anyllm_cli.assemble",
}
_TYPES = ("ChatCompletion", "ChatCompletionChunk", "ChatCompletionMessage", "Choice",
          "ChunkChoice", "ChoiceDelta", "ChoiceDeltaToolCall", "ChatCompletionMessageToolCall",
          "CompletionParams", "CompletionUsage")
_ERRORS = ("AnyLLMError", "AnyLLMWarning", "APIConnectionError", "APITimeoutError",
           "AuthenticationError", "ConfigError", "ContextLengthExceededError",
           "InvalidParameterError", "InvalidRequestError", "MissingApiKeyError", "NotFoundError",
           "PermissionDeniedError", "ProviderError", "RateLimitError", "StreamError",
           "UnsupportedParameterError", "UnsupportedProviderError")
_EXPORTS.update({name: "anyllm_cli.types" for name in _TYPES})
_EXPORTS.update({name: "anyllm_cli.errors" for name in _ERRORS})

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from anyllm_cli.anyllm import AnyLLM as AnyLLM
    from anyllm_cli.assemble import ChunkAccumulator as ChunkAccumulator
    from anyllm_cli.catalog import LLMProvider as LLMProvider


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anyllm_cli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
