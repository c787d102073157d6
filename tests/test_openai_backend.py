"""The ``openai`` backend on the 12 recorded OpenAI streams (openai-python .inline-snapshot).

Conversions are checked as pure functions on the recorded bytes, then end to end through the
real HTTP path (loopback replay server) and through ``anyllm chat`` as a process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from anyllm_cli.anyllm import AnyLLM
from anyllm_cli.assemble import ChunkAccumulator
from anyllm_cli.backends.openai import OpenAIBackend
from anyllm_cli.transport.sse import SSEDecoder
from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk
from tests.server import ReplayServer, json_response, sse_response_from_file

FIXTURES = Path(__file__).parent / "fixtures"
STREAMS = sorted((FIXTURES / "openai__openai-python/.inline-snapshot/external").glob("*.bin"))
# What each recording exercises (from fixtures/SOURCES.md), to be sure the set covers them all.
TOOL_CALLS = ["2018feb6", "a247c49c", "c6aa7e39", "f82268f2"]
N_CHOICES = "a491adda"
LENGTH = "4cc50a61"
REFUSAL = "173417d5"
LOGPROBS = "83b060ba"


def recorded_payloads(path: Path) -> list[dict[str, Any]]:
    """The recording's chunk objects, parsed independently of the code under test."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def expected_message(payloads: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """A plain reassembly of the recording: per choice, text / refusal / tool calls / finish."""
    out: dict[int, dict[str, Any]] = {}
    for p in payloads:
        for c in p["choices"]:
            e = out.setdefault(c["index"], {"content": "", "refusal": "", "tools": {},
                                            "finish_reason": None, "logprobs": []})
            d = c["delta"]
            e["content"] += d.get("content") or ""
            e["refusal"] += d.get("refusal") or ""
            for tc in d.get("tool_calls") or []:
                t = e["tools"].setdefault(tc["index"], {"id": None, "name": None, "args": ""})
                t["id"] = t["id"] or tc.get("id")
                fn = tc.get("function") or {}
                t["name"] = t["name"] or fn.get("name")
                t["args"] += fn.get("arguments") or ""
            if c.get("finish_reason"):
                e["finish_reason"] = c["finish_reason"]
            if c.get("logprobs") and c["logprobs"].get("content"):
                e["logprobs"] += c["logprobs"]["content"]
    return out


def drop_nulls(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: drop_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [drop_nulls(v) for v in obj]
    return obj


def assert_matches_recording(result: dict[str, Any], payloads: list[dict[str, Any]]) -> None:
    expected = expected_message(payloads)
    assert [c["index"] for c in result["choices"]] == sorted(expected)
    for choice in result["choices"]:
        e = expected[choice["index"]]
        msg = choice["message"]
        assert (msg["content"] or "") == e["content"]
        assert (msg["refusal"] or "") == e["refusal"]
        assert choice["finish_reason"] == e["finish_reason"]
        calls = msg.get("tool_calls") or []
        assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == \
            [(t["id"], t["name"], t["args"]) for _, t in sorted(e["tools"].items())]
        for call in calls:
            json.loads(call["function"]["arguments"])  # complete JSON once reassembled
        if e["logprobs"]:
            assert choice["logprobs"]["content"] == e["logprobs"]
    usage = [p["usage"] for p in payloads if p.get("usage")]
    assert result.get("usage") == (usage[-1] if usage else None)


def test_the_recordings_cover_every_case() -> None:
    names = " ".join(p.name for p in STREAMS)
    for prefix in [*TOOL_CALLS, N_CHOICES, LENGTH, REFUSAL, LOGPROBS]:
        assert prefix in names
    assert len(STREAMS) == 12


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name[:8])
def test_conversion_of_recorded_stream(path: Path) -> None:
    """Pure: decode + convert every event; each chunk equals its recorded JSON (less nulls) and
    validates; the reassembled completion equals the recording and validates."""
    decoder = SSEDecoder()
    events = decoder.feed(path.read_bytes()) + decoder.close()
    payloads = recorded_payloads(path)
    acc = ChunkAccumulator()
    chunks = []
    for event in events:
        if event.data == "[DONE]":
            break
        chunk = OpenAIBackend._convert_completion_chunk_response(event.data)
        assert chunk is not None
        chunks.append(chunk.to_dict())
        acc.add(chunk)
    assert len(chunks) == len(payloads)
    for got, raw in zip(chunks, payloads, strict=True):
        # Same content as recorded; null optionals may be omitted, required ones are checked
        # by the schema.
        assert drop_nulls(got) == drop_nulls(raw)
        validate_chat_completion_chunk(got)
    result = acc.result().to_dict()
    validate_chat_completion(result)
    assert_matches_recording(result, payloads)


@pytest.mark.parametrize("split", ["event", "line", 7])
@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name[:8])
def test_stream_over_http(replay_server: ReplayServer, path: Path, split: str | int) -> None:
    """The library's stream through real HTTP, with events split across reads."""
    replay_server.enqueue(sse_response_from_file(path, split=split))

    async def run() -> dict[str, Any]:
        llm = await AnyLLM.acreate("openai", api_key="sk-x", api_base=replay_server.url + "/v1")
        acc = ChunkAccumulator()
        async with llm:
            async for chunk in llm.acompletion_stream(
                    "gpt-4o", [{"role": "user", "content": "hi"}], temperature=0.5):
                acc.add(chunk)
        return acc.result().to_dict()

    result = asyncio.run(run())
    assert_matches_recording(result, recorded_payloads(path))
    sent = replay_server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-x"
    assert sent.json == {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                         "temperature": 0.5, "stream": True,
                         "stream_options": {"include_usage": True}}


def _serve(srv: ReplayServer, path: Path) -> None:
    srv.enqueue(sse_response_from_file(path))


def test_cli_jsonl_lines_validate(replay_server: ReplayServer, run_cli: Any) -> None:
    for path in STREAMS:
        _serve(replay_server, path)
        r = run_cli("chat", "-p", "openai", "--api-base", replay_server.url + "/v1", "--jsonl",
                    "hi", env={"OPENAI_API_KEY": "sk-x"})
        assert r.code == 0, r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == len(recorded_payloads(path))
        acc_input = [json.loads(line) for line in lines]
        for obj in acc_input:
            validate_chat_completion_chunk(obj)
        assert r.stderr == ""


def test_cli_piped_text_is_the_answer(replay_server: ReplayServer, run_cli: Any) -> None:
    path = next(p for p in STREAMS if p.name.startswith("e2aad469"))
    expected = expected_message(recorded_payloads(path))[0]["content"]
    _serve(replay_server, path)
    r = run_cli("chat", "-p", "openai", "--api-base", replay_server.url + "/v1", "hi",
                env={"OPENAI_API_KEY": "sk-x"})
    assert r.code == 0, r.stderr
    assert r.stdout == expected + "\n"
    assert "\x1b" not in r.stdout


def test_cli_piped_tool_call_is_printed(replay_server: ReplayServer, run_cli: Any) -> None:
    path = next(p for p in STREAMS if p.name.startswith("2018feb6"))
    tool = expected_message(recorded_payloads(path))[0]["tools"][0]
    _serve(replay_server, path)
    r = run_cli("chat", "-p", "openai", "--api-base", replay_server.url + "/v1", "weather?",
                env={"OPENAI_API_KEY": "sk-x"})
    assert r.code == 0, r.stderr
    assert f"{tool['name']}({tool['args']})" in r.stdout


def test_cli_json_validates(replay_server: ReplayServer, run_cli: Any) -> None:
    """--json asks for a whole completion; the object printed is OpenAI's, unchanged."""
    path = next(p for p in STREAMS if p.name.startswith("a491adda"))  # n=3
    acc = ChunkAccumulator()
    decoder = SSEDecoder()
    for event in decoder.feed(path.read_bytes()):
        if event.data != "[DONE]":
            chunk = OpenAIBackend._convert_completion_chunk_response(event.data)
            assert chunk is not None
            acc.add(chunk)
    completion = acc.result().to_dict()
    replay_server.enqueue(json_response(completion))
    r = run_cli("chat", "-p", "openai", "--api-base", replay_server.url + "/v1", "--json", "hi",
                env={"OPENAI_API_KEY": "sk-x"})
    assert r.code == 0, r.stderr
    printed = json.loads(r.stdout)
    validate_chat_completion(printed)
    assert printed == completion
    assert len(printed["choices"]) == 3
    assert replay_server.requests[0].json["stream"] is False


def test_in_stream_error_object_is_raised(replay_server: ReplayServer, run_cli: Any) -> None:
    """Groq sends an ``error`` object inside a 200 stream (wire-formats.md §0.1)."""
    body = (b'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
            b'data: {"error":{"message":"tool call validation failed","type":'
            b'"invalid_request_error","code":"tool_use_failed","status_code":400}}\n\n')
    from tests.server import sse_response

    replay_server.enqueue(sse_response(body))
    r = run_cli("chat", "-p", "groq", "--api-base", replay_server.url + "/v1", "hi",
                env={"GROQ_API_KEY": "gsk-x"})
    assert r.code == 1
    assert r.stdout.startswith("Hel")
    assert "tool call validation failed" in r.stderr
    assert "Traceback" not in r.stderr
