"""What the XGBoost and LightGBM trainers share.

Driver side: ``GBDTTrainer`` (the AIR constructor, validation, the lazy framework
import). Worker side: shard -> pandas, the label split, the resume plan and
``RoundReporter`` (per-round ``"<dataset>-<metric>"`` reports with the checkpoint
cadence of ``CheckpointConfig``). Model side: ``GBDTCheckpoint`` / ``GBDTPredictor``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from airflowdsl.air import session
from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import CheckpointConfig, RunConfig, ScalingConfig
from airflowdsl.train.predictor import Predictor
from airflowdsl.train.trainer import DataParallelTrainer, accepted

#: DMatrix / lgb.Dataset arguments that may name a column of the dataset instead of holding data
COLUMN_ARGS = ("weight", "base_margin", "init_score", "group", "qid",
               "label_lower_bound", "label_upper_bound")

C = TypeVar("C", bound="GBDTCheckpoint")
P = TypeVar("P", bound="GBDTPredictor")


def require(module: str, extra: str) -> ModuleType:
    """Import a framework, or fail with one clear line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not installed; install it with "
                          f"pip install 'airflowdsl[{extra}]'") from exc


# --- driver side ------------------------------------------------------------------------
class GBDTTrainer(DataParallelTrainer):
    """One boosted model trained across the workers (the AIR GBDT constructor)."""

    _module: ClassVar[str]
    _extra: ClassVar[str]
    _train_loop: ClassVar[Any]  # staticmethod: the per-worker loop

    def __init__(
        self,
        *,
        datasets: dict[str, Any],
        label_column: str,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 10,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        dmatrix_params: dict[str, dict[str, Any]] | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
        preprocessor: Any = None,
        **train_kwargs: Any,
    ) -> None:
        framework = require(self._module, self._extra)
        name = type(self).__name__
        allowed = self.train_keywords(framework)
        unknown_kw = sorted(set(train_kwargs) - allowed)
        if unknown_kw:
            raise TypeError(f"{name} got unknown keyword argument(s) {', '.join(unknown_kw)}; "
                            f"it takes: {accepted(type(self))} and these "
                            f"{self._module}.train arguments: {', '.join(sorted(allowed))}")
        if not isinstance(datasets, dict) or "train" not in datasets:
            raise ValueError(f"{name} needs datasets={{'train': ds, ...}}; every other "
                             f"dataset is evaluated each round")
        if not isinstance(label_column, str) or not label_column:
            raise TypeError(f"{name}: label_column must be the name of the label column")
        if not isinstance(num_boost_round, int) or num_boost_round < 0:
            raise ValueError(f"{name}: num_boost_round must be an int >= 0, got {num_boost_round!r}")
        unknown = set(dmatrix_params or {}) - set(datasets)
        if unknown:
            raise ValueError(f"{name}: dmatrix_params names unknown datasets {sorted(unknown)}")
        run_config = run_config or RunConfig()
        ckpt_config = run_config.checkpoint_config or CheckpointConfig()
        super().__init__(
            type(self)._train_loop,
            train_loop_config={
                "label_column": label_column,
                "params": dict(params or {}),
                "num_boost_round": num_boost_round,
                "dmatrix_params": dict(dmatrix_params or {}),
                "train_kwargs": train_kwargs,
                "resume_from": resume_from_checkpoint.path if resume_from_checkpoint else None,
                "checkpoint_frequency": ckpt_config.checkpoint_frequency,
                "checkpoint_at_end": ckpt_config.checkpoint_at_end,
            },
            scaling_config=scaling_config,
            run_config=run_config,
            datasets=datasets,
            resume_from_checkpoint=resume_from_checkpoint,
            preprocessor=preprocessor,
        )
        self.label_column = label_column
        self.params = dict(params or {})
        self.num_boost_round = num_boost_round

    #: ``<framework>.train`` arguments the built-in loop sets itself
    _loop_sets: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def train_keywords(cls, framework: ModuleType) -> set[str]:
        """The ``<framework>.train`` keyword arguments a user may pass through."""
        params = inspect.signature(framework.train).parameters
        return {n for n, p in params.items()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - cls._loop_sets


# --- worker side: data ------------------------------------------------------------------
@dataclass
class Split:
    """One dataset on one worker: features, label and the framework's extra arguments."""

    features: pd.DataFrame
    label: pd.Series
    kwargs: dict[str, Any] = field(default_factory=dict)


def to_frame(iterator: Any) -> pd.DataFrame:
    """Everything a ``DataIterator`` yields, as one numpy-backed pandas frame."""
    parts = list(iterator.iter_batches(batch_format="pandas", batch_size=None))
    if not parts:
        return pd.DataFrame()
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    return numpy_backed(frame)


def numpy_backed(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric/bool ``pyarrow``-backed columns (what Ray Data gives for Parquet) as numpy
    columns: LightGBM rejects ArrowDtype outright. Nullable ints become float with NaN."""
    arrow = [c for c, t in frame.dtypes.items()
             if isinstance(t, pd.ArrowDtype) and t.numpy_dtype.kind in "fiub"]
    if not arrow:
        return frame
    out = frame.copy(deep=False)
    for col in arrow:
        out[col] = frame[col].to_numpy()
    return out


def load_splits(label_column: str, dmatrix_params: dict[str, dict[str, Any]]) -> dict[str, Split]:
    """This worker's ``train`` shard and every (whole) eval dataset, ``train`` first."""
    shards = session.get_session().dataset_shards  # type: ignore[union-attr]
    names = ["train"] + [n for n in shards if n != "train"]
    out: dict[str, Split] = {}
    for name in names:
        frame = to_frame(shards[name])
        if label_column not in frame.columns:
            raise KeyError(f"label_column {label_column!r} is not a column of dataset {name!r} "
                           f"(columns: {', '.join(map(str, frame.columns))})")
        kwargs = dict(dmatrix_params.get(name, {}))
        drop = [label_column]
        for key in COLUMN_ARGS:
            if isinstance(kwargs.get(key), str):
                drop.append(kwargs[key])
                kwargs[key] = frame[kwargs[key]].to_numpy()
        out[name] = Split(frame.drop(columns=drop), frame[label_column], kwargs)
    return out


def import_in_worker(module: str) -> ModuleType:
    """Import xgboost/lightgbm in a training worker without the scikit-learn they import.

    Both import scikit-learn (and with it SciPy) at import time, only for their sklearn
    wrapper classes (``XGBClassifier``, ``LGBMClassifier``), which the built-in loops never
    use; on the 2-CPU box that was 5-7 s of every fit. Where neither the framework nor
    scikit-learn is loaded yet, scikit-learn is hidden for the duration of the import;
    in that worker process the frameworks' sklearn wrappers are then unavailable, while
    ``import sklearn`` itself works as usual afterwards.
    """
    if module in sys.modules or "sklearn" in sys.modules:
        return importlib.import_module(module)
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` fail
    try:
        return importlib.import_module(module)
    finally:
        del sys.modules["sklearn"]


def default_threads(params: dict[str, Any], key: str, aliases: tuple[str, ...] = ()) -> dict[str, Any]:
    """``params`` with ``key`` set to the CPUs Ray gave this worker (at least 1) if unset."""
    if any(k in params for k in (key, *aliases)):
        return dict(params)
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return {**params, key: max(1, int(cpus))}


# --- worker side: rounds and reports ----------------------------------------------------
@dataclass
class RoundPlan:
    """Where boosting starts and how many rounds this fit still has to add."""

    init_path: str | None  # checkpoint directory to continue from
    done: int  # rounds in that model
    remaining: int


def plan_rounds(config: dict[str, Any], count_rounds: Callable[[str], int]) -> RoundPlan:
    """``num_boost_round`` more rounds than ``resume_from_checkpoint`` holds; after a restart
    (or a reused run name) only the rounds still missing from that target."""
    latest = session.get_checkpoint()
    start = config["resume_from"]
    base = count_rounds(start) if start else 0
    if latest is None:
        return RoundPlan(None, 0, config["num_boost_round"])
    done = base if latest.path == start else count_rounds(latest.path)
    return RoundPlan(latest.path, done, max(base + config["num_boost_round"] - done, 0))


class RoundReporter:
    """Reports each round as ``"<dataset>-<metric>"``; checkpoints every
    ``checkpoint_frequency`` model rounds and at the end.

    A round is reported when the next one arrives (or at ``finish``), so the end checkpoint
    is attached to the last round even when early stopping ends boosting before
    ``num_boost_round``. Every rank reports; only rank 0 builds checkpoints.
    """

    def __init__(self, config: dict[str, Any], plan: RoundPlan,
                 save: Callable[[Any], Checkpoint]) -> None:
        self.frequency = int(config["checkpoint_frequency"])
        self.at_end = bool(config["checkpoint_at_end"])
        self.save = save
        self.model_round = plan.done
        self.rank0 = session.get_world_rank() == 0
        self._pending: tuple[dict[str, float], Checkpoint | None] | None = None

    def round(self, metrics: dict[str, float], model: Any) -> None:
        self._flush()
        self.model_round += 1
        due = self.frequency > 0 and self.model_round % self.frequency == 0
        self._pending = (metrics, self.save(model) if due and self.rank0 else None)

    def finish(self, model: Any) -> None:
        if self._pending is not None and self._pending[1] is None and self.at_end and self.rank0:
            self._pending = (self._pending[0], self.save(model))
        self._flush()

    def _flush(self) -> None:
        if self._pending is not None:
            metrics, ckpt = self._pending
            self._pending = None
            session.report(metrics, checkpoint=ckpt)
            if ckpt is not None:  # report() persisted a copy into the run directory
                shutil.rmtree(ckpt.path, ignore_errors=True)


def metric_key(dataset: str, metric: str) -> str:
    return f"{dataset}-{metric}"


# --- model side -------------------------------------------------------------------------
class GBDTCheckpoint(Checkpoint):
    """A directory with one model file; metadata records the feature columns."""

    MODEL_FILE: ClassVar[str]

    @classmethod
    def from_model(cls: type[C], model: Any, *, feature_columns: list[str] | None = None) -> C:
        ckpt = cls.from_directory(session.scratch_dir())
        cls._save(model, os.path.join(ckpt.path, cls.MODEL_FILE))
        if feature_columns is not None:
            ckpt.set_metadata({"feature_columns": [str(c) for c in feature_columns]})
        return ckpt

    def get_model(self) -> Any:
        path = os.path.join(self.path, self.MODEL_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.path} holds no {self.MODEL_FILE}: not a "
                                    f"{type(self).__name__}")
        return self._load(path)

    def feature_columns(self) -> list[str] | None:
        cols = self.get_metadata().get("feature_columns")
        return list(cols) if cols else None

    @staticmethod
    def _save(model: Any, path: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _load(path: str) -> Any:
        raise NotImplementedError


class GBDTPredictor(Predictor):
    """Scores pandas batches with a booster; keeps only the model's feature columns."""

    checkpoint_cls: ClassVar[type[GBDTCheckpoint]]

    def __init__(self, model: Any, feature_columns: list[str] | None = None) -> None:
        self.model = model
        self.feature_columns = feature_columns

    @classmethod
    def from_checkpoint(cls: type[P], checkpoint: Checkpoint) -> P:
        ckpt = cls.checkpoint_cls.from_checkpoint(checkpoint)
        return cls(ckpt.get_model(), feature_columns=ckpt.feature_columns())

    def _predict_pandas(self, data: pd.DataFrame, feature_columns: list[str] | None = None,
                        **predict_kwargs: Any) -> pd.DataFrame:
        """``feature_columns``: the columns the booster sees (default: those it was
        trained on, when the data has them); ``**predict_kwargs``: passed to the
        booster's ``predict`` (checked against its signature)."""
        cols = feature_columns or self.feature_columns
        use = cols and (feature_columns or set(cols) <= set(data.columns))
        features = data[cols] if use else data
        return predictions_frame(self._predict(numpy_backed(features), **predict_kwargs))

    def _predict(self, features: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError


def predictions_frame(preds: Any) -> pd.DataFrame:
    """``predictions`` for 1-D output, ``predictions_<i>`` columns for 2-D (AIR's shape)."""
    arr = np.asarray(preds)
    if arr.ndim == 1:
        return pd.DataFrame({"predictions": arr})
    return pd.DataFrame(arr.reshape(len(arr), -1)).add_prefix("predictions_")


__all__ = ["GBDTCheckpoint", "GBDTPredictor", "GBDTTrainer", "RoundPlan", "RoundReporter",
           "Split", "load_splits", "metric_key", "numpy_backed", "plan_rounds",
           "predictions_frame", "import_in_worker", "require", "to_frame"]
