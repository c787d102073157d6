"""``anyllm smoke``: profiles checked against the loopback server and a port nobody listens on,
as CI sees the result (exit status, table, JSON, JUnit XML read by junitparser)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from junitparser import Failure, JUnitXml, Skipped

from anyllm_cli.cli.smoke import Outcome, write_junit
from anyllm_cli.config import local_available
from tests.conftest import SECRET, write_config
from tests.server import ReplayServer, openai_chat_handler, openai_error

# What openai_chat_handler streams (tests/server.py _CANNED_WORDS), reassembled.
CANNED = "Hello from the replay server."


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def server(replay_server: ReplayServer) -> ReplayServer:
    replay_server.handler = openai_chat_handler
    return replay_server


def profiles(config_file: Path, server: ReplayServer, *extra: str) -> None:
    """A config with ``good`` (the loopback server, key in the file) and the given tables."""
    write_config(config_file, f'''
[profiles.good]
provider = "openai"
model = "gpt-test"
api_base = "{server.url}/v1"
api_key = "{SECRET}"
[profiles.good.params]
temperature = 0.2
system = "Be terse."
''' + "\n".join(extra))
    config_file.chmod(0o600)


def dead_profile() -> str:
    return f'''
[profiles.dead]
provider = "openai"
api_base = "http://127.0.0.1:{free_port()}/v1"
api_key = "{SECRET}"
'''


def test_good_and_dead_profile(run_cli: Any, config_file: Path, server: ReplayServer,
                               tmp_path: Path) -> None:
    profiles(config_file, server, dead_profile())
    report = tmp_path / "reports" / "smoke.xml"
    r = run_cli("smoke", "good", "dead", "--json", "--junit-xml", str(report))
    assert r.code == 1, r.stderr
    out = json.loads(r.stdout)
    assert (out["passed"], out["failed"], out["skipped"]) == (1, 1, 0)
    good, dead = out["results"]
    assert good["profile"] == "good" and good["status"] == "pass"
    assert good["answer"] == CANNED and good["finish_reason"] == "stop"
    assert good["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    assert 0 <= good["ttft_seconds"] <= good["latency_seconds"]
    assert dead["status"] == "fail" and dead["error_type"] == "APIConnectionError"
    assert "Connection failed" in dead["error"] and "127.0.0.1" in dead["error"]

    # The request: the profile's params and system prompt, the smoke prompt, a small limit.
    sent = server.requests[0].json
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert sent["stream"] is True and sent["max_tokens"] == 32 and sent["temperature"] == 0.2
    assert sent["messages"] == [{"role": "system", "content": "Be terse."},
                                {"role": "user", "content": "Reply with the single word: pong"}]

    # A real consumer reads the report: one suite, two cases, one failure with the error.
    xml = JUnitXml.fromfile(str(report))
    suites = list(xml) if isinstance(xml, JUnitXml) else [xml]
    assert len(suites) == 1
    suite = suites[0]
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (2, 1, 0, 0)
    cases = {case.name: case for case in suite}
    assert set(cases) == {"good", "dead"}
    assert cases["good"].is_passed
    assert CANNED in (cases["good"].system_out or "")
    (failure,) = cases["dead"].result
    assert isinstance(failure, Failure)
    assert failure.message == dead["error"]
    assert failure.type == "APIConnectionError"
    for text in (r.stdout, r.stderr, report.read_text()):
        assert SECRET not in text


def test_table_when_piped_carries_the_provider_error(run_cli: Any, config_file: Path,
                                                     server: ReplayServer) -> None:
    # The provider echoes the key in its message (OpenAI does, partly): it must not show.
    server.enqueue(openai_error(401, f"Incorrect API key provided: {SECRET}.",
                                code="invalid_api_key"), path="/rejected/v1/chat/completions")
    profiles(config_file, server, f'''
[profiles.rejected]
provider = "openai"
api_base = "{server.url}/rejected/v1"
api_key = "{SECRET}"
''')
    r = run_cli("smoke", "good", "rejected")
    assert r.code == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PROFILE", "PROVIDER", "MODEL", "STATUS", "TTFT", "TOTAL",
                                "TOKENS", "ANSWER", "/", "ERROR"]
    assert lines[1].split()[:4] == ["good", "openai", "gpt-test", "PASS"]
    assert lines[1].split()[6] == "5/6" and lines[1].endswith(CANNED)
    assert lines[2].split()[:4] == ["rejected", "openai", "gpt-4.1-mini", "FAIL"]
    assert "Authentication failed" in lines[2]
    assert "Incorrect API key provided: ***." in lines[2]
    assert lines[3].startswith("1 passed, 1 failed, 0 skipped in ")
    assert len(lines) == 4
    assert "\x1b[" not in r.stdout  # no colour codes in a pipe
    assert SECRET not in r.stdout + r.stderr


def test_skip_missing_keys(run_cli: Any, config_file: Path, server: ReplayServer,
                           tmp_path: Path) -> None:
    profiles(config_file, server, '''
[profiles.nokey]
provider = "openai"
api_key_env = "SMOKE_UNSET_KEY"
''')
    r = run_cli("smoke", "good", "nokey")
    assert r.code == 1
    assert "nokey" in r.stdout and "FAIL" in r.stdout
    assert "No API key for openai: set SMOKE_UNSET_KEY or OPENAI_API_KEY" in r.stdout

    report = tmp_path / "skip.xml"
    r = run_cli("smoke", "good", "nokey", "--skip-missing-keys", "--json",
                "--junit-xml", str(report))
    assert r.code == 0, r.stdout
    out = json.loads(r.stdout)
    assert [x["status"] for x in out["results"]] == ["pass", "skip"]
    assert out["results"][1]["error_type"] == "MissingApiKeyError"
    suite = next(iter(JUnitXml.fromfile(str(report))))
    assert (suite.tests, suite.failures, suite.skipped) == (2, 0, 1)
    (skipped,) = {case.name: case for case in suite}["nokey"].result
    assert isinstance(skipped, Skipped) and "SMOKE_UNSET_KEY" in (skipped.message or "")


def test_expect(run_cli: Any, config_file: Path, server: ReplayServer) -> None:
    profiles(config_file, server)
    assert run_cli("smoke", "good", "--expect", r"replay\s+server").code == 0
    r = run_cli("smoke", "good", "--expect", "(?i)pong", "--json")
    assert r.code == 1
    (result,) = json.loads(r.stdout)["results"]
    assert result["status"] == "fail" and result["error_type"] == "ExpectMismatch"
    assert result["error"] == f"answer does not match --expect '(?i)pong': '{CANNED}'"
    r = run_cli("smoke", "good", "--expect", "(unclosed")
    assert r.code == 2 and "--expect: invalid regular expression" in r.stderr


def test_prompt_and_max_tokens(run_cli: Any, config_file: Path, server: ReplayServer) -> None:
    profiles(config_file, server)
    r = run_cli("smoke", "good", "--prompt", "Say hi", "--max-tokens", "0")
    assert r.code == 0, r.stderr
    sent = server.requests[0].json
    assert sent["messages"][-1] == {"role": "user", "content": "Say hi"}
    assert "max_tokens" not in sent


def test_unknown_profile_is_a_usage_error(run_cli: Any, config_file: Path,
                                          server: ReplayServer) -> None:
    profiles(config_file, server)
    r = run_cli("smoke", "good", "nope")
    assert r.code == 2
    assert "no profile or provider named 'nope'" in r.stderr
    assert r.stdout == "" and server.requests == []


def test_junit_xml_survives_control_characters(tmp_path: Path) -> None:
    # A provider message with an escape sequence must not make the report unreadable.
    bad = Outcome("x", "openai", "m", status="fail", error="boom \x1b[31mred\x00",
                  error_type="ProviderError")
    path = tmp_path / "r.xml"
    write_junit(path, [bad], 0.5)
    (case,) = next(iter(JUnitXml.fromfile(str(path))))
    (failure,) = case.result
    assert failure.message == "boom \ufffd[31mred\ufffd"


@pytest.mark.slow
@pytest.mark.skipif(not local_available(), reason="needs the [local] extra")
def test_default_checks_every_profile_and_local(run_cli: Any, config_file: Path,
                                                server: ReplayServer) -> None:
    profiles(config_file, server)
    r = run_cli("smoke", "--json")
    assert r.code == 0, r.stdout + r.stderr
    results = json.loads(r.stdout)["results"]
    assert [(x["profile"], x["provider"], x["status"]) for x in results] == [
        ("good", "openai", "pass"), ("local", "local", "pass")]
    assert results[1]["answer"].strip()
