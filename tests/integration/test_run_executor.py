"""Executor on a real local Ray (2 CPUs): parallel branches with nested Ray Data and training,
failure and resume, helper edits, corrupt artifacts, datasets and checkpoints."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import airflowdsl as af
from airflowdsl.runtime.store import ArtifactStore
from tests.modules import load_module

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def _meet(where: str, me: str, other: str) -> None:
    """Both branches must be running at the same time for either to get past this."""
    Path(where, me).touch()
    deadline = time.time() + 120
    while not Path(where, other).exists():
        if time.time() > deadline:
            raise TimeoutError(f"{other} never ran while {me} was running")
        time.sleep(0.05)


@af.ingest
def numbers(n: int = 64) -> af.Dataset:
    import ray.data

    return ray.data.range(n)


@af.preprocess
def prep_a(ds: af.Dataset, where: str) -> af.Dataset:
    _meet(where, "a", "b")
    return ds.map_batches(lambda b: {"id": b["id"], "x": b["id"] * 2.0})


@af.preprocess
def prep_b(ds: af.Dataset, where: str) -> af.Dataset:
    _meet(where, "b", "a")
    return ds.map_batches(lambda b: {"id": b["id"], "x": b["id"] * 3.0})


def _loop(config: dict[str, Any]) -> None:
    from airflowdsl.air import session

    shard = session.get_dataset_shard("train")
    total = sum(float(b["x"].sum()) for b in shard.iter_batches(batch_size=16))
    session.report({"total": total})


@af.train
def fit(ds: af.Dataset) -> dict:
    from airflowdsl.air import ScalingConfig
    from airflowdsl.train.trainer import DataParallelTrainer

    result = DataParallelTrainer(_loop, scaling_config=ScalingConfig(num_workers=2),
                                 datasets={"train": ds}).fit()
    return {"rows": float(ds.count()), "total": float(result.metrics["total"])}


@af.pipeline
def branches(where: str):
    ds = numbers()
    return fit(prep_a(ds, where=where)), fit(prep_b(ds, where=where))


def test_parallel_branches_with_nested_ray_data_and_training(tmp_path: Path) -> None:
    run = branches.run(where=str(tmp_path), store=tmp_path / "s")
    assert run.status == "succeeded", (run.error, run.traceback)
    a, b = run.steps["prep_a"], run.steps["prep_b"]
    assert a.started and b.started and a.ended and b.ended
    assert a.started < b.ended and b.started < a.ended  # the branches overlapped
    fit_a, fit_b = run.output
    assert fit_a["rows"] == 64 and fit_b["rows"] == 64
    assert run.metrics["fit"]["rows"] == 64
    again = branches.run(where=str(tmp_path), store=tmp_path / "s")
    assert again.status == "succeeded" and all(s.cached for s in again.steps.values())
    assert again.output == run.output


@af.ingest
def base() -> list:
    return [1, 2, 3]


@af.preprocess
def maybe_fail(xs: list, flag: str) -> list:
    if Path(flag).exists():
        raise ValueError("boom: flag present")
    return [x * 10 for x in xs]


@af.predict
def total(xs: list) -> dict:
    return {"sum": float(sum(xs))}


@af.preprocess
def side(xs: list) -> list:
    time.sleep(1.0)
    return xs[::-1]


@af.pipeline
def fragile(flag: str):
    xs = base()
    return total(maybe_fail(xs, flag=flag)), side(xs)


def test_failure_stops_downstream_and_rerun_resumes(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    store = tmp_path / "s"
    run = fragile.run(flag=str(flag), store=store)
    assert run.status == "failed"
    assert run.steps["maybe_fail"].status == "failed"
    assert "boom: flag present" in (run.error or "")
    tb = run.steps["maybe_fail"].traceback or ""
    assert 'raise ValueError("boom: flag present")' in tb and "test_run_executor.py" in tb
    assert "airflowdsl/runtime" not in tb and "/ray/" not in tb
    assert run.steps["total"].status == "skipped" and run.steps["total"].started is None
    assert run.steps["base"].status == "succeeded"
    assert run.steps["side"].status == "succeeded"  # already running: finished and stored
    flag.unlink()
    again = fragile.run(flag=str(flag), store=store)
    assert again.status == "succeeded"
    assert again.steps["base"].cached and again.steps["side"].cached
    assert not again.steps["maybe_fail"].cached and not again.steps["total"].cached
    assert again.output[0] == {"sum": 60.0}


_load = load_module


HELPERS = """
def scale(x):
    return x * {factor}

def unrelated(x):
    return x
"""

PIPE = """
import airflowdsl as af
from {helpers} import scale, unrelated

@af.ingest
def src() -> list:
    return [1, 2]

@af.preprocess
def scaled(xs: list) -> list:
    return [scale(x) for x in xs]

@af.preprocess
def plain(xs: list) -> list:
    return [unrelated(x) for x in xs]

@af.predict
def report(xs: list) -> dict:
    return {{"sum": float(sum(xs))}}

@af.pipeline
def edits():
    xs = src()
    return report(scaled(xs)), report(plain(xs))
"""


def test_editing_a_helper_invalidates_exactly_the_dependent_steps(tmp_path: Path) -> None:
    tag = f"h{time.time_ns()}"
    helpers, pipe = tmp_path / f"{tag}_helpers.py", tmp_path / f"{tag}_pipe.py"
    helpers.write_text(HELPERS.format(factor=2))
    pipe.write_text(PIPE.format(helpers=f"{tag}_helpers"))
    sys.path.insert(0, str(tmp_path))
    try:
        _load(helpers, f"{tag}_helpers")
        first = _load(pipe, f"{tag}_pipe").edits.run(store=tmp_path / "s")
        assert first.output[0] == {"sum": 6.0}
        helpers.write_text(HELPERS.format(factor=5) + "\n# edited\n")
        _load(helpers, f"{tag}_helpers")
        second = _load(pipe, f"{tag}_pipe").edits.run(store=tmp_path / "s")
    finally:
        sys.path.remove(str(tmp_path))
    ran = {n for n, s in second.steps.items() if not s.cached}
    assert ran == {"scaled", "report"}  # report consumes scaled; report_2 consumes plain
    assert second.output[0] == {"sum": 15.0}  # the workers ran the edited helper


def test_corrupt_artifact_is_recomputed(tmp_path: Path) -> None:
    store = tmp_path / "s"
    first = fragile.run(flag=str(tmp_path / "none"), store=store)
    assert first.status == "succeeded"
    art = Path(first.steps["total"].artifacts[0]) / "value.json"
    art.write_text(json.dumps({"sum": 99.0}).replace("99.0", "77.0"))
    with pytest.warns(UserWarning, match="corrupt"):
        again = fragile.run(flag=str(tmp_path / "none"), store=store)
    assert not again.steps["total"].cached and again.steps["maybe_fail"].cached
    assert again.output[0] == {"sum": 60.0}


@af.ingest
def table() -> af.Dataset:
    import ray.data

    return ray.data.from_items([{"a": i, "b": str(i)} for i in range(10)])


@af.train
def model(ds: af.Dataset) -> af.Checkpoint:
    return af.Checkpoint.from_dict({"n": ds.count()})


@af.predict
def predict(ckpt: af.Checkpoint, ds: af.Dataset) -> af.Dataset:
    n = ckpt.to_dict()["n"]
    return ds.map(lambda r: {**r, "n": n})


@af.pipeline
def artifacts():
    ds = table()
    return predict(model(ds), ds)


def test_dataset_and_checkpoint_artifacts(tmp_path: Path) -> None:
    run = artifacts.run(store=f"file://{tmp_path}/s")
    assert run.status == "succeeded", run.traceback
    rows = sorted(run.output.take_all(), key=lambda r: r["a"])
    assert rows[3] == {"a": 3, "b": "3", "n": 10}
    store = ArtifactStore.open(f"file://{tmp_path}/s")
    formats = {m["step"]: m["outputs"][0]["format"] for m in store.entries()}
    assert formats == {"table": "dataset", "model": "checkpoint", "predict": "dataset"}
    again = artifacts.run(store=f"file://{tmp_path}/s", from_step="predict")
    assert again.steps["model"].cached and not again.steps["predict"].cached
    assert sorted(r["a"] for r in again.output.take_all()) == list(range(10))


@af.ingest(cache=False)
def always(n: int) -> list:
    return list(range(n))


@af.predict
def summed(xs: list) -> dict:
    return {"sum": float(sum(xs))}


@af.pipeline
def uncached(n: int = 4):
    return summed(always(n=n))


def test_downstream_of_a_cache_false_step_is_served_when_its_output_is_unchanged(
        tmp_path: Path) -> None:
    """``cache=False`` re-runs the step; its consumer keys on what it produced (early
    cutoff), so an identical output serves the consumer from the cache, and the run
    history and ``explain`` say why."""
    from airflowdsl.runtime.explain import explain
    from airflowdsl.runtime.history import History

    store = tmp_path / "s"
    first = uncached.run(store=store)
    assert first.status == "succeeded" and first.executed_steps == ["always", "summed"]
    again = uncached.run(store=store)
    assert again.status == "succeeded", again.traceback
    assert not again.steps["always"].cached and again.steps["summed"].cached
    why = "upstream always re-ran but produced identical output"
    assert again.steps["summed"].reason == why
    rows = {s["name"]: s for s in History.for_root(str(store)).run(again.id)["steps"]}
    assert rows["summed"]["reason"] == why and rows["summed"]["cached"] == 1
    assert rows["always"]["reason"] == "cache disabled for this step"
    last = {e.step: e.last_run for e in explain(uncached.compile(), store=store)}
    assert last == {"always": "ran: cache disabled for this step", "summed": f"served: {why}"}
    changed = uncached.run(n=5, store=store)  # another output: the consumer runs
    assert not changed.steps["summed"].cached and changed.output == {"sum": 10.0}
    # the driver resolves each consumer's key from the input hashes its task reports:
    # the recorded key is the one its output is stored under, the same for the same input
    keys = [r.steps["summed"].cache_key for r in (first, again, changed)]
    assert keys[0] == keys[1] != keys[2] and all(k and "pending" not in k for k in keys)
    st = ArtifactStore.open(store)
    assert all(st.manifest(k) is not None for k in keys)
    assert rows["summed"]["cache_key"] == keys[1]


@af.ingest
def cancer() -> af.Dataset:
    import ray.data
    from sklearn.datasets import load_breast_cancer

    return ray.data.from_pandas(load_breast_cancer(as_frame=True).frame)


@af.train
def boost(ds: af.Dataset, eta: float, storage: str) -> dict:
    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.xgboost import XGBoostTrainer

    result = XGBoostTrainer(
        datasets={"train": ds}, label_column="target", num_boost_round=6,
        params={"objective": "binary:logistic", "eta": eta, "eval_metric": ["logloss"]},
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(name="gbdt", storage_path=storage)).fit()
    return {"rounds": float(len(result.metrics_history)),
            "logloss": float(result.metrics["train-logloss"])}


@af.pipeline
def boosted(eta: float = 0.3, storage: str = ""):
    return boost(cancer(), eta=eta, storage=storage)


def test_named_trainer_in_a_step_does_not_adopt_another_keys_checkpoints(tmp_path: Path) -> None:
    """The bug: RunConfig(name="gbdt") in a train step; a cache miss (another eta) found
    the first key's checkpoints at round 6, boosted 0 more rounds and stored the old
    model under the new key. Trainer storage is now scoped per cache key, and
    ``airflowdsl cache gc`` collects it once the results are stored."""
    pytest.importorskip("xgboost")
    from airflowdsl.runtime.gc import collect

    store = tmp_path / "s"
    storage = store / "train"  # where gc looks (and the default under AIRFLOWDSL_HOME)
    first = boosted.run(eta=0.3, storage=str(storage), store=store)
    assert first.status == "succeeded", first.traceback
    second = boosted.run(eta=0.05, storage=str(storage), store=store)
    assert second.status == "succeeded", second.traceback
    assert not second.steps["boost"].cached
    assert second.output["rounds"] == 6  # trained, not resumed at round 6 of eta=0.3
    assert second.output["logloss"] > first.output["logloss"] + 0.05  # a smaller step
    folders = sorted(p.name for p in (storage / "gbdt").iterdir())
    assert len(folders) == 2 and all(f.startswith("key-") for f in folders)
    collect(ArtifactStore.open(store), grace_s=0, now=time.time() + 1)
    assert not (storage / "gbdt").exists()  # stored results: trainer folders collected


@af.step
def publishes() -> list:
    """Publishes progress here and, as a trainer actor or a Tune trial does, from another
    process under its own record; returns what it read back (so the records existed)."""
    import ray

    from airflowdsl.air import progress

    ctx = progress.current()
    assert ctx is not None
    progress.publish("here")

    @ray.remote(num_cpus=0)
    def elsewhere(run_id: str) -> None:
        progress.bind(progress.StepContext(run_id, "trial-1"))
        progress.publish("elsewhere")
        progress.bind(None)

    ray.get(elsewhere.remote(ctx.run_id))
    return sorted(text for text, _ in progress.read_run(ctx.run_id).values())


@af.pipeline
def publishing():
    return publishes()


def test_progress_records_of_a_run_are_gone_when_it_returns(tmp_path: Path) -> None:
    """Ray's internal KV outlives runs on a long-lived Ray: a run deletes its progress
    records (from every process) before ``run()`` returns, and only its own."""
    from ray.experimental import internal_kv

    from airflowdsl.air.progress import NAMESPACE

    other = b"another-run/step"
    internal_kv._internal_kv_put(other, b"{}", namespace=NAMESPACE)
    try:
        run = publishing.run(store=tmp_path / "s", force=True)
        assert run.status == "succeeded", run.traceback
        assert run.output == ["elsewhere", "here"]
        assert internal_kv._internal_kv_list(f"{run.id}/".encode(), namespace=NAMESPACE) == []
        assert internal_kv._internal_kv_list(b"another-run/", namespace=NAMESPACE) == [other]
    finally:
        internal_kv._internal_kv_del(other, namespace=NAMESPACE)
