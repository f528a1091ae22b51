"""Every public exception derives from ``AirflowDSLError`` and is defined in airflowdsl/errors.py."""

from __future__ import annotations

import ast
import importlib
import pickle
from pathlib import Path

import pytest

import airflowdsl as af
from airflowdsl import errors

PACKAGE = Path(af.__file__).parent
PUBLIC = [getattr(errors, name) for name in errors.__all__
          if isinstance(getattr(errors, name), type)
          and issubclass(getattr(errors, name), BaseException)]


def _exception_classes_outside_errors() -> list[str]:
    """Public classes defined elsewhere whose bases look like exceptions."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = [ast.unparse(b) for b in node.bases]
            if any(b.endswith(("Error", "Exception", "Failed", "Warning")) for b in bases):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    return found


def test_every_public_exception_is_defined_in_errors_py() -> None:
    assert _exception_classes_outside_errors() == []


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_derives_from_common_base(cls: type[BaseException]) -> None:
    assert issubclass(cls, errors.AirflowDSLError)


@pytest.mark.parametrize(("module", "name", "builtin"), [
    ("airflowdsl", "CompileError", ValueError),
    ("airflowdsl.dsl.errors", "CompileError", ValueError),
    ("airflowdsl.dsl.handles", "HandleUsageError", TypeError),
    ("airflowdsl.runtime.store", "CorruptArtifact", RuntimeError),
    ("airflowdsl.runtime.tasks", "StepFailed", Exception),
    ("airflowdsl.train.trainer", "TrainingFailedError", RuntimeError),
    ("airflowdsl.train.tensorflow_keras", "Keras3ModelError", TypeError),
    ("airflowdsl.cli._load", "LoadError", Exception),
])
def test_old_import_paths_and_builtin_bases_kept(module: str, name: str,
                                                 builtin: type[BaseException]) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert cls is getattr(errors, name)
    assert issubclass(cls, builtin)


def test_errors_carry_their_fields_through_pickle() -> None:
    failed = pickle.loads(pickle.dumps(errors.StepFailed("fit", "ValueError: x", "tb")))
    assert (failed.step, failed.error, failed.user_traceback) == ("fit", "ValueError: x", "tb")
    training = pickle.loads(pickle.dumps(errors.TrainingFailedError("rank 1", result={"a": 1})))
    assert training.result == {"a": 1}
    run = pickle.loads(pickle.dumps(errors.RunFailedError("run r1 failed", run_id="r1")))
    assert run.run_id == "r1" and isinstance(run, RuntimeError)


def test_compile_error_is_caught_by_the_base() -> None:
    @af.step
    def one(x: int) -> int:
        return x

    @af.pipeline
    def p() -> None:
        one("not an int")

    with pytest.raises(af.AirflowDSLError) as info:
        p.compile()
    assert isinstance(info.value, ValueError)
