"""Benchmark: streaming Markdown rendering cost, block renderer vs. a naive full redraw.

    python bench/render.py            # ~25,000 chars at 100 chunks/s (about a minute)
    python bench/render.py --quick    # 5,000 chars at 400 chunks/s (a few seconds)

A deterministic Markdown answer is fed in LLM-sized pieces (3-12 chars) at a fixed rate, in
real time, to ``MarkdownRenderer`` and to a naive renderer that keeps the whole answer in one
``Live(Markdown(...))``; both refresh at most 20 times a second. Reported per renderer:

* CPU %: process CPU time / wall time while streaming (share of one core);
* refresh cost: wall time of each ``content()`` call that redrew the screen, mean of the first
  tenth of those redraws vs. the last tenth. The answer repeats one section template, so the
  first and last tenth show the same kinds of blocks and only the amount of text before them
  differs: a ratio near 1 means the cost does not grow with the answer.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown

from anyllm_cli.render import CODE_THEME, MarkdownRenderer

CPU_TARGET = 15.0
RATIO_TARGET = 1.5

WORDS = (  # noqa: SIM905 - a word list reads better as text
    "model stream token answer render terminal block cache latency buffer provider request "
    "response config default retry budget header schema chunk parser output markdown refresh "
    "screen cursor width height python shell batch prompt context window limit value"
).split()


def _sentence(rnd: random.Random, n: int) -> str:
    words = [rnd.choice(WORDS) for _ in range(n)]
    if rnd.random() < 0.3:
        words[rnd.randrange(n)] = f"`{rnd.choice(WORDS)}_{rnd.randrange(100)}`"
    if rnd.random() < 0.3:
        words[rnd.randrange(n)] = f"**{rnd.choice(WORDS)}**"
    return " ".join(words).capitalize() + "."


def _paragraph(rnd: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rnd, rnd.randint(8, 16)) for _ in range(sentences))


def _section(rnd: random.Random, k: int) -> str:
    name = rnd.choice(WORDS)
    py = "\n".join(
        [
            f"def handle_{name}_{k}(items: list[str], limit: int = {rnd.randint(2, 90)}) -> dict:",
            f'    """Group {name} items by their first letter."""',
            "    groups: dict[str, list[str]] = {}",
            "    for item in items[:limit]:",
            "        key = item[:1].lower()",
            "        groups.setdefault(key, []).append(item)",
            "",
            "    # keep the biggest groups first",
            "    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))",
            f'    print(f"{{len(ordered)}} groups for {name}")',
            "    return dict(ordered)",
        ]
    )
    sh = "\n".join(
        [
            f"export ANYLLM_MODEL={name}-{k}",
            f'anyllm chat --max-tokens {rnd.randint(64, 512)} "summarise the {name} logs" \\',
            "    | tee /tmp/answer.md",
            'grep -c "^#" /tmp/answer.md',
        ]
    )
    bullets = "\n".join(f"- {_sentence(rnd, rnd.randint(5, 11))}" for _ in range(5))
    numbered = "\n\n".join(f"{i}. {_sentence(rnd, rnd.randint(6, 12))}" for i in range(1, 5))
    return "\n\n".join(
        [
            f"## {k}. Handling the {name} case",
            _paragraph(rnd, 3),
            f"Things to check:\n{bullets}",
            f"### Steps for {name}",
            numbered,
            _paragraph(rnd, 2),
            f"```python\n{py}\n```",
            _paragraph(rnd, 2),
            f"```bash\n{sh}\n```",
            f"> {_sentence(rnd, 12)}",
            _paragraph(rnd, 2),
        ]
    )


def build_answer(chars: int, seed: int = 7) -> str:
    """A Markdown answer of about ``chars`` characters, the same for the same arguments.

    It is ``n`` sections of one template (10 for the default size), each padded with
    paragraphs to ``chars / n``, so every tenth of the answer has the same mix of blocks.
    """
    rnd = random.Random(seed)
    n = max(2, min(10, round(chars / 2_000)))
    sections = []
    for k in range(1, n + 1):
        section = _section(rnd, k)
        while len(section) < chars // n - 50:
            section += "\n\n" + _paragraph(rnd, 2)
        sections.append(section)
    return "\n\n".join(sections) + "\n"


def split_pieces(text: str, seed: int = 11) -> list[str]:
    rnd = random.Random(seed)
    pieces, i = [], 0
    while i < len(text):
        n = rnd.randint(3, 12)
        pieces.append(text[i : i + n])
        i += n
    return pieces


class _Streaming(Protocol):
    refresh_count: int

    def content(self, text: str) -> None: ...
    def finish(self) -> None: ...


class NaiveRenderer:
    """The obvious approach: the whole answer in one Live Markdown, redrawn every refresh."""

    def __init__(self, console: Console, *, refresh_per_second: float = 20.0) -> None:
        self._text = ""
        self._interval = 1.0 / refresh_per_second
        self._last = float("-inf")
        self.refresh_count = 0
        self._live = Live(console=console, auto_refresh=False, redirect_stderr=False)
        self._live.start()

    def content(self, text: str) -> None:
        self._text += text
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self.refresh_count += 1
            self._live.update(Markdown(self._text, code_theme=CODE_THEME), refresh=True)

    def finish(self) -> None:
        self._live.update(Markdown(self._text, code_theme=CODE_THEME), refresh=False)
        self._live.stop()


class _CountingSink(io.StringIO):
    """A terminal stand-in that keeps nothing but the byte count."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, s: str) -> int:
        self.written += len(s.encode())
        return len(s)

    def isatty(self) -> bool:
        return True


@dataclass
class Result:
    name: str
    chunks: int
    refreshes: int
    wall: float
    cpu_pct: float
    late: float  # how far behind the arrival schedule the feed ended, seconds
    first_ms: float
    last_ms: float
    written: int

    @property
    def ratio(self) -> float:
        return self.last_ms / self.first_ms if self.first_ms else float("nan")


def run(
    name: str,
    factory: Callable[[Console], _Streaming],
    pieces: list[str],
    rate: float,
    width: int,
    height: int,
) -> Result:
    sink = _CountingSink()
    console = Console(
        file=sink, force_terminal=True, width=width, height=height, color_system="truecolor"
    )
    renderer = factory(console)
    costs: list[float] = []
    step = 1.0 / rate
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i, piece in enumerate(pieces):
        delay = wall0 + i * step - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        before = renderer.refresh_count
        t = time.perf_counter()
        renderer.content(piece)
        dt = time.perf_counter() - t
        if renderer.refresh_count != before:
            costs.append(dt)
    late = max(0.0, time.perf_counter() - (wall0 + (len(pieces) - 1) * step))
    renderer.finish()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    tenth = max(1, len(costs) // 10)
    return Result(
        name=name,
        chunks=len(pieces),
        refreshes=len(costs),
        wall=wall,
        cpu_pct=100.0 * cpu / wall,
        late=late,
        first_ms=1000 * mean(costs[:tenth]),
        last_ms=1000 * mean(costs[-tenth:]),
        written=sink.written,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--chars", type=int, default=25_000, help="answer size (default 25000)")
    parser.add_argument("--rate", type=float, default=100.0, help="chunks per second (100)")
    parser.add_argument("--refresh", type=float, default=20.0, help="max refreshes/s (20)")
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="5000 chars at 400 chunks/s")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive renderer")
    args = parser.parse_args(argv)
    if args.quick:
        args.chars, args.rate = 5_000, 400.0
    # Live only redraws in place on a non-dumb terminal; measure that path.
    if os.environ.get("TERM", "dumb") in ("dumb", "unknown", ""):
        os.environ["TERM"] = "xterm-256color"

    answer = build_answer(args.chars)
    pieces = split_pieces(answer)
    rps = args.refresh
    renderers: list[tuple[str, Callable[[Console], _Streaming]]] = [
        ("blocks", lambda c: MarkdownRenderer(c, refresh_per_second=rps)),
    ]
    if not args.no_naive:
        renderers.append(("naive", lambda c: NaiveRenderer(c, refresh_per_second=rps)))

    print(f"$ {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"answer: {len(answer):,} chars, {answer.count(chr(10)) + 1} lines, "
        f"{answer.count('```') // 2} code blocks; {len(pieces):,} pieces of 3-12 chars "
        f"at {args.rate:g}/s; refresh <= {rps:g}/s; console {args.width}x{args.height}"
    )
    results = []
    for name, factory in renderers:
        results.append(run(name, factory, pieces, args.rate, args.width, args.height))

    head = (
        f"{'renderer':<9}{'refreshes':>10}{'wall s':>8}{'behind s':>9}{'CPU %':>7}"
        f"{'first10% ms':>12}{'last10% ms':>11}{'last/first':>11}{'MB out':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.name:<9}{r.refreshes:>10}{r.wall:>8.1f}{r.late:>9.1f}{r.cpu_pct:>7.1f}"
            f"{r.first_ms:>12.2f}{r.last_ms:>11.2f}{r.ratio:>11.2f}{r.written / 1e6:>8.2f}"
        )
    blocks = results[0]
    ok_cpu, ok_ratio = blocks.cpu_pct <= CPU_TARGET, blocks.ratio <= RATIO_TARGET
    print(
        f"targets (blocks): CPU <= {CPU_TARGET:g}% {'PASS' if ok_cpu else 'FAIL'}; "
        f"last/first <= {RATIO_TARGET:g} {'PASS' if ok_ratio else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
