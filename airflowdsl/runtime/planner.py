"""Decide, before anything runs, which steps are served from the cache.

Keys are computed in topological order (a key needs its inputs' keys, not
their values), so the whole plan is known up front and a fully cached
pipeline never needs Ray.

- ``force=True``: every selected step runs. ``from_step=S``: S and everything
  downstream of it run. A ``cache=False`` step always runs, and steps
  downstream of it see a fresh input key (they rerun too).
- ``only=[...]``: the named steps are the targets: they and the upstream steps
  they need are considered (cached ones are reused), everything else is
  ``skipped``. Combine with ``force``/``from_step`` to rerun the targets.
- A cached step whose output is needed (a running step consumes it, or it is
  a pipeline output) is verified by checksum; a corrupt artifact is
  recomputed, with a warning.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from airflowdsl.runtime.cache import DEFAULT_POLICY, CacheKey, KeyContext, expired
from airflowdsl.runtime.store import ArtifactStore, Manifest, warn_corrupt


@dataclass
class StepPlan:
    name: str
    spec: Any
    params: dict[str, Any]
    inputs: dict[str, tuple[str, int | None]]
    key: CacheKey
    action: str = "run"  # run | cached | skip
    reason: str = ""
    manifest: Manifest | None = None
    downstream_nonce: str | None = field(default=None, repr=False)

    @property
    def n_outputs(self) -> int:
        return len(self.spec.output_types) if self.spec.multi_output else 1


def output_refs(outputs: Any) -> tuple[list[tuple[str, int | None]], bool]:
    """The pipeline's output refs as ``(node, index)`` pairs, and whether it returned one."""
    if outputs is None:
        return [], True
    if isinstance(outputs, tuple) and len(outputs) == 2 and isinstance(outputs[0], str):
        return [(outputs[0], outputs[1])], True
    return [(r[0], r[1]) for r in outputs], False


def output_nodes(outputs: Any) -> set[str]:
    return {node for node, _ in output_refs(outputs)[0]}


def _selection(graph: nx.DiGraph, only: Iterable[str] | str | None) -> set[str]:
    if only is None:
        return set(graph.nodes)
    targets = {only} if isinstance(only, str) else set(only)
    unknown = targets - set(graph.nodes)
    if unknown:
        raise ValueError(f"only=: unknown step(s) {sorted(unknown)}; steps: {sorted(graph.nodes)}")
    return targets.union(*(nx.ancestors(graph, t) for t in targets))


def make_plan(compiled: Any, store: ArtifactStore, *, force: bool = False,
              from_step: str | None = None, only: Iterable[str] | str | None = None,
              persist: bool = True) -> dict[str, StepPlan]:
    """One :class:`StepPlan` per step, in ``compiled.order``."""
    graph: nx.DiGraph = compiled.graph
    if from_step is not None and from_step not in graph:
        raise ValueError(f"from_step={from_step!r} is not a step of {compiled.name!r}; "
                         f"steps: {list(compiled.order)}")
    selected = _selection(graph, only)
    forced = set(graph.nodes) if force else set()
    if from_step is not None:
        forced |= {from_step} | nx.descendants(graph, from_step)
    plans: dict[str, StepPlan] = {}
    prints: dict[int, dict[str, str]] = {}
    for name in compiled.order:
        node = graph.nodes[name]
        spec = node["spec"]
        inputs = dict(node.get("inputs") or {})
        in_keys = {p: (up, _output_key(plans[up], idx)) for p, (up, idx) in inputs.items()}
        ctx = KeyContext(spec, dict(node.get("params") or {}), in_keys, prints)
        plan = StepPlan(name, spec, dict(ctx.params), inputs, DEFAULT_POLICY.key(ctx))
        if not spec.cache:
            plan.downstream_nonce = uuid.uuid4().hex
        plans[name] = plan
        if name not in selected:
            plan.action, plan.reason = "skip", "not selected by only="
        elif name in forced:
            plan.reason = "forced" if force else f"rerun from {from_step}"
        elif not spec.cache:
            plan.reason = "cache disabled for this step"
        elif not persist:
            plan.reason = "persistence off"
        else:
            _lookup(plan, store)
    _verify_needed(compiled, plans, store)
    return plans


def _output_key(up: StepPlan, idx: int | None) -> str:
    base = up.key.digest + (f"+{up.downstream_nonce}" if up.downstream_nonce else "")
    return f"{base}#{'' if idx is None else idx}"


def _lookup(plan: StepPlan, store: ArtifactStore) -> None:
    manifest = store.manifest(plan.key.digest)
    if manifest is None:
        plan.reason = "not in cache"
    elif expired(manifest, plan.spec.cache_ttl):
        plan.reason = f"cache entry older than cache_ttl={plan.spec.cache_ttl}s"
    elif len(manifest.get("outputs", ())) != plan.n_outputs:
        plan.reason = "stored output count differs"
    elif problem := store.verify(manifest, deep=False):
        warn_corrupt(plan.key.digest, problem)
        plan.reason = f"stored artifact damaged ({problem})"
    else:
        plan.action, plan.reason, plan.manifest = "cached", "cache hit", manifest


def _verify_needed(compiled: Any, plans: dict[str, StepPlan], store: ArtifactStore) -> None:
    """Checksum cached artifacts that will be read; recompute corrupt ones."""
    outs = output_nodes(compiled.outputs)
    graph = compiled.graph
    for name in reversed(compiled.order):
        plan = plans[name]
        if plan.action != "cached" or plan.manifest is None:
            continue
        consumers = [plans[c] for c in graph.successors(name)]
        if name in outs or any(c.action == "run" for c in consumers):
            if problem := store.verify(plan.manifest, deep=True):
                warn_corrupt(plan.key.digest, problem)
                plan.action, plan.manifest = "run", None
                plan.reason = f"stored artifact corrupt ({problem})"
