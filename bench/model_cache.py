#!/usr/bin/env python3
"""Benchmark: model-cache ensure/restore vs a naive pipeline and rclone, against local servers.

    .venv/bin/python bench/model_cache.py [--size-gib 1] [--files 4]

Everything runs on 127.0.0.1: a synthetic model (a few safetensors-like files plus a config)
behind the Hub stand-in of tests/model_cache/hubstub.py, and moto's S3 server in its own
process. One run measures, on fresh buckets each time:

  S3 ceiling   raw parallel put_object / get_object of in-memory bodies (the server's limit here)
  ensure       model-cache ensure (Hub -> S3, pipelined, multipart)          vs
  naive        what jmesout/hf-model-downloader does: snapshot_download everything, then
               put_object per file with boto3 defaults on 10 threads
  rclone up    rclone copy disk -> S3 (upload only; a reference, it does not talk to the Hub)
  restore      model-cache restore (S3 -> disk, sha256-verified; and the size+ETag mode)   vs
  rclone down  rclone copy S3 -> disk

and prints throughput, ratios (targets: ensure >= 2x naive, restore >= 1.3x rclone) and each
result as a fraction of the S3 ceiling. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.model_cache.hubstub import HubStub, StubFile, StubRepo

MiB = 1024 * 1024
GiB = 1024 * MiB
KEY, SECRET = "S3RVER", "S3RVER"  # s3rver's fixed credentials; moto accepts anything
REPO = "bench/synthetic-model"

NAIVE = r'''
import os, sys, time, tempfile, boto3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from huggingface_hub import snapshot_download
from botocore.config import Config
bucket, prefix, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
local = snapshot_download(os.environ["MODEL_NAME"], local_dir=tempfile.mkdtemp(dir=workdir), max_workers=16)
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"], config=Config(s3={"addressing_style": "path"}))
files = [p for p in Path(local).rglob("*") if p.is_file() and ".cache" not in p.parts]
def put(p):
    with open(p, "rb") as fh:
        s3.put_object(Bucket=bucket, Key=prefix + str(p.relative_to(local)), Body=fh)
with ThreadPoolExecutor(10) as pool:
    list(pool.map(put, files))
'''


class ThrottlingProxy:
    """TCP proxy on 127.0.0.1 that caps every connection at `mibps` MiB/s in each direction.

    Models the per-connection limits of real endpoints (CDN, S3-compatible stores) that the
    loopback servers lack; see bench/README.md.
    """

    def __init__(self, target_port: int, mibps: float):
        self.target = ("127.0.0.1", target_port)
        self.rate = mibps * MiB
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        start = time.monotonic()
        sent = 0
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                dst.sendall(data)
                sent += len(data)
                ahead = sent / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self.running = False
        self.sock.close()


def run_measured(name: str, cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds user+system, peak RSS bytes) of one child process.

    CPU comes from wait4 (the child's own rusage). Peak RSS is the child's VmHWM, sampled from
    /proc while it runs: wait4's ru_maxrss cannot be used, Linux carries the forking parent's
    high-water mark (this benchmark's own, hundreds of MiB) into the child across fork and exec.
    """
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out)
        peak = 0
        status_file = Path(f"/proc/{proc.pid}/status")
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                for line in status_file.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise SystemExit(f"{name} failed ({proc.returncode}):\n{out.read()[-6000:].decode(errors='replace')}")
    return elapsed, usage.ru_utime + usage.ru_stime, peak


def process_cpu(pid: int) -> float:
    """CPU-seconds (user + system) a running process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fmt_rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MiB / seconds:8.1f} MiB/s"


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="mc-bench-", dir=args.workdir))
        self.results: dict[str, float] = {}
        self.cpu: dict[str, float] = {}   # CPU-seconds (user + system) of the client process per GiB
        self.rss: dict[str, int] = {}     # peak RSS of the client process, bytes
        self.server_cpu: dict[str, float] = {}  # CPU-seconds of the S3 server process per GiB, same run
        self.total = 0
        self.s3_url = ""
        self.moto = None
        self.hub = None
        self.old_src = ""

    # --- setup ---------------------------------------------------------------------------------
    def make_model(self) -> StubRepo:
        model = self.work / "model"
        model.mkdir()
        per = int(self.args.size_gib * GiB) // self.args.files
        block = os.urandom(4 * MiB)
        files = []
        for i in range(self.args.files):
            p = model / f"model-{i + 1:05d}-of-{self.args.files:05d}.safetensors"
            with open(p, "wb") as fh:
                left = per
                n = 0
                while left > 0:
                    chunk = block if left >= len(block) else block[:left]
                    fh.write(bytes([i, n % 256]) + chunk[2:])  # distinct content per file/block
                    left -= len(chunk)
                    n += 1
            files.append(StubFile(p.name, disk=p))
        cfg = model / "config.json"
        cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
        files.append(StubFile("config.json", data=cfg.read_bytes()))
        self.total = sum(f.size for f in files)
        return StubRepo(REPO, files)

    def start(self) -> None:
        port = free_port()
        if self.args.s3 == "s3rver":
            s3rver = ensure_s3rver()
            (self.work / "s3rver").mkdir()
            self.moto = subprocess.Popen([s3rver, "-a", "127.0.0.1", "-p", str(port), "-d",
                                          str(self.work / "s3rver"), "--silent"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                                          "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.s3_url = f"http://127.0.0.1:{port}"
        self.proxy = None
        if self.args.wan_mibps:
            self.proxy = ThrottlingProxy(port, self.args.wan_mibps)
            self.s3_url = f"http://127.0.0.1:{self.proxy.port}"
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.hub = HubStub().start()
        if self.args.wan_mibps:
            # The Hub stand-in caps each download connection itself (sleep per MiB sent).
            self.hub.delay_per_mib = 1.0 / self.args.wan_mibps
        print(f"# S3 server: {self.server_name()} at {self.s3_url}; per-connection limit (Hub and S3): "
              f"{self.args.wan_mibps or 'none'} MiB/s")
        print(f"# making a {self.args.size_gib:g} GiB synthetic model ({self.args.files} shards) in {self.work}")
        self.hub.add_repo(self.make_model())

    def stop(self) -> None:
        if self.hub:
            self.hub.stop()
        if getattr(self, "proxy", None):
            self.proxy.close()
        if self.moto:
            self.moto.terminate()
            self.moto.wait(timeout=10)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.s3_url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                            region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, max_pool_connections=64,
                                          request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def drop(self, bucket: str) -> None:
        c = self.client()
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                c.delete_object(Bucket=bucket, Key=o["Key"])

    def env(self, bucket: str, **extra) -> dict:
        # Tuning knobs (MODEL_CACHE_*, HF_MAX_WORKERS, S3_*) pass through from the caller's environment.
        e = {k: v for k, v in os.environ.items()
             if k in ("PATH", "LANG", "HOME", "HF_MAX_WORKERS") or k.startswith(("MODEL_CACHE_", "S3_PAYLOAD"))}
        e.update(MODEL_NAME=REPO, S3_BUCKET=bucket, S3_ENDPOINT_URL=self.s3_url, AWS_ACCESS_KEY_ID=KEY,
                 AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1", HF_ENDPOINT=self.hub.url,
                 HF_HOME=str(self.work / "hf-home"), DOWNLOAD_DIR=str(self.work / "scratch"),
                 DISABLE_PROGRESS="1", AWS_EC2_METADATA_DISABLED="true", HF_HUB_DISABLE_PROGRESS_BARS="1")
        e.update(extra)
        return e

    def timed(self, name: str, cmd: list[str], env: dict, reset=None) -> float:
        """Best of --repeat runs; `reset` restores the starting state (empty bucket/dir) between runs.

        Also reports the process's own CPU time (user + system, from wait4: the client only, not the
        servers) per GiB moved, and its peak RSS (ru_maxrss of that process)."""
        times, cpus, rss, server = [], [], [], []
        for i in range(self.args.repeat):
            if i and reset is not None:
                reset()
            before = process_cpu(self.moto.pid)
            elapsed, cpu, peak = run_measured(name, cmd, env)
            server.append(process_cpu(self.moto.pid) - before)
            times.append(elapsed)
            cpus.append(cpu)
            rss.append(peak)
        best = times.index(min(times))
        elapsed = times[best]
        self.results[name] = elapsed
        self.cpu[name] = cpus[best] / (self.total / GiB)
        self.server_cpu[name] = server[best] / (self.total / GiB)
        self.rss[name] = max(rss)
        runs = "" if len(times) == 1 else "  runs: " + " ".join(f"{t:.2f}" for t in times)
        print(f"{name:<22} {elapsed:7.2f} s  {fmt_rate(self.total, elapsed)}  {self.cpu[name]:6.2f} CPU-s/GiB  "
              f"{self.rss[name] / MiB:6.0f} MiB RSS  server {self.server_cpu[name]:5.2f} CPU-s/GiB{runs}", flush=True)
        return elapsed

    def replicas(self, mc: list[str], n: int) -> None:
        """n replicas start `ensure` together on a cold bucket: wall time vs one, Hub fetches per file.

        Then the same n on the now warm bucket: the floor of starting n processes at once on this
        machine (on a 2-CPU box, n Python start-ups alone take seconds), to tell it apart from the
        waiting itself."""
        b = self.bucket(f"replicas-{n}")
        before = self.hub.file_gets()
        cold = self.together(mc, n, self.env(b))
        gets = self.hub.file_gets() - before
        once = all(v == 1 for v in gets.values()) and len(gets) == self.args.files + 1
        warm = self.together(mc, n, self.env(b))
        self.results[f"ensure x{n} replicas"] = cold
        self.results[f"ensure x{n} warm bucket"] = warm
        print(f"{f'ensure x{n} replicas':<22} {cold:7.2f} s  {fmt_rate(self.total, cold)}  each Hub file fetched once: "
              f"{'yes' if once else 'NO ' + str(dict(gets))}", flush=True)
        print(f"{f'ensure x{n} warm bucket':<22} {warm:7.2f} s  (start-up floor: {n} processes at once, nothing to "
              "download)", flush=True)
        self.drop(b)

    @staticmethod
    def together(mc: list[str], n: int, env: dict) -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(mc + ["ensure"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for _ in range(n)]
        errs = [p.communicate()[1] for p in procs]
        elapsed = time.perf_counter() - t0
        for p, err in zip(procs, errs):
            if p.returncode != 0:
                raise SystemExit(f"replica failed ({p.returncode}):\n{err[-3000:]}")
        return elapsed

    # --- measurements --------------------------------------------------------------------------
    def ceiling(self) -> None:
        c = self.client()
        b = self.bucket("ceiling")
        part = 16 * MiB
        n = max(1, self.total // part)
        body = os.urandom(part)
        with ThreadPoolExecutor(16) as pool:
            t0 = time.perf_counter()
            list(pool.map(lambda i: c.put_object(Bucket=b, Key=f"o{i}", Body=body), range(n)))
            put = time.perf_counter() - t0
            t0 = time.perf_counter()
            list(pool.map(lambda i: c.get_object(Bucket=b, Key=f"o{i}")["Body"].read(), range(n)))
            get = time.perf_counter() - t0
        nbytes = n * part
        # The same bytes as multipart uploads of `files` objects (16 MiB parts, 16 at a time, then
        # CompleteMultipartUpload): what the server sustains for the way ensure writes big files.
        # Loopback servers (moto, s3rver) concatenate the parts on completion, real stores do not.
        per_object = max(1, n // self.args.files)
        uploads = [(f"m{k}", c.create_multipart_upload(Bucket=b, Key=f"m{k}")["UploadId"])
                   for k in range(-(-n // per_object))]
        etags: dict[tuple[int, int], str] = {}

        def upload(i: int) -> None:
            k, number = divmod(i, per_object)
            key, upload_id = uploads[k]
            etags[k, number] = c.upload_part(Bucket=b, Key=key, UploadId=upload_id, PartNumber=number + 1,
                                             Body=body)["ETag"]

        def complete(k: int) -> None:
            key, upload_id = uploads[k]
            parts = [{"PartNumber": number + 1, "ETag": etags[k, number]}
                     for number in range(per_object) if k * per_object + number < n]
            c.complete_multipart_upload(Bucket=b, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})

        with ThreadPoolExecutor(16) as pool:
            t0 = time.perf_counter()
            list(pool.map(upload, range(n)))
            list(pool.map(complete, range(len(uploads))))
            mpu = time.perf_counter() - t0
        self.results["ceiling PUT"] = put * self.total / nbytes
        self.results["ceiling GET"] = get * self.total / nbytes
        self.results["ceiling multipart"] = mpu * self.total / nbytes
        print(f"{'S3 ceiling PUT x16':<22} {put:7.2f} s  {fmt_rate(nbytes, put)}  ({n} x 16 MiB put_object)")
        print(f"{'S3 ceiling GET x16':<22} {get:7.2f} s  {fmt_rate(nbytes, get)}  ({n} x 16 MiB get_object)")
        print(f"{'S3 ceiling multipart':<22} {mpu:7.2f} s  {fmt_rate(nbytes, mpu)}  ({len(uploads)} objects of "
              f"{per_object} x 16 MiB parts, 16 at a time, completed)")
        self.drop(b)

    def run(self) -> None:
        mc = [str(Path(sys.executable).parent / "model-cache")]
        self.ceiling()
        if not self.args.skip_naive:
            b = self.bucket("naive")
            self.timed("naive (hub->s3)", [sys.executable, "-c", NAIVE, b, f"models/{REPO}/", str(self.work)],
                       self.env(b), reset=lambda: self.drop(b))
            self.drop(b)
            shutil.rmtree(self.work / "hf-home", ignore_errors=True)
        b = self.bucket("ours")
        before = self.hub.file_gets()
        self.timed("ensure (hub->s3)", mc + ["ensure"], self.env(b), reset=lambda: self.drop(b))
        gets = self.hub.file_gets() - before
        assert all(v == self.args.repeat for v in gets.values()), gets
        if self.args.replicas > 1:
            self.replicas(mc, self.args.replicas)
        old = self.baseline()
        if old:
            ob = self.bucket("baseline")
            self.timed("ensure (baseline)", old + ["ensure"], self.env(ob, PYTHONPATH=self.old_src),
                       reset=lambda: self.drop(ob))
            self.drop(ob)
        rclone = shutil.which("rclone") if not self.args.skip_rclone else None
        renv = self.env(b, RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
                        RCLONE_CONFIG_BENCH_ENDPOINT=self.s3_url, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=KEY,
                        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET, RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
                        RCLONE_CONFIG_BENCH_REGION="us-east-1", RCLONE_CONFIG=os.devnull)
        if rclone:
            rb = self.bucket("rclone")
            self.timed("rclone up (disk->s3)", [rclone, "copy", str(self.work / "model"), f"bench:{rb}/m"], renv,
                       reset=lambda: self.drop(rb))
            self.drop(rb)
        dest = self.work / "restore"
        def clean(path=dest):
            shutil.rmtree(path, ignore_errors=True)

        self.timed("restore (sha256)", mc + ["restore", "--dest", str(dest)], self.env(b), reset=clean)
        clean()
        if old:
            self.timed("restore (baseline)", old + ["restore", "--dest", str(dest)],
                       self.env(b, PYTHONPATH=self.old_src), reset=clean)
            clean()
        self.timed("restore (etag)", mc + ["restore", "--dest", str(dest), "--verify", "etag"], self.env(b),
                   reset=clean)
        clean()
        if rclone:
            sha = json.loads(subprocess.run(mc + ["status"], env=self.env(b), capture_output=True, text=True,
                                            check=True).stdout)["sha"]
            rdest = self.work / "rclone-dest"
            self.timed("rclone down (s3->disk)", [rclone, "copy", f"bench:{b}/models/{REPO}/{sha}", str(rdest)],
                       renv, reset=lambda: clean(rdest))
        self.report()

    def baseline(self) -> list[str] | None:
        """--baseline REV: model-cache as of that commit (git archive), run with python -m."""
        if not self.args.baseline:
            return None
        dest = self.work / "baseline"
        dest.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", self.args.baseline, "images/model-cache/src"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        self.old_src = str(dest / "images" / "model-cache" / "src")
        return [sys.executable, "-m", "model_cache"]

    def report(self) -> None:
        r = self.results
        print("\n# ratios (higher is better for us)")
        if "ensure (baseline)" in r:
            print(f"ensure vs baseline {self.args.baseline}: {r['ensure (baseline)'] / r['ensure (hub->s3)']:.2f}x")
        if "restore (baseline)" in r:
            print(f"restore(sha256) vs baseline {self.args.baseline}: "
                  f"{r['restore (baseline)'] / r['restore (sha256)']:.2f}x")
        if "naive (hub->s3)" in r and "ensure (baseline)" in r:
            print(f"baseline ensure vs naive:   {r['naive (hub->s3)'] / r['ensure (baseline)']:.2f}x")
        if "rclone down (s3->disk)" in r and "restore (baseline)" in r:
            print(f"baseline restore vs rclone: {r['rclone down (s3->disk)'] / r['restore (baseline)']:.2f}x")
        if "naive (hub->s3)" in r:
            print(f"ensure vs naive:            {r['naive (hub->s3)'] / r['ensure (hub->s3)']:.2f}x  (target >= 2x)")
        if "rclone down (s3->disk)" in r:
            print(f"restore(sha256) vs rclone:  {r['rclone down (s3->disk)'] / r['restore (sha256)']:.2f}x  "
                  "(target >= 1.3x)")
            print(f"restore(etag) vs rclone:    {r['rclone down (s3->disk)'] / r['restore (etag)']:.2f}x  "
                  "(target >= 1.5x)")
        if "rclone up (disk->s3)" in r:
            print(f"ensure(hub->s3) vs rclone up(disk->s3): {r['rclone up (disk->s3)'] / r['ensure (hub->s3)']:.2f}x")
        if "naive (hub->s3)" in r:
            print(f"CPU-s/GiB ensure / naive:   {self.cpu['ensure (hub->s3)'] / self.cpu['naive (hub->s3)']:.2f}  "
                  "(target <= 1)")
        if "rclone down (s3->disk)" in r:
            print(f"CPU-s/GiB restore(sha256) / rclone: "
                  f"{self.cpu['restore (sha256)'] / self.cpu['rclone down (s3->disk)']:.2f}  (target <= 1.5)")
        name = f"ensure x{self.args.replicas} replicas"
        if name in r:
            floor = r[f"ensure x{self.args.replicas} warm bucket"]
            print(f"{self.args.replicas} replicas / one replica (wall): {r[name] / r['ensure (hub->s3)']:.2f}  "
                  f"(target <= 1.3); without the start-up floor: {(r[name] - floor) / r['ensure (hub->s3)']:.2f}")
        print(f"peak RSS: ensure {self.rss['ensure (hub->s3)'] / MiB:.0f} MiB, restore "
              f"{self.rss['restore (sha256)'] / MiB:.0f} MiB (init container limit: 1 GiB)")
        print(f"ensure as fraction of S3 PUT ceiling:   {r['ceiling PUT'] / r['ensure (hub->s3)']:.2f}; "
              f"of the multipart ceiling: {r['ceiling multipart'] / r['ensure (hub->s3)']:.2f}")
        if "naive (hub->s3)" in r:
            print(f"S3 server CPU-s/GiB: ensure {self.server_cpu['ensure (hub->s3)']:.2f}, naive "
                  f"{self.server_cpu['naive (hub->s3)']:.2f}, restore {self.server_cpu['restore (sha256)']:.2f}"
                  + (f", rclone down {self.server_cpu['rclone down (s3->disk)']:.2f}"
                     if "rclone down (s3->disk)" in r else ""))
        print(f"restore as fraction of S3 GET ceiling:  {r['ceiling GET'] / r['restore (sha256)']:.2f} (sha256), "
              f"{r['ceiling GET'] / r['restore (etag)']:.2f} (etag)")
        print(f"# S3 server: {self.server_name()} (own process); Hub: tests/model_cache/hubstub.py, "
              f"per-connection limit {self.args.wan_mibps or 'none'} MiB/s; {os.cpu_count()} CPUs; "
              f"{self.total / MiB:.0f} MiB in {self.args.files + 1} files")

    def server_name(self) -> str:
        return f"s3rver {S3RVER_VERSION} (npm)" if self.args.s3 == "s3rver" else f"moto {_moto_version()} server"


S3RVER_VERSION = "3.7.1"
NODE_DIR = ROOT / ".cache" / "bench-node"


def ensure_s3rver() -> str:
    """npm's s3rver (file-backed S3 in Node, faster than moto here), installed under .cache/ on first use."""
    exe = NODE_DIR / "node_modules" / ".bin" / "s3rver"
    if not exe.exists():
        if not shutil.which("npm"):
            raise SystemExit("--s3 s3rver needs node/npm (or use --s3 moto)")
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR),
                        f"s3rver@{S3RVER_VERSION}"], check=True)
    return str(exe)


def _moto_version() -> str:
    try:
        from importlib.metadata import version

        return version("moto")
    except Exception:  # noqa: BLE001
        return "?"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-gib", type=float, default=1.0, help="total model size (default 1 GiB)")
    p.add_argument("--files", type=int, default=4, help="number of weight shards (default 4)")
    p.add_argument("--workdir", default=None, help="where to put the model and scratch (default: $TMPDIR)")
    p.add_argument("--s3", choices=["moto", "s3rver"], default="moto",
                   help="local S3 server: moto (default, always installed) or npm s3rver (file-backed, faster)")
    p.add_argument("--wan-mibps", type=float, default=0.0,
                   help="cap every Hub and S3 connection at this many MiB/s (default: no cap); see README")
    p.add_argument("--repeat", type=int, default=1, help="run every row N times, keep the best (default 1)")
    p.add_argument("--baseline", metavar="GIT_REV", default=None,
                   help="also time model-cache as of this commit (e.g. HEAD~2) in the same run")
    p.add_argument("--replicas", type=int, default=8,
                   help="also start N ensures together on a cold bucket (default 8; 0 or 1 = skip)")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--skip-rclone", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    bench = Bench(args)
    try:
        bench.start()
        bench.run()
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
