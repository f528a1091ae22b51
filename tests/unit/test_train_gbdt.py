"""GBDT trainer pieces without Ray: checkpoint cadence, resume plan, metric combination,
checkpoints and predictors, constructor checks, the missing-framework error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflowdsl.air import Checkpoint, session
from airflowdsl.train import _gbdt
from airflowdsl.train._gbdt import RoundPlan, RoundReporter, load_splits, plan_rounds

xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")

from airflowdsl.train.lightgbm import (  # noqa: E402
    LightGBMCheckpoint,
    LightGBMPredictor,
    LightGBMTrainer,
    combine_metric,
)
from airflowdsl.train.xgboost import XGBoostCheckpoint, XGBoostPredictor, XGBoostTrainer  # noqa: E402


class _Shard:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def iter_batches(self, **_kw: Any) -> Iterator[pd.DataFrame]:
        yield self.frame.iloc[: len(self.frame) // 2]
        yield self.frame.iloc[len(self.frame) // 2:]


@pytest.fixture()
def fake_session(tmp_path: Path) -> Iterator[tuple[session.WorkerSession, list[dict[str, Any]]]]:
    records: list[dict[str, Any]] = []
    sess = session.WorkerSession(world_rank=0, world_size=1, local_rank=0, local_world_size=1,
                                 node_rank=0, run_dir=str(tmp_path), sink=records.append)
    session.install_session(sess)
    yield sess, records
    session.install_session(None)


def _config(frequency: int, at_end: bool = True, **kw: Any) -> dict[str, Any]:
    return {"checkpoint_frequency": frequency, "checkpoint_at_end": at_end,
            "num_boost_round": 7, "resume_from": None, **kw}


def _run(reporter: RoundReporter, rounds: int) -> None:
    for r in range(rounds):
        reporter.round({"train-loss": 1.0 / (r + 1)}, r + 1)
    reporter.finish(rounds)


@pytest.mark.parametrize(("frequency", "at_end", "rounds", "expected"), [
    (3, True, 7, [3, 6, 7]),
    (0, True, 7, [7]),
    (0, False, 7, []),
    (2, True, 4, [2, 4]),   # the end is also a cadence round: one checkpoint, not two
    (3, True, 4, [3, 4]),   # early stopping after 4 of 7 rounds still checkpoints the end
])
def test_checkpoint_cadence(fake_session: Any, frequency: int, at_end: bool, rounds: int,
                            expected: list[int]) -> None:
    _sess, records = fake_session
    reporter = RoundReporter(_config(frequency, at_end), RoundPlan(None, 0, 7),
                             lambda model: Checkpoint.from_dict({"model": model}))
    _run(reporter, rounds)
    assert [r["training_iteration"] for r in records] == list(range(1, rounds + 1))
    assert [r["metrics"]["train-loss"] for r in records] == [1.0 / (i + 1) for i in range(rounds)]
    with_ckpt = [r for r in records if r["checkpoint_path"]]
    assert [r["training_iteration"] for r in with_ckpt] == expected
    # each checkpoint holds the model of its own round
    assert [Checkpoint(r["checkpoint_path"]).to_dict()["model"] for r in with_ckpt] == expected


def test_cadence_counts_model_rounds_after_resume(fake_session: Any) -> None:
    _sess, records = fake_session
    reporter = RoundReporter(_config(5), RoundPlan("x", 3, 4), lambda m: Checkpoint.from_dict({}))
    _run(reporter, 4)  # model rounds 4..7: round 5 is on the cadence, 7 is the end
    assert [r["training_iteration"] for r in records if r["checkpoint_path"]] == [2, 4]


def test_round_plan(fake_session: Any) -> None:
    sess, _ = fake_session
    rounds = {"/user": 20, "/restart": 23}
    count = rounds.__getitem__
    assert plan_rounds(_config(0), count) == RoundPlan(None, 0, 7)
    sess.checkpoint = Checkpoint("/user")  # resume_from_checkpoint: 7 more rounds
    assert plan_rounds(_config(0, resume_from="/user"), count) == RoundPlan("/user", 20, 7)
    sess.checkpoint = Checkpoint("/restart")  # a restart after 3 of them: the other 4
    assert plan_rounds(_config(0, resume_from="/user"), count) == RoundPlan("/restart", 23, 4)
    assert plan_rounds(_config(0), count) == RoundPlan("/restart", 23, 0)  # reused run name


def test_combine_metric_over_shards() -> None:
    assert combine_metric("binary_logloss", [(0.2, 100), (0.4, 300)]) == pytest.approx(0.35)
    assert combine_metric("multi_error@2", [(0.0, 1), (1.0, 1)]) == pytest.approx(0.5)
    assert combine_metric("rmse", [(1.0, 1), (3.0, 1)]) == pytest.approx(np.sqrt(5.0))
    assert combine_metric("gamma_deviance", [(1.0, 5), (2.0, 1)]) == pytest.approx(3.0)
    assert combine_metric("auc", [(0.9, 10), (0.7, 30)]) == pytest.approx(0.8)


def test_load_splits_puts_train_first_and_pulls_named_columns(fake_session: Any) -> None:
    sess, _ = fake_session
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "w": [1, 2, 3, 4], "y": [0, 1, 0, 1]})
    sess.dataset_shards = {"valid": _Shard(frame), "train": _Shard(frame)}
    splits = load_splits("y", {"train": {"weight": "w", "missing": 0.0}})
    assert list(splits) == ["train", "valid"]
    assert list(splits["train"].features.columns) == ["a"]
    assert splits["train"].kwargs["missing"] == 0.0
    np.testing.assert_array_equal(splits["train"].kwargs["weight"], [1, 2, 3, 4])
    assert list(splits["valid"].features.columns) == ["a", "w"]
    with pytest.raises(KeyError, match="label_column 'label' is not a column of dataset 'train'"):
        load_splits("label", {})


def test_pyarrow_backed_columns_become_numpy(fake_session: Any) -> None:
    """Ray Data reads Parquet into ArrowDtype columns, which LightGBM rejects."""
    sess, _ = fake_session
    frame = pd.DataFrame({"a": pd.array([1.0, None], dtype="double[pyarrow]"),
                          "n": pd.array([1, None], dtype="int64[pyarrow]"),
                          "y": pd.array([0, 1], dtype="int64[pyarrow]")})
    sess.dataset_shards = {"train": _Shard(frame)}
    split = load_splits("y", {})["train"]
    assert list(split.features.dtypes) == [np.float64, np.float64]
    assert split.label.dtype == np.int64


def _data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=["f one", "f two", "f three"])
    return x, (x["f one"] + 0.1 * rng.normal(size=200) > 0).astype(int)


def test_xgboost_checkpoint_and_predictor_round_trip() -> None:
    x, y = _data()
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=y), 5)
    ckpt = XGBoostCheckpoint.from_model(booster, feature_columns=list(x.columns))
    assert ckpt.get_model().num_boosted_rounds() == 5
    assert ckpt.feature_columns() == list(x.columns)
    out = XGBoostPredictor.from_checkpoint(Checkpoint(ckpt.path)).predict(x.assign(label=y))
    np.testing.assert_allclose(out["predictions"], booster.predict(xgboost.DMatrix(x)), rtol=1e-6)
    softprob = xgboost.train({"objective": "multi:softprob", "num_class": 3},
                             xgboost.DMatrix(x, label=y + (x["f two"] > 1)), 2)
    multi = XGBoostPredictor(softprob).predict(x)
    assert list(multi.columns) == ["predictions_0", "predictions_1", "predictions_2"]


def test_lightgbm_checkpoint_keeps_column_names_lightgbm_rewrites() -> None:
    x, y = _data()
    booster = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(x, label=y), 5)
    assert booster.feature_name() == ["f_one", "f_two", "f_three"]  # why we keep our own list
    ckpt = LightGBMCheckpoint.from_model(booster, feature_columns=list(x.columns))
    assert ckpt.get_model().current_iteration() == 5
    out = LightGBMPredictor.from_checkpoint(ckpt).predict(x.assign(label=y).astype("double[pyarrow]"))
    np.testing.assert_allclose(out["predictions"], booster.predict(x), rtol=1e-6)


def test_get_model_on_a_foreign_checkpoint_says_what_is_missing() -> None:
    with pytest.raises(FileNotFoundError, match="holds no model.ubj"):
        XGBoostCheckpoint.from_checkpoint(Checkpoint.from_dict({"a": 1})).get_model()


@pytest.mark.parametrize("cls", [XGBoostTrainer, LightGBMTrainer])
def test_constructor_checks(cls: type) -> None:
    with pytest.raises(ValueError, match="needs datasets=\\{'train'"):
        cls(datasets={"valid": object()}, label_column="y")
    with pytest.raises(TypeError, match="label_column"):
        cls(datasets={"train": object()}, label_column=None)
    with pytest.raises(ValueError, match="unknown datasets \\['test'\\]"):
        cls(datasets={"train": object()}, label_column="y", dmatrix_params={"test": {}})
    trainer = cls(datasets={"train": object()}, label_column="y", params={"max_depth": 2})
    tuned = trainer.with_overrides({"params": {"eta": 0.1}, "num_boost_round": 3})
    assert tuned.train_loop_config["params"] == {"max_depth": 2, "eta": 0.1}
    assert tuned.train_loop_config["num_boost_round"] == 3


def test_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _gbdt.importlib.import_module

    def fake(name: str) -> Any:
        if name == "lightgbm":
            raise ModuleNotFoundError("No module named 'lightgbm'")
        return real(name)

    monkeypatch.setattr(_gbdt.importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"pip install 'airflowdsl\[lightgbm\]'"):
        LightGBMTrainer(datasets={"train": object()}, label_column="y")


@pytest.mark.parametrize("module", ["xgboost", "lightgbm"])
def test_import_in_worker_skips_scikit_learn_but_leaves_it_importable(module: str) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflowdsl.train._gbdt import import_in_worker\n"
        f"fw = import_in_worker({module!r})\n"
        "assert 'sklearn' not in sys.modules and 'scipy.stats' not in sys.modules\n"
        "import numpy as np, sklearn.metrics\n"
        "x, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 2\n"
        f"if {module!r} == 'xgboost': fw.train({{}}, fw.DMatrix(x, label=y), 2)\n"
        "else: fw.train({'verbose': -1}, fw.Dataset(x, label=y), 2)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def test_lightgbm_rank0_stops_waiting_for_a_rank_that_never_reports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from airflowdsl.errors import TrainingFailedError
    from airflowdsl.train import lightgbm as lgb_mod

    monkeypatch.setattr(lgb_mod, "GATHER_TIMEOUT_S", 0.2)
    lgb_mod._deliver(7, 0, {"train-l2": (1.0, 10)})
    with pytest.raises(TrainingFailedError, match=r"round 7: ranks \[1\] sent no train metrics"):
        lgb_mod._gather(7, 2)
    lgb_mod._deliver(7, 1, {"train-l2": (3.0, 10)})
    assert lgb_mod._gather(7, 2) == {"train-l2": pytest.approx(2.0)}
