"""The UI shows a run's logs from a URI store (issue 12): a step's own log and its parts
from training workers on other nodes (``<step>@<node>-<pid>.log``), as the runtime uploads
them (``runlog.upload_logs``), read through ``runlog`` like ``airflowdsl logs``. moto S3."""

from __future__ import annotations

from pathlib import Path

import pytest

RUN = "20260101-000000-abcdef"


def test_uri_store_logs_are_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient

    from airflowdsl.runtime.history import History
    from airflowdsl.runtime.run import StepRun
    from airflowdsl.runtime.runlog import upload_logs
    from airflowdsl.runtime.store import ArtifactStore
    from airflowdsl.ui.app import create_app
    from airflowdsl.ui.data import LOG_TAIL_BYTES, StoreView
    from tests.moto_s3 import moto_s3

    monkeypatch.delenv("AIRFLOWDSL_HISTORY", raising=False)
    spool = tmp_path / "node" / "spool"  # a node's spool folder, emptied by the upload
    spool.mkdir(parents=True)
    own = "fit: first line\n" + "x" * LOG_TAIL_BYTES + "\nfit: last epoch\n"
    logs = {"fit.log": own, "fit@node_b-4242.log": "rank 1 on node_b: epoch 5\n",
            "other.log": "other step\n", "ray.log": "(Tune pid=1) trial done\n"}
    for name, text in logs.items():
        (spool / name).write_text(text)
    with moto_s3() as s3:
        root = s3.uri("store")
        h = History.for_root(root)
        h.start_run(RUN, "p", {}, root, 1.0)
        h.record_steps(RUN, [(StepRun(n, "train", "succeeded", started=1.0, ended=2.0), None)
                             for n in ("fit", "other")])
        h.finish_run(RUN, "succeeded", 3.0)
        upload_logs(ArtifactStore.open(root), RUN, [str(spool / n) for n in logs])
        assert not (tmp_path / "node").exists()  # nothing of them left on this machine
        view = StoreView.open(root)
        with TestClient(create_app(view)) as c:
            run = c.get(f"/runs/{RUN}").text
            assert all(f"/runs/{RUN}/logs/{n[:-4]}\"" in run for n in logs)
            assert run.index("fit.log") < run.index("fit@node_b-4242.log") < run.index("ray.log")
            panel = c.get(f"/runs/{RUN}/steps/fit").text
            # the step's own log (its last 64 KiB, with a link to all of it), then its part
            assert "fit: last epoch" in panel and "fit: first line" not in panel
            assert f'href="/runs/{RUN}/logs/fit">whole log' in panel
            assert panel.index("fit: last epoch") < panel.index("rank 1 on node_b: epoch 5")
            assert "other step" not in panel and "trial done" not in panel
            whole = c.get(f"/runs/{RUN}/logs/fit")
            assert whole.status_code == 200 and whole.text == own
            part = c.get(f"/runs/{RUN}/logs/fit@node_b-4242")
            assert part.status_code == 200 and part.text == logs["fit@node_b-4242.log"]
            assert c.get(f"/runs/{RUN}/logs/nope").status_code == 404
        view.close()
