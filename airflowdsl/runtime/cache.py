"""Cache keys as small composable value objects (in the spirit of Prefect's cache policies).

A :class:`CacheKey` is a tuple of named :class:`KeyPart`s (``code``,
``params``, ``inputs``, ``version``, ``watch``, and ``libraries`` when a step
opts in with ``cache_key=("libraries",)``); each part keeps the digests of its
sub-components, so ``explain`` can say *which* function, parameter, upstream
or watched file changed. Policies compose with ``+``::

    DEFAULT_POLICY = CODE + PARAMS + INPUTS + VERSION + WATCH + LIBRARIES

``inputs`` holds the *content hashes* of the upstream outputs (early cutoff): an
upstream that re-runs and writes identical bytes leaves its consumers' keys
unchanged. Where an upstream still has to run, its entry is ``pending:<step>#<i>``
and the consuming task resolves it (:meth:`CacheKey.resolve`) before it looks the
key up (``runtime.cutoff``).

``cache_ttl`` is not part of the key: it is a maximum age, checked against
the stored artifact's creation time when the cache is consulted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from airflowdsl.runtime.canonical import canonical, digest
from airflowdsl.runtime.contracts import StepLike
from airflowdsl.runtime.fingerprint import Fingerprint, fingerprint
from airflowdsl.runtime.watch import watch_fingerprint


@dataclass(frozen=True)
class KeyPart:
    name: str
    detail: Mapping[str, str]
    notes: Mapping[str, str] = field(default_factory=dict)

    @cached_property  # parts are not changed once made (``resolve`` makes new ones)
    def digest(self) -> str:
        return digest("\n".join(f"{k}={v}" for k, v in sorted(self.detail.items())).encode())


@dataclass(frozen=True)
class CacheKey:
    parts: tuple[KeyPart, ...]

    @cached_property  # computed once; travels with the key (pickled in its ``__dict__``)
    def digest(self) -> str:
        return digest("\n".join(f"{p.name}:{p.digest}" for p in self.parts).encode(), 40)

    def components(self) -> dict[str, Any]:
        """JSON-able form, stored in the run history for ``explain``."""
        return {p.name: {"detail": dict(p.detail), "notes": dict(p.notes)} for p in self.parts}

    def part(self, name: str) -> KeyPart | None:
        return next((p for p in self.parts if p.name == name), None)

    @property
    def pending(self) -> dict[str, str]:
        """``param -> upstream output`` whose content is not known yet (``step#i``)."""
        inputs = self.part("inputs")
        return {k: v[8:] for k, v in (inputs.detail if inputs else {}).items()
                if v.startswith(PENDING)}

    def resolve(self, contents: Mapping[str, str]) -> CacheKey:
        """This key with pending inputs replaced by their content hashes."""
        parts = tuple(KeyPart(p.name, {**p.detail, **contents}, p.notes) if p.name == "inputs"
                      else p for p in self.parts)
        return CacheKey(parts)


PENDING = "pending:"


@dataclass
class KeyContext:
    """What a policy may look at: the step spec, its params and its inputs' keys."""

    spec: StepLike
    params: Mapping[str, Any]
    inputs: Mapping[str, tuple[str, str]]  # param -> (upstream step, content hash | pending)
    fingerprints: dict[int, Fingerprint] = field(default_factory=dict)

    def ignored(self, name: str) -> bool:
        return name in self.spec.cache_ignore

    @property
    def fingerprint(self) -> Fingerprint:
        fn = self.spec.fn
        if id(fn) not in self.fingerprints:
            self.fingerprints[id(fn)] = fingerprint(fn)
        return self.fingerprints[id(fn)]


class Policy:
    """Computes zero or more key parts from a :class:`KeyContext`."""

    def parts(self, ctx: KeyContext) -> list[KeyPart]:
        raise NotImplementedError

    def __add__(self, other: Policy) -> Policy:
        return _Compound((*_flat(self), *_flat(other)))

    def key(self, ctx: KeyContext) -> CacheKey:
        return CacheKey(tuple(self.parts(ctx)))


def _flat(p: Policy) -> tuple[Policy, ...]:
    return p.policies if isinstance(p, _Compound) else (p,)


@dataclass(frozen=True)
class _Compound(Policy):
    policies: tuple[Policy, ...]

    def parts(self, ctx: KeyContext) -> list[KeyPart]:
        return [part for p in self.policies for part in p.parts(ctx)]


@dataclass(frozen=True)
class _Simple(Policy):
    fn: Callable[[KeyContext], KeyPart | None]

    def parts(self, ctx: KeyContext) -> list[KeyPart]:
        part = self.fn(ctx)
        return [part] if part is not None else []


def _code(ctx: KeyContext) -> KeyPart:
    fp = ctx.fingerprint
    if not fp.stale and isinstance(fp.code_part, KeyPart):  # steps of one function in a
        return fp.code_part  # plan share the part (and its digest: ~10 us less per step)
    detail = dict(fp.digests)
    for label in fp.stale:  # never reused: the code that runs is not the code hashed
        detail[f"stale:{label}"] = uuid.uuid4().hex
    part = KeyPart("code", detail, {f"lib:{k}": v for k, v in fp.libraries.items()})
    if not fp.stale:
        fp.code_part = part
    return part


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _params(ctx: KeyContext) -> KeyPart:
    kept = {k: v for k, v in ctx.params.items() if not ctx.ignored(k)}
    return KeyPart("params", {k: digest(canonical(v)) for k, v in kept.items()},
                   {k: _short(v) for k, v in kept.items()})


def _inputs(ctx: KeyContext) -> KeyPart:
    kept = {k: v for k, v in ctx.inputs.items() if not ctx.ignored(k)}
    return KeyPart("inputs", {k: key for k, (_, key) in kept.items()},
                   {k: up for k, (up, _) in kept.items()})


def _version(ctx: KeyContext) -> KeyPart | None:
    v = ctx.spec.version
    return KeyPart("version", {"version": str(v)}) if v is not None else None


def _libraries(ctx: KeyContext) -> KeyPart | None:
    if "libraries" not in ctx.spec.cache_key:
        return None
    libs = dict(ctx.fingerprint.libraries)
    return KeyPart("libraries", libs, libs)


def _watch(ctx: KeyContext) -> KeyPart | None:
    patterns = tuple(ctx.spec.watch)
    return KeyPart("watch", watch_fingerprint(patterns)) if patterns else None


CODE, PARAMS, INPUTS = _Simple(_code), _Simple(_params), _Simple(_inputs)
VERSION, WATCH, LIBRARIES = _Simple(_version), _Simple(_watch), _Simple(_libraries)
DEFAULT_POLICY = CODE + PARAMS + INPUTS + VERSION + WATCH + LIBRARIES


def expired(manifest: Mapping[str, Any], ttl: float | None, now: float | None = None) -> bool:
    """True when ``ttl`` seconds have passed since the artifact was written."""
    if ttl is None:
        return False
    return (now if now is not None else time.time()) - float(manifest.get("created", 0)) > ttl
