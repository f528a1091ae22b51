"""AIR configuration objects: validated, frozen, positional-friendly (pydantic dataclasses)."""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidatorFunctionWrapHandler, field_validator
from pydantic.dataclasses import dataclass

from airflowdsl.air import progress
from airflowdsl.air.resources import NESTED_RESERVE_CPUS
from airflowdsl.air.search import contains_search_space, is_search_space, unresolved
from airflowdsl.air.storage import is_uri, join

_STRICT = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def _allow_search_space(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Any field may hold a Tune search space (a Tuner resolves it, and the resolved
    value is validated again when the trial rebuilds the config)."""
    return value if contains_search_space(value) else handler(value)


@dataclass(frozen=True, config=_STRICT)
class ScalingConfig:
    """How many training workers, and what each one holds.

    ``resources_per_worker=None`` sizes workers by the resource model (docs/runtime.md):
    one CPU each where the cluster has room, else an equal share of all CPUs but one (of
    half the CPUs on a cluster with fewer than 2), so the group leaves a whole CPU for
    other work (on 2 CPUs: 2 workers x 0.5 CPU).
    """

    num_workers: int = Field(default=1, ge=0)
    use_gpu: bool = False
    resources_per_worker: dict[str, float] | None = None
    trainer_resources: dict[str, float] | None = None
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"

    _space = field_validator("*", mode="wrap")(_allow_search_space)

    @field_validator("resources_per_worker", "trainer_resources")
    @classmethod
    def _non_negative(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if is_search_space(value):
            return value
        for key, amount in (value or {}).items():
            if is_search_space(amount):
                continue
            if amount < 0:
                raise ValueError(f"resource {key!r} must be >= 0, got {amount}")
        return value

    def worker_resources(self, *, cluster_cpus: float) -> dict[str, float]:
        """The Ray resources of one worker actor when ``cluster_cpus`` CPUs are there for
        the group (the cluster's, less what the calling step holds itself)."""
        unresolved(self, owner="ScalingConfig")
        res = dict(self.resources_per_worker or {})
        if "CPU" not in res:
            share = cluster_cpus - NESTED_RESERVE_CPUS if cluster_cpus >= 2 else cluster_cpus / 2
            res["CPU"] = round(min(1.0, share / max(self.num_workers, 1)), 4)
        if self.use_gpu and "GPU" not in res:
            res["GPU"] = 1.0
        return res

    def bundles(self, *, cluster_cpus: float) -> list[dict[str, float]]:
        """Placement-group bundles, one per worker."""
        worker = {k: v for k, v in self.worker_resources(cluster_cpus=cluster_cpus).items() if v}
        return [dict(worker) for _ in range(self.num_workers)]


def scaling_config_from(value: ScalingConfig | dict[str, Any] | None, *,
                        default: ScalingConfig) -> ScalingConfig:
    """A trainer's ``scaling_config=`` argument: a ``ScalingConfig``, AIR 2.0's plain
    dict of its fields (``{"num_workers": 2, "use_gpu": False}``), or ``None``."""
    if value is None:
        return default
    if isinstance(value, dict):
        return ScalingConfig(**value)
    if not isinstance(value, ScalingConfig):
        raise TypeError(f"scaling_config must be a ScalingConfig or a dict of its fields, "
                        f"got {type(value).__name__}")
    return value


@dataclass(frozen=True, config=_STRICT)
class CheckpointConfig:
    """Which reported checkpoints to keep: ``num_to_keep`` best by the score attribute."""

    num_to_keep: int | None = Field(default=None, ge=1)
    checkpoint_score_attribute: str | None = None
    checkpoint_score_order: Literal["max", "min"] = "max"
    checkpoint_frequency: int = Field(default=0, ge=0)  # built-in loops (GBDT): every N rounds
    checkpoint_at_end: bool = True

    _space = field_validator("*", mode="wrap")(_allow_search_space)


@dataclass(frozen=True, config=_STRICT)
class FailureConfig:
    """``max_failures`` restarts of the worker group (-1: unlimited)."""

    max_failures: int = Field(default=0, ge=-1)

    _space = field_validator("*", mode="wrap")(_allow_search_space)

    def allows(self, failures: int) -> bool:
        return self.max_failures < 0 or failures <= self.max_failures


@dataclass(frozen=True, config=_STRICT)
class SyncConfig:
    """AIR's ``tune.SyncConfig`` (``upload_dir``, ``syncer``, ...): accepted so AIR code
    builds its ``RunConfig(sync_config=...)``; nothing is synced (see ``RunConfig``)."""

    upload_dir: str | None = None
    syncer: Any = "auto"
    sync_period: int = 300
    sync_timeout: int = 1800
    sync_on_checkpoint: bool = True
    sync_artifacts: bool = False


@dataclass(frozen=True, config=_STRICT)
class RunConfig:
    """Where and under which name a fit stores its checkpoints, and how it fails."""

    name: str | None = None
    storage_path: str | None = None
    checkpoint_config: CheckpointConfig | None = None
    failure_config: FailureConfig | None = None
    callbacks: list[Any] | None = None
    stop: dict[str, Any] | None = None
    verbose: int = Field(default=1, ge=0, le=3)
    #: AIR's name for ``storage_path`` (used when ``storage_path`` is not given)
    local_dir: str | None = None
    #: accepted for AIR code; ignored: nothing is synced. Checkpoints go where
    #: ``storage_path`` is (a URI: uploaded there by the rank that holds them)
    sync_config: Any = None

    def __post_init__(self) -> None:
        if self.sync_config is not None:
            warnings.warn("RunConfig(sync_config=...) is accepted for AIR compatibility and "
                          "ignored: checkpoints go straight to storage_path (a storage URI "
                          "such as s3://bucket/prefix: uploaded by the rank that holds them; "
                          "inside a pipeline step the default is <store>/train)", stacklevel=3)

    def resolved_storage_path(self) -> str:
        """``storage_path`` (or AIR's ``local_dir``; a URI as given), else, inside a pipeline
        step, ``<run store>/train`` (a URI store: checkpoints are uploaded there by the rank
        that holds them), else ``$AIRFLOWDSL_HOME/train``, else ``.airflowdsl/train``."""
        given = self.storage_path or self.local_dir
        if given:
            return given.rstrip("/") if is_uri(given) else os.path.abspath(os.path.expanduser(given))
        step = progress.current()
        if step is not None and step.store:
            return join(step.store, "train")
        home = os.environ.get("AIRFLOWDSL_HOME") or ".airflowdsl"
        if "://" in home:  # object-store homes: checkpoints still land on a local disk
            home = os.path.join(os.path.expanduser("~"), ".airflowdsl")
        return os.path.abspath(os.path.join(home, "train"))


__all__ = ["CheckpointConfig", "FailureConfig", "RunConfig", "ScalingConfig", "SyncConfig",
           "scaling_config_from"]
