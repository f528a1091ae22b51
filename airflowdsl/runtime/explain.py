"""Say, for each step, whether the next run will hit the cache, and if not why.

The current key components are compared with those recorded for the same
pipeline and step in the latest successful run (kept in the history DB):
"code changed in function mod.helper", "param max_depth changed: 3 -> 4",
"upstream split changed", "watched file data/x.csv changed", ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflowdsl.runtime.history import History
from airflowdsl.runtime.planner import make_plan
from airflowdsl.runtime.store import ArtifactStore


@dataclass(frozen=True)
class Explanation:
    step: str
    hit: bool
    reasons: tuple[str, ...]
    cache_key: str


def explain(compiled: Any, *, store: str | os.PathLike[str] | None = None, force: bool = False,
            from_step: str | None = None, only: Iterable[str] | str | None = None
            ) -> list[Explanation]:
    """One :class:`Explanation` per step, in topological order. Runs nothing."""
    st = ArtifactStore.open(store)
    history = History.for_root(st.root)
    plans = make_plan(compiled, st, force=force, from_step=from_step, only=only)
    out = []
    for name, plan in plans.items():
        reasons: list[str] = [plan.reason]
        if plan.action == "run" and plan.reason == "not in cache":
            old = history.last_components(compiled.name, name)
            diffs = diff_components(old, plan.key.components()) if old else ["never run before"]
            reasons = diffs or ["same key as last time, but its artifact is gone (cache cleared?)"]
        out.append(Explanation(name, plan.action == "cached", tuple(reasons), plan.key.digest))
    history.close()
    return out


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
    for name in ("code", "params", "inputs", "version", "watch"):
        (od, on), (nd, nn) = part(old, name), part(new, name)
        for key, how in _changed(od, nd):
            reasons.append(_describe(name, key, how, on, nn))
    return reasons


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
    return f"watched file {key} {how}"
