"""Streaming throughput: chunks per second of decode + convert on a 20,000-chunk OpenAI stream.

Run: ``python bench/stream.py [--chunks 20000] [--runs 3]`` (needs ``openai`` and
``any-llm-sdk`` installed for the peers: ``pip install -e '.[bench]'``).

The loopback server (tests/server.py) runs as its own process and replays the same SSE body for
every request, in 64 KiB writes. Each consumer reads the whole stream through real HTTP:
- floor: httpx line iteration + ``json.loads`` (no conversion at all);
- anyllm: ``AnyLLM.acompletion_stream`` (SSE decoder + ChatCompletionChunk per event);
- openai SDK: ``AsyncOpenAI().chat.completions.create(stream=True)``;
- any-llm-sdk: ``any_llm.acompletion(stream=True)``.
Target: anyllm >= 5x the openai SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "hi"}]


def make_stream(path: Path, n: int) -> None:
    """A realistic OpenAI stream: role chunk, n-2 content chunks, finish chunk, usage, [DONE]."""
    base = {"id": "chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62", "object": "chat.completion.chunk",
            "created": 1727346182, "model": "gpt-4o-2024-08-06",
            "system_fingerprint": "fp_143bb8492c"}
    lines = []
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                                                        "refusal": None},
                                  "logprobs": None, "finish_reason": None}]}
    lines.append(first)
    for i in range(n - 2):
        lines.append({**base, "choices": [{"index": 0, "delta": {"content": f" word{i % 997}"},
                                           "logprobs": None, "finish_reason": None}]})
    lines.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                       "finish_reason": "stop"}]})
    lines.append({**base, "choices": [], "usage": {"prompt_tokens": 10,
                                                   "completion_tokens": n - 2,
                                                   "total_tokens": n + 8}})
    body = "".join(f"data: {json.dumps(obj, separators=(',', ':'))}\n\n" for obj in lines)
    path.write_text(body + "data: [DONE]\n\n")


async def floor(url: str) -> int:
    import httpx

    count = 0
    async with httpx.AsyncClient(timeout=60) as client, client.stream(
            "POST", url + "/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True}) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                json.loads(line[6:])
                count += 1
    return count


async def anyllm(url: str) -> int:
    from anyllm_cli import AnyLLM

    count = 0
    async with await AnyLLM.acreate("openai", api_key="sk-bench", api_base=url + "/v1") as llm:
        async for _chunk in llm.acompletion_stream("gpt-4o", MESSAGES):
            count += 1
    return count


async def openai_sdk(url: str) -> int:
    from openai import AsyncOpenAI

    count = 0
    client = AsyncOpenAI(api_key="sk-bench", base_url=url + "/v1")
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,  # type: ignore[arg-type]
                                                  stream=True)
    async for _chunk in stream:
        count += 1
    await client.close()
    return count


async def any_llm_sdk(url: str) -> int:
    from any_llm import acompletion

    count = 0
    stream = await acompletion(model="gpt-4o", provider="openai", messages=MESSAGES,
                               api_key="sk-bench", api_base=url + "/v1", stream=True)
    async for _chunk in stream:  # type: ignore[union-attr]
        count += 1
    return count


CONSUMERS: dict[str, Callable[[str], Awaitable[int]]] = {
    "floor (httpx lines + json.loads)": floor,
    "anyllm": anyllm,
    "openai SDK": openai_sdk,
    "any-llm-sdk": any_llm_sdk,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    sse = out / f"stream-{args.chunks}.sse"
    make_stream(sse, args.chunks)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "server.py"), "--port", "0", "--sse", str(sse),
         "--split", "65536"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        rates: dict[str, list[float]] = {name: [] for name in CONSUMERS}
        for _ in range(args.runs):
            for name, fn in CONSUMERS.items():
                try:
                    start = time.perf_counter()
                    count = asyncio.run(fn(url))
                    elapsed = time.perf_counter() - start
                except ImportError as exc:
                    print(f"# {name}: not installed ({exc.name})", file=sys.stderr)
                    continue
                # every consumer yields every chunk (incl. the usage chunk)
                assert count >= args.chunks - 1, (name, count)
                rates[name].append(count / elapsed)
    finally:
        server.terminate()
        server.wait()
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    print(f"# streaming decode+convert, {args.chunks} chunks, median of {args.runs} runs -- "
          f"python bench/stream.py --chunks {args.chunks} --runs {args.runs}")
    print(f"# machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for name, rate in med.items():
        print(f"{name:34s} {rate:10,.0f} chunks/s")
    if "anyllm" in med and "openai SDK" in med:
        print(f"anyllm / openai SDK = {med['anyllm'] / med['openai SDK']:.1f}x  (target >= 5x)")
    if "anyllm" in med and "any-llm-sdk" in med:
        print(f"anyllm / any-llm-sdk = {med['anyllm'] / med['any-llm-sdk']:.1f}x")
    if "anyllm" in med and "floor (httpx lines + json.loads)" in med:
        print(f"anyllm / floor = {med['anyllm'] / med['floor (httpx lines + json.loads)']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
