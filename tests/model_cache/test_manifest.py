"""The bucket's contract (model_cache.manifest): what "cached" means, read and written in-process.

The manifest functions take any object with ``bucket``, ``repo_id`` and ``revision`` (the hub
gateway passes its own), so these tests pass a plain namespace and a client of the real S3 server
on loopback. The error texts are asserted whole: they are what a user reads in the init
container's log, and "delete it and run model-cache ensure again" is the fix they follow.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from model_cache import __version__
from model_cache.errors import IntegrityError, ValidationError
from model_cache.layout import Layout
from model_cache.manifest import SCHEMA, covers, read_manifest, write_manifest

REPO = "acme/tiny-model"
SHA = "a" * 40


def _target(bucket: str, **extra) -> SimpleNamespace:
    return SimpleNamespace(bucket=bucket, repo_id=REPO, revision="main", **extra)


def _layout() -> Layout:
    return Layout("models/", REPO)


def _put(s3, bucket: str, doc) -> str:
    key = _layout().manifest_key(SHA)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
    return key


# --- read_manifest ---------------------------------------------------------------------------------------

def test_a_missing_manifest_reads_as_not_cached(s3, bucket):
    assert read_manifest(s3, _target(bucket), _layout(), SHA) is None


def test_a_valid_manifest_is_returned_as_stored(s3, bucket):
    doc = {"sha": SHA, "repo": REPO, "files": [{"path": "config.json", "size": 2}, {"path": "nested/dir/a.bin"}]}
    _put(s3, bucket, doc)
    assert read_manifest(s3, _target(bucket), _layout(), SHA) == doc


@pytest.mark.parametrize("doc", [
    {"sha": "b" * 40, "repo": REPO, "files": []},          # another commit
    {"repo": REPO, "files": []},                           # no sha at all
    {"sha": SHA, "repo": "acme/other", "files": []},       # another repo
    {"sha": SHA, "files": []},                             # no repo
    {"sha": SHA, "repo": REPO, "files": {}},               # files not a list
    {"sha": SHA, "repo": REPO},                            # no files
], ids=["other-sha", "no-sha", "other-repo", "no-repo", "files-dict", "no-files"])
def test_a_manifest_of_another_snapshot_is_refused_with_the_fix(s3, bucket, doc):
    key = _put(s3, bucket, doc)
    with pytest.raises(IntegrityError) as caught:
        read_manifest(s3, _target(bucket), _layout(), SHA)
    assert str(caught.value) == (f"manifest s3://{bucket}/{key} does not describe {REPO}@{SHA}: "
                                 "delete it and run model-cache ensure again")


@pytest.mark.parametrize("entry", ["config.json", None, ["config.json"]])
def test_a_file_entry_that_is_not_an_object_is_refused_with_the_fix(s3, bucket, entry):
    key = _put(s3, bucket, {"sha": SHA, "repo": REPO, "files": [{"path": "ok.json"}, entry]})
    with pytest.raises(IntegrityError) as caught:
        read_manifest(s3, _target(bucket), _layout(), SHA)
    assert str(caught.value) == (f"manifest s3://{bucket}/{key} has a malformed file entry: "
                                 "delete it and run model-cache ensure again")


@pytest.mark.parametrize(("path", "why"), [
    ("../etc/passwd", "path traversal or empty segment"),
    ("/etc/passwd", "absolute path"),
    (".model-cache-complete.json", "name reserved by model-cache (.model-cache*)"),
])
def test_an_unsafe_file_name_in_the_manifest_is_refused_naming_the_manifest(s3, bucket, path, why):
    _put(s3, bucket, {"sha": SHA, "repo": REPO, "files": [{"path": "ok.json"}, {"path": path}]})
    with pytest.raises(ValidationError) as caught:
        read_manifest(s3, _target(bucket), _layout(), SHA)
    assert str(caught.value) == f"rejected file name {path!r} from the manifest: {why}; nothing was written"


def test_a_file_entry_without_a_name_is_refused_naming_the_manifest(s3, bucket):
    _put(s3, bucket, {"sha": SHA, "repo": REPO, "files": [{"size": 1}]})
    with pytest.raises(ValidationError) as caught:
        read_manifest(s3, _target(bucket), _layout(), SHA)
    assert str(caught.value) == "rejected an empty or non-string file name from the manifest"


# --- write_manifest -------------------------------------------------------------------------------------

def _entry(path: str, size: int, digit: str = "1") -> dict:
    return {"path": path, "size": size, "sha256": digit * 64, "etag": f'"{digit}"'}


def test_write_manifest_stores_every_field_sorted_by_path(s3, bucket):
    s = _target(bucket, allow_patterns=["*.json", "*.bin"], ignore_patterns=["*.md"])
    files = [_entry("b.bin", 10, "2"), _entry("a.json", 5, "1"), _entry("nested/c.bin", 0, "3")]
    before = time.time()
    returned = write_manifest(s3, s, _layout(), SHA, files)
    stored = json.loads(s3.get_object(Bucket=bucket, Key=_layout().manifest_key(SHA))["Body"].read())
    assert stored == returned
    assert before <= stored.pop("created") <= time.time()
    assert stored == {
        "schema": SCHEMA, "tool": "model-cache", "tool_version": __version__,
        "repo": REPO, "revision": "main", "sha": SHA,
        "allow_patterns": ["*.json", "*.bin"], "ignore_patterns": ["*.md"],
        "files": [_entry("a.json", 5, "1"), _entry("b.bin", 10, "2"), _entry("nested/c.bin", 0, "3")],
        "total_bytes": 15,
    }
    assert SCHEMA == 1  # the format docs/model-cache.md describes; readers elsewhere check it
    # What it wrote, read_manifest accepts: one format for the writer and every reader.
    assert read_manifest(s3, s, _layout(), SHA) == returned


def test_write_manifest_without_patterns_records_none(s3, bucket):
    doc = write_manifest(s3, _target(bucket), _layout(), SHA, [_entry("a.json", 5)])
    assert doc["allow_patterns"] is None and doc["ignore_patterns"] is None


@pytest.mark.parametrize("sha256", [None, "", "0" * 63, "A" * 64, 64])
def test_write_manifest_refuses_an_entry_without_a_verified_sha256(s3, bucket, sha256):
    bad = dict(_entry("w.bin", 3), sha256=sha256)
    with pytest.raises(IntegrityError) as caught:
        write_manifest(s3, _target(bucket), _layout(), SHA, [_entry("a.json", 5), bad])
    assert str(caught.value) == "w.bin: no verified sha256 to put in the manifest"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=_layout().manifest_key(SHA))


def test_write_manifest_refuses_an_entry_without_a_sha256_key(s3, bucket):
    bad = {"path": "w.bin", "size": 3}
    with pytest.raises(IntegrityError, match=r"^w\.bin: no verified sha256 to put in the manifest$"):
        write_manifest(s3, _target(bucket), _layout(), SHA, [bad])


# --- covers: does the manifest answer "cached" for these wanted files -----------------------------------

def _want(path: str, size: int | None = 5, sha256: str | None = "1" * 64) -> SimpleNamespace:
    return SimpleNamespace(path=path, size=size, sha256=sha256)


MANIFEST = {"files": [{"path": "a.json", "size": 5, "sha256": "1" * 64},
                      {"path": "b.bin", "size": 7, "sha256": "2" * 64}]}


def test_covers_when_every_wanted_file_is_listed_unchanged():
    assert covers(MANIFEST, [_want("a.json"), _want("b.bin", 7, "2" * 64)]) is True
    assert covers(MANIFEST, [_want("b.bin", 7, "2" * 64)]) is True   # a subset (narrower patterns)
    assert covers(MANIFEST, []) is True


def test_covers_trusts_the_manifest_where_the_hub_gives_no_size_or_sha256():
    # Non-LFS files: the Hub lists no sha256 (and older APIs no size): only presence can be checked.
    assert covers(MANIFEST, [_want("a.json", None, None), _want("b.bin", 7, None)]) is True
    assert covers(MANIFEST, [_want("a.json", None, "1" * 64)]) is True


@pytest.mark.parametrize("wanted", [
    _want("c.json"),                        # not in the manifest (widened patterns)
    _want("a.json", 6),                     # size changed
    _want("a.json", 5, "9" * 64),           # sha256 changed
    _want("a.json", None, "9" * 64),        # sha256 changed, size unknown
    _want("a.json", 6, None),               # size changed, sha256 unknown
], ids=["missing", "size", "sha256", "sha256-no-size", "size-no-sha256"])
def test_covers_is_false_when_any_wanted_file_is_missing_or_changed(wanted):
    assert covers(MANIFEST, [_want("b.bin", 7, "2" * 64), wanted]) is False
    assert covers(MANIFEST, [wanted, _want("b.bin", 7, "2" * 64)]) is False


def test_covers_compares_with_the_entry_of_the_same_path():
    # Both sizes appear in the manifest, but each under the other's name.
    swapped = [_want("a.json", 7, None), _want("b.bin", 5, None)]
    assert covers(MANIFEST, swapped) is False
