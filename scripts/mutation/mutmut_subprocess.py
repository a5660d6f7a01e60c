"""pytest plugin for mutation runs (scripts/mutation.sh): let mutmut see code run in child processes.

mutmut switches mutants with the MUTANT_UNDER_TEST environment variable and maps tests to functions
from the hits its trampolines record in the test process. The model-cache and hf-server tests run the
real program as a subprocess with a clean environment (so no ambient credential leaks in): without
this plugin such a child always runs the original code, and its hits are lost, so its mutants would
read "no tests". The plugin hands the child the mutant's name and a file to append its hits to
(sitecustomize.py next to this file writes it at exit), and adds those hits to the test's own.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

HITS_FILE = "MUTMUT_HITS_FILE"
_real_popen_init = subprocess.Popen.__init__


def _popen_init(self, *args, **kwargs):
    env = kwargs.get("env")
    if env is not None and "MUTANT_UNDER_TEST" in os.environ:
        kwargs["env"] = {**env, "MUTANT_UNDER_TEST": os.environ["MUTANT_UNDER_TEST"],
                         HITS_FILE: os.environ.get(HITS_FILE, ""),
                         "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    _real_popen_init(self, *args, **kwargs)


subprocess.Popen.__init__ = _popen_init  # type: ignore[method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    fd, path = tempfile.mkstemp(prefix="mutmut-hits-")
    os.close(fd)
    os.environ[HITS_FILE] = path


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # Runs before mutmut's own teardown hook, which files the hits recorded so far under this test.
    path = os.environ.pop(HITS_FILE, "")
    if not path:
        return
    hits = Path(path).read_text().split()
    Path(path).unlink(missing_ok=True)
    if hits and os.environ.get("MUTANT_UNDER_TEST") == "stats":
        from mutmut.state import state

        state()._stats.update(hits)
