"""Horovod on the shared runtime: ``HorovodTrainer`` with a driver-side Gloo rendezvous.

No ``horovodrun``, no MPI, no ssh: the driver starts Horovod's own HTTP
``RendezvousServer``, plans ranks with ``get_host_assignments`` over the actor group's
nodes, and gives every worker the ``HOROVOD_*`` environment ``horovodrun`` would; the
user's loop then calls ``hvd.init()`` as usual. Horovod is imported lazily, so
``import airflowdsl.train.horovod`` works without it; constructing a ``HorovodTrainer``
then says how to install it (Horovod 0.28.1 must be built for the installed torch:
``bash scripts/build_horovod.sh``).
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ray
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from airflowdsl.air.checkpoint import Checkpoint
from airflowdsl.air.config import RunConfig, ScalingConfig
from airflowdsl.train.backend import Backend
from airflowdsl.train.trainer import DataParallelTrainer

if TYPE_CHECKING:
    from airflowdsl.train.worker_group import WorkerGroup

INSTALL_HINT = ("install it with: pip install 'airflowdsl[horovod]' && bash scripts/build_horovod.sh "
                "(builds Horovod 0.28.1 with PyTorch + Gloo for the installed torch, once; "
                "later runs install the cached wheel)")


def horovod_problem() -> str | None:
    """Why Horovod's PyTorch binding cannot be used here, or None (cheap: imports no torch)."""
    try:
        spec = importlib.util.find_spec("horovod")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return "HorovodTrainer needs Horovod, which is not installed"
    root = list(spec.submodule_search_locations)[0]
    if not glob.glob(os.path.join(root, "torch", "mpi_lib_v2*")):
        return "the installed Horovod was built without its PyTorch extension"
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "HorovodTrainer needs PyTorch, which is not installed"
    try:
        with open(os.path.join(root, "metadata.json")) as f:
            built_for = json.load(f).get("pytorch")
    except (OSError, ValueError):
        built_for = None
    if built_for and built_for != torch_version:
        return (f"the installed Horovod was built for torch {built_for}, but torch "
                f"{torch_version} is installed (rebuild it)")
    return None


def require_horovod() -> None:
    """Raise one clear ImportError when Horovod (with PyTorch) is not usable."""
    problem = horovod_problem()
    if problem is not None:
        raise ImportError(f"{problem}; {INSTALL_HINT}")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class HorovodConfig:
    """How the workers meet.

    ``timeout_s`` bounds Gloo's rendezvous and collectives (``HOROVOD_GLOO_TIMEOUT_SECONDS``);
    ``nics`` names the network interfaces Gloo may use (the first one present on each
    worker's node wins; default: the interface carrying the node's Ray IP address);
    ``verbose`` is the rendezvous server's verbosity (2 and up also sets
    ``HOROVOD_LOG_LEVEL=debug`` on the workers).
    """

    timeout_s: float = Field(default=300.0, gt=0)
    nics: frozenset[str] | None = None
    verbose: int = Field(default=1, ge=0)


def rendezvous_plan(infos: list[dict[str, Any]]) -> list[Any]:
    """Horovod's slot plan (``SlotInfo`` per rank) for the group's workers, by rank.

    The host string is the Ray node id (as Horovod's own Ray runner uses): unique per
    node even where machines share a hostname. The group ranks workers node by node, so
    plan rank ``r`` is group rank ``r``; this is checked, not assumed.
    """
    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

    slots: dict[str, int] = {}
    for info in infos:
        slots[info["node_id"]] = slots.get(info["node_id"], 0) + 1
    plan = get_host_assignments(parse_hosts(",".join(f"{h}:{n}" for h, n in slots.items())),
                                len(infos))
    for rank, (slot, info) in enumerate(zip(plan, infos, strict=True)):
        if (slot.rank, slot.hostname, slot.local_rank) != (rank, info["node_id"],
                                                           info["local_rank"]):
            raise RuntimeError(f"Horovod plan {slot} does not match worker rank {rank} "
                               f"(node {info['node_id']}, local rank {info['local_rank']})")
    return list(plan)


def slot_env(slot: Any) -> dict[str, str]:
    """The per-rank variables ``horovodrun`` sets (``HOROVOD_HOSTNAME`` = the plan's host)."""
    return {
        "HOROVOD_HOSTNAME": str(slot.hostname),
        "HOROVOD_RANK": str(slot.rank),
        "HOROVOD_SIZE": str(slot.size),
        "HOROVOD_LOCAL_RANK": str(slot.local_rank),
        "HOROVOD_LOCAL_SIZE": str(slot.local_size),
        "HOROVOD_CROSS_RANK": str(slot.cross_rank),
        "HOROVOD_CROSS_SIZE": str(slot.cross_size),
    }


class HorovodBackend(Backend):
    """Runs the rendezvous server on the driver for one attempt of the worker group."""

    def __init__(self, config: HorovodConfig | None = None) -> None:
        self.config = config or HorovodConfig()
        self.server: Any = None
        self.ifaces: list[str | None] = []

    def on_start(self, group: WorkerGroup, scaling: ScalingConfig) -> None:
        from horovod.runner.http.http_server import RendezvousServer

        plan = rendezvous_plan(group.infos)
        self.server = RendezvousServer(verbose=self.config.verbose)
        port = self.server.start()
        self.server.init(plan)
        common = {
            "HOROVOD_GLOO_RENDEZVOUS_ADDR": ray.util.get_node_ip_address(),
            "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
            "HOROVOD_CONTROLLER": "gloo",
            "HOROVOD_CPU_OPERATIONS": "gloo",
            "HOROVOD_GLOO_TIMEOUT_SECONDS": str(max(1, round(self.config.timeout_s))),
        }
        if self.config.verbose >= 2:
            common["HOROVOD_LOG_LEVEL"] = "debug"
        nics = sorted(self.config.nics) if self.config.nics else None
        self.ifaces = group.execute_each(
            _set_worker_env,
            [({**common, **slot_env(slot)}, nics, info["ip"])
             for slot, info in zip(plan, group.infos, strict=True)])

    def on_shutdown(self, group: WorkerGroup) -> None:
        try:
            group.execute(_shutdown_horovod)
        finally:
            self._stop_server()

    def on_abort(self, group: WorkerGroup) -> None:
        self._stop_server()

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
            httpd = getattr(server, "_httpd", None)
            if httpd is not None:  # stop() leaves the listening socket open
                httpd.server_close()


def _set_worker_env(env: dict[str, str], nics: list[str] | None, ip: str) -> str | None:
    """On a worker: export the Horovod variables (before ``hvd.init()``); returns the NIC."""
    iface = gloo_iface(nics, ip)
    if iface is not None:
        env = {**env, "HOROVOD_GLOO_IFACE": iface}
        if nics:
            env["NCCL_SOCKET_IFNAME"] = ",".join(nics)
    os.environ.update(env)
    return iface


def gloo_iface(nics: list[str] | None, ip: str) -> str | None:
    """The interface Gloo binds: the first of ``nics`` on this node, else the one holding
    ``ip``; None leaves Gloo to resolve this machine's hostname."""
    import psutil

    present = psutil.net_if_addrs()
    if nics:
        for nic in nics:
            if nic in present:
                return nic
        raise ValueError(f"none of HorovodConfig.nics {nics} exists on this node "
                         f"(interfaces: {sorted(present)})")
    for name, addrs in present.items():
        if any(a.address == ip for a in addrs):
            return name
    return None


def _shutdown_horovod() -> None:
    hvd = sys.modules.get("horovod.torch")
    if hvd is not None and hvd.is_initialized():
        hvd.shutdown()


class HorovodTrainer(DataParallelTrainer):
    """Data-parallel Horovod (PyTorch + Gloo): the loop calls ``hvd.init()`` on every worker."""

    backend_cls = HorovodBackend

    def __init__(
        self,
        train_loop_per_worker: Callable[..., Any],
        *,
        train_loop_config: dict[str, Any] | None = None,
        horovod_config: HorovodConfig | None = None,
        scaling_config: ScalingConfig | None = None,
        run_config: RunConfig | None = None,
        datasets: dict[str, Any] | None = None,
        resume_from_checkpoint: Checkpoint | None = None,
        dataset_config: dict[str, Any] | None = None,
        preprocessor: Any = None,
    ) -> None:
        require_horovod()
        if horovod_config is not None and not isinstance(horovod_config, HorovodConfig):
            raise TypeError(f"horovod_config must be a HorovodConfig, got "
                            f"{type(horovod_config).__name__}")
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=horovod_config, scaling_config=scaling_config,
                         run_config=run_config, datasets=datasets,
                         resume_from_checkpoint=resume_from_checkpoint,
                         dataset_config=dataset_config, preprocessor=preprocessor)

    def make_backend(self) -> Backend:
        return HorovodBackend(self.backend_config)


__all__ = ["HorovodBackend", "HorovodConfig", "HorovodTrainer", "require_horovod"]
