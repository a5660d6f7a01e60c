"""A thin buildah driver for the image tests: private vfs storage, chroot isolation, no pulls.

Each test session gets its own storage root (nothing leaks between runs, nothing is left
behind); the only thing cached between runs is the debootstrap base tarball made by
``tests/images/make-base.sh``, which is imported here under the FROM names the Dockerfiles use.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE_BASE = REPO / "tests" / "images" / "make-base.sh"


def in_ci() -> bool:
    """Whether this is a CI run (GitHub Actions and most CI systems set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def require_tool_or_skip(reason: str | None) -> None:
    """Skip with ``reason`` when a tool cannot run here; under ``CI=true`` fail instead.

    The README lists the image builds as running in CI, and a skip does not fail a CI job: there a
    missing buildah, a non-root runner or ``GPU_PLATFORM_SKIP_BUILD=1`` must turn the job red.
    """
    if reason is None:
        return
    print(f"SKIP image builds: {reason}")
    if in_ci():
        pytest.fail(f"CI=true and the image builds cannot run: {reason}. CI must run what the README says "
                    "it runs: give the job buildah and root (scripts/setup.d/10-buildah.sh)", pytrace=False)
    pytest.skip(reason)


class Unavailable(Exception):
    """buildah cannot run here; the message is the skip reason."""


@dataclass
class Build:
    returncode: int
    log: str
    image: str


def why_unavailable() -> str | None:
    """None when buildah can build here, else the reason it cannot."""
    if os.environ.get("GPU_PLATFORM_SKIP_BUILD") == "1":
        return "GPU_PLATFORM_SKIP_BUILD=1"
    if shutil.which("buildah") is None:
        return "buildah is not installed (scripts/setup.d/10-buildah.sh installs it with apt-get as root)"
    if os.geteuid() != 0:
        return "buildah --isolation chroot with vfs storage needs root here (no rootless setup)"
    return None


def base_tarball() -> Path:
    """The cached debootstrap rootfs (made on first use, one to two minutes)."""
    done = subprocess.run(["bash", str(MAKE_BASE)], capture_output=True, text=True, timeout=900, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        raise RuntimeError(f"make-base.sh failed:\n{done.stderr[-3000:]}")
    if not lines:
        raise Unavailable(f"no local base image: {done.stderr.strip().splitlines()[-1:]}")
    return Path(lines[-1])


def normalise(name: str) -> str:
    """``python:3.11-slim`` -> ``docker.io/library/python:3.11-slim`` (how buildah resolves short names)."""
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def external_bases(dockerfile: Path, build_args: dict[str, str] | None = None) -> list[str]:
    """The images a Dockerfile's FROM lines pull (stage names excluded), ARG defaults applied."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    for raw in _logical_lines(dockerfile.read_text()):
        words = raw.split()
        if not words:
            continue
        op = words[0].upper()
        if op == "ARG" and len(words) > 1 and "=" in words[1]:
            key, _, value = words[1].partition("=")
            args.setdefault(key, value.strip("\"'"))
        elif op == "FROM":
            rest = [w for w in words[1:] if not w.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: {**args, **(build_args or {})}.get(m.group(1), ""), rest[0])
            if len(rest) >= 3 and rest[1].upper() == "AS":
                stages.add(rest[2])
            if image not in stages and image != "scratch" and image not in bases:
                bases.append(image)
    return bases


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    if current:
        lines.append(current)
    return lines


class Buildah:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.global_args = ["--root", str(workdir / "storage"), "--runroot", str(workdir / "run"),
                            "--storage-driver", "vfs"]

    def run(self, *args: str, timeout: int = 900, check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["buildah", *self.global_args, *args], capture_output=True, text=True,
                              timeout=timeout, check=False, env={**os.environ, **(env or {})})
        if check and done.returncode != 0:
            raise RuntimeError(f"buildah {' '.join(args[:2])} failed ({done.returncode}):\n"
                               f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done

    def import_rootfs(self, tarball: Path, tags: list[str]) -> None:
        """Make an image from a rootfs tarball and tag it with every name in ``tags``."""
        ctr = self.run("from", "--pull=never", "scratch").stdout.strip()
        try:
            mount = self.run("mount", ctr).stdout.strip()
            subprocess.run(["tar", "-C", mount, "--numeric-owner", "-xzf", str(tarball)], check=True, timeout=600)
            self.run("umount", ctr)
            self.run("config", "--env", "PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin",
                     "--env", "LANG=C.UTF-8", "--cmd", "python3", ctr)
            self.run("commit", "--quiet", ctr, tags[0])
        finally:
            self.run("rm", ctr, check=False)
        for tag in tags[1:]:
            self.run("tag", tags[0], tag)

    def build(self, context: Path, dockerfile: Path, tag: str, *, secrets: dict[str, Path],
              build_args: dict[str, str] | None = None, layers: bool = False) -> Build:
        argv = ["build", "--isolation", "chroot", "--pull=never", f"--layers={str(layers).lower()}",
                "--network", "host", "-f", str(dockerfile), "-t", tag]
        for secret_id, path in secrets.items():
            argv += ["--secret", f"id={secret_id},src={path}"]
        for key, value in (build_args or {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        done = self.run(*argv, str(context), check=False, timeout=1500)
        return Build(done.returncode, done.stdout + done.stderr, tag)

    def inspect(self, image: str) -> tuple[str, dict]:
        done = self.run("inspect", "--type", "image", image)
        return done.stdout, json.loads(done.stdout)

    def export_oci(self, image: str, dest: Path) -> Path:
        """``buildah push`` to an OCI layout (uncompressed layers: faster, and scanned as is)."""
        self.run("push", "--quiet", "--disable-compression", image, f"oci:{dest}:scan")
        return dest

    def container_view(self, image: str) -> tuple[str, str, Path, str]:
        """Start a container from ``image``: its environment, what ``/run/secrets`` holds, its root
        filesystem (mounted) and the container id (pass it to :meth:`remove`)."""
        ctr = self.run("from", "--pull=never", image).stdout.strip()
        probe = self.run("run", "--isolation", "chroot", ctr, "--", "/bin/sh", "-c",
                         "env; echo '--- /run/secrets'; ls -A /run/secrets 2>/dev/null || true").stdout
        env, _, listing = probe.partition("--- /run/secrets\n")
        return env, listing.strip(), Path(self.run("mount", ctr).stdout.strip()), ctr

    def start(self, ctr: str, env: dict[str, str], argv: list[str]) -> subprocess.Popen[str]:
        """Run ``argv`` in a container (host network: it listens where the test can reach it)."""
        flags = [f"--env={k}={v}" for k, v in env.items()]
        # Its own process group: buildah does not pass SIGTERM on to the chroot'ed process, stop() signals both.
        return subprocess.Popen(["buildah", *self.global_args, "run", "--isolation", "chroot", *flags, ctr, "--",
                                 *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    @staticmethod
    def stop(process: subprocess.Popen[str]) -> None:
        """End a :meth:`start` process and everything it started."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(10)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def remove(self, ctr: str) -> None:
        self.run("umount", ctr, check=False)
        self.run("rm", ctr, check=False)

    def cleanup(self) -> None:
        # No `rmi --all`: the caller deletes the whole private storage root, which is as thorough
        # and much faster with vfs.
        self.run("rm", "--all", check=False)


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts (it may hold an egress proxy's CA), if any."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                      "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
