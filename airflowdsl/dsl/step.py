"""Step decorators: ``@af.step``, ``@af.ingest``, ... and the ``StepSpec`` they produce."""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

KINDS = ("step", "ingest", "preprocess", "train", "tune", "predict")
#: key parts a step may opt into with ``cache_key=`` (see docs/runtime.md, "Cache keys")
OPTIONAL_KEY_PARTS = ("libraries",)


@dataclass(frozen=True, eq=False)
class StepSpec:
    """Everything the compiler and the runtime need to know about one step."""

    name: str
    kind: str
    fn: Callable[..., Any]
    signature: inspect.Signature
    input_types: dict[str, Any]
    output_types: tuple[Any, ...]
    multi_output: bool
    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: int | None = None
    resources: dict[str, float] | None = None  # Ray custom resources the task holds
    retries: int = 0
    cache: bool = True
    version: str | None = None
    cache_ignore: tuple[str, ...] = ()
    cache_key: tuple[str, ...] = ()  # optional key parts to add: "libraries"
    watch: tuple[str, ...] = ()
    cache_ttl: float | None = None
    explicit_name: bool = field(default=False, repr=False)


def resolve_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations; names that cannot be resolved yet count as ``Any``."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        hints: dict[str, Any] = {}
        ns = getattr(fn, "__globals__", {})
        for key, ann in getattr(fn, "__annotations__", {}).items():
            try:
                hints[key] = eval(ann, ns) if isinstance(ann, str) else ann  # noqa: S307
            except Exception:
                hints[key] = Any
        return hints


def _output_types(hints: dict[str, Any]) -> tuple[tuple[Any, ...], bool]:
    """A missing return annotation is ``Any``; ``tuple[A, B]`` gives two outputs."""
    if "return" not in hints:
        return (Any,), False
    ret = hints["return"]
    if typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if args and args != ((),) and not (len(args) == 2 and args[1] is Ellipsis):
            return tuple(args), True
    return (ret,), False


def make_spec(fn: Callable[..., Any], kind: str, **options: Any) -> StepSpec:
    if kind not in KINDS:
        raise ValueError(f"unknown step kind {kind!r}; expected one of {KINDS}")
    sig = inspect.signature(fn)
    hints = resolve_hints(fn)
    outputs, multi = _output_types(hints)
    inputs = {name: hints.get(name, Any) for name in sig.parameters}
    name = options.pop("name", None)
    for key in ("cache_ignore", "watch"):
        options[key] = tuple(options.get(key) or ())
    options["cache_key"] = check_cache_key(fn.__name__, options.get("cache_key"))
    unknown = [n for n in options["cache_ignore"] if n not in sig.parameters]
    if unknown:
        raise ValueError(f"step {fn.__name__!r}: cache_ignore names unknown parameters {unknown}")
    if options.get("retries") is None:
        options["retries"] = 0
    if options.get("resources") is not None:
        options["resources"] = _check_resources(fn.__name__, options["resources"])
    if options.get("cache") is None:
        options["cache"] = True
    return StepSpec(name=name or fn.__name__, kind=kind, fn=fn, signature=sig,
                    input_types=inputs, output_types=outputs, multi_output=multi,
                    explicit_name=name is not None, **options)


def check_cache_key(step: str, parts: Any) -> tuple[str, ...]:
    """``cache_key=`` names optional key parts (``OPTIONAL_KEY_PARTS``); a bare string is
    one part."""
    if parts is None:
        return ()
    found = (parts,) if isinstance(parts, str) else tuple(parts)
    unknown = [p for p in found if p not in OPTIONAL_KEY_PARTS]
    if unknown:
        raise ValueError(f"step {step!r}: cache_key= names unknown key parts {unknown}; "
                         f"known: {list(OPTIONAL_KEY_PARTS)}")
    return tuple(dict.fromkeys(found))


def _check_resources(step: str, resources: Any) -> dict[str, float]:
    """``resources=`` are Ray custom resources: names to non-negative amounts; CPU, GPU
    and memory have their own options."""
    if not isinstance(resources, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and v >= 0 for k, v in resources.items()):
        raise ValueError(f"step {step!r}: resources= must map custom resource names to "
                         f"amounts >= 0, e.g. {{'gpu_node': 1}}; got {resources!r}")
    builtin = sorted(set(resources) & {"CPU", "GPU", "memory", "object_store_memory"})
    if builtin:
        raise ValueError(f"step {step!r}: resources= names {builtin}; use num_cpus=, "
                         f"num_gpus= or memory= for those")
    return {k: float(v) for k, v in resources.items()}


class Recorder(Protocol):
    """What a step call inside a pipeline body being traced talks to (``trace.Trace``)."""

    def record_step(self, spec: StepSpec, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any: ...


#: the recorder of the pipeline body being traced in this context, if any (``trace.py``
#: sets it; it lives here so that a step call needs no import of the tracer)
RECORDER: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "airflowdsl_trace", default=None)


class Step(Generic[P, R]):
    """A decorated function. Outside a pipeline it runs the function; inside a
    ``@af.pipeline`` body it records a node and returns a symbolic output handle."""

    spec: StepSpec

    def __init__(self, spec: StepSpec) -> None:
        self.spec = spec
        functools.update_wrapper(self, spec.fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        current = RECORDER.get()
        if current is None:
            return typing.cast(R, self.spec.fn(*args, **kwargs))
        return typing.cast(R, current.record_step(self.spec, args, kwargs))

    def with_options(self, **options: Any) -> Step[P, R]:
        """A copy with other options, e.g. ``fit.with_options(name="fit_a")(train)``;
        an explicit name must be unique in the pipeline (no ``_2`` suffix is added)."""
        if "name" in options:
            options["explicit_name"] = options["name"] is not None
            options["name"] = options["name"] or self.spec.fn.__name__
        for key in ("cache_ignore", "watch"):
            if key in options:
                options[key] = tuple(options[key] or ())
        if "cache_key" in options:
            options["cache_key"] = check_cache_key(self.spec.name, options["cache_key"])
        return Step(dataclasses.replace(self.spec, **options))

    def __repr__(self) -> str:
        return f"<{self.spec.kind} step {self.spec.name!r}>"


class _StepFactory(Protocol):
    def __call__(self, fn: Callable[P, R_co], /) -> Step[P, R_co]: ...


class StepDecorator:
    """``@af.<kind>`` bare or with options. When ``module`` is set (``af.train``,
    ``af.tune``), unknown attributes are looked up in that module."""

    def __init__(self, kind: str, module: str | None = None) -> None:
        self.kind = kind
        self._module = module

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Step[P, R]: ...

    @overload
    def __call__(self, fn: None = None, /, *, name: str | None = None,
                 num_cpus: float | None = None, num_gpus: float | None = None,
                 memory: int | None = None, resources: dict[str, float] | None = None,
                 retries: int = 0, cache: bool = True,
                 version: str | None = None, cache_ignore: list[str] | None = None,
                 cache_key: Sequence[str] | None = None, watch: list[str] | None = None,
                 cache_ttl: float | None = None) -> _StepFactory: ...

    def __call__(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        if fn is not None:
            if options or not callable(fn):
                raise TypeError(f"@af.{self.kind} takes a function, or only keyword options")
            return Step(make_spec(fn, self.kind))

        def decorate(f: Callable[..., Any]) -> Step[Any, Any]:
            return Step(make_spec(f, self.kind, **dict(options)))

        return decorate

    def __getattr__(self, attr: str) -> Any:
        module = self.__dict__.get("_module")
        if module is None or attr.startswith("__"):
            raise AttributeError(attr)
        mod = importlib.import_module(module)
        try:
            return getattr(mod, attr)
        except AttributeError:
            if not hasattr(mod, "__path__"):
                raise AttributeError(f"{module!r} has no attribute {attr!r}") from None
        try:
            return importlib.import_module(f"{module}.{attr}")
        except ModuleNotFoundError as err:
            if err.name != f"{module}.{attr}":
                raise
            raise AttributeError(f"{module!r} has no attribute {attr!r}") from None

    def __repr__(self) -> str:
        return f"<airflowdsl step decorator {self.kind!r}>"


step = StepDecorator("step")
ingest = StepDecorator("ingest")
preprocess = StepDecorator("preprocess")
train = StepDecorator("train", module="airflowdsl.train")
tune = StepDecorator("tune", module="airflowdsl.tune")
predict = StepDecorator("predict")

__all__ = ["KINDS", "OPTIONAL_KEY_PARTS", "RECORDER", "Recorder", "Step", "StepDecorator",
           "StepSpec", "check_cache_key", "ingest", "make_spec", "predict", "preprocess",
           "resolve_hints", "step", "train", "tune"]
