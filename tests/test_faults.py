"""Network and provider faults, as the user sees them: stdout, stderr, exit code.

Each case runs ``anyllm chat`` as a process against the loopback server. None may print a
traceback, and the API key never appears, even when the server echoes it.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from tests.conftest import SECRET, default_sigint
from tests.server import Pause, ReplayServer, Response, json_response, openai_error, sse_response

CHUNK = ('{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
         '"choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":{finish}}}]}}')


def chunk(text: str, finish: str | None = None) -> bytes:
    fin = f'"{finish}"' if finish else "null"
    return f"data: {CHUNK.format(text=text, finish=fin)}\n\n".encode()


def completion(text: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": text, "refusal": None}}]}


def chat(run_cli: Any, srv_url: str, *extra: str, stream: bool = True) -> Any:
    args = ["chat", "-p", "openai", "--api-base", srv_url + "/v1", *extra]
    if not stream:
        args.append("--no-stream")
    return run_cli(*args, "hello", env={"OPENAI_API_KEY": SECRET})


def assert_clean(r: Any) -> None:
    assert "Traceback" not in r.stderr
    assert SECRET not in r.stdout + r.stderr
    # one line of diagnosis, prefixed so scripts can grep it
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("anyllm: "), r.stderr


def test_429_with_retry_after_then_success(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(
        openai_error(429, "Rate limit reached", type="requests", headers={"retry-after": "1"}),
        sse_response(chunk("Hi") + chunk(" there", "stop") + b"data: [DONE]\n\n"),
    )
    started = time.monotonic()
    r = chat(run_cli, replay_server.url)
    assert r.code == 0, r.stderr
    assert r.stdout == "Hi there\n"
    first, second = replay_server.requests
    assert second.received_at - first.received_at >= 0.95  # Retry-After: 1 was honoured
    assert time.monotonic() - started < 10


def test_5xx_until_retries_run_out(replay_server: ReplayServer, run_cli: Any) -> None:
    for _ in range(3):
        replay_server.enqueue(openai_error(503, "The engine is currently overloaded",
                                           type="server_error"))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stdout == ""
    assert "The engine is currently overloaded" in r.stderr
    assert "HTTP 503" in r.stderr
    assert len(replay_server.requests) == 3  # the first try and two retries
    assert_clean(r)


def test_401_names_the_variable_and_never_the_key(replay_server: ReplayServer,
                                                   run_cli: Any) -> None:
    # The server echoes the key, as OpenAI does ("Incorrect API key provided: sk-...").
    replay_server.enqueue(openai_error(401, f"Incorrect API key provided: {SECRET}",
                                       type="invalid_request_error", code="invalid_api_key"))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert "Authentication failed: OPENAI_API_KEY was rejected" in r.stderr
    assert "Incorrect API key provided: ***" in r.stderr
    assert len(replay_server.requests) == 1  # 401 is not retried
    assert_clean(r)


def test_connection_refused(run_cli: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("chat", "-p", "openai", "--api-base", f"http://127.0.0.1:{port}/v1", "hi",
                env={"OPENAI_API_KEY": SECRET})
    assert r.code == 1
    assert "Connection failed: could not reach openai" in r.stderr
    assert_clean(r)


def test_stalled_stream_times_out_and_keeps_partial(replay_server: ReplayServer,
                                                     run_cli: Any) -> None:
    replay_server.enqueue(Response(headers={"content-type": "text/event-stream"},
                                   chunks=[chunk("Partial"), chunk(" answer"), Pause(5)]))
    r = chat(run_cli, replay_server.url, "--timeout", "0.5")
    assert r.code == 1
    assert r.stdout.startswith("Partial answer")
    assert "stalled for 0.5 s" in r.stderr
    assert_clean(r)


def test_stream_cut_before_done_keeps_partial(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(Response(headers={"content-type": "text/event-stream"},
                                   chunks=[chunk("Half"), chunk(" a reply")], cut=True))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stdout.startswith("Half a reply")
    assert "Stream failed" in r.stderr
    assert_clean(r)


def test_stream_ending_without_finish_reason(replay_server: ReplayServer, run_cli: Any) -> None:
    # A clean end of body but no finish_reason and no [DONE]: the answer may be truncated.
    replay_server.enqueue(sse_response(chunk("Trunc") + chunk("ated")))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stdout.startswith("Truncated")
    assert "stream ended early" in r.stderr
    assert_clean(r)


def test_malformed_chunk(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(sse_response(chunk("Good") + b"data: {not json\n\n" + chunk("x", "stop")))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stdout.startswith("Good")
    assert "malformed chunk" in r.stderr
    assert_clean(r)


def test_chunk_of_the_wrong_shape(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(sse_response(b'data: {"choices": "nope"}\n\n'))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert "malformed chunk" in r.stderr
    assert_clean(r)


def test_non_stream_success_and_400(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(json_response(completion("Whole answer")))
    r = chat(run_cli, replay_server.url, stream=False)
    assert r.code == 0, r.stderr
    assert r.stdout == "Whole answer\n"
    replay_server.enqueue(openai_error(400, "Unsupported value: 'temperature'",
                                       param="temperature"))
    r = chat(run_cli, replay_server.url, stream=False)
    assert r.code == 1
    assert "Invalid request (openai, HTTP 400): Unsupported value: 'temperature'" in r.stderr
    assert_clean(r)


def test_context_length_error_is_named(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(openai_error(400, "This model's maximum context length is 8192 tokens",
                                       code="context_length_exceeded"))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stderr.startswith("anyllm: Context length exceeded")


def test_garbage_instead_of_http(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(Response(raw=b"\x00\x01garbage that is not HTTP\r\n\r\n"))
    r = chat(run_cli, replay_server.url, "--timeout", "2")
    assert r.code == 1
    assert_clean(r)


def test_ctrl_c_mid_stream_keeps_partial_and_exits_130(replay_server: ReplayServer) -> None:
    """SIGINT (Ctrl-C) to a real process while the answer streams."""
    import os
    import signal
    import subprocess
    import sys

    replay_server.enqueue(Response(headers={"content-type": "text/event-stream"},
                                   chunks=[chunk("First words"), Pause(10), chunk("never")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "anyllm_cli", "chat", "-p", "openai", "--api-base",
         replay_server.url + "/v1", "hi"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "OPENAI_API_KEY": SECRET}, preexec_fn=default_sigint)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(len("First words"))  # the partial answer has arrived
    assert first == b"First words"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert b"never" not in out
    assert err.decode() == "\nanyllm: interrupted\n" or err.decode().endswith(
        "anyllm: interrupted\n")
    assert b"Traceback" not in err
