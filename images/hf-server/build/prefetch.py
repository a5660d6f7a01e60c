"""Build-time prefetch of a (possibly gated) model's config and tokenizer files into the image.

Run only by Dockerfile.hf's token step, and only when PREFETCH_MODEL is set. The token is read
from the BuildKit secret file and passed to huggingface_hub in memory: never printed, never in
an environment variable, never written (HF_HOME points at a throwaway folder removed afterwards).
Weights are not prefetched: at run time they come from the model-cache snapshot (MODEL_PATH).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
PATTERNS = ["config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json",
            "chat_template.jinja", "*.model", "vocab*", "merges.txt"]


def main(repo: str, revision: str, token_file: str, dest: str) -> int:
    if not REPO_ID.match(repo) or ".." in repo:
        print(f"prefetch: PREFETCH_MODEL={repo!r} is not a Hub repo id (owner/name)", file=sys.stderr)
        return 2
    token = Path(token_file).read_text().strip() or None
    from huggingface_hub import snapshot_download

    target = Path(dest) / repo
    path = snapshot_download(repo_id=repo, revision=revision, allow_patterns=PATTERNS, local_dir=target,
                             token=token)
    files = sorted(p.name for p in Path(path).iterdir() if p.is_file())
    print(f"prefetch: {repo}@{revision} -> {target}: {', '.join(files)}")
    # local_dir keeps a .cache/ with metadata; it holds no token, but the image does not need it.
    for meta in sorted((target / ".cache").rglob("*"), reverse=True):
        meta.rmdir() if meta.is_dir() else meta.unlink()
    if (target / ".cache").exists():
        (target / ".cache").rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
