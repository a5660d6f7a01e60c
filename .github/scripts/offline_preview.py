#!/usr/bin/env python3
"""The offline preview of a pull request that gets no real `pulumi preview` (forks, Dependabot).

For each stack it runs the offline diff against the PR's base (`make plan-diff STACK=<stack>
BASE=<rev>`: exit 0 no change, 2 changes, anything else an error) and the offline plan
(`make plan STACK=<stack>`), and writes:
  <out>/comment.md     the PR comment (posted by preview-comment.yml, which has a writable token)
  $GITHUB_STEP_SUMMARY the same text, headed by a plain "no real pulumi preview ran" line
Exit 0 when every diff ran (changes or not), 1 when a diff or plan failed (the comment says which).

    python3 .github/scripts/offline_preview.py --base <sha> --reason "<why>" --out DIR [--stack dev ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MARKER = "<!-- gpu-platform:offline-preview -->"
# GitHub refuses comments over 65,536 characters; keep room for the commenter's own header.
DIFF_BUDGET = 20_000
PLAN_BUDGET = 8_000
DIFF_MEANING = {0: "no change", 2: "changes"}


@dataclass(frozen=True)
class StackResult:
    stack: str
    diff_rc: int
    diff: str
    plan_rc: int
    plan: str

    @property
    def ok(self) -> bool:
        return self.diff_rc in DIFF_MEANING and self.plan_rc == 0

    @property
    def verdict(self) -> str:
        return DIFF_MEANING.get(self.diff_rc, f"error (plan-diff exit {self.diff_rc})")


def _run(args: list[str]) -> tuple[int, str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return done.returncode, (done.stdout + done.stderr).strip()


def _cut(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    return text[:budget] + f"\n... cut at {budget} characters: the full text is in the job log"


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in the text, so the text cannot close it."""
    run = longest = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def preview_stack(stack: str, base: str, make: str = "make") -> StackResult:
    diff_rc, diff = _run([make, "-s", "plan-diff", f"STACK={stack}", f"BASE={base}"])
    plan_rc, plan = _run([make, "-s", "plan", f"STACK={stack}"])
    return StackResult(stack, diff_rc, diff, plan_rc, plan)


def render(results: list[StackResult], base: str, reason: str) -> str:
    lines = [
        MARKER,
        "## No real `pulumi preview` ran for this pull request",
        "",
        f"Why: {reason}. Below is the **offline** diff against the base `{base[:12]}` and the offline",
        "plan (the real program under Pulumi's mocks with the committed stack config): what the",
        "change does to the resource graph and the rendered manifests, not what the cloud holds today.",
        "",
        "| stack | offline diff |",
        "| --- | --- |",
        *[f"| {r.stack} | {r.verdict} |" for r in results],
    ]
    for r in results:
        lines += ["", f"### {r.stack}: `make plan-diff STACK={r.stack} BASE={base[:12]}` ({r.verdict})", "",
                  _fence(_cut(r.diff or "(no output)", DIFF_BUDGET)), "",
                  (f"<details><summary>offline plan of {r.stack}"
                  f"{'' if r.plan_rc == 0 else f' (failed, exit {r.plan_rc})'}</summary>"), "",
                  _fence(_cut(r.plan or "(no output)", PLAN_BUDGET)), "", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to diff against (the PR's base commit)")
    parser.add_argument("--reason", required=True, help="why no real preview ran")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--stack", action="append", help="default: dev and prod")
    args = parser.parse_args(argv)
    make = os.environ.get("MAKE", "make")
    results = [preview_stack(s, args.base, make) for s in (args.stack or ["dev", "prod"])]
    body = render(results, args.base, args.reason)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comment.md").write_text(body)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(body)
    for r in results:
        print(f"{r.stack}: offline diff: {r.verdict}; offline plan exit {r.plan_rc}")
        if not r.ok:
            print(f"::error title=offline preview failed ({r.stack})::{r.verdict}; plan exit {r.plan_rc}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
