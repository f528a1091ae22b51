"""Reports reach ``RunConfig.callbacks`` (the Tune trial forwards through one), not a global."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from airflowdsl.air import Checkpoint, ReportCallback, RunConfig, ScalingConfig, session
from airflowdsl.air.callbacks import stopped_externally
from airflowdsl.train import DataParallelTrainer


def _loop() -> None:
    for step in range(3):
        ckpt = Checkpoint.from_dict({"step": step}) if step == 2 else None
        session.report({"loss": 1.0 / (step + 1)}, checkpoint=ckpt)


class _Collect(ReportCallback):
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, Any], Checkpoint | None]] = []

    def on_report(self, metrics: dict[str, Any], checkpoint: Checkpoint | None) -> None:
        self.seen.append((metrics, checkpoint))


def _trainer(tmp_path: Path, callbacks: list[Any]) -> DataParallelTrainer:
    return DataParallelTrainer(_loop, scaling_config=ScalingConfig(num_workers=0),
                               run_config=RunConfig(storage_path=str(tmp_path), name="r",
                                                    callbacks=callbacks))


def test_a_local_fit_calls_report_callbacks_in_order(tmp_path: Path) -> None:
    cb = _Collect()
    result = _trainer(tmp_path, [cb]).fit()
    assert [m["loss"] for m, _ in cb.seen] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert [m["training_iteration"] for m, _ in cb.seen] == [1, 2, 3]
    assert cb.seen[0][1] is None and cb.seen[2][1] is not None
    assert cb.seen[2][1].to_dict()["step"] == 2
    assert result.metrics["training_iteration"] == 3


def test_the_fit_module_has_no_report_hook_global() -> None:
    import airflowdsl.train.fit as fit

    assert not hasattr(fit, "REPORT_HOOKS")


def test_stopped_externally_reads_the_callbacks() -> None:
    class Stops(ReportCallback):
        stops_training = True

    assert not stopped_externally(None)
    assert not stopped_externally([_Collect(), object()])
    assert stopped_externally([_Collect(), Stops()])


def test_a_tune_trainer_trial_forwards_every_report(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import tune as ray_tune

    tune = importlib.import_module("airflowdsl.tune")  # ``af.tune`` is the decorator

    sent: list[tuple[dict[str, Any], Checkpoint | None]] = []
    monkeypatch.setattr(tune, "_report_to_tune", lambda m, c: sent.append((m, c)))
    monkeypatch.setattr(ray_tune, "get_checkpoint", lambda: None)
    user_cb = _Collect()
    tune._trainer_trial({}, _trainer(tmp_path, [user_cb]))
    assert [m["training_iteration"] for m, _ in sent] == [1, 2, 3]
    assert len(user_cb.seen) == 3  # the trainer's own callbacks still run
    assert sent[2][1] is not None


def test_rl_trainer_without_a_stop_rule_is_refused_outside_tune() -> None:
    from airflowdsl.train.rl import RLTrainer

    with pytest.raises(ValueError, match="needs a stop rule"):
        RLTrainer(algorithm="PPO", config={}).fit()
