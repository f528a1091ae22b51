"""Say, for each step, whether the next run will hit the cache, and if not why.

The current key components are compared with those recorded for the same
pipeline and step in the latest successful run (kept in the history DB):
"code changed in function mod.helper", "param max_depth changed: 3 -> 4",
"upstream split changed", "watched file data/x.csv changed", "library numpy 2.3.0 ->
2.4.6 since this result was stored", ... A step downstream of one that re-runs is
"served from the cache if its output is unchanged" (early cutoff, ``runtime.cutoff``);
after the run its ``StepRun.reason`` says "upstream X re-ran but produced identical
output". That reason is kept in the history (``steps.reason``), so ``Explanation.last_run``
says why each step ran or was served in the pipeline's latest recorded run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflowdsl.runtime.contracts import CompiledGraph
from airflowdsl.runtime.history import History
from airflowdsl.runtime.planner import make_plan
from airflowdsl.runtime.store import ArtifactStore


@dataclass(frozen=True)
class Explanation:
    step: str
    hit: bool
    reasons: tuple[str, ...]
    cache_key: str
    #: why the step ran or was served in the latest recorded run ("" if none), e.g.
    #: "ran: not in cache", "served: upstream split re-ran but produced identical output"
    last_run: str = ""


def explain(compiled: CompiledGraph, *, store: str | os.PathLike[str] | None = None, force: bool = False,
            from_step: str | None = None, only: Iterable[str] | str | None = None
            ) -> list[Explanation]:
    """One :class:`Explanation` per step, in topological order. Runs nothing."""
    st = ArtifactStore.open(store)
    history = History.for_root(st.root)
    plans = make_plan(compiled, st, force=force, from_step=from_step, only=only)
    last = history.last_reasons(compiled.name)
    out = []
    for name, plan in plans.items():
        reasons: list[str] = [plan.reason]
        old = history.last_components(compiled.name, name)
        if plan.action == "run" and plan.reason == "not in cache":
            diffs = diff_components(old, plan.key.components()) if old else ["never run before"]
            reasons = diffs or ["same key as last time, but its artifact is gone (cache cleared?)"]
        elif plan.action == "cached" and old:
            reasons += library_changes(old, plan.key.components())
        out.append(Explanation(name, plan.action == "cached", tuple(reasons), plan.key.digest,
                               recorded_reason(last[1].get(name)) if last else ""))
    history.close()
    return out


def recorded_reason(row: dict[str, Any] | None) -> str:
    """One step's row of the history as "<what happened>: <why>" ("" if not recorded)."""
    if not row:
        return ""
    what = ("served" if row["cached"] else "ran" if row["status"] in ("succeeded", "failed")
            else str(row["status"]))
    return f"{what}: {row['reason']}" if row.get("reason") else what


def _changed(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str]]:
    keys = sorted(set(old) | set(new))
    return [(k, "added" if k not in old else "removed" if k not in new else "changed")
            for k in keys if old.get(k) != new.get(k)]


def diff_components(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human reasons why two recorded key component sets differ."""
    def part(src: dict[str, Any], name: str) -> tuple[dict[str, str], dict[str, str]]:
        p = src.get(name) or {}
        return p.get("detail", {}), p.get("notes", {})

    reasons: list[str] = []
    for name in ("code", "params", "inputs", "version", "watch", "libraries"):
        (od, on), (nd, nn) = part(old, name), part(new, name)
        for key, how in _changed(od, nd):
            reasons.append(_describe(name, key, how, on, nn))
    return reasons + library_changes(old, new)


def library_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Versions of libraries the step's code references that differ from the recorded
    ones (recorded per step, in the key only with ``cache_key=("libraries",)``)."""
    was = (old.get("code") or {}).get("notes", {})
    now = (new.get("code") or {}).get("notes", {})
    out = []
    for k in sorted(set(was) | set(now)):
        if k.startswith("lib:") and k in was and k in now and was[k] != now[k]:
            out.append(f"library {k[4:]} {was[k]} -> {now[k]} since this result was stored "
                       "(not in the key; cache_key=('libraries',) puts it there)")
    return out


def _describe(part: str, key: str, how: str, old_notes: dict[str, str],
              new_notes: dict[str, str]) -> str:
    if part == "code":
        what = f"constant {key[6:]}" if key.startswith("const:") else key
        return f"code {how} in {what}" if how == "changed" else f"code dependency {what} {how}"
    if part == "params":
        if how == "changed":
            return f"param {key} changed: {old_notes.get(key, '?')} -> {new_notes.get(key, '?')}"
        return f"param {key} {how}"
    if part == "inputs":
        return f"upstream {new_notes.get(key) or old_notes.get(key) or key} changed (input {key})"
    if part == "version":
        return "version changed"
    if part == "libraries":
        return f"library {key} {how}: {old_notes.get(key, '?')} -> {new_notes.get(key, '?')}"
    return f"watched file {key} {how}"
