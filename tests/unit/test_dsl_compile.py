"""Compiling pipelines into the typed DAG of docs/ARCHITECTURE.md."""

from __future__ import annotations

import time
from typing import Any

import networkx as nx
import pytest

import airflowdsl as af
from airflowdsl.dsl.handles import OutputRef


def test_graph_matches_contract() -> None:
    from dsl_ok import cancer, fit

    dag = cancer.compile(max_depth="4")          # coerced the pydantic way
    assert isinstance(dag, af.CompiledPipeline)
    assert dag.name == "cancer"
    assert dag.params == {"max_depth": 4, "test_size": 0.25}
    g = dag.graph
    assert isinstance(g, nx.DiGraph)
    assert dag.order == ["load", "split", "fit", "score"]
    assert list(nx.topological_sort(g)) == dag.order
    node = g.nodes["fit"]
    assert node["spec"] is fit.spec and node["kind"] == "train"
    assert node["params"] == {"max_depth": 4}
    assert node["inputs"] == {"train": ("split", 0), "valid": ("split", 1)}
    assert node["input_types"] == fit.spec.input_types
    assert node["output_types"] == (af.Checkpoint,)
    assert g.nodes["load"]["params"] == {"n": 10}          # defaults included
    edge = g.edges["split", "fit"]
    assert edge["bindings"] == [("train", 0), ("valid", 1)]
    assert edge["param"] == ("train", "valid") and edge["type"] == "Dataset"
    assert g.edges["fit", "score"]["type"] == "Checkpoint"
    assert g.edges["load", "split"]["bindings"] == [("ds", None)]
    assert dag.outputs == OutputRef("score", None)
    assert node["spec"].num_cpus == 1 and node["spec"].retries == 2


def test_compile_runs_no_step() -> None:
    calls: list[str] = []

    @af.step
    def side(x: int = 1) -> int:
        calls.append("ran")
        return x

    @af.pipeline
    def p():
        return side(side())

    p.compile()
    with pytest.raises(af.CompileError):
        p.compile(nope=1)
    assert calls == []


def test_steps_called_twice_get_unique_names() -> None:
    @af.step
    def inc(x: int) -> int: ...

    @af.step
    def zero() -> int: ...

    @af.pipeline
    def p():
        x = zero()
        for _ in range(3):
            x = inc(x)
        return inc.with_options(name="last")(x)

    dag = p.compile()
    assert dag.order == ["zero", "inc", "inc_2", "inc_3", "last"]
    assert dag.graph.nodes["inc_3"]["inputs"] == {"x": ("inc_2", None)}
    assert dag.graph.nodes["last"]["spec"].fn is inc.spec.fn


def test_explicit_name_must_be_unique() -> None:
    @af.step
    def one() -> int: ...

    @af.pipeline
    def p():
        one.with_options(name="a")()
        return one.with_options(name="a")()

    with pytest.raises(af.CompileError, match="step name 'a' is used twice"):
        p.compile()


def test_sub_pipelines_are_inlined_with_prefix() -> None:
    @af.ingest
    def load() -> af.Dataset: ...

    @af.train
    def fit(ds: af.Dataset, depth: int = 1) -> af.Checkpoint: ...

    @af.predict
    def compare(a: af.Checkpoint, b: af.Checkpoint) -> dict[str, float]: ...

    @af.pipeline
    def sub(ds: af.Dataset, depth: int = 2):
        return fit(ds, depth=depth)

    @af.pipeline
    def main():
        ds = load()
        return compare(sub(ds, depth="3"), sub(ds))

    dag = main.compile()
    assert dag.order == ["load", "sub.fit", "sub_2.fit", "compare"]
    assert dag.graph.nodes["sub.fit"]["params"] == {"depth": 3}
    assert dag.graph.nodes["sub_2.fit"]["params"] == {"depth": 2}
    assert dag.graph.nodes["sub.fit"]["inputs"] == {"ds": ("load", None)}
    assert dag.graph.nodes["compare"]["inputs"] == {"a": ("sub.fit", None),
                                                    "b": ("sub_2.fit", None)}
    renamed = sub.with_options(name="tuned")

    @af.pipeline
    def main2():
        return renamed(load())

    assert main2.compile().order == ["load", "tuned.fit"]


def test_sub_pipeline_constant_is_validated() -> None:
    @af.step
    def one(x: int) -> int: ...

    @af.pipeline
    def sub(x: int):
        return one(x)

    @af.pipeline
    def main():
        return sub("many")

    with pytest.raises(af.CompileError) as ei:
        main.compile()
    assert "step 'sub', parameter 'x': expected int, got 'many' (str)" in str(ei.value)


def test_several_outputs_and_indexing() -> None:
    @af.step
    def pair() -> tuple[int, str]: ...

    @af.step
    def use(n: int, s: str) -> str: ...

    @af.pipeline
    def p():
        both = pair()
        return use(both[0], both[1]), pair()

    dag = p.compile()
    assert dag.graph.nodes["use"]["inputs"] == {"n": ("pair", 0), "s": ("pair", 1)}
    assert dag.outputs == (OutputRef("use", None), OutputRef("pair_2", 0),
                           OutputRef("pair_2", 1))


def test_pipeline_without_return_and_params_model() -> None:
    @af.step
    def one(x: float) -> float: ...

    @af.pipeline
    def p(x: float, flag: bool = False):
        one(x)

    dag = p.compile(x="1.5", flag="yes")
    assert dag.outputs is None and dag.params == {"x": 1.5, "flag": True}
    assert dag.graph.nodes["one"]["params"] == {"x": 1.5}


def test_reserved_pipeline_parameter_names() -> None:
    with pytest.raises(TypeError, match="reserved"):
        @af.pipeline
        def p(store: str = "x"): ...


def test_outside_a_pipeline_everything_runs_eagerly() -> None:
    @af.step
    def add(a: int, b: int = 1) -> int:
        return a + b

    @af.pipeline
    def p(a: int = 1):
        return add(add(a), b=10)

    assert p(a=2) == 13
    assert p.compile().order == ["add", "add_2"]


def test_run_delegates_to_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def execute(compiled: af.CompiledPipeline, **kw: Any) -> str:
        seen.update(kw, compiled=compiled)
        return "ran"

    # the DSL imports the executor with itself (a cached run plans at once)
    monkeypatch.setattr("airflowdsl.dsl.compile.execute", execute)
    from dsl_ok import cancer

    assert cancer.run(max_depth=5, force=True, from_step="fit") == "ran"
    assert seen["compiled"].params["max_depth"] == 5
    assert seen["force"] is True and seen["from_step"] == "fit"
    assert seen["store"] is None and seen["only"] is None


def test_from_graph_builds_edges_and_order() -> None:
    from dsl_cyclic import a, b

    g = nx.DiGraph()
    af_compile = pytest.importorskip("airflowdsl.dsl.compile")
    af_compile.add_node(g, "b", b.spec, inputs={"x": ("a", None)})
    af_compile.add_node(g, "a", a.spec, params={"x": None})
    dag = af.CompiledPipeline.from_graph("hand", g, outputs=OutputRef("b", None))
    assert dag.order == ["a", "b"] and dag.graph.edges["a", "b"]["type"] == "Dataset"


def _chain(n: int) -> af.Pipeline:
    @af.step
    def inc(x: int) -> int: ...

    @af.step
    def start() -> int: ...

    @af.pipeline
    def chain():
        x = start()
        for _ in range(n - 1):
            x = inc(x)
        return x

    return chain


def test_thousand_step_pipeline_compiles() -> None:
    t0 = time.perf_counter()
    dag = _chain(1000).compile()
    elapsed = time.perf_counter() - t0
    assert dag.graph.number_of_nodes() == 1000 and dag.graph.number_of_edges() == 999
    assert dag.order[0] == "start" and dag.order[-1] == "inc_999"
    assert elapsed < 30  # generous: a shared 2-core CI box; see bench/ for real numbers
