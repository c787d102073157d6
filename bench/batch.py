"""Batch throughput and memory: ``anyllm batch`` against a loopback server answering after 50 ms.

Run: ``python bench/batch.py [--requests 10000] [-j 64] [--runs 3] [--rss-lines 100000]``
(aiohttp, the peer, is in the ``[bench]`` extra).

The loopback server (tests/server.py, asyncio, one task per connection) runs as its own
process and answers every OpenAI chat completion after ``--delay`` seconds, so the ideal rate
is ``concurrency / delay`` (64 / 0.05 s = 1,280 requests/s). Measured in the same run:
- aiohttp: one ClientSession, ``-j`` workers, each POSTs and parses the JSON reply (the floor
  for an asyncio client: no conversion, no output);
- anyllm: ``python -m anyllm_cli batch IN -o OUT -j N`` as a real process (start-up, the
  duplicate scan, conversion, ordered output and all), timed from launch to exit; the rate it
  prints in its own summary (engine only) is shown too.
Target: anyllm >= 80% of aiohttp. Then peak RSS (``os.wait4`` of the child) of a
``--rss-lines`` batch, which must stay <= 150 MB: the input is streamed, not loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_input(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            line = {"custom_id": f"req-{i}",
                    "messages": [{"role": "user", "content": f"Summarise item {i} in one line."}],
                    "max_tokens": 64}
            f.write(json.dumps(line) + "\n")


def start_server(delay: float) -> tuple[subprocess.Popen[str], str]:
    """tests/server.py's OpenAI handler in its own process, every answer ``delay`` s late."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "server.py"), "--port", "0",
                             "--delay", str(delay)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def aiohttp_run(url: str, n: int, concurrency: int) -> float:
    import aiohttp

    body = {"model": "gpt-4.1-mini", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Summarise item 0 in one line."}]}
    todo = iter(range(n))
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            for _ in todo:
                async with session.post(url + "/v1/chat/completions", json=body,
                                        headers={"authorization": "Bearer sk-bench"}) as resp:
                    data = await resp.json()
                    assert data["choices"], data
                    done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    assert done == n
    return n / elapsed


def anyllm_run(url: str, inp: Path, out: Path, n: int, concurrency: int
               ) -> tuple[float, float, int]:
    """(requests/s from launch to exit, the engine's own requests/s, peak RSS in KiB)."""
    env = dict(os.environ, OPENAI_API_KEY="sk-bench", ANYLLM_CONFIG=str(inp.parent / "none.toml"))
    cmd = [sys.executable, "-m", "anyllm_cli", "batch", str(inp), "-o", str(out), "-p", "openai",
           "--api-base", url + "/v1", "-j", str(concurrency), "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            cwd=ROOT)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"anyllm batch failed ({proc.returncode}): {err}")
    with out.open("rb") as f:
        lines = sum(1 for _ in f)
    assert lines == n, (lines, n)
    found = re.search(r"([\d.]+) requests/s", err)
    engine = float(found.group(1)) if found else 0.0
    return n / elapsed, engine, usage.ru_maxrss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("-j", "--concurrency", type=int, default=64)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rss-lines", type=int, default=100_000, help="0 to skip")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="anyllm-bench-batch-"))
    inp = tmp / "in.jsonl"
    write_input(inp, args.requests)
    server, url = start_server(args.delay)
    ideal = args.concurrency / args.delay
    try:
        peer: list[float] = []
        ours: list[float] = []
        engine: list[float] = []
        for _ in range(args.runs):
            try:
                peer.append(asyncio.run(aiohttp_run(url, args.requests, args.concurrency)))
            except ImportError:
                print("# aiohttp: not installed (pip install -e '.[bench]')", file=sys.stderr)
            wall, own, _rss = anyllm_run(url, inp, tmp / "out.jsonl", args.requests,
                                         args.concurrency)
            ours.append(wall)
            engine.append(own)
        rss_kib = 0
        if args.rss_lines:
            big = tmp / "big.jsonl"
            write_input(big, args.rss_lines)
            _, _, rss_kib = anyllm_run(url, big, tmp / "big-out.jsonl", args.rss_lines,
                                       args.concurrency)
    finally:
        server.terminate()
        server.wait()
    print(f"# anyllm batch, {args.requests} requests, -j {args.concurrency}, server delay "
          f"{args.delay * 1000:.0f} ms, median of {args.runs} runs -- python bench/batch.py "
          f"--requests {args.requests} -j {args.concurrency} --runs {args.runs}")
    print(f"# machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"load average {os.getloadavg()[0]:.2f}")
    def row(name: str, rate: float) -> None:
        print(f"{name:34s} {rate:8,.0f} requests/s  ({rate / ideal:.0%} of ideal)")

    print(f"{'ideal (concurrency / delay)':34s} {ideal:8,.0f} requests/s")
    a = statistics.median(ours)
    e = statistics.median(engine)
    p = statistics.median(peer) if peer else 0.0
    if peer:
        row("aiohttp (same concurrency)", p)
    row("anyllm batch, launch to exit", a)
    row("anyllm batch, engine (its summary)", e)
    if peer:
        print(f"anyllm / aiohttp = {a / p:.0%} launch to exit, {e / p:.0%} engine  "
              "(target >= 80%)")
    if rss_kib:
        print(f"peak RSS, {args.rss_lines:,}-line batch: {rss_kib / 1024:.0f} MB  "
              "(target <= 150 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
