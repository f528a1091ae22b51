"""The same pipeline on a real multi-node Ray with an S3 store (moto), issue 12.

A head with no CPUs and two 1-CPU nodes (``conftest.multinode``): steps pinned to
nodes by custom resources, a 2-worker TorchTrainer with STRICT_SPREAD, an
XGBoostTrainer, a BatchPredictor whose actors run on another node than its step; the
rerun is fully cached; every object in the bucket is complete and loads; nothing of an
artifact lands on local disk; a node removed mid-training resumes from the last
checkpoint. The node removal runs last (the cluster keeps one worker node after it).
BatchPredictor actors load the checkpoint from the store, not from the step's copy; no
checkpoint copy or spooled log is left in any node's temp folder; what steps and their
workers print on other nodes is shown by ``airflowdsl logs`` on the driver.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


#: temp folders of checkpoint copies (loaded from the store, fetched again by a process
#: they were sent to, ``Checkpoint.from_dict``) and of spooled logs
_TEMP = ("airflowdsl-loaded-", "airflowdsl-ckpt-", "airflowdsl-downloaded-", "airflowdsl-logs")


def _leftovers(root: str) -> list[str]:
    """Files left in those temp folders of the head (``root``) and of each worker node
    (``root/node_a``, ``root/node_b``): each is removed once unused (a worker's
    per-process folder for loaded copies stays, empty, until the process exits)."""
    tops = [root] + [os.path.join(root, n) for n in ("node_a", "node_b")]
    return [os.path.join(d, f) for top in tops if os.path.isdir(top) for n in os.listdir(top)
            if n.startswith(_TEMP) for d, _, files in os.walk(os.path.join(top, n))
            for f in files]


def test_pipeline_across_nodes_on_s3(multinode, tmp_path: Path, monkeypatch) -> None:
    from spread_pipeline import spread
    from typer.testing import CliRunner

    from airflowdsl.cli import app
    from airflowdsl.runtime.store import ArtifactStore

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIRFLOWDSL_HOME", raising=False)
    uri = multinode.s3.uri("pipelines/spread")
    run = spread.run(store=uri)
    assert run.status == "succeeded", run.error
    # nothing of an artifact on the nodes' disks: no local store, no loaded copies left
    assert not (tmp_path / ".airflowdsl").exists()
    assert _leftovers(multinode.tmpdir) == []
    out = run.output
    assert out["torch_nodes"] == 2  # STRICT_SPREAD: one worker on each 1-CPU node
    assert out["n_test"] == 100 and 0.0 <= out["mean_prediction"] <= 1.0
    assert out["accuracy"] >= 0.75, out  # y = [x0 + 0.5 x1 > 0]: 0.87 on one node

    # what steps and their training workers printed on other nodes (each with a TMPDIR
    # of its own) is in the bucket, and `airflowdsl logs` on the driver shows it
    cli = CliRunner()
    made = cli.invoke(app, ["logs", run.id, "make_data", "--store", uri])
    assert made.exit_code == 0, made.output
    assert f"make_data: 400 rows on node {multinode.node_id('node_a')}" in made.output
    fit = cli.invoke(app, ["logs", run.id, "fit_torch", "--store", uri])
    assert fit.exit_code == 0, fit.output
    assert "rank 0 on node " in fit.output and "rank 1 on node " in fit.output, fit.output
    logs = multinode.s3.keys(f"pipelines/spread/runs/{run.id}/logs/")
    assert any("/fit_torch@" in k for k in logs), logs  # a worker off the step's node

    # placement: what each pinned step wrote says where it ran
    made = run.load("make_data").to_pandas()
    assert set(made["made_on"]) == {multinode.node_id("node_a")}
    train, _test = run.load("split")
    assert set(train.to_pandas()["split_on"]) == {multinode.node_id("node_b")}
    # the 400-row from_items is written as a few files, not 200 (Ray Data block count)
    store = ArtifactStore.open(uri)
    data_files = [f for m in store.entries() for o in m["outputs"] if o["format"] == "dataset"
                  for f in o["files"]]
    assert data_files and len(data_files) <= 4 * 8

    # every object is complete and loads
    keys = multinode.s3.keys("pipelines/spread/")
    assert sum(k.endswith("/manifest.json") for k in keys) == len(run.steps)
    for m in store.entries():
        assert store.verify(m) is None
        for i, o in enumerate(m["outputs"]):
            value = store.load(m, i)
            if o["format"] == "dataset":
                assert value.count() > 0
            elif o["format"] == "checkpoint":
                assert value.to_dict()

    again = spread.run(store=uri)
    assert again.status == "succeeded"
    assert all(s.cached for s in again.steps.values()), {n: s.status for n, s in again.steps.items()}
    assert again.output == out


def test_node_removed_mid_training_resumes_from_last_checkpoint(multinode) -> None:
    """Only the S3 store: rank 0 uploads each checkpoint to ``<store>/train`` from its node;
    after node_b is gone the group restarts from the latest complete one in the bucket."""
    from spread_pipeline import resilient

    from airflowdsl.air import remote
    from airflowdsl.air.checkpoint import Checkpoint

    prefix = "pipelines/resilient"
    box: dict = {}

    def go() -> None:
        box["run"] = resilient.run(store=multinode.s3.uri(prefix))

    def marked() -> list[str]:  # checkpoint folders in the bucket whose upload completed
        return sorted(k[: -len(remote.COMPLETE_MARKER) - 1] for k in multinode.s3.keys(
            f"{prefix}/train/") if k.endswith("/" + remote.COMPLETE_MARKER))

    runner = threading.Thread(target=go, daemon=True)
    runner.start()
    deadline = time.time() + 120
    while not any(k.endswith("/checkpoint_000002") for k in marked()) and time.time() < deadline:
        assert runner.is_alive(), box
        time.sleep(0.2)
    assert any(k.endswith("/checkpoint_000002") for k in marked()), "no checkpoint within 120 s"
    multinode.cluster.remove_node(multinode.nodes.pop("node_b"))
    runner.join(timeout=240)
    assert not runner.is_alive(), "the run did not finish within 240 s of the node removal"
    run = box["run"]
    assert run.status == "succeeded", run.error
    out = run.output
    assert out["last_epoch"] == 5
    assert out["resumed_from"] >= 2  # not from scratch: from the last checkpoint in the bucket
    assert out["restarts"] == 1
    # the checkpoints in the bucket are complete and load: checkpoint_N holds epoch N-1
    folders = marked()
    assert folders and folders[-1].endswith("/checkpoint_000006"), folders
    for key in folders:
        uri = multinode.s3.uri(key)
        assert remote.complete_files(uri, Checkpoint(uri).storage_options) is not None
        assert Checkpoint(uri).to_dict()["epoch"] == int(key[-6:]) - 1
