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
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: name -> (pipeline module, files before, files the edit changes)
CASES = {'func_import_toplevel_module_not_imported': ('pipemod',
                                              {'helpers.py': 'def f(x):\n    return x + 1\n',
                                               'pipemod.py': '\n'
                                                             'import airflowdsl as af\n'
                                                             '\n'
                                                             '\n'
                                                             '@af.step\n'
                                                             'def one() -> int:\n'
                                                             '    return 1\n'
                                                             '\n'
                                                             '@af.step\n'
                                                             'def s(x: int) -> int:\n'
                                                             '    import helpers\n'
                                                             '    return helpers.f(x)\n'
                                                             '\n'
                                                             '@af.pipeline\n'
                                                             'def pipe():\n'
                                                             '    return s(one())\n'},
                                              {'helpers.py': 'def f(x):\n    return x + 2\n'}),
 'abs_import_dotted_in_func': ('upkg.pipemod',
                               {'upkg/__init__.py': '',
                                'upkg/helpers.py': 'def f(x):\n    return x + 1\n',
                                'upkg/pipemod.py': '\n'
                                                   'import airflowdsl as af\n'
                                                   '\n'
                                                   '\n'
                                                   '@af.step\n'
                                                   'def one() -> int:\n'
                                                   '    return 1\n'
                                                   '\n'
                                                   '@af.step\n'
                                                   'def s(x: int) -> int:\n'
                                                   '    import upkg.helpers\n'
                                                   '    return upkg.helpers.f(x)\n'
                                                   '\n'
                                                   '@af.pipeline\n'
                                                   'def pipe():\n'
                                                   '    return s(one())\n'},
                               {'upkg/helpers.py': 'def f(x):\n    return x + 2\n'}),
 'rel_import_in_func_from_dot_mod': ('upkg.pipemod',
                                     {'upkg/__init__.py': '',
                                      'upkg/helpers.py': 'def f(x):\n    return x + 1\n',
                                      'upkg/pipemod.py': '\n'
                                                         'import airflowdsl as af\n'
                                                         '\n'
                                                         '\n'
                                                         '@af.step\n'
                                                         'def one() -> int:\n'
                                                         '    return 1\n'
                                                         '\n'
                                                         '@af.step\n'
                                                         'def s(x: int) -> int:\n'
                                                         '    from .helpers import f\n'
                                                         '    return f(x)\n'
                                                         '\n'
                                                         '@af.pipeline\n'
                                                         'def pipe():\n'
                                                         '    return s(one())\n'},
                                     {'upkg/helpers.py': 'def f(x):\n    return x + 2\n'}),
 'abs_import_as_in_func': ('upkg.pipemod',
                           {'upkg/__init__.py': '',
                            'upkg/helpers.py': 'def f(x):\n    return x + 1\n',
                            'upkg/pipemod.py': '\n'
                                               'import airflowdsl as af\n'
                                               '\n'
                                               '\n'
                                               '@af.step\n'
                                               'def one() -> int:\n'
                                               '    return 1\n'
                                               '\n'
                                               '@af.step\n'
                                               'def s(x: int) -> int:\n'
                                               '    import upkg.helpers as h\n'
                                               '    return h.f(x)\n'
                                               '\n'
                                               '@af.pipeline\n'
                                               'def pipe():\n'
                                               '    return s(one())\n'},
                           {'upkg/helpers.py': 'def f(x):\n    return x + 2\n'}),
 'getattr_module_str': ('pipemod',
                        {'helpers.py': 'def f(x):\n    return x + 1\n',
                         'pipemod.py': '\n'
                                       'import airflowdsl as af\n'
                                       'import helpers\n'
                                       '\n'
                                       '@af.step\n'
                                       'def one() -> int:\n'
                                       '    return 1\n'
                                       '\n'
                                       '@af.step\n'
                                       'def s(x: int) -> int:\n'
                                       '    return getattr(helpers, "f")(x)\n'
                                       '\n'
                                       '@af.pipeline\n'
                                       'def pipe():\n'
                                       '    return s(one())\n'},
                        {'helpers.py': 'def f(x):\n    return x + 2\n'}),
 'wraps_decorator_arg': ('pipemod',
                         {'pipemod.py': '\n'
                                        'import airflowdsl as af\n'
                                        '\n'
                                        'from decos import plus\n'
                                        '@plus(1)\n'
                                        'def helper(x):\n'
                                        '    return x + 1\n'
                                        '\n'
                                        '\n'
                                        '@af.step\n'
                                        'def one() -> int:\n'
                                        '    return 1\n'
                                        '\n'
                                        '@af.step\n'
                                        'def s(x: int) -> int:\n'
                                        '    return helper(x)\n'
                                        '\n'
                                        '@af.pipeline\n'
                                        'def pipe():\n'
                                        '    return s(one())\n',
                          'decos.py': '\n'
                                      'import functools\n'
                                      'def plus(k):\n'
                                      '    def deco(fn):\n'
                                      '        @functools.wraps(fn)\n'
                                      '        def w(*a):\n'
                                      '            return fn(*a) + k\n'
                                      '        return w\n'
                                      '    return deco\n'
                                      'def times(fn):\n'
                                      '    @functools.wraps(fn)\n'
                                      '    def w(*a):\n'
                                      '        return fn(*a) * 2\n'
                                      '    return w\n'
                                      'def times_nowraps(fn):\n'
                                      '    def w(*a):\n'
                                      '        return fn(*a) * 2\n'
                                      '    return w\n'},
                         {'pipemod.py': '\n'
                                        'import airflowdsl as af\n'
                                        '\n'
                                        'from decos import plus\n'
                                        '@plus(5)\n'
                                        'def helper(x):\n'
                                        '    return x + 1\n'
                                        '\n'
                                        '\n'
                                        '@af.step\n'
                                        'def one() -> int:\n'
                                        '    return 1\n'
                                        '\n'
                                        '@af.step\n'
                                        'def s(x: int) -> int:\n'
                                        '    return helper(x)\n'
                                        '\n'
                                        '@af.pipeline\n'
                                        'def pipe():\n'
                                        '    return s(one())\n'}),
 'singledispatch_register': ('pipemod',
                             {'helpers.py': '\n'
                                            'import functools\n'
                                            '@functools.singledispatch\n'
                                            'def f(x):\n'
                                            '    return x\n'
                                            '@f.register(int)\n'
                                            'def _(x):\n'
                                            '    return x + 1\n',
                              'pipemod.py': '\n'
                                            'import airflowdsl as af\n'
                                            'from helpers import f\n'
                                            '\n'
                                            '@af.step\n'
                                            'def one() -> int:\n'
                                            '    return 1\n'
                                            '\n'
                                            '@af.step\n'
                                            'def s(x: int) -> int:\n'
                                            '    return f(x)\n'
                                            '\n'
                                            '@af.pipeline\n'
                                            'def pipe():\n'
                                            '    return s(one())\n'},
                             {'helpers.py': '\n'
                                            'import functools\n'
                                            '@functools.singledispatch\n'
                                            'def f(x):\n'
                                            '    return x\n'
                                            '@f.register(int)\n'
                                            'def _(x):\n'
                                            '    return x + 2\n'}),
 'dict_with_logger': ('pipemod',
                      {'pipemod.py': '\n'
                                     'import airflowdsl as af\n'
                                     'import logging\n'
                                     "CFG = {'k': 1, 'log': logging.getLogger('x')}\n"
                                     '\n'
                                     '@af.step\n'
                                     'def one() -> int:\n'
                                     '    return 1\n'
                                     '\n'
                                     '@af.step\n'
                                     'def s(x: int) -> int:\n'
                                     "    return x + CFG['k']\n"
                                     '\n'
                                     '@af.pipeline\n'
                                     'def pipe():\n'
                                     '    return s(one())\n'},
                      {'pipemod.py': '\n'
                                     'import airflowdsl as af\n'
                                     'import logging\n'
                                     "CFG = {'k': 2, 'log': logging.getLogger('x')}\n"
                                     '\n'
                                     '@af.step\n'
                                     'def one() -> int:\n'
                                     '    return 1\n'
                                     '\n'
                                     '@af.step\n'
                                     'def s(x: int) -> int:\n'
                                     "    return x + CFG['k']\n"
                                     '\n'
                                     '@af.pipeline\n'
                                     'def pipe():\n'
                                     '    return s(one())\n'}),
 'instance_state': ('pipemod',
                    {'pipemod.py': '\n'
                                   'import airflowdsl as af\n'
                                   '\n'
                                   'class Scaler:\n'
                                   '    def __init__(self, k):\n'
                                   '        self.k = k\n'
                                   '    def apply(self, x):\n'
                                   '        return x * self.k\n'
                                   'SCALER = Scaler(2)\n'
                                   '\n'
                                   '\n'
                                   '@af.step\n'
                                   'def one() -> int:\n'
                                   '    return 1\n'
                                   '\n'
                                   '@af.step\n'
                                   'def s(x: int) -> int:\n'
                                   '    return SCALER.apply(x)\n'
                                   '\n'
                                   '@af.pipeline\n'
                                   'def pipe():\n'
                                   '    return s(one())\n'},
                    {'pipemod.py': '\n'
                                   'import airflowdsl as af\n'
                                   '\n'
                                   'class Scaler:\n'
                                   '    def __init__(self, k):\n'
                                   '        self.k = k\n'
                                   '    def apply(self, x):\n'
                                   '        return x * self.k\n'
                                   'SCALER = Scaler(3)\n'
                                   '\n'
                                   '\n'
                                   '@af.step\n'
                                   'def one() -> int:\n'
                                   '    return 1\n'
                                   '\n'
                                   '@af.step\n'
                                   'def s(x: int) -> int:\n'
                                   '    return SCALER.apply(x)\n'
                                   '\n'
                                   '@af.pipeline\n'
                                   'def pipe():\n'
                                   '    return s(one())\n'}),
 'attr_method_injected': ('pipemod',
                          {'helpers.py': '\n'
                                         'class Engine:\n'
                                         '    def go(self, x):\n'
                                         '        return x + 1\n'
                                         'class Holder:\n'
                                         '    def __init__(self, engine):\n'
                                         '        self.engine = engine\n',
                           'pipemod.py': '\n'
                                         'import airflowdsl as af\n'
                                         '\n'
                                         'from helpers import Engine, Holder\n'
                                         'HOLDER = Holder(Engine())\n'
                                         '\n'
                                         '\n'
                                         '@af.step\n'
                                         'def one() -> int:\n'
                                         '    return 1\n'
                                         '\n'
                                         '@af.step\n'
                                         'def s(x: int) -> int:\n'
                                         '    return HOLDER.engine.go(x)\n'
                                         '\n'
                                         '@af.pipeline\n'
                                         'def pipe():\n'
                                         '    return s(one())\n'},
                          {'helpers.py': '\n'
                                         'class Engine:\n'
                                         '    def go(self, x):\n'
                                         '        return x + 2\n'
                                         'class Holder:\n'
                                         '    def __init__(self, engine):\n'
                                         '        self.engine = engine\n'}),
 'class_attr_instance': ('pipemod',
                         {'helpers.py': 'class Engine:\n'
                                        '    def go(self, x):\n'
                                        '        return x + 1\n',
                          'pipemod.py': '\n'
                                        'import airflowdsl as af\n'
                                        'from helpers import Engine as _E\n'
                                        'class Model:\n'
                                        '    ENGINE = _E()\n'
                                        '\n'
                                        '\n'
                                        '@af.step\n'
                                        'def one() -> int:\n'
                                        '    return 1\n'
                                        '\n'
                                        '@af.step\n'
                                        'def s(x: int) -> int:\n'
                                        '    return Model.ENGINE.go(x)\n'
                                        '\n'
                                        '@af.pipeline\n'
                                        'def pipe():\n'
                                        '    return s(one())\n'},
                         {'helpers.py': 'class Engine:\n'
                                        '    def go(self, x):\n'
                                        '        return x + 2\n'}),
 'bound_method_const': ('pipemod',
                        {'helpers.py': 'class A:\n'
                                       '    def m(self, x):\n'
                                       '        return x + 1\n'
                                       'M = A().m\n',
                         'pipemod.py': '\n'
                                       'import airflowdsl as af\n'
                                       'from helpers import M\n'
                                       '\n'
                                       '@af.step\n'
                                       'def one() -> int:\n'
                                       '    return 1\n'
                                       '\n'
                                       '@af.step\n'
                                       'def s(x: int) -> int:\n'
                                       '    return M(x)\n'
                                       '\n'
                                       '@af.pipeline\n'
                                       'def pipe():\n'
                                       '    return s(one())\n'},
                        {'helpers.py': 'class A:\n'
                                       '    def m(self, x):\n'
                                       '        return x + 2\n'
                                       'M = A().m\n'}),
 'cached_property': ('pipemod',
                     {'helpers.py': '\n'
                                    'import functools\n'
                                    'class A:\n'
                                    '    @functools.cached_property\n'
                                    '    def k(self):\n'
                                    '        return 1\n',
                      'pipemod.py': '\n'
                                    'import airflowdsl as af\n'
                                    'from helpers import A\n'
                                    '\n'
                                    '@af.step\n'
                                    'def one() -> int:\n'
                                    '    return 1\n'
                                    '\n'
                                    '@af.step\n'
                                    'def s(x: int) -> int:\n'
                                    '    return x + A().k\n'
                                    '\n'
                                    '@af.pipeline\n'
                                    'def pipe():\n'
                                    '    return s(one())\n'},
                     {'helpers.py': '\n'
                                    'import functools\n'
                                    'class A:\n'
                                    '    @functools.cached_property\n'
                                    '    def k(self):\n'
                                    '        return 2\n'}),
 're_pattern': ('pipemod',
                {'pipemod.py': '\n'
                               'import airflowdsl as af\n'
                               'import re\n'
                               "PAT = re.compile('a')\n"
                               '\n'
                               '@af.step\n'
                               'def one() -> int:\n'
                               '    return 1\n'
                               '\n'
                               '@af.step\n'
                               'def s(x: int) -> int:\n'
                               "    return x + len(PAT.findall('aab'))\n"
                               '\n'
                               '@af.pipeline\n'
                               'def pipe():\n'
                               '    return s(one())\n'},
                {'pipemod.py': '\n'
                               'import airflowdsl as af\n'
                               'import re\n'
                               "PAT = re.compile('b')\n"
                               '\n'
                               '@af.step\n'
                               'def one() -> int:\n'
                               '    return 1\n'
                               '\n'
                               '@af.step\n'
                               'def s(x: int) -> int:\n'
                               "    return x + len(PAT.findall('aab'))\n"
                               '\n'
                               '@af.pipeline\n'
                               'def pipe():\n'
                               '    return s(one())\n'})}

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


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, src in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(src))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    """Each case's first run and its run after the edit (two cases at a time)."""

    def one(name: str) -> list[dict[str, object]]:
        module, before, after = CASES[name]
        root = tmp_path_factory.mktemp(name)
        _write(root, before)
        first = _run(root, module)
        _write(root, after)
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
