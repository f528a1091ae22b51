"""Decide, before anything runs, which steps are served from the cache.

Keys are computed in topological order. A step's key holds its inputs' *content
hashes* (early cutoff): where the upstream is cached, the hash is in its manifest and
the key is final, so a fully cached pipeline never needs Ray. Where an upstream must
run, the input is ``pending`` and the step is planned to ``run``; its task resolves
the key from the upstream's summary and serves the stored result when there is one
(``runtime.cutoff``): "upstream X re-ran but produced identical output".

- ``force=True``: every selected step runs. ``from_step=S``: S and everything
  downstream of it run. A ``cache=False`` step always runs; its consumers key on
  what it produced. A step whose code changed on disk since it was imported
  runs and is not cached (``runtime.ondisk``).
- ``only=[...]``: the named steps are the targets: they and the upstream steps
  they need are considered (cached ones are reused), everything else is
  ``skipped``. Combine with ``force``/``from_step`` to rerun the targets.
- A cached step whose output is needed (a running step consumes it, or it is
  a pipeline output) is verified by checksum; a corrupt artifact is
  recomputed, with a warning.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import networkx as nx

from airflowdsl.runtime.cache import DEFAULT_POLICY, PENDING, CacheKey, KeyContext, expired
from airflowdsl.runtime.contracts import CompiledGraph, OutputRefLike, PipelineOutputs, StepLike
from airflowdsl.runtime.fingerprint import Fingerprint
from airflowdsl.runtime.manifests import output_content
from airflowdsl.runtime.store import ArtifactStore, Manifest, warn_corrupt

if TYPE_CHECKING:  # cutoff runs in the task: a fully cached rerun does not import it
    from airflowdsl.runtime.cutoff import CacheCtl


@dataclass
class StepPlan:
    name: str
    spec: StepLike
    params: dict[str, Any]
    inputs: dict[str, OutputRefLike]
    key: CacheKey
    action: str = "run"  # run | cached | skip
    reason: str = ""
    manifest: Manifest | None = None
    lookup: bool = field(default=True, repr=False)  # the task may serve a stored result
    #: the code fingerprint this plan's key was computed from (None: a plan not made by
    #: ``make_plan``); the executor ships the project modules it names to the workers,
    #: so they follow the code that was hashed (no second walk of the code per run)
    fingerprint: Fingerprint | None = field(default=None, repr=False, compare=False)

    @property
    def n_outputs(self) -> int:
        return len(self.spec.output_types) if self.spec.multi_output else 1

    def ctl(self) -> CacheCtl:
        """What the step's task needs to resolve its key and look it up (``cutoff``)."""
        from airflowdsl.runtime.cutoff import CacheCtl

        ups = tuple(dict.fromkeys(ref.split("#")[0] for ref in self.key.pending.values()))
        ttl = self.spec.cache_ttl
        stale = any(k.startswith("stale:") for k in self.key.parts[0].detail)
        return CacheCtl(self.key, ups, self.lookup and self.action == "run",
                        0.0 if stale else ttl)


def output_refs(outputs: PipelineOutputs) -> tuple[list[OutputRefLike], bool]:
    """The pipeline's output refs as ``(node, index)`` pairs, and whether it returned one."""
    if outputs is None:
        return [], True
    if isinstance(outputs[0], str):  # one ref: (node, index)
        node, index = cast(OutputRefLike, outputs)
        return [(node, index)], True
    return [(r[0], r[1]) for r in cast(tuple[OutputRefLike, ...], outputs)], False


def output_nodes(outputs: PipelineOutputs) -> set[str]:
    return {node for node, _ in output_refs(outputs)[0]}


def _selection(graph: nx.DiGraph, only: Iterable[str] | str | None) -> set[str]:
    if only is None:
        return set(graph.nodes)
    targets = {only} if isinstance(only, str) else set(only)
    unknown = targets - set(graph.nodes)
    if unknown:
        raise ValueError(f"only=: unknown step(s) {sorted(unknown)}; steps: {sorted(graph.nodes)}")
    return targets.union(*(nx.ancestors(graph, t) for t in targets))


def make_plan(compiled: CompiledGraph, store: ArtifactStore, *, force: bool = False,
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
    prints: dict[int, Fingerprint] = {}
    broken: dict[str, str] = {}
    enabled = gc.isenabled()
    gc.disable()  # fingerprints and keys allocate many small objects: no full collection
    try:
        while True:
            plans = _plan(compiled, store, selected, forced, broken, prints, force=force,
                          from_step=from_step, persist=persist)
            found = _verify_needed(compiled, plans, store)
            if not found:
                return plans
            broken.update(found)  # corrupt: recompute; its consumers' inputs become pending
    finally:
        if enabled:
            gc.enable()


def _plan(compiled: CompiledGraph, store: ArtifactStore, selected: set[str], forced: set[str],
          broken: dict[str, str], prints: dict[int, Fingerprint], *, force: bool,
          from_step: str | None, persist: bool) -> dict[str, StepPlan]:
    plans: dict[str, StepPlan] = {}
    for name in compiled.order:
        node = compiled.node(name)
        spec = node.spec
        inputs = dict(node.inputs)
        in_keys = {p: (up, _output_key(plans[up], idx)) for p, (up, idx) in inputs.items()}
        ctx = KeyContext(spec, dict(node.params), in_keys, prints)
        plan = StepPlan(name, spec, dict(ctx.params), inputs, DEFAULT_POLICY.key(ctx),
                        fingerprint=ctx.fingerprint)
        plans[name] = plan
        stale = ctx.fingerprint.stale
        if name not in selected:
            plan.action, plan.reason = "skip", "not selected by only="
        elif name in forced:
            plan.reason, plan.lookup = ("forced" if force else f"rerun from {from_step}"), False
        elif not spec.cache:
            plan.reason, plan.lookup = "cache disabled for this step", False
        elif not persist:
            plan.reason, plan.lookup = "persistence off", False
        elif stale:
            plan.reason, plan.lookup = (f"code of {', '.join(stale)} changed on disk since it "
                                        "was imported: runs, not cached (restart the process)"), False
        elif name in broken:
            plan.reason = broken[name]
        elif pending := plan.key.pending:
            ups = sorted({ref.split("#")[0] for ref in pending.values()})
            plan.reason = (f"upstream {', '.join(ups)} re-runs; served from the cache if "
                           "its output is unchanged")
        else:
            _lookup(plan, store)
    return plans


def _output_key(up: StepPlan, idx: int | None) -> str:
    if up.action == "cached" and up.manifest is not None:
        return output_content(up.manifest, idx)
    return f"{PENDING}{up.name}#{'' if idx is None else idx}"


def _lookup(plan: StepPlan, store: ArtifactStore) -> None:
    manifest = store.manifest(plan.key.digest)
    if manifest is None:
        plan.reason = "not in cache"
    elif expired(manifest, plan.spec.cache_ttl):
        plan.reason = f"cache entry older than cache_ttl={plan.spec.cache_ttl}s"
    elif len(manifest.get("outputs", ())) != plan.n_outputs:
        plan.reason = "stored output count differs"
    elif problem := _files_problem(store, manifest):
        warn_corrupt(plan.key.digest, problem)
        plan.reason = f"stored artifact damaged ({problem})"
    else:
        plan.action, plan.reason, plan.manifest = "cached", "cache hit", manifest


def _files_problem(store: ArtifactStore, manifest: Manifest) -> str | None:
    """``store.verify(manifest, deep=False)`` of a manifest ``store.manifest`` returned
    (already validated against its key: not checked a second time)."""
    for i in range(len(manifest["outputs"])):
        if problem := store.verify_output(manifest, i, deep=False):
            return problem
    return None


def _verify_needed(compiled: CompiledGraph, plans: dict[str, StepPlan], store: ArtifactStore
                   ) -> dict[str, str]:
    """Checksum cached artifacts that will be read; recompute corrupt ones (returned).
    On a remote store only their file lists and sizes are checked here (checksums would
    download every input to the driver): the task that loads one checksums it."""
    outs = output_nodes(compiled.outputs)
    graph = compiled.graph
    found: dict[str, str] = {}
    for name in reversed(compiled.order):
        plan = plans[name]
        if plan.action != "cached" or plan.manifest is None:
            continue
        consumers = [plans[c] for c in graph.successors(name)]
        if name in outs or any(c.action == "run" for c in consumers):
            if problem := store.verify(plan.manifest, deep=not store.is_remote):
                warn_corrupt(plan.key.digest, problem)
                plan.action, plan.manifest = "run", None
                plan.reason = found[name] = f"stored artifact corrupt ({problem})"
    return found
