"""``anyllm batch`` against the loopback server, as the user sees it: the output lines (each
validated against the OpenAI Batch output schema), stderr, the exit code.

Each request's prompt is its custom_id, so a server handler can fail chosen lines. Faults that
need retries run in-process through ``run_batch`` with a short backoff (same engine, seconds
saved); the rest run the real command.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from anyllm_cli.batch import BatchStats, run_batch
from anyllm_cli.errors import RateLimitError
from tests.conftest import ROOT, SECRET, default_sigint, write_config
from tests.openai_schema import validate_batch_output_line
from tests.server import ReplayServer, Request, Response, openai_chat_handler, openai_error

KEY = {"OPENAI_API_KEY": SECRET}


# --------------------------------------------------------------------------------- helpers


def req(cid: str, **params: Any) -> str:
    """A short-form line whose prompt is its custom_id (so the server can tell lines apart)."""
    return json.dumps({"custom_id": cid, "messages": [{"role": "user", "content": cid}],
                       **params})


def body_of(request: Request) -> dict[str, Any]:
    body = request.json
    assert isinstance(body, dict), request.body[:200]
    return body


def prompt_of(request: Request) -> str:
    return str(body_of(request).get("messages", [{}])[-1].get("content", ""))


class Script:
    """A server handler: per custom_id (the prompt), a list of responses for its first
    attempts (a callable builds one from the request); then the canned chat completion.
    ``delays`` holds answers back (seconds) for every attempt of that id."""

    def __init__(self, plan: dict[str, list[Response | Callable[[Request], Response]]]
                 | None = None, delays: dict[str, float] | None = None) -> None:
        self.plan = plan or {}
        self.delays = delays or {}
        self.attempts: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response | None:
        cid = prompt_of(request)
        with self.lock:
            n = self.attempts[cid]
            self.attempts[cid] += 1
        steps = self.plan.get(cid, [])
        if n < len(steps):
            step = steps[n]
            response = step(request) if callable(step) else step
        else:
            canned = openai_chat_handler(request)
            assert canned is not None
            response = canned
        response.delay = self.delays.get(cid, response.delay)
        return response


def output_lines(text: str) -> list[dict[str, Any]]:
    """Every output line parsed and validated; the text must end with a newline (no torn
    line)."""
    assert text == "" or text.endswith("\n"), f"torn last line: {text[-80:]!r}"
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        validate_batch_output_line(line)
    return lines


def by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = [line["custom_id"] for line in lines]
    assert len(ids) == len(set(ids)), f"a custom_id written twice: {ids}"
    return {line["custom_id"]: line for line in lines}


def batch_cli(run_cli: Any, url: str, *args: str, input: str | None = None) -> Any:
    return run_cli("batch", "-p", "openai", "--api-base", url + "/v1", *args, input=input,
                   env=KEY)


def engine(tmp_path: Path, url: str, lines: list[str], **kw: Any
           ) -> tuple[BatchStats, list[dict[str, Any]]]:
    """run_batch in-process with a fast transport backoff; returns stats and output lines."""
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    llm_kwargs = {"api_key": SECRET, "api_base": url + "/v1", "backoff_base": 0.01,
                  **kw.pop("llm_kwargs", {})}
    stats = asyncio.run(run_batch(src, out, provider="openai", llm_kwargs=llm_kwargs, **kw))
    return stats, output_lines(out.read_text())


# ------------------------------------------------------------------------------- ordering


def test_output_in_input_order_by_default(replay_server: ReplayServer, run_cli: Any,
                                          tmp_path: Path) -> None:
    # r0 answers last; the others overtake it, but are written after it.
    replay_server.handler = Script(delays={"r0": 0.4})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(f"r{i}") + "\n" for i in range(6)))
    r = batch_cli(run_cli, replay_server.url, str(src), "-j", "3")
    assert r.code == 0, r.stderr
    lines = output_lines(r.stdout)
    assert [line["custom_id"] for line in lines] == [f"r{i}" for i in range(6)]
    assert all(line["response"]["status_code"] == 200 for line in lines)
    assert replay_server.requests[0].received_at < replay_server.requests[-1].received_at
    assert "6 succeeded, 0 failed" in r.stderr


def test_unordered_writes_as_completed(replay_server: ReplayServer, run_cli: Any,
                                       tmp_path: Path) -> None:
    replay_server.handler = Script(delays={"r0": 0.4})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(f"r{i}") + "\n" for i in range(6)))
    r = batch_cli(run_cli, replay_server.url, str(src), "-j", "3", "--unordered")
    assert r.code == 0, r.stderr
    ids = [line["custom_id"] for line in output_lines(r.stdout)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(6))
    assert ids[-1] == "r0"  # the slow one, written when it finished


# ------------------------------------------------------------------- faults per request


def test_429_retry_after_pauses_the_whole_batch(replay_server: ReplayServer,
                                                tmp_path: Path) -> None:
    pause = 0.5
    limited = openai_error(429, "Rate limit reached", type="requests", code="rate_limit_exceeded",
                           headers={"retry-after-ms": str(int(pause * 1000))})
    replay_server.handler = Script({"r2": [limited]}, delays={f"r{i}": 0.02 for i in range(12)})
    stats, lines = engine(tmp_path, replay_server.url, [req(f"r{i}") for i in range(12)],
                          concurrency=3)
    assert stats.succeeded == 12 and stats.failed == 0
    assert [line["custom_id"] for line in lines] == [f"r{i}" for i in range(12)]
    times = [r.received_at for r in replay_server.requests]
    limited_at = next(r.received_at for r in replay_server.requests if prompt_of(r) == "r2")
    # Requests already on their way may land just after the 429; then nothing until the pause
    # is over, from any worker, not only from the one that was told to wait.
    quiet = [t for t in times if limited_at + 0.1 < t < limited_at + pause - 0.05]
    assert quiet == []
    assert sum(1 for t in times if t >= limited_at + pause - 0.05) >= 3
    assert stats.pauses >= 1


def test_transient_5xx_and_429_are_retried(replay_server: ReplayServer, tmp_path: Path) -> None:
    fast = {"retry-after-ms": "10"}
    replay_server.handler = Script({
        "r1": [openai_error(503, "overloaded", type="server_error", headers=fast)],
        "r2": [openai_error(500, "oops", type="server_error", headers=fast),
               openai_error(502, "bad gateway", type="server_error", headers=fast)],
        "r3": [openai_error(429, "slow down", type="requests", headers=fast)],
    })
    stats, lines = engine(tmp_path, replay_server.url, [req(f"r{i}") for i in range(5)],
                          concurrency=2)
    assert stats.failed == 0 and stats.succeeded == 5
    assert all(line["error"] is None for line in lines)
    attempts: dict[str, int] = defaultdict(int)
    for r in replay_server.requests:
        attempts[prompt_of(r)] += 1
    assert attempts == {"r0": 1, "r1": 2, "r2": 3, "r3": 2, "r4": 1}


def test_persistent_failures_become_error_lines(replay_server: ReplayServer,
                                                tmp_path: Path) -> None:
    fast = {"retry-after-ms": "5"}
    down = openai_error(500, "the server had an error", type="server_error", headers=fast)
    limited = openai_error(429, "quota", type="requests", code="rate_limit_exceeded",
                           headers=fast)
    rejected = openai_error(400, "temperature must be at most 2", param="temperature",
                            code="invalid_value", headers={"x-request-id": "req_rejected1"})
    replay_server.handler = Script({"r1": [down] * 50, "r2": [limited] * 50, "r3": [rejected]})
    stats, lines = engine(tmp_path, replay_server.url, [req(f"r{i}") for i in range(5)],
                          concurrency=2)
    assert (stats.succeeded, stats.failed) == (2, 3)
    out = by_id(lines)
    assert out["r0"]["error"] is None and out["r4"]["error"] is None
    server = out["r1"]
    assert server["response"]["status_code"] == 500
    assert server["response"]["body"]["error"]["message"] == "the server had an error"
    assert server["error"]["message"].startswith("line 2: ")
    assert out["r2"]["response"]["status_code"] == 429
    assert out["r2"]["error"]["code"] == "rate_limit_exceeded"
    bad = out["r3"]
    assert bad["response"]["status_code"] == 400
    assert bad["response"]["request_id"] == "req_rejected1"
    assert bad["error"]["code"] == "invalid_value"  # the provider's own code
    assert "line 4" in bad["error"]["message"]
    assert "temperature must be at most 2" in bad["error"]["message"]
    # a rejection is not retried; a server error is, by the transport (1 + 2 retries)
    assert sum(1 for r in replay_server.requests if prompt_of(r) == "r3") == 1
    assert sum(1 for r in replay_server.requests if prompt_of(r) == "r1") == 3


def test_timeouts_retried_then_reported(replay_server: ReplayServer, tmp_path: Path) -> None:
    def slow(request: Request) -> Response:
        response = openai_chat_handler(request)
        assert response is not None
        response.delay = 1.0
        return response

    replay_server.handler = Script({"r1": [slow], "r2": [slow] * 10})
    started = time.monotonic()
    stats, lines = engine(tmp_path, replay_server.url, [req(f"r{i}") for i in range(4)],
                          concurrency=4, llm_kwargs={"timeout": 0.2, "max_retries": 1})
    assert time.monotonic() - started < 5
    out = by_id(lines)
    assert out["r1"]["error"] is None  # timed out once, answered on the retry
    timed_out = out["r2"]
    assert timed_out["response"] is None
    assert timed_out["error"]["code"] == "timeout"
    assert timed_out["error"]["message"].startswith("line 3: Timed out")
    assert (stats.succeeded, stats.failed) == (3, 1)


# -------------------------------------------------------------------------------- input


def test_bad_lines_become_error_lines_and_the_batch_goes_on(
        replay_server: ReplayServer, run_cli: Any, tmp_path: Path) -> None:
    replay_server.handler = Script({"rejected": [openai_error(
        400, "Invalid 'messages[0].content': string too long", param="messages")]})
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        req("ok1"),
        "{not json",
        json.dumps({"custom_id": "nomsg", "temperature": 0}),
        "",  # a blank line is not a request
        req("rejected"),
        json.dumps({"custom_id": "emb", "method": "POST", "url": "/v1/embeddings",
                    "body": {"model": "m", "input": "x"}}),
        "[1, 2]",
        req("ok2"),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    r = batch_cli(run_cli, replay_server.url, str(src), "-o", str(out), "-j", "2")
    assert r.code == 1, r.stderr
    assert r.stdout == ""
    lines = output_lines(out.read_text())
    assert [line["custom_id"] for line in lines] == [
        "ok1", "line-2", "nomsg", "rejected", "emb", "line-7", "ok2"]
    got = by_id(lines)
    assert got["ok1"]["error"] is None and got["ok2"]["error"] is None
    assert got["line-2"]["error"]["code"] == "invalid_json"
    assert got["line-2"]["error"]["message"].startswith("line 2: not JSON")
    assert got["nomsg"]["error"]["message"].startswith("line 3: no messages")
    assert got["rejected"]["response"]["status_code"] == 400
    assert "line 5" in got["rejected"]["error"]["message"]
    assert "string too long" in got["rejected"]["error"]["message"]
    assert got["emb"]["error"]["code"] == "invalid_url"
    assert got["line-7"]["error"]["message"].startswith("line 7: expected a JSON object")
    assert [prompt_of(q) for q in replay_server.requests].count("rejected") == 1
    assert len(replay_server.requests) == 3
    assert "2 succeeded, 5 failed" in r.stderr
    assert "failed: line 2: not JSON" in r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stderr


def test_stdin_to_stdout_pipe(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.handler = Script()
    text = "".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(5))
    r = batch_cli(run_cli, replay_server.url, input=text)
    assert r.code == 0, r.stderr
    lines = output_lines(r.stdout)
    assert [line["custom_id"] for line in lines] == [f"line-{i}" for i in range(1, 6)]
    assert sorted(prompt_of(q) for q in replay_server.requests) == [f"p{i}" for i in range(5)]
    # stdout carries only output lines; the summary is on stderr, no progress when piped
    assert r.stderr.startswith("anyllm: batch: 5 of 5 lines: 5 succeeded, 0 failed; tokens "
                               "25 in, 30 out;")
    assert "requests/s" in r.stderr
    assert r.stderr.count("\n") == 1


def test_progress_lines_when_asked_on_a_pipe(replay_server: ReplayServer, run_cli: Any) -> None:
    replay_server.handler = Script()
    text = "".join(req(f"r{i}") + "\n" for i in range(3))
    r = batch_cli(run_cli, replay_server.url, "--progress", input=text)
    assert r.code == 0, r.stderr
    progress = [line for line in r.stderr.splitlines() if line.startswith("anyllm: batch ")]
    assert progress[0] == "anyllm: batch 0/3 (0%), 0.0 requests/s, 0 failed"
    assert progress[-1].startswith("anyllm: batch 3/3 (100%), ")


def test_openai_batch_file_round_trip(replay_server: ReplayServer, run_cli: Any,
                                      tmp_path: Path) -> None:
    replay_server.handler = Script()
    requests = [{"custom_id": f"task-{i}", "method": "POST", "url": "/v1/chat/completions",
                 "body": {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 50,
                          "messages": [{"role": "system", "content": "Be terse."},
                                       {"role": "user", "content": f"task-{i}"}]}}
                for i in range(4)]
    src = tmp_path / "batchinput.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in requests))
    out = tmp_path / "results.jsonl"
    r = batch_cli(run_cli, replay_server.url, str(src), "-o", str(out))
    assert r.code == 0, r.stderr
    lines = output_lines(out.read_text())
    assert [line["custom_id"] for line in lines] == [f"task-{i}" for i in range(4)]
    for line in lines:
        assert line["id"].startswith("batch_req_")
        response = line["response"]
        body = response["body"]
        assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
        # the server's x-request-id header
        assert response["request_id"] == f"req_{body['id']}"
    assert len({line["id"] for line in lines}) == 4
    for q in replay_server.requests:
        sent = body_of(q)
        assert q.path == "/v1/chat/completions"
        assert sent["model"] == "gpt-4o-mini"
        assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50
        assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
        assert sent.get("stream") in (None, False)


def test_request_id_generated_when_the_provider_sends_none(replay_server: ReplayServer,
                                                           tmp_path: Path) -> None:
    def no_header(request: Request) -> Response:
        response = openai_chat_handler(request)
        assert response is not None
        response.headers.pop("x-request-id")
        return response

    replay_server.handler = Script({"a": [no_header], "b": [no_header]})
    _, lines = engine(tmp_path, replay_server.url, [req("a"), req("b")])
    ids = [line["response"]["request_id"] for line in lines]
    assert all(isinstance(i, str) and i.startswith("req_") for i in ids)
    assert ids[0] != ids[1]


def test_model_and_parameter_precedence(replay_server: ReplayServer, run_cli: Any,
                                        config_file: Path, tmp_path: Path) -> None:
    replay_server.handler = Script()
    write_config(config_file, f"""
default_profile = "work"
[profiles.work]
provider = "openai"
model = "profile-model"
api_base = "{replay_server.url}/v1"
[profiles.work.params]
temperature = 0.9
system = "Profile system."
""")
    src = tmp_path / "in.jsonl"
    src.write_text(req("own", model="line-model", temperature=0.1) + "\n" + req("bare") + "\n")
    r = run_cli("batch", str(src), env=KEY)
    assert r.code == 0, r.stderr
    sent = {prompt_of(q): body_of(q) for q in replay_server.requests}
    assert sent["own"]["model"] == "line-model" and sent["own"]["temperature"] == 0.1
    assert sent["bare"]["model"] == "profile-model" and sent["bare"]["temperature"] == 0.9
    assert sent["bare"]["messages"][0] == {"role": "system", "content": "Profile system."}

    replay_server.reset()
    r = run_cli("batch", str(src), "-m", "flag-model", "--option", "temperature=0.5", env=KEY)
    assert r.code == 0, r.stderr
    sent = {prompt_of(q): body_of(q) for q in replay_server.requests}
    assert {s["model"] for s in sent.values()} == {"flag-model"}
    assert {s["temperature"] for s in sent.values()} == {0.5}


def test_duplicate_custom_id_reported_before_anything_is_sent(
        replay_server: ReplayServer, run_cli: Any, tmp_path: Path) -> None:
    replay_server.handler = Script()
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([req("a"), req("b"), req("a"), req("c")]) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    r = batch_cli(run_cli, replay_server.url, str(src), "-o", str(out))
    assert r.code == 2
    assert "duplicate custom_id: 'a' on lines 1 and 3; nothing was sent" in r.stderr
    assert replay_server.requests == []
    assert out.read_text() == "kept\n"  # an earlier output is not clobbered

    r = batch_cli(run_cli, replay_server.url, str(src), "--resume")
    assert r.code == 2 and "--resume needs an output file" in r.stderr


def test_dry_run_prints_the_first_native_request(replay_server: ReplayServer, run_cli: Any,
                                                 tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        "oops",
        json.dumps({"custom_id": "x", "body": {"model": "m1", "max_tokens": 5,
                                               "messages": [{"role": "user", "content": "hi"}]}}),
        req("y"),
    ]) + "\n")
    r = run_cli("batch", str(src), "-p", "openai", "--api-base", replay_server.url + "/v1",
                "--dry-run")  # no key needed: nothing is sent
    assert r.code == 2, r.stderr
    assert json.loads(r.stdout) == {"model": "m1", "max_tokens": 5, "stream": False,
                                    "messages": [{"role": "user", "content": "hi"}]}
    assert "line 1: not JSON" in r.stderr
    assert "3 lines, 2 valid, 1 invalid; nothing sent" in r.stderr
    assert replay_server.requests == []

    src.write_text(req("y") + "\n")
    r = run_cli("batch", str(src), "-p", "openai", "--dry-run")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["messages"] == [{"role": "user", "content": "y"}]


def test_rejected_key_stops_the_batch(replay_server: ReplayServer, run_cli: Any,
                                      tmp_path: Path) -> None:
    replay_server.handler = Script({"r0": [openai_error(401, "Incorrect API key provided")]})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(f"r{i}") + "\n" for i in range(20)))
    out = tmp_path / "out.jsonl"
    r = batch_cli(run_cli, replay_server.url, str(src), "-o", str(out), "-j", "1")
    assert r.code == 1
    assert "batch stopped: Authentication failed: OPENAI_API_KEY was rejected" in r.stderr
    assert f"to finish: the same command with --resume -o {out}" in r.stderr
    assert out.read_text() == ""  # the line is not marked done: --resume will run it
    assert len(replay_server.requests) == 1
    assert SECRET not in r.stderr


# --------------------------------------------------------------------------- durability


def _start(url: str, src: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "anyllm_cli", "batch", str(src), "-o", str(out), "-p", "openai",
         "--api-base", url + "/v1", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **KEY}, cwd=ROOT, preexec_fn=default_sigint)


def _wait_lines(out: Path, n: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("no progress")


def test_sigkill_mid_run_then_resume(replay_server: ReplayServer, run_cli: Any,
                                     tmp_path: Path) -> None:
    ids = [f"k{i}" for i in range(40)]
    replay_server.handler = Script(delays=dict.fromkeys(ids, 0.03))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(cid) + "\n" for cid in ids))
    out = tmp_path / "out.jsonl"
    proc = _start(replay_server.url, src, out, "-j", "4", "--unordered")
    _wait_lines(out, 8, proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    written = output_lines(out.read_text())  # every line whole
    assert 8 <= len(written) < 40
    first = set(by_id(written))
    sent_before = len(replay_server.requests)

    r = batch_cli(run_cli, replay_server.url, str(src), "-o", str(out), "--resume", "-j", "4")
    assert r.code == 0, r.stderr
    final = by_id(output_lines(out.read_text()))
    assert sorted(final) == sorted(ids)  # every custom_id exactly once
    assert all(line["error"] is None for line in final.values())
    assert f"({len(first)} already in {out})" in r.stderr
    # the resumed run asked only for what was missing, once each
    resumed = [prompt_of(q) for q in replay_server.requests[sent_before:]]
    assert sorted(resumed) == sorted(set(ids) - first)


def test_resume_cuts_a_torn_last_line(replay_server: ReplayServer, run_cli: Any,
                                      tmp_path: Path) -> None:
    replay_server.handler = Script()
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(c) + "\n" for c in ("a", "b", "c", "d")))
    done = [{"id": "batch_req_1", "custom_id": c, "response": None,
             "error": {"code": "x", "message": "earlier"}} for c in ("a", "b")]
    torn = '{"id":"batch_req_3","custom_id":"c","response":{"status_co'
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps(d) + "\n" for d in done) + torn)
    r = batch_cli(run_cli, replay_server.url, str(src), "-o", str(out), "--resume")
    assert r.code == 0, r.stderr
    assert f"cut a torn last line ({len(torn)} bytes) off {out}" in r.stderr
    lines = output_lines(out.read_text())
    assert [line["custom_id"] for line in lines] == ["a", "b", "c", "d"]
    assert lines[0] == done[0] and lines[1] == done[1]  # earlier lines kept as they were
    assert sorted(prompt_of(q) for q in replay_server.requests) == ["c", "d"]


def test_ctrl_c_exits_130_with_whole_lines(replay_server: ReplayServer, tmp_path: Path) -> None:
    ids = [f"i{i}" for i in range(30)]
    replay_server.handler = Script(delays=dict.fromkeys(ids, 0.05))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(cid) + "\n" for cid in ids))
    out = tmp_path / "out.jsonl"
    proc = _start(replay_server.url, src, out, "-j", "2")
    _wait_lines(out, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    text = err.decode()
    assert "interrupted" in text and "--resume" in text and "Traceback" not in text
    lines = output_lines(out.read_text())
    assert 3 <= len(lines) < 30
    by_id(lines)


# ------------------------------------------------------------------------- rate limiting


def test_token_bucket_per_minute() -> None:
    from anyllm_cli.batch import TokenBucket

    now = [0.0]
    bucket = TokenBucket.per_minute(120, clock=lambda: now[0])  # 2/s, bursts of 2
    assert bucket.delay(1) == 0
    bucket.take(1)
    bucket.take(1)
    assert bucket.delay(1) == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.delay(1) == 0
    # a cost above the capacity passes once the bucket is full, then the debt is paid off
    tokens = TokenBucket.per_minute(600, clock=lambda: now[0])  # 10/s, capacity 10
    tokens.take(40)
    assert tokens.delay(1) == pytest.approx(3.1)
    tokens.credit(30)  # the reply's usage said 10, not 40
    assert tokens.delay(1) == pytest.approx(0.1)


def test_rpm_spaces_requests(replay_server: ReplayServer, tmp_path: Path) -> None:
    replay_server.handler = Script()
    stats, _ = engine(tmp_path, replay_server.url, [req(f"s{i}") for i in range(6)],
                      concurrency=6, rpm=300)  # 5/s, bursts of 5
    times = sorted(q.received_at for q in replay_server.requests)
    assert times[5] - times[0] >= 0.15  # the sixth waited for a token
    assert stats.succeeded == 6


def test_unreachable_provider_stops_before_wasting_the_batch(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stats, lines = engine(tmp_path, f"http://127.0.0.1:{port}", [req(f"r{i}") for i in range(50)],
                          concurrency=2)
    assert stats.fatal is not None and "Connection failed" in str(stats.fatal)
    assert lines == [] and stats.done == 0  # nothing marked done: --resume runs it all


def test_429_asking_for_an_hour_stops_the_batch(replay_server: ReplayServer,
                                                tmp_path: Path) -> None:
    quota = openai_error(429, "You exceeded your current quota", type="insufficient_quota",
                         headers={"retry-after": "3600"})
    replay_server.handler = Script({"r1": [quota] * 5})
    stats, lines = engine(tmp_path, replay_server.url, [req(f"r{i}") for i in range(10)],
                          concurrency=1)
    assert isinstance(stats.fatal, RateLimitError) and stats.fatal.retry_after == 3600
    assert [line["custom_id"] for line in lines] == ["r0"]
    assert len(replay_server.requests) == 2  # no retry, no further line sent


def test_unsupported_parameter_warned_once_or_refused_per_line(
        replay_server: ReplayServer, run_cli: Any, tmp_path: Path) -> None:
    replay_server.handler = Script()
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(f"r{i}", logprobs=True) + "\n" for i in range(4)))
    env = {"GROQ_API_KEY": SECRET}
    args = ["batch", str(src), "-p", "groq", "--api-base", replay_server.url + "/v1"]
    r = run_cli(*args, env=env)
    assert r.code == 0, r.stderr
    warning = "anyllm: warning: groq does not support the parameter 'logprobs'; it was not sent"
    assert r.stderr.count(warning) == 1  # not once per line
    assert all("logprobs" not in body_of(q) for q in replay_server.requests)

    replay_server.reset()
    r = run_cli(*args, "--strict", env=env)
    assert r.code == 1
    lines = output_lines(r.stdout)
    assert {line["error"]["code"] for line in lines} == {"unsupported_parameter"}
    assert lines[0]["error"]["message"].startswith("line 1: groq does not support")
    assert replay_server.requests == []


def test_closed_output_pipe_stops_the_batch(replay_server: ReplayServer, tmp_path: Path) -> None:
    ids = [f"p{i}" for i in range(200)]
    replay_server.handler = Script(delays=dict.fromkeys(ids, 0.005))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(cid) + "\n" for cid in ids))
    proc = subprocess.Popen(
        [sys.executable, "-m", "anyllm_cli", "batch", str(src), "-p", "openai", "--api-base",
         replay_server.url + "/v1", "-j", "2"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **KEY}, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    json.loads(proc.stdout.readline())  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=10) == 1
    assert "batch stopped: the output pipe was closed" in err and "Traceback" not in err
    assert len(replay_server.requests) < 200


def test_api_key_cmd_runs_once_for_all_instances(replay_server: ReplayServer, run_cli: Any,
                                                 config_file: Path, tmp_path: Path) -> None:
    replay_server.handler = Script()
    runs = tmp_path / "runs.txt"
    write_config(config_file, f"""
[profiles.cmd]
provider = "openai"
model = "m"
api_base = "{replay_server.url}/v1"
api_key_cmd = "sh -c 'echo run >> {runs}; echo sk-from-cmd-0123456789'"
""")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(f"r{i}") + "\n" for i in range(20)))
    r = run_cli("batch", str(src), "-p", "cmd", "-j", "20")  # 3 provider instances
    assert r.code == 0, r.stderr
    assert runs.read_text() == "run\n"
    assert {q.headers["authorization"] for q in replay_server.requests} == {
        "Bearer sk-from-cmd-0123456789"}


def test_requests_spread_over_several_clients(replay_server: ReplayServer,
                                              tmp_path: Path) -> None:
    """One httpx pool serving many concurrent requests is slow: 8 workers per instance."""
    from anyllm_cli.anyllm import AnyLLM

    replay_server.handler = Script(delays={f"r{i}": 0.05 for i in range(40)})
    made: list[AnyLLM] = []
    in_flight: dict[int, int] = defaultdict(int)
    peak: dict[int, int] = defaultdict(int)

    async def factory() -> AnyLLM:
        llm = await AnyLLM.acreate("openai", api_key=SECRET, api_base=replay_server.url + "/v1")
        real = llm.acompletion

        async def counted(*args: Any, **kwargs: Any) -> Any:
            in_flight[id(llm)] += 1
            peak[id(llm)] = max(peak[id(llm)], in_flight[id(llm)])
            try:
                return await real(*args, **kwargs)
            finally:
                in_flight[id(llm)] -= 1

        llm.acompletion = counted  # type: ignore[method-assign]
        made.append(llm)
        return llm

    src = tmp_path / "in.jsonl"
    src.write_text("".join(req(f"r{i}") + "\n" for i in range(40)))
    stats = asyncio.run(run_batch(src, tmp_path / "out.jsonl", provider=factory,
                                  concurrency=20))
    assert stats.succeeded == 40
    assert len(made) == 3  # ceil(20 / 8)
    assert len(peak) == 3 and max(peak.values()) <= 8
