#!/usr/bin/env python3
"""Cold start: from "pod starts" to "first token", per phase, for the tiny model through hf-server on CPU.

    .venv/bin/python bench/cold_start.py [--hf-python /work/main/.venv-hf/bin/python] [--runs 3]

Everything on 127.0.0.1: the tiny random Llama of hf_server.tiny served by the Hub stand-in
(tests/model_cache/hubstub.py), moto's S3 server, and hf-server started as the pod would start it
(QUANTIZATION=none on CPU, MODEL_PATH = the restore destination). The bucket is filled once first
(cold ensure, reported but not part of a pod start), then each run times, in order:

  ensure         model-cache ensure against the warm bucket (Hub API call + manifest check)
  restore        model-cache restore --dest (sha256-verified) into the node's directory
  load           hf-server process start -> /health answers 200 (model loaded)
  first token    one /v1/completions request (max_tokens=1) -> response

for two node states: "node cold" (empty destination, an emptyDir) and "node warm" (destination
already restored by an earlier pod, `cache: hostPath`: restore only checks the marker). Prints the
median of --runs per phase. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.model_cache.hubstub import HubStub, StubFile, StubRepo
from tests.model_cache.s3server import S3Server

REPO = "bench/tiny-llama"
KEY, SECRET = "AKIAFAKECOLDSTART123", "fake-cold-start-secret"  # pragma: allowlist secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[-3:])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def serve_until_first_token(hf_python: str, model: Path) -> tuple[float, float]:
    """Start hf-server on the restored directory: (seconds until /health is 200, seconds for one token)."""
    import json
    import urllib.error
    import urllib.request

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")}
    env.update(MODEL_PATH=str(model), MODEL_NAME="tiny", QUANTIZATION="none", HOST="127.0.0.1", PORT=str(port),
               LOG_LEVEL="warning", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=str(ROOT / "images" / "hf-server"))
    t0 = time.perf_counter()
    proc = subprocess.Popen([hf_python, "-m", "hf_server"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"hf-server exited {proc.returncode}:\n{proc.stderr.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.perf_counter() - t0 > 300:
                raise SystemExit("hf-server did not become ready in 300 s")
            time.sleep(0.05)
        load = time.perf_counter() - t0
        t1 = time.perf_counter()
        body = json.dumps({"model": "tiny", "prompt": "hello world", "max_tokens": 1, "temperature": 0}).encode()
        request = urllib.request.Request(f"{url}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as resp:
            json.loads(resp.read())
        return load, time.perf_counter() - t1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hf-python", default="/work/main/.venv-hf/bin/python",
                   help="python of hf-server's venv (torch, transformers, fastapi)")
    p.add_argument("--runs", type=int, default=3, help="pod starts per node state (median reported)")
    args = p.parse_args()
    if not Path(args.hf_python).exists():
        raise SystemExit(f"--hf-python {args.hf_python} does not exist: create hf-server's venv first")

    work = Path(tempfile.mkdtemp(prefix="mc-cold-start-"))
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "1")
    s3 = S3Server().start()
    hub = HubStub().start()
    try:
        model = work / "model"
        make = "import sys; from hf_server.tiny import make_tiny_model; make_tiny_model(sys.argv[1])"
        subprocess.run([args.hf_python, "-c", make, str(model)], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "images" / "hf-server")))
        files = [StubFile(str(f.relative_to(model)), disk=f) for f in sorted(model.rglob("*")) if f.is_file()]
        hub.add_repo(StubRepo(REPO, files))
        size = sum(f.size for f in files)

        import boto3

        boto3.client("s3", endpoint_url=s3.url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                     region_name="us-east-1").create_bucket(Bucket="cold-start")
        mc = [str(Path(sys.executable).parent / "model-cache")]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")}
        env.update(MODEL_NAME=REPO, S3_BUCKET="cold-start", S3_ENDPOINT_URL=s3.url, AWS_ACCESS_KEY_ID=KEY,
                   AWS_SECRET_ACCESS_KEY=SECRET, HF_ENDPOINT=hub.url, DOWNLOAD_DIR=str(work / "scratch"),
                   DISABLE_PROGRESS="1", AWS_EC2_METADATA_DISABLED="true")
        first = timed(mc + ["ensure"], env)
        print(f"# tiny model: {len(files)} files, {size / 1024 / 1024:.1f} MiB; cold-bucket ensure (once, not part "
              f"of a pod start): {first:.2f} s")

        rows: dict[str, dict[str, list[float]]] = {"node cold": {}, "node warm": {}}
        warm_dest = work / "hostpath"
        timed(mc + ["restore", "--dest", str(warm_dest)], env)  # an earlier pod on this node
        for i in range(args.runs):
            for state, phases in rows.items():
                dest = warm_dest if state == "node warm" else work / f"emptydir-{i}"
                phases.setdefault("ensure", []).append(timed(mc + ["ensure"], env))
                phases.setdefault("restore", []).append(timed(mc + ["restore", "--dest", str(dest)], env))
                load, token = serve_until_first_token(args.hf_python, dest)
                phases.setdefault("load", []).append(load)
                phases.setdefault("first token", []).append(token)
                if state == "node cold":
                    shutil.rmtree(dest, ignore_errors=True)

        print(f"\n{f'phase (median of {args.runs}, s)':<26}{'node cold':>12}{'node warm':>12}")
        totals = {state: 0.0 for state in rows}
        for phase in ("ensure", "restore", "load", "first token"):
            cells = []
            for state in rows:
                m = statistics.median(rows[state][phase])
                totals[state] += m
                cells.append(f"{m:12.2f}")
            print(f"{phase:<26}{''.join(cells)}")
        print(f"{'pod start -> first token':<26}{totals['node cold']:12.2f}{totals['node warm']:12.2f}")
        print(f"# {os.cpu_count()} CPUs; S3: moto on loopback; Hub: tests/model_cache/hubstub.py; "
              "hf-server on CPU (QUANTIZATION=none)")
    finally:
        hub.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
