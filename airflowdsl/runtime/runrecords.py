"""Run history kept in the store itself, for stores that are not a plain local directory
(``s3://``, ``gs://``, a shared ``file://`` mount): any machine that sees the store sees
its runs (``airflowdsl runs|show``), and no SQLite database (whose WAL and locks do not
work on network filesystems) is involved.

Layout (each record one JSON object, written whole: a single PUT on object stores,
temp + rename on a filesystem, so a reader sees an old or a new record, never half)::

    <store>/runs/<run id>/run.json           the run's row (written at start and end)
    <store>/runs/<run id>/steps/<step>.json  a step's row, key components, metrics, records

The rows have the shapes ``runtime.history.History`` returns, so the CLI and the UI read
either. Reads list and fetch these objects (one GET per run, one per step of a run
shown); it is meant for the hundreds of runs, not millions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflowdsl.runtime import fsutil
from airflowdsl.runtime.run import StepRun

if TYPE_CHECKING:
    import pyarrow.fs as pafs


class RunRecords:
    """The run history of one non-local store (same methods as ``History``)."""

    def __init__(self, fs: pafs.FileSystem, base: str, *,
                 git_commit: Callable[[], str | None] = lambda: None) -> None:
        self.fs, self.base, self._git_commit = fs, f"{base}/runs", git_commit
        self._own: dict[str, dict[str, Any]] = {}  # runs this process started

    # --- writes -------------------------------------------------------------------
    def _put(self, path: str, row: dict[str, Any]) -> None:
        fsutil.atomic_write(self.fs, f"{self.base}/{path}", json.dumps(row, default=str).encode())

    def start_run(self, run_id: str, pipeline: str, params: dict[str, Any], store: str,
                  started: float) -> None:
        row = {"id": run_id, "pipeline": pipeline, "params": json.dumps(params, default=repr),
               "status": "running", "started": started, "ended": None,
               "git_commit": self._git_commit(), "store": store, "error": None,
               "traceback": None}
        self._own[run_id] = row
        self._put(f"{run_id}/run.json", row)

    def record_steps(self, run_id: str, steps: list[tuple[StepRun, dict[str, Any] | None]]) -> None:
        """Write each step's record (replacing an earlier one of the same step), up to 16
        PUTs at once (a cached 50-step run records 50 steps at its start)."""
        rows = [self._step_record(run_id, s, c) for s, c in steps]
        if len(rows) == 1:
            self._put(*rows[0])
            return
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(rows)))) as pool:
            list(pool.map(lambda r: self._put(*r), rows))

    @staticmethod
    def _step_record(run_id: str, s: StepRun, components: dict[str, Any] | None
                     ) -> tuple[str, dict[str, Any]]:
        return (f"{run_id}/steps/{quote(s.name, safe='')}.json", {
                "run_id": run_id, "name": s.name, "kind": s.kind, "status": s.status,
                "cached": int(s.cached), "started": s.started, "ended": s.ended,
                "duration_s": s.duration_s, "cache_key": s.cache_key,
                "components": json.dumps(components) if components else None,
                "artifacts": json.dumps(s.artifacts), "error": s.error,
                "traceback": s.traceback, "reason": s.reason or None,
                "metrics": {k: float(v) for k, v in s.metrics.items()},
                "records": {k: list(rows) for k, rows in s.records.items()}})

    def finish_run(self, run_id: str, status: str, ended: float, error: str | None = None,
                   traceback: str | None = None) -> None:
        row = self._own.get(run_id) or self._run_row(run_id)
        if row is None:
            raise LookupError(f"no run {run_id!r} in {self.base}")
        row.update(status=status, ended=ended, error=error, traceback=traceback)
        self._put(f"{run_id}/run.json", row)

    def close(self) -> None:
        pass

    # --- reads --------------------------------------------------------------------
    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            data = json.loads(fsutil.read_bytes(self.fs, f"{self.base}/{path}"))
        except (FileNotFoundError, OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _run_row(self, run_id: str) -> dict[str, Any] | None:
        return self._get(f"{run_id}/run.json")

    def _ids(self) -> list[str]:
        import pyarrow.fs as pafs

        sel = pafs.FileSelector(self.base, recursive=False, allow_not_found=True)
        return [i.base_name for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.Directory]

    def _all_runs(self) -> list[dict[str, Any]]:
        """Every run's row, newest first."""
        ids = self._ids()
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(ids)))) as pool:
            rows = [r for r in pool.map(self._run_row, ids) if r is not None]
        return sorted(rows, key=lambda r: r.get("started") or 0.0, reverse=True)

    def _steps(self, run_id: str) -> list[dict[str, Any]]:
        import pyarrow.fs as pafs

        sel = pafs.FileSelector(f"{self.base}/{run_id}/steps", allow_not_found=True)
        names = [i.base_name for i in self.fs.get_file_info(sel) if i.base_name.endswith(".json")]
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(names)))) as pool:
            rows = [r for r in pool.map(lambda n: self._get(f"{run_id}/steps/{n}"), names) if r]
        return sorted(rows, key=lambda r: (r.get("started") is None, r.get("started") or 0.0))

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return [r for r in self._all_runs() if pipeline in (None, r.get("pipeline"))][:limit]

    def runs_page(self, pipeline: str | None = None, status: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        rows = [r for r in self._all_runs() if (not pipeline or r.get("pipeline") == pipeline)
                and (not status or r.get("status") == status)]
        page = rows[offset:offset + limit]
        for r in page:
            steps = self._steps(r["id"])
            r.update(n_steps=len(steps), n_cached=sum(int(s["cached"]) for s in steps),
                     n_executed=sum(1 for s in steps
                                    if not s["cached"] and s["status"] != "skipped"))
        return page, len(rows)

    def pipelines(self) -> list[str]:
        return sorted({str(r["pipeline"]) for r in self._all_runs()})

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run (id or unique id prefix) with its steps and metrics."""
        ids = [i for i in self._ids() if i.startswith(run_id)]
        if len(ids) != 1 and run_id not in ids:
            return None
        row = self._run_row(run_id if run_id in ids else ids[0])
        if row is None:
            return None
        steps = self._steps(row["id"])
        row["metrics"] = [{"step": s["name"], "name": k, "value": v}
                          for s in steps for k, v in (s.get("metrics") or {}).items()]
        row["steps"] = [_step_row(s) for s in steps]
        return row

    def records(self, run_id: str, step: str | None = None,
                kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        for s in sorted(self._steps(run_id), key=lambda s: s["name"]):
            if step is None or s["name"] == step:
                for k, rows in sorted((s.get("records") or {}).items()):
                    if kind is None or k == kind:
                        out += [{"step": s["name"], "kind": k, "seq": i, "data": d}
                                for i, d in enumerate(rows)]
        return out

    def _latest(self, pipeline: str, step: str, before: float | None
                ) -> dict[str, Any] | None:
        for r in self._all_runs():
            if r.get("pipeline") == pipeline and (before is None or (r.get("started") or 0) < before):
                s = self._get(f"{r['id']}/steps/{quote(step, safe='')}.json")
                if s and s.get("status") == "succeeded" and s.get("components"):
                    return s
        return None

    def previous_components(self, pipeline: str, step: str, before: float
                            ) -> dict[str, Any] | None:
        s = self._latest(pipeline, step, before)
        return json.loads(s["components"]) if s else None

    def last_components(self, pipeline: str, step: str) -> dict[str, Any] | None:
        s = self._latest(pipeline, step, None)
        return json.loads(s["components"]) if s else None

    def last_reasons(self, pipeline: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
        for r in self._all_runs():
            if r.get("pipeline") == pipeline and (steps := self._steps(r["id"])):
                return r["id"], {s["name"]: {"status": s["status"], "cached": bool(s["cached"]),
                                             "reason": s.get("reason") or ""} for s in steps}
        return None


def _step_row(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k not in ("metrics", "records")}
