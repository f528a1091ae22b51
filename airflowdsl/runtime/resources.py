"""What a step task holds, whether it can ever run, and when the driver may start it.

See docs/runtime.md, "Resource model". The pieces here are pure functions over a
:class:`ClusterView` snapshot, so the rules are unit-tested without Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from airflowdsl.air.resources import NESTED_RESERVE_CPUS, ResourceError
from airflowdsl.runtime.contracts import StepLike

_EPS = 1e-9


@dataclass(frozen=True)
class Request:
    """The Ray resources a step task holds while it runs (nothing else is reserved)."""

    cpus: float = 0.0
    gpus: float = 0.0
    memory: int = 0
    custom: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: StepLike) -> Request:
        """The request of a ``StepSpec`` (``num_cpus``/``num_gpus``/``memory``/``resources``)."""
        return cls(cpus=float(spec.num_cpus or 0), gpus=float(spec.num_gpus or 0),
                   memory=int(spec.memory or 0),
                   custom=dict(spec.resources or {}))

    @property
    def empty(self) -> bool:
        return not (self.cpus or self.gpus or self.memory or any(self.custom.values()))

    def as_ray(self) -> dict[str, float]:
        out = {"CPU": self.cpus, "GPU": self.gpus, "memory": float(self.memory), **self.custom}
        return {k: v for k, v in out.items() if v}

    def describe(self) -> str:
        parts = [f"num_cpus={self.cpus:g}"]
        if self.gpus:
            parts.append(f"num_gpus={self.gpus:g}")
        if self.memory:
            parts.append(f"memory={self.memory}")
        if self.custom:
            parts.append(f"resources={dict(self.custom)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class ClusterView:
    """A snapshot of the cluster: totals, and each alive node's totals."""

    total: Mapping[str, float]
    nodes: tuple[Mapping[str, float], ...]

    @classmethod
    def read(cls) -> ClusterView:
        import ray

        nodes = tuple({k: float(v) for k, v in n.get("Resources", {}).items()}
                      for n in ray.nodes() if n.get("Alive"))
        return cls({k: float(v) for k, v in ray.cluster_resources().items()}, nodes)

    @property
    def cpus(self) -> float:
        return float(self.total.get("CPU", 0.0))

    @property
    def step_cpu_budget(self) -> float:
        """CPUs that running steps may hold together: all but one whole CPU."""
        return max(self.cpus - NESTED_RESERVE_CPUS, 0.0)


def why_infeasible(name: str, request: Request, cluster: ClusterView) -> str | None:
    """Why step ``name`` can never start on ``cluster`` (None when it can)."""
    if request.cpus > cluster.step_cpu_budget + _EPS:
        return (f"step {name!r} asks for num_cpus={request.cpus:g}, but the cluster has "
                f"{cluster.cpus:g} CPU and keeps {NESTED_RESERVE_CPUS:g} whole CPU free for "
                f"the Ray work steps start (Ray Data tasks, trainers, trials), so a step may "
                f"hold at most {cluster.step_cpu_budget:g} CPU here: lower num_cpus= on "
                f"the step or run on a bigger cluster")
    need = request.as_ray()
    need.pop("CPU", None)
    if not need:
        return None
    for node in cluster.nodes:
        if all(node.get(k, 0.0) + _EPS >= v for k, v in need.items()):
            return None
    have = {k: cluster.total.get(k, 0.0) for k in need}
    return (f"step {name!r} asks for {request.describe()}, but no node of the cluster has "
            f"that much (cluster totals: {have}): lower the request or add a node that "
            f"provides it")


def check_feasible(requests: Mapping[str, Request], cluster: ClusterView) -> None:
    """Raise :class:`ResourceError` naming every step that can never start."""
    problems = [msg for name, req in requests.items()
                if (msg := why_infeasible(name, req, cluster)) is not None]
    if problems:
        raise ResourceError("; ".join(problems))


def admits(held_cpus: float, request: Request, cluster: ClusterView) -> bool:
    """May a step holding ``request`` start while running steps hold ``held_cpus``?"""
    return not request.cpus or held_cpus + request.cpus <= cluster.step_cpu_budget + _EPS


__all__ = ["ClusterView", "Request", "ResourceError", "admits", "check_feasible",
           "why_infeasible"]
