"""Benchmark: wall time of the offline plan per stack, of plan-diff of prod, and of the mock unit suite.

Targets: the prod plan <= 5 s and the unit suite <= 60 s on 2 cores (issue 3); plan-diff of prod
(base: HEAD, both sides planned) <= 2.5x one offline plan of prod, measured in the same run
(issue 12). Each figure is the median of --runs fresh processes (imports included, as a reviewer
experiences it).

    .venv/bin/python bench/offline_plan.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNIT_SUITES = ["tests/config", "tests/components", "tests/program", "tests/app_team"]


def timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd[1:])} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-unit", action="store_true", help="skip timing the unit suite")
    args = parser.parse_args()
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stack in ("dev", "prod"):
            times = [timed([sys.executable, "-m", "tools.offline_plan", "--stack", stack, "--out", f"{tmp}/{stack}"])
                     for _ in range(args.runs)]
            medians[stack] = statistics.median(times)
            print(f"offline plan {stack:5s}: median {medians[stack]:.2f}s "
                  f"(min {min(times):.2f}s, max {max(times):.2f}s, {args.runs} runs; target prod <= 5s)")
    # Exit 0 (no change) or 2 (changes) are both a completed diff.
    diffs = [timed([sys.executable, "-m", "tools.plan_diff", "--stack", "prod", "--base", "HEAD"], ok=(0, 2))
             for _ in range(args.runs)]
    ratio = statistics.median(diffs) / medians["prod"]
    print(f"plan-diff prod   : median {statistics.median(diffs):.2f}s (min {min(diffs):.2f}s, max {max(diffs):.2f}s) "
          f"= {ratio:.2f}x the offline plan of prod (target <= 2.5x)")
    if args.no_unit:
        return 0
    suites = [s for s in UNIT_SUITES if (REPO / s).exists()]
    unit = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not build and not slow",
                  *suites])
    print(f"unit suite ({', '.join(suites)}): {unit:.1f}s (target <= 60s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
