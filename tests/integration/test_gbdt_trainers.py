"""XGBoostTrainer / LightGBMTrainer on real Ray + the real frameworks: 2 workers, breast_cancer.

Four fits in all: one main fit per framework (quality, shards, metrics, checkpoint
cadence; module-scoped) and one resumed fit each (rounds added, predictors, BatchPredictor;
LightGBM's first attempt is made to hit a taken port, so it also covers the retry).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from gbdt_spy import ROW_ID, spy_trainer
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from airflowdsl.air import CheckpointConfig, Result, RunConfig, ScalingConfig
from airflowdsl.train.batch_predictor import BatchPredictor

xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")

from airflowdsl.train import lightgbm as af_lgb  # noqa: E402
from airflowdsl.train.lightgbm import (  # noqa: E402
    LightGBMCheckpoint,
    LightGBMPredictor,
    LightGBMTrainer,
)
from airflowdsl.train.xgboost import XGBoostCheckpoint, XGBoostPredictor, XGBoostTrainer  # noqa: E402

pytestmark = pytest.mark.integration

LABEL = "target"
ROUNDS = 20
XGB_PARAMS = {"objective": "binary:logistic", "eval_metric": ["logloss", "error"]}
LGB_PARAMS = {"objective": "binary", "metric": ["binary_logloss", "binary_error"],
              "learning_rate": 0.2}


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """426 training rows (even: 213 per worker) and 143 held-out rows."""
    df = load_breast_cancer(as_frame=True).frame
    train, valid = train_test_split(df, test_size=0.25, random_state=6, stratify=df[LABEL])
    assert len(train) % 2 == 0
    return train.reset_index(drop=True), valid.reset_index(drop=True)


def _accuracy(proba: Any, labels: pd.Series) -> float:
    return float(((np.asarray(proba) > 0.5).astype(int) == labels.to_numpy()).mean())


def _fit(trainer_cls: type, params: dict[str, Any], frames: tuple[pd.DataFrame, pd.DataFrame],
         tmp: Path, ids_dir: Path) -> Result:
    import ray.data

    train, valid = frames
    spy = spy_trainer(trainer_cls, str(ids_dir))
    return spy(
        datasets={"train": ray.data.from_pandas(train.assign(**{ROW_ID: train.index})),
                  "valid": ray.data.from_pandas(valid)},
        label_column=LABEL, params=params, num_boost_round=ROUNDS,
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name="main", storage_path=str(tmp), checkpoint_config=CheckpointConfig(
            checkpoint_frequency=5, num_to_keep=2)),
    ).fit()


@pytest.fixture(scope="module")
def xgb_fit(ray_session: None, frames: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Result, Path]:
    tmp = tmp_path_factory.mktemp("xgb")
    (tmp / "ids").mkdir()
    return _fit(XGBoostTrainer, XGB_PARAMS, frames, tmp, tmp / "ids"), tmp


@pytest.fixture(scope="module")
def lgb_fit(ray_session: None, frames: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Result, Path]:
    tmp = tmp_path_factory.mktemp("lgb")
    (tmp / "ids").mkdir()
    return _fit(LightGBMTrainer, LGB_PARAMS, frames, tmp, tmp / "ids"), tmp


CASES = {
    "xgboost": ("xgb_fit", XGBoostCheckpoint, XGBoostPredictor, ["logloss", "error"]),
    "lightgbm": ("lgb_fit", LightGBMCheckpoint, LightGBMPredictor, ["binary_logloss", "binary_error"]),
}


def _single_process_proba(framework: str, train: pd.DataFrame, valid: pd.DataFrame) -> Any:
    x, y = train.drop(columns=[LABEL]), train[LABEL]
    if framework == "xgboost":
        booster = xgboost.train(XGB_PARAMS, xgboost.DMatrix(x, label=y), ROUNDS)
        return booster.predict(xgboost.DMatrix(valid.drop(columns=[LABEL])))
    booster = lightgbm.train({**LGB_PARAMS, "verbose": -1}, lightgbm.Dataset(x, label=y), ROUNDS)
    return booster.predict(valid.drop(columns=[LABEL]))


@pytest.mark.parametrize("framework", list(CASES))
def test_distributed_model_is_accurate_and_as_good_as_one_process(
        framework: str, request: pytest.FixtureRequest, frames: Any) -> None:
    fixture, _ckpt_cls, predictor_cls, _metrics = CASES[framework]
    result, _ = request.getfixturevalue(fixture)
    train, valid = frames
    predictions = predictor_cls.from_checkpoint(result.checkpoint).predict(valid)
    accuracy = _accuracy(predictions["predictions"], valid[LABEL])
    single = _accuracy(_single_process_proba(framework, train, valid), valid[LABEL])
    assert accuracy >= 0.95
    assert abs(accuracy - single) <= 0.03


@pytest.mark.parametrize("framework", list(CASES))
def test_workers_train_on_disjoint_halves(framework: str, request: pytest.FixtureRequest,
                                          frames: Any) -> None:
    _, tmp = request.getfixturevalue(CASES[framework][0])
    ids = [json.loads((tmp / "ids" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [len(i) for i in ids] == [len(frames[0]) // 2] * 2
    assert not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == list(range(len(frames[0])))


@pytest.mark.parametrize("framework", list(CASES))
def test_metrics_per_round_cover_the_whole_training_set(
        framework: str, request: pytest.FixtureRequest, frames: Any) -> None:
    fixture, ckpt_cls, _predictor, metrics = CASES[framework]
    result, _ = request.getfixturevalue(fixture)
    df = result.metrics_dataframe
    expected = {f"{ds}-{m}" for ds in ("train", "valid") for m in metrics}
    assert expected <= set(df.columns)
    assert list(df["training_iteration"]) == list(range(1, ROUNDS + 1))
    # train-* is over both shards (xgboost allreduces; ours combines LightGBM's shards):
    # it equals the final model's loss on the full training table, as valid-* on valid
    model = ckpt_cls.from_checkpoint(result.checkpoint).get_model()
    train, valid = frames
    for name, frame in (("train", train), ("valid", valid)):
        x = frame.drop(columns=[LABEL])
        proba = model.predict(xgboost.DMatrix(x) if framework == "xgboost" else x)
        assert result.metrics[f"{name}-{metrics[0]}"] == pytest.approx(
            log_loss(frame[LABEL], proba), rel=1e-4)


@pytest.mark.parametrize("framework", list(CASES))
def test_checkpoint_every_5_rounds_keeps_the_last_2(framework: str,
                                                    request: pytest.FixtureRequest) -> None:
    result, tmp = request.getfixturevalue(CASES[framework][0])
    kept = [m["training_iteration"] for _c, m in result.best_checkpoints]
    assert kept == [20, 15]
    assert sorted(p for p in os.listdir(tmp / "main") if p.startswith("checkpoint_")) == [
        "checkpoint_000015", "checkpoint_000020"]
    assert result.checkpoint.get_metadata()["training_iteration"] == ROUNDS
    assert result.checkpoint.get_metadata()["feature_columns"][0] == "mean radius"


def _busy_port() -> socket.socket:
    """A socket listening on a port, so LightGBM cannot bind it."""
    sock = socket.socket()
    sock.bind(("", 0))
    sock.listen()
    return sock


@pytest.fixture(scope="module")
def resumed(ray_session: None, frames: Any, xgb_fit: Any, lgb_fit: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Each main fit resumed for 5 more rounds; LightGBM's first attempt gets a taken port."""
    import ray.data

    train, _ = frames
    tmp = tmp_path_factory.mktemp("resume")
    out: dict[str, Any] = {"lgb_attempts": 0}
    busy = _busy_port()
    original = af_lgb._LightGBMBackend.on_start

    def on_start(self: Any, group: Any, scaling: Any) -> None:
        original(self, group, scaling)
        out["lgb_attempts"] += 1
        if out["lgb_attempts"] == 1:
            self.ports[0] = busy.getsockname()[1]

    af_lgb._LightGBMBackend.on_start = on_start  # type: ignore[method-assign]
    try:
        for key, cls, params, (main, _) in (("xgboost", XGBoostTrainer, XGB_PARAMS, xgb_fit),
                                            ("lightgbm", LightGBMTrainer, LGB_PARAMS, lgb_fit)):
            out[key] = cls(datasets={"train": ray.data.from_pandas(train)}, label_column=LABEL,
                           params=params, num_boost_round=5, resume_from_checkpoint=main.checkpoint,
                           scaling_config=ScalingConfig(num_workers=2),
                           run_config=RunConfig(storage_path=str(tmp))).fit()
    finally:
        af_lgb._LightGBMBackend.on_start = original  # type: ignore[method-assign]
        busy.close()
    yield out


def test_resume_from_checkpoint_adds_rounds(resumed: dict[str, Any]) -> None:
    xgb_model = XGBoostCheckpoint.from_checkpoint(resumed["xgboost"].checkpoint).get_model()
    lgb_model = LightGBMCheckpoint.from_checkpoint(resumed["lightgbm"].checkpoint).get_model()
    assert xgb_model.num_boosted_rounds() == ROUNDS + 5
    assert lgb_model.current_iteration() == ROUNDS + 5
    for key in ("xgboost", "lightgbm"):
        assert list(resumed[key].metrics_dataframe["training_iteration"]) == [1, 2, 3, 4, 5]


def test_lightgbm_retries_with_fresh_ports_when_its_port_is_taken(resumed: dict[str, Any]) -> None:
    assert resumed["lgb_attempts"] == 2
    assert resumed["lightgbm"].error is None


@pytest.mark.parametrize("framework", list(CASES))
def test_batch_predictor_on_a_dataset_matches_the_predictor(
        framework: str, resumed: dict[str, Any], frames: Any) -> None:
    import ray.data

    _fixture, _ckpt, predictor_cls, _metrics = CASES[framework]
    checkpoint = resumed[framework].checkpoint
    _, valid = frames
    scored = BatchPredictor.from_checkpoint(checkpoint, predictor_cls).predict(
        ray.data.from_pandas(valid), keep_columns=[LABEL]).to_pandas()
    direct = predictor_cls.from_checkpoint(checkpoint).predict(valid)
    assert len(scored) == len(valid)
    by_label = scored.sort_values("predictions").reset_index(drop=True)
    expected = pd.DataFrame({"predictions": direct["predictions"], LABEL: valid[LABEL]}).sort_values(
        "predictions").reset_index(drop=True)
    np.testing.assert_allclose(by_label["predictions"], expected["predictions"], rtol=1e-6)
    assert _accuracy(scored["predictions"], scored[LABEL]) >= 0.95
