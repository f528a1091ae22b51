"""Shared by the CLI commands: load ``FILE[:PIPELINE]``, parse ``-p k=v``, fail cleanly.

Every user-facing failure (missing file, no/several pipelines, bad ``-p``, compile
error) becomes one message on stderr and exit code 2, never a traceback::

    with cli_errors():
        compiled = compile_target(target, params)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import typer

from airflowdsl.dsl.compile import CompiledPipeline
from airflowdsl.dsl.errors import CompileError
from airflowdsl.dsl.pipeline import Pipeline
from airflowdsl.errors import LoadError

EXIT_USAGE = 2
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def split_target(target: str) -> tuple[Path, str | None]:
    """``path/to/file.py:name`` -> (path, name); the ``:name`` part is optional."""
    head, sep, tail = target.rpartition(":")
    if sep and head and _IDENT.match(tail):
        return Path(head), tail
    return Path(target), None


def load_module(path: Path) -> ModuleType:
    if not path.is_file():
        raise LoadError(f"file not found: {path}")
    resolved = path.resolve()
    mod_name = "_airflowdsl_user_" + re.sub(r"\W", "_", resolved.stem)
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    parent = str(resolved.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)  # sibling imports of the pipeline file
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(mod_name, None)
        where = f" (line {err.lineno})" if isinstance(err, SyntaxError) else ""
        raise LoadError(f"cannot import {path}{where}: {type(err).__name__}: {err}") from err
    with contextlib.suppress(Exception):  # Ray workers cannot import the file by name
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    return module


def find_pipelines(module: ModuleType) -> dict[str, Pipeline]:
    """Pipelines defined in the module (those only imported into it if none is)."""
    found = {k: v for k, v in vars(module).items() if isinstance(v, Pipeline)}
    own = {k: v for k, v in found.items() if getattr(v.fn, "__module__", None) == module.__name__}
    return own or found


def load_pipeline(target: str) -> Pipeline:
    path, name = split_target(target)
    pipelines = find_pipelines(load_module(path))
    if name is not None:
        by_name = {**{p.name: p for p in pipelines.values()}, **pipelines}
        if name not in by_name:
            have = ", ".join(sorted(pipelines)) or "none"
            raise LoadError(f"no pipeline {name!r} in {path} (pipelines: {have})")
        return by_name[name]
    if not pipelines:
        raise LoadError(f"no @af.pipeline found in {path}")
    if len(pipelines) > 1:
        names = ", ".join(sorted(pipelines))
        raise LoadError(f"{path} holds several pipelines ({names}); pick one: {path}:NAME")
    return next(iter(pipelines.values()))


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["max_depth=4", "name=x"]`` -> {"max_depth": 4, "name": "x"}: each value is
    JSON when it parses as JSON, else the plain string; pydantic coerces it later."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _IDENT.match(key):
            raise LoadError(f"bad -p value {item!r}: expected NAME=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def compile_target(target: str, params: list[str] | None = None) -> CompiledPipeline:
    """Load ``FILE[:PIPELINE]`` and compile it with ``-p`` params."""
    values = parse_params(params)
    return load_pipeline(target).compile(**values)


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn LoadError/CompileError into one stderr message and exit code 2."""
    try:
        yield
    except (LoadError, CompileError) as err:
        fail(str(err))


__all__ = ["EXIT_USAGE", "LoadError", "cli_errors", "compile_target", "fail", "find_pipelines",
           "load_module", "load_pipeline", "parse_params", "split_target"]
