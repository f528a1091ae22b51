"""A matrix of edits: for each kind of edit, exactly which steps compute again.

Each case edits a copy of a small project (a pipeline module and a helper module it
imports), reloads it and runs it in process through the real task body
(``tests/unit/inproc.py``: planner, key resolution, lease, store; no Ray). ``computed``
is the set of steps whose function ran; every other step was cached or served from the
store (early cutoff: an upstream re-ran and produced identical output).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import ModuleType

import pytest

from airflowdsl.runtime.store import ArtifactStore
from tests.modules import write_module
from tests.unit.inproc import run_inproc

HELPER = '''
import dataclasses

THRESHOLD = 0.5
SCALE = 3
OPS = {"double": lambda x: x * 2}


@dataclasses.dataclass(frozen=True)
class Settings:
    alpha: float = 1.0


SETTINGS = Settings()


class Base:
    def transform(self, x):
        return x + 1


def scaled(x, s=SCALE):
    return x * s


def make_step(k):
    def inner(xs):
        return [x + k for x in xs]
    return inner
'''

PIPE = '''
import functools

import airflowdsl as af
import {h} as cfg
from {h} import OPS, Base, make_step, scaled

FEATURES = [0, 1, 2]
shift = make_step(1)
bump = functools.partial(scaled, s=2)


class Model(Base):
    OFFSET = 0

    def predict(self, xs):
        return [self.transform(x) + self.OFFSET for x in xs]


class Acc:
    def load(self, xs):
        return len(xs)


def unused():
    return 1


@af.ingest
def load() -> list:
    return [1.0, 2.0, 3.0, 4.0]


@af.preprocess
def clean(xs: list) -> list:
    return [x for x in xs if x > cfg.THRESHOLD]


@af.preprocess
def feats(xs: list) -> list:
    return [scaled(xs[i]) for i in FEATURES]


@af.preprocess
def fit(xs: list, bias: float = 0.0) -> list:
    return [v + bias for v in Model().predict(shift(xs))]


@af.predict
def score(xs: list) -> dict:
    total = sum(OPS["double"](x) for x in xs) + bump(1) * cfg.SETTINGS.alpha
    return {{"s": float(total), "n": float(Acc().load(xs))}}


@af.pipeline
def pipe():
    return score(fit(feats(clean(load()))))
'''

ALL = {"load", "clean", "feats", "fit", "score"}
# (id, [(module "H" or "P", old text, new text)], steps that compute again)
CASES: list[tuple[str, list[tuple[str, str, str]], set[str]]] = [
    ("no-edit", [], set()),
    ("comment", [("P", "    return [x for x in xs if x > cfg.THRESHOLD]",
                  "    # keep the big ones\n    return [x for x in xs if x > cfg.THRESHOLD]  # !")], set()),
    ("docstring", [("P", "def feats(xs: list) -> list:\n",
                    'def feats(xs: list) -> list:\n    """Pick the features."""\n')], set()),
    ("formatting", [("P", "[v + bias for v in Model().predict(shift(xs))]",
                     "[\n        v   +   bias\n        for v in Model().predict( shift(xs) )\n    ]")],
     set()),
    ("resources-decorator", [("P", "@af.preprocess\ndef fit(", "@af.preprocess(num_cpus=1)\ndef fit(")],
     set()),
    ("unrelated-function", [("P", "    return 1\n", "    return 2\n")], set()),
    ("unrelated-helper-added", [("H", "def scaled(", "def other():\n    return 3\n\n\ndef scaled(")],
     set()),
    ("module-attribute-constant", [("H", "THRESHOLD = 0.5", "THRESHOLD = 1.5")],
     {"clean", "feats", "fit", "score"}),
    ("module-attribute-same-output", [("H", "THRESHOLD = 0.5", "THRESHOLD = 0.7")], {"clean"}),
    ("list-constant", [("P", "FEATURES = [0, 1, 2]", "FEATURES = [0, 1, 3]")],
     {"feats", "fit", "score"}),
    ("helper-default-via-constant", [("H", "SCALE = 3", "SCALE = 4")], {"feats", "fit", "score"}),
    ("helper-body-same-output", [("H", "    return x * s\n", "    return s * x\n")],
     {"feats", "score"}),  # score calls scaled too (through the partial)
    ("closure-value", [("P", "shift = make_step(1)", "shift = make_step(2)")], {"fit", "score"}),
    ("closure-body-same-output", [("H", "[x + k for x in xs]", "[k + x for x in xs]")], {"fit"}),
    ("inherited-method", [("H", "        return x + 1\n", "        return x + 2\n")],
     {"fit", "score"}),
    ("class-attribute", [("P", "    OFFSET = 0\n", "    OFFSET = 1\n")], {"fit", "score"}),
    ("lambda-in-global-dict", [("H", "lambda x: x * 2", "lambda x: x * 3")], {"score"}),
    ("partial-keywords", [("P", "functools.partial(scaled, s=2)", "functools.partial(scaled, s=5)")],
     {"score"}),
    ("dataclass-constant", [("H", "    alpha: float = 1.0", "    alpha: float = 2.0")], {"score"}),
    ("step-param-default", [("P", "bias: float = 0.0", "bias: float = 1.0")], {"fit", "score"}),
    ("version-pin", [("P", "@af.preprocess\ndef clean(", '@af.preprocess(version="2")\ndef clean(')],
     {"clean"}),
    ("rename-local-same-output", [("P", "[x for x in xs if x > cfg.THRESHOLD]",
                                   "[v for v in xs if v > cfg.THRESHOLD]")], {"clean"}),
    # ``Acc().load(xs)`` in score names the attribute ``load``: no dependency on step load
    ("attribute-name-is-no-dependency", [("P", "    return [1.0, 2.0, 3.0, 4.0]",
                                          "    return [float(i) for i in range(1, 5)]")], {"load"}),
    # feats keeps the first three values: identical output, fit and score are served
    ("data-change-cut-off-downstream", [("P", "    return [1.0, 2.0, 3.0, 4.0]",
                                         "    return [1.0, 2.0, 3.0, 5.0]")],
     {"load", "clean", "feats"}),
    ("data-change-everywhere", [("P", "    return [1.0, 2.0, 3.0, 4.0]",
                                 "    return [0.0, 2.0, 3.0, 4.0, 5.0]")], ALL),
]


_load = write_module


def _project(tmp: Path, h: str, p: str, helper: str, pipe: str) -> ModuleType:
    _load(tmp / f"{h}.py", h, helper)
    return _load(tmp / f"{p}.py", p, pipe.format(h=h))


def _apply(sources: dict[str, str], edits: list[tuple[str, str, str]]) -> dict[str, str]:
    out = dict(sources)
    for which, old, new in edits:
        assert out[which].count(old) == 1, f"edit target not found once: {old!r}"
        out[which] = out[which].replace(old, new)
    return out


@pytest.mark.parametrize(("edits", "computed"), [(e, c) for _, e, c in CASES],
                         ids=[i for i, _, _ in CASES])
def test_edit_reruns_exactly(tmp_path: Path, edits: list[tuple[str, str, str]],
                             computed: set[str]) -> None:
    h, p = f"helper_{uuid.uuid4().hex[:8]}", f"pipe_{uuid.uuid4().hex[:8]}"
    st = ArtifactStore.open(tmp_path / "store")
    first = run_inproc(_project(tmp_path, h, p, HELPER, PIPE).pipe.compile(), st)
    assert set(first.values()) == {"computed"}
    src = _apply({"H": HELPER, "P": PIPE}, edits)
    again = run_inproc(_project(tmp_path, h, p, src["H"], src["P"]).pipe.compile(), st)
    assert {n for n, s in again.items() if s == "computed"} == computed, again
    # and the edited project is now fully cached
    third = run_inproc(_project(tmp_path, h, p, src["H"], src["P"]).pipe.compile(), st)
    assert set(third.values()) == {"cached"}, third


def test_matrix_is_big_enough() -> None:
    assert len(CASES) >= 20


RUNPY_PIPE = '''
import airflowdsl as af

def helper(x):
    return x + {k}

@af.step
def one() -> int:
    return 1

@af.step
def last(x: int) -> int:
    return helper(x) * 2

@af.pipeline
def pipe():
    return last(one())
'''


@pytest.mark.parametrize("how", ["runpy", "exec"])
def test_an_edit_counts_when_python_holds_no_module_for_the_code(
        tmp_path: Path, how: str) -> None:
    # ``runpy.run_path`` removes its module from sys.modules when it returns, and ``exec``
    # into a plain dict makes functions of no module: their code is the user's all the
    # same, and an edit of it must run again (it was served from the cache, stale)
    import runpy

    st = ArtifactStore(str(tmp_path / "store"))
    path = tmp_path / f"p_{uuid.uuid4().hex[:8]}.py"

    def load(k: int) -> dict[str, object]:
        path.write_text(RUNPY_PIPE.format(k=k))
        if how == "runpy":
            return runpy.run_path(str(path), run_name=path.stem)
        ns: dict[str, object] = {}
        exec(compile(path.read_text(), str(path), "exec"), ns)  # noqa: S102
        return ns

    assert run_inproc(load(1)["pipe"].compile(), st) == {"one": "computed", "last": "computed"}
    assert run_inproc(load(1)["pipe"].compile(), st) == {"one": "cached", "last": "cached"}
    assert run_inproc(load(2)["pipe"].compile(), st) == {"one": "cached", "last": "computed"}
