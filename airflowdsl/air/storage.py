"""Storage URIs through ``pyarrow.fs``: how a root is opened, and with which options.

The lowest layer that needs a filesystem: the artifact store (``runtime.fsutil``) and
trainer storage (``air.remote``: checkpoints uploaded by the rank that holds them) both
open roots here, with the same options, so a trainer inside a step reaches the run's
store exactly as the step does.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.fs as pafs

#: The driver's environment variables that configure an ``s3://`` store, and the
#: ``pyarrow.fs.S3FileSystem`` option each sets (first one set wins). They travel with the
#: store (``ArtifactStore.options``) into every task, Ray Data write task included, so
#: workers started before they were set, or on other nodes, reach the same endpoint.
S3_ENV = (("AWS_ENDPOINT_URL_S3", "endpoint_override"), ("AWS_ENDPOINT_URL", "endpoint_override"),
          ("AWS_REGION", "region"), ("AWS_DEFAULT_REGION", "region"),
          ("AWS_ACCESS_KEY_ID", "access_key"), ("AWS_SECRET_ACCESS_KEY", "secret_key"),
          ("AWS_SESSION_TOKEN", "session_token"))
_SECRETS = ("access_key", "secret_key", "session_token")

Options = tuple[tuple[str, str], ...]


def is_uri(path: str) -> bool:
    """Whether ``path`` names a filesystem by scheme (``s3://``, ``file://``, ...)."""
    return "://" in path


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a URI (always ``/``) or a local path (``os.path.join``)."""
    if is_uri(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def store_options(root: str) -> Options:
    """What a task needs to open ``root`` as this process does: for ``s3://`` the endpoint,
    region and static credentials of ``S3_ENV`` found in this process's environment
    (credentials only as a complete key pair, and not with
    ``AIRFLOWDSL_STORE_SEND_CREDENTIALS=0``: nodes then use their own credential chain).
    Other schemes: nothing (each node's own configuration). No pyarrow import."""
    if not root.startswith("s3://"):
        return ()
    opts: dict[str, str] = {}
    for var, name in S3_ENV:
        if name not in opts and os.environ.get(var):
            opts[name] = os.environ[var]
    if (os.environ.get("AIRFLOWDSL_STORE_SEND_CREDENTIALS", "1") == "0"
            or not ("access_key" in opts and "secret_key" in opts)):
        for name in _SECRETS:
            opts.pop(name, None)
    if "region" not in opts and "endpoint_override" not in opts:
        opts["region"] = _bucket_region(root[5:].split("/", 1)[0])
    return tuple(sorted(opts.items()))


@lru_cache(maxsize=32)
def _bucket_region(bucket: str) -> str:
    import pyarrow.fs as pafs

    try:
        return str(pafs.resolve_s3_region(bucket))
    except OSError:
        return "us-east-1"


@lru_cache(maxsize=32)
def resolve(root: str, options: Options = ()) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path) for a local path or a URI (``file://``, ``s3://``, ``gs://``,
    any fsspec protocol). ``s3://`` uses ``pyarrow.fs.S3FileSystem`` with ``options``
    (``store_options``) over the standard credential chain."""
    import pyarrow.fs as pafs

    if not is_uri(root):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))
    if root.startswith("s3://"):
        kw: dict[str, Any] = dict(options)
        endpoint = kw.get("endpoint_override", "")
        if "://" in endpoint:
            kw["scheme"], kw["endpoint_override"] = endpoint.split("://", 1)
        return pafs.S3FileSystem(**kw), root[5:].rstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(root)
    except (pafs.ArrowInvalid, ValueError, TypeError):  # type: ignore[attr-defined]
        import fsspec

        ffs, path = fsspec.core.url_to_fs(root)
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
    return fs, path.rstrip("/")


def options_for(uri: str) -> Options:
    """The options to open ``uri`` with: the run store's (``StepContext.store_options``,
    the driver's endpoint and keys) when ``uri`` lies under the store of the step this
    process runs, else those of this process's environment (``store_options``)."""
    from airflowdsl.air import progress

    ctx = progress.current()
    if ctx is not None and ctx.store and is_uri(ctx.store) and (
            uri == ctx.store or uri.startswith(ctx.store.rstrip("/") + "/")):
        return ctx.store_options
    return store_options(uri) if is_uri(uri) else ()


__all__ = ["S3_ENV", "Options", "is_uri", "join", "options_for", "resolve", "store_options"]
