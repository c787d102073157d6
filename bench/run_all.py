"""Run every benchmark, side by side with its peers, and write the figures to bench/RESULTS.md.

Run: ``python bench/run_all.py`` (from the venv with anyllm and the ``[bench]`` and ``[local]``
extras installed). Options: ``--quick`` (a smoke run: few runs, small inputs; minutes, not
figures to quote), ``--full`` (the renderer at the issue's full size instead of its quick mode),
``--only startup,ttft`` (a subset), ``-o FILE`` (another output file).

Each benchmark runs as its own process (``python bench/NAME.py ARGS``, one after the other, so
they do not compete for the CPU); its printed figures are parsed into a table with a ratio to
anyllm's own figure, and its full output is kept below the table. A benchmark that fails or
whose peers are missing is reported as such, and the others still run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import machine, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIMEOUT = 3600  # seconds per benchmark: a hung one must not stop the others


@dataclass
class Row:
    name: str
    value: float
    unit: str
    details: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # other figures a check needs


@dataclass
class Outcome:
    rows: list[Row]
    notes: list[str]  # the script's own ratio / target lines


@dataclass
class Bench:
    key: str
    title: str
    script: str
    args: list[str]
    quick_args: list[str]
    ours: str  # the row that is anyllm's figure
    higher_is_better: bool
    target: str  # from the issues
    peers: tuple[str, ...] = ()  # the rows quoted in the summary
    # (rows by name, notes) -> target met? None when there is no numeric target or no figure.
    check: Callable[[dict[str, Row], list[str]], bool | None] | None = None
    full_args: list[str] | None = None  # with --full, when it differs from args
    parse: Callable[[str], Outcome] = field(default=lambda text: parse_rows(text))


ROW = re.compile(r"^(?P<name>\S.*?)\s{2,}(?P<value>\d[\d,]*(?:\.\d+)?)(?:\s+(?P<unit>[^\s(]+))?"
                 r"(?P<details>.*)$")


def number(text: str) -> float:
    return float(text.replace(",", ""))


def parse_rows(text: str) -> Outcome:
    """Rows ``NAME<2+ spaces>NUMBER [UNIT] [details]``; other lines not starting with ``#`` are
    notes (ratios, targets, ``n/a``)."""
    rows, notes = [], []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", "$")):
            continue
        found = ROW.match(line)
        if found and " = " not in line:
            details = re.sub(r"\s{2,}", " ", found["details"].strip(" ,"))
            rows.append(Row(found["name"].strip(), number(found["value"]),
                            found["unit"] or "", details))
        else:
            notes.append(line.strip())
    return Outcome(rows, notes)


def parse_startup(text: str) -> Outcome:
    out = parse_rows(text)
    for row in out.rows:
        row.unit = row.unit or "s"
    return out


def parse_render(text: str) -> Outcome:
    """bench/render.py's table: renderer, refreshes, wall s, behind s, CPU %, first10% ms,
    last10% ms, last/first, MB out."""
    rows, notes, in_table = [], [], False
    for line in text.splitlines():
        if line.startswith("renderer"):
            in_table = True
        elif in_table and line.startswith("-"):
            continue
        elif in_table and len(parts := line.split()) == 9:
            name, refreshes, wall, _behind, cpu, first, last, ratio, mb = parts
            rows.append(Row(f"{name} renderer", number(cpu), "% of one core",
                            f"refresh cost {first} ms (first tenth) → {last} ms (last tenth), "
                            f"last/first {ratio}; {refreshes} refreshes in {wall} s; "
                            f"{mb} MB written", extra={"last/first": number(ratio)}))
        elif line.startswith(("answer:", "targets")):
            in_table = False
            notes.append(line.strip())
    return Outcome(rows, notes)


def _ratio(rows: dict[str, Row], ours: str, peer: str, higher_is_better: bool) -> float | None:
    if ours not in rows or peer not in rows or not rows[ours].value or not rows[peer].value:
        return None
    a, b = rows[ours].value, rows[peer].value
    return a / b if higher_is_better else b / a


def check_startup(rows: dict[str, Row], notes: list[str]) -> bool | None:
    ratio = _ratio(rows, "anyllm --help", "llm --help", False)
    return None if ratio is None else rows["anyllm --help"].value <= 0.2 and ratio >= 5


def check_stream(rows: dict[str, Row], notes: list[str]) -> bool | None:
    ratio = _ratio(rows, "anyllm", "openai SDK", True)
    return None if ratio is None else ratio >= 5


def check_render(rows: dict[str, Row], notes: list[str]) -> bool | None:
    ours = rows.get("blocks renderer")
    return None if ours is None else ours.value <= 15 and ours.extra["last/first"] <= 1.5


def check_batch(rows: dict[str, Row], notes: list[str]) -> bool | None:
    ratio = _ratio(rows, "anyllm batch, launch to exit", "aiohttp (same concurrency)", True)
    rss = next((number(m[1]) for n in notes if (m := re.search(r"([\d,.]+) MB", n))
                and n.startswith("peak RSS")), None)
    if ratio is None:
        return None
    return ratio >= 0.8 and (rss is None or rss <= 150)


BENCHES = [
    Bench("startup", "Start-up", "startup.py", ["--runs", "15"], ["--runs", "3"],
          ours="anyllm --help", higher_is_better=False, parse=parse_startup,
          peers=("llm --help", 'python -c "import any_llm"'), check=check_startup,
          target="`anyllm --help` ≤ 0.2 s and ≥ 5× faster than `llm --help` (issue 2)."),
    Bench("stream", "Streaming decode + convert", "stream.py",
          ["--chunks", "20000", "--runs", "3"], ["--chunks", "2000", "--runs", "1"],
          ours="anyllm", higher_is_better=True, peers=("openai SDK", "any-llm-sdk"),
          check=check_stream, target="anyllm ≥ 5× the `openai` SDK's chunks/s (issue 2)."),
    Bench("overhead", "One request's overhead", "overhead.py",
          ["--requests", "1000", "--runs", "5"], ["--requests", "100", "--runs", "1"],
          ours="anyllm", higher_is_better=True,
          peers=("raw httpx", "openai SDK", "any-llm-sdk (acompletion)",
                 "any-llm-sdk (one instance)"),
          target="No number set (issue 6): less overhead than the `openai` SDK and "
                 "`any-llm-sdk`, close to raw httpx."),
    Bench("ttft", "Time to first token, whole process", "ttft.py",
          ["--runs", "15"], ["--runs", "3"], ours="anyllm chat", higher_is_better=False,
          peers=("llm", "llm --no-log"),
          target="No number set (issue 6): faster than `llm` on the same server."),
    Bench("render", "Rendering cost", "render.py", ["--quick"], ["--quick"], full_args=[],
          ours="blocks renderer", higher_is_better=False, parse=parse_render,
          peers=("naive renderer",), check=check_render,
          target="At 25,000 characters and 100 chunks/s (`--full`): CPU ≤ 15% of one core, "
                 "last tenth of refreshes ≤ 1.5× the first tenth (issue 2). The default run "
                 "uses the quick mode (5,000 characters at 400 chunks/s)."),
    Bench("batch", "Batch throughput and memory", "batch.py",
          ["--requests", "10000", "-j", "64", "--runs", "3", "--rss-lines", "100000"],
          ["--requests", "500", "-j", "64", "--runs", "1", "--rss-lines", "5000"],
          ours="anyllm batch, launch to exit", higher_is_better=True,
          peers=("aiohttp (same concurrency)", "ideal (concurrency / delay)"),
          check=check_batch,
          target="10,000 requests at `-j 64`, server 50 ms: ≥ 80% of aiohttp's requests/s; "
                 "peak RSS of a 100,000-line batch ≤ 150 MB (issue 4)."),
    Bench("local_tokens", "Local model tokens/s", "local_tokens.py",
          ["--runs", "5", "--max-tokens", "128"], ["--runs", "1", "--max-tokens", "32"],
          ours="anyllm local, stream", higher_is_better=True,
          peers=("llama-cpp-python, streamed",),
          target="No number set (issue 6): as close to llama-cpp-python called directly as "
                 "the worker thread allows."),
]


@dataclass
class Result:
    bench: Bench
    args: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float
    load: float

    @property
    def command(self) -> str:
        return shlex.join(["python", f"bench/{self.bench.script}", *self.args])


def run(bench: Bench, args: list[str]) -> Result:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(HERE / bench.script), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -1, _text(exc.stdout), _text(exc.stderr) + f"\ntimed out after {TIMEOUT} s"
    return Result(bench, args, code, out, err, time.perf_counter() - start, load)


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def versus(ours: Row | None, row: Row, higher_is_better: bool) -> str:
    """How many times better anyllm's figure is than ``row``'s (> 1: anyllm ahead)."""
    if ours is None or row is ours or ours.unit != row.unit or not row.value or not ours.value:
        return "—" if row is ours else ""
    factor = ours.value / row.value if higher_is_better else row.value / ours.value
    return f"{factor:.2f}×"


def section(result: Result) -> list[str]:
    bench = result.bench
    lines = [f"## {bench.title}", "", f"Command: `{result.command}`  ",
             f"Took {result.seconds:.0f} s; load average {result.load:.2f} when it started.", ""]
    outcome = bench.parse(result.stdout) if result.code == 0 else Outcome([], [])
    if result.code != 0:
        tail = (result.stderr.strip() or result.stdout.strip())[-1500:]
        lines += [f"**Failed** (exit {result.code}):", "", "```", tail, "```", ""]
    elif outcome.rows:
        ours = next((r for r in outcome.rows if r.name == bench.ours), None)
        better = "higher" if bench.higher_is_better else "lower"
        lines += ["| measured | figure | details | anyllm vs this |", "|---|---:|---|---:|"]
        for row in outcome.rows:
            name = f"**{row.name}**" if row is ours else row.name
            details = row.details.replace("|", "\\|")
            lines.append(f"| {name} | {fmt(row.value)} {row.unit} | {details} | "
                         f"{versus(ours, row, bench.higher_is_better)} |")
        lines += ["", f"*anyllm vs this*: how many times better `{bench.ours}`'s figure is "
                  f"({better} is better); above 1× anyllm is ahead.", ""]
    if outcome.notes:
        lines += ["As printed:", ""] + [f"- {note}" for note in outcome.notes] + [""]
    lines += [f"Target: {bench.target}", ""]
    if result.code == 0:
        lines += ["<details><summary>full output</summary>", "", "```",
                  result.stdout.strip(), "```", "", "</details>", ""]
    return lines


def summary(results: list[Result]) -> list[str]:
    """One line per benchmark: anyllm's figure, its ratio to each peer, the target's verdict."""
    lines = ["## Summary", "",
             "| benchmark | anyllm | vs peers (above 1× anyllm is ahead) | target |",
             "|---|---:|---|---|"]
    for result in results:
        bench = result.bench
        if result.code != 0:
            lines.append(f"| {bench.title} | failed | | |")
            continue
        outcome = bench.parse(result.stdout)
        rows = {row.name: row for row in outcome.rows}
        ours = rows.get(bench.ours)
        figure = f"{fmt(ours.value)} {ours.unit}" if ours else "n/a"
        vs = "; ".join(f"{versus(ours, rows[p], bench.higher_is_better)} {p}"
                       for p in bench.peers if p in rows and ours is not None)
        met = bench.check(rows, outcome.notes) if bench.check else None
        verdict = {True: "met", False: "**not met**", None: "no number set"}[met]
        if met is not None and bench.args != result.args and bench.key != "render":
            verdict += " (smoke-run sizes)"
        elif bench.key == "render" and "--quick" in result.args:
            verdict += " (quick mode)"
        lines.append(f"| {bench.title} | {figure} | {vs} | {verdict} |")
    return [*lines, ""]


def report(results: list[Result], mode: str, skipped: list[str]) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# anyllm benchmarks", "",
             f"Generated by `python bench/run_all.py{mode}` on {now}.", "",
             f"- Machine: {machine()}",
             f"- Packages: {versions()}", "",
             "These machines are shared and noisy: every figure is a median over several runs, "
             "and each is measured side by side with its peers in the same run (they take turns "
             "within each run), so ratios are more trustworthy than absolute numbers. Rerun "
             "with the command shown under each table.", ""]
    if mode.strip() == "--quick":
        lines += ["**Quick mode:** a smoke run with few runs and small inputs. Not figures "
                  "to quote.", ""]
    for name in skipped:
        lines += [f"- Skipped: {name}", ""]
    lines += summary(results)
    for result in results:
        lines += section(result)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smoke run: few runs, small inputs")
    ap.add_argument("--full", action="store_true", help="the renderer at full size")
    ap.add_argument("--only", help="comma-separated subset: " + ",".join(b.key for b in BENCHES))
    ap.add_argument("-o", "--output", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args()
    wanted = set(args.only.split(",")) if args.only else {b.key for b in BENCHES}
    unknown = wanted - {b.key for b in BENCHES}
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results: list[Result] = []
    skipped: list[str] = []
    for bench in BENCHES:
        if bench.key not in wanted:
            continue
        if not (HERE / bench.script).exists():
            skipped.append(f"{bench.title} (bench/{bench.script} not present)")
            continue
        bench_args = bench.quick_args if args.quick else bench.args
        if args.full and bench.full_args is not None:
            bench_args = bench.full_args
        print(f"$ python bench/{bench.script} {shlex.join(bench_args)}", flush=True)
        result = run(bench, bench_args)
        print(result.stdout.rstrip() or result.stderr.rstrip()[-1500:], flush=True)
        if result.code != 0:
            print(f"# failed (exit {result.code})", flush=True)
        print(f"# {result.seconds:.0f} s\n", flush=True)
        results.append(result)
    mode = "".join(f" --{flag}" for flag in ("quick", "full") if getattr(args, flag))
    if args.only:
        mode += f" --only {args.only}"
    args.output.write_text(report(results, mode, skipped))
    print(f"wrote {args.output}")
    return 0 if all(r.code == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
