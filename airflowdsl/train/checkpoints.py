"""Keeps the reported checkpoints of one fit: numbering, ``num_to_keep`` and score order."""

from __future__ import annotations

import math
import os
import re
import shutil
from typing import Any

from airflowdsl.air import remote
from airflowdsl.air.checkpoint import METADATA_FILE, PREPROCESSOR_FILE, Checkpoint
from airflowdsl.air.config import CheckpointConfig
from airflowdsl.air.storage import Options, is_uri, join
from airflowdsl.errors import TrainingFailedError

_CKPT_DIR = re.compile(r"^checkpoint_(\d{6})$")


class CheckpointManager:
    """Tracks ``(checkpoint, metrics)`` pairs under a run directory (a local folder or a
    storage URI, opened with ``storage_options``) and prunes them."""

    def __init__(self, run_dir: str, config: CheckpointConfig | None, *,
                 storage_options: Options = ()) -> None:
        self.run_dir = run_dir
        self.storage_options = storage_options
        self.config = config or CheckpointConfig()
        self.kept: list[tuple[Checkpoint, dict[str, Any]]] = []
        self.latest: Checkpoint | None = None

    def existing(self) -> list[tuple[int, Checkpoint]]:
        """Checkpoints a previous fit with the same run directory left behind, oldest first
        (in a URI: the complete ones only, ``air.remote``)."""
        if is_uri(self.run_dir):
            return [(int(m.group(1)), Checkpoint(join(self.run_dir, name),
                                                 storage_options=self.storage_options))
                    for name in remote.children(self.run_dir, self.storage_options)
                    if (m := _CKPT_DIR.match(name)) and remote.complete_files(
                        join(self.run_dir, name), self.storage_options) is not None]
        if not os.path.isdir(self.run_dir):
            return []
        found = []
        for name in os.listdir(self.run_dir):
            match = _CKPT_DIR.match(name)
            path = os.path.join(self.run_dir, name)
            if match and holds_data(path):  # a folder with metadata only is no checkpoint
                found.append((int(match.group(1)), Checkpoint(path)))
        return sorted(found, key=lambda item: item[0])

    def adopt_existing(self) -> Checkpoint | None:
        """Register a previous fit's checkpoints; returns the latest (to resume from)."""
        for _iteration, ckpt in self.existing():
            self.register(ckpt, ckpt.get_metadata().get("metrics", {}))
        return self.latest

    def register(self, checkpoint: Checkpoint, metrics: dict[str, Any]) -> None:
        """Keep ``checkpoint`` (with ``metrics``). Raises ``TrainingFailedError`` when its
        folder holds no data here: the rank that wrote it runs on another node and
        ``storage_path`` is not shared, so it must never be recorded as a checkpoint. A URI
        checkpoint is kept only when its upload is complete (``air.remote``)."""
        if checkpoint.uri is not None:
            if remote.complete_files(checkpoint.uri, checkpoint.storage_options) is None:
                raise TrainingFailedError(
                    f"the checkpoint reported at {checkpoint.uri} is not complete in storage "
                    f"(no {remote.COMPLETE_MARKER}, or files missing or resized): it is not "
                    f"recorded")
        elif not holds_data(checkpoint.path):
            raise TrainingFailedError(
                f"the checkpoint reported at {checkpoint.path} is not there (or holds no "
                f"data) on the node that runs the fit: the reporting worker runs on another "
                f"node and RunConfig(storage_path=...) is not a directory every node shares. "
                f"Give a storage_path on a shared mount (docs/cluster.md)")
        checkpoint.update_metadata({"metrics": _jsonable(metrics)})
        self.latest = checkpoint
        self.kept = [kc for kc in self.kept if kc[0] != checkpoint]
        self.kept.append((checkpoint, metrics))
        self._prune()

    def _score(self, metrics: dict[str, Any]) -> float:
        attr = self.config.checkpoint_score_attribute
        if attr is None:
            return 0.0
        value = metrics.get(attr)
        if not isinstance(value, (int, float)) or math.isnan(value):
            return -math.inf
        return float(value) if self.config.checkpoint_score_order == "max" else -float(value)

    def ranked(self) -> list[tuple[Checkpoint, dict[str, Any]]]:
        """Best first when a score attribute is set, else newest first."""
        if self.config.checkpoint_score_attribute is None:
            return list(reversed(self.kept))
        return sorted(self.kept, key=lambda kc: self._score(kc[1]), reverse=True)

    def _prune(self) -> None:
        keep = self.config.num_to_keep
        if keep is None or len(self.kept) <= keep:
            return
        survivors = self.ranked()[:keep]
        if self.latest is not None and all(c != self.latest for c, _ in survivors):
            survivors = survivors[: keep - 1] + [kc for kc in self.kept if kc[0] == self.latest]
        for ckpt, _ in self.kept:
            if all(ckpt != c for c, _ in survivors):
                if ckpt.uri is not None:
                    remote.delete(ckpt.uri, ckpt.storage_options)
                else:
                    shutil.rmtree(ckpt.path, ignore_errors=True)
        self.kept = [kc for kc in self.kept if any(kc[0] == c for c, _ in survivors)]

    def best(self) -> Checkpoint | None:
        """The best checkpoint by the score attribute, or the latest when none is set."""
        if self.config.checkpoint_score_attribute is None:
            return self.latest
        ranked = self.ranked()
        return ranked[0][0] if ranked else None


def holds_data(path: str) -> bool:
    """Whether checkpoint folder ``path`` exists here and holds more than the metadata
    and the preprocessor the controller writes into it."""
    try:
        names = set(os.listdir(path))
    except OSError:
        return False
    return bool(names - {METADATA_FILE, PREPROCESSOR_FILE})


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}


__all__ = ["CheckpointManager", "holds_data"]
