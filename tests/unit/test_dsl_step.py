"""Step decorators: bare/with options, plain calls outside a pipeline, af.train/af.tune."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

import airflowdsl as af
from airflowdsl.dsl.step import Step, StepSpec


def double(x: int, factor: int = 2) -> int:
    """Doc of double."""
    return x * factor


@pytest.mark.parametrize("deco", [af.step, af.ingest, af.preprocess, af.train, af.tune,
                                  af.predict])
def test_bare_and_with_options(deco: Any) -> None:
    bare = deco(double)
    assert isinstance(bare, Step)
    assert bare.spec.kind == deco.kind
    assert bare.spec.name == "double"
    assert bare(3) == 6                          # outside a pipeline: the plain function
    opts = deco(name="twice", num_cpus=2, num_gpus=0.5, memory=1024, retries=3, cache=False,
                version="v2", cache_ignore=["factor"], watch=["data/*.csv"], cache_ttl=60.0)(double)
    s = opts.spec
    assert (s.name, s.num_cpus, s.num_gpus, s.memory, s.retries, s.cache, s.version) == (
        "twice", 2, 0.5, 1024, 3, False, "v2")
    assert s.cache_ignore == ("factor",) and s.watch == ("data/*.csv",) and s.cache_ttl == 60.0
    assert opts(2, factor=5) == 10


def test_spec_matches_contract() -> None:
    s = af.step(double).spec
    assert isinstance(s, StepSpec)
    assert s.fn is double
    assert s.retries == 0 and s.cache is True and s.version is None
    assert s.num_cpus is None and s.num_gpus is None and s.memory is None
    assert s.cache_ignore == () and s.watch == () and s.cache_ttl is None
    assert s.input_types == {"x": int, "factor": int}
    assert s.output_types == (int,) and s.multi_output is False
    assert s.signature == inspect.signature(double)
    with pytest.raises(AttributeError):
        s.name = "other"  # type: ignore[misc]  # frozen


def test_wrapper_keeps_name_doc_signature() -> None:
    st = af.step(double)
    assert st.__wrapped__ is double
    assert st.__name__ == "double" and st.__doc__ == "Doc of double."
    assert inspect.signature(st) == inspect.signature(double)


def test_tuple_return_gives_several_outputs() -> None:
    @af.preprocess
    def split(x: int) -> tuple[af.Dataset, af.Dataset]: ...

    assert split.spec.output_types == (af.Dataset, af.Dataset)
    assert split.spec.multi_output is True


def test_missing_annotations_are_any() -> None:
    @af.step
    def loose(x, y=1):
        return x

    assert loose.spec.input_types == {"x": Any, "y": Any}
    assert loose.spec.output_types == (Any,) and not loose.spec.multi_output


def test_variadic_tuple_is_one_output() -> None:
    @af.step
    def many() -> tuple[int, ...]: ...

    assert many.spec.output_types == (tuple[int, ...],) and not many.spec.multi_output


def test_cache_ignore_must_name_parameters() -> None:
    with pytest.raises(ValueError, match="cache_ignore names unknown parameters"):
        af.step(cache_ignore=["nope"])(double)


def test_bare_decorator_rejects_options_with_function() -> None:
    with pytest.raises(TypeError, match="takes a function"):
        af.step(double, name="x")  # type: ignore[call-overload]


def test_with_options_copies() -> None:
    st = af.train(double)
    other = st.with_options(name="fit_a", num_cpus=4)
    assert other.spec.name == "fit_a" and other.spec.explicit_name
    assert other.spec.num_cpus == 4 and other.spec.kind == "train"
    assert st.spec.name == "double" and st.spec.num_cpus is None


def test_train_and_tune_stay_decorators_after_module_import() -> None:
    train_pkg = importlib.import_module("airflowdsl.train")
    tune_mod = importlib.import_module("airflowdsl.tune")
    import airflowdsl

    assert airflowdsl.train is af.train and af.train.kind == "train"
    assert af.tune.kind == "tune"
    assert af.train(double).spec.kind == "train"
    assert af.train(num_cpus=1)(double).spec.num_cpus == 1
    assert af.tune(version="x")(double).spec.kind == "tune"
    # unknown attributes go to the module
    for name in getattr(train_pkg, "__all__", []):
        assert getattr(af.train, name) is getattr(train_pkg, name)
    assert tune_mod is not af.tune
    with pytest.raises(AttributeError):
        af.train.definitely_not_here_ok  # noqa: B018
    with pytest.raises(AttributeError):
        af.ingest.anything  # noqa: B018


def test_train_forwards_submodules() -> None:
    sub = af.train.trainer  # a real submodule of airflowdsl.train
    assert sub is importlib.import_module("airflowdsl.train.trainer")
