#!/usr/bin/env bash
# Mutation testing with mutmut (issue 20): does a deliberate one-line bug in the modules that hold the
# platform's guarantees make a test fail?  Slow (seconds per mutant), so not part of `make test`.
#
#   scripts/mutation.sh [TARGET [MUTANT-GLOB...]]
#
# TARGET is one of
#   components   components/config/{settings,reader}.py, components/{images,model_namespace,cluster}.py
#                against tests/config + tests/components (the [tool.mutmut] table of pyproject.toml)
#   model-cache  model_cache.{restore,lease,manifest} (and ensure) against tests/model_cache
#   hf-server    hf_server.app's Limiter (the request queue) against tests/hf_server, in a driver venv
#                (.venv-mut-hf: images/hf-server/requirements-test.txt + mutmut)
#   all          the three in turn (default)
# MUTANT-GLOB narrows the run, e.g. 'components.images.x_credential_like*' or 'model_cache.lease.*'
# (mutmut re-tests every mutant it names); `--survivors` re-tests only the last run's survivors.
#
# Each target runs in its own copy of the tree, out/mutation/<target>/ (ignored by git), so a run never
# writes mutants/ into the checkout and an edit made while it runs does not change what it measures.
# mutmut caches verdicts in that copy's mutants/: a rerun only tests mutants whose function changed.
# Results: out/mutation/<target>/mutants/mutmut-cicd-stats.json and `results.txt` next to it.
set -euo pipefail

# The whole script is one function, so bash has read all of it before it runs: editing this file
# during a (long) run cannot change what that run executes.
main() {
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET=${1:-all}
shift || true
# Without MUTANT-GLOBs: the functions that hold the guarantees (docs/testing.md), not whole files,
# which would take hours on a small machine.
if [ $# -eq 0 ]; then
  case "$TARGET" in
    components) set -- 'components.images.x_credential_like*' 'components.images.x_validate*' \
      'components.model_namespace.*' 'components.cluster.x_gpu_tolerations*' \
      'components.cluster.x__require_kubeconfig*' 'components.cluster.xǁGpuClusterǁ__init__*' \
      'components.config.settings.x__cluster*' \
      'components.config.settings.x__secret*' 'components.config.settings.x__unknown_keys*' ;;
    model-cache) set -- 'model_cache.restore.x__present_and_correct*' 'model_cache.restore.x__read_marker*' \
      'model_cache.restore.x__record*' 'model_cache.lease.xǁLeaseǁstale*' 'model_cache.lease.xǁLeaseǁ_takeover*' \
      'model_cache.lease.xǁLeaseǁrelease*' 'model_cache.lease.xǁLeaseǁtry_acquire*' \
      'model_cache.manifest.x_read_manifest*' 'model_cache.manifest.x_covers*' \
      'model_cache.manifest.x_write_manifest*' ;;
    hf-server) set -- 'hf_server.app.xǁLimiterǁ*' ;;
  esac
fi
JOBS=${MUTATION_JOBS:-2}

if [ "$TARGET" = all ]; then
  status=0
  for t in components model-cache hf-server; do bash "$0" "$t" "$@" || status=1; done
  exit $status
fi

[ -x .venv/bin/python ] || bash scripts/setup.sh --core
uv sync --frozen --quiet --group mutation

WORK=$ROOT/out/mutation/$TARGET
mkdir -p "$WORK"
# The tree as git sees it (tracked and new, unignored files), nothing else: no .venv, no out/.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -p -t "$WORK/" 2>/dev/null || true

PY=$ROOT/.venv/bin/python
case "$TARGET" in
  components) ;;
  model-cache)
    # mutmut names a mutant after its file's path below the source root, and its trampoline records hits
    # under the imported module's name: both must read model_cache.*, so the package sits at src/.
    rm -rf "$WORK/src" && mkdir -p "$WORK/src" && cp -rp images/model-cache/src/model_cache "$WORK/src/"
    # The tests import model_cache from the mutated copy, not the editable install, and so do the
    # `python -m model_cache` subprocesses they start (PYTHONPATH comes before the install's .pth).
    # scripts/mutation/ holds the plugin that hands the mutant to those subprocesses (see its docstring).
    export PYTHONPATH=$WORK/mutants/src:$ROOT/scripts/mutation
    # It must exist before mutmut starts (mutmut creates it later): Python caches "no such directory" for a
    # sys.path entry at its first import, and the in-process tests would then run the unmutated editable
    # install for the whole run (only the CLI subprocesses saw mutants; their hits alone were recorded).
    mkdir -p "$WORK/mutants/src"
    ;;
  hf-server)
    PY=$ROOT/.venv-mut-hf/bin/python
    if ! "$PY" -c 'import mutmut, torch, transformers, fastapi' 2>/dev/null; then
      # A driver venv: mutmut runs pytest in-process, so it needs torch beside it; .venv-hf is shared and
      # never modified. pip, not uv: as in scripts/setup.d/30-hf-server.sh (torch CPU wheel, find-links).
      python3 -m venv "$ROOT/.venv-mut-hf"
      "$ROOT/.venv-mut-hf/bin/pip" install --quiet --disable-pip-version-check \
        -r images/hf-server/requirements-test.txt mutmut==3.8.1 2>&1 \
        | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
    fi
    export PYTHONPATH=$WORK/mutants:$ROOT/scripts/mutation
    mkdir -p "$WORK/mutants"  # before mutmut starts, as for model-cache above
    # One OpenMP thread: mutmut runs its stats pass (real generations) in its own process and then forks
    # every mutant from it; GNU OpenMP (torch's CPU thread pool) is not fork-safe, so a child's first
    # parallel torch op waited forever for pool threads that only the parent had, and every mutant
    # "timed out" (reproduced with a bare fork after a matmul; docs/testing.md). With one thread there
    # is no pool to lose.
    export OMP_NUM_THREADS=1
    ;;
  *) echo "mutation: unknown target '$TARGET' (components, model-cache, hf-server, all)" >&2; exit 2 ;;
esac

# The target's [tool.mutmut] table: pyproject.toml's for components, overridden here for the others.
"$PY" - "$TARGET" "$WORK/pyproject.toml" <<'EOF'
import sys, tomllib, json
target, path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    base = tomllib.load(f)["tool"]["mutmut"]
overrides = {
    "components": {},
    "model-cache": {
        "source_paths": ["src/"],
        "only_mutate": ["src/model_cache/restore.py", "src/model_cache/lease.py", "src/model_cache/ensure.py",
                        "src/model_cache/manifest.py"],
        # The in-process lease and restore tests and the ensure/restore round trips; test_concurrency
        # (eight processes per test) and test_bad_input would make each surviving mutant cost minutes.
        "pytest_add_cli_args_test_selection": ["tests/model_cache/test_lease.py",
                                               "tests/model_cache/test_ensure_restore.py",
                                               "tests/model_cache/test_mutation_gaps.py",
                                               "tests/model_cache/test_manifest.py",
                                               "tests/model_cache/test_restore_trust.py"],
        "pytest_add_cli_args": base["pytest_add_cli_args"] + ["-p", "mutmut_subprocess"],
        # Most of model-cache runs in `python -m model_cache` subprocesses, which coverage does not see.
        "mutate_only_covered_lines": False,
    },
    "hf-server": {
        "source_paths": ["hf_server/"],
        "only_mutate": ["hf_server/app.py"],
        # The queue's own tests: test_limiter.py drives the Limiter directly (milliseconds), test_concurrency.py
        # through a live server (429s, queue depth, slots held by streams); the rest of tests/hf_server
        # loads models and starts server processes, minutes per mutant for code they do not check.
        "pytest_add_cli_args_test_selection": ["tests/hf_server/test_limiter.py", "tests/hf_server/test_concurrency.py"],
        # --confcutdir: tests/conftest.py imports the Pulumi program, which this venv does not have
        # (as scripts/test.d/60-hf-server.sh runs them).
        "pytest_add_cli_args": base["pytest_add_cli_args"] + ["-p", "mutmut_subprocess", "-m", "not gpu and not slow",
                                                              "--confcutdir=tests/hf_server"],
        "mutate_only_covered_lines": False,
    },
}[target]
conf = {**base, **overrides}
if target != "components":  # tests/conftest.py imports the Pulumi program's tools, and they components/
    conf["also_copy"] = base["also_copy"] + ["components/"]
if target == "hf-server":
    # tests/hf_server/conftest.py puts images/hf-server first on sys.path: without that copy there,
    # the tests import the mutated hf_server/ instead of an unmutated one.
    conf["also_copy"].remove("images/")
# Replace the [tool.mutmut] table of the copy's pyproject.toml by the target's (values as TOML literals).
# Also drop coverage's relative_files: mutmut's own coverage pass (mutate_only_covered_lines) matches
# files by absolute path, and with relative names it found no covered line, so no mutant at all.
lines, out, skip, section = open(path).read().splitlines(), [], False, ""
for line in lines:
    if line.startswith("["):
        section = line.strip()
        skip = section == "[tool.mutmut]"
    if section == "[tool.coverage.run]" and line.replace(" ", "").startswith("relative_files="):
        continue
    if not skip:
        out.append(line)
out.append("[tool.mutmut]")
out += [f"{k} = {json.dumps(v)}" for k, v in conf.items()]
open(path, "w").write("\n".join(out) + "\n")
EOF
if [ "$TARGET" = hf-server ]; then
  rm -rf "$WORK/hf_server" && cp -rp images/hf-server/hf_server "$WORK/"
fi

cd "$WORK"
MUTMUT=$(dirname "$PY")/mutmut
# mutmut exits non-zero when mutants survive; the score is the report, not the exit status.
if [ "${1:-}" = --survivors ]; then
  mapfile -t names < <("$MUTMUT" results 2>/dev/null | sed -n 's/^ *\(.*\): survived$/\1/p')
  [ ${#names[@]} -gt 0 ] || { echo "mutation: no survivors to re-test in $WORK"; exit 0; }
  set -- "${names[@]}"
fi
"$MUTMUT" run --max-children "$JOBS" "$@" || true
"$MUTMUT" results --all true > mutants/results.txt 2>&1 || true
"$MUTMUT" export-cicd-stats >/dev/null 2>&1 || true
"$PY" - "$TARGET" <<'EOF'
import json, sys, collections
from mutmut.stats import status_by_exit_code
from pathlib import Path
counts = collections.defaultdict(collections.Counter)
for meta in Path("mutants").rglob("*.py.meta"):
    data = json.loads(meta.read_text())
    module = str(meta.relative_to("mutants"))[: -len(".py.meta")].removeprefix("src/").replace("/", ".")
    for name, code in data.get("exit_code_by_key", {}).items():
        status = status_by_exit_code[code]
        counts[module][status] += 1
print(f"\nmutation score, target {sys.argv[1]} (killed / tested; 'no tests' = no test reaches the line):")
for module, c in sorted(counts.items()):
    tested = sum(v for k, v in c.items() if k not in ("not checked", "skipped"))
    killed = c["killed"] + c["timeout"]
    print(f"  {module:40} {killed:4}/{tested:<4} {100 * killed / max(tested, 1):5.1f}%  {dict(c)}")
EOF
}

main "$@"; exit $?
