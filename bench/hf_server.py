"""hf-server benchmark: tokens/s and time-to-first-token through the real HTTP server.

    .venv-hf/bin/python bench/hf_server.py                 # CPU: tiny random model made on the spot
    .venv-hf/bin/python bench/hf_server.py --model-path /models/m --tokens 128 --runs 5   # on a GPU

What it measures, per configuration (median of --runs requests after one warm-up):
  - tokens/s (non-streamed): completion tokens / request latency (prefill + decode + HTTP);
  - TTFT (streamed): request sent -> first text chunk received;
  - decode tokens/s (streamed): tokens after the first / time between first and last chunk.
Every request forces exactly --tokens new tokens (min_tokens = max_tokens) so runs are comparable.
On a GPU the same model is served as bf16 (QUANTIZATION=none) and as 4-bit nf4, and the 4-bit
figures are reported as ratios to bf16; without a GPU that part is skipped with the reason.
Not a timed test: numbers depend on the machine; use them to compare runs on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "images" / "hf-server"))
sys.path.insert(0, str(REPO / "tests" / "hf_server"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROMPT = "the quick brown fox jumps over the lazy dog. " * 4


def measure(url: str, tokens: int, runs: int) -> dict:
    import httpx

    body = {"prompt": PROMPT, "max_tokens": tokens, "min_tokens": tokens, "temperature": 0}
    with httpx.Client(base_url=url, timeout=600) as c:
        c.post(
            "/v1/completions", json={**body, "max_tokens": 4, "min_tokens": 4}
        ).raise_for_status()  # warm-up
        tps, ttft, decode = [], [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            r = c.post("/v1/completions", json=body)
            elapsed = time.perf_counter() - t0
            r.raise_for_status()
            n = r.json()["usage"]["completion_tokens"]
            tps.append(n / elapsed)

            t0 = time.perf_counter()
            first = last = None
            usage = None
            with c.stream(
                "POST",
                "/v1/completions",
                json={**body, "stream": True, "stream_options": {"include_usage": True}},
            ) as s:
                for line in s.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    event = json.loads(line[6:])
                    if event.get("usage"):
                        usage = event["usage"]
                    elif event["choices"] and event["choices"][0]["text"]:
                        now = time.perf_counter()
                        first = first or now
                        last = now
            ttft.append(first - t0)
            if usage and last > first:
                decode.append((usage["completion_tokens"] - 1) / (last - first))
    return {
        "tokens": tokens,
        "runs": runs,
        "tokens_per_s": round(statistics.median(tps), 1),
        "ttft_ms": round(statistics.median(ttft) * 1000, 1),
        "decode_tokens_per_s": round(statistics.median(decode), 1) if decode else None,
    }


def serve_and_measure(model_path: Path, quantization: str, tokens: int, runs: int) -> dict:
    from helpers import ThreadServer
    from hf_server import Settings, create_app

    settings = Settings(
        model_path=str(model_path),
        served_model_name=f"bench-{quantization}",
        quantization=quantization,
        max_tokens_limit=max(tokens, 16),
        max_concurrency=1,
        max_queue=0,
    )
    app = create_app(settings)
    with ThreadServer(app) as srv:
        engine = app.state.engine
        if not engine.wait(1800) or not engine.ready:
            raise SystemExit(f"model did not load ({quantization}): {engine.error}")
        result = measure(srv.url, tokens, runs)
        health = engine.health()
    result.update(
        quantization=quantization,
        device=health["device"],
        attention=health["attention"],
        attention_reason=health["attention_reason"],
        vram_used_gb=health["vram_used_gb"],
        load_s=health.get("load_seconds"),
    )
    engine.model = None
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-path", type=Path, help="a local model folder (default: a random model made on the spot)"
    )
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per request (default 64)")
    parser.add_argument("--runs", type=int, default=5, help="measured requests per figure (default 5)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {"torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
        model = args.model_path
        if model is None:
            from hf_server.tiny import make_tiny_model

            if torch.cuda.is_available():  # big enough for 4-bit vs bf16 to mean something (~50M params)
                model = make_tiny_model(
                    Path(tmp) / "small",
                    hidden_size=1024,
                    layers=4,
                    heads=8,
                    kv_heads=8,
                    intermediate_size=2816,
                    context=2048,
                )
                results["model"] = "small random Llama (hidden 1024, 4 layers, ~50M parameters)"
            else:
                model = make_tiny_model(Path(tmp) / "tiny")
                results["model"] = "tiny random Llama (hidden 64, 2 layers, vocab 512)"
        else:
            results["model"] = str(model)

        if not torch.cuda.is_available():
            results["cpu"] = serve_and_measure(model, "none", args.tokens, args.runs)
            results["gpu"] = "skipped: no CUDA GPU (torch.cuda.is_available() is False)"
        else:
            bf16 = serve_and_measure(model, "none", args.tokens, args.runs)
            q4 = serve_and_measure(model, "4bit", args.tokens, args.runs)
            ratio = lambda k: round(q4[k] / bf16[k], 3) if q4.get(k) and bf16.get(k) else None
            results["gpu"] = {
                "bf16": bf16,
                "4bit": q4,
                "4bit_over_bf16": {
                    k: ratio(k) for k in ("tokens_per_s", "ttft_ms", "decode_tokens_per_s", "vram_used_gb")
                },
            }

    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
