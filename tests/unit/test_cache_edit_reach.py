"""Edits the code scan must reach (found by a hunt for stale cache hits; each case was
served stale before): imports inside a step of modules not imported yet, relative, or
``import a.b as h``; a module used as an object; ``functools.wraps`` decorators;
``singledispatch`` implementations; a config dict holding a logger; instances of the
user's classes (module constants, class attributes, bound methods); ``cached_property``;
compiled patterns. Each case runs its pipeline, is edited, and runs again in a *new*
process (nothing the first run imported helps), through the real task body without Ray
(``tests/unit/inproc.py``): the edited step computes again and gives what a fresh store
gives."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The pipeline module of every case: ``head`` at module level, ``body`` as step ``s``.
PIPE = """import airflowdsl as af
{head}

@af.step
def one() -> int:
    return 1

@af.step
def s(x: int) -> int:
{body}

@af.pipeline
def pipe():
    return s(one())
"""

F = "def f(x):\n    return x + 1\n"
DECOS = """import functools
def plus(k):
    def deco(fn):
        @functools.wraps(fn)
        def w(*a):
            return fn(*a) + k
        return w
    return deco
"""
ENGINE = "class Engine:\n    def go(self, x):\n        return x + 1\n"

#: name -> (package ("" for none), pipeline head, step body, other files, the edit:
#: (file, old text, new text))
CASES: dict[str, tuple[str, str, str, dict[str, str], tuple[str, str, str]]] = {
    "import_in_step_module_not_imported": (
        "", "", "    import helpers\n    return helpers.f(x)", {"helpers.py": F},
        ("helpers.py", "x + 1", "x + 2")),
    "import_dotted_in_step_submodule_not_imported": (
        "upkg", "", "    import upkg.helpers\n    return upkg.helpers.f(x)",
        {"helpers.py": F}, ("helpers.py", "x + 1", "x + 2")),
    "relative_from_import_in_step": (
        "upkg", "", "    from .helpers import f\n    return f(x)", {"helpers.py": F},
        ("helpers.py", "x + 1", "x + 2")),
    "import_as_in_step": (
        "upkg", "", "    import upkg.helpers as h\n    return h.f(x)", {"helpers.py": F},
        ("helpers.py", "x + 1", "x + 2")),
    "getattr_on_a_module": (
        "", "import helpers", '    return getattr(helpers, "f")(x)', {"helpers.py": F},
        ("helpers.py", "x + 1", "x + 2")),
    "wraps_decorator_argument": (
        "", "from decos import plus\n@plus(1)\ndef helper(x):\n    return x + 1\n",
        "    return helper(x)", {"decos.py": DECOS}, ("pipemod.py", "@plus(1)", "@plus(5)")),
    "singledispatch_implementation": (
        "", "from helpers import f", "    return f(x)",
        {"helpers.py": "import functools\n@functools.singledispatch\ndef f(x):\n    return x\n"
                       "@f.register(int)\ndef _(x):\n    return x + 1\n"},
        ("helpers.py", "x + 1", "x + 2")),
    "dict_holding_a_logger": (
        "", "import logging\nCFG = {'k': 1, 'log': logging.getLogger('x')}",
        "    return x + CFG['k']", {}, ("pipemod.py", "'k': 1", "'k': 2")),
    "instance_state": (
        "", "class Scaler:\n    def __init__(self, k):\n        self.k = k\n"
            "    def apply(self, x):\n        return x * self.k\nSCALER = Scaler(2)\n",
        "    return SCALER.apply(x)", {}, ("pipemod.py", "Scaler(2)", "Scaler(3)")),
    "method_of_an_instance_inside_an_instance": (
        "", "from helpers import Engine, Holder\nHOLDER = Holder(Engine())\n",
        "    return HOLDER.engine.go(x)",
        {"helpers.py": ENGINE + "class Holder:\n    def __init__(self, engine):\n"
                                "        self.engine = engine\n"},
        ("helpers.py", "x + 1", "x + 2")),
    "instance_as_class_attribute": (
        "", "from helpers import Engine as _E\nclass Model:\n    ENGINE = _E()\n",
        "    return Model.ENGINE.go(x)", {"helpers.py": ENGINE},
        ("helpers.py", "x + 1", "x + 2")),
    "bound_method_constant": (
        "", "from helpers import M", "    return M(x)",
        {"helpers.py": "class A:\n    def m(self, x):\n        return x + 1\nM = A().m\n"},
        ("helpers.py", "x + 1", "x + 2")),
    "cached_property": (
        "", "from helpers import A", "    return x + A().k",
        {"helpers.py": "import functools\nclass A:\n    @functools.cached_property\n"
                       "    def k(self):\n        return 1\n"},
        ("helpers.py", "return 1", "return 2")),
    "compiled_pattern": (
        "", "import re\nPAT = re.compile('a')", "    return x + len(PAT.findall('aab'))", {},
        ("pipemod.py", "compile('a')", "compile('b')")),
}

CHILD = r"""
import importlib, json, sys, tempfile
proj, store, modname, root = sys.argv[1:5]
sys.path[:0] = [proj, root]
from airflowdsl.runtime.store import ArtifactStore
from tests.unit.inproc import run_inproc
mod = importlib.import_module(modname)

def value(st):
    ms = [m for m in st.entries() if m.get("step") == "s"]
    return st.load(max(ms, key=lambda m: m["created"]))

st = ArtifactStore(store)
status = run_inproc(mod.pipe.compile(), st)
fresh = ArtifactStore(tempfile.mkdtemp())
run_inproc(mod.pipe.compile(), fresh)
print(json.dumps({"status": status, "s": repr(value(st)), "fresh": repr(value(fresh))}))
"""


def _run(root: Path, module: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(root / "store"), module,
                           str(ROOT)], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    """Each case's first run and its run after the edit (two cases at a time)."""

    def one(name: str) -> list[dict[str, object]]:
        package, head, body, files, (edited, old, new) = CASES[name]
        root = tmp_path_factory.mktemp(name)
        folder = root / package
        folder.mkdir(exist_ok=True)
        if package:
            (folder / "__init__.py").write_text("")
        for rel, src in {**files, "pipemod.py": PIPE.format(head=head, body=body)}.items():
            (folder / rel).write_text(src)
        module = f"{package}.pipemod" if package else "pipemod"
        first = _run(root, module)
        text = (folder / edited).read_text()
        assert old in text
        (folder / edited).write_text(text.replace(old, new))
        return [first, _run(root, module)]

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(CASES, pool.map(one, CASES), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_the_edit_reaches_the_key(outcomes: dict[str, list[dict[str, object]]],
                                  name: str) -> None:
    first, edited = outcomes[name]
    assert first["status"] == {"one": "computed", "s": "computed"}
    assert edited["status"] == {"one": "cached", "s": "computed"}, edited
    assert edited["s"] == edited["fresh"] != first["s"]
