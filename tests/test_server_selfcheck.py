"""Self-checks of the test infrastructure: the replay server and the OpenAI schema validators.

Run: .venv/bin/python -m pytest tests/test_server_selfcheck.py -q -p tests.conftest_server
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.openai_schema import (
    validate_batch_output_line,
    validate_chat_completion,
    validate_chat_completion_chunk,
)
from tests.server import (
    Pause,
    ReplayServer,
    Response,
    json_response,
    load_jsonl_chunks,
    openai_chat_handler,
    openai_error,
    split_bytes,
    sse_from_chunks,
    sse_response_from_file,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OPENAI_BINS = sorted(
    (FIXTURES / "openai__openai-python" / ".inline-snapshot" / "external").glob("*.bin")
)
SERVER_PY = Path(__file__).resolve().parent / "server.py"


def sse_data(raw: bytes) -> list[dict[str, Any]]:
    """Minimal SSE parse: JSON payloads of ``data: `` lines, ``[DONE]`` skipped."""
    payloads = []
    for line in raw.decode("utf-8").splitlines():
        if line.startswith("data: ") and line[6:].strip() != "[DONE]":
            payloads.append(json.loads(line[6:]))
    return payloads


def completion() -> dict[str, Any]:
    message = {"role": "assistant", "content": "Hi.", "refusal": None}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1727346171,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


# ------------------------------------------------------------------------------ the server


def test_fixture_copies_present(fixtures_dir: Path) -> None:
    assert fixtures_dir == FIXTURES
    assert len(OPENAI_BINS) == 12
    assert (fixtures_dir / "openai__openai-openapi" / "chat-schemas.json").is_file()
    assert (fixtures_dir / "SOURCES.md").is_file()


def test_replay_is_byte_identical_and_arrives_in_several_reads(
    replay_server: ReplayServer,
) -> None:
    path = max(OPENAI_BINS, key=lambda p: p.stat().st_size)
    expected = path.read_bytes()
    replay_server.enqueue(sse_response_from_file(path), path="/v1/chat/completions")
    with (
        httpx.Client(base_url=replay_server.url) as client,
        client.stream("POST", "/v1/chat/completions", json={"stream": True}) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["transfer-encoding"] == "chunked"
        reads = list(resp.iter_raw())
    assert b"".join(reads) == expected
    # One HTTP chunk per SSE event; h11 hands each chunk over as its own read (or more).
    assert len(reads) >= len(split_bytes(expected, "event")) > 10


@pytest.mark.parametrize("split", ["line", 7, "none"])
def test_replay_splits_are_lossless(replay_server: ReplayServer, split: str | int) -> None:
    path = OPENAI_BINS[0]
    response = sse_response_from_file(path, split=split)
    assert response.chunks is not None
    expected_chunks = {"line": path.read_bytes().count(b"\n"), 7: -(-path.stat().st_size // 7)}
    assert len(response.chunks) == expected_chunks.get(split, 1)
    replay_server.enqueue(response)
    with httpx.Client() as client, client.stream("GET", replay_server.url) as resp:
        reads = list(resp.iter_raw())
    assert b"".join(reads) == path.read_bytes()


def test_split_event_handles_crlf_and_keeps_bytes() -> None:
    data = b"event: a\r\ndata: 1\r\n\r\ndata: 2\n\ndata: 3\n\n"
    assert split_bytes(data, "event") == [
        b"event: a\r\ndata: 1\r\n\r\n",
        b"data: 2\n\n",
        b"data: 3\n\n",
    ]
    assert b"".join(split_bytes(data, "line")) == data
    assert split_bytes(data, "line")[0] == b"event: a\r\n"


def test_queued_statuses_are_served_in_order(replay_server: ReplayServer) -> None:
    replay_server.enqueue(
        openai_error(429, "slow down", type="rate_limit_error", headers={"retry-after": "0"}),
        openai_error(500, "boom", type="server_error"),
        json_response({"ok": True}),
    )
    replay_server.enqueue(json_response({"only": "here"}, status=201), path="/special")
    replay_server.default = json_response({"default": True}, status=202)
    with httpx.Client(base_url=replay_server.url) as client:
        special = client.get("/special")
        statuses = [client.get("/v1/chat/completions").status_code for _ in range(4)]
        first_429 = replay_server.requests[1]
    assert special.status_code == 201
    assert statuses == [429, 500, 200, 202]
    assert first_429.path == "/v1/chat/completions"
    assert replay_server.pending() == 0


def test_error_body_shape_and_unqueued_404(replay_server: ReplayServer) -> None:
    replay_server.enqueue(openai_error(401, "bad key", code="invalid_api_key"))
    with httpx.Client(base_url=replay_server.url) as client:
        err = client.get("/v1/models")
        missing = client.post("/v1/nothing")
    assert err.status_code == 401
    assert err.json() == {
        "error": {
            "message": "bad key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert missing.status_code == 404
    assert "POST /v1/nothing" in missing.json()["error"]["message"]


def test_cut_stream_raises_after_partial_body(replay_server: ReplayServer) -> None:
    events = [{"n": 1}, {"n": 2}]
    replay_server.enqueue(sse_from_chunks(events, done=False, cut=True))
    received = b""
    with (
        httpx.Client() as client,
        client.stream("GET", replay_server.url) as resp,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        for piece in resp.iter_raw():
            received += piece
    assert received == b'data: {"n":1}\n\ndata: {"n":2}\n\n'


def test_drop_after_headers_and_garbage(replay_server: ReplayServer) -> None:
    replay_server.enqueue(Response(chunks=[b"never sent"], drop_after_headers=True))
    replay_server.enqueue(Response(raw=b"this is not HTTP\r\n\r\n"))
    replay_server.enqueue(Response(body=b'{"truncated": true}', cut=True))
    with httpx.Client(base_url=replay_server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/a")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/b")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/c")
        assert client.get("/d").status_code == 404  # the server is still fine


def test_pause_triggers_read_timeout_and_close_cancels_stall() -> None:
    server = ReplayServer().start()
    try:
        server.enqueue(Response(chunks=[b"data: 1\n\n", Pause(30), b"data: 2\n\n"]))
        received = []
        timeout = httpx.Timeout(5.0, read=0.2)
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("GET", server.url) as resp,
            pytest.raises(httpx.ReadTimeout),
        ):
            for piece in resp.iter_raw():
                received.append(piece)
        assert received == [b"data: 1\n\n"]
        # Park a second client in the 30 s stall, then close the server under it.
        server.enqueue(Response(chunks=[b"x", Pause(30)]))
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
    finally:
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 2
    sock.settimeout(2)
    rest = b""
    while chunk := sock.recv(4096):
        rest += chunk
    assert b"0\r\n\r\n" not in rest  # closed mid-stream, not completed
    sock.close()


def test_delay_before_headers(replay_server: ReplayServer) -> None:
    replay_server.enqueue(Response(delay=0.5), Response(delay=0.05, body=b"late"))
    with httpx.Client(base_url=replay_server.url, timeout=httpx.Timeout(5.0, read=0.1)) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/")
        assert c.get("/").content == b"late"


def test_200_concurrent_requests_over_64_keepalive_connections(
    replay_server: ReplayServer,
) -> None:
    replay_server.handler = openai_chat_handler

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=replay_server.url, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/v1/chat/completions", json={"model": f"m{i}"}) for i in range(200))
            )

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 200
    for i, resp in enumerate(responses):
        body = resp.json()
        validate_chat_completion(body)
        assert body["model"] == f"m{i}"
    assert len(replay_server.requests) == 200
    connections = {r.connection_id for r in replay_server.requests}
    assert len(connections) <= 64
    assert len(connections) < 200  # keep-alive reuse happened


def test_requests_are_recorded_with_json_bodies(replay_server: ReplayServer) -> None:
    replay_server.default = json_response(completion())
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=replay_server.url) as client:
        client.post(
            "/v1/chat/completions?api-version=1",
            json=payload,
            headers={"Authorization": "Bearer sk-test"},
        )
        client.post("/raw", content=b"not json")
        # A generator body makes httpx send Transfer-Encoding: chunked.
        client.post("/chunked", content=iter([b'{"a":', b" 1}"]))
    first, second, third = replay_server.requests
    assert first.method == "POST"
    assert first.path == "/v1/chat/completions"
    assert first.query == "api-version=1"
    assert first.params == {"api-version": "1"}
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["content-type"] == "application/json"
    assert first.json == payload
    assert json.loads(first.body) == payload
    assert (second.body, second.json) == (b"not json", None)
    assert third.headers["transfer-encoding"] == "chunked"
    assert third.json == {"a": 1}
    assert replay_server.wait_for_requests(3, timeout=0.1) == [first, second, third]


def test_raw_socket_connection_close_and_chunked_request(replay_server: ReplayServer) -> None:
    replay_server.default = json_response({"ok": True})
    request = (
        b"POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b'Connection: close\r\n\r\n4\r\n{"a"\r\n3;ext=1\r\n:2}\r\n0\r\nTrailer: t\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", replay_server.port), timeout=2) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):  # the server must close: Connection: close
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in data
    assert data.endswith(b'{"ok": true}')
    assert replay_server.requests[0].json == {"a": 2}


def test_bad_request_line_gets_400(replay_server: ReplayServer) -> None:
    with socket.create_connection(("127.0.0.1", replay_server.port), timeout=2) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_canned_handler_stream_is_schema_valid(replay_server: ReplayServer) -> None:
    replay_server.handler = openai_chat_handler
    body = {"model": "x", "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(base_url=replay_server.url) as client:
        raw = client.post("/v1/chat/completions", json=body).content
        models = client.get("/v1/models").json()
    chunks = sse_data(raw)
    assert raw.endswith(b"data: [DONE]\n\n")
    for chunk in chunks:
        validate_chat_completion_chunk(chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from the replay server."
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert models["data"][0]["id"] == "replay-model"


def test_jsonl_chunks_to_anthropic_style_sse() -> None:
    path = FIXTURES / "vercel__ai/packages/anthropic/src/__fixtures__/anthropic-text.chunks.txt"
    events = load_jsonl_chunks(path)
    resp = sse_from_chunks(events, done=False, event_field="type")
    assert resp.chunks is not None
    first = resp.chunks[0]
    assert isinstance(first, bytes)
    assert first.startswith(b"event: message_start\ndata: {")
    assert len(resp.chunks) == len(events)


def test_standalone_process_prints_url_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_PY), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        resp = httpx.post(url + "/v1/chat/completions", json={"model": "bench"})
        validate_chat_completion(resp.json())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert "served 1 requests" in err


# --------------------------------------------------------------------------- the schemas


@pytest.mark.parametrize("path", OPENAI_BINS, ids=lambda p: p.name[:12])
def test_recorded_openai_chunks_pass_schema(path: Path) -> None:
    chunks = sse_data(path.read_bytes())
    assert chunks
    for chunk in chunks:
        validate_chat_completion_chunk(chunk)


def test_chunk_missing_choices_fails() -> None:
    chunk = sse_data(OPENAI_BINS[0].read_bytes())[0]
    validate_chat_completion_chunk(chunk)
    del chunk["choices"]
    with pytest.raises(jsonschema.ValidationError, match="'choices' is a required property"):
        validate_chat_completion_chunk(chunk)


def test_chunk_bad_values_fail() -> None:
    chunk = sse_data(OPENAI_BINS[0].read_bytes())[0]
    bad_role = copy.deepcopy(chunk)
    bad_role["choices"][0]["delta"]["role"] = "robot"
    bad_object = {**chunk, "object": "chat.completion"}
    for bad in (bad_role, bad_object):
        with pytest.raises(jsonschema.ValidationError):
            validate_chat_completion_chunk(bad)


def test_completion_valid_and_nullable_fields() -> None:
    obj = completion()
    validate_chat_completion(obj)
    obj["choices"][0]["message"]["content"] = None  # nullable in the spec
    obj["service_tier"] = None
    validate_chat_completion(obj)
    obj["choices"][0]["message"]["reasoning"] = "extra fields are allowed"
    validate_chat_completion(obj)


def test_completion_with_banana_finish_reason_fails() -> None:
    obj = completion()
    obj["choices"][0]["finish_reason"] = "banana"
    with pytest.raises(jsonschema.ValidationError, match=r"finish_reason: 'banana' is not one"):
        validate_chat_completion(obj)


def test_completion_message_missing_role_fails() -> None:
    obj = completion()
    del obj["choices"][0]["message"]["role"]
    with pytest.raises(jsonschema.ValidationError, match="'role' is a required property"):
        validate_chat_completion(obj)


def test_batch_output_lines() -> None:
    ok: dict[str, Any] = {
        "id": "batch_req_1",
        "custom_id": "r1",
        "response": {"status_code": 200, "request_id": "req_1", "body": completion()},
        "error": None,
    }
    validate_batch_output_line(ok)
    failed = {
        "id": "batch_req_2",
        "custom_id": "r2",
        "response": None,
        "error": {"code": "timeout", "message": "timed out"},
    }
    validate_batch_output_line(failed)
    http_error = copy.deepcopy(ok)
    http_error["response"] = {
        "status_code": 400,
        "request_id": "req_2",
        "body": {"error": {"message": "bad", "type": "invalid_request_error"}},
    }
    validate_batch_output_line(http_error)

    bad_body = copy.deepcopy(ok)
    bad_body["response"]["body"]["choices"][0]["finish_reason"] = "banana"
    neither = {**failed, "error": None}
    no_custom_id = {k: v for k, v in ok.items() if k != "custom_id"}
    error_without_envelope = copy.deepcopy(http_error)
    error_without_envelope["response"]["body"] = {"message": "bad"}
    for bad in (bad_body, neither, no_custom_id, error_without_envelope):
        with pytest.raises(jsonschema.ValidationError):
            validate_batch_output_line(bad)
