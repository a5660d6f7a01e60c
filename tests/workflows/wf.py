"""Shared readers for the workflow tests: the workflow files, their jobs, steps and run scripts.

Globs both `*.yml` and `*.yaml`, and fails (never returns an empty set) when none are found, so
a test over "every workflow" cannot pass by checking nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONS = ROOT / ".github" / "actions"
SCRIPTS = ROOT / ".github" / "scripts"
PULUMI_ACTION = "pulumi/actions"


def workflow_paths() -> list[Path]:
    """Every workflow file (*.yml and *.yaml); raises when there are none."""
    paths = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    if not paths:
        raise AssertionError(f"no workflow files (*.yml, *.yaml) found in {WORKFLOWS}")
    return paths


def action_paths() -> list[Path]:
    """Every local composite action's metadata file."""
    return sorted([*ACTIONS.glob("*/action.yml"), *ACTIONS.glob("*/action.yaml")])


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def load_action(name: str) -> dict[str, Any]:
    return yaml.safe_load((ACTIONS / name / "action.yml").read_text())


def on(wf: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return wf.get("on", wf.get(True))


def all_workflows() -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in workflow_paths()}


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in steps(job) if uses(s, PULUMI_ACTION)]


def step_named(job: dict[str, Any], fragment: str) -> dict[str, Any]:
    """The one step whose name contains fragment."""
    found = [s for s in steps(job) if fragment in s.get("name", "")]
    assert len(found) == 1, f"expected one step named like {fragment!r}, found {[s.get('name') for s in found]}"
    return found[0]


def run_script(script: str, env: dict[str, str], cwd: Path = ROOT, path_prepend: list[Path] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    """Run a workflow step's bash, as GitHub does (bash -e), with only the env given (plus PATH)."""
    path = os.pathsep.join([*(str(p) for p in path_prepend or []), os.environ["PATH"]])
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env={"PATH": path, **env},
                          capture_output=True, text=True, check=False, timeout=60)


def fake_tool(bin_dir: Path, name: str, body: str) -> Path:
    """A fake program on PATH (bash), for the tools a step calls (gh, make, pulumi, docker)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/usr/bin/env bash\n" + body)
    tool.chmod(0o755)
    return tool
