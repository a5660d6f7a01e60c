"""Child-process half of mutmut_subprocess.py: at exit, append this process's trampoline hits to the
file the test named, so mutmut maps the test to the functions the child ran. Active only while
mutmut collects its statistics (MUTANT_UNDER_TEST=stats); otherwise it does nothing."""

import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("MUTMUT_HITS_FILE"):
    import atexit

    def _dump_hits() -> None:
        try:
            from mutmut.state import state
        except ImportError:
            return
        hits = state()._stats
        if hits:
            with open(os.environ["MUTMUT_HITS_FILE"], "a") as f:
                f.write("\n".join(sorted(hits)) + "\n")

    atexit.register(_dump_hits)
