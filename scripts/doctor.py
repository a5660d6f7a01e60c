#!/usr/bin/env python3
"""`make doctor STACK=dev`: what a real `pulumi up` of a stack still needs, checked locally.

Checks what this machine can see, and prints one line per finding with its fix:
  - the stack file's secrets (`hfToken`, `registryPassword`) are set where the config needs them
    (the rules of components/settings.py) and are encrypted: a `secure:` value, never plain text;
  - the stack's `githubEnvironments` holds the GitHub environment the workflows deploy it through
    (images.yml scans each stack's images with that environment's HF_TOKEN);
  - prod: `apiAllowedCidrs` is not the whole internet (CI reaches prod from a fixed egress address);
  - the tools on PATH: pulumi (the CLI release of the pinned SDK), uv, docker with buildx when the
    stack builds images; node, buildah and cosign as optional extras.
Then it lists what only GitHub can show (secrets, environments and reviewers, the prod runner).
Exit 0: nothing missing. 1: something missing. 2: no such stack file, or unreadable.

    .venv/bin/python scripts/doctor.py --stack dev [--root DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "gpu-platform"
WORKFLOW_ENV = re.compile(r"^\s*environment:\s*(?P<name>[A-Za-z0-9_.-]+)\s*(?:#.*)?$")


@dataclass
class Report:
    """Findings in the order they were made; `missing` decides the exit status."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def ok(self, text: str) -> None:
        self.lines.append(("ok", text))

    def missing(self, text: str) -> None:
        self.lines.append(("MISSING", text))

    def warn(self, text: str) -> None:
        self.lines.append(("warn", text))

    def on_github(self, text: str) -> None:
        self.lines.append(("github", text))

    @property
    def missing_count(self) -> int:
        return sum(1 for kind, _ in self.lines if kind == "MISSING")


def _key(config: dict, name: str, default=None):
    return config.get(f"{PROJECT}:{name}", default)


def check_secrets(config: dict, stack: str, uses_esc: bool, report: Report) -> None:
    """Each secret the config needs is present, and encrypted in the stack file."""
    needs = {
        "hfToken": [why for why, cond in (
            ("githubRepository is set (the Actions secret HF_TOKEN)", bool(_key(config, "githubRepository"))),
            # No image build needs it (hf-server only to bake a model in, which `pulumi up` does not do).
            ("a model is gated (model-cache downloads it with the token)",
             any(isinstance(m, dict) and m.get("gated") is True for m in (_key(config, "models") or []))),
        ) if cond],
        "registryPassword": [why for why, cond in (
            ("registryUsername is set (the pull secret)", bool(_key(config, "registryUsername"))),
            ("buildImages is true (image pushes)", _key(config, "buildImages") is True),
        ) if cond],
    }
    for name, reasons in needs.items():
        value = _key(config, name)
        fix = f"pulumi config set --secret {name} <value> -s {stack}"
        if isinstance(value, dict) and isinstance(value.get("secure"), str) and value["secure"]:
            report.ok(f"{PROJECT}:{name} is set and encrypted (secure: in Pulumi.{stack}.yaml)")
        elif value is not None:
            report.missing(f"{PROJECT}:{name} is in plain text in Pulumi.{stack}.yaml: remove the line, rotate the "
                           f"value (it is in git history), then {fix}")
        elif not reasons:
            report.ok(f"{PROJECT}:{name} is not needed by this config")
        elif uses_esc:
            report.warn(f"{PROJECT}:{name} is not in Pulumi.{stack}.yaml; needed because {'; '.join(reasons)}. The "
                        "stack imports a Pulumi ESC environment, which may supply it: `pulumi config -s "
                        f"{stack}` shows whether it does")
        else:
            report.missing(f"{PROJECT}:{name} is not set; needed because {'; '.join(reasons)}. Fix: {fix}")


def workflow_environments(root: Path) -> list[str]:
    """The GitHub environments the workflows name literally (`environment: prod`)."""
    found: set[str] = set()
    workflows = root / ".github" / "workflows"
    for path in sorted([*workflows.glob("*.yml"), *workflows.glob("*.yaml")]):
        for line in path.read_text().splitlines():
            if m := WORKFLOW_ENV.match(line):
                found.add(m["name"])
    return sorted(found)


def check_environments(config: dict, stack: str, root: Path, report: Report) -> None:
    named = workflow_environments(root)
    if stack not in named:
        report.warn(f"no workflow deploys through a GitHub environment named '{stack}' (workflows name: "
                    f"{', '.join(named) or 'none'})")
        return
    envs = _key(config, "githubEnvironments", []) or []
    if not _key(config, "githubRepository"):
        report.warn("githubRepository is empty: the platform writes no HF_TOKEN secret, so CI's token scan of "
                    f"the {stack} images has no token to look for and fails")
    elif stack in envs:
        report.ok(f"githubEnvironments holds '{stack}': the platform writes HF_TOKEN into the environment the "
                  "workflows scan this stack's images with")
    else:
        report.missing(f"githubEnvironments lacks '{stack}', the GitHub environment the workflows deploy this stack "
                       f"through (its HF_TOKEN is what images.yml scans for). Fix: add '{stack}' to "
                       f"{PROJECT}:githubEnvironments in Pulumi.{stack}.yaml")


def check_api_access(config: dict, stack: str, report: Report) -> None:
    if _key(config, "environment") != "prod":
        return
    cidrs = _key(config, "apiAllowedCidrs", ["0.0.0.0/0"]) or []
    if not cidrs or any(c in ("0.0.0.0/0", "::/0") for c in cidrs):
        report.missing(f"apiAllowedCidrs of {stack} is {cidrs}: prod's API must admit only named networks, the prod "
                       "runner's egress address among them (docs/ci-cd.md, 'How CI reaches prod's API')")
    else:
        report.ok(f"apiAllowedCidrs: {', '.join(cidrs)}")
        report.on_github(f"the prod runner's egress address is inside one of {', '.join(cidrs)}")


def pinned_sdk(root: Path) -> str | None:
    text = (root / "pyproject.toml").read_text() if (root / "pyproject.toml").exists() else ""
    m = re.search(r'"pulumi==(\d+\.\d+\.\d+)"', text)
    return m[1] if m else None


def _version(tool: str, *args: str) -> str:
    try:
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def check_tools(config: dict, root: Path, report: Report) -> None:
    sdk = pinned_sdk(root)
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        report.missing(f"pulumi is not on PATH. Fix: install the Pulumi CLI {sdk or ''} "
                       "(https://www.pulumi.com/docs/install/; CI pins the same release)")
    else:
        version = _version(pulumi, "version").lstrip("v")
        if sdk and version != sdk:
            report.warn(f"pulumi {version} on PATH; CI runs {sdk}, the release of the pulumi SDK in pyproject.toml")
        else:
            report.ok(f"pulumi {version}")
    if shutil.which("uv") is None:
        report.missing("uv is not on PATH. Fix: make setup-core (installs uv, then the locked .venv)")
    else:
        report.ok(_version("uv", "--version"))
    if _key(config, "buildImages") is True:
        docker = shutil.which("docker")
        if docker is None:
            report.missing("docker is not on PATH, and buildImages is true (pulumi-docker-build needs Docker with "
                           "buildx). Fix: install Docker Engine with the buildx plugin")
        elif subprocess.run([docker, "buildx", "version"], capture_output=True, check=False).returncode != 0:
            report.missing("docker has no buildx, and buildImages is true. Fix: install the docker-buildx plugin")
        else:
            report.ok("docker with buildx (buildImages is true)")
    for tool, what, fix in (("node", "workflow lint", "make setup"), ("buildah", "the image-leak tests", "make setup"),
                            ("cosign", "verifying image signatures by hand", "https://docs.sigstore.dev")):
        if shutil.which(tool) is None:
            report.warn(f"{tool} is not on PATH (optional, for {what}; install: {fix})")
        else:
            report.ok(f"{tool} on PATH (for {what})")


def doctor(stack: str, root: Path) -> Report | str:
    """The report for one stack, or an error line when its file cannot be read."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        return f"no stack file {path.name}: STACK must be one of {', '.join(stacks) or '(none)'}"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        return f"{path.name} is not valid YAML: {exc}"
    config = data.get("config") or {}
    report = Report()
    check_secrets(config, stack, uses_esc=bool(data.get("environment")), report=report)
    check_environments(config, stack, root, report)
    check_api_access(config, stack, report)
    check_tools(config, root, report)
    report.on_github("repository secrets PULUMI_ACCESS_TOKEN, CIVO_TOKEN, and GH_PROVIDER_TOKEN (fine-grained PAT) or "
                     "the App pair GH_APP_CLIENT_ID / GH_APP_PRIVATE_KEY")
    report.on_github(f"environment '{stack}' exists" + (" with required reviewers and deployment branch main "
                                                        "(up.yml's prod-gate job refuses it otherwise)"
                                                        if stack == "prod" else ""))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    result = doctor(args.stack, args.root)
    if isinstance(result, str):
        print(f"doctor: {result}")
        return 2
    print(f"make doctor STACK={args.stack}")
    labels = {"ok": "ok      ", "MISSING": "MISSING ", "warn": "warn    ", "github": "on GitHub (not checkable here):"}
    for kind, text in result.lines:
        print(f"  {labels[kind]} {text}")
    n = result.missing_count
    print(f"{n} missing" + (": fix the MISSING lines above" if n else "; check the 'on GitHub' lines by hand "
                           "(docs/ci-cd.md, first-run checklist)"))
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
