"""Every compile check: af.CompileError (a ValueError) naming pipeline, step, parameter
and expected vs given; all problems of one compile are reported together."""

from __future__ import annotations

import pytest

import airflowdsl as af
from airflowdsl.dsl.errors import CompileProblem


def _errors(pipeline: af.Pipeline, **params: object) -> tuple[str, list[CompileProblem]]:
    with pytest.raises(af.CompileError) as ei:
        pipeline.compile(**params)
    assert isinstance(ei.value, ValueError)
    return str(ei.value), ei.value.errors


def test_type_mismatches_are_all_reported() -> None:
    from dsl_mistyped import mistyped

    text, errors = _errors(mistyped)
    assert [e.kind for e in errors] == ["type_mismatch"] * 3
    assert text.startswith("3 compile errors in pipeline 'mistyped':")
    assert ("pipeline 'mistyped', step 'score', parameter 'ckpt': expected Checkpoint, "
            "got Dataset from step 'load'") in text
    assert "step 'label', parameter 'text': expected str, got int from step 'count'" in text
    assert ("step 'names', parameter 'values': expected list[str], got list[int] "
            "from step 'ids'") in text
    e = errors[0]
    assert (e.pipeline, e.step, e.parameter, e.expected, e.given) == (
        "mistyped", "score", "ckpt", "Checkpoint", "Dataset")


def test_step_param_pydantic_error() -> None:
    from dsl_bad_param import bad_param

    text, errors = _errors(bad_param)
    assert text == ("pipeline 'bad_param', step 'fit', parameter 'max_depth': expected int, "
                    "got 'deep' (str) — pydantic: Input should be a valid integer, unable to "
                    "parse string as an integer")
    assert errors[0].kind == "invalid_value"


def test_pipeline_param_pydantic_errors() -> None:
    from dsl_ok import cancer

    text, errors = _errors(cancer, max_depth="deep", test_size=[1], extra=1)
    kinds = sorted(e.kind for e in errors)
    assert kinds == ["invalid_pipeline_param", "invalid_pipeline_param", "unknown_keyword"]
    assert ("pipeline 'cancer', parameter 'max_depth': expected int, got 'deep' (str) — "
            "pydantic: Input should be a valid integer") in text
    assert "parameter 'test_size': expected float, got [1] (list)" in text
    assert "parameter 'extra': unknown pipeline parameter; cancer() accepts: max_depth" in text


def test_a_pipeline_without_parameters_refuses_every_keyword() -> None:
    """No pydantic model for it (nothing to validate): the same problems a model with
    ``extra="forbid"`` gives, and values of exactly a plain annotation's type are kept."""
    from airflowdsl.dsl.validate import validate_value

    @af.pipeline
    def bare(): ...

    text, errors = _errors(bare, a=1, b="x")
    assert [(e.kind, e.parameter) for e in errors] == [("unknown_keyword", "a"),
                                                     ("unknown_keyword", "b")]
    assert "parameter 'a': unknown pipeline parameter; bare() accepts: nothing" in text
    assert bare.compile().params == {}
    for ann, value in ((int, 3), (float, float("nan")), (str, " s "), (bool, True)):
        kept, err = validate_value(ann, value)
        assert kept is value and err is None
    assert validate_value(float, 3) == (3.0, None)  # converted by pydantic, as before
    assert type(validate_value(float, 3)[0]) is float
    assert validate_value(int, "deep")[1] is not None


def test_missing_required_pipeline_param() -> None:
    @af.pipeline
    def needs(n: int): ...

    text, errors = _errors(needs)
    assert "pipeline 'needs', parameter 'n': missing required pipeline parameter " \
           "(expected int)" in text


def test_missing_input() -> None:
    from dsl_missing_input import missing_input

    text, errors = _errors(missing_input)
    assert text == ("pipeline 'missing_input', step 'fit', parameter 'valid': missing required "
                    "input (expected Dataset)")
    assert errors[0].kind == "missing_input"


def test_unknown_keyword_too_many_positional_plain_value_for_artifact() -> None:
    from dsl_bad_calls import bad_calls

    text, errors = _errors(bad_calls)
    assert [e.kind for e in errors] == ["unknown_keyword", "too_many_positional",
                                        "artifact_required"]
    assert ("pipeline 'bad_calls', step 'clean', parameter 'dropna': unknown keyword "
            "argument; step clean() accepts: ds, drop_na") in text
    assert ("pipeline 'bad_calls', step 'clean_2': too many positional arguments: takes 2, "
            "got 3") in text
    assert ("pipeline 'bad_calls', step 'clean_3', parameter 'ds': expected a Dataset artifact "
            "produced by a step, got plain value 'data.csv' (str); plain values for artifact "
            "inputs are a compile error") in text


def test_cycle_shows_path() -> None:
    from dsl_cyclic import build

    with pytest.raises(af.CompileError) as ei:
        build()
    (err,) = ei.value.errors
    assert err.kind == "cycle"
    assert "pipeline 'cyclic'" in str(ei.value)
    path = str(ei.value).split("cycle: ")[1]
    nodes = path.split(" -> ")
    assert nodes[0] == nodes[-1] and sorted(nodes[:-1]) == ["a", "b", "c"]


def test_from_graph_checks_types() -> None:
    import networkx as nx

    from airflowdsl.dsl.compile import add_node

    @af.train
    def fit(ds: af.Dataset) -> af.Checkpoint: ...

    @af.predict
    def pred(ds: af.Dataset) -> af.Dataset: ...

    g = nx.DiGraph()
    add_node(g, "fit", fit.spec)
    add_node(g, "pred", pred.spec, inputs={"ds": ("fit", None)})
    with pytest.raises(af.CompileError, match="step 'pred', parameter 'ds': expected Dataset, "
                                              "got Checkpoint from step 'fit'"):
        af.CompiledPipeline.from_graph("hand", g)


def test_missing_return_annotation_is_any() -> None:
    @af.step
    def untyped():
        return 1

    @af.step
    def wants(x: str) -> str: ...

    @af.pipeline
    def p():
        return wants(untyped())

    assert p.compile().graph.edges["untyped", "wants"]["type"] == "Any"


def test_single_output_cannot_be_unpacked() -> None:
    @af.ingest
    def load() -> af.Dataset: ...

    @af.pipeline
    def p():
        a, b = load()
        return a

    text, errors = _errors(p)
    assert errors[0].kind == "bad_usage"
    assert "output of step 'load' (Dataset) is a single value and cannot be unpacked" in text
    assert "tuple[...]" in text


def test_whole_multi_output_into_one_parameter() -> None:
    @af.preprocess
    def split() -> tuple[af.Dataset, af.Dataset]: ...

    @af.train
    def fit(ds: af.Dataset) -> af.Checkpoint: ...

    @af.pipeline
    def p():
        return fit(split())

    text, _ = _errors(p)
    assert "step 'fit', parameter 'ds': got all 2 outputs of step 'split' at once" in text


def test_control_flow_on_handles_is_refused() -> None:
    @af.step
    def flag() -> bool: ...

    @af.pipeline
    def p():
        if flag():
            return None
        return None

    text, _ = _errors(p)
    assert "symbolic while the pipeline is compiled" in text


def test_handles_nested_in_containers_are_refused() -> None:
    @af.step
    def one() -> int: ...

    @af.step
    def total(xs: list[int]) -> int: ...

    @af.pipeline
    def p():
        return total([one(), one()])

    text, _ = _errors(p)
    assert "step 'total', parameter 'xs': step outputs nested in a list" in text


def test_bad_return_value() -> None:
    @af.pipeline
    def p():
        return 3

    text, _ = _errors(p)
    assert "a pipeline must return step outputs" in text and "got int" in text


def test_optional_artifact_accepts_none_and_valid_values_are_coerced() -> None:
    @af.train
    def fit(train: af.Dataset, valid: af.Dataset | None = None, lr: float = 0.1,
            layers: list[int] | None = None) -> af.Checkpoint: ...

    @af.ingest
    def load() -> af.Dataset: ...

    @af.pipeline
    def p():
        return fit(load(), valid=None, lr="0.5", layers=("1", 2))

    node = p.compile().graph.nodes["fit"]
    assert node["params"] == {"valid": None, "lr": 0.5, "layers": [1, 2]}
