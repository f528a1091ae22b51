"""Preprocessors, search spaces in configs, unknown trainer keywords, trial rows (no Ray)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from airflowdsl.air import Checkpoint, ScalingConfig
from airflowdsl.air.config import CheckpointConfig
from airflowdsl.air.search import contains_search_space, is_search_space
from airflowdsl.train import preprocess
from airflowdsl.train.sklearn import SklearnPredictor, SklearnTrainer
from airflowdsl.train.torch import TorchTrainer
from airflowdsl.train.trainer import DataParallelTrainer
from airflowdsl.train.xgboost import XGBoostTrainer


class AddOne:
    """A duck-typed preprocessor: fit counts calls, transform_batch adds 1 to ``x``."""

    def __init__(self, fitted: bool = False) -> None:
        self.fits = 0
        self.fitted = fitted

    def fit(self, ds: Any) -> AddOne:
        self.fits += 1
        self.fitted = True
        return self

    def fit_status(self) -> Any:
        return type("S", (), {"name": "FITTED" if self.fitted else "NOT_FITTED"})()

    def transform(self, ds: Any) -> Any:
        return ("transformed", ds)

    def transform_batch(self, df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(x=df["x"] + 1)


def _loop() -> None:
    return None


def test_unknown_trainer_keywords_fail_in_the_constructor_listing_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) preprocesor.*"
                                        r"preprocessor.*early_stopping_rounds"):
        XGBoostTrainer(datasets={"train": 1}, label_column="y", preprocesor=AddOne())
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'foo'.*dataset_config"):
        TorchTrainer(_loop, foo=1)
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match=r"sample_weigth.*LogisticRegression.fit arguments: "
                                        r"sample_weight"):
        SklearnTrainer(estimator=LogisticRegression(), datasets={"train": 1}, label_column="y",
                       sample_weigth=1)
    XGBoostTrainer(datasets={"train": 1}, label_column="y", early_stopping_rounds=3)
    with pytest.raises(TypeError, match="has no fit, transform, transform_batch"):
        DataParallelTrainer(_loop, preprocessor=3)


def test_prepare_fits_only_when_not_fitted_and_applies_to_every_dataset() -> None:
    fresh = AddOne()
    fitted, out = preprocess.prepare(fresh, {"train": "T", "valid": "V"})
    assert fitted is fresh and fresh.fits == 1
    assert out == {"train": ("transformed", "T"), "valid": ("transformed", "V")}
    already = AddOne(fitted=True)
    preprocess.prepare(already, {"train": "T"})
    assert already.fits == 0
    applied = preprocess.Applied(already)
    assert preprocess.prepare(applied, {"train": "T"}) == (already, {"train": "T"})
    with pytest.raises(ValueError, match="no datasets\\['train'\\]"):
        preprocess.prepare(AddOne(), {"valid": "V"})


def test_checkpoint_stores_the_preprocessor_and_predictors_apply_it(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    from airflowdsl.train.sklearn import SklearnCheckpoint

    x = pd.DataFrame({"x": np.arange(10.0)})
    model = LinearRegression().fit(x, 2 * x["x"])
    ckpt = SklearnCheckpoint.from_estimator(model)
    assert ckpt.get_preprocessor() is None
    ckpt.set_preprocessor(AddOne(fitted=True))
    restored = Checkpoint(ckpt.path).get_preprocessor()
    assert isinstance(restored, AddOne)
    predictor = SklearnPredictor.from_checkpoint(Checkpoint(ckpt.path))
    assert isinstance(predictor.get_preprocessor(), AddOne)
    out = predictor.predict(pd.DataFrame({"x": [0.0, 1.0]}))
    np.testing.assert_allclose(out["predictions"], [2.0, 4.0])  # (x + 1) * 2
    ckpt.set_preprocessor(None)
    plain = SklearnPredictor.from_checkpoint(ckpt)
    assert plain.get_preprocessor() is None
    arr = SklearnPredictor(LinearRegression().fit(np.arange(4.0).reshape(-1, 1),
                                                  np.arange(4.0))).predict(np.ones((3, 1)))
    assert isinstance(arr, np.ndarray) and arr.shape == (3,)  # an array in, an array out


def test_configs_accept_search_spaces_and_validate_the_resolved_value() -> None:
    from ray import tune

    space = ScalingConfig(num_workers=tune.grid_search([1, 2]))
    assert is_search_space(space.num_workers) and contains_search_space(space)
    assert dataclasses.replace(space, num_workers=2).num_workers == 2
    with pytest.raises(ValidationError):
        dataclasses.replace(space, num_workers=-1)
    with pytest.raises(ValueError, match="is a Tune search space.*Tuner"):
        space.worker_resources(cluster_cpus=2)
    nested = ScalingConfig(resources_per_worker={"CPU": tune.choice([0.5, 1.0])})
    with pytest.raises(ValidationError):
        dataclasses.replace(nested, resources_per_worker={"CPU": -1.0})
    assert is_search_space(CheckpointConfig(num_to_keep=tune.randint(1, 3)).num_to_keep)
    with pytest.raises(ValidationError):
        ScalingConfig(num_workers=-1)


def test_trainer_overrides_rebuild_a_config_from_resolved_fields() -> None:
    trainer = DataParallelTrainer(_loop, scaling_config=ScalingConfig(num_workers=1,
                                                                      use_gpu=False))
    trial = trainer.with_overrides({"scaling_config": {"num_workers": 2}})
    assert trial.scaling_config == ScalingConfig(num_workers=2)


def test_batch_predictor_pool_scales_to_the_cluster_leaving_a_cpu_free() -> None:
    from airflowdsl.errors import ResourceError
    from airflowdsl.train.batch_predictor import pool_size

    def size(cpus: float, gpus: float = 0, **kw: Any) -> tuple[float, int, int]:
        opts = {"num_cpus": None, "num_gpus": 0, "min_workers": 1, "max_workers": None, **kw}
        return pool_size({"CPU": cpus, "GPU": gpus}, **opts)

    assert size(2) == (0.5, 1, 2)  # 2 x 0.5 CPU, one CPU stays free
    assert size(1) == (0.5, 1, 1)
    assert size(16) == (1.0, 1, 15)
    assert size(16, max_workers=4) == (1.0, 1, 4)
    assert size(16, min_workers=3) == (1.0, 3, 15)
    assert size(16, 2, num_gpus=1) == (1.0, 1, 2)  # capped by the GPUs
    with pytest.raises(ResourceError, match="GPU"):
        size(16, 0, num_gpus=1)
    with pytest.raises(ResourceError, match="CPU"):
        size(2, num_cpus=4)


def test_tuner_refuses_a_preprocessor_grid_value_that_is_not_one_before_any_trial() -> None:
    from ray import tune

    from airflowdsl.tune import Tuner, grid_search

    trainer = DataParallelTrainer(_loop)
    with pytest.raises(TypeError, match=r"param_space\['preprocessor'\].*int has no fit"):
        Tuner(trainer, param_space={"preprocessor": grid_search([AddOne(), 42])})
    with pytest.raises(TypeError, match="str has no fit"):
        Tuner(trainer, param_space={"preprocessor": tune.choice([AddOne(), "scale"])})
    Tuner(trainer, param_space={"preprocessor": grid_search([AddOne(), None])})
