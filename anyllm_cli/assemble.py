"""Reassemble a stream of :class:`ChatCompletionChunk` into one :class:`ChatCompletion`.

Merging rules follow OpenAI's streaming contract (wire-formats.md §1, §0.1): choices by ``index``;
``content``, ``reasoning`` and ``refusal`` concatenate; tool-call fragments concatenate by their
``index`` (``id``, ``type`` and ``name`` from the first fragment that has them); the last non-null
``finish_reason`` and ``usage`` win; logprob token lists concatenate. Provider extras on a delta or
a tool-call fragment (e.g. Gemini's ``extra_content`` thought signatures, which must go back to
the provider next turn) are kept on the message or tool call: lists concatenate (Anthropic's
``thinking_blocks``, one per finished block), any other value is last non-null wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anyllm_cli.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    Choice,
    ChoiceLogprobs,
    CompletionUsage,
    FinishReason,
    Function,
)


@dataclass
class _ToolCallParts:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _ChoiceParts:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: FinishReason | None = None
    logprobs_content: list[dict[str, Any]] | None = None
    logprobs_refusal: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChunkAccumulator:
    """Feed chunks with :meth:`add`; :meth:`result` returns the merged completion."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.system_fingerprint: str | None = None
        self.usage: CompletionUsage | None = None
        self.choices: dict[int, _ChoiceParts] = {}
        self.count = 0

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.count += 1
        if not self.id:
            self.id, self.model, self.created = chunk.id, chunk.model, chunk.created
        if chunk.system_fingerprint:
            self.system_fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            parts = self.choices.setdefault(choice.index, _ChoiceParts())
            delta = choice.delta
            if delta.content:
                parts.content.append(delta.content)
            if delta.reasoning:
                parts.reasoning.append(delta.reasoning)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            if delta.model_extra:
                _keep(parts.extra, delta.model_extra)
            for tc in delta.tool_calls or ():
                call = parts.tool_calls.setdefault(tc.index, _ToolCallParts())
                if tc.model_extra:
                    _keep(call.extra, tc.model_extra)
                if tc.id and not call.id:
                    call.id = tc.id
                if tc.function is not None:
                    if tc.function.name and not call.name:
                        call.name = tc.function.name
                    if tc.function.arguments:
                        call.arguments.append(tc.function.arguments)
            if choice.finish_reason:
                parts.finish_reason = choice.finish_reason
            if choice.logprobs is not None:
                if choice.logprobs.content is not None:
                    parts.logprobs_content = (parts.logprobs_content or []) + \
                        choice.logprobs.content
                if choice.logprobs.refusal is not None:
                    parts.logprobs_refusal = (parts.logprobs_refusal or []) + \
                        choice.logprobs.refusal

    def result(self) -> ChatCompletion:
        choices = []
        for index in sorted(self.choices):
            p = self.choices[index]
            tool_calls = [
                ChatCompletionMessageToolCall(
                    id=c.id or f"call_{index}_{i}",
                    function=Function(name=c.name or "", arguments="".join(c.arguments)),
                    **c.extra)
                for i, c in sorted(p.tool_calls.items())
            ] or None
            message = ChatCompletionMessage(
                content="".join(p.content) if p.content or not (tool_calls or p.refusal) else None,
                refusal="".join(p.refusal) or None,
                reasoning="".join(p.reasoning) or None,
                tool_calls=tool_calls,
                **p.extra,
            )
            logprobs = None
            if p.logprobs_content is not None or p.logprobs_refusal is not None:
                logprobs = ChoiceLogprobs(content=p.logprobs_content, refusal=p.logprobs_refusal)
            choices.append(Choice(index=index, message=message, finish_reason=p.finish_reason,
                                  logprobs=logprobs))
        return ChatCompletion(id=self.id, created=self.created, model=self.model, choices=choices,
                              usage=self.usage, system_fingerprint=self.system_fingerprint)


def _keep(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if value is None:
            continue
        previous = into.get(key)
        if isinstance(value, list) and isinstance(previous, list):
            into[key] = previous + value
        else:
            into[key] = value
