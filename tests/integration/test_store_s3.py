"""A pipeline on an S3 store (issue 12): a moto server on 127.0.0.1 as the S3 API.

The shared Ray was started before the AWS variables were set, so its workers do not see
them: the store object carries the endpoint and credentials to every task (and Ray Data's
write tasks), which is what this exercises. Artifacts go straight to the bucket, the rerun
is fully cached from it, nothing lands in the local store, and the run history lives in
the bucket (``airflowdsl runs/show`` read it).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import airflowdsl as af
from airflowdsl.runtime.store import ArtifactStore
from tests.moto_s3 import moto_s3

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


@af.ingest
def rows(n: int = 300) -> af.Dataset:
    import ray.data

    return ray.data.range(n, override_num_blocks=3).map(lambda r: {"x": r["id"], "y": 2 * r["id"]})


@af.preprocess
def matrix(ds: af.Dataset) -> np.ndarray:
    df = ds.to_pandas().sort_values("x")
    return np.tile(df[["x", "y"]].to_numpy(dtype=np.float64), (3000, 1))  # 14 MB: multipart


@af.preprocess
def stats(m: np.ndarray) -> dict:
    print("stats of", m.shape)  # noqa: T201 - into the step's log, in the bucket
    return {"rows": int(m.shape[0]), "mean_y": float(m[:, 1].mean())}


@af.train
def model(m: np.ndarray, s: dict) -> af.Checkpoint:
    slope = float(np.linalg.lstsq(m[:300, :1], m[:300, 1], rcond=None)[0][0])
    return af.Checkpoint.from_dict({"slope": slope, "rows": s["rows"]})


@af.predict
def score(ckpt: af.Checkpoint, ds: af.Dataset) -> dict:
    slope = ckpt.to_dict()["slope"]
    df = ds.to_pandas()
    return {"err": round(float(abs(df["x"] * slope - df["y"]).max()), 6), "n": float(len(df))}


@af.pipeline
def remote():
    ds = rows()
    m = matrix(ds)
    return score(model(m, stats(m)), ds)


def _store_temp() -> set[str]:
    """What the store leaves in the temp dir: upload folders, and private checkpoint copies
    of loads (inside each process's ``airflowdsl-loaded-*``)."""
    tmp = Path(tempfile.gettempdir())
    return ({p.name for p in tmp.glob("airflowdsl-upload-*")}
            | {f"{p.parent.name}/{p.name}" for p in tmp.glob("airflowdsl-loaded-*/*")})


def test_pipeline_on_an_s3_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("AIRFLOWDSL_HOME", str(home))  # where a local store would go
    monkeypatch.delenv("AIRFLOWDSL_HISTORY", raising=False)
    temp_before = _store_temp()
    with moto_s3() as s3:
        uri = s3.uri("proj")
        run = remote.run(store=uri)
        assert run.status == "succeeded", run.traceback
        assert run.output == {"err": 0.0, "n": 300.0}
        assert run.store == uri
        again = remote.run(store=uri)
        assert again.status == "succeeded"
        assert {n: s.cached for n, s in again.steps.items()} == {n: True for n in run.steps}
        assert again.output == run.output
        rescored = remote.run(store=uri, from_step="score")  # loads the checkpoint from S3
        assert rescored.status == "succeeded", rescored.traceback
        assert rescored.steps["model"].cached and not rescored.steps["score"].cached
        assert rescored.output == run.output

        # every object is under the prefix; each manifest's files are there, complete
        keys = s3.keys()
        assert keys and all(k.startswith("proj/") for k in keys)
        st = ArtifactStore.open(uri)
        manifests = {m["step"]: m for m in st.entries()}
        assert set(manifests) == set(run.steps)
        formats = {n: [o["format"] for o in m["outputs"]] for n, m in manifests.items()}
        assert formats == {"rows": ["dataset"], "matrix": ["numpy"], "stats": ["json"],
                           "model": ["checkpoint"], "score": ["json"]}
        for name, m in manifests.items():
            assert st.verify(m) is None, name
        assert st.load(manifests["stats"]) == {"rows": 900_000, "mean_y": 299.0}
        assert st.load(manifests["matrix"]).shape == (900_000, 2)
        assert st.load(manifests["rows"]).count() == 300

        # the history is in the bucket: runs/show from a process that has only the store
        assert f"proj/runs/{run.id}/run.json" in keys
        from airflowdsl.cli import app

        cli = CliRunner()
        listed = cli.invoke(app, ["runs", "--store", uri])
        assert listed.exit_code == 0, listed.output
        assert run.id in listed.output and again.id in listed.output
        shown = cli.invoke(app, ["show", again.id, "--store", uri])
        assert shown.exit_code == 0, shown.output
        assert "cached" in shown.output and "model" in shown.output
        logs = cli.invoke(app, ["logs", run.id, "stats", "--store", uri])
        assert logs.exit_code == 0, logs.output
        assert "stats of (900000, 2)" in logs.output
        assert f"proj/runs/{run.id}/logs/ray.log" in s3.keys(f"proj/runs/{run.id}/logs/")
        assert not Path(tempfile.gettempdir(), "airflowdsl-logs", run.id).exists()
        record = json.loads(s3_get(s3, f"proj/runs/{run.id}/steps/model.json"))
        assert record["status"] == "succeeded" and not record["cached"]

        # a Parquet object damaged in place (same size: the driver's listing sees nothing)
        # fails the step that loads it, checked in that step's task
        part = sorted(manifests["rows"]["outputs"][0]["files"])[0]
        key = f"{st.base.split('/', 1)[1]}/artifacts/{manifests['rows']['key'][:2]}/" \
              f"{manifests['rows']['key']}/{manifests['rows']['data']}/out0/{part}"
        body = bytearray(s3_get(s3, key))
        body[len(body) // 2] ^= 0xFF
        s3_put(s3, key, bytes(body))
        broken = remote.run(store=uri, from_step="matrix")
        assert broken.status == "failed"
        assert f"checksum mismatch in {part}" in (broken.steps["matrix"].error or "")

    assert not home.exists(), sorted(str(p) for p in home.rglob("*"))
    assert _store_temp() <= temp_before  # the copy score loaded went with its step


def s3_get(s3: object, key: str) -> bytes:
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint)  # type: ignore[attr-defined]
    return bytes(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())  # type: ignore[attr-defined]


def s3_put(s3: object, key: str, body: bytes) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint)  # type: ignore[attr-defined]
    client.put_object(Bucket=s3.bucket, Key=key, Body=body)  # type: ignore[attr-defined]
