"""Helpers shared by the hf-server tests: a uvicorn server in a thread, SSE parsing, metrics reading."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Self

import httpx

SERVER_SRC = Path(__file__).resolve().parents[2] / "images" / "hf-server"
import uvicorn
from hf_server.engine import ModelEngine
from prometheus_client.parser import text_string_to_metric_families


class GatedEngine(ModelEngine):
    """Loads only when the test opens the gate, so the loading state can be observed for sure."""

    def __init__(self, settings, gate: threading.Event):
        super().__init__(settings)
        self.gate = gate

    def _load(self):
        assert self.gate.wait(60), "test never opened the gate"
        super()._load()


class ThreadServer:
    """Runs an ASGI app under a real uvicorn server on a free loopback port, in a thread."""

    def __init__(self, app):
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 60), **kw)


def wait_health(client: httpx.Client, want: int = 200, timeout: float = 60) -> list[int]:
    """Poll /health until it answers `want`; returns every status seen on the way."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = client.get("/health").status_code
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        seen.append(status)
        if status == want:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"/health never answered {want}; saw {seen[-5:]}")


def parse_sse(text: str) -> tuple[list[dict], bool]:
    """The JSON payloads of `data:` events, and whether the stream ended with `data: [DONE]`."""
    events, done = [], False
    for block in text.replace("\r\n", "\n").split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), f"not an SSE data event: {block[:80]!r}"
        assert not done, "event after [DONE]"
        payload = block[len("data: ") :]
        if payload == "[DONE]":
            done = True
        else:
            events.append(json.loads(payload))
    return events, done


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def assert_clean_error(body: dict | str, *needles: str) -> str:
    """An OpenAI-style error object with a message holding every needle and no traceback."""
    raw = body if isinstance(body, str) else json.dumps(body)
    assert "Traceback" not in raw and 'File "' not in raw, raw
    data = json.loads(raw) if isinstance(body, str) else body
    message = data["error"]["message"]
    assert isinstance(message, str) and message, data
    for needle in needles:
        assert needle.lower() in message.lower(), f"{needle!r} not in {message!r}"
    return message


class Reference:
    """Greedy generation straight through transformers, to check what the server returns."""

    def __init__(self, model_dir: Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), dtype=torch.float32, local_files_only=True
        )
        self.model.eval()
        self.eos = self.tokenizer.eos_token_id

    def prompt_ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def chat_ids(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def greedy(self, ids: list[int], max_new_tokens: int) -> tuple[str, int, str]:
        torch = self.torch
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[0, len(ids) :].tolist()
        finish = (
            "stop" if new and new[-1] == self.eos else ("length" if len(new) >= max_new_tokens else "stop")
        )
        return self.tokenizer.decode(new, skip_special_tokens=True), len(new), finish
