"""The resource model's rules without Ray: what a step holds, what can never fit, what
the driver admits, how trainer workers are sized, and when the watchdog calls a stall."""

from __future__ import annotations

import pytest

import airflowdsl as af
from airflowdsl.air.config import ScalingConfig
from airflowdsl.errors import AirflowDSLError, ResourceError
from airflowdsl.runtime.resources import ClusterView, Request, admits, check_feasible
from airflowdsl.runtime.watchdog import Sample, StallMonitor

TWO = ClusterView({"CPU": 2.0, "memory": 8e9}, ({"CPU": 2.0, "memory": 8e9},))
ONE = ClusterView({"CPU": 1.0}, ({"CPU": 1.0},))
GPU_NODES = ClusterView({"CPU": 4.0, "GPU": 2.0, "big": 1.0},
                        ({"CPU": 2.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 1.0, "big": 1.0}))


def test_a_step_holds_exactly_what_it_asks() -> None:
    @af.step(num_cpus=0.5, num_gpus=1, memory=2**30, resources={"big": 1})
    def s() -> int:
        return 1

    req = Request.of(s.spec)
    assert req.as_ray() == {"CPU": 0.5, "GPU": 1.0, "memory": float(2**30), "big": 1.0}
    assert Request.of(af.step(lambda: 1).spec).empty  # the default holds nothing


def test_resources_option_is_validated() -> None:
    with pytest.raises(ValueError, match="use num_cpus="):
        af.step(resources={"CPU": 1})(lambda: 1)
    with pytest.raises(ValueError, match=">= 0"):
        af.step(resources={"big": -1})(lambda: 1)


@pytest.mark.parametrize(("cpus", "fits_two", "fits_one"),
                         [(0, True, True), (0.5, True, False), (1, True, False),
                          (2, False, False)])
def test_steps_may_hold_all_cpus_but_one(cpus: float, fits_two: bool, fits_one: bool) -> None:
    for view, fits in ((TWO, fits_two), (ONE, fits_one)):
        req = {"s": Request(cpus=cpus)}
        if fits:
            check_feasible(req, view)
        else:
            with pytest.raises(ResourceError) as err:
                check_feasible(req, view)
            msg = str(err.value)
            # names the step, what it asks, what the cluster has and what to change
            assert "'s'" in msg and f"num_cpus={cpus:g}" in msg and "lower num_cpus=" in msg
            assert isinstance(err.value, AirflowDSLError)


def test_gpu_and_custom_requests_must_fit_one_node() -> None:
    check_feasible({"g": Request(gpus=1), "b": Request(custom={"big": 1})}, GPU_NODES)
    with pytest.raises(ResourceError, match="'g2'.*num_gpus=2.*no node"):
        check_feasible({"g2": Request(gpus=2)}, GPU_NODES)  # 2 GPUs, but 1 per node
    with pytest.raises(ResourceError, match="'x'.*resources=\\{'tiny': 1"):
        check_feasible({"x": Request(custom={"tiny": 1})}, TWO)


def test_admission_keeps_a_whole_cpu_free() -> None:
    assert admits(0.0, Request(cpus=1), TWO)
    assert not admits(1.0, Request(cpus=1), TWO)  # would leave no CPU for nested work
    assert admits(0.5, Request(cpus=0.5), TWO)
    assert admits(1.0, Request(), TWO)  # zero-CPU steps are always admitted


@pytest.mark.parametrize(("cpus", "workers", "each"),
                         [(2, 2, 0.5), (2, 1, 1.0), (16, 4, 1.0), (4, 6, 0.5), (1, 2, 0.25)])
def test_default_worker_cpus_leave_a_whole_cpu(cpus: float, workers: int, each: float) -> None:
    res = ScalingConfig(num_workers=workers).worker_resources(cluster_cpus=cpus)
    assert res["CPU"] == each
    if cpus >= 2:
        assert cpus - workers * res["CPU"] >= 1


def test_explicit_worker_resources_are_kept() -> None:
    sc = ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1, "big": 0.5})
    assert sc.worker_resources(cluster_cpus=2) == {"CPU": 1, "big": 0.5}


# --- the watchdog ------------------------------------------------------------------

CPU1 = ((("CPU", 1.0),), 1)


def _sample(t: float, pending: tuple = (CPU1,), free: float = 0.998,
            progress: tuple = ()) -> Sample:
    return Sample(t, pending, {"CPU": free}, progress)


def test_a_demand_that_stands_still_is_a_stall() -> None:
    mon = StallMonitor(60)
    assert mon.observe(_sample(0)) == 0
    assert mon.observe(_sample(30)) == 30
    assert mon.observe(_sample(61)) == 61


@pytest.mark.parametrize("change", ["progress", "free", "pending", "gone"])
def test_any_movement_restarts_the_clock(change: str) -> None:
    mon = StallMonitor(60)
    mon.observe(_sample(0))
    moved = {"progress": _sample(50, progress=(("fit", 1.0),)), "free": _sample(50, free=1.5),
             "pending": _sample(50, pending=(((("CPU", 2.0),), 1),)),
             "gone": _sample(50, pending=())}[change]
    assert mon.observe(moved) == 0
    if change != "gone":
        assert mon.observe(_sample(100, **_same_as(moved))) == 50


def _same_as(s: Sample) -> dict:
    return {"pending": s.pending, "free": s.free["CPU"], "progress": s.progress}


def test_poll_names_steps_holdings_pending_and_free() -> None:
    clock = iter(range(0, 1000, 30))
    mon = StallMonitor(60, read=lambda progress: _sample(float(next(clock)), progress=progress))
    mon._last_poll = -100.0
    running = {"fit": Request(cpus=1)}
    stall = None
    for _ in range(5):
        mon._last_poll = -100.0  # sample on every poll (the real one samples every 2 s)
        stall = mon.poll(running, ())
        if stall:
            break
    assert stall is not None and stall.steps == ("fit",)
    for part in ("'fit' holds num_cpus=1", "pending 1 x {1 CPU}", "0.998 CPU free",
                 "--pending-timeout"):
        assert part in stall.message


def test_no_limit_never_stalls() -> None:
    mon = StallMonitor(None, read=lambda p: _sample(1e6))
    assert mon.poll({"fit": Request()}, ()) is None


def test_progress_signature_comes_from_the_control() -> None:
    from airflowdsl.runtime.scheduler import Control

    texts = {"fit": ("iter 1", 1.0), "done_already": ("iter 9", 2.0)}
    control = Control(progress=lambda: texts)
    control._last = -100.0
    updates, sig = control.progress_updates(["fit", "other"])
    assert updates == {"fit": "iter 1"} and sig == (("fit", 1.0),)
