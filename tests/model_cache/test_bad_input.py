"""Bad input is rejected with a message naming the problem, exit 1, and nothing written."""

from __future__ import annotations

import logging

import pytest
from model_cache.errors import ValidationError
from model_cache.layout import normalize_prefix, validate_file_path, validate_repo_id
from model_cache.masking import MaskingFormatter, mask, register_secret

from .conftest import ACCESS_KEY, HF_TOKEN, SECRET_KEY, run_cli, small_repo


def _bucket_empty(s3, bucket) -> bool:
    return "Contents" not in s3.list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("repo_id", [
    "../etc/passwd", "/abs/model", "owner/name/extra", "justname/", "owner/" + "n" * 100,
    "own..er/name", "owner/na me", "owner/name\n", "owner/-bad", "owner/name.git", "",
])
def test_bad_repo_ids_are_rejected(repo_id):
    with pytest.raises(ValidationError):
        validate_repo_id(repo_id)


@pytest.mark.parametrize("repo_id", ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-0.5B", "a/b", "org_1/m.v2",
                                     "gpt2", "bert-base-uncased"])
def test_good_repo_ids_pass(repo_id):
    assert validate_repo_id(repo_id) == repo_id


@pytest.mark.parametrize("name", [
    "../evil", "a/../../evil", "/etc/passwd", "a//b", "./x", "a/./b", "a\\b", "C:/x", "x\x00y", "dir/",
    ".model-cache-complete.json", "",
])
def test_bad_hub_file_names_are_rejected(name):
    with pytest.raises(ValidationError):
        validate_file_path(name)


def test_prefix_validation():
    assert normalize_prefix("models") == "models/"
    assert normalize_prefix("") == ""
    for bad in ("/abs", "a/../b", "sp ace"):
        with pytest.raises(ValidationError):
            normalize_prefix(bad)


def test_cli_rejects_bad_repo_id_without_touching_anything(hub, env, s3, bucket):
    proc = run_cli(["ensure"], dict(env, MODEL_NAME="../../etc/passwd"))
    assert proc.returncode == 1
    assert "MODEL_NAME" in proc.stderr and "not a valid repo id" in proc.stderr
    assert hub.counts == {} and _bucket_empty(s3, bucket)


def test_traversal_file_name_from_the_hub_aborts_before_writing(hub, env, s3, bucket, tmp_path):
    hub.add_repo(small_repo(extra_siblings=["../../outside.bin"]))
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 1
    assert "../../outside.bin" in proc.stderr and "traversal" in proc.stderr
    assert hub.file_gets() == {} and _bucket_empty(s3, bucket)
    assert not any((tmp_path / "scratch").rglob("*.bin")) if (tmp_path / "scratch").exists() else True


def test_private_repo_without_token_gives_401_and_hint(hub, env, s3, bucket):
    hub.add_repo(small_repo(token="hf_the-right-token-0123456789"))
    proc = run_cli(["ensure"], env)  # env's HF_TOKEN is a different token
    assert proc.returncode == 1
    assert "401" in proc.stderr and "HF_TOKEN" in proc.stderr
    assert _bucket_empty(s3, bucket)


def test_gated_repo_gives_403_and_hint(hub, env):
    hub.add_repo(small_repo(token="hf_the-right-token-0123456789", gated=True))
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 1
    assert "403" in proc.stderr and "gated" in proc.stderr and "HF_TOKEN" in proc.stderr


def test_private_repo_with_token_works(hub, env):
    hub.add_repo(small_repo(token=HF_TOKEN))
    proc = run_cli(["ensure"], env)
    assert proc.returncode == 0, proc.stderr


def test_unknown_repo_and_revision_give_404_and_hint(hub, env, s3, bucket):
    hub.add_repo(small_repo())
    proc = run_cli(["ensure"], dict(env, MODEL_NAME="acme/does-not-exist"))
    assert proc.returncode == 1 and "404" in proc.stderr and "HF_TOKEN" in proc.stderr
    proc = run_cli(["ensure"], dict(env, MODEL_REVISION="no-such-branch"))
    assert proc.returncode == 1 and "404" in proc.stderr
    assert _bucket_empty(s3, bucket)


def test_credentials_are_masked_even_inside_error_messages(env):
    # A secret that ends up inside an error message is masked, first/last 4 characters kept.
    proc = run_cli(["ensure"], dict(env, MODEL_NAME=HF_TOKEN), check_secrets=True)
    assert proc.returncode == 1
    assert f"{HF_TOKEN[:4]}****{HF_TOKEN[-4:]}" in proc.stderr


def test_masking_formatter_masks_messages_and_tracebacks():
    for secret in (ACCESS_KEY, SECRET_KEY, HF_TOKEN):
        register_secret(secret)
    assert mask(f"key={ACCESS_KEY}") == f"key={ACCESS_KEY[:4]}****{ACCESS_KEY[-4:]}"
    fmt = MaskingFormatter("%(message)s")
    try:
        raise RuntimeError(f"boom {SECRET_KEY}")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token %s", (HF_TOKEN,), sys.exc_info())
    text = fmt.format(record)
    assert SECRET_KEY not in text and HF_TOKEN not in text and "****" in text
