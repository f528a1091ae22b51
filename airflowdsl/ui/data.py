"""What the pages show, read from a store without changing it.

Runs, steps, metrics and step records come from the run history (opened read-only:
``History(path, readonly=True)``), a run's graph from ``<root>/runs/<id>/dag.json``
(``runtime.rungraph``; for runs without one, edges are rebuilt from the input part of
the steps' recorded cache keys), outputs from the store's manifests, logs from
``<root>/runs/<id>/logs`` (``runtime.runlog``: local and URI stores alike, a step's
parts from training workers on other nodes included). Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from airflowdsl.errors import LoadError
from airflowdsl.runtime.explain import diff_components, library_changes
from airflowdsl.runtime.history import History, history_path, in_store
from airflowdsl.runtime.rungraph import read_run_graph
from airflowdsl.runtime.runlog import log_folder, log_names, read_log, read_log_tail
from airflowdsl.runtime.runrecords import RunRecords
from airflowdsl.runtime.store import ArtifactStore, default_root

STATUSES = ("succeeded", "cached", "failed", "cancelled", "skipped", "running", "pending")
RUN_STATUSES = ("running", "succeeded", "failed", "cancelled")
LOG_TAIL_BYTES = 64 * 1024
_SPLIT_PREFIXES = ("train", "valid", "validation", "val", "eval", "test")


def when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def seconds(d: float | None) -> str:
    if d is None:
        return ""
    if d < 60:
        return f"{d:.2f}s"
    m, s = divmod(int(d), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def size(n: float | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _duration(run: dict[str, Any]) -> str:
    if run["ended"] and run["started"]:
        return seconds(run["ended"] - run["started"])
    if run["status"] == "running" and run["started"]:
        return f"{seconds(max(0.0, time.time() - run['started']))} so far"
    return ""


def _log_names(arts: ArtifactStore, run_id: str, step: str | None = None) -> list[str]:
    try:
        return log_names(arts, run_id, step)
    except OSError:  # an unreachable store shows no logs
        return []


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def metric_group(name: str) -> tuple[str, str]:
    """``train-logloss`` -> (``logloss``, ``train``): the chart a series goes in, and its
    label; names without a split prefix are their own chart."""
    for sep in ("-", "_", "/"):
        head, found, tail = name.partition(sep)
        if found and tail and head.lower() in _SPLIT_PREFIXES:
            return tail, head
    return name, name


@dataclass
class StoreView:
    """Read-only access to one store root (its history is opened on first need, so a page
    started before the first run shows runs once there are some)."""

    root: str
    _history: History | RunRecords | None = None

    @classmethod
    def open(cls, store: str | None) -> StoreView:
        """The view of ``store`` (default: ``$AIRFLOWDSL_HOME`` or ``./.airflowdsl``).

        Raises:
            LoadError: the store does not exist (a local folder that is missing, or a URI
                store with no run history on this machine).
        """
        root = default_root(store)
        local = "://" not in root or root.startswith("file://")
        folder = root.removeprefix("file://")
        if local and not os.path.isdir(folder):
            raise LoadError(f"no store at {folder} (run a pipeline first, or pass --store)")
        if not local and not in_store(root) and not history_path(root).is_file():
            raise LoadError(f"no run history for {root} on this machine "
                            f"(expected {history_path(root)})")
        return cls(root)

    @property
    def history(self) -> History | RunRecords | None:
        """The history, read-only; None until a run has created it (a file whose tables
        are not committed yet counts as none: the first run is creating it). A URI
        store's run records are read from the store (``runtime.runrecords``)."""
        if self._history is None and in_store(self.root):
            self._history = History.for_root(self.root)
        if self._history is None:
            try:
                h = History(history_path(self.root), readonly=True)
            except (FileNotFoundError, OSError, sqlite3.Error):
                return None
            try:
                h.pipelines()
            except sqlite3.OperationalError:
                h.close()
                return None
            self._history = h
        return self._history

    # --- runs ---------------------------------------------------------------------

    def runs_page(self, pipeline: str | None, status: str | None, page: int,
                  per_page: int = 50) -> dict[str, Any]:
        h = self.history
        if h is None:
            return {"runs": [], "total": 0, "page": 1, "pages": 1, "pipelines": []}
        rows, total = h.runs_page(pipeline, status, per_page, (page - 1) * per_page)
        for r in rows:
            r["started_at"] = when(r["started"])
            r["duration"] = _duration(r)
        return {"runs": rows, "total": total, "page": page,
                "pages": max(1, math.ceil(total / per_page)), "pipelines": h.pipelines()}

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its steps (as shown: ``cached`` for cache hits, ``running`` for an
        unfinished step of a running run whose upstreams are done), graph and metrics."""
        h = self.history
        rec = h.run(run_id) if h is not None else None
        if rec is None:
            return None
        rec["params"] = _loads(rec["params"], {})
        rec["started_at"] = when(rec["started"])
        rec["duration"] = _duration(rec)
        store = rec["store"] or self.root
        graph = read_run_graph(store, rec["id"]) or self._graph_from_steps(rec["steps"])
        recorded = {s["name"]: s for s in rec["steps"]}
        nodes = {n["name"]: n for n in graph["nodes"]}
        for s in rec["steps"]:  # a step the graph file does not know (should not happen)
            nodes.setdefault(s["name"], {"name": s["name"], "kind": s["kind"], "params": {},
                                         "inputs": {}, "input_types": {}, "output_types": []})
        preds: dict[str, list[str]] = {n: [] for n in nodes}
        for e in graph["edges"]:
            if e["target"] in preds:
                preds[e["target"]].append(e["source"])
        steps = []
        for name, node in nodes.items():
            s = recorded.get(name)
            if s is not None:
                status = "cached" if s["cached"] and s["status"] == "succeeded" else s["status"]
            elif rec["status"] == "running" and all(
                    recorded.get(p, {}).get("status") == "succeeded" for p in preds[name]):
                status = "running"
            else:
                status = "pending" if rec["status"] == "running" else "skipped"
            steps.append({"name": name, "kind": (s or node).get("kind") or "step",
                          "status": status, "duration": seconds(s["duration_s"])
                          if s and not s["cached"] else "",
                          "error": (s or {}).get("error")})
        metrics: dict[str, dict[str, float]] = {}
        for m in rec["metrics"]:
            metrics.setdefault(m["step"], {})[m["name"]] = m["value"]
        rec.update(step_list=steps, graph=graph, metric_table=metrics)
        return rec

    @staticmethod
    def _graph_from_steps(steps: list[dict[str, Any]]) -> dict[str, Any]:
        """Nodes from the recorded steps, edges from their keys' input parts."""
        names = {s["name"] for s in steps}
        nodes: list[dict[str, Any]] = []
        edges: list[dict[str, Any]] = []
        for s in steps:
            comp = _loads(s["components"], {})
            inputs = (comp.get("inputs") or {}).get("notes") or {}
            ins = {}
            for param, up in inputs.items():
                src, _, idx = str(up).partition("#")
                ins[param] = [src, int(idx) if idx.isdigit() else None]
                if src in names and not any(e["source"] == src and e["target"] == s["name"]
                                            for e in edges):
                    edges.append({"source": src, "target": s["name"], "param": param, "type": ""})
            params = (comp.get("params") or {}).get("notes") or {}
            nodes.append({"name": s["name"], "kind": s["kind"], "params": params, "inputs": ins,
                          "input_types": {}, "output_types": []})
        return {"nodes": nodes, "edges": edges, "version": 0}

    def status(self, run_id: str) -> dict[str, Any] | None:
        """What a live page polls: the run's status and each step's shown status."""
        rec = self.run(run_id)
        if rec is None:
            return None
        return {"id": rec["id"], "status": rec["status"], "duration": rec["duration"],
                "steps": {s["name"]: {"status": s["status"], "duration": s["duration"]}
                          for s in rec["step_list"]}}

    # --- one step -----------------------------------------------------------------

    def step(self, rec: dict[str, Any], name: str) -> dict[str, Any] | None:
        """The panel of step ``name`` of run ``rec`` (from :meth:`run`)."""
        shown = next((s for s in rec["step_list"] if s["name"] == name), None)
        if shown is None:
            return None
        node: dict[str, Any] = next((n for n in rec["graph"]["nodes"] if n["name"] == name), {})
        s = next((x for x in rec["steps"] if x["name"] == name), None) or {}
        store = rec["store"] or self.root
        comp = _loads(s.get("components"), {})
        params = node.get("params") or (comp.get("params") or {}).get("notes") or {}
        out: dict[str, Any] = {
            "name": name, "kind": shown["kind"], "status": shown["status"],
            "duration": shown["duration"], "started_at": when(s.get("started")),
            "params": params, "cache_key": s.get("cache_key"),
            "why": self._why(rec, name, shown["status"], comp, s.get("reason")),
            "error": s.get("error"), "traceback": s.get("traceback"),
            "metrics": rec["metric_table"].get(name, {}),
        }
        by_name = {x["name"]: x for x in rec["steps"]}
        arts = ArtifactStore(store)
        inputs = []
        for param, (up, idx) in (node.get("inputs") or {}).items():
            upstream = by_name.get(up) or {}
            files = self._output(arts, upstream.get("cache_key"), idx or 0)
            inputs.append({"param": param, "from": up if idx is None else f"{up}[{idx}]",
                           "upstream": up, "type": (node.get("input_types") or {}).get(param, ""),
                           **files})
        outputs = []
        types = node.get("output_types") or []
        paths = _loads(s.get("artifacts"), [])
        manifest = self._manifest(arts, s.get("cache_key"))
        count = len(manifest["outputs"]) if manifest else max(len(types), len(paths))
        for i in range(count):
            info = self._describe(manifest["outputs"][i]) if manifest else {}
            outputs.append({"index": i, "type": types[i] if i < len(types) else "",
                            "path": paths[i] if i < len(paths) else "", **info})
        out.update(inputs=inputs, outputs=outputs)
        out["logs"] = self._step_logs(store, rec["id"], name)
        h = self.history
        try:
            records = h.records(rec["id"], name) if h is not None else []
        except sqlite3.OperationalError:  # a history from before step records
            records = []
        out["reports"] = [r["data"] for r in records if r["kind"] == "report"]
        out["trials"] = [r["data"] for r in records if r["kind"] == "trial"]
        out["charts"] = report_charts(out["reports"])
        out["checkpoints"] = [r for r in out["reports"] if r.get("checkpoint")]
        out["trial_view"] = trial_view(out["trials"])
        return out

    def _why(self, rec: dict[str, Any], name: str, status: str,
             comp: dict[str, Any], recorded: str | None) -> list[str]:
        """Why the step ran or was served: the reason the runtime recorded (``forced``,
        ``cache disabled for this step``, ``upstream X re-ran but produced identical
        output``, ...) and, for a cache miss, what changed since its previous result."""
        if status == "skipped":
            return [recorded or "not run: an upstream step failed, or only= left it out"]
        if status in ("pending", "running"):
            return [f"{status}: not finished yet"]
        if status == "cancelled":
            return ["cancelled before it finished (Ctrl-C)"]
        h = self.history
        old = h.previous_components(rec["pipeline"], name, rec["started"]) \
            if h is not None and comp else None
        if status == "cached":
            said = [recorded] if recorded and recorded != "cache hit" else []
            return ["served from the cache", *said,
                    *(library_changes(old, comp) if old else [])]
        # a plan-time guess ("upstream X re-runs; served from the cache if its output is
        # unchanged") stays recorded when the step then ran: what changed says more
        guess = bool(recorded) and "served from the cache if" in str(recorded)
        reasons = [recorded] if recorded and recorded != "not in cache" and not guess else []
        if comp and old is None and not reasons:
            reasons.append("never run before")
        elif comp and old is not None:
            reasons += diff_components(old, comp)
        return reasons or ["ran with the same key as its previous result (the stored result "
                           "was gone, or the run was forced)"]

    @staticmethod
    def _manifest(arts: ArtifactStore, key: str | None) -> dict[str, Any] | None:
        if not key:
            return None
        try:
            return arts.manifest(key)
        except Exception:  # noqa: BLE001 - an unreadable store shows no sizes
            return None

    @staticmethod
    def _describe(out: dict[str, Any]) -> dict[str, Any]:
        files = out.get("files") or {}
        total = sum(int(v[0]) for v in files.values() if isinstance(v, list) and v)
        return {"format": out.get("format", ""), "size": size(total), "files": len(files),
                "class": out.get("type", "")}

    def _output(self, arts: ArtifactStore, key: str | None, index: int) -> dict[str, Any]:
        m = self._manifest(arts, key)
        if m is None or index >= len(m["outputs"]):
            return {"format": "", "size": "", "files": 0, "class": ""}
        return self._describe(m["outputs"][index])

    def log_text(self, store: str, run_id: str, name: str) -> str | None:
        """The whole log ``name`` of a run (a step name, ``<step>@<where>`` for a step's
        part from a training worker on another node, or ``ray``); None if it has none."""
        arts = ArtifactStore.open(store)
        if f"{name}.log" not in _log_names(arts, run_id):
            return None
        return read_log(arts, run_id, f"{name}.log")

    @staticmethod
    def _step_logs(store: str, run_id: str, step: str) -> list[dict[str, Any]]:
        """A step's own log, then its parts from other nodes: the last ``LOG_TAIL_BYTES``
        of each, whether it is longer, and where it is."""
        arts = ArtifactStore.open(store)
        out = []
        for n in _log_names(arts, run_id, step):
            text, cut = read_log_tail(arts, run_id, n, LOG_TAIL_BYTES)
            out.append({"name": n[:-4], "text": text, "truncated": cut,
                        "path": f"{log_folder(arts, run_id)}/{n}"})
        return out

    def logs(self, rec: dict[str, Any]) -> list[str]:
        """Names of a run's log files (each step's, then its parts; ``ray`` last)."""
        arts = ArtifactStore.open(rec["store"] or self.root)
        return [n[:-4] for n in _log_names(arts, rec["id"])]

    # --- compare ------------------------------------------------------------------

    def compare(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Two runs (from :meth:`run`) side by side: params, steps, metrics."""
        pa, pb = a["params"], b["params"]
        params = [{"name": k, "a": pa.get(k, ""), "b": pb.get(k, ""),
                   "changed": pa.get(k) != pb.get(k)} for k in sorted(set(pa) | set(pb))]
        sa = {s["name"]: s for s in a["steps"]}
        sb = {s["name"]: s for s in b["steps"]}
        shown_a = {s["name"]: s for s in a["step_list"]}
        shown_b = {s["name"]: s for s in b["step_list"]}
        steps = []
        for name in list(shown_a) + [n for n in shown_b if n not in shown_a]:
            x, y = sa.get(name) or {}, sb.get(name) or {}
            ka, kb = x.get("cache_key"), y.get("cache_key")
            ca, cb = _loads(x.get("components"), {}), _loads(y.get("components"), {})
            if ka and kb and ka == kb:
                why = ["same key"]
            elif ca and cb:
                why = diff_components(ca, cb) or ["same recipe, different input content"]
            else:
                why = ["not recorded in both runs"]
            steps.append({"name": name,
                          "a": (shown_a.get(name) or {}).get("status", "-"),
                          "b": (shown_b.get(name) or {}).get("status", "-"),
                          "key_a": (ka or "")[:12], "key_b": (kb or "")[:12],
                          "changed": not (ka and ka == kb), "why": why})
        ma, mb = a["metric_table"], b["metric_table"]
        metrics = []
        for step in sorted(set(ma) | set(mb)):
            for k in sorted(set(ma.get(step, {})) | set(mb.get(step, {}))):
                va, vb = ma.get(step, {}).get(k), mb.get(step, {}).get(k)
                delta = vb - va if va is not None and vb is not None else None
                metrics.append({"step": step, "name": k, "a": va, "b": vb, "delta": delta})
        return {"params": params, "steps": steps, "metrics": metrics}

    def close(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None


# --- records ---------------------------------------------------------------------

_NOT_SERIES = {"training_iteration", "time_total_s", "timestamp", "time_this_iter_s",
               "checkpoint", "epoch", "step", "done"}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def report_charts(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Line charts of a training step's reports over iterations: one chart per metric,
    with ``train-X``/``valid-X`` (and ``_``, ``/`` spellings) as series of chart ``X``."""
    charts: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for i, row in enumerate(reports, 1):
        x = row.get("training_iteration", i)
        for k, v in row.items():
            if k in _NOT_SERIES or not _number(v):
                continue
            chart, label = metric_group(k)
            charts.setdefault(chart, {}).setdefault(label, []).append((x, v))
    return [{"metric": name, "series": [{"label": label, "points": pts}
                                        for label, pts in series.items()]}
            for name, series in charts.items()]


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"params": {"eta": 0.1}}`` -> ``{"params.eta": 0.1}`` (a trainer's param_space)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def trial_view(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """A Tune step's trials as a table (config columns, metric columns, status, best) and
    the data of a config-vs-metric scatter chart."""
    rows: list[dict[str, Any]] = []
    for i, t in enumerate(trials):
        config = _flat(t["config"]) if isinstance(t.get("config"), dict) else {
            k.split("/", 1)[1]: v for k, v in t.items() if k.startswith("config/")}
        metrics = t.get("metrics") if isinstance(t.get("metrics"), dict) else {
            k: v for k, v in t.items() if _number(v) and not k.startswith("config/")}
        rows.append({"id": str(t.get("trial_id") or t.get("id") or f"trial_{i}"),
                     "config": config, "metrics": metrics,
                     "status": str(t.get("status") or ""), "best": bool(t.get("best")),
                     "error": str(t["error"]) if t.get("error") else None})
    config_keys = sorted({k for r in rows for k in r["config"]})
    metric_keys = sorted({k for r in rows for k, v in r["metrics"].items() if _number(v)}
                         - _NOT_SERIES)
    numeric_config = [k for k in config_keys
                      if all(_number(r["config"].get(k)) for r in rows if k in r["config"])]
    metric = next((str(t["metric"]) for t in trials if isinstance(t.get("metric"), str)), None)
    if metric not in metric_keys:  # else the metric the best trial alone is extreme in
        best = next((r for r in rows if r["best"]), None)

        def extreme(k: str, unique: bool) -> bool:
            values = [r["metrics"][k] for r in rows if _number(r["metrics"].get(k))]
            mine = best["metrics"].get(k) if best is not None else None
            if mine is None or not values or mine not in (min(values), max(values)):
                return False
            return not unique or values.count(mine) == 1

        metric = next((k for k in metric_keys if extreme(k, True)),
                      next((k for k in metric_keys if extreme(k, False)),
                           metric_keys[0] if metric_keys else None))
    return {"rows": rows, "config_keys": config_keys, "metric_keys": metric_keys,
            "numeric_config": numeric_config, "metric": metric,
            "best": next((r["id"] for r in rows if r["best"]), None),
            "errors": any(r["error"] for r in rows)}


__all__ = ["RUN_STATUSES", "STATUSES", "StoreView", "metric_group", "report_charts",
           "seconds", "size", "trial_view", "when"]
