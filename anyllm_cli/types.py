"""The OpenAI chat-completions data model, shared by every backend.

Shapes follow OpenAI's API reference (`CreateChatCompletionResponse`,
`CreateChatCompletionStreamResponse`, `CreateChatCompletionRequest` in openai/openai-openapi).
Every backend converts its provider's wire format into these models, and they serialise back
into exactly OpenAI's JSON with :meth:`OpenAIModel.to_dict` / :meth:`OpenAIModel.to_json`.

One extension: messages and deltas carry ``reasoning`` (the model's "thinking" text), kept apart
from ``content``. It is read from ``reasoning`` or ``reasoning_content`` (DeepSeek, xAI) and is
omitted from the JSON when empty.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
Role = Literal["developer", "system", "user", "assistant", "tool"]

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionParams",
    "CompletionUsage",
    "FinishReason",
    "Function",
    "Message",
    "Model",
    "OpenAIModel",
    "Role",
]


class OpenAIModel(BaseModel):
    """Base of the response models: keeps unknown provider fields, drops null optionals on output.

    OpenAI marks some fields required-but-nullable (``message.content``, ``choice.finish_reason``):
    those are listed in ``_keep_null`` and always serialised, as ``null`` when unset. Any other
    field that is ``None`` is omitted, as the OpenAI API does.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    _keep_null: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_null_optionals(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        keep = self._keep_null
        return {k: v for k, v in data.items() if v is not None or k in keep}

    def to_dict(self) -> dict[str, Any]:
        """The object as OpenAI's JSON shape (a plain dict)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        """The object as one line of OpenAI JSON."""
        return self.model_dump_json(by_alias=True)


# --- usage -----------------------------------------------------------------------------------


class CompletionUsage(OpenAIModel):
    """Token counts of one request (OpenAI `CompletionUsage`). Units: tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: dict[str, Any] | None = None
    prompt_tokens_details: dict[str, Any] | None = None


# --- tool calls ------------------------------------------------------------------------------


class Function(OpenAIModel):
    """A function call: ``arguments`` is the JSON-encoded argument object, as the model wrote it."""

    name: str
    arguments: str = ""


class ChatCompletionMessageToolCall(OpenAIModel):
    id: str
    type: Literal["function"] = "function"
    function: Function


class ChoiceDeltaToolCallFunction(OpenAIModel):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(OpenAIModel):
    """One fragment of a streamed tool call; fragments with the same ``index`` concatenate."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaToolCallFunction | None = None


# --- logprobs --------------------------------------------------------------------------------


class ChoiceLogprobs(OpenAIModel):
    """Per-token log probabilities; items keep OpenAI's `ChatCompletionTokenLogprob` shape."""

    _keep_null = frozenset({"content", "refusal"})

    content: list[dict[str, Any]] | None = None
    refusal: list[dict[str, Any]] | None = None


# --- non-streaming response ------------------------------------------------------------------


class ChatCompletionMessage(OpenAIModel):
    """The assistant's reply (OpenAI `ChatCompletionResponseMessage`) plus ``reasoning``."""

    _keep_null = frozenset({"content", "refusal"})

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    reasoning: str | None = Field(
        default=None, validation_alias=AliasChoices("reasoning", "reasoning_content")
    )
    annotations: list[dict[str, Any]] | None = None


class Choice(OpenAIModel):
    _keep_null = frozenset({"finish_reason", "logprobs"})

    index: int = 0
    message: ChatCompletionMessage
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(OpenAIModel):
    """A whole reply (OpenAI `chat.completion` object). ``created`` is Unix seconds."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


# --- streaming response ----------------------------------------------------------------------


class ChoiceDelta(OpenAIModel):
    """What one chunk adds to a choice (OpenAI `ChatCompletionStreamResponseDelta`)."""

    role: Role | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    reasoning: str | None = Field(
        default=None, validation_alias=AliasChoices("reasoning", "reasoning_content")
    )


class ChunkChoice(OpenAIModel):
    _keep_null = frozenset({"finish_reason"})

    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(OpenAIModel):
    """One streamed piece of a reply (OpenAI `chat.completion.chunk`).

    The usage chunk that ends a stream has ``choices == []`` and ``usage`` set.
    """

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


class Model(OpenAIModel):
    """One entry of a provider's model list (OpenAI ``Model``); ``created`` is Unix seconds."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = ""


# --- request ---------------------------------------------------------------------------------

Message = dict[str, Any]
"""A request message in OpenAI's shape: ``{"role": "user", "content": "..."}`` and so on."""


class CompletionParams(BaseModel):
    """Every chat-completions request parameter, declared once.

    Names, types and meanings are OpenAI's (`CreateChatCompletionRequest`). Each backend converts
    this into its provider's request body in ``_convert_completion_params``. Parameters not
    declared here are kept in :attr:`extra` and passed to providers that speak OpenAI's wire
    format as-is (e.g. vLLM's ``top_k``); a native backend that cannot express one warns.

    Units: ``max_tokens``/``max_completion_tokens`` are tokens; ``temperature`` 0–2; ``top_p``
    0–1; penalties −2..2.
    """

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    reasoning_effort: str | None = None

    @property
    def extra(self) -> dict[str, Any]:
        """Parameters given that this model does not declare (provider-specific extras)."""
        return dict(self.model_extra or {})

    def set_params(self) -> dict[str, Any]:
        """The declared parameters that were given a value (not None), without model/messages."""
        out = {
            k: v
            for k, v in self.__dict__.items()
            if v is not None and k not in ("model", "messages")
        }
        return out
