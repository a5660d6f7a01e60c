#!/usr/bin/env python3
"""Fail CI when a test that the README says runs in CI was skipped.

pytest's `-ra` summary (on by default: pyproject.toml addopts) lists every skip as
`SKIPPED [N] path:line: reason`. Each skipped path is matched to the README's "Testing" table
(the most specific `where` path wins); a skip under a row whose "runs in CI" column says `yes`
fails the job, because a skip does not fail pytest and would otherwise pass silently.

    python3 .github/scripts/ci_skips.py make-test.log [--readme README.md]

Exit 0: no forbidden skip. 1: forbidden skips (listed). 2: usage error or no table found.
Standard library only: it runs on the runner's python3 before any venv exists.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_LINE = re.compile(r"^SKIPPED \[\d+\] (?P<path>[^\s:]+):\d+: (?P<reason>.*)$")
CODE = re.compile(r"`([^`]+)`")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # pytest colours its summary when told to (FORCE_COLOR, --color=yes)


@dataclass(frozen=True)
class Row:
    """One row of the README's Testing table: where the tests live, and whether CI runs them."""

    what: str
    paths: tuple[str, ...]
    runs_in_ci: bool


def readme_rows(readme: str) -> list[Row]:
    """The rows of the table whose header has a `runs in CI` column."""
    rows: list[Row] = []
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "runs in CI" not in cells or "where" not in cells:
            continue
        where, ci = cells.index("where"), cells.index("runs in CI")
        for body in lines[i + 2:]:
            if not body.startswith("|"):
                break
            cols = [c.strip() for c in body.strip().strip("|").split("|")]
            paths = tuple(p.split()[0] for p in CODE.findall(cols[where]) if p.startswith(("tests/", "scripts/")))
            rows.append(Row(what=cols[0], paths=paths, runs_in_ci=cols[ci].lower().startswith("yes")))
        break
    return rows


def row_for(path: str, rows: list[Row]) -> Row | None:
    """The row whose path is the longest prefix of `path` (a file row beats its folder's row)."""
    best: tuple[int, Row] | None = None
    for row in rows:
        for p in row.paths:
            under = path == p or path.startswith(p.rstrip("/") + "/")
            if under and (best is None or len(p) > best[0]):
                best = (len(p), row)
    return best[1] if best else None


def forbidden_skips(log: str, rows: list[Row]) -> list[str]:
    """Each skip line of the log that falls under a `yes` row, or under no row at all."""
    bad = []
    for line in log.splitlines():
        m = SKIP_LINE.match(ANSI.sub("", line).strip())
        if not m:
            continue
        row = row_for(m["path"], rows)
        if row is None:
            bad.append(f"{m['path']}: not in the README's Testing table (add a row): {m['reason']}")
        elif row.runs_in_ci:
            bad.append(f"{m['path']} ({row.what}): README says it runs in CI, but it skipped: {m['reason']}")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="the output of `make test`")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    rows = readme_rows(args.readme.read_text())
    if not rows:
        print(f"::error title=no Testing table::{args.readme} has no table with a 'runs in CI' column")
        return 2
    bad = forbidden_skips(args.log.read_text(errors="replace"), rows)
    for line in bad:
        print(f"::error title=skipped in CI::{line}")
    if not bad:
        print(f"no skipped test under a README row that says it runs in CI ({len(rows)} rows checked)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
