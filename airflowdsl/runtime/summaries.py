"""A step task's summary (timings, manifest, metrics, records, effective key) as it
travels: pickled here with the C ``pickle`` (a few KB of dicts and small dataclasses),
so Ray ships opaque bytes instead of cloudpickling the dict in the worker and
unpickling it through its own serialization context in the driver and in consumers
(measured with py-spy: ~6 % of a worker's time in a 50-step chain).

The packed bytes start with one line naming the content hash of each output (from the
manifest; empty without one): a consumer's task resolves its key from that line
(``contents``) without unpickling the rest (timings, metrics, records, the manifest)."""

from __future__ import annotations

import pickle
from typing import Any

from airflowdsl.runtime.manifests import output_contents

#: the first bytes of a packed summary; the line goes on to the outputs' content hashes,
#: comma-separated, then a newline and the pickled dict
HEAD = b"AFS1 "


def pack(summary: dict[str, Any]) -> bytes:
    manifest = summary.get("manifest")
    head = HEAD + (",".join(output_contents(manifest)).encode() if manifest else b"") + b"\n"
    try:
        return head + pickle.dumps(summary, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):  # a record with a local class
        import cloudpickle

        return head + bytes(cloudpickle.dumps(summary))


def unpack(summary: Any) -> dict[str, Any]:
    """The summary dict (``pack``'s bytes, or a dict as is)."""
    if isinstance(summary, (bytes, bytearray, memoryview)):
        raw = bytes(summary)
        return dict(pickle.loads(memoryview(raw)[raw.index(b"\n") + 1:]))
    return dict(summary or {})


def contents(summary: Any) -> list[str] | None:
    """The content hashes of the outputs of ``pack``'s bytes (or of a summary dict's
    manifest); None when the step stored no manifest."""
    if isinstance(summary, (bytes, bytearray, memoryview)):
        raw = bytes(summary)
        line = raw[len(HEAD):raw.index(b"\n")]
        return line.decode().split(",") if line else None
    manifest = (summary or {}).get("manifest")
    return output_contents(manifest) if manifest else None
