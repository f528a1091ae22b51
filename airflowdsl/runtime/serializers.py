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

import atexit
import contextlib
import importlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflowdsl.errors import CorruptArtifact
from airflowdsl.runtime.fsutil import (
    copy_dir_from_local,
    digest_buffers,
    is_local,
    read_bytes,
    write_bytes,
)

if TYPE_CHECKING:
    import pyarrow.fs as pafs

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


def from_store(value: Any) -> bool:
    """Hand this output downstream as it loads from the store, not as the object the step
    returned (a Dataset: ``read_parquet`` over the written files; a DataFrame: its
    Parquet round trip), so a consumer sees the same thing on first and cached runs."""
    return format_of(value) in ("dataset", "pandas")


def format_of(value: Any) -> str:
    """The serializer name for ``value``."""
    t = type(value)
    if t.__name__ == "ndarray" and t.__module__ == "numpy":  # exactly numpy's: no subclass
        return "numpy" if value.dtype != object else "pickle"
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
    if is_local(fs):  # object stores have no directories: writing a key is enough
        fs.create_dir(path, recursive=True)
    meta: Meta = {"format": fmt, "type": f"{type(value).__module__}.{type(value).__qualname__}"}
    if fmt == "dataset":
        _write_dataset(value, fs, path)
    elif fmt == "checkpoint":
        with _checkpoint_dir(value) as local:
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


@contextlib.contextmanager
def _checkpoint_dir(ckpt: Any) -> Iterator[str]:
    """The checkpoint as a local directory: AIR's ``as_directory()`` where there is one (no
    copy for a checkpoint that is a local directory), else ``to_directory`` into a
    temp folder removed afterwards."""
    if callable(getattr(ckpt, "as_directory", None)):
        with ckpt.as_directory() as local:
            yield str(local)
        return
    with tempfile.TemporaryDirectory(prefix="airflowdsl-upload-") as tmp:
        yield str(ckpt.to_directory(tmp + "/ckpt"))


#: ``.npy`` headers by (dtype, shape, C-contiguous, F-contiguous): all the header depends on
_NPY_HEADERS: dict[tuple[Any, ...], bytes] = {}


def encode(value: Any) -> tuple[Meta, dict[str, list[Any]]] | None:
    """``value`` as in-memory files (name -> buffers), the bytes ``write`` would put on
    disk, for the formats that are one file (numpy, JSON, pickle); None for the others
    (written by ``write``). A C- or Fortran-contiguous array is not copied: its buffer is
    a view (the ``.npy`` header, from ``numpy.lib.format``, is what ``np.save`` writes)."""
    fmt = format_of(value)
    meta: Meta = {"format": fmt, "type": f"{type(value).__module__}.{type(value).__qualname__}"}
    if fmt == "numpy":
        layout = (value.dtype, value.shape, value.flags.c_contiguous, value.flags.f_contiguous)
        header = _NPY_HEADERS.get(layout)
        if header is None:
            from numpy.lib import format as npy

            buf = io.BytesIO()
            npy.write_array_header_1_0(buf, npy.header_data_from_array_1_0(value))
            if len(_NPY_HEADERS) >= 256:
                _NPY_HEADERS.clear()
            header = _NPY_HEADERS[layout] = buf.getvalue()
        return meta, {"array.npy": [header, _array_bytes(value)]}
    if fmt == "json":
        return meta, {"value.json": [json.dumps(value).encode()]}
    if fmt == "pickle":
        import cloudpickle

        return meta, {"value.pkl": [cloudpickle.dumps(value)]}
    return None


def _array_bytes(arr: Any) -> Any:
    """The array's data in ``np.save`` order, as a view where the layout allows."""
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    try:
        if arr.flags.c_contiguous or fortran:
            return memoryview(arr.T if fortran else arr).cast("B")
    except (TypeError, ValueError):  # dtypes without a buffer format (datetime64, ...)
        pass
    return arr.tobytes(order="F" if fortran else "C")


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


def read(fs: pafs.FileSystem, path: str, meta: Meta, files: list[str] | None = None, *,
         checksum: str = "sha256") -> Any:
    """Load the artifact ``write`` stored under ``path``.

    The bytes that are parsed are checked against ``meta["files"]`` (size, ``checksum``) in
    this process first: a tampered pickle is never unpickled, a tampered checkpoint
    never handed out. (A Dataset is read lazily by Ray: only its file list and sizes
    are checked here; the planner checksums it before the run.) A checkpoint is a
    private copy, so a step writing into it cannot damage the stored artifact.
    """
    fmt = meta["format"]
    expected: dict[str, list[Any]] = meta.get("files") or {}
    if fmt == "dataset":
        import ray.data

        guard_fsspec_http()
        paths = [f"{path}/{f}" for f in sorted(expected) if f.endswith(".parquet")]
        return ray.data.read_parquet(paths, filesystem=fs) if paths else ray.data.from_items([])
    if fmt == "checkpoint":
        cls = artifact_class(meta["type"])
        local = tempfile.mkdtemp(prefix="airflowdsl-ckpt-", dir=_private_root())
        if _SCOPES:
            _SCOPES[-1].made.append(local)
        fetch_files(fs, path, expected, local, checksum=checksum)
        ckpt = cls.from_directory(local)
        from airflowdsl.air.checkpoint import Checkpoint, owned

        return owned(ckpt) if isinstance(ckpt, Checkpoint) else ckpt  # removed once unused
    name = ONE_FILE.get(fmt)
    if name is None or name not in expected:
        raise CorruptArtifact(f"unknown format {fmt!r} or missing file")
    size, sha = expected[name]
    if fmt == "numpy" and is_local(fs) and (arr := _read_npy_local(f"{path}/{name}", size, sha,
                                                                   checksum)) is not None:
        return arr
    data = _checked(fs, f"{path}/{name}", name, size, sha, checksum)
    if fmt == "pandas":
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data)).to_pandas()
    if fmt == "numpy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "json":
        return json.loads(data)
    import cloudpickle

    return cloudpickle.loads(data)


def _read_npy_local(full: str, size: int, sha: str, checksum: str) -> Any:
    """A local ``.npy`` file read with one copy: into a buffer of its size, checked, then
    the array is a writable view of it past the header (``np.load`` of the bytes copied
    them twice more: a 100 MB array took 93 ms to load here, this 32 ms). None for a header
    version this does not parse (the caller reads it as before)."""
    import numpy as np

    buf = np.empty(size, dtype=np.uint8)
    with open(full, "rb", buffering=0) as fh, buf.data as view:
        got = 0
        while got < size and (n := fh.readinto(view[got:])):
            got += n
        if got != size or fh.read(1):
            raise CorruptArtifact("array.npy: content does not match its manifest checksum")
    if digest_buffers([buf], checksum) != sha:
        raise CorruptArtifact("array.npy: content does not match its manifest checksum")
    head = _npy_header(buf)
    if head is None:
        return None
    shape, fortran, dtype, offset = head
    if dtype.hasobject or offset + dtype.itemsize * math.prod(shape) != size:
        raise CorruptArtifact("array.npy: header does not describe the file")
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=offset,
                      order="F" if fortran else "C")


def _npy_header(buf: Any) -> tuple[tuple[int, ...], bool, Any, int] | None:
    """(shape, Fortran order, dtype, data offset) of the ``.npy`` file in ``buf``, of
    version 1.0 or 2.0 (numpy's own header parser, on a copy of the header only)."""
    from numpy.lib import format as npy

    with memoryview(buf).cast("B") as view:
        if bytes(view[:6]) != b"\x93NUMPY" or len(view) < 12:
            raise CorruptArtifact("array.npy: not a .npy file")
        version = (view[6], view[7])
        if version == (1, 0):
            offset = 10 + int.from_bytes(view[8:10], "little")
        elif version == (2, 0):
            offset = 12 + int.from_bytes(view[8:12], "little")
        else:
            return None
        header = io.BytesIO(bytes(view[:offset]))
    npy.read_magic(header)
    try:
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(header)
        else:
            shape, fortran, dtype = npy.read_array_header_2_0(header)
    except ValueError as exc:
        raise CorruptArtifact(f"array.npy: bad header ({exc})") from None
    return tuple(shape), bool(fortran), dtype, offset


def fetch_files(fs: pafs.FileSystem, path: str, files: dict[str, list[Any]], target: str, *,
                checksum: str) -> str:
    """Copy the files ``files`` (relative path -> [size, checksum]) of directory ``path``
    into local folder ``target``, each checked before it is written; returns ``target``."""
    for rel, (size, sha) in files.items():
        dest = os.path.join(target, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as out:
            out.write(_checked(fs, f"{path}/{rel}", rel, size, sha, checksum))
    return target


#: format -> its one file, which ``read`` checksums as it loads it
ONE_FILE = {"pandas": "data.parquet", "numpy": "array.npy", "json": "value.json",
          "pickle": "value.pkl"}
FORMATS = frozenset({"dataset", "checkpoint", *ONE_FILE})


def _checked(fs: pafs.FileSystem, full: str, rel: str, size: int, sha: str,
             checksum: str) -> bytes:
    data = read_bytes(fs, full)
    if len(data) != size or digest_buffers([data], checksum) != sha:
        raise CorruptArtifact(f"{rel}: content does not match its manifest checksum")
    return data


_PRIVATE: list[str] = []


class PrivateCopies:
    """The private checkpoint copies loads made inside ``private_copies()``."""

    def __init__(self) -> None:
        self.made: list[str] = []
        self.kept: set[str] = set()

    def keep(self, values: Any) -> None:
        """Keep the copies that ``values`` (a step's outputs) are: they go downstream."""
        for v in values if isinstance(values, (tuple, list)) else (values,):
            if getattr(v, "uri", None) is None and isinstance(getattr(v, "path", None), str):
                self.kept.add(os.path.abspath(v.path))  # (a URI checkpoint: not downloaded)


_SCOPES: list[PrivateCopies] = []


@contextlib.contextmanager
def private_copies() -> Iterator[PrivateCopies]:
    """Remove the private checkpoint copies loads make inside the block when it ends
    (a step's task: its inputs' copies go when the step is done), except those marked
    with ``.keep`` (outputs handed downstream: removed at process exit)."""
    scope = PrivateCopies()
    _SCOPES.append(scope)
    try:
        yield scope
    finally:
        _SCOPES.remove(scope)
        for path in scope.made:
            if os.path.abspath(path) not in scope.kept:
                shutil.rmtree(path, ignore_errors=True)


def _private_root() -> str:
    """One temp folder per process for private checkpoint copies, removed at exit."""
    if not _PRIVATE:
        _PRIVATE.append(tempfile.mkdtemp(prefix="airflowdsl-loaded-"))
        atexit.register(shutil.rmtree, _PRIVATE[0], True)
    return _PRIVATE[0]


_ARTIFACT_CLASSES: dict[str, Any] = {}


def register_artifact_class(cls: type) -> type:
    """Allow checkpoints of class ``cls`` (``from_directory``/``to_directory``) to be
    loaded from the store. Subclasses of ``airflowdsl.air.Checkpoint`` need not be."""
    _ARTIFACT_CLASSES[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def artifact_class(dotted: str) -> Any:
    """The checkpoint class a manifest names: a registered class, or a subclass of
    ``airflowdsl.air.Checkpoint`` from airflowdsl itself or an already-imported module.
    A manifest never makes this process import a module other than airflowdsl's."""
    if dotted in _ARTIFACT_CLASSES:
        return _ARTIFACT_CLASSES[dotted]
    from airflowdsl.air.checkpoint import Checkpoint

    mod, _, name = dotted.rpartition(".")
    while mod:
        if mod in sys.modules or mod == "airflowdsl" or mod.startswith("airflowdsl."):
            try:
                obj: Any = sys.modules.get(mod) or importlib.import_module(mod)
                for part in name.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError):
                break
            if isinstance(obj, type) and issubclass(obj, Checkpoint):
                return obj
            break
        mod, _, head = mod.rpartition(".")
        name = f"{head}.{name}"
    raise CorruptArtifact(f"checkpoint type {dotted!r} is not a registered artifact class "
                          "(airflowdsl.runtime.serializers.register_artifact_class)")
