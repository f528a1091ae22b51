"""Framework checkpoint classes as step outputs (issue 11, item 3): compile checks them as
subtypes of ``af.Checkpoint``; the store persists and loads them as their class; a step
returning another class than its annotation names fails with a message saying so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import airflowdsl as af
from airflowdsl.air import Checkpoint
from airflowdsl.errors import CompileError, StepFailed
from airflowdsl.runtime.outputcheck import checkpoint_checks, wrong_output
from airflowdsl.runtime.store import ArtifactStore
from airflowdsl.train.torch_checkpoint import TorchCheckpoint
from airflowdsl.train.xgboost import XGBoostCheckpoint
from tests.unit.inproc import run_inproc


def _booster(rounds: int) -> XGBoostCheckpoint:
    import xgboost

    x = np.arange(40.0).reshape(20, 2)
    dtrain = xgboost.DMatrix(x, label=(x[:, 0] > 20).astype(float))
    return XGBoostCheckpoint.from_model(xgboost.train({"max_depth": 1}, dtrain, rounds))


@af.tune
def best_booster(rounds: int = 2) -> XGBoostCheckpoint:
    return _booster(rounds)


@af.tune
def plain_checkpoint(rounds: int = 2) -> XGBoostCheckpoint:
    return Checkpoint.from_checkpoint(_booster(rounds))  # e.g. a Tuner's result.checkpoint


@af.tune
def maybe_booster(rounds: int = 0) -> XGBoostCheckpoint | None:
    return _booster(rounds) if rounds else None


@af.predict
def rounds_of(ckpt: af.Checkpoint) -> dict[str, float]:
    if not isinstance(ckpt, XGBoostCheckpoint):  # loaded from the store as its class
        raise TypeError(type(ckpt).__name__)  # (no assert: pytest rewrites a step's code)
    return {"rounds": float(ckpt.get_model().num_boosted_rounds())}


@af.predict
def torch_only(ckpt: TorchCheckpoint) -> int:
    return 0


@af.pipeline
def tuned(rounds: int = 2):
    return rounds_of(best_booster(rounds=rounds))


@af.pipeline
def mistyped():
    return torch_only(best_booster())


@af.pipeline
def plain():
    return rounds_of(plain_checkpoint())


@af.pipeline
def optional():
    return maybe_booster()


def test_compile_accepts_a_subtype_and_refuses_an_unrelated_checkpoint_class() -> None:
    assert tuned.compile() is not None
    with pytest.raises(CompileError) as err:
        mistyped.compile()
    msg = str(err.value)
    for part in ("torch_only", "'ckpt'", "TorchCheckpoint", "XGBoostCheckpoint",
                 "best_booster"):
        assert part in msg


def test_the_store_persists_and_serves_framework_checkpoints_as_their_class(
        tmp_path: Path) -> None:
    st = ArtifactStore(str(tmp_path))
    assert run_inproc(tuned.compile(), st) == {"best_booster": "computed",
                                               "rounds_of": "computed"}
    assert run_inproc(tuned.compile(), st) == {"best_booster": "cached", "rounds_of": "cached"}
    entry = next(m for m in st.entries() if m.get("step") == "best_booster")
    loaded = st.load(entry, 0)
    assert type(loaded) is XGBoostCheckpoint and loaded.get_model().num_boosted_rounds() == 2
    assert run_inproc(tuned.compile(rounds=3), st)["rounds_of"] == "computed"


def test_a_step_returning_another_checkpoint_class_fails_naming_both(tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as err:
        run_inproc(plain.compile(), ArtifactStore(str(tmp_path)))
    msg = str(err.value)
    assert "plain_checkpoint" in msg and "returned a Checkpoint" in msg
    assert "XGBoostCheckpoint.from_checkpoint(ckpt)" in msg
    checks = checkpoint_checks((XGBoostCheckpoint,))
    assert "returned a TorchCheckpoint" in str(wrong_output(checks, (TorchCheckpoint("."),)))
    assert "return a XGBoostCheckpoint" in str(wrong_output(checks, ({"not": "one"},)))
    assert run_inproc(optional.compile(), ArtifactStore(str(tmp_path))) == {
        "maybe_booster": "computed"}  # None is what ``X | None`` allows
