"""Manifests are data from disk, not trusted: checks, and the content hashes early
cutoff keys on."""

from __future__ import annotations

import os
import re
from typing import Any

from airflowdsl.runtime import serializers
from airflowdsl.runtime.canonical import digest
from airflowdsl.runtime.fsutil import CHECKSUMS

Manifest = dict[str, Any]
KEY = re.compile(r"[0-9a-f]{40}\Z")
_DATA = re.compile(r"[0-9a-f]{12}\Z")
_SHA = re.compile(r"[0-9a-f]{32}\Z")


def _safe_rel(rel: Any) -> bool:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel:
        return False
    return all(p not in ("", ".", "..") and "\x00" not in p for p in rel.split("/"))


def manifest_problem(data: Any, key: Any) -> str | None:
    """None when ``data`` is a well-formed manifest of ``key``, else what is wrong: only
    formats airflowdsl writes, relative file names without ``..``, hex ids and sums."""
    if not isinstance(data, dict) or not isinstance(key, str) or data.get("key") != key:
        return "not a manifest of this key"
    if not KEY.match(key) or not isinstance(data.get("data"), str) or not _DATA.match(data["data"]):
        return "bad key or data id"
    if data.get("checksum", "sha256") not in CHECKSUMS:
        return "unknown checksum"
    outputs = data.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        return "no outputs"
    for i, out in enumerate(outputs):
        if not isinstance(out, dict) or out.get("format") not in serializers.FORMATS:
            return f"output {i}: unknown format"
        if not isinstance(out.get("type"), str):
            return f"output {i}: no type"
        files = out.get("files")
        if not isinstance(files, dict):
            return f"output {i}: no file list"
        for rel, entry in files.items():
            if not _safe_rel(rel):
                return f"output {i}: unsafe file name {rel!r}"
            if not (isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int
                    and entry[0] >= 0 and isinstance(entry[1], str) and _SHA.match(entry[1])):
                return f"output {i}: bad size/checksum for {rel!r}"
    return None


def escapes(path: str, files: dict[str, Any]) -> str | None:
    """The first file whose real path (symlinks followed) leaves directory ``path``.

    A safe relative name (no ``..``) with no symlink among its components below ``path``
    stays inside it: only names with a link are resolved (``realpath`` lstat-s every
    component of the whole path, ~16 per file, on every cache hit)."""
    base = None
    for rel in files:
        if _safe_rel(rel) and not _has_link(path, rel):
            continue
        base = base or os.path.realpath(path)
        real = os.path.realpath(f"{path}/{rel}")
        if os.path.commonpath([base, real]) != base:
            return rel
    return None


def _has_link(path: str, rel: str) -> bool:
    cur = path
    for part in rel.split("/"):
        cur = f"{cur}/{part}"
        if os.path.islink(cur):
            return True
    return False


def checksum_of(manifest: Manifest) -> str:
    """The file checksum a manifest uses (``fsutil.CHECKSUM``; SHA-256 when it has none:
    written before the field existed)."""
    return str(manifest.get("checksum", "sha256"))


def content_hash(out: dict[str, Any], checksum: str = "sha256") -> str:
    """What an output *is*, from its file checksums (not where or when it was written).
    A Dataset's Parquet files are named per write: their checksums count in name order.
    Hashes from SHA-256 manifests are unchanged; other checksums are named in the hash,
    so outputs summed differently never look alike."""
    files = out["files"]
    if out["format"] == "dataset":
        body = [files[k][1] for k in sorted(files)]
    else:
        body = [f"{k}={files[k][1]}" for k in sorted(files)]
    head = [out["format"]] if checksum == "sha256" else [out["format"], checksum]
    return digest("\n".join([*head, *body]).encode())


def output_content(manifest: Manifest, index: int | None) -> str:
    """The content hash a consumer keys on: output ``index``, or (None) the whole output."""
    outs = manifest["outputs"]
    if index is not None:
        return _content(manifest, outs[index])
    return whole_content([_content(manifest, out) for out in outs])


def output_contents(manifest: Manifest) -> list[str]:
    """The content hash of each output (``output_content(manifest, i)`` for every ``i``)."""
    return [_content(manifest, out) for out in manifest["outputs"]]


def whole_content(contents: list[str]) -> str:
    """The content hash of a whole output from its outputs' hashes (one output: its own)."""
    return contents[0] if len(contents) == 1 else digest("\n".join(contents).encode())


def _content(manifest: Manifest, out: dict[str, Any]) -> str:
    return str(out.get("content") or content_hash(out, checksum_of(manifest)))
