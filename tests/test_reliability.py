"""What real networks and servers do wrong, as the user sees it: a clear one-line error, the
right exit code, the partial answer kept, no traceback, no key. Plus property tests of the
decoders' callers and of the config loader."""

from __future__ import annotations

import email.utils
import gzip
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anyllm_cli.config import load_config
from anyllm_cli.errors import ConfigError
from anyllm_cli.transport.http import parse_retry_after
from tests.conftest import SECRET
from tests.server import ReplayServer, Response, openai_error, sse_response
from tests.test_faults import assert_clean, chat, chunk


def test_slow_headers_time_out(replay_server: ReplayServer, run_cli: Any) -> None:
    for _ in range(3):
        replay_server.enqueue(Response(delay=3, body=b"{}"))
    r = chat(run_cli, replay_server.url, "--timeout", "0.3")
    assert r.code == 1
    assert "Timed out: no response from openai within 0.3 s" in r.stderr
    assert_clean(r)


def test_a_line_longer_than_the_buffer_bound(replay_server: ReplayServer, run_cli: Any) -> None:
    huge = b"data: " + b"x" * (5 * 1024 * 1024)  # no newline: never a complete event
    replay_server.enqueue(Response(headers={"content-type": "text/event-stream"},
                                   chunks=[chunk("Kept"), huge[:3_000_000], huge[3_000_000:]]))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stdout.startswith("Kept")
    assert "longer than 4194304 bytes" in r.stderr
    assert_clean(r)


def test_invalid_gzip(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.enqueue(Response(headers={"content-type": "text/event-stream",
                                            "content-encoding": "gzip"},
                                   body=b"this is not gzip at all"))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert "undecodable body" in r.stderr
    assert_clean(r)


def test_valid_gzip_stream_works(replay_server: ReplayServer, run_cli: Any) -> None:
    body = gzip.compress(chunk("Zipped", "stop") + b"data: [DONE]\n\n")
    replay_server.enqueue(Response(headers={"content-type": "text/event-stream",
                                            "content-encoding": "gzip"}, body=body))
    r = chat(run_cli, replay_server.url)
    assert r.code == 0, r.stderr
    assert r.stdout == "Zipped\n"


def test_broken_chunked_encoding(replay_server: ReplayServer, run_cli: Any) -> None:
    first = chunk("Before")
    raw = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
           b"transfer-encoding: chunked\r\n\r\n"
           + f"{len(first):x}\r\n".encode() + first + b"\r\n"
           + b"zz-not-a-size\r\ngarbage\r\n")
    replay_server.enqueue(Response(raw=raw))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stdout.startswith("Before")
    assert "Stream failed" in r.stderr
    assert_clean(r)


def test_429_storm_gives_up_with_rate_limit_error(replay_server: ReplayServer,
                                                  run_cli: Any) -> None:
    for _ in range(3):
        replay_server.enqueue(openai_error(429, "Too many requests", type="rate_limit_error",
                                           headers={"retry-after-ms": "50"}))
    r = chat(run_cli, replay_server.url)
    assert r.code == 1
    assert r.stderr.startswith("anyllm: Rate limited (openai, HTTP 429): Too many requests")
    assert len(replay_server.requests) == 3
    assert_clean(r)


def test_retry_after_too_long_is_not_waited_for(replay_server: ReplayServer,
                                                run_cli: Any) -> None:
    replay_server.enqueue(openai_error(429, "Quota exceeded", headers={"retry-after": "3600"}))
    started = time.monotonic()
    r = chat(run_cli, replay_server.url)
    assert r.code == 1 and "Quota exceeded" in r.stderr
    assert len(replay_server.requests) == 1
    assert time.monotonic() - started < 10


def test_503_with_retry_after_as_http_date(replay_server: ReplayServer, run_cli: Any) -> None:
    # Whole seconds: 3-4 s ahead when written; the CLI process takes < 1 s to send its request.
    when = email.utils.formatdate(time.time() + 4, usegmt=True)
    replay_server.enqueue(openai_error(503, "Unavailable", headers={"retry-after": when}),
                          sse_response(chunk("Back", "stop") + b"data: [DONE]\n\n"))
    r = chat(run_cli, replay_server.url)
    assert r.code == 0, r.stderr
    assert r.stdout == "Back\n"
    first, second = replay_server.requests
    assert second.received_at - first.received_at >= 1.5


def test_parse_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_debug_traceback_is_redacted(replay_server: ReplayServer, run_cli: Any,
                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Even the ANYLLM_DEBUG traceback of an unexpected error never shows the key."""
    hook = tmp_path / "hook"
    hook.mkdir()
    # Make the renderer blow up with the key in the message: an "internal error".
    (hook / "sitecustomize.py").write_text(
        "import anyllm_cli.render as r\n"
        "def boom(self, text):\n"
        f"    raise RuntimeError('internal failure near {SECRET}')\n"
        "r.PlainRenderer.content = boom\n")
    replay_server.enqueue(sse_response(chunk("x", "stop") + b"data: [DONE]\n\n"))
    r = run_cli("chat", "-p", "openai", "--api-base", replay_server.url + "/v1", "hi",
                env={"OPENAI_API_KEY": SECRET, "ANYLLM_DEBUG": "1", "PYTHONPATH": str(hook)})
    assert r.code == 1
    assert "Traceback" in r.stderr and "internal failure near ***" in r.stderr
    assert SECRET not in r.stderr + r.stdout
    replay_server.enqueue(sse_response(chunk("x", "stop") + b"data: [DONE]\n\n"))
    r = run_cli("chat", "-p", "openai", "--api-base", replay_server.url + "/v1", "hi",
                env={"OPENAI_API_KEY": SECRET, "PYTHONPATH": str(hook)})
    assert r.code == 1
    assert r.stderr.startswith("anyllm: internal error: RuntimeError: internal failure near ***")
    assert "Traceback" not in r.stderr


toml_values = st.recursive(
    st.one_of(st.booleans(), st.integers(-10, 10), st.floats(allow_nan=False),
              st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)),
    max_leaves=10)
config_keys = st.sampled_from(["default_profile", "profiles", "providers", "provider", "model",
                               "params", "backend", "api_base", "api_key_env", "x"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=200),
    st.dictionaries(config_keys, st.one_of(
        toml_values, st.dictionaries(st.text(min_size=1, max_size=6),
                                     st.dictionaries(config_keys, toml_values, max_size=4),
                                     max_size=3)), max_size=4).map(tomli_w.dumps),
))
def test_config_loader_never_raises_anything_but_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.toml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)  # every error names the file
        assert "\n" not in str(exc).strip()  # on one line


def test_batch_error_lines_never_carry_the_key(replay_server: ReplayServer, run_cli: Any,
                                               tmp_path: Path) -> None:
    """A provider error body that echoes the key is written to the output file masked."""
    replay_server.handler = lambda request: openai_error(
        400, f"Incorrect API key provided: {SECRET}", code="invalid_api_key")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"custom_id": "a", "prompt": "hi"}\n{"custom_id": "b", "prompt": "yo"}\n')
    r = run_cli("batch", str(src), "-o", str(out), "-p", "openai", "--api-base",
                replay_server.url + "/v1", env={"OPENAI_API_KEY": SECRET})
    assert r.code == 1
    text = out.read_text()
    assert text.count("\n") == 2 and "Incorrect API key provided: ***" in text
    assert SECRET not in text + r.stdout + r.stderr
