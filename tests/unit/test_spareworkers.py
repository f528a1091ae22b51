"""The warm head's spare workers: how many, the opt-out, and the preload hook's name."""

from __future__ import annotations

import importlib

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
