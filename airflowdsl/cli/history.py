"""``airflowdsl runs``, ``airflowdsl show RUN_ID``, ``airflowdsl cache ls|clear|gc``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from airflowdsl.cli._load import fail
from airflowdsl.cli.run import STYLE, Store

PipelineOpt = Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline")]


def _history(store: str | None) -> Any:
    from airflowdsl.runtime.history import History
    from airflowdsl.runtime.store import default_root

    return History.for_root(default_root(store))


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def _dur(a: float | None, b: float | None) -> str:
    return f"{b - a:.2f}s" if a is not None and b is not None else ""


def _table(*cols: str, title: str | None = None) -> Table:
    t = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for i, c in enumerate(cols):  # ids and keys are never cut; long cells fold
        t.add_column(c, no_wrap=i == 0, min_width=22 if i == 0 else None, overflow="fold")
    return t


def runs(pipeline: PipelineOpt = None, limit: Annotated[int, typer.Option(help="How many")] = 20,
         store: Store = None) -> None:
    """Recent runs, newest first."""
    t = _table("run", "pipeline", "status", "started", "duration", "commit")
    for r in _history(store).runs(pipeline, limit):
        st = r["status"]
        t.add_row(r["id"], r["pipeline"], f"[{STYLE.get(st, '')}]{st}[/]", _when(r["started"]),
                  _dur(r["started"], r["ended"]), (r["git_commit"] or "")[:10])
    Console().print(t)


def show(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix)")],
         step: Annotated[str | None, typer.Option(
             "--step", help="One step's records: a tune step's trials, a trainer's reports")
         ] = None,
         store: Store = None) -> None:
    """A run's steps: cached or not, durations, errors, artifact paths, metrics, and the
    trials of its tune steps."""
    history = _history(store)
    r = history.run(run_id)
    if r is None:
        fail(f"no run {run_id!r} (see `airflowdsl runs`)")
    c = Console()
    if step is not None:
        if step not in {s["name"] for s in r["steps"]}:
            fail(f"run {r['id']} has no step {step!r} (steps: "
                 f"{', '.join(s['name'] for s in r['steps'])})")
        records = history.records(r["id"], step)
        if not records:
            c.print(f"step {step} recorded nothing in run {r['id']} (a cached step's records "
                    "are in the run that computed it)")
        for kind in dict.fromkeys(rec["kind"] for rec in records):
            rows = [rec["data"] for rec in records if rec["kind"] == kind]
            c.print(_records_table(step, kind, rows, limit=None))
        return
    c.print(f"run [bold]{r['id']}[/]  pipeline {r['pipeline']}  {r['status']}  "
            f"started {_when(r['started'])}  {_dur(r['started'], r['ended'])}")
    c.print(f"params {r['params']}  store {r['store']}  commit {r['git_commit'] or '-'}")
    t = _table("step", "kind", "status", "duration", "cache key", "why", "artifacts")
    for s in r["steps"]:
        st = "cached" if s["cached"] else s["status"]
        arts = "\n".join(json.loads(s["artifacts"] or "[]"))
        t.add_row(s["name"], s["kind"], f"[{STYLE.get(st, '')}]{st}[/]",
                  f"{s['duration_s']:.2f}s" if s["duration_s"] is not None and not s["cached"] else "",
                  (s["cache_key"] or "")[:12], s.get("reason") or "", arts)
    c.print(t)
    for m in r["metrics"]:
        c.print(f"metric {m['step']}.{m['name']} = {m['value']:.6g}")
    trials = history.records(r["id"], kind="trial")
    for name in dict.fromkeys(rec["step"] for rec in trials):
        rows = [rec["data"] for rec in trials if rec["step"] == name]
        c.print(_records_table(name, "trial", rows, limit=10))
    for s in r["steps"]:
        if s["error"]:
            c.print(f"[bold red]step {s['name']} failed:[/] {s['error']}", highlight=False)
            if s["traceback"]:
                c.print(s["traceback"], markup=False, highlight=False)


def _records_table(step: str, kind: str, rows: list[dict[str, Any]], *,
                   limit: int | None) -> Table:
    """``trial`` rows: id, status, best, the config's leaves, then up to 4 metrics; any
    other kind: its keys as columns (up to 8)."""
    if kind == "trial":
        configs = [_leaves(row.get("config") or {}) for row in rows]
        params = list(dict.fromkeys(k for cfg in configs for k in cfg))
        metrics = list(dict.fromkeys(k for row in rows for k in row.get("metrics") or {}))[:4]
        best = next((i for i, row in enumerate(rows) if row.get("best")), None)
        t = _table("trial", "status", "best", *params, *metrics,
                   title=f"{step}: {len(rows)} trial(s)")
        t.columns[0].min_width = None  # trial ids are short; a narrow terminal folds the
        t.columns[1].no_wrap = True  # metric values, never a status (TERMINATED / ERROR)
        for i, (row, cfg) in enumerate(zip(rows, configs, strict=True)):
            if limit is not None and i >= limit and i != best:
                continue
            t.add_row(str(row.get("trial_id", i)), str(row.get("status", "")),
                      "*" if row.get("best") else "",
                      *[_cell(cfg.get(p)) for p in params],
                      *[_cell((row.get("metrics") or {}).get(m)) for m in metrics])
        return t
    cols = list(dict.fromkeys(k for row in rows for k in row))[:8]
    t = _table(*cols, title=f"{step}: {len(rows)} {kind} record(s)")
    for row in rows:
        t.add_row(*[_cell(row.get(col)) for col in cols])
    return t


def _leaves(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"params": {"eta": 0.1}}`` as ``{"params.eta": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


cache_app = typer.Typer(help="Inspect or clear the artifact cache.", no_args_is_help=True)


@cache_app.command("ls")
def cache_ls(pipeline: PipelineOpt = None, store: Store = None) -> None:
    """Stored artifacts: key, pipeline, step, formats, size, age."""
    from airflowdsl.runtime.store import ArtifactStore

    st = ArtifactStore.open(store)
    t = _table("key", "pipeline", "step", "formats", "size", "created", title=st.root)
    total = 0
    entries = sorted(st.entries(), key=lambda m: m.get("created", 0))
    for m in entries:
        if pipeline and m.get("pipeline") != pipeline:
            continue
        total += m.get("size", 0)
        t.add_row(m["key"][:16], m.get("pipeline", ""), m.get("step", ""),
                  ",".join(o["format"] for o in m["outputs"]), _size(m.get("size", 0)),
                  _when(m.get("created")))
    c = Console()
    c.print(t)
    c.print(f"{t.row_count} entries, {_size(total)}")


@cache_app.command("clear")
def cache_clear(pipeline: PipelineOpt = None, store: Store = None) -> None:
    """Delete cached artifacts (all, or one pipeline's). Run history is kept."""
    from airflowdsl.runtime.store import ArtifactStore

    st = ArtifactStore.open(store)
    n = st.clear(pipeline=pipeline)
    typer.echo(f"removed {n} cache entr{'y' if n == 1 else 'ies'} from {st.root}")


@cache_app.command("gc")
def cache_gc(grace: Annotated[float, typer.Option(
                 help="Only remove what has been unused this many seconds")] = 3600.0,
             dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing")] = False,
             store: Store = None) -> None:
    """Remove orphaned write folders, expired entries, finished steps' trainer folders and
    unused lock files."""
    from airflowdsl.runtime.gc import collect
    from airflowdsl.runtime.store import ArtifactStore

    st = ArtifactStore.open(store)
    r = collect(st, grace_s=grace, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(r.orphans)} orphaned write folder(s), {len(r.expired)} expired "
               f"entr{'y' if len(r.expired) == 1 else 'ies'}, {len(r.trainer)} trainer "
               f"folder(s) ({_size(r.freed_bytes)}), {len(r.other)} other file(s) from "
               f"{st.root}; {len(r.skipped_busy)} busy entries skipped")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("show")(show)
    app.add_typer(cache_app, name="cache")


__all__ = ["cache_app", "register", "runs", "show"]
