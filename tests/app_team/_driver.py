"""Runs one Pulumi program under mocks in a fresh process and prints what it did as JSON.

Pulumi's runtime state (mocks, config, root stack) is global to a process, so the tests run
each program here, in a subprocess, and nothing leaks into other test modules.

    python tests/app_team/_driver.py platform STACK   # the platform's stack outputs (offline plan)
    python tests/app_team/_driver.py example < specs.json

specs.json maps a scenario name to {"outputs": {...}, "secret_output_names": [...], "config": {...}};
the scenarios run one after another, the runtime reset between them (importing
pulumi_kubernetes is most of the cost, so one process serves them all).
Secret values are written as {"__secret__": value} so the tests can see what stayed secret.
"""

from __future__ import annotations

import asyncio
import json
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "app-team"
PROJECT = "app-team-llm"

asyncio.set_event_loop(asyncio.new_event_loop())

import pulumi
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret
from pulumi.runtime.sync_await import _sync_await

sys.path.insert(0, str(ROOT))
from tools.plan_mocks import install_mocks, run_program


def encode(value: Any) -> Any:
    """JSON-safe copy of a mock input, secrets as {"__secret__": ...}."""
    if is_rpc_secret(value):
        return {"__secret__": encode(unwrap_rpc_secret(value))}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class ExampleMocks(pulumi.runtime.Mocks):
    def __init__(self, outputs: dict[str, Any], secret_output_names: list[str]) -> None:
        self.outputs = outputs
        self.secret_output_names = secret_output_names
        self.resources: list[dict[str, Any]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(
            {"type": args.typ, "name": args.name, "provider": args.provider, "inputs": encode(args.inputs)}
        )
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {
                "name": args.inputs.get("name"),
                "outputs": self.outputs,
                "secretOutputNames": self.secret_output_names,
            }
        state = dict(args.inputs)
        if args.typ.startswith("kubernetes:") and isinstance(state.get("metadata"), dict):
            metadata = dict(state["metadata"])
            metadata.setdefault("name", f"{args.name}-5f3a9c1e")  # what auto-naming would do
            state["metadata"] = metadata
        return f"{args.name}_id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


async def _exports() -> tuple[dict[str, Any], list[str]]:
    root = runtime_settings.get_root_resource()
    values: dict[str, Any] = {}
    secret: list[str] = []
    for name, value in (root.outputs if root is not None else {}).items():  # type: ignore[union-attr]
        out = pulumi.Output.from_input(value)
        values[name] = await out.future()
        if await out.is_secret():
            secret.append(name)
    return values, secret


def run_example(spec: dict[str, Any]) -> dict[str, Any]:
    config = {
        f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v)
        for k, v in spec.get("config", {}).items()
    }
    pulumi.runtime.set_all_config(config, [])
    mocks = ExampleMocks(spec["outputs"], spec.get("secret_output_names", []))
    install_mocks(mocks, project=PROJECT, stack="dev")
    sys.path.insert(0, str(EXAMPLE))
    try:
        run_program(lambda: runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__"))
        exports, export_secrets = _sync_await(_exports())
    except Exception as exc:  # noqa: BLE001 - reported to the test as data
        _drain()
        return {
            "ok": False,
            "error_type": type(exc).__name__,
            "error": str(exc),
            "traceback": traceback.format_exc(),
            "resources": mocks.resources,
        }
    return {
        "ok": True,
        "resources": mocks.resources,
        "exports": encode(exports),
        "export_secrets": export_secrets,
    }


def _drain() -> None:
    """Let the failed program's remaining work finish now: Pulumi stops waiting at the first failure,
    and a straggler (or a task it spawns) failing later would be reported as the next scenario's error."""
    loop = asyncio.get_event_loop()
    for _ in range(100):
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not pending:
            break
        loop.run_until_complete(asyncio.wait(pending, timeout=10))
    runtime_settings.SETTINGS.rpc_manager.clear()
    runtime_settings.SETTINGS.outputs.clear()  # tracked Output tasks, awaited (and re-raised) by the next run


def run_platform(stack: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tools.offline_plan import run_plan  # the platform program's real exports, under mocks

    # With buildImages on, `images` holds the refs of the images the platform builds; the
    # stacks default to off (images empty), and that path may fail while images are in the
    # works, so fall back to the stack as configured and say why.
    build_error = None
    try:
        result = run_plan(stack, overrides={"buildImages": True, "promoteImagesFrom": None})
    except Exception as exc:  # noqa: BLE001 - reported to the test as data
        build_error = f"{type(exc).__name__}: {exc}"
        result = run_plan(stack)
    return {
        "outputs": encode(result.raw_outputs),
        "secret_output_names": sorted(result.secret_outputs),
        "build_images_error": build_error,
    }


def main() -> int:
    mode = sys.argv[1]
    if mode == "example":
        result = {name: run_example(spec) for name, spec in json.load(sys.stdin).items()}
    elif mode == "platform":
        result = run_platform(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    json.dump(result, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
