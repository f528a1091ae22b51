"""TorchTrainer with use_gpu=True: parameters and batches live on the worker's GPU (nccl).

Skipped where torch sees no CUDA device; run it on a GPU machine with
``pytest tests/gpu``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_one_worker_ddp_on_gpu(ray_session: None, tmp_path: Path) -> None:
    import torch_loops

    from airflowdsl.air import RunConfig, ScalingConfig
    from airflowdsl.train.torch import TorchTrainer

    result = TorchTrainer(torch_loops.gpu_loop,
                          scaling_config=ScalingConfig(num_workers=1, use_gpu=True),
                          run_config=RunConfig(storage_path=str(tmp_path))).fit()
    metrics = result.metrics
    assert metrics["device"] == "cuda:0"
    assert metrics["param_devices"] == ["cuda:0"]
    assert metrics["batch_device"] == "cuda:0"
    assert metrics["backend"] == "nccl"
    assert metrics["visible"] != ""
