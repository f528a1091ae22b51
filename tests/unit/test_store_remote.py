"""Stores on URIs without Ray (issue 12): options that travel to workers, the multi-node
guard, an S3 store on a real S3 API (moto), run records kept in the store."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import airflowdsl as af
from airflowdsl.errors import CorruptArtifact, StoreError
from airflowdsl.runtime import fsutil
from airflowdsl.runtime.history import History
from airflowdsl.runtime.run import StepRun
from airflowdsl.runtime.runrecords import RunRecords
from airflowdsl.runtime.store import ArtifactStore
from tests.moto_s3 import S3Server, moto_s3

KEY = "ab" * 20


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_s3() as server:
        yield server


def test_s3_options_come_from_the_driver_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, _ in fsutil.S3_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    st = ArtifactStore.open("s3://bucket/prefix/")
    assert dict(st.options) == {"endpoint_override": "http://127.0.0.1:9", "region": "eu-west-3",
                                "access_key": "AKIDEXAMPLE", "secret_key": "s3cr3t"}
    assert "s3cr3t" not in repr(st)
    again = pickle.loads(pickle.dumps(st))  # what a task receives
    assert again == st and dict(again.options)["endpoint_override"] == "http://127.0.0.1:9"
    fs, base = fsutil.resolve(st.root, st.options)
    assert (type(fs).__name__, base, fs.region) == ("S3FileSystem", "bucket/prefix", "eu-west-3")
    assert ArtifactStore.of(st) is st
    monkeypatch.setenv("AIRFLOWDSL_STORE_SEND_CREDENTIALS", "0")
    assert dict(ArtifactStore.open("s3://bucket/p").options) == {
        "endpoint_override": "http://127.0.0.1:9", "region": "eu-west-3"}
    monkeypatch.delenv("AIRFLOWDSL_STORE_SEND_CREDENTIALS")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")  # half a key pair is not sent
    assert "access_key" not in dict(ArtifactStore.open("s3://bucket/p").options)
    assert ArtifactStore.open("file:///tmp/x").options == ()


def test_store_env_var_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOWDSL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIRFLOWDSL_STORE", raising=False)
    assert ArtifactStore.open().root == str(tmp_path / "home")
    monkeypatch.setenv("AIRFLOWDSL_STORE", "gs://bucket/x")
    assert ArtifactStore.open().root == "gs://bucket/x"
    assert ArtifactStore.open(tmp_path).root == str(tmp_path)


def test_a_local_root_is_refused_on_several_nodes(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("AIRFLOWDSL_STORE_SHARED", raising=False)
    local = ArtifactStore.open(tmp_path)
    local.check_cluster(1)
    with pytest.raises(StoreError, match=r"local directory, but Ray has 3 nodes.*file://"):
        local.check_cluster(3)
    ArtifactStore.open(f"file://{tmp_path}").check_cluster(3)  # said to be shared
    ArtifactStore("s3://b/p").check_cluster(3)
    monkeypatch.setenv("AIRFLOWDSL_STORE_SHARED", "1")
    local.check_cluster(3)


def test_s3_store_writes_objects_then_the_manifest_and_verifies_loads(s3: S3Server) -> None:
    st = ArtifactStore.open(s3.uri("unit"))
    big = np.arange(1_000_000, dtype=np.float64)  # 8 MB: a multipart upload
    m = st.write(KEY, [big, {"a": [1, 2]}, af.Checkpoint.from_dict({"w": 3})], step="s")
    keys = sorted(s3.keys("unit/"))
    folder = f"unit/artifacts/ab/{KEY}/{m['data']}"
    assert keys == [f"{folder}/out0/array.npy", f"{folder}/out1/value.json",
                    f"{folder}/out2/_dict_checkpoint.pkl", f"unit/artifacts/ab/{KEY}/manifest.json"]
    assert st.manifest(KEY) == m and st.verify(m) is None
    assert np.array_equal(st.load(m, 0), big)
    assert st.load(m, 2).to_dict() == {"w": 3}
    assert [e["key"] for e in st.entries()] == [KEY]

    import boto3

    boto3.client("s3", endpoint_url=s3.endpoint).put_object(
        Bucket=s3.bucket, Key=f"{folder}/out1/value.json", Body=b'{"a": [1, 3]}')
    assert st.verify(m) == "output 1: checksum mismatch in value.json"
    with pytest.raises(CorruptArtifact, match=r"output 1: value.json: content does not match"):
        st.load(m, 1, verify=False)  # what a consuming task does: checks what it parses
    assert np.array_equal(st.load(m, 0, verify=False), big)


def _records(history: RunRecords | History) -> None:
    done = StepRun("fit", "train", status="succeeded", started=2.0, ended=3.0, cache_key=KEY,
                   reason="not in cache")
    done.metrics = {"loss": 0.5}
    done.records = {"report": [{"epoch": 1}, {"epoch": 2}]}
    history.start_run("20260101-000000-aaaaaa", "pipe", {"n": 1}, "root", 1.0)
    history.record_steps("20260101-000000-aaaaaa", [(done, {"code": "c1"})])
    history.finish_run("20260101-000000-aaaaaa", "succeeded", 4.0)
    history.start_run("20260101-000001-bbbbbb", "pipe", {}, "root", 5.0)
    cached = StepRun("fit", "train", status="succeeded", cached=True, cache_key=KEY)
    history.record_steps("20260101-000001-bbbbbb", [(cached, {"code": "c2"})])


def test_run_records_live_in_the_store_and_read_like_sqlite(s3: S3Server, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOWDSL_HISTORY", raising=False)
    remote = History.for_root(s3.uri("hist"))
    shared = History.for_root(f"file://{tmp_path}/shared")
    assert isinstance(remote, RunRecords) and isinstance(shared, RunRecords)
    sqlite = History(tmp_path / "h.sqlite")
    for h in (remote, shared, sqlite):
        _records(h)
    assert s3.keys("hist/") == ["hist/runs/20260101-000000-aaaaaa/run.json",
                                "hist/runs/20260101-000000-aaaaaa/steps/fit.json",
                                "hist/runs/20260101-000001-bbbbbb/run.json",
                                "hist/runs/20260101-000001-bbbbbb/steps/fit.json"]
    want = sqlite.run("20260101-000000")
    assert want is not None and want["status"] == "succeeded"
    for h in (remote, shared):
        assert h.run("20260101-000000") == want
        assert h.run("20260101") is None  # not unique
        assert [r["id"] for r in h.runs()] == [r["id"] for r in sqlite.runs()]
        assert h.runs("pipe", 1) == sqlite.runs("pipe", 1)
        assert h.runs_page(status="running") == sqlite.runs_page(status="running")
        assert h.pipelines() == ["pipe"]
        assert h.records("20260101-000000-aaaaaa", kind="report") == \
            sqlite.records("20260101-000000-aaaaaa", kind="report")
        assert h.last_reasons("pipe") == sqlite.last_reasons("pipe")
        assert h.last_components("pipe", "fit") == {"code": "c2"}
        assert h.previous_components("pipe", "fit", 5.0) == {"code": "c1"}
    assert History.shared(s3.uri("hist")).run("20260101-000001-bbbbbb") is not None


def test_checkpoint_copies_loaded_in_a_scope_are_removed_but_kept_outputs_stay(
        tmp_path: Path) -> None:
    from airflowdsl.runtime import serializers

    st = ArtifactStore.open(tmp_path / "store")
    m = st.write(KEY, [af.Checkpoint.from_dict({"w": 1}), af.Checkpoint.from_dict({"w": 2})])
    with serializers.private_copies() as copies:
        used, passed_on = st.load(m, 0), st.load(m, 1)
        assert used.to_dict() == {"w": 1}
        copies.keep((passed_on,))
    assert not Path(used.path).exists()
    assert passed_on.to_dict() == {"w": 2}  # handed downstream: removed at process exit
    assert Path(st.load(m, 0).path).is_dir()  # outside a scope: as before


def test_spooled_logs_move_into_the_store(s3: S3Server) -> None:
    from airflowdsl.runtime.runlog import read_logs, spool_dir, upload_logs

    st = ArtifactStore.open(s3.uri("logs"))
    folder = Path(spool_dir("20260101-000000-cccccc"))
    folder.mkdir(parents=True)
    (folder / "fit.log").write_text("epoch 1\n")
    (folder / "ray.log").write_text("")
    upload_logs(st, "20260101-000000-cccccc", [str(folder / "fit.log"), str(folder / "ray.log")])
    assert not folder.exists()  # nothing left on the node
    assert read_logs(st, "20260101-000000-cccccc") == {"fit.log": "epoch 1\n", "ray.log": ""}
    upload_logs(st, "20260101-000000-cccccc", [str(folder / "gone.log")])  # never raises


def test_checkpoints_go_downstream_by_reference_on_a_remote_store(s3: S3Server,
                                                                  tmp_path: Path) -> None:
    from airflowdsl.runtime.store import StoredOutput, hand_on, resolve

    ckpt = af.Checkpoint.from_dict({"w": 5})
    remote = ArtifactStore.open(s3.uri("handon"))
    m = remote.write(KEY, [ckpt, {"n": 1}])
    handed = hand_on(remote, m, [ckpt, {"n": 1}])
    assert isinstance(handed[0], StoredOutput) and handed[1] == {"n": 1}
    got = resolve(pickle.loads(pickle.dumps(handed[0])))  # what a consumer on any node does
    assert got.to_dict() == {"w": 5} and got.path != ckpt.path
    local = ArtifactStore.open(tmp_path / "local")
    assert hand_on(local, local.write(KEY, [ckpt]), [ckpt]) == (ckpt,)
    assert resolve(ckpt) is ckpt


def test_a_shared_local_path_keeps_its_runs_as_records(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOWDSL_HISTORY", raising=False)
    monkeypatch.delenv("AIRFLOWDSL_STORE_SHARED", raising=False)
    assert isinstance(History.for_root(str(tmp_path / "a")), History)
    monkeypatch.setenv("AIRFLOWDSL_STORE_SHARED", "1")  # no SQLite WAL on a network mount
    assert isinstance(History.for_root(str(tmp_path / "b")), RunRecords)
    monkeypatch.setenv("AIRFLOWDSL_HISTORY", str(tmp_path / "h.sqlite"))
    assert isinstance(History.for_root(str(tmp_path / "b")), History)
