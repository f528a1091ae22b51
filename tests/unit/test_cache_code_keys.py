"""Code keys beyond the edit matrix: code without source, notebook-style classes, code
changed on disk since import, library versions; canonical hashing properties."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import types
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflowdsl.runtime.canonical import canonical, digest, try_canonical
from airflowdsl.runtime.fingerprint import code_fingerprint, fingerprint
from airflowdsl.runtime.planner import make_plan
from airflowdsl.runtime.store import ArtifactStore
from tests.unit.inproc import run_inproc
from tests.unit.test_cache_edit_matrix import HELPER, PIPE, _project


@pytest.fixture()
def nofile_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Modules without a file count as the user's own (as ``__main__`` does)."""
    import airflowdsl.runtime.codescan as cs
    import airflowdsl.runtime.fingerprint as fp

    real = cs.module_is_local

    def local(name: str) -> bool:
        return name.startswith("nofile_") or real(name)

    monkeypatch.setattr(cs, "module_is_local", local)
    monkeypatch.setattr(fp, "module_is_local", local)


def _exec_module(source: str, name: str | None = None) -> types.ModuleType:
    """A module with no file (like a notebook cell or ``python -c``)."""
    name = name or f"nofile_{uuid.uuid4().hex[:8]}"
    mod = types.ModuleType(name)
    mod.__file__ = None  # type: ignore[assignment]
    sys.modules[name] = mod
    exec(compile(textwrap.dedent(source), f"<cell {name}>", "exec"), mod.__dict__)
    return mod


@pytest.mark.usefixtures("nofile_is_local")
def test_code_without_source_is_hashed_whole() -> None:
    one = _exec_module("def f(x):\n    return x + 1\n", "nofile_a")
    two = _exec_module("def f(x):\n    return x + 2\n", "nofile_a")
    same = _exec_module("def f(x):\n    return x + 1\n", "nofile_a")
    fp = lambda m: list(code_fingerprint(m.f).values())  # noqa: E731
    assert fp(one) != fp(two)  # co_code alone is equal: the constants differ
    assert fp(one) == fp(same)


@pytest.mark.usefixtures("nofile_is_local")
def test_classes_without_source_hash_their_members() -> None:
    src = """
        class Base:
            def g(self, x):
                return x * {k}

        class M(Base):
            RATE = {r}

        def step(x):
            return M().g(x) + M.RATE
    """
    fp = lambda k, r: sorted(code_fingerprint(_exec_module(src.format(k=k, r=r), "nofile_c").step).values())  # noqa: E731
    assert fp(2, 1) == fp(2, 1)
    assert fp(2, 1) != fp(3, 1)  # inherited method of a class without source
    assert fp(2, 1) != fp(2, 5)  # class attribute


def test_code_changed_on_disk_runs_and_is_not_cached(tmp_path: Path) -> None:
    h, p = f"helper_{uuid.uuid4().hex[:8]}", f"pipe_{uuid.uuid4().hex[:8]}"
    store = ArtifactStore.open(tmp_path / "store")
    mod = _project(tmp_path, h, p, HELPER, PIPE)
    run_inproc(mod.pipe.compile(), store)
    # edit the helper on disk, do not re-import: the process still runs the old code
    path = tmp_path / f"{h}.py"
    path.write_text(path.read_text().replace("return x * s", "return x * s * 10"))
    plans = make_plan(mod.pipe.compile(), store)
    assert plans["feats"].action == "run" and "changed on disk" in plans["feats"].reason
    assert plans["clean"].action == "cached"
    run_inproc(mod.pipe.compile(), store)
    again = make_plan(mod.pipe.compile(), store)
    assert again["feats"].action == "run"  # never served from a key it does not match
    # a fresh import sees the file as it is, and is cached after one run
    fresh = _project(tmp_path, h, p, path.read_text(), PIPE)
    assert run_inproc(fresh.pipe.compile(), store)["feats"] == "computed"
    assert run_inproc(fresh.pipe.compile(), store)["feats"] == "cached"


@pytest.mark.usefixtures("nofile_is_local")
def test_library_versions_are_recorded_not_keyed() -> None:
    mod = _exec_module("import numpy as np\n\ndef step(x):\n    return np.mean(x)\n")
    import numpy

    assert fingerprint(mod.step).libraries.get("numpy") == numpy.__version__
    assert not any("numpy" in k for k in code_fingerprint(mod.step))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    | st.frozensets(st.integers() | st.text(max_size=4), max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_canonical_equal_iff_equal(a: object, b: object) -> None:
    assert try_canonical(a) is not None
    same_type_tree = repr(a) == repr(b) and _types(a) == _types(b)
    if same_type_tree:
        assert canonical(a) == canonical(b)
    if canonical(a) == canonical(b):
        assert a == b and _types(a) == _types(b)


def _types(v: object) -> object:
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_types(x) for x in v])
    if isinstance(v, dict):
        return ("dict", sorted((k, repr(_types(x))) for k, x in v.items()))
    if isinstance(v, frozenset):
        return ("set", sorted(repr(_types(x)) for x in v))
    return type(v).__name__


@settings(max_examples=3, deadline=None)
@given(st.lists(json_values, min_size=50, max_size=80))
def test_canonical_is_stable_across_processes(values: list[object]) -> None:
    """Equal values hash equal in another interpreter (another hash seed)."""
    here = [digest(canonical(v)) for v in values]
    code = ("import sys, pickle; from airflowdsl.runtime.canonical import canonical, digest\n"
            "vals = pickle.loads(bytes.fromhex(sys.stdin.read()))\n"
            "print(' '.join(digest(canonical(v)) for v in vals))")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(values).hex(), text=True,
                         capture_output=True, check=True, env={"PYTHONHASHSEED": "random",
                                                               "PATH": "/usr/bin:/bin",
                                                               "PYTHONPATH": str(Path(__file__).parents[2])})
    assert out.stdout.split() == here


def test_explain_reports_library_changes_and_pending_upstreams(tmp_path: Path) -> None:
    from airflowdsl.runtime.explain import diff_components, library_changes

    old = {"code": {"detail": {"m.f": "1"}, "notes": {"lib:numpy": "2.3.0"}}}
    new = {"code": {"detail": {"m.f": "1"}, "notes": {"lib:numpy": "2.4.6"}}}
    assert library_changes(old, new) == [
        "library numpy 2.3.0 -> 2.4.6 since this result was stored (not in the key; "
        "cache_key=('libraries',) puts it there)"]
    assert diff_components(old, old) == [] and library_changes(old, old) == []
    h, p = f"helper_{uuid.uuid4().hex[:8]}", f"pipe_{uuid.uuid4().hex[:8]}"
    store = ArtifactStore.open(tmp_path / "store")
    run_inproc(_project(tmp_path, h, p, HELPER, PIPE).pipe.compile(), store)
    edited = _project(tmp_path, h, p, HELPER.replace("return x * s\n", "return s * x\n"), PIPE)
    plans = make_plan(edited.pipe.compile(), store)
    assert plans["fit"].reason == ("upstream feats re-runs; served from the cache if its "
                                   "output is unchanged")
