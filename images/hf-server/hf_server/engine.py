"""The model engine: background loading, prompt preparation and (streamed) generation.

torch and transformers are imported here, lazily, inside the loader thread: a server whose
image lacks them still starts and says so in /health.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .settings import Settings

# Never call the Hub at run time: everything comes from MODEL_PATH.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

log = logging.getLogger("hf_server.engine")


class ModelLoadError(RuntimeError):
    """A known reason why the model cannot be loaded; the message is shown in /health."""


class RequestError(ValueError):
    """A request the model cannot serve (e.g. too long for its context): HTTP 400."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass
class GenerationParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    min_tokens: int = 0


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class _StopTrimmer:
    """Cuts streamed text at the first stop string, holding back a possible partial match."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buf = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        self.buf += text
        found = [i for i in (self.buf.find(s) for s in self.stops) if i >= 0]
        if found:
            out, self.buf, self.hit = self.buf[: min(found)], "", True
            return out
        keep = min(self.hold, len(self.buf))
        out = self.buf[: len(self.buf) - keep]
        self.buf = self.buf[len(out) :]
        return out

    def flush(self) -> str:
        out, self.buf = ("" if self.hit else self.buf), ""
        return out


class StreamHandle:
    """Iterates text pieces of one streamed generation; usage figures are set when it ends."""

    def __init__(self, prompt_tokens: int):
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self.cancel_event = threading.Event()
        self._iter: Iterator[str] = iter(())

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def cancel(self) -> None:
        self.cancel_event.set()


def _first_line(exc: BaseException, limit: int = 400) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:limit]


class ModelEngine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = "loading"  # loading | ready | error
        self.error: str | None = None
        self.model = None
        self.tokenizer = None
        self.device = "unknown"
        self.attention = settings.attention if settings.attention != "auto" else None
        self.attention_reason: str | None = None
        self.dtype: str | None = None
        self.load_seconds: float | None = None
        self.context_length: int | None = None
        self._torch = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    # ---- loading -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._load_guarded, name="model-loader", daemon=True)
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading ended (ready or error); True when it ended in time."""
        return self._done.wait(timeout)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def _load_guarded(self) -> None:
        started = time.monotonic()
        log.info(
            "loading model from %s (quantization=%s)", self.settings.model_path, self.settings.quantization
        )
        if self.settings.trust_remote_code:
            log.warning("TRUST_REMOTE_CODE=true: Python code shipped in %s may run in this process",
                        self.settings.model_path)
        try:
            self._load()
        except ModelLoadError as exc:
            self.error = str(exc)
            self.state = "error"
            log.error("model not loaded: %s", self.error)
        except BaseException as exc:  # any failure must reach /health, not end the loader silently
            self.error = f"failed to load model from {self.settings.model_path}: {_first_line(exc)}"
            self.state = "error"
            log.exception("model not loaded: %s", self.error)
        else:
            self.load_seconds = round(time.monotonic() - started, 3)
            self.state = "ready"
            log.info(
                "model ready in %.1fs on %s (attention=%s, dtype=%s, quantization=%s)",
                self.load_seconds,
                self.device,
                self.attention,
                self.dtype,
                self.settings.quantization,
            )
        finally:
            self._done.set()

    def _check_model_dir(self) -> Path:
        path = Path(self.settings.model_path)
        if not path.exists():
            raise ModelLoadError(
                f"MODEL_PATH {str(path)!r} does not exist (has the model-cache init container restored it?)"
            )
        if not path.is_dir():
            raise ModelLoadError(f"MODEL_PATH {str(path)!r} is not a directory")
        if not os.access(path, os.R_OK | os.X_OK):
            raise ModelLoadError(f"MODEL_PATH {str(path)!r} is not readable by uid {os.getuid()}")
        config = path / "config.json"
        if not config.is_file():
            raise ModelLoadError(
                f"MODEL_PATH {str(path)!r} holds no config.json: not a transformers model snapshot"
            )
        try:
            with open(config, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ModelLoadError(f"cannot read {str(config)!r}: {exc.strerror or exc}") from None
        return path

    def _load(self) -> None:
        path = self._check_model_dir()
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ModelLoadError(f"torch/transformers are not installed in this image: {exc}") from None
        transformers.utils.logging.disable_progress_bar()
        self._torch = torch
        cuda = torch.cuda.is_available()
        self.device = f"cuda:0 ({torch.cuda.get_device_name(0)})" if cuda else "cpu"

        quantization = self.settings.quantization
        if quantization == "4bit" and not cuda:
            raise ModelLoadError(
                "QUANTIZATION=4bit needs an NVIDIA GPU (bitsandbytes nf4) but torch sees no CUDA device "
                f"(torch {torch.__version__}); set QUANTIZATION=none to serve unquantized on CPU"
            )
        if quantization == "4bit" and importlib.util.find_spec("bitsandbytes") is None:
            raise ModelLoadError("QUANTIZATION=4bit needs the bitsandbytes package, which is not installed")

        dtype = self._pick_dtype(torch, cuda)
        self.dtype = str(dtype).removeprefix("torch.")
        attention, self.attention_reason = self._pick_attention(torch, cuda, dtype)
        self.attention = attention

        trust = self.settings.trust_remote_code
        kwargs: dict = {"dtype": dtype, "attn_implementation": attention, "local_files_only": True,
                        "trust_remote_code": trust}
        if quantization == "4bit":
            compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            kwargs["quantization_config"] = nf4_config(transformers, compute)
        if cuda:
            kwargs["device_map"] = {"": 0}

        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=trust
            )
            model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        except Exception as exc:
            if not trust and ships_code(path):
                raise ModelLoadError(
                    f"the model in {path} ships its own code (auto_map in config.json) and TRUST_REMOTE_CODE "
                    "is off; set TRUST_REMOTE_CODE=true (models[].trustRemoteCode) only for a model whose code "
                    f"you have reviewed, since it runs inside the server ({_first_line(exc, 200)})"
                ) from None
            raise
        model.eval()
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        # Report what the loaded model really uses, not what was asked for.
        actual = getattr(model.config, "_attn_implementation", None) or attention
        if actual != attention:
            self.attention_reason = f"{self.attention_reason}; transformers loaded {actual} instead of {attention}"
        self.attention = actual
        self.context_length = getattr(model.config, "max_position_embeddings", None)
        self.tokenizer, self.model = tokenizer, model

    def _pick_dtype(self, torch, cuda: bool):
        choice = self.settings.dtype
        if choice != "auto":
            return getattr(torch, choice)
        if cuda:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32

    def _pick_attention(self, torch, cuda: bool, dtype) -> tuple[str, str]:
        """The attention implementation to load with, and why (shown in /health)."""
        choice = self.settings.attention
        if choice not in ("auto", "flash_attention_2"):
            return choice, f"ATTENTION={choice} was set"
        fa2_ok, why = flash_attention_support(torch, cuda, dtype)
        if choice == "flash_attention_2":
            if not fa2_ok:
                raise ModelLoadError(f"ATTENTION=flash_attention_2 was asked for but {why}")
            return choice, f"ATTENTION=flash_attention_2 was set and {why}"
        if fa2_ok:
            return "flash_attention_2", f"auto: {why}"
        # SDPA picks its own fused kernel (flash or memory-efficient) where the GPU has one.
        return "sdpa", f"auto: {why}, so PyTorch SDPA"

    # ---- reporting -----------------------------------------------------------------------------
    def vram_used_gb(self) -> float | None:
        torch = self._torch
        if torch is None or not torch.cuda.is_available():
            return None
        return round(torch.cuda.memory_allocated(0) / 2**30, 3)

    def health(self) -> dict:
        status = {"loading": "loading", "ready": "ok", "error": "error"}[self.state]
        body = {
            "status": status,
            "model_loaded": self.ready,
            "model": self.settings.served_name,
            "quantization": self.settings.quantization,
            "attention": self.attention,
            "attention_reason": self.attention_reason,
            "trust_remote_code": self.settings.trust_remote_code,
            "vram_used_gb": self.vram_used_gb(),
            "device": self.device,
        }
        if self.error:
            body["error"] = self.error
        if self.load_seconds is not None:
            body["load_seconds"] = self.load_seconds
        return body

    # ---- prompts -------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        if not ids:
            raise RequestError("prompt is empty after tokenization", param="prompt")
        return list(ids)

    def encode_chat(self, messages: list[dict]) -> list[int]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise RequestError(
                f"model {self.settings.served_name!r} has no chat template; use /v1/completions",
                param="messages",
            )
        try:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # noqa: BLE001 - template errors (e.g. role order rules raised by the template)
            raise RequestError(
                f"the chat template rejected the messages: {_first_line(exc)}", "messages"
            ) from None
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise RequestError("the chat template produced an empty prompt", param="messages")
        return list(ids)

    def check_length(self, prompt_tokens: int, max_tokens: int) -> None:
        if self.context_length and prompt_tokens + max_tokens > self.context_length:
            raise RequestError(
                f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceeds the model's context "
                f"length ({self.context_length} tokens)",
                param="max_tokens",
            )

    # ---- generation ----------------------------------------------------------------------------
    def _gen_kwargs(self, ids: list[int], params: GenerationParams, cancel: threading.Event) -> dict:
        torch = self._torch
        import transformers

        class _Cancelled(transformers.StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full(
                    (input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device
                )

        device = self.model.device
        input_ids = torch.tensor([ids], dtype=torch.long, device=device)
        kwargs = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": params.max_tokens,
            "min_new_tokens": params.min_tokens or None,
            "pad_token_id": self.tokenizer.pad_token_id,
            "stopping_criteria": transformers.StoppingCriteriaList([_Cancelled()]),
        }
        if params.temperature == 0:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return kwargs

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [eos]) - {None}

    def generate(
        self, ids: list[int], params: GenerationParams, cancel: threading.Event | None = None
    ) -> GenerationResult:
        cancel = cancel or threading.Event()
        kwargs = self._gen_kwargs(ids, params, cancel)
        with self._torch.inference_mode():
            out = self.model.generate(**kwargs)
        new = out[0, len(ids) :].tolist()
        trimmer = _StopTrimmer(params.stop)
        text = trimmer.feed(self.tokenizer.decode(new, skip_special_tokens=True)) + trimmer.flush()
        if trimmer.hit or (new and new[-1] in self._eos_ids()):
            finish = "stop"
        else:
            finish = "length" if len(new) >= params.max_tokens else "stop"
        return GenerationResult(text, len(ids), len(new), finish)

    def stream(self, ids: list[int], params: GenerationParams) -> StreamHandle:
        """Start generating in a thread; iterate the handle (blocking) for text pieces."""
        import transformers

        handle = StreamHandle(prompt_tokens=len(ids))
        eos_ids = self._eos_ids()

        class _CountingStreamer(transformers.TextIteratorStreamer):
            last_token: int | None = None

            def put(self, value):
                was_prompt = self.skip_prompt and self.next_tokens_are_prompt
                super().put(value)
                if not was_prompt:
                    flat = value.reshape(-1).tolist()
                    handle.completion_tokens += len(flat)
                    if flat:
                        self.last_token = flat[-1]

        streamer = _CountingStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._gen_kwargs(ids, params, handle.cancel_event)
        kwargs["streamer"] = streamer
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._torch.inference_mode():
                    self.model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, name="generate-stream", daemon=True)

        def pieces() -> Iterator[str]:
            thread.start()
            trimmer = _StopTrimmer(params.stop)
            try:
                for piece in streamer:
                    out = trimmer.feed(piece)
                    if out:
                        yield out
                tail = trimmer.flush()
                if tail:
                    yield tail
            finally:
                # Ends the generation early when the consumer went away (client disconnect).
                handle.cancel_event.set()
                thread.join()
            if failure:
                raise failure[0]
            if trimmer.hit or streamer.last_token in eos_ids:
                handle.finish_reason = "stop"
            else:
                handle.finish_reason = "length" if handle.completion_tokens >= params.max_tokens else "stop"

        handle._iter = pieces()
        return handle


def nf4_config(transformers, compute_dtype):
    """bitsandbytes 4-bit: NF4 weights, double quantization of the constants, compute in bf16/fp16."""
    return transformers.BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def flash_attention_support(torch, cuda: bool, dtype) -> tuple[bool, str]:
    """Whether FlashAttention-2 can be used here, and if not, why."""
    if not cuda:
        return False, "no CUDA GPU is present"
    if importlib.util.find_spec("flash_attn") is None:
        return False, "the flash_attn package is not installed"
    try:
        # Installed is not enough: a wheel built for another torch/CUDA fails here (undefined symbols).
        importlib.import_module("flash_attn")
    except Exception as exc:  # noqa: BLE001 - ImportError, OSError from the extension: any means unusable
        return False, f"the flash_attn package is installed but does not import ({_first_line(exc, 160)})"
    major, minor = torch.cuda.get_device_capability(0)
    if major < 8:
        return False, f"the GPU's compute capability {major}.{minor} is below 8.0 (Ampere)"
    if dtype not in (torch.float16, torch.bfloat16):
        return False, f"FlashAttention-2 needs float16/bfloat16, not {str(dtype).removeprefix('torch.')}"
    return True, f"flash_attn imports and the GPU (compute capability {major}.{minor}) supports it"


def ships_code(model_dir: Path) -> bool:
    """Whether the model folder's config.json maps Auto classes to Python files of its own."""
    try:
        return "auto_map" in json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
