"""Ray Data's default block count, sized to the cluster a step runs on.

Ray Data splits a dataset whose size it cannot estimate (``from_items``, ``from_numpy``
of a list, ...) into ``DataContext.read_op_min_num_blocks`` blocks, 200 by default: a
400-row ``from_items`` becomes 200 blocks of 2 rows, and writing it runs 200 tasks of 1
CPU each and leaves 200 Parquet files. On a small cluster (2 CPUs; or a head with no
CPUs and two 1-CPU nodes) that took 41-64 s for a two-step pipeline, and 150 s with no
visible progress against an object store (issue 12). Inside a pipeline step the default
becomes ``2 x cluster CPUs`` (at least 4, at most Ray's 200): what Ray's own rule
"enough blocks to use every CPU twice" asks for. Datasets whose size Ray can estimate
keep Ray's block-size rules (no block above ``target_max_block_size``); an explicit
``override_num_blocks`` or a ``read_op_min_num_blocks`` the user set wins.

Importing ``ray.data`` costs ~1 s, so a step that never uses it must not pay for this:
the setting is applied when ``ray.data`` is imported (a one-shot import hook) or at once
when it already is.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

#: Ray Data's own default of ``DataContext.read_op_min_num_blocks``.
RAY_DEFAULT_MIN_BLOCKS = 200

_state: dict[str, Any] = {"set": None, "cpus": None, "at": 0.0}


def min_blocks(cluster_cpus: float) -> int:
    """The block count for datasets of unknown size on a cluster of ``cluster_cpus``."""
    return int(min(RAY_DEFAULT_MIN_BLOCKS, max(4, 2 * round(cluster_cpus))))


def _cluster_cpus() -> float:
    """The cluster's CPUs (looked up at most every 10 s per process)."""
    now = time.monotonic()
    if _state["cpus"] is None or now - _state["at"] > 10.0:
        import ray

        _state["cpus"] = float(ray.cluster_resources().get("CPU", 1.0))
        _state["at"] = now
    return float(_state["cpus"])


def _apply(data: Any, cpus: Callable[[], float] = _cluster_cpus) -> None:
    ctx = data.DataContext.get_current()
    if ctx.read_op_min_num_blocks not in (RAY_DEFAULT_MIN_BLOCKS, _state["set"]):
        return  # the user chose a value: keep it
    try:
        n = min_blocks(cpus())
    except Exception:  # noqa: BLE001 - no Ray connection: Ray Data's default stays
        return
    ctx.read_op_min_num_blocks = _state["set"] = n


def size_for_cluster(cpus: Callable[[], float] = _cluster_cpus) -> None:
    """Size Ray Data's default block count for this cluster (``cpus()``: its CPU count)
    in this process: now if ``ray.data`` is imported, else when it is."""
    data = sys.modules.get("ray.data")
    if data is not None and hasattr(data, "DataContext"):
        _apply(data, cpus)
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("ray.data", lambda mod: _apply(mod, cpus)))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callback(module)`` once, right after module ``name`` finished importing."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; find the real spec without us
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module
        callback = self.callback

        def exec_then_call(module: ModuleType) -> None:
            exec_module(module)
            try:
                callback(module)
            except Exception:  # noqa: BLE001 - a default, never a failed import
                pass

        loader.exec_module = exec_then_call  # type: ignore[method-assign]
        return spec


__all__ = ["RAY_DEFAULT_MIN_BLOCKS", "min_blocks", "size_for_cluster"]
