"""The ``mistral`` backend on recorded Mistral traffic (vercel/ai ``packages/mistral`` fixtures).

``*.chunks.txt`` hold one recorded stream payload per line (text, a whole tool call without
``index``/``type``, an incremental tool call, Magistral thinking as list content); ``*.json``
whole replies. Conversions are checked as pure functions against a plain reassembly of each
recording made here; then end to end through ``anyllm chat -p mistral`` against the loopback
server, which replays the recorded payloads as SSE (``data: <line>`` then ``data: [DONE]``).
The fixtures hold no request bodies: requests are checked against Mistral's API reference.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.backends.mistral import MistralBackend, MistralStreamState
from anyllm_cli.errors import InvalidRequestError, ProviderError, StreamError
from anyllm_cli.types import ChatCompletionChunk, CompletionParams
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, json_response, sse_from_chunks

FIXTURES = Path(__file__).parent / "fixtures/vercel__ai/packages/mistral/src/__fixtures__"
STREAMS = sorted(FIXTURES.glob("*.chunks.txt"))
WHOLE = [FIXTURES / f"mistral-{n}.json" for n in ("text", "tool-call", "reasoning")]
KEY = {"MISTRAL_API_KEY": "mistral-test-key"}


def recorded_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def split_content(content: Any) -> tuple[str, str]:
    """(text, thinking) of a recorded content value: a string or Magistral's chunk list."""
    if isinstance(content, str) or content is None:
        return content or "", ""
    text = "".join(p["text"] for p in content if p["type"] == "text")
    thinking = "".join(t["text"] for p in content if p["type"] == "thinking"
                       for t in p["thinking"])
    return text, thinking


FINISH = {"model_length": "length"}


def expected_from_stream(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    text = thinking = ""
    tools: list[dict[str, Any]] = []
    by_index: dict[int, dict[str, Any]] = {}
    finish = usage = None
    for p in payloads:
        for c in p["choices"]:
            t, th = split_content(c["delta"].get("content"))
            text, thinking = text + t, thinking + th
            for tc in c["delta"].get("tool_calls") or []:
                if "index" in tc and tc["index"] in by_index:
                    by_index[tc["index"]]["args"] += tc["function"]["arguments"]
                    continue
                call = {"id": tc["id"], "name": tc["function"]["name"],
                        "args": tc["function"]["arguments"]}
                tools.append(call)
                if "index" in tc:
                    by_index[tc["index"]] = call
            if c.get("finish_reason"):
                finish = FINISH.get(c["finish_reason"], c["finish_reason"])
        usage = p.get("usage") or usage
    return {"content": text, "reasoning": thinking, "finish_reason": finish, "usage": usage,
            "tools": [(t["id"], t["name"], t["args"]) for t in tools]}


def expected_from_reply(reply: dict[str, Any]) -> dict[str, Any]:
    choice = reply["choices"][0]
    text, thinking = split_content(choice["message"].get("content"))
    return {"content": text, "reasoning": thinking,
            "finish_reason": FINISH.get(choice["finish_reason"], choice["finish_reason"]),
            "usage": reply["usage"],
            "tools": [(t["id"], t["function"]["name"], t["function"]["arguments"])
                      for t in choice["message"].get("tool_calls") or []]}


def assert_matches(result: dict[str, Any], expected: dict[str, Any]) -> None:
    validate_chat_completion(result)
    choice = result["choices"][0]
    message = choice["message"]
    assert (message["content"] or "") == expected["content"]
    assert message.get("reasoning", "") == expected["reasoning"]
    calls = message.get("tool_calls") or []
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == \
        expected["tools"]
    assert choice["finish_reason"] == expected["finish_reason"]
    assert result["usage"] == expected["usage"]


def convert(lines: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    state = MistralStreamState()
    acc = ChunkAccumulator()
    chunks = []
    for line in lines:
        chunk = MistralBackend._convert_completion_chunk_response(line, state)
        assert chunk is not None
        chunks.append(chunk.to_dict())
        validate_chat_completion_chunk(chunks[-1])
        acc.add(chunk)
    return acc.result().to_dict(), chunks


# --- pure conversions ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.stem)
def test_recorded_stream_conversion(path: Path) -> None:
    lines = recorded_lines(path)
    result, chunks = convert(lines)
    assert_matches(result, expected_from_stream([json.loads(line) for line in lines]))
    assert len(chunks) == len(lines)
    for chunk in chunks:
        for choice in chunk["choices"]:
            assert not isinstance(choice["delta"].get("content"), list)
            for tc in choice["delta"].get("tool_calls") or []:
                assert tc["index"] == 0
                if "id" in tc:
                    assert tc["type"] == "function" and tc["function"]["name"]


def test_whole_tool_calls_get_running_indexes() -> None:
    """Mistral sends each call whole without ``index``; two such calls (the recorded one, then a
    copy with another id) become indexes 0 and 1."""
    lines = recorded_lines(FIXTURES / "mistral-tool-call.chunks.txt")
    second = json.loads(lines[1])
    second["choices"][0]["delta"]["tool_calls"][0]["id"] = "second001"
    first = json.loads(lines[1])
    first["choices"][0]["finish_reason"] = None
    del first["usage"]
    result, chunks = convert([lines[0], json.dumps(first), json.dumps(second)])
    calls = result["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["gSIMJiOkT", "second001"]
    assert [tc["index"] for c in chunks for ch in c["choices"]
            for tc in ch["delta"].get("tool_calls") or []] == [0, 1]


@pytest.mark.parametrize("path", WHOLE, ids=lambda p: p.stem)
def test_recorded_whole_reply_conversion(path: Path) -> None:
    reply = json.loads(path.read_text())
    result = MistralBackend._convert_completion_response(reply).to_dict()
    assert_matches(result, expected_from_reply(reply))
    assert result["id"] == reply["id"] and result["model"] == reply["model"]


def test_model_length_and_error_finish_reasons() -> None:
    reply = json.loads((FIXTURES / "mistral-text.json").read_text())
    reply["choices"][0]["finish_reason"] = "model_length"
    result = MistralBackend._convert_completion_response(reply)
    assert result.choices[0].finish_reason == "length"
    last = json.loads(recorded_lines(FIXTURES / "mistral-text.chunks.txt")[-1])
    last["choices"][0]["finish_reason"] = "error"
    with pytest.raises(StreamError, match="error"):
        MistralBackend._convert_completion_chunk_response(json.dumps(last), MistralStreamState())


def test_error_object_in_stream_is_raised() -> None:
    """Mistral's error body (``{"object": "error", ...}``, wire-formats.md §4) inside a stream."""
    state = MistralStreamState(provider="mistral")
    state.convert(recorded_lines(FIXTURES / "mistral-text.chunks.txt")[0])
    error = {"object": "error", "message": "Service unavailable", "type": "internal_error",
             "param": None, "code": "1000"}
    with pytest.raises(ProviderError, match="Service unavailable"):
        state.convert(json.dumps(error))


def test_request_translation() -> None:
    """Mistral's names (ChatCompletionRequest): random_seed, tool_choice "any", max_tokens;
    developer -> system; only the fields of each Mistral message type are sent."""
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}]
    reply = json.loads((FIXTURES / "mistral-tool-call.json").read_text())
    call = {**reply["choices"][0]["message"]["tool_calls"][0], "type": "function"}
    params = CompletionParams(
        model="mistral-small-latest", stream=True, seed=42, max_completion_tokens=100,
        tool_choice="required", tools=tools, temperature=0.3, stop="END",
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        safe_prompt=True,
        messages=[{"role": "developer", "content": "Be terse."},
                  {"role": "user", "content": "Weather in San Francisco?"},
                  {"role": "assistant", "content": None, "reasoning": "thinking...",
                   "refusal": None, "tool_calls": [call]},
                  {"role": "tool", "tool_call_id": call["id"], "name": "weather",
                   "content": "sunny"}])
    body = MistralBackend._convert_completion_params(params, lambda m: pytest.fail(m))
    assert body == {
        "model": "mistral-small-latest", "stream": True, "random_seed": 42, "max_tokens": 100,
        "tool_choice": "any", "tools": tools, "temperature": 0.3, "stop": "END",
        "response_format": params.response_format, "safe_prompt": True,
        "messages": [{"role": "system", "content": "Be terse."},
                     {"role": "user", "content": "Weather in San Francisco?"},
                     {"role": "assistant", "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "gSIMJiOkT", "name": "weather",
                      "content": "sunny"}]}


# --- end to end ---------------------------------------------------------------------------------


def replay(server: ReplayServer, name: str, **kw: Any) -> list[str]:
    lines = recorded_lines(FIXTURES / name)
    server.enqueue(sse_from_chunks(lines, **kw))
    return lines


def test_cli_piped_text_and_request(replay_server: ReplayServer, run_cli: Any) -> None:
    lines = replay(replay_server, "mistral-text.chunks.txt", split=5)
    r = run_cli("chat", "-p", "mistral", "--api-base", replay_server.url + "/v1",
                "--seed", "7", "--max-tokens", "64", "Hello", env=KEY)
    assert r.code == 0, r.stderr
    expected = expected_from_stream([json.loads(line) for line in lines])
    assert r.stdout == expected["content"] + "\n"
    assert r.stderr == ""
    sent = replay_server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer mistral-test-key"
    assert sent.json == {"model": "mistral-small-latest",
                         "messages": [{"role": "user", "content": "Hello"}],
                         "random_seed": 7, "max_tokens": 64, "stream": True}


def test_cli_piped_reasoning_stays_out_of_stdout(replay_server: ReplayServer,
                                                 run_cli: Any) -> None:
    lines = replay(replay_server, "mistral-reasoning.chunks.txt")
    expected = expected_from_stream([json.loads(line) for line in lines])
    r = run_cli("chat", "-p", "mistral", "--api-base", replay_server.url + "/v1",
                "-m", "magistral-medium-2507", "--hide-reasoning", "2+2?", env=KEY)
    assert r.code == 0, r.stderr
    assert r.stdout == expected["content"] + "\n"
    assert expected["reasoning"] not in r.stdout + r.stderr


def test_cli_jsonl_tool_call(replay_server: ReplayServer, run_cli: Any) -> None:
    lines = replay(replay_server, "mistral-tool-call.chunks.txt")
    r = run_cli("chat", "-p", "mistral", "--api-base", replay_server.url + "/v1", "--jsonl",
                "weather?", env=KEY)
    assert r.code == 0, r.stderr
    acc = ChunkAccumulator()
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == len(lines)
    for obj in out:
        validate_chat_completion_chunk(obj)
        acc.add(ChatCompletionChunk.model_validate(obj))
    assert_matches(acc.result().to_dict(),
                   expected_from_stream([json.loads(line) for line in lines]))


def test_cli_json_reasoning_reply(replay_server: ReplayServer, run_cli: Any) -> None:
    reply = json.loads((FIXTURES / "mistral-reasoning.json").read_text())
    replay_server.enqueue(json_response(reply))
    r = run_cli("chat", "-p", "mistral", "--api-base", replay_server.url + "/v1", "--json",
                "-m", "magistral-medium-2507", "2+2?", env=KEY)
    assert r.code == 0, r.stderr
    assert_matches(json.loads(r.stdout), expected_from_reply(reply))
    assert replay_server.requests[0].json["stream"] is False


def test_cli_422_names_the_field(replay_server: ReplayServer, run_cli: Any) -> None:
    """Mistral's ``HTTPValidationError`` (mistralai/client-python docs/models)."""
    detail = [{"loc": ["body", "messages", 0, "role"], "type": "literal_error",
               "msg": "Input should be 'system', 'user', 'assistant' or 'tool'",
               "input": "narrator"},
              {"loc": ["body", "temperature"], "type": "less_than_equal",
               "msg": "Input should be less than or equal to 1.5", "input": 1.9}]
    replay_server.enqueue(json_response({"detail": detail}, status=422))
    r = run_cli("chat", "-p", "mistral", "--api-base", replay_server.url + "/v1",
                "--temperature", "1.9", "hi", env=KEY)
    assert r.code == 1
    assert "messages.0.role: Input should be 'system'" in r.stderr
    assert "temperature: Input should be less than or equal to 1.5" in r.stderr
    assert "422" in r.stderr and "Traceback" not in r.stderr


def test_library_422_error_type_and_models(replay_server: ReplayServer) -> None:
    replay_server.enqueue(json_response(
        {"detail": [{"loc": ["body", "random_seed"], "msg": "Input should be a valid integer",
                     "type": "int_parsing"}]}, status=422))
    replay_server.enqueue(json_response({"object": "list", "data": [
        {"id": "mistral-small-latest", "object": "model", "created": 1769088720,
         "owned_by": "mistralai"}]}))

    async def run() -> tuple[InvalidRequestError, list[str]]:
        llm = await AnyLLM.acreate("mistral", api_key="k", api_base=replay_server.url + "/v1")
        async with llm:
            with pytest.raises(InvalidRequestError) as info:
                await llm.acompletion(messages=[{"role": "user", "content": "x"}])
            models = [m.id for m in await llm.alist_models()]
        return info.value, models

    error, models = asyncio.run(run())
    assert "random_seed: Input should be a valid integer" in str(error)
    assert error.status_code == 422 and isinstance(error.body, dict)
    assert models == ["mistral-small-latest"]
    assert replay_server.requests[1].path == "/v1/models"
