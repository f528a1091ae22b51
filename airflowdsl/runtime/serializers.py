"""Serializers chosen by value type; each writes one artifact into a directory.

| type | format | files |
|---|---|---|
| ``ray.data.Dataset`` | ``dataset`` | Parquet files (``part-*.parquet``) |
| ``Checkpoint`` (anything with ``from_directory``/``to_directory``) | ``checkpoint`` | its directory |
| ``pandas.DataFrame`` | ``pandas`` | ``data.parquet`` |
| ``numpy.ndarray`` (non-object dtype) | ``numpy`` | ``array.npy`` |
| JSON values (None/bool/int/float/str, lists, str-keyed dicts) | ``json`` | ``value.json`` |
| anything else | ``pickle`` | ``value.pkl`` (cloudpickle: needs the same code and library versions to load) |
"""

from __future__ import annotations

import importlib
import io
import json
import math
import sys
import tempfile
import types
from typing import Any

import pyarrow.fs as pafs

from airflowdsl.runtime.fsutil import (
    copy_dir_from_local,
    copy_dir_to_local,
    read_bytes,
    write_bytes,
)

Meta = dict[str, Any]


def _is_json(value: Any, depth: int = 0) -> bool:
    t = type(value)
    if value is None or t in (bool, int, str):
        return True
    if t is float:
        return math.isfinite(value)
    if depth > 50:
        return False
    if t is list:
        return all(_is_json(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _is_json(v, depth + 1) for k, v in value.items())
    return False


def is_dataset(value: Any) -> bool:
    return "ray.data" in sys.modules and isinstance(value, sys.modules["ray.data"].Dataset)


def is_checkpoint(value: Any) -> bool:
    cls = type(value)
    return callable(getattr(cls, "from_directory", None)) and callable(getattr(value, "to_directory", None))


def format_of(value: Any) -> str:
    """The serializer name for ``value``."""
    if is_dataset(value):
        return "dataset"
    if is_checkpoint(value):
        return "checkpoint"
    mod = type(value).__module__
    if mod.startswith("pandas") and type(value).__name__ == "DataFrame":
        return "pandas"
    if mod.startswith("numpy") and type(value).__name__ == "ndarray" and value.dtype != object:
        return "numpy"
    return "json" if _is_json(value) else "pickle"


def write(value: Any, fs: pafs.FileSystem, path: str) -> Meta:
    """Write ``value`` under directory ``path``; return the metadata ``read`` needs."""
    fmt = format_of(value)
    fs.create_dir(path, recursive=True)
    meta: Meta = {"format": fmt, "type": f"{type(value).__module__}.{type(value).__qualname__}"}
    if fmt == "dataset":
        _write_dataset(value, fs, path)
    elif fmt == "checkpoint":
        with tempfile.TemporaryDirectory() as tmp:
            local = value.to_directory(tmp + "/ckpt")
            copy_dir_from_local(str(local), fs, path)
    elif fmt == "pandas":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with fs.open_output_stream(f"{path}/data.parquet") as out:
            pq.write_table(pa.Table.from_pandas(value, preserve_index=True), out)
    elif fmt == "numpy":
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        write_bytes(fs, f"{path}/array.npy", buf.getvalue())
    elif fmt == "json":
        write_bytes(fs, f"{path}/value.json", json.dumps(value).encode())
    else:
        import cloudpickle

        write_bytes(fs, f"{path}/value.pkl", cloudpickle.dumps(value))
    return meta


def _write_dataset(ds: Any, fs: pafs.FileSystem, path: str) -> None:
    guard_fsspec_http()
    ds.write_parquet(path, filesystem=fs)


def guard_fsspec_http() -> None:
    """Without aiohttp, ``fsspec.implementations.http`` fails to import, and Ray Data's
    file IO threads race on importing it ("cannot import name 'HTTPFileSystem'").
    Install a stand-in whose class cannot be instantiated, so the ``isinstance``
    checks Ray Data makes are simply False. No-op when aiohttp is installed."""
    name = "fsspec.implementations.http"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError as err:
        reason = str(err)

        class HTTPFileSystem:
            def __init__(self, *a: Any, **k: Any) -> None:
                raise ImportError(f"fsspec HTTP filesystem unavailable: {reason}")

        stub = types.ModuleType(name)
        stub.HTTPFileSystem = HTTPFileSystem  # type: ignore[attr-defined]
        sys.modules.setdefault(name, stub)


def read(fs: pafs.FileSystem, path: str, meta: Meta, files: list[str]) -> Any:
    """Load the artifact ``write`` stored under ``path`` (``files``: relative names)."""
    fmt = meta["format"]
    if fmt == "dataset":
        import ray.data

        guard_fsspec_http()
        paths = [f"{path}/{f}" for f in sorted(files) if f.endswith(".parquet")]
        return ray.data.read_parquet(paths, filesystem=fs) if paths else ray.data.from_items([])
    if fmt == "checkpoint":
        cls = _import(meta["type"])
        local = path if isinstance(fs, pafs.LocalFileSystem) else copy_dir_to_local(fs, path)
        return cls.from_directory(local)
    if fmt == "pandas":
        import pyarrow.parquet as pq

        return pq.read_table(f"{path}/data.parquet", filesystem=fs).to_pandas()
    if fmt == "numpy":
        import numpy as np

        return np.load(io.BytesIO(read_bytes(fs, f"{path}/array.npy")), allow_pickle=False)
    if fmt == "json":
        return json.loads(read_bytes(fs, f"{path}/value.json"))
    import cloudpickle

    return cloudpickle.loads(read_bytes(fs, f"{path}/value.pkl"))


def _import(dotted: str) -> Any:
    mod, _, name = dotted.rpartition(".")
    while mod:
        try:
            obj: Any = importlib.import_module(mod)
        except ImportError:
            mod, _, head = mod.rpartition(".")
            name = f"{head}.{name}"
            continue
        for part in name.split("."):
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)
