"""``import airflowdsl`` and compiling a pipeline stay light: no Ray, no pandas.

A fully cached rerun is mostly interpreter start plus imports, so what the DSL imports
is part of its speed (bench/cached_rerun.py). Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import airflowdsl as af

HEAVY = ("ray", "pandas", "pyarrow", "airflowdsl.train", "airflowdsl.tune", "airflowdsl.air.result")


def _fresh(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_import_and_compile_load_no_ray_or_pandas() -> None:
    out = _fresh(f"""
        import sys
        import airflowdsl as af

        @af.ingest
        def load() -> af.Dataset: ...

        @af.train
        def fit(ds: af.Dataset, c: float = 1.0) -> af.Checkpoint: ...

        @af.pipeline
        def p():
            return fit(load())

        p.compile()
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert out == "[]"


def test_pydantic_comes_with_the_first_pipeline_parameter() -> None:
    """A pipeline without parameters (and constants of their annotations' own types)
    compiles without pydantic; the first pipeline with a parameter imports it."""
    out = _fresh("""
        import sys
        import airflowdsl as af

        @af.step
        def one(k: int = 1) -> int:
            return k

        @af.pipeline
        def bare():
            return one(k=2)

        bare.compile()
        before = "pydantic" in sys.modules

        @af.pipeline
        def with_param(n: int = 1):
            return one(k=n)

        print(before, with_param.compile(n="3").params)
    """)
    assert out == "False {'n': 3}"


def test_the_executor_imports_ray_only_modules_when_a_step_runs() -> None:
    """A fully cached rerun plans, checks the store and records the run: the scheduler,
    Ray and the task modules are imported only once a step has to run (``_run_on_ray``)."""
    ray_only = ("ray", "pandas", "pyarrow", "airflowdsl.runtime.scheduler",
                "airflowdsl.runtime.raycluster", "airflowdsl.runtime.tasks",
                "airflowdsl.runtime.runlog", "airflowdsl.runtime.watchdog",
                "airflowdsl.runtime.cutoff", "airflowdsl.air.progress")
    out = _fresh(f"""
        import sys
        import airflowdsl.runtime.executor
        print(sorted(m for m in {ray_only!r} if m in sys.modules))
    """)
    assert out == "[]"


def test_first_use_brings_the_cached_run_path_and_nothing_for_uri_stores() -> None:
    """The first use of the DSL (``af.step`` and friends) imports what a fully cached
    ``run()`` needs (planner, store, history), so that run plans at once in a new
    process; run records of URI stores, thread pools and signal handling come only when
    used. ``import airflowdsl`` alone imports none of it (its names load on first use)."""
    out = _fresh("""
        import sys
        import airflowdsl
        wanted = ("airflowdsl.runtime.executor", "airflowdsl.runtime.planner",
                  "airflowdsl.runtime.history", "airflowdsl.runtime.runrecords",
                  "concurrent.futures", "signal", "ray")
        print(sorted(m for m in wanted if m in sys.modules))
        airflowdsl.step
        print(sorted(m for m in wanted if m in sys.modules))
    """)
    assert out.splitlines() == ["[]", str(["airflowdsl.runtime.executor",
                                           "airflowdsl.runtime.history",
                                           "airflowdsl.runtime.planner"])]


def test_a_worker_running_a_step_imports_no_dsl_or_networkx() -> None:
    """A Ray worker loads the step task from ``airflowdsl.runtime.tasks``: that import
    (part of every new worker's start) brings neither the DSL nor networkx."""
    out = _fresh("""
        import sys
        import airflowdsl.runtime.tasks
        print(sorted(m for m in ("airflowdsl.dsl", "networkx", "pydantic") if m in sys.modules))
    """)
    assert out == "[]"


def test_package_names_and_subpackages_resolve_lazily() -> None:
    out = _fresh("""
        import airflowdsl as af
        from airflowdsl import Dataset, pipeline
        print(af.step.__class__.__name__, af.AirflowDSLError.__name__, af.runtime.__name__,
              Dataset is af.Dataset, callable(pipeline), hasattr(af, "no_such_name"),
              hasattr(af, "__wrapped__"))
    """)
    assert out == "StepDecorator AirflowDSLError airflowdsl.runtime True True False False"


def test_train_stays_the_decorator_when_trainer_modules_load_later() -> None:
    out = _fresh("""
        import airflowdsl as af
        import airflowdsl.train.trainer as trainer
        from airflowdsl.tune import Tuner
        print(type(af.train).__name__, type(af.tune).__name__,
              af.train.trainer is trainer, af.tune.Tuner is Tuner)
    """)
    assert out == "StepDecorator StepDecorator True True"


def test_dataset_alias_means_ray_data_dataset() -> None:
    ray_data = pytest.importorskip("ray.data")
    from ray.data.dataset import MaterializedDataset

    from airflowdsl.dsl.artifacts import artifact_type

    assert issubclass(ray_data.Dataset, af.Dataset) and issubclass(MaterializedDataset, af.Dataset)
    assert not issubclass(int, af.Dataset) and not isinstance(3, af.Dataset)
    assert af.Dataset.map_batches is ray_data.Dataset.map_batches  # class attributes forward
    # either spelling of the annotation means the same to the compiler
    assert af.is_assignable(ray_data.Dataset, af.Dataset)
    assert af.is_assignable(af.Dataset, ray_data.Dataset)
    assert af.is_assignable(MaterializedDataset, af.Dataset)
    assert not af.is_assignable(af.Dataset, MaterializedDataset)
    assert not af.is_assignable(af.Dataset, af.Checkpoint)
    assert artifact_type(ray_data.Dataset | None) is af.Dataset


def test_the_package_pickles_by_reference() -> None:
    """A step function's globals hold ``af``; shipping it by value pickles the package."""
    import pickle

    import ray.cloudpickle as cp

    assert pickle.loads(pickle.dumps(af)) is af
    assert cp.loads(cp.dumps(af)) is af
