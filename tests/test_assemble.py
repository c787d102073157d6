"""ChunkAccumulator: provider extras survive reassembly (they go back to the provider next turn)."""

from __future__ import annotations

from typing import Any

from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.types import ChatCompletionChunk


def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {"id": "c", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_extras_on_deltas_and_tool_calls_are_kept() -> None:
    acc = ChunkAccumulator()
    acc.add(chunk({"reasoning": "Think",
                   "thinking_blocks": [{"type": "thinking", "signature": "s1"}]}))
    acc.add(chunk({"content": "Hi", "thinking_blocks": [{"type": "thinking", "signature": "s2"}],
                   "extra_content": {"google": {"thought_signature": "old"}}}))
    acc.add(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "f", "arguments": "{\"a\""},
                                   "extra_content": {"google": {"thought_signature": "t"}}}]}))
    acc.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}],
                   "extra_content": {"google": {"thought_signature": "new"}}}, "tool_calls"))
    msg = acc.result().to_dict()["choices"][0]["message"]
    assert msg["content"] == "Hi" and msg["reasoning"] == "Think"
    # lists concatenate: both thinking blocks with their signatures, in order
    assert [b["signature"] for b in msg["thinking_blocks"]] == ["s1", "s2"]
    # other values: the last non-null wins
    assert msg["extra_content"] == {"google": {"thought_signature": "new"}}
    call = msg["tool_calls"][0]
    assert call["function"] == {"name": "f", "arguments": "{\"a\": 1}"}
    assert call["extra_content"] == {"google": {"thought_signature": "t"}}
