"""Table-driven: bad settings and S3/Hub/file-system faults, each refused by the real CLI in one line.

Every row runs `python -m model_cache <command>` against the real S3 server and the Hub stand-in and
asserts: exit code 1; the message names the setting (or the object) to fix; every stderr line is one
log record (no traceback); nothing was written (bucket, DOWNLOAD_DIR, --dest unchanged, or for faults
in the middle of a download: nothing marked complete and no upload left open); and no secret, raw or
base64, appears in stdout or stderr.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import ACCESS_KEY, HF_TOKEN, SECRET_KEY, run_cli, small_repo

URL_PASSWORD = "EndpointPassw0rdNeverShown"  # pragma: allowlist secret
SECRETS = (ACCESS_KEY, SECRET_KEY, HF_TOKEN, URL_PASSWORD)
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR)\s")
UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once


@dataclass(frozen=True)
class Case:
    id: str
    command: str                       # ensure | restore | status
    env: dict = field(default_factory=dict)   # overrides; None removes the variable
    names: tuple[str, ...] = ()        # what the message must name
    args: tuple[str, ...] = ()
    setup: str | None = None           # name of a SETUPS entry, run before the command
    midway: bool = False               # fault after work started: "nothing marked complete, nothing left
                                       # open" instead of "nothing written" (verified pieces may stay)


# --- rows --------------------------------------------------------------------------------------
NUMERIC = ["HF_MAX_WORKERS", "MODEL_CACHE_S3_CONCURRENCY", "MODEL_CACHE_CHUNK_MB", "MODEL_CACHE_MEMORY_MB",
           "MODEL_CACHE_MAX_DISK_MB", "S3_MAX_ATTEMPTS", "S3_CONNECT_TIMEOUT", "S3_READ_TIMEOUT",
           "MODEL_CACHE_FILE_RETRIES", "MODEL_CACHE_LEASE_TTL", "MODEL_CACHE_LEASE_SETTLE",
           "MODEL_CACHE_CLOCK_SKEW", "MODEL_CACHE_POLL_INTERVAL", "MODEL_CACHE_WAIT_TIMEOUT"]
CASES: list[Case] = []
for var in NUMERIC:
    for value in ("nan", "inf", "-1", "1e999"):
        CASES.append(Case(f"{var}={value}", "ensure", {var: value}, (var,)))
for var in ("MODEL_CACHE_CHUNK_MB", "MODEL_CACHE_LEASE_TTL", "S3_READ_TIMEOUT"):
    CASES.append(Case(f"{var}=abc", "restore", {var: "abc"}, (var,)))
CASES += [
    Case("HF_MAX_WORKERS=2.5", "ensure", {"HF_MAX_WORKERS": "2.5"}, ("HF_MAX_WORKERS",)),
    Case("MODEL_CACHE_CHUNK_MB=4 (below S3's 5 MiB part)", "ensure", {"MODEL_CACHE_CHUNK_MB": "4"},
         ("MODEL_CACHE_CHUNK_MB",)),
    Case("MODEL_CACHE_CHUNK_MB=99999 (above S3's 5 GiB part)", "ensure", {"MODEL_CACHE_CHUNK_MB": "99999"},
         ("MODEL_CACHE_CHUNK_MB",)),
    Case("HF_HUB_DOWNLOAD_TIMEOUT=nan", "ensure", {"HF_HUB_DOWNLOAD_TIMEOUT": "nan"}, ("HF_HUB_DOWNLOAD_TIMEOUT",)),
    Case("HF_HUB_ETAG_TIMEOUT=-5", "status", {"HF_HUB_ETAG_TIMEOUT": "-5"}, ("HF_HUB_ETAG_TIMEOUT",)),
    Case("MODEL_CACHE_RANGED=maybe", "ensure", {"MODEL_CACHE_RANGED": "maybe"}, ("MODEL_CACHE_RANGED",)),
    Case("S3_PAYLOAD_SIGNING=2", "restore", {"S3_PAYLOAD_SIGNING": "2"}, ("S3_PAYLOAD_SIGNING",)),
    Case("DISABLE_PROGRESS=sure", "ensure", {"DISABLE_PROGRESS": "sure"}, ("DISABLE_PROGRESS",)),
    Case("S3_ADDRESSING_STYLE=diagonal", "status", {"S3_ADDRESSING_STYLE": "diagonal"}, ("S3_ADDRESSING_STYLE",)),
    Case("S3_RETRY_MODE=fast", "ensure", {"S3_RETRY_MODE": "fast"}, ("S3_RETRY_MODE",)),
    Case("MODEL_CACHE_VERIFY=md5", "restore", {"MODEL_CACHE_VERIFY": "md5"}, ("MODEL_CACHE_VERIFY",)),
]
for repo_id in ("../../etc/passwd", "/abs/model", "owner/name/extra", "owner/-bad", "own..er/x", "a b",
                "owner/" + "n" * 100):
    CASES.append(Case(f"MODEL_NAME={repo_id[:20]!r}", "ensure", {"MODEL_NAME": repo_id}, ("MODEL_NAME",)))
CASES.append(Case("--model with traversal", "restore", {}, ("--model",), args=("--model", "x/../y")))
for rev in ("../x", "a b", "/main", "main/"):
    CASES.append(Case(f"MODEL_REVISION={rev!r}", "ensure", {"MODEL_REVISION": rev}, ("MODEL_REVISION",)))
for prefix in ("/abs", "a/../b", "sp ace"):
    CASES.append(Case(f"S3_PREFIX={prefix!r}", "restore", {"S3_PREFIX": prefix}, ("S3_PREFIX",)))
for url in ("ftp://store.example", "http://", "http://127.0.0.1:99999", "http://host:port", "http://a b",
            "http://host/?q=1", f"https://mc:{URL_PASSWORD}@127.0.0.1:9"):
    CASES.append(Case(f"S3_ENDPOINT_URL={url[:22]!r}", "ensure", {"S3_ENDPOINT_URL": url}, ("S3_ENDPOINT_URL",)))
CASES.append(Case("--endpoint-url ftp", "status", {}, ("--endpoint-url",), args=("--endpoint-url", "ftp://x")))
for url in ("ftp://hub.example", "http://", "https://hub:99999"):
    CASES.append(Case(f"HF_ENDPOINT={url!r}", "ensure", {"HF_ENDPOINT": url}, ("HF_ENDPOINT",)))
CASES.append(Case("HF_ENDPOINT with a password, unreachable", "ensure",
                  {"HF_ENDPOINT": f"http://mc:{URL_PASSWORD}@127.0.0.1:1"}, ("HF_ENDPOINT",)))
for command in ("ensure", "restore", "status"):
    for var in ("MODEL_NAME", "S3_BUCKET", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        CASES.append(Case(f"{command} without {var}", command, {var: None}, (var, "missing")))
    CASES += [
        Case(f"{command}: S3 endpoint unreachable", command, {"S3_ENDPOINT_URL": UNREACHABLE, "S3_MAX_ATTEMPTS": "1"},
             ("S3_ENDPOINT_URL", "unreachable")),
        Case(f"{command}: no such bucket", command, {"S3_BUCKET": "no-such-bucket-here"},
             ("S3_BUCKET", "no such bucket")),
        Case(f"{command}: 403 on the bucket", command, {}, ("AWS_ACCESS_KEY_ID", "refused"),
             setup="deny_head_bucket"),
    ]
CASES += [
    Case("restore: 403 reading the ref", "restore", {}, ("AWS_ACCESS_KEY_ID", "refused"), setup="deny_get_ref"),
    Case("status: 403 reading the ref", "status", {}, ("AWS_ACCESS_KEY_ID", "refused"), setup="deny_get_ref"),
    Case("ensure: 403 reading the manifest", "ensure", {}, ("AWS_ACCESS_KEY_ID", "refused"),
         setup="deny_get_manifest"),
    Case("ensure: 403 writing the lease", "ensure", {}, ("AWS_ACCESS_KEY_ID", "refused"), setup="deny_put_lease"),
    Case("ensure: 403 uploading a shard", "ensure", {}, ("AWS_ACCESS_KEY_ID", "refused"),
         setup="deny_put_shard", midway=True),
    Case("restore: 403 reading a shard", "restore", {}, ("AWS_ACCESS_KEY_ID", "refused"),
         setup="cached_then_deny_get_shard", midway=True),
    Case("ensure: DOWNLOAD_DIR is a file", "ensure", {"DOWNLOAD_DIR": "@file"}, ("DOWNLOAD_DIR", "not a directory")),
    Case("ensure: DOWNLOAD_DIR inside a file", "ensure", {"DOWNLOAD_DIR": "@file/sub"}, ("DOWNLOAD_DIR",)),
    Case("ensure: DOWNLOAD_DIR not writable", "ensure", {"DOWNLOAD_DIR": "/sys/kernel/model-cache"},
         ("DOWNLOAD_DIR", "not writable")),
    Case("restore: --dest is a file", "restore", {}, ("--dest", "not a directory"), args=("--dest", "@file")),
    Case("restore: --dest inside a file", "restore", {}, ("--dest",), args=("--dest", "@file/sub")),
    Case("restore: --dest not writable", "restore", {}, ("--dest", "not writable"),
         args=("--dest", "/sys/kernel/model-cache")),
    Case("restore: not cached", "restore", {}, ("not cached", "model-cache ensure")),
    Case("restore: manifest is not JSON", "restore", {}, ("manifest.json", "delete it"), setup="garbage_manifest"),
    Case("status: manifest is not JSON", "status", {}, ("manifest.json", "delete it"), setup="garbage_manifest"),
    Case("ensure: manifest is not JSON", "ensure", {}, ("manifest.json", "delete it"), setup="garbage_manifest"),
    Case("restore: ref is not JSON", "restore", {}, ("refs/main", "delete it"), setup="garbage_ref"),
    Case("restore: manifest of another repo", "restore", {}, ("manifest.json", "does not describe"),
         setup="foreign_manifest"),
    Case("restore: traversal path in the manifest", "restore", {}, ("../../escape", "the manifest"),
         setup="traversal_manifest"),
]


# --- set-ups (state a row needs before the command) -----------------------------------------------
def _cache(ctx) -> None:
    ctx.hub.add_repo(small_repo())
    assert run_cli(["ensure"], ctx.env).returncode == 0


def _manifest_key(ctx) -> str:
    repo = ctx.hub.repos["acme/tiny-model"]
    return f"models/acme/tiny-model/{repo.sha}/manifest.json"


def _rewrite_manifest(ctx, change: Callable[[dict], None]) -> None:
    _cache(ctx)
    doc = json.loads(ctx.s3.get_object(Bucket=ctx.bucket, Key=_manifest_key(ctx))["Body"].read())
    change(doc)
    ctx.s3.put_object(Bucket=ctx.bucket, Key=_manifest_key(ctx), Body=json.dumps(doc))


SETUPS: dict[str, Callable] = {
    "deny_head_bucket": lambda ctx: ctx.faults.add("HEAD", f"/{ctx.bucket}", times=50, status=403, code="AccessDenied"),
    "deny_get_ref": lambda ctx: ctx.faults.add("GET", "/refs/", times=50, status=403, code="AccessDenied"),
    "deny_get_manifest": lambda ctx: (ctx.hub.add_repo(small_repo()),
                                      ctx.faults.add("GET", "manifest.json", times=50, status=403, code="AccessDenied")),
    "deny_put_lease": lambda ctx: (ctx.hub.add_repo(small_repo()),
                                   ctx.faults.add("PUT", "/leases/", times=50, status=403, code="AccessDenied")),
    "deny_put_shard": lambda ctx: (ctx.hub.add_repo(small_repo()),
                                   ctx.faults.add("PUT", "model-00001", times=500, status=403, code="AccessDenied")),
    "cached_then_deny_get_shard": lambda ctx: (_cache(ctx), ctx.faults.add("GET", "model-00001", times=500,
                                                                           status=403, code="AccessDenied")),
    "garbage_manifest": lambda ctx: (_cache(ctx), ctx.s3.put_object(Bucket=ctx.bucket, Key=_manifest_key(ctx),
                                                                    Body=b"{not json")),
    "garbage_ref": lambda ctx: (_cache(ctx), ctx.s3.put_object(Bucket=ctx.bucket, Key="models/acme/tiny-model/refs/main",
                                                               Body=b"\x00\x01")),
    "foreign_manifest": lambda ctx: _rewrite_manifest(ctx, lambda d: d.update(repo="other/model")),
    "traversal_manifest": lambda ctx: _rewrite_manifest(ctx, lambda d: d["files"].append(
        {"path": "../../escape", "size": 1, "sha256": "0" * 64})),
}


@dataclass
class Ctx:
    hub: object
    env: dict
    s3: object
    bucket: str
    faults: object


def _objects(s3, bucket) -> dict[str, str]:
    return {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def _files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()


def _secret_forms() -> list[str]:
    forms = []
    for secret in SECRETS:
        forms += [secret, base64.b64encode(secret.encode()).decode()]
    forms.append(base64.b64encode(f"mc:{URL_PASSWORD}".encode()).decode())
    return forms


def test_the_table_is_large_enough():
    assert len(CASES) >= 80, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES), "row ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_in_one_line(case: Case, hub, env, s3, bucket, s3_server, tmp_path):
    ctx = Ctx(hub, env, s3, bucket, s3_server.faults)
    hub.add_repo(small_repo()) if case.setup is None and case.command == "ensure" else None
    if case.setup:
        SETUPS[case.setup](ctx)
    a_file = tmp_path / "a-file"
    a_file.write_text("in the way")
    e = dict(env)
    for k, v in case.env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v.replace("@file", str(a_file))
    args = [a.replace("@file", str(a_file)) for a in case.args]
    if case.command == "restore" and "--dest" not in args:
        args += ["--dest", str(tmp_path / "dest")]
    scratch = Path(e.get("DOWNLOAD_DIR", env["DOWNLOAD_DIR"]))
    dest = Path(args[args.index("--dest") + 1]) if "--dest" in args else tmp_path / "dest"
    before = _objects(s3, bucket), _files(scratch), _files(dest)
    hub_gets = sum(hub.file_gets().values())

    proc = run_cli([case.command, *args], e, timeout=90, check_secrets=False)
    s3_server.faults.faults.clear()
    out = proc.stdout + proc.stderr

    assert proc.returncode == 1, out
    for name in case.names:
        assert name in proc.stderr, f"message does not name {name!r}:\n{proc.stderr}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and all(LOG_LINE.match(ln) for ln in lines), f"not one log record per line:\n{proc.stderr}"
    assert sum(" ERROR " in ln for ln in lines) == 1 and "Traceback" not in out, proc.stderr
    for form in _secret_forms():
        assert form not in out, f"a secret leaked:\n{out}"
    after = _objects(s3, bucket)
    if case.midway:  # the download had started: nothing may be complete, nothing left open
        new = set(after) - set(before[0])
        assert not any(k.endswith("manifest.json") or "/refs/" in k or "/leases/" in k for k in new), new
        assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    else:
        assert after == before[0], "the bucket changed"
        assert sum(hub.file_gets().values()) == hub_gets, "a file was downloaded"
    assert _files(scratch) - before[1] == set() or case.midway, "DOWNLOAD_DIR kept files"
    if case.midway:  # verified files may stay (the next restore skips them); no marker, no partial file
        assert not any(p.endswith((".model-cache-complete.json", "-partial")) for p in _files(dest))
    else:
        assert _files(dest) == before[2], "--dest changed"
    assert proc.stdout == "" or case.command != "status"


def test_an_unreadable_lease_is_taken_over(hub, env, s3, bucket):
    """A lease object that is not JSON (a crashed writer, another tool) is abandoned, not a permanent block."""
    repo = hub.add_repo(small_repo())
    s3.put_object(Bucket=bucket, Key=f"models/{repo.repo_id}/leases/{repo.sha}.json", Body=b"\x00garbage")
    proc = run_cli(["ensure"], env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "taking it over" in proc.stderr
    status = json.loads(run_cli(["status"], env).stdout)
    assert status["cached"] is True and status["lease"] is None


def test_a_root_level_repo_id_is_cached_and_restored(hub, env, tmp_path):
    repo = hub.add_repo(small_repo("gpt2"))
    e = dict(env, MODEL_NAME="gpt2")
    assert run_cli(["ensure"], e).returncode == 0
    dest = tmp_path / "dest"
    proc = run_cli(["restore", "--dest", str(dest)], e)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "config.json").read_bytes() == repo.files[0].data
