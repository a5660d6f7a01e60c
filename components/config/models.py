"""The ``models`` stack config: one entry per served model, parsed and validated.

``components/config/settings.py`` stays the one entry point: ``load_settings`` calls
:func:`parse_models`, which appends its problems to the same list as every other key, so a
stack with a bad model entry and a bad region reports both before any resource is
registered. Each problem names the entry (index and name), the field, the value, what is
allowed and how to fix it.

One entry (``Pulumi.<stack>.yaml``; only ``name`` and ``repo`` are required)::

    gpu-platform:models:
      - name: qwen-small                       # DNS-1035 label: Service name and URL host
        repo: Qwen/Qwen2.5-0.5B-Instruct       # Hugging Face repo id
        revision: 7ae557604adf67be50417f59c2c2f167def9a775   # prod: a commit sha or a tag
        runtime: vllm                          # vllm (default) | hf-server
        gpus: 1                                # per replica; at most the GPUs of one node
        replicas: 1
        maxModelLen: 8192                      # vllm only
        extraArgs: ["--gpu-memory-utilization", "0.90"]   # vllm only
        quantization: none                     # hf-server only: none | 4bit
        allowPatterns: ["*.json", "*.safetensors", "tokenizer*"]
        cpu: "4"
        memory: 32Gi
        shmSize: 8Gi                           # vllm only: memory-backed /dev/shm
        cache: emptyDir                        # emptyDir (default) | hostPath (node cache, opt-in)
        cacheSize: 100Gi                       # emptyDir sizeLimit
        hostPath: /var/lib/gpu-platform/models # cache: hostPath only
        warmCache: true                        # a Job runs `model-cache ensure` before the rollout
        maxSurge: 0
        maxUnavailable: 1
        terminationGracePeriodSeconds: 120
        startupTimeoutSeconds: 1800
        gated: false                           # true: the repo needs hfToken to download
        trustRemoteCode: false                 # run the repo's own Python code (a risk: see docs/models.md)
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Final

from components.config import catalog
from components.config.reader import UNSET, ConfigReader, is_number
from components.config.types import ModelSettings

RUNTIMES: Final = ("vllm", "hf-server")
QUANTIZATIONS: Final = ("none", "4bit")
CACHE_KINDS: Final = ("emptyDir", "hostPath")
MAX_NAME_LENGTH: Final = 40
"""The Job ``model-<name>-warm-<7 random>`` must stay within 63 characters (its pods' job-name label)."""
MAX_REPLICAS: Final = 20
MIN_MODEL_LEN: Final = 128
MAX_MODEL_LEN: Final = 1_048_576
#: Moving branch names: prod refuses them, a restart could then serve different weights.
MOVING_REVISIONS: Final = frozenset({"main", "master", "dev", "develop", "HEAD"})
#: Flags ModelDeployment sets itself; extraArgs may not override them.
MANAGED_VLLM_FLAGS: Final = ("--model", "--served-model-name", "--host", "--port", "--tensor-parallel-size",
                             "--max-model-len", "--download-dir", "--tokenizer", "--trust-remote-code")
#: hostPath node caches live under these roots only (never /, /etc, /var/run, ...).
HOST_PATH_ROOTS: Final = ("/var/lib/", "/mnt/", "/data/")

_REPO_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?")
_REVISION = re.compile(r"[A-Za-z0-9._/-]{1,256}")
_COMMIT = re.compile(r"[0-9a-f]{40}")

#: Field defaults; ``None`` means "not set".
DEFAULTS: Final[dict[str, Any]] = {
    "revision": "main",
    "runtime": "vllm",
    "gpus": 1,
    "replicas": 1,
    "maxModelLen": None,
    "extraArgs": [],
    "quantization": "none",
    "allowPatterns": [],
    "ignorePatterns": [],
    "cpu": "4",
    "memory": "32Gi",
    "shmSize": "8Gi",
    "cache": "emptyDir",
    "cacheSize": "100Gi",
    "hostPath": None,
    "warmCache": True,
    "maxSurge": 0,
    "maxUnavailable": 1,
    "terminationGracePeriodSeconds": 120,
    "startupTimeoutSeconds": 1800,
    "gated": False,
    "trustRemoteCode": False,
}
FIELDS: Final = ("name", "repo", *DEFAULTS)


def parse_models(raw: Any, *, gpu_node_size: str, gpu_node_count: int, environment: str,
                 hf_token_set: bool, problems: list[str], project: str = "gpu-platform") -> tuple[ModelSettings, ...]:
    """Validate the ``models`` list; append one problem per bad field; return the good entries."""
    size = catalog.SIZES.get(gpu_node_size)
    if size is not None and not size.is_gpu:
        size = None  # gpuNodeSize itself is reported; fitting models to a CPU node would only add noise
    models: list[ModelSettings] = []
    seen: dict[str, int] = {}
    for reader, item in ConfigReader.entries(raw, "models", DEFAULTS, problems, project,
                                             what="model objects (name, repo, ...)",
                                             example="`- name: my-model` / `  repo: owner/name`"):
        model = _parse_entry(reader, item, reader.index, size, gpu_node_size, environment, hf_token_set, seen)
        if model is not None:
            models.append(model)
    if size is not None and models and gpu_node_count >= 1:  # an invalid count is reported on its own
        needed = sum((m.replicas + m.max_surge) * m.gpus for m in models)
        have = size.gpu_count * gpu_node_count
        if needed > have:
            detail = ", ".join(f"{m.name}: ({m.replicas} replicas + {m.max_surge} surge) x {m.gpus}" for m in models)
            problems.append(
                f"{project}:models: the models need {needed} GPUs ({detail}) but the GPU pool has {have} "
                f"({gpu_node_count} x {gpu_node_size} with {size.gpu_count} GPU(s) each). "
                "Fix: lower replicas/gpus/maxSurge, or raise gpuNodeCount or pick a larger gpuNodeSize")
    return tuple(models)


def _parse_entry(e: ConfigReader, raw: dict[str, Any], i: int, size: catalog.NodeSize | None,
                 gpu_node_size: str, environment: str, hf_token_set: bool,
                 seen: dict[str, int]) -> ModelSettings | None:
    e.refuse_unknown(raw, FIELDS)
    name = e.entry_name(raw, seen, max_length=MAX_NAME_LENGTH, names_what="the Service and its URL",
                        example="qwen-small")

    repo = raw.get("repo")
    if not isinstance(repo, str) or not repo:
        e.fail("repo", repo, "is required: the Hugging Face repo id owner/name",
               f"set models[{i}].repo, e.g. Qwen/Qwen2.5-0.5B-Instruct")
        repo = ""
    else:
        why = _repo_problem(repo)
        if why:
            e.fail("repo", repo, f"not a Hugging Face repo id ({why})",
                   f"set models[{i}].repo to owner/name, e.g. Qwen/Qwen2.5-0.5B-Instruct")

    revision = e.get("revision")
    explicit_revision = e.given("revision")
    if not isinstance(revision, str) or not _REVISION.fullmatch(revision) or ".." in revision \
            or revision.startswith("/") or revision.endswith("/"):
        e.fail("revision", revision, "must be a branch, tag or 40-hex commit sha (letters, digits, '.', '_', "
               "'-', '/'; no '..')", f"set models[{i}].revision to the commit sha of the snapshot to serve")
        revision = "main"
    elif environment == "prod" and (not explicit_revision or revision in MOVING_REVISIONS
                                    or revision.startswith(("refs/heads/", "refs/pr/"))):
        e.fail("revision", revision if explicit_revision else UNSET,
               "prod must pin the weights it serves: a 40-hex commit sha or a tag, not a moving branch",
               f"set models[{i}].revision to the commit sha shown on the repo's 'Files' tab (huggingface.co/"
               f"{repo or 'owner/name'}/commits/main)")
    elif re.fullmatch(r"[0-9A-Fa-f]{40}", revision) and not _COMMIT.fullmatch(revision):
        e.fail("revision", revision, "a commit sha must be lower-case hex", f"set models[{i}].revision to "
               f"{revision.lower()}")

    runtime = e.string("runtime", RUNTIMES)

    max_gpus = size.gpu_count if size else 8
    gpus = e.get("gpus")
    if not is_number(gpus) or int(gpus) != gpus or gpus < 1:
        e.fail("gpus", gpus, "must be a whole number of GPUs per replica, at least 1",
               f"set models[{i}].gpus to 1")
        gpus = 1
    elif gpus > max_gpus:
        e.fail("gpus", gpus, f"a replica runs on one node, but a {gpu_node_size} node has {max_gpus} GPU(s)",
               f"set models[{i}].gpus to at most {max_gpus}, or pick a gpuNodeSize with more GPUs per node")
    gpus = int(gpus)
    if runtime == "hf-server" and gpus > 1 and not e.failed:
        e.fail("gpus", gpus, "hf-server serves from one GPU", f"set models[{i}].gpus to 1 or use runtime vllm")

    replicas = e.integer("replicas", 1, MAX_REPLICAS)

    max_model_len = e.get("maxModelLen")
    if max_model_len is not None:
        if runtime != "vllm":
            e.fail("maxModelLen", max_model_len, f"only the vllm runtime takes it (runtime is {runtime})",
                   f"remove models[{i}].maxModelLen")
            max_model_len = None
        else:
            max_model_len = e.integer("maxModelLen", MIN_MODEL_LEN, MAX_MODEL_LEN)

    extra_args = e.strings("extraArgs")
    if extra_args and runtime != "vllm":
        e.fail("extraArgs", list(extra_args), f"only the vllm runtime takes extra arguments (runtime is {runtime})",
               f"remove models[{i}].extraArgs")
    for arg in extra_args:
        flag = arg.split("=", 1)[0]
        if flag in MANAGED_VLLM_FLAGS:
            e.fail("extraArgs", arg, f"{flag} is set by ModelDeployment from the model's fields",
                   f"remove it from models[{i}].extraArgs (use name, gpus or maxModelLen)")

    quantization = e.string("quantization", QUANTIZATIONS)
    if quantization != "none" and runtime != "hf-server":
        e.fail("quantization", quantization, "only hf-server takes it; for vllm pass --quantization in extraArgs",
               f"remove models[{i}].quantization")

    patterns: dict[str, tuple[str, ...]] = {}
    for field in ("allowPatterns", "ignorePatterns"):
        patterns[field] = e.strings(field)
        for pattern in patterns[field]:
            if "," in pattern or pattern.startswith("/") or ".." in pattern:
                e.fail(field, pattern, "a pattern may not contain ',' (the list is passed comma-separated), "
                       "start with '/' or contain '..'", f"fix that entry of models[{i}].{field}")

    node_cpu = Decimal(size.cpu if size else 1024)
    node_ram = Decimal((size.ram_mb if size else 2**30) * 2**20)
    node_disk = Decimal((size.disk_gb if size else 10**6) * 10**9)
    cpu, _ = e.quantity("cpu", Decimal("0.1"), node_cpu, "4",
                        f"must be between 100m and the {node_cpu} CPUs of a {gpu_node_size} node")
    before = len(e.problems)
    memory, memory_bytes = e.quantity("memory", Decimal(2**30), node_ram, "32Gi",
                                      f"must be between 1Gi and the {size.ram_mb if size else '?'} MB of RAM "
                                      f"of a {gpu_node_size} node")
    shm, shm_bytes = e.quantity("shmSize", Decimal(64 * 2**20), node_ram, "8Gi",
                                "must be between 64Mi and the node's RAM")
    memory_ok = len(e.problems) == before
    if runtime == "vllm" and memory_ok and shm_bytes >= memory_bytes:
        e.fail("shmSize", shm, f"the memory-backed /dev/shm counts against the container's memory ({memory}), "
               "so it must be smaller", f"lower models[{i}].shmSize or raise models[{i}].memory")

    cache = e.string("cache", CACHE_KINDS)
    cache_size, _ = e.quantity("cacheSize", Decimal(2**30), node_disk, "100Gi",
                               f"must be between 1Gi and the {size.disk_gb if size else '?'} GB disk of a "
                               f"{gpu_node_size} node")
    host_path = e.get("hostPath")
    if cache == "hostPath":
        if not isinstance(host_path, str) or not host_path.startswith(HOST_PATH_ROOTS) or ".." in host_path \
                or host_path.rstrip("/") in (r.rstrip("/") for r in HOST_PATH_ROOTS):
            e.fail("hostPath", host_path, f"cache: hostPath needs a node directory under {', '.join(HOST_PATH_ROOTS)} "
                   "(not the root itself, no '..')", f"set models[{i}].hostPath to /var/lib/gpu-platform/models")
            host_path = None
    elif host_path is not None:
        e.fail("hostPath", host_path, "is only used with cache: hostPath", f"remove models[{i}].hostPath or set "
               f"models[{i}].cache to hostPath")
        host_path = None

    warm_cache = e.flag("warmCache")
    max_surge = e.integer("maxSurge", 0, MAX_REPLICAS)
    max_unavailable = e.integer("maxUnavailable", 0, MAX_REPLICAS)
    if max_surge == 0 and max_unavailable == 0:
        e.fail("maxUnavailable", 0, "with maxSurge 0 a rollout could never replace a pod",
               f"set models[{i}].maxUnavailable to 1 (or maxSurge to 1 if spare GPUs exist)")
    elif max_unavailable > replicas:
        e.fail("maxUnavailable", max_unavailable, f"is more than the {replicas} replica(s)",
               f"set models[{i}].maxUnavailable to at most {replicas}")
    grace = e.integer("terminationGracePeriodSeconds", 0, 3600)
    startup = e.integer("startupTimeoutSeconds", 60, 14_400)
    gated = e.flag("gated")
    trust_remote_code = e.flag("trustRemoteCode")
    if gated and not hf_token_set:
        e.fail("gated", True, "the repo is gated, so model-cache needs a Hugging Face token to download it, "
               "but hfToken is not set", "pulumi config set --secret hfToken <token>")

    if e.failed:
        return None
    return ModelSettings(
        name=name, repo=repo, revision=revision, runtime=runtime, gpus=gpus, replicas=replicas,
        max_model_len=max_model_len, extra_args=extra_args, quantization=quantization,
        allow_patterns=patterns["allowPatterns"], ignore_patterns=patterns["ignorePatterns"],
        cpu=cpu, memory=memory, shm_size=shm, cache=cache, cache_size=cache_size, host_path=host_path,
        warm_cache=warm_cache, max_surge=max_surge, max_unavailable=max_unavailable,
        termination_grace_period_seconds=grace, startup_timeout_seconds=startup, gated=gated,
        trust_remote_code=trust_remote_code,
    )


def _repo_problem(repo: str) -> str | None:
    """Why ``repo`` is not a Hub repo id (the same rules as model-cache's ``validate_repo_id``).

    Root-level ids (``gpt2``, ``bert-base-uncased``) are real Hub repos and are accepted.
    """
    if len(repo) > 96:
        return "longer than 96 characters"
    if repo.startswith("/") or "\\" in repo or "://" in repo:
        return "a repo id, not a URL or path"
    if ".." in repo or "--" in repo:
        return "'..' and '--' are not allowed"
    if repo.count("/") > 1:
        return "expected owner/name, or a root-level name such as gpt2"
    parts = repo.split("/")
    if not all(_REPO_PART.fullmatch(part) for part in parts) or parts[-1].endswith(".git"):
        return "owner and name may use letters, digits, '-', '_' and '.' only"
    return None

