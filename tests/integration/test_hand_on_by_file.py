"""A large array already committed under its key (a forced rerun that made the same bytes)
goes downstream as a reference to its file in the store, not as a copy in Ray's object
store (``store.hand_on``): consumers and ``run.output`` get a read-only array over the
file, checked first. A first run (written beside the consumers) hands on the array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import airflowdsl as af
from airflowdsl.runtime.store import ArtifactStore

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

N = 1_200_000  # 9.6 MB: over store.BY_FILE_BYTES


@af.step
def ramp() -> np.ndarray:
    return np.arange(N, dtype=np.float64)


@af.step
def inc(x: np.ndarray) -> np.ndarray:
    return x + 1.0


@af.step
def seen(x: np.ndarray) -> dict:
    """What the consumer got: its sum, and whether it is a view of a mapped file."""
    import mmap

    return {"sum": float(x.sum()), "mapped": isinstance(x.base, mmap.mmap),
            "writeable": bool(x.flags.writeable)}


@af.pipeline
def chain():
    x = inc(ramp())
    return seen(x), x


def test_forced_rerun_hands_on_the_stored_file(store_dir: Path) -> None:
    expected = float(np.arange(N, dtype=np.float64).sum() + N)
    first = chain.run(store=store_dir)
    assert first.status == "succeeded", first.error
    info, out = first.output
    assert info == {"sum": expected, "mapped": False, "writeable": False}  # Ray's copy
    np.testing.assert_array_equal(out, np.arange(N, dtype=np.float64) + 1.0)
    st = ArtifactStore.open(store_dir)
    written = st.manifest(first.steps["inc"].cache_key)

    forced = chain.run(store=store_dir, force=True)
    assert forced.status == "succeeded", forced.error
    info, out = forced.output
    assert info == {"sum": expected, "mapped": True, "writeable": False}
    assert type(out) is np.ndarray and not out.flags.writeable
    np.testing.assert_array_equal(out, np.arange(N, dtype=np.float64) + 1.0)
    assert st.manifest(forced.steps["inc"].cache_key) == written  # nothing written again
