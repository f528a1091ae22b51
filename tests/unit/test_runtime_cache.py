"""Cache keys: composition, what is in them, watch fingerprints, TTL, and explain diffs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflowdsl.runtime.cache import CODE, DEFAULT_POLICY, PARAMS, KeyContext, expired
from airflowdsl.runtime.explain import diff_components
from airflowdsl.runtime.watch import watch_fingerprint


@dataclass
class Spec:
    fn: Any
    version: str | None = None
    cache_ignore: tuple[str, ...] = ()
    cache_key: tuple[str, ...] = ()
    watch: tuple[str, ...] = ()
    cache_ttl: float | None = None


def fn_a(x: int, y: int = 1) -> int:
    return x + y


def fn_b(x: int, y: int = 1) -> int:
    return x - y


@dataclass
class Case:
    spec: Spec = field(default_factory=lambda: Spec(fn_a))
    params: dict[str, Any] = field(default_factory=lambda: {"y": 1})
    inputs: dict[str, tuple[str, str]] = field(default_factory=lambda: {"x": ("up", "k1#")})

    def key(self) -> Any:
        return DEFAULT_POLICY.key(KeyContext(self.spec, self.params, self.inputs))


def test_each_component_changes_the_key() -> None:
    base = Case().key().digest
    assert Case().key().digest == base
    assert Case(spec=Spec(fn_b)).key().digest != base
    assert Case(params={"y": 2}).key().digest != base
    assert Case(inputs={"x": ("up", "k2#")}).key().digest != base
    assert Case(spec=Spec(fn_a, version="2")).key().digest != base


def test_cache_ignore_leaves_inputs_and_params_out() -> None:
    spec = Spec(fn_a, cache_ignore=("x", "y"))
    a = Case(spec=spec).key().digest
    assert Case(spec=spec, params={"y": 5}, inputs={"x": ("up", "other#")}).key().digest == a


def _uses_numpy(n: int) -> float:
    import numpy as np

    return float(np.arange(n).sum())


def test_cache_key_libraries_opts_into_library_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cache_key=("libraries",)`` on the decorator puts the versions of the libraries the
    step references into its key; without it they are recorded (notes) but not keyed."""
    import numpy as np

    import airflowdsl as af
    from airflowdsl.runtime import libversions

    opted = af.step(cache_key=("libraries",))(_uses_numpy).spec
    plain = af.step(_uses_numpy).spec
    assert opted.cache_key == ("libraries",) and plain.cache_key == ()
    assert af.step(_uses_numpy).with_options(cache_key="libraries").spec.cache_key == (
        "libraries",)
    with pytest.raises(ValueError, match="unknown key parts"):
        af.step(cache_key=("python",))(_uses_numpy)

    def key(spec: Any) -> Any:
        return DEFAULT_POLICY.key(KeyContext(spec, {"n": 3}, {}))

    k_opted, k_plain = key(opted), key(plain)
    libs = k_opted.part("libraries")
    assert libs is not None and libs.detail == {"numpy": np.__version__}
    assert k_plain.part("libraries") is None
    assert k_plain.part("code").notes["lib:numpy"] == np.__version__  # recorded, not keyed

    real = libversions.version_of
    monkeypatch.setattr(libversions, "version_of",
                        lambda m: ("numpy", "0.0.1") if m.startswith("numpy") else real(m))
    assert key(opted).digest != k_opted.digest  # another numpy: another key
    assert key(plain).digest == k_plain.digest  # not in the key unless opted in


def test_policies_compose() -> None:
    ctx = KeyContext(Spec(fn_a), {"y": 1}, {})
    assert [p.name for p in (CODE + PARAMS).key(ctx).parts] == ["code", "params"]


def test_watch_local_files_and_globs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("1,2\n")
    pattern = str(data / "*.csv")
    first = watch_fingerprint([pattern])
    assert list(first) == [str(data / "a.csv")]
    assert watch_fingerprint([pattern]) == first
    (data / "a.csv").write_text("1,2,3\n")
    assert watch_fingerprint([pattern]) != first
    (data / "b.csv").write_text("x")
    assert len(watch_fingerprint([pattern])) == 2
    assert watch_fingerprint([str(tmp_path / "none.csv")]) == {str(tmp_path / "none.csv"): "missing"}
    assert watch_fingerprint([f"file://{data}/a.csv"]) == watch_fingerprint([str(data / "a.csv")])


def test_watch_is_part_of_the_key(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("v1")
    case = Case(spec=Spec(fn_a, watch=(str(f),)))
    before = case.key().digest
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert case.key().digest != before


def test_ttl() -> None:
    now = time.time()
    assert not expired({"created": now - 5}, None)
    assert not expired({"created": now - 5}, 10, now)
    assert expired({"created": now - 20}, 10, now)


def test_explain_diff_names_what_changed() -> None:
    old = Case().key().components()
    new = Case(spec=Spec(fn_b, version="2"), params={"y": 2},
               inputs={"x": ("split", "k9#")}).key().components()
    reasons = diff_components(old, new)
    assert any(r.startswith("code dependency") and "fn_b" in r for r in reasons)
    assert "param y changed: 1 -> 2" in reasons
    assert "upstream split changed (input x)" in reasons
    assert any("version" in r for r in reasons)
    assert diff_components(old, old) == []
