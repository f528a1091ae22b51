"""Run a compiled pipeline the way the executor and its Ray tasks do, in this process and
without Ray: plan, then each step's task body (``tasks.run_step``: key resolution, lease,
lookup, store write) in topological order. Returns what happened to each step."""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

from airflowdsl.runtime import tasks
from airflowdsl.runtime.outputcheck import checkpoint_checks
from airflowdsl.runtime.planner import make_plan
from airflowdsl.runtime.store import ArtifactStore
from airflowdsl.runtime.summaries import unpack
from airflowdsl.runtime.tasks import Payload, Stored, run_step


def run_inproc(compiled: Any, st: ArtifactStore, **kw: Any) -> dict[str, str]:
    """``step -> "cached" | "served" | "computed" | "skip"`` (served: found stored by the
    task itself, e.g. early cutoff after an upstream re-ran with identical output)."""
    plans = make_plan(compiled, st, **kw)
    tasks._FNS.clear()  # functions pickle by reference here: resolve them afresh
    manifests: dict[str, Any] = {}
    status: dict[str, str] = {}
    for name, plan in plans.items():
        if plan.action in ("cached", "skip"):
            manifests[name], status[name] = plan.manifest, plan.action
            continue
        args = tuple((param, "stored", Stored(manifests[up], idx, plans[up].spec.multi_output))
                     for param, (up, idx) in plan.inputs.items())
        ctl = plan.ctl()
        payload = Payload(name, cloudpickle.dumps(plan.spec.fn), plan.params, args,
                          plan.spec.multi_output, plan.n_outputs, st.root, plan.key.digest,
                          {"pipeline": compiled.name, "step": name}, cache=ctl,
                          checks=checkpoint_checks(plan.spec.output_types))
        summary = unpack(run_step(pickle.dumps(payload), *({"manifest": manifests[u]}
                                                           for u in ctl.upstreams))[-1])
        manifests[name] = summary["manifest"]
        status[name] = "served" if summary.get("served") else "computed"
    return status
