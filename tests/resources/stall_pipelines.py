"""Pipelines that would wait forever without the product's limits (integration tests)."""

from __future__ import annotations

import time

import airflowdsl as af


@af.step
def starve() -> int:
    """Holds every CPU with an actor, then asks Ray Data for a 1-CPU task: never placed."""
    import ray
    import ray.data

    @ray.remote(num_cpus=2)
    class Hog:
        def ping(self) -> int:
            return 1

    hog = Hog.remote()
    ray.get(hog.ping.remote())
    return len(ray.data.range(10).to_pandas())


@af.pipeline
def starving():
    return starve()


@af.step
def quick() -> int:
    return 1


@af.step
def slow(x: int) -> int:
    """Sleeps long enough to be cancelled (prints so that its log shows it started)."""
    print("slow started", flush=True)
    time.sleep(600)
    return x


@af.pipeline
def slow_pipe():
    return slow(quick())


def sleepy_rendezvous() -> None:
    """A worker-group setup call that never comes back in time."""
    time.sleep(30)
