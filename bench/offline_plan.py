"""Benchmark: wall time of the offline plan per stack, and of the mock unit suite.

Targets (issue 3): the prod plan <= 5 s, the unit suite <= 60 s on 2 cores. Each figure is the
median of --runs fresh processes (imports included, as a reviewer experiences it).

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


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for stack in ("dev", "prod"):
            times = [timed([sys.executable, "-m", "tools.offline_plan", "--stack", stack, "--out", f"{tmp}/{stack}"])
                     for _ in range(args.runs)]
            print(f"offline plan {stack:5s}: median {statistics.median(times):.2f}s "
                  f"(min {min(times):.2f}s, max {max(times):.2f}s, {args.runs} runs; target prod <= 5s)")
    suites = [s for s in UNIT_SUITES if (REPO / s).exists()]
    unit = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not build and not slow",
                  *suites])
    print(f"unit suite ({', '.join(suites)}): {unit:.1f}s (target <= 60s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
