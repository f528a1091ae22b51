"""A run's exit after leaving the warm head (``raycluster.skip_final_gc``): garbage that
exists then is still finalized, later atexit hooks still run, and what is still alive is
left to process exit instead of the teardown's collections."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_skip_final_gc_finalizes_garbage_and_keeps_later_hooks() -> None:
    code = textwrap.dedent('''
        import atexit, gc, sys
        from airflowdsl.runtime.raycluster import skip_final_gc

        class Noisy:
            def __init__(self, name): self.name, self.me = name, self  # a cycle
            def __del__(self): print("finalized", self.name, flush=True)

        atexit.register(lambda: print("later hook ran, frozen:", gc.get_freeze_count() > 0,
                                      flush=True))
        def first():
            dropped = Noisy("dropped")  # garbage by the time skip_final_gc collects
            del dropped
            skip_final_gc()
        atexit.register(first)  # runs first (atexit is last in, first out)
        kept = Noisy("kept")  # alive at exit: Python does not promise to finalize it
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "finalized dropped"
    assert lines[1] == "later hook ran, frozen: True"
