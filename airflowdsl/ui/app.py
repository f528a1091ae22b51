"""The Starlette application: pages rendered with Jinja2, assets served from the package.

Routes: ``/`` (runs, filter and page through them), ``/runs/{id}`` (DAG coloured by step
status, step list, metrics; ``?step=`` opens a step's panel), ``/runs/{id}/steps/{step}``
(the panel alone, fetched when a node is clicked), ``/runs/{id}/logs/{name}`` (a whole
log file as text), ``/compare?a=&b=`` (two runs side by side), ``/api/runs/{id}`` (the
status a live page polls). Every handler only reads (``ui.data.StoreView``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from airflowdsl.dsl.render import KIND_STYLE, STATUS_COLOR
from airflowdsl.ui.data import RUN_STATUSES, StoreView, seconds, when
from airflowdsl.ui.layout import NODE_H, NODE_W, layout

HERE = Path(__file__).resolve().parent
PER_PAGE = 50
MAX_PER_PAGE = 1000


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(text))) if text else default
    except ValueError:
        return default


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["when"] = when
    env.filters["seconds"] = seconds
    env.filters["num"] = lambda v: "" if v is None else (
        f"{v:.6g}" if isinstance(v, float) else str(v))
    env.globals.update(STATUS_COLOR=STATUS_COLOR, KIND_FILL={k: v[1] for k, v in KIND_STYLE.items()},
                       NODE_W=NODE_W, NODE_H=NODE_H)
    return env


def create_app(view: StoreView) -> Starlette:
    """The UI of the store behind ``view`` (see :meth:`StoreView.open`)."""
    env = _env()

    def page(name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(root=view.root, **ctx)
        return HTMLResponse(html, status_code=status_code)

    def not_found(what: str) -> HTTPException:
        return HTTPException(404, what)

    def load_run(run_id: str) -> dict[str, Any]:
        rec = view.run(run_id)
        if rec is None:
            raise not_found(f"no run {run_id!r} in {view.root}")
        return rec

    async def runs(request: Request) -> Response:
        q = request.query_params
        pipeline = q.get("pipeline") or None
        status = q.get("status") or None
        page_no = _int(q.get("page"), 1, 1, 10**9)
        per_page = _int(q.get("per_page"), PER_PAGE, 10, MAX_PER_PAGE)
        data = view.runs_page(pipeline, status, page_no, per_page)
        ctx = dict(data, pipeline=pipeline or "", status=status or "", statuses=RUN_STATUSES,
                   history_exists=view.history is not None, per_page=per_page)
        if q.get("fragment"):
            return page("runs_table.html", **ctx)
        return page("runs.html", **ctx)

    async def run(request: Request) -> Response:
        rec = load_run(request.path_params["run_id"])
        names = [s["name"] for s in rec["step_list"]]
        lay = layout(names, [(e["source"], e["target"]) for e in rec["graph"]["edges"]])
        selected = request.query_params.get("step")
        panel = view.step(rec, selected) if selected else None
        if selected and panel is None:
            raise not_found(f"run {rec['id']} has no step {selected!r}")
        others = [r for r in view.runs_page(rec["pipeline"], None, 1, 20)["runs"]
                  if r["id"] != rec["id"]]
        return page("run.html", run=rec, layout=lay, panel=panel, logs=view.logs(rec),
                    others=others)

    async def step(request: Request) -> Response:
        rec = load_run(request.path_params["run_id"])
        panel = view.step(rec, request.path_params["step"])
        if panel is None:
            raise not_found(f"run {rec['id']} has no step {request.path_params['step']!r}")
        return page("step.html", run=rec, panel=panel)

    async def log(request: Request) -> Response:
        rec = load_run(request.path_params["run_id"])
        name = request.path_params["name"]
        text = view.log_text(rec["store"] or view.root, rec["id"], name)
        if text is None:
            raise not_found(f"run {rec['id']} has no log {name!r}")
        return PlainTextResponse(text)

    async def api_run(request: Request) -> Response:
        got = view.status(request.path_params["run_id"])
        if got is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        return JSONResponse(got)

    async def compare(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        ra, rb = load_run(a), load_run(b)
        return page("compare.html", a=ra, b=rb, cmp=view.compare(ra, rb),
                    same_pipeline=ra["pipeline"] == rb["pipeline"])

    async def http_error(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "") or "not found"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": detail}, status_code=code)
        return page("error.html", status_code=code, code=code, detail=detail)

    routes = [
        Route("/", runs),
        Route("/runs/{run_id}", run),
        Route("/runs/{run_id}/steps/{step}", step),
        Route("/runs/{run_id}/logs/{name}", log),
        Route("/compare", compare),
        Route("/api/runs/{run_id}", api_run),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    async def server_error(request: Request, exc: Exception) -> Response:
        detail = f"{type(exc).__name__}: {exc}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": detail}, status_code=500)
        return page("error.html", status_code=500, code=500, detail=detail)

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error,
                                                       Exception: server_error})


__all__ = ["create_app"]
