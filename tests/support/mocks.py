"""Register components under the project's mocks (``tools.plan_mocks``) and read back what the engine saw."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pulumi
from pulumi.runtime.sync_await import _sync_await

from tools.plan_mocks import PlatformMocks, RecordingMonitor, ResourceRecord, install_mocks, run_program

T = TypeVar("T")
PROJECT = "gpu-platform"


def fresh_monitor(stack: str = "unit", mocks: pulumi.runtime.Mocks | None = None) -> RecordingMonitor:
    """Mocks installed for a new stack; the returned monitor records every registration."""
    return install_mocks(mocks or PlatformMocks(PROJECT, stack), project=PROJECT, stack=stack)


def register(program: Callable[[], T], *, stack: str = "unit",
             mocks: pulumi.runtime.Mocks | None = None) -> tuple[T, list[ResourceRecord]]:
    """Run ``program`` (which registers resources) as a Pulumi program; return its result and the records."""
    return register_in(fresh_monitor(stack, mocks), program)


def register_in(monitor: RecordingMonitor, program: Callable[[], T]) -> tuple[T, list[ResourceRecord]]:
    """``register`` under mocks a test already installed (``fresh_monitor``)."""
    holder: dict[str, Any] = {}

    def body() -> None:
        holder["result"] = program()

    run_program(body)
    return holder["result"], [monitor.records[urn] for urn in monitor.order]


def resolve(output: Any) -> Any:
    """The value of an Output (or plain value) once the program has run."""
    return _sync_await(pulumi.Output.from_input(output).future())


def is_secret(output: Any) -> bool:
    return bool(_sync_await(pulumi.Output.from_input(output).is_secret()))


def record_secret_data(monkeypatch: Any, module: Any) -> list[dict]:
    """What a component hands to ``k8s.core.v1.Secret`` as ``string_data``, recorded before
    pulumi-kubernetes wraps it: so a test sees the component's own secrecy, not the SDK's."""
    built: list[dict] = []
    real_secret = module.k8s.core.v1.Secret

    def recording_secret(name: str, **kwargs: Any) -> Any:
        built.append(kwargs["string_data"])
        return real_secret(name, **kwargs)

    monkeypatch.setattr(module.k8s.core.v1, "Secret", recording_secret)
    return built
