"""What restore trusts in a destination it finds already filled, decided file by file (in-process).

restore keeps a marker (.model-cache-complete.json) that records, per file, what it checked and the
file's identity afterwards (size, mtime, ctime, inode). On the next start a file is trusted without
reading it only if that record still matches, at the level the record says was checked and at least
the level asked for now; anything else is re-hashed against the manifest. These tests call the three
functions that decide it on real files; tests/model_cache/test_mutation_gaps.py checks the same rules
through whole restores.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from model_cache import restore as restore_module
from model_cache.restore import _present_and_correct, _read_marker, _record

DATA = b"the bytes of a model file\n"
SHA = hashlib.sha256(DATA).hexdigest()
OTHER_SHA = "f" * 64


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "model.bin"
    p.write_bytes(DATA)
    return p


@pytest.fixture
def hashed(monkeypatch) -> list[Path]:
    """The files _present_and_correct read back to hash (it still hashes them, for real)."""
    calls: list[Path] = []
    real = restore_module._hash_file

    def counting(p: Path) -> str:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(restore_module, "_hash_file", counting)
    return calls


def _entry(**over) -> dict:
    return {"path": "model.bin", "size": len(DATA), "sha256": SHA, "etag": '"e1"', **over}


# --- _read_marker ---------------------------------------------------------------------------------------

def test_read_marker_returns_the_recorded_object(tmp_path):
    doc = {"repo": "acme/x", "sha": "a" * 40, "files": [{"path": "a"}]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    assert _read_marker(tmp_path / "m.json") == doc


@pytest.mark.parametrize("content", [None, "", "{not json", "[]", '"text"', "3", "\xff"],
                         ids=["missing", "empty", "bad-json", "list", "string", "number", "bad-utf8"])
def test_a_missing_or_unreadable_marker_reads_as_empty(tmp_path, content):
    marker = tmp_path / "m.json"
    if content == "\xff":
        marker.write_bytes(b"\xff\xfe{")
    elif content is not None:
        marker.write_text(content)
    assert _read_marker(marker) == {}


def test_a_marker_that_is_a_directory_reads_as_empty(tmp_path):
    (tmp_path / "m.json").mkdir()
    assert _read_marker(tmp_path / "m.json") == {}


# --- _record --------------------------------------------------------------------------------------------

def test_a_hashed_file_is_recorded_with_its_sha256_and_identity(path):
    st = path.stat()
    assert _record(path, _entry(), "sha256") == {
        "path": "model.bin", "size": len(DATA), "checked": "sha256", "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns, "ino": st.st_ino, "sha256": SHA}


def test_a_file_checked_by_size_and_etag_is_recorded_without_a_sha256(path):
    # An ETag restore hashes nothing: recording the manifest's sha256 would let a later sha256 restore
    # trust bytes nobody hashed.
    st = path.stat()
    assert _record(path, _entry(), "size+etag") == {
        "path": "model.bin", "size": len(DATA), "checked": "size+etag", "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns, "ino": st.st_ino, "etag": '"e1"'}


def test_the_record_holds_the_file_on_disk_not_the_manifest_size(path):
    assert _record(path, _entry(size=999), "sha256")["size"] == len(DATA)


# --- _present_and_correct -------------------------------------------------------------------------------

def _trusted_record(path: Path, checked: str = "sha256") -> dict:
    return _record(path, _entry(), checked)


def test_an_untouched_recorded_file_is_trusted_without_reading_it(path, hashed):
    assert _present_and_correct(path, _entry(), _trusted_record(path), "sha256") == "sha256"
    assert _present_and_correct(path, _entry(), _trusted_record(path), "etag") == "sha256"
    assert hashed == []


def test_a_missing_file_or_a_directory_is_fetched(tmp_path, hashed):
    assert _present_and_correct(tmp_path / "absent", _entry(), None, "sha256") is None
    d = tmp_path / "dir"
    d.mkdir()
    assert _present_and_correct(d, _entry(size=d.stat().st_size), None, "sha256") is None
    assert hashed == []


def test_a_file_of_the_wrong_size_is_fetched_even_with_a_matching_record(path, hashed):
    # The record matches the file on disk, but the manifest wants another size: fetch, never trust.
    assert _present_and_correct(path, _entry(size=len(DATA) + 1), _trusted_record(path), "sha256") is None
    assert hashed == []


@pytest.mark.parametrize("field", ["size", "mtime_ns", "ctime_ns", "ino"])
def test_a_file_changed_since_its_record_is_rehashed(path, hashed, field):
    rec = dict(_trusted_record(path))
    rec[field] += 1
    assert _present_and_correct(path, _entry(), rec, "sha256") == "sha256"  # the bytes are still right
    assert hashed == [path]
    assert _present_and_correct(path, _entry(sha256=OTHER_SHA), dict(rec, sha256=OTHER_SHA), "sha256") is None


@pytest.mark.parametrize("rec", [None, {}], ids=["no-record", "empty-record"])
def test_without_a_record_the_file_is_rehashed(path, hashed, rec):
    assert _present_and_correct(path, _entry(), rec, "sha256") == "sha256"
    assert _present_and_correct(path, _entry(sha256=OTHER_SHA), rec, "sha256") is None
    assert hashed == [path, path]


def test_a_record_of_another_sha256_is_not_trusted(path, hashed):
    rec = dict(_trusted_record(path), sha256=OTHER_SHA)
    assert _present_and_correct(path, _entry(), rec, "sha256") == "sha256"
    assert hashed == [path]


def test_a_record_without_a_sha256_is_not_trusted_at_sha256_level(path, hashed):
    rec = {k: v for k, v in _trusted_record(path).items() if k != "sha256"}
    assert _present_and_correct(path, _entry(), rec, "sha256") == "sha256"
    assert hashed == [path]


def test_a_sha256_record_is_not_trusted_when_the_manifest_has_no_sha256(path, hashed):
    rec = dict(_trusted_record(path), sha256=None)
    # Neither the record nor the manifest vouch for the bytes: nothing to hash against, fetch again.
    assert _present_and_correct(path, _entry(sha256=None), rec, "sha256") is None
    assert hashed == []


def test_a_size_and_etag_record_is_trusted_only_by_an_etag_restore_of_the_same_etag(path, hashed):
    rec = _trusted_record(path, "size+etag")
    assert _present_and_correct(path, _entry(), rec, "etag") == "size+etag"
    assert hashed == []
    # A sha256 restore asks for more than the ETag restore checked: re-hash.
    assert _present_and_correct(path, _entry(), rec, "sha256") == "sha256"
    assert hashed == [path]
    # The object was replaced since (another ETag): re-hash.
    assert _present_and_correct(path, _entry(etag='"e2"'), rec, "etag") == "sha256"
    assert hashed == [path, path]


def test_an_etag_record_without_an_etag_is_not_trusted(path, hashed):
    rec = dict(_trusted_record(path, "size+etag"), etag=None)
    assert _present_and_correct(path, _entry(etag=None), rec, "etag") == "sha256"
    assert hashed == [path]


def test_a_record_that_claims_a_check_it_did_not_make_is_not_trusted(path, hashed):
    # checked says size+etag, yet a sha256 is present: the sha256 level needs checked == "sha256".
    rec = dict(_trusted_record(path, "size+etag"), sha256=SHA)
    assert _present_and_correct(path, _entry(), rec, "sha256") == "sha256"
    assert hashed == [path]
    rec = dict(_trusted_record(path), etag='"e1"')
    # ... and the ETag level needs checked == "size+etag" (a sha256 record is trusted as sha256, above).
    assert _present_and_correct(path, _entry(sha256=OTHER_SHA), dict(rec, sha256=SHA), "etag") is None
    assert hashed == [path, path]
