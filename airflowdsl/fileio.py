"""The one atomic file write of airflowdsl: readers see the old file or all of the new one.

Used by the renderer, checkpoints (data and metadata) and the artifact store's local
files. A temp file in the same directory, then ``os.replace``; the temp file is removed
when the write fails. No fsync: safe against a killed process, not against power loss.
Like ``errors.py``, this module sits below every layer and imports nothing of airflowdsl.
"""

from __future__ import annotations

import os
import uuid


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *,
                       make_parents: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (temp sibling + rename).

    Args:
        path: the local file to create or replace.
        data: its new content.
        make_parents: create missing parent directories first.

    Raises:
        OSError: the directory is missing (without ``make_parents``) or not writable; the
            old file, if any, is then untouched and no temp file is left behind.
    """
    target = os.fspath(path)
    if make_parents:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


__all__ = ["atomic_write_bytes"]
