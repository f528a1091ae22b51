"""Code fingerprints (normalized source, transitive project-local callees) and canonical hashing."""

from __future__ import annotations

import textwrap
import types
import uuid
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from airflowdsl.runtime.canonical import canonical, digest
from airflowdsl.runtime.fingerprint import code_fingerprint, is_project_local, project_modules
from tests.modules import write_module


def load(tmp_path: Path, name: str, source: str) -> ModuleType:
    return write_module(tmp_path / f"{name}.py", name, source)


def uniq(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_comments_docstrings_and_decorators_do_not_count(tmp_path: Path) -> None:
    a = load(tmp_path, uniq("a"), """
        def f(x):
            return x + 1
    """)
    b = load(tmp_path, uniq("b"), '''
        import functools

        @functools.lru_cache
        def f(x):
            """A docstring."""
            # a comment
            return x + 1  # trailing
    ''')
    c = load(tmp_path, uniq("c"), """
        def f(x):
            return x + 2
    """)
    fp = lambda m: list(code_fingerprint(m.f).values())  # noqa: E731
    assert fp(a) == fp(b)
    assert fp(a) != fp(c)


def test_transitive_project_local_callees(tmp_path: Path) -> None:
    helpers = uniq("helpers")
    load(tmp_path, helpers, """
        import json
        SCALE = 3

        def inner(x):
            return x * SCALE

        def clean(x):
            return inner(x) + len(json.dumps(x))

        class Model:
            def predict(self, x):
                return inner(x)
    """)
    main = load(tmp_path, uniq("main"), f"""
        import {helpers} as h
        from {helpers} import Model

        def step(x):
            return h.clean(x) + Model().predict(x)

        def other(x):
            return x
    """)
    fp = code_fingerprint(main.step)
    names = {k.rsplit(".", 1)[-1] for k in fp}
    assert {"step", "clean", "inner", "Model"} <= names
    assert f"const:{helpers}.SCALE" in fp
    assert not any("json" in k for k in fp)  # the stdlib is not fingerprinted
    assert project_modules(main.step) == {main.__name__, helpers}
    assert set(code_fingerprint(main.other)) == {f"{main.__name__}.other"}


def test_library_code_is_not_project_local() -> None:
    assert not is_project_local(np.mean)
    assert not is_project_local(pd.DataFrame)
    assert not is_project_local(code_fingerprint)  # airflowdsl itself
    assert is_project_local(test_library_code_is_not_project_local)


def h(value: object) -> str:
    return digest(canonical(value))


def test_canonical_params() -> None:
    assert h({"a": 1, "b": [1, 2]}) == h({"b": [1, 2], "a": 1})
    assert h([1, 2]) != h((1, 2))
    assert h(1) != h(1.0) != h("1")
    assert h(True) != h(1)
    assert h({1, 2, 3}) == h({3, 2, 1})
    assert h(np.arange(4)) == h(np.arange(4)) != h(np.arange(4).astype("float64"))
    df = pd.DataFrame({"x": [1, 2]})
    assert h(df) == h(df.copy()) != h(pd.DataFrame({"x": [1, 3]}))
    assert h(Path("a/b")) == h(Path("a/b"))


def test_def_digest_from_the_file_tree_equals_the_getsource_digest(tmp_path: Path) -> None:
    """The fast path (the file's syntax tree, parsed once per content) gives the digest
    ``inspect.getsource`` gives, for decorated, nested, async functions and methods; a
    lambda and code without a file take the old path; an edit on disk is seen."""
    import ast
    import inspect

    from airflowdsl.runtime import fingerprint as fpm

    def via_getsource(fn: object) -> str:
        return fpm._tree_digest(ast.parse(textwrap.dedent(inspect.getsource(fn))))  # type: ignore[arg-type]

    name = uniq("defs")
    mod = load(tmp_path, name, '''
        import functools

        def plain(x):
            return x + 1

        @functools.lru_cache
        @functools.wraps(plain)
        def decorated(x):
            """doc"""
            return x * 2

        def outer(n):
            def inner(y):
                return y - n
            return inner

        class K:
            @staticmethod
            def method(z):
                return [z] * 3

        async def coro():
            return 1

        lam = lambda v: v + 3  # noqa: E731
    ''')
    fns = [mod.plain, inspect.unwrap(mod.decorated), mod.outer, mod.outer(1), mod.K.method, mod.coro]
    for fn in fns:
        assert fpm._def_digest(fn) == via_getsource(fn), fn
    assert fpm._def_digest(mod.lam) is None
    ns: dict[str, object] = {}
    exec("def nofile(x):\n    return x\n", ns)
    assert fpm._def_digest(ns["nofile"]) is None  # type: ignore[arg-type]
    before = fpm._def_digest(mod.plain)
    path = tmp_path / f"{name}.py"
    path.write_text(path.read_text().replace("return x + 1", "return x + 100"))
    assert fpm._def_digest(mod.plain) not in (None, before)  # the file's content, not its mtime


def test_a_defs_own_lines_give_the_whole_files_digest_and_disk_verdict(tmp_path: Path) -> None:
    """The fast path parses (and for ``matches_disk`` compiles) only a def's own lines:
    the digest is the whole file tree's, a def whose body goes on past its last
    instruction (a trailing string) or a method falls back to the whole file, and an
    edit on disk is seen either way (a module-level def, a method, a closure)."""
    from airflowdsl.runtime import fingerprint as fpm
    from airflowdsl.runtime.ondisk import def_source, matches_disk

    name = uniq("own")
    mod = load(tmp_path, name, '''
        import functools

        @functools.lru_cache
        def plain(x):
            s = """two
        lines"""
            return (x +
                    len(s))

        def trailing(x):
            y = x + 1
            return y
            "a note after the return"

        class K:
            def method(self, z):
                return """text
        at column zero""" * z

        def outer():
            def inner():
                return n
            return inner

        n = 3
    ''')
    path = tmp_path / f"{name}.py"
    source = path.read_bytes()
    whole = fpm._file_defs(str(path), source)
    assert whole is not None
    fns = [plain := mod.plain.__wrapped__, mod.trailing, mod.K.method, mod.outer, mod.outer()]
    for fn in fns:
        assert fpm._def_digest(fn) == whole.digest((fn.__code__.co_firstlineno, fn.__name__)), fn
        assert matches_disk(fn), fn
    assert def_source(source, plain.__code__) is not None  # its own lines were used
    assert def_source(source, mod.trailing.__code__) is None  # the note compiles to nothing
    found = def_source(source, mod.K.method.__code__)
    assert found is not None and found[1]  # indented: parsed under `if 1:`, text as is

    inner = mod.outer()
    edited = (source.replace(b"len(s))", b"len(s) * 2)")
              .replace(b'* z\n', b'* (z + 1)\n')
              .replace(b"    def inner():", b"    n = 4\n    def inner():"))
    path.write_bytes(edited)
    for fn in (plain, mod.K.method, inner):  # same lines or not: the disk is not what runs
        assert not matches_disk(fn), fn
    assert fpm._def_digest(plain) != whole.digest((plain.__code__.co_firstlineno, "plain"))


def test_library_versions_are_the_installed_distributions() -> None:
    """Read from the metadata's header lines: what ``importlib.metadata.version`` says."""
    from importlib.metadata import version

    from airflowdsl.runtime.libversions import version_of

    for module in ("numpy", "numpy.linalg", "networkx", "pydantic", "pandas"):
        top = module.split(".")[0]
        assert version_of(module) == (top, version(top))
    assert version_of("json") is None and version_of("airflowdsl.dsl") is None


def test_loads_are_kept_per_code_object_and_values_looked_up_each_time(tmp_path: Path) -> None:
    """The disassembly of a code object is kept (names it loads); what those names hold is
    read at every fingerprint: a constant changed between two runs changes the digest."""
    from airflowdsl.runtime import codescan

    mod = load(tmp_path, uniq("consts"), """
        LIMIT = 3

        def step(x):
            return x[:LIMIT]
    """)
    before = code_fingerprint(mod.step)
    hits = codescan._loads.cache_info().hits
    mod.LIMIT = 4
    after = code_fingerprint(mod.step)
    assert codescan._loads.cache_info().hits > hits  # not disassembled again
    assert before[f"const:{mod.__name__}.LIMIT"] != after[f"const:{mod.__name__}.LIMIT"]
    same_code = types.FunctionType(mod.step.__code__, {"LIMIT": 3, "__name__": mod.__name__})
    assert [r.value for r in codescan.references(same_code)] == [3]
