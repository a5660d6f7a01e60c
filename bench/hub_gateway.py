#!/usr/bin/env python3
"""Benchmark: snapshot_download through hub-gateway vs model-cache restore of the same snapshot.

    .venv/bin/python bench/hub_gateway.py [--size-gib 1] [--files 4] [--s3 moto|s3rver] [--repeat N]

Same loopback setup as bench/model_cache.py (whose Bench class sets up the S3 server process,
the Hub stand-in and the synthetic model): ``model-cache ensure`` fills a bucket once, then,
side by side in one run:

  restore (sha256)    model-cache restore --dest DIR  (S3 -> disk, ranged GETs, sha256-verified)
  restore (etag)      the same with --verify etag
  gateway             huggingface_hub.snapshot_download(repo, local_dir=DIR) with HF_ENDPOINT=hub-gateway
                      (a uvicorn process on 127.0.0.1 reading the bucket), no token, Hub stand-in stopped

and prints the gateway's throughput as a fraction of restore's (target >= 0.7x). Each row is a
fresh process into an empty directory; ``--repeat`` keeps the best run. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# bench/model_cache.py's module name would shadow the model_cache package: load it by path.
_spec = importlib.util.spec_from_file_location("bench_model_cache", ROOT / "bench" / "model_cache.py")
bench_mc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_mc)

DOWNLOAD = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[1], local_dir=sys.argv[2])")


def start_gateway(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    fh = open(log, "wb")  # noqa: SIM115 (the gateway writes to it for its whole life)
    proc = subprocess.Popen([sys.executable, "-m", "hub_gateway"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    fh.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the gateway did not start:\n{log.read_text()[-3000:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-gib", type=float, default=1.0, help="total model size (default 1 GiB)")
    p.add_argument("--files", type=int, default=4, help="number of weight shards (default 4)")
    p.add_argument("--workdir", default=None, help="where to put the model and scratch (default: $TMPDIR)")
    p.add_argument("--s3", choices=["moto", "s3rver"], default="moto", help="local S3 server (see bench/README.md)")
    p.add_argument("--repeat", type=int, default=1, help="run every row N times, keep the best (default 1)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    # The options bench/model_cache.py's Bench reads and this benchmark does not vary.
    args.wan_mibps, args.baseline, args.skip_naive, args.skip_rclone = 0.0, None, True, True
    bench = bench_mc.Bench(args)
    gateway = None
    try:
        bench.start()
        mc = [str(Path(sys.executable).parent / "model-cache")]
        bucket = bench.bucket("gateway")
        bench.timed("ensure (hub->s3)", mc + ["ensure"], bench.env(bucket), reset=lambda: bench.drop(bucket))
        bench.hub.stop()  # from here on nothing can come from the Hub (its URL stays in the env, unused)

        dest = bench.work / "dest"

        def clean() -> None:
            shutil.rmtree(dest, ignore_errors=True)

        restore = bench.timed("restore (sha256)", mc + ["restore", "--dest", str(dest)], bench.env(bucket),
                              reset=clean)
        clean()
        restore_etag = bench.timed("restore (etag)", mc + ["restore", "--dest", str(dest), "--verify", "etag"],
                                   bench.env(bucket), reset=clean)
        clean()

        genv = {k: v for k, v in bench.env(bucket).items() if not k.startswith(("MODEL_", "HF_"))}
        genv.update(HOST="127.0.0.1", PORT="0", HF_ENDPOINT="http://127.0.0.1:9", GATEWAY_CALLERS="{}")
        # Tuning knobs (GATEWAY_CHUNK_KB, ...) pass through from the caller's environment.
        genv.update({k: v for k, v in os.environ.items() if k.startswith("GATEWAY_")})
        gateway, url = start_gateway(genv, bench.work / "gateway.log")
        denv = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG")}
        denv.update(HF_ENDPOINT=url, HF_HOME=str(bench.work / "hf-home"), HF_HUB_DISABLE_PROGRESS_BARS="1",
                    HF_HUB_DISABLE_TELEMETRY="1", HOME=str(bench.work))

        def clean_all() -> None:
            clean()
            shutil.rmtree(bench.work / "hf-home", ignore_errors=True)

        through = bench.timed("gateway (snapshot_download)", [sys.executable, "-c", DOWNLOAD, bench_mc.REPO,
                                                              str(dest)], denv, reset=clean_all)
        got = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file() and ".cache" not in f.parts)
        assert got == bench.total, f"the gateway delivered {got} bytes, the model has {bench.total}"
        print(f"\n# {bench.total / bench_mc.GiB:.2f} GiB in {args.files + 1} files, S3: {bench.server_name()}, "
              f"best of {args.repeat}")
        print(f"gateway / restore (sha256) throughput: {restore / through:.2f}x   (target >= 0.7x)")
        print(f"gateway / restore (etag)   throughput: {restore_etag / through:.2f}x")
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=10)
        bench.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
