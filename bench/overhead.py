"""One request's overhead: sequential non-streaming chat completions to the loopback server.

Run: ``python bench/overhead.py [--requests 1000] [--runs 5]`` (the peers ``openai`` and
``any-llm-sdk`` are in the ``[bench]`` extra; a missing one is skipped).

The loopback server (tests/server.py, its canned OpenAI chat completion, no delay) runs as its own
process. Each client sends ``--requests`` requests one after the other (one client instance,
keep-alive, after a few warm-up requests that open the connection) and reads the whole reply:
- raw httpx: ``AsyncClient.post`` + ``response.json()`` (the floor: no types, no checks);
- anyllm: one ``AnyLLM.acreate("openai", ...)`` instance, ``acompletion`` in a loop;
- openai SDK: one ``AsyncOpenAI``, ``chat.completions.create`` in a loop;
- any-llm-sdk: ``any_llm.acompletion(provider="openai", ...)`` in a loop (its documented call),
  and one ``any_llm.AnyLLM.create("openai", ...)`` instance reused, to be fair to it.
Clients take turns within each run, so machine noise hits them alike; the figures are medians over
the runs. Reported: requests/s, microseconds per request, and each one's time per request as a
ratio of raw httpx's (1.00x = no overhead beyond the HTTP client).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from _common import CANNED_ANSWER, MESSAGES, loopback_server, machine, median

KEY = "sk-bench"
MODEL = "gpt-4o"
WARMUP = 5

# A client: an async context manager (its instance, kept open for the whole run) that yields
# a function sending one request and returning the answer's text.
OneRequest = Callable[[], Awaitable[str]]
Client = Callable[[str], AbstractAsyncContextManager[OneRequest]]


@asynccontextmanager
async def raw_httpx(url: str) -> AsyncIterator[OneRequest]:
    import httpx

    body = {"model": MODEL, "messages": MESSAGES}
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url + "/v1", timeout=60) as client:

        async def one() -> str:
            resp = await client.post("/chat/completions", json=body, headers=headers)
            resp.raise_for_status()
            return str(resp.json()["choices"][0]["message"]["content"])

        yield one


@asynccontextmanager
async def anyllm(url: str) -> AsyncIterator[OneRequest]:
    from anyllm_cli import AnyLLM

    async with await AnyLLM.acreate("openai", api_key=KEY, api_base=url + "/v1") as llm:

        async def one() -> str:
            reply = await llm.acompletion(MODEL, MESSAGES)
            return reply.choices[0].message.content or ""

        yield one


@asynccontextmanager
async def openai_sdk(url: str) -> AsyncIterator[OneRequest]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=KEY, base_url=url + "/v1")

    async def one() -> str:
        reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return reply.choices[0].message.content or ""

    try:
        yield one
    finally:
        await client.close()


@asynccontextmanager
async def any_llm_call(url: str) -> AsyncIterator[OneRequest]:
    from any_llm import acompletion

    async def one() -> str:
        reply: Any = await acompletion(model=MODEL, provider="openai", messages=MESSAGES,
                                       api_key=KEY, api_base=url + "/v1")
        return str(reply.choices[0].message.content or "")

    yield one


@asynccontextmanager
async def any_llm_instance(url: str) -> AsyncIterator[OneRequest]:
    from any_llm import AnyLLM as AnyLLMSDK

    llm = AnyLLMSDK.create("openai", api_key=KEY, api_base=url + "/v1")

    async def one() -> str:
        reply: Any = await llm.acompletion(model=MODEL, messages=MESSAGES)
        return str(reply.choices[0].message.content or "")

    yield one


CLIENTS: dict[str, Client] = {
    "raw httpx": raw_httpx,
    "anyllm": anyllm,
    "openai SDK": openai_sdk,
    "any-llm-sdk (acompletion)": any_llm_call,
    "any-llm-sdk (one instance)": any_llm_instance,
}
FLOOR = "raw httpx"


def _quiet_closed_loop(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """any_llm.acompletion opens a client per call and never closes it; their close tasks fail
    with "Event loop is closed" once the run is over. That noise is theirs, not a result."""
    exc = context.get("exception")
    if isinstance(exc, RuntimeError) and "Event loop is closed" in str(exc):
        return
    loop.default_exception_handler(context)


async def timed(client: Client, url: str, n: int) -> float:
    """Requests per second over ``n`` sequential requests, after :data:`WARMUP` untimed ones
    (imports, the instance and the connection are not what is measured)."""
    asyncio.get_running_loop().set_exception_handler(_quiet_closed_loop)
    async with client(url) as one:
        for _ in range(WARMUP):
            text = await one()
            if text != CANNED_ANSWER:
                raise AssertionError(f"unexpected answer {text!r}")
        start = time.perf_counter()
        for _ in range(n):
            await one()
        elapsed = time.perf_counter() - start
    return n / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in CLIENTS}
    missing: dict[str, str] = {}
    with loopback_server() as url:
        for _ in range(args.runs):
            for name, client in CLIENTS.items():
                if name in missing:
                    continue
                try:
                    rates[name].append(asyncio.run(timed(client, url, args.requests)))
                except ImportError as exc:
                    missing[name] = exc.name or str(exc)
    print(f"# one request's overhead, {args.requests} sequential non-streaming requests, median "
          f"of {args.runs} runs -- python bench/overhead.py --requests {args.requests} "
          f"--runs {args.runs}")
    print(f"# machine: {machine()}")
    med = {name: median(v) for name, v in rates.items() if v}
    floor = med.get(FLOOR)
    for name in CLIENTS:
        if name not in med:
            print(f"{name:28s}   n/a (not installed: {missing.get(name, '?')})")
            continue
        rate = med[name]
        line = f"{name:28s} {rate:8,.0f} requests/s {1e6 / rate:8,.0f} µs/request"
        if floor:
            line += f", {floor / rate:5.2f}x raw httpx's time"
        print(line)
    if floor and "anyllm" in med:
        ours = 1e6 / med["anyllm"]
        print(f"anyllm - raw httpx = {ours - 1e6 / floor:+,.0f} µs per request")
        for peer in ("openai SDK", "any-llm-sdk (acompletion)", "any-llm-sdk (one instance)"):
            if peer in med:
                print(f"anyllm / {peer} = {med['anyllm'] / med[peer]:.1f}x requests/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
