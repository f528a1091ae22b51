"""A group of Ray actors that run one training loop together (the shared runtime).

Every trainer runs on this: ``num_workers`` actors in one placement group (or in the
placement group of an enclosing Tune trial), each running ``train_loop_per_worker``
in a thread while the driver polls its reports, so one failing worker fails the fit
at once instead of leaving the others waiting.
"""

from __future__ import annotations

import importlib
import os
import queue
import socket
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from airflowdsl.air import session as air_session
from airflowdsl.air import workerlog
from airflowdsl.air.resources import (
    describe,
    free_for_nested,
    own_resources,
    strict_placement_problem,
    wait_placement,
)
from airflowdsl.errors import ResourceError, TrainingFailedError


def free_port() -> int:
    """A TCP port that was free a moment ago on this node (bind to 0, let the OS pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return int(sock.getsockname()[1])


def _short_traceback(exc: BaseException) -> str:
    """The traceback from the user's own frames on (airflowdsl/ray frames trimmed)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = ("airflowdsl/train/", "airflowdsl/air/", "/ray/")
    keep = [f for f in frames if not any(part in f.filename for part in ours)] or frames
    lines = traceback.format_list(keep) + traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines)


class _TrainWorker:
    """One training worker process (a Ray actor with a thread for the user's loop)."""

    def __init__(self, env: dict[str, str], preimport: tuple[str, ...] = (),
                 log: workerlog.StepLog | None = None) -> None:
        os.environ.update(env)
        self._log = workerlog.attach(log)  # the step's log, on whichever node this runs
        self._reports: queue.Queue[dict[str, Any]] = queue.Queue()
        if preimport:
            threading.Thread(target=_preimport, args=(preimport,), daemon=True,
                             name="airflowdsl-preimport").start()

    def node_info(self) -> dict[str, Any]:
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        }

    def free_port(self) -> int:
        return free_port()

    def execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def start(self, loop: Callable[..., Any], config: dict[str, Any] | None, ctx: dict[str, Any]) -> None:
        sess = air_session.WorkerSession(**ctx, sink=self._reports.put)
        threading.Thread(target=self._run, args=(loop, config, sess), daemon=True).start()

    def _run(self, loop: Callable[..., Any], config: Any, sess: air_session.WorkerSession) -> None:
        air_session.install_session(sess)
        try:
            call_loop(loop, config)
            last: dict[str, Any] = {"done": True, "rank": sess.world_rank}
        except BaseException as exc:  # noqa: BLE001 - forwarded to the driver
            last = {"error": _short_traceback(exc), "rank": sess.world_rank,
                    "type": type(exc).__name__, "message": str(exc)}
        sess.close()  # its local trial folder, if it made one
        workerlog.upload(self._log)  # before the last report: the controller then stops us
        self._reports.put(last)

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        """Reports since the last poll; waits up to ``timeout`` s for the first one."""
        try:
            out = [self._reports.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self._reports.get_nowait())
            except queue.Empty:
                return out


def _preimport(modules: tuple[str, ...]) -> None:
    """Import ``modules`` (a background thread); a failure is left to the real import."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the loop's own import raises the real error
            return


def call_loop(loop: Callable[..., Any], config: dict[str, Any] | None) -> Any:
    """Call a ``train_loop_per_worker`` that takes zero or one (config) argument."""
    import inspect

    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.VAR_POSITIONAL)
    if any(p.kind in positional for p in inspect.signature(loop).parameters.values()):
        return loop(config if config is not None else {})
    return loop()


class WorkerGroup:
    """``num_workers`` actors, ranked, in one placement group."""

    def __init__(
        self,
        *,
        num_workers: int,
        resources: dict[str, float],
        placement_strategy: str = "PACK",
        env: dict[str, str] | None = None,
        preimport: Sequence[str] = (),
    ) -> None:
        self._own_pg: PlacementGroup | None = None
        enclosing = _enclosing_placement_group()
        if enclosing is not None:  # inside a Tune trial: live in its placement group
            pg: PlacementGroup = enclosing
        else:
            _check_fits(resources, num_workers)
            _check_strategy(resources, num_workers, placement_strategy)
            bundle = {k: v for k, v in resources.items() if v} or {"memory": 2**20}
            self._own_pg = pg = placement_group([dict(bundle) for _ in range(num_workers)],
                                                strategy=placement_strategy)
            wait_placement(pg, what=f"the {num_workers}-worker training group",
                           asks=f"{num_workers} x {{{describe(bundle)}}} ({placement_strategy})")
        opts: dict[str, Any] = {
            "num_cpus": resources.get("CPU", 0),
            "num_gpus": resources.get("GPU", 0),
            "max_concurrency": 4,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                pg, placement_group_capture_child_tasks=False),
        }
        custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU", "memory")}
        if custom:
            opts["resources"] = custom
        if "memory" in resources:
            opts["memory"] = resources["memory"]
        if env:  # a dedicated process with env set at start (not a reused worker that may
            # already have imported a framework, e.g. Keras 3 before TF_USE_LEGACY_KERAS)
            opts["runtime_env"] = {"env_vars": dict(env)}
        actor_cls = ray.remote(_TrainWorker)
        self.workers: list[Any] = [
            actor_cls.options(**opts).remote(env or {}, tuple(preimport), workerlog.current())
            for _ in range(num_workers)]
        self.infos: list[dict[str, Any]] = self._get(
            [w.node_info.remote() for w in self.workers], "starting the worker processes")
        self._rank_workers_by_node()

    def _get(self, refs: list[Any], what: str) -> list[Any]:
        """``ray.get(refs)`` within ``SETUP_TIMEOUT_S``; past it, a
        ``TrainingFailedError`` naming ``what`` and the ranks that did not answer."""
        done, waiting = ray.wait(refs, num_returns=len(refs), timeout=setup_timeout())
        if waiting:
            ranks = [i for i, r in enumerate(refs) if r in waiting]
            raise TrainingFailedError(
                f"{what} did not finish within {setup_timeout():g} s on worker rank(s) "
                f"{ranks} of {len(refs)} (set AIRFLOWDSL_SETUP_TIMEOUT to wait longer)")
        return ray.get(refs)

    def _rank_workers_by_node(self) -> None:
        order = sorted(range(len(self.workers)), key=lambda i: self.infos[i]["node_id"])
        self.workers = [self.workers[i] for i in order]
        self.infos = [self.infos[i] for i in order]
        nodes: list[str] = []
        for info in self.infos:
            if info["node_id"] not in nodes:
                nodes.append(info["node_id"])
            info["node_rank"] = nodes.index(info["node_id"])
            same = [i for i in self.infos if i["node_id"] == info["node_id"]]
            info["local_rank"] = same.index(info)
            info["local_world_size"] = len(same)

    def __len__(self) -> int:
        return len(self.workers)

    def execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Run ``fn(*args, **kwargs)`` on every worker; results by rank."""
        return self._get([w.execute.remote(fn, *args, **kwargs) for w in self.workers],
                         f"{getattr(fn, '__name__', 'setup')} on every worker")

    def execute_each(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run ``fn(*args[rank])`` on each worker; results by rank."""
        return self._get([w.execute.remote(fn, *a) for w, a in zip(self.workers, args, strict=True)],
                         f"{getattr(fn, '__name__', 'setup')} on every worker")

    def execute_single(self, rank: int, fn: Callable[..., Any], *args: Any) -> Any:
        return self._get([self.workers[rank].execute.remote(fn, *args)],
                         f"{getattr(fn, '__name__', 'setup')} on rank {rank}")[0]

    def free_port(self, rank: int = 0) -> int:
        return int(self._get([self.workers[rank].free_port.remote()], "free_port")[0])

    def shutdown(self) -> None:
        for worker in self.workers:
            try:
                ray.kill(worker, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self.workers = []
        if self._own_pg is not None:
            remove_placement_group(self._own_pg)
            self._own_pg = None


def _enclosing_placement_group() -> PlacementGroup | None:
    """The placement group this group must live in: the caller's, when it captures its
    children (a Tune trial's does). A pipeline step runs in airflowdsl's step-slot group
    without capturing: its training actors get a group of their own."""
    ctx = ray.get_runtime_context()
    if not ctx.should_capture_child_tasks_in_placement_group:
        return None
    pg: PlacementGroup | None = ray.util.get_current_placement_group()
    return pg


def setup_timeout() -> float:
    """Seconds a worker-group setup call (process start, backend rendezvous) may take:
    ``$AIRFLOWDSL_SETUP_TIMEOUT``, default 600. Training itself is not bounded by it."""
    return float(os.environ.get("AIRFLOWDSL_SETUP_TIMEOUT", "600"))


def _check_strategy(resources: dict[str, float], num_workers: int, strategy: str) -> None:
    """Fail at once when ``STRICT_SPREAD`` / ``STRICT_PACK`` can never be met by the
    cluster's alive nodes (instead of waiting ``pending_timeout`` for placement)."""
    if strategy not in ("STRICT_SPREAD", "STRICT_PACK"):
        return
    nodes = [{k: float(v) for k, v in n["Resources"].items()} for n in ray.nodes() if n["Alive"]]
    problem = strict_placement_problem(resources, num_workers, strategy, nodes)
    if problem is not None:
        raise ResourceError(f"ScalingConfig(num_workers={num_workers}, placement_strategy="
                            f"{strategy!r}): {problem}; use fewer workers, smaller "
                            f"resources_per_worker, or placement_strategy='SPREAD'/'PACK'")


def _check_fits(resources: dict[str, float], num_workers: int) -> None:
    """Fail at once (instead of waiting forever) when the cluster, less what the calling
    step holds itself, can never host the group."""
    total = free_for_nested()
    for key, amount in resources.items():
        need = amount * num_workers
        if need and total.get(key, 0) + 1e-9 < need:
            held = own_resources().get(key, 0.0)
            mine = f" (the calling step holds {held:g} of them)" if held else ""
            raise ResourceError(
                f"ScalingConfig asks for {num_workers} workers x {amount:g} {key} = {need:g} "
                f"{key}, but only {total.get(key, 0):g} {key} of the Ray cluster can ever be "
                f"free for it{mine}: lower num_workers or resources_per_worker (or "
                f"use_gpu=False), or num_cpus= of the step"
            )


__all__ = ["WorkerGroup", "call_loop", "free_port"]
