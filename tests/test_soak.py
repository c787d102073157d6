"""Soak: 20,000 requests through ``anyllm batch`` with 5% injected failures.

No line lost or doubled, the failures are error lines, and the process's memory and open file
descriptors do not grow between the first quarter of the run and its end (sampled from /proc
while it runs). Marked slow: about half a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from tests.conftest import ROOT, SECRET
from tests.server import ReplayServer, Request, Response, openai_chat_handler, openai_error

pytestmark = pytest.mark.slow

LINES = 20_000


def failing_handler(request: Request) -> Response | None:
    """Every 20th prompt (by a hash of its text) is rejected with a 400; the rest answered."""
    body = request.json if isinstance(request.json, dict) else {}
    prompt = str(body.get("messages", [{}])[-1].get("content", ""))
    if zlib.crc32(prompt.encode()) % 20 == 0:
        return openai_error(400, f"rejected: {prompt}")
    return openai_chat_handler(request)


def sample(pid: int) -> tuple[int, int]:
    """(resident set in kB, open file descriptors) of a live process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_soak_20000_requests_with_failures(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    with inp.open("w") as f:
        for i in range(LINES):
            f.write(json.dumps({"custom_id": f"r{i}", "prompt": f"prompt number {i}"}) + "\n")
    expected_failures = sum(zlib.crc32(f"prompt number {i}".encode()) % 20 == 0
                            for i in range(LINES))
    with ReplayServer(handler=failing_handler, record=False) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anyllm_cli", "batch", str(inp), "-o", str(out), "-p",
             "openai", "--api-base", srv.url + "/v1", "-j", "32"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "OPENAI_API_KEY": SECRET}, cwd=ROOT)
        samples: list[tuple[int, int, int]] = []  # (lines written, rss kB, fds)
        while proc.poll() is None:
            try:
                done = out.read_bytes().count(b"\n") if out.exists() else 0
                samples.append((done, *sample(proc.pid)))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.2)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err.decode()[-2000:]  # some lines failed, by design
    assert SECRET.encode() not in err

    lines = out.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    ids = [r["custom_id"] for r in records]
    assert len(ids) == LINES and set(ids) == {f"r{i}" for i in range(LINES)}  # none lost/doubled
    failed = [r for r in records if r["error"] is not None]
    assert len(failed) == expected_failures
    assert all(r["response"]["status_code"] == 200 for r in records if r["error"] is None)
    assert ids == [f"r{i}" for i in range(LINES)]  # input order kept

    # Growth: compare the samples once a quarter of the lines were written with the last ones.
    steady = [s for s in samples if s[0] >= LINES // 4]
    assert len(steady) >= 5, "the run was sampled while it worked"
    first_rss, first_fds = steady[0][1], steady[0][2]
    last_rss = max(s[1] for s in steady[-3:])
    last_fds = max(s[2] for s in steady[-3:])
    print(f"soak: {LINES} lines, {len(failed)} failed; RSS {first_rss} -> {last_rss} kB, "
          f"fds {first_fds} -> {last_fds}")
    assert last_rss - first_rss < 15_000, (first_rss, last_rss)  # kB
    assert last_fds - first_fds <= 4, (first_fds, last_fds)
