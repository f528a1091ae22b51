"""The warm head's spare workers: how many, the opt-out, the preload hook's name, and that
the preload covers what Ray imports for a job's serialization context."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

from airflowdsl.runtime import spareworkers


def test_spare_workers_default_env_and_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOWDSL_RAY_SPARE_WORKERS", raising=False)
    assert spareworkers.spare_workers(1) == 1
    assert spareworkers.spare_workers(8) == 2
    monkeypatch.setenv("AIRFLOWDSL_RAY_SPARE_WORKERS", "3")
    assert spareworkers.spare_workers(1) == 3
    monkeypatch.setenv("AIRFLOWDSL_RAY_SPARE_WORKERS", "0")
    keeper = spareworkers.Keeper("127.0.0.1:1", spareworkers.spare_workers(2), 60)
    assert keeper.worker_env({}) == {}  # off: no preload hook either
    keeper.tick()  # and nothing is asked of the raylet
    assert keeper.stub is None
    monkeypatch.setenv("AIRFLOWDSL_RAY_SPARE_WORKERS", "two")
    with pytest.raises(ValueError, match="AIRFLOWDSL_RAY_SPARE_WORKERS='two'"):
        spareworkers.spare_workers(2)


def test_preload_hook_names_an_importable_function() -> None:
    env = spareworkers.Keeper("127.0.0.1:1", 2, 60).worker_env({})
    module, _, name = env[spareworkers.SETUP_HOOK_ENV].rpartition(".")
    hook = getattr(importlib.import_module(module), name)
    hook()  # what Ray's worker runs at start: never raises
    # a hook the user set for the head is kept
    assert spareworkers.Keeper("127.0.0.1:1", 2, 60).worker_env(
        {spareworkers.SETUP_HOOK_ENV: "mine.hook"}) == {}


def test_preload_serializers_imports_what_a_jobs_serialization_context_does() -> None:
    """In a fresh interpreter: after the preload, making Ray's serialization add-ons for a
    job imports nothing more, and the preload itself registered no serializer."""
    code = textwrap.dedent('''
        import sys
        import numpy  # registers its own reducers with copyreg on import
        import ray.cloudpickle as cp
        from ray.util import serialization_addons
        from airflowdsl.runtime import spareworkers

        before = dict(cp.CloudPickler.dispatch)
        spareworkers.preload_serializers()
        assert dict(cp.CloudPickler.dispatch) == before, "the preload registered something"
        loaded = set(sys.modules)

        class Recorder:
            seen = []
            def _register_cloudpickle_serializer(self, cls, **kw): self.seen.append(cls)
            def _register_cloudpickle_reducer(self, cls, reducer): self.seen.append(cls)

        rec = Recorder()
        serialization_addons.apply(rec)
        assert rec.seen, "Ray registered nothing: the test no longer checks anything"
        new = sorted(set(sys.modules) - loaded)
        assert not new, new
        print("ok", len(rec.seen))
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok")


def test_workers_asked_for_count_until_they_register() -> None:
    """Back-to-back runs each lease a spare: the keeper asks for the missing ones at once
    and does not ask again for those still starting (it waited a fixed 5 s after asking
    before, so the fourth of five runs 1.4 s apart found no spare and waited ~2 s)."""
    keeper = spareworkers.Keeper("127.0.0.1:1", 2, 60)
    assert keeper.missing(0.0, {1, 2}, {1, 2}) == 0
    assert keeper.missing(0.5, {1, 2}, {2}) == 1  # a run leased worker 1
    keeper.asked.append(0.5)  # tick() records each worker it asked for
    assert keeper.missing(1.0, {1, 2}, {2}) == 0  # on its way: not asked again
    assert keeper.missing(1.5, {1, 2}, set()) == 1  # another run leased worker 2
    keeper.asked.append(1.5)
    assert keeper.missing(2.0, {1, 2, 3}, {3}) == 0  # 3 registered, the 2nd still starting
    # a worker leased the moment it registered is never seen idle: it still arrived
    assert keeper.missing(2.5, {1, 2, 3, 4}, set()) == 2
    assert keeper.asked == []
    keeper.asked += [3.0, 3.0]
    assert keeper.missing(3.0 + spareworkers.STARTING_S - 0.1, {1, 2, 3, 4}, set()) == 0
    # never registered (died starting): asked for again
    assert keeper.missing(3.0 + spareworkers.STARTING_S, {1, 2, 3, 4}, set()) == 2
