"""One-line mutations of the guarantees that tests/model_cache/test_integrity.py guards.

    .venv/bin/python tests/model_cache/mutation_check.py [name-substring ...]

Each mutation is applied to the source, the test that guards it is run, and the file is restored
(git checkout); every line must print CAUGHT. Not collected by pytest (slow, edits the tree).
"""

import subprocess
import sys
from pathlib import Path

SRC = "images/model-cache/src/model_cache/"
M = [
 ("resume trusts metadata", "ensure.py", '    resp = client.get_object(Bucket=s.bucket, Key=key, IfMatch=h.get("ETag", "*"))',
  '    return {"path": f.path, "size": h.get("ContentLength"), "sha256": meta.get("sha256"), "etag": h.get("ETag", "")}\n    resp = client.get_object(Bucket=s.bucket, Key=key, IfMatch=h.get("ETag", "*"))', "test_resume_rehashes"),
 ("marker records unchecked sha256", "restore.py", '    return "sha256" if verify == "sha256" and e.get("sha256") else "size+etag"', '    return "sha256"', "test_an_etag_restore"),
 ("restore trusts a present file by size", "restore.py", '    untouched = bool(rec)', '    return "sha256"\n    untouched = bool(rec)', "test_restore_rehashes_a_same_size"),
 ("lease create without If-None-Match", "lease.py", 'etag = put_json(self.client, self.s.bucket, self.key, self._doc(), IfNoneMatch="*")\n        except ClientError as exc:\n            if error_code(exc) in ("NotImplemented"', 'etag = put_json(self.client, self.s.bucket, self.key, self._doc())\n        except ClientError as exc:\n            if error_code(exc) in ("NotImplemented"', "test_lease_is_created_with_a_conditional"),
 ("manifest before the uploads finished", "ensure.py", '        for future, entry in uploads:\n            lease.check()', '        write_manifest(client, s, layout, snap.sha, list(entries.values()))\n        for future, entry in uploads:\n            lease.check()', "test_manifest_is_written_after"),
 ("ref before manifest", "ensure.py", '                _fill(client, s, layout, snap, wanted, manifest, lease)\n                write_ref(client, s, layout, snap.sha)', '                write_ref(client, s, layout, snap.sha)\n                _fill(client, s, layout, snap, wanted, manifest, lease)', "test_manifest_is_written_after"),
]


def main(only: list[str]) -> int:
    survived = 0
    for name, module, old, new, test in M:
        if only and not any(o in name for o in only):
            continue
        path = Path(SRC) / module
        if subprocess.run(["git", "diff", "--quiet", "--", str(path)], check=False).returncode:
            raise SystemExit(f"{path} has uncommitted changes: commit them first (this script restores with git)")
        text = path.read_text()
        assert text.count(old) == 1, (name, text.count(old))
        path.write_text(text.replace(old, new))
        try:
            r = subprocess.run([".venv/bin/python", "-m", "pytest", "tests/model_cache/test_integrity.py", "-q", "-x",
                                "-k", test], capture_output=True, text=True, check=False)
            last = r.stdout.strip().splitlines()[-1]
            survived += r.returncode == 0
            print(f"{'CAUGHT' if r.returncode else 'SURVIVED'}: {name}: {last}", flush=True)
        finally:
            subprocess.run(["git", "checkout", "--", str(path)], check=True)
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
