"""Start-up time: ``anyllm --help`` / ``--version`` against ``llm --help`` and a bare interpreter.

Run: ``python bench/startup.py [--runs 15]`` (from the venv that has anyllm and llm installed).
Prints the median wall time of each command over the runs, interleaved so machine noise hits
all of them alike, and the ratios the core issue asks for (target: anyllm --help <= 0.2 s and
>= 5x faster than llm --help).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def find(tool: str) -> str | None:
    here = Path(sys.executable).parent / tool
    return str(here) if here.exists() else shutil.which(tool)


def commands() -> dict[str, list[str] | None]:
    anyllm, llm = find("anyllm"), find("llm")
    py = sys.executable
    return {
        "anyllm --help": [anyllm, "--help"] if anyllm else None,
        "anyllm --version": [anyllm, "--version"] if anyllm else None,
        "llm --help": [llm, "--help"] if llm else None,
        'python -c "import any_llm"': [py, "-c", "import any_llm"],
        "python -c pass": [py, "-c", "pass"],
    }


def time_once(argv: list[str]) -> float | None:
    env = dict(os.environ, NO_COLOR="1")
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                          check=False)
    elapsed = time.perf_counter() - start
    return elapsed if proc.returncode == 0 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    cmds = {k: v for k, v in commands().items() if v is not None}
    samples: dict[str, list[float]] = {k: [] for k in cmds}
    failed: set[str] = set()
    for name, argv in cmds.items():  # warm the page cache once
        if time_once(argv) is None:
            failed.add(name)
    for _ in range(args.runs):
        for name, argv in cmds.items():
            if name in failed:
                continue
            t = time_once(argv)
            if t is not None:
                samples[name].append(t)
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    print(f"# start-up, median of {args.runs} runs (seconds)  -- python bench/startup.py "
          f"--runs {args.runs}")
    print(f"# machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for name in cmds:
        if name in med:
            print(f"{name:32s} {med[name]:7.3f}")
        else:
            print(f"{name:32s}   n/a (not installed or failed)")
    for name in commands():
        if commands()[name] is None:
            print(f"{name:32s}   n/a (not installed)")
    if "anyllm --help" in med and "llm --help" in med:
        ratio = med["llm --help"] / med["anyllm --help"]
        print(f"llm --help / anyllm --help = {ratio:.1f}x  (target >= 5x)")
    if "anyllm --help" in med:
        ok = "ok" if med["anyllm --help"] <= 0.2 else "OVER"
        print(f"anyllm --help = {med['anyllm --help']:.3f} s  (target <= 0.2 s: {ok})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
