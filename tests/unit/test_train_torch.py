"""Torch helpers without Ray: configs, checkpoints, the predictor, one-process no-ops."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

torch = pytest.importorskip("torch")

from airflowdsl.air import Checkpoint  # noqa: E402
from airflowdsl.train import torch as af_torch  # noqa: E402
from airflowdsl.train.torch import (  # noqa: E402
    TorchCheckpoint,
    TorchConfig,
    TorchPredictor,
    TorchTrainer,
    get_device,
    prepare_data_loader,
    prepare_model,
)


class TwoLayer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(3, 4)
        self.out = torch.nn.Linear(4, 1)

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.out(torch.relu(self.hidden(x)))


def test_module_name_does_not_shadow_torch() -> None:
    assert af_torch.__name__ == "airflowdsl.train.torch"
    assert torch.__name__ == "torch" and hasattr(torch, "nn")


def test_torch_config_validates() -> None:
    assert TorchConfig().backend is None and TorchConfig().init_method == "env"
    with pytest.raises(ValidationError):
        TorchConfig(backend="carrier-pigeon")
    with pytest.raises(ValidationError):
        TorchConfig(timeout_s=0)
    with pytest.raises(ValidationError):
        TorchConfig(init_method="file")


def test_trainer_checks_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="TorchConfig"):
        TorchTrainer(lambda: None, torch_config={"backend": "gloo"})  # type: ignore[arg-type]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ImportError, match=r"airflowdsl\[torch\]"):
        TorchTrainer(lambda: None)


def test_checkpoint_from_model_round_trips_a_local_class() -> None:
    model = TwoLayer()
    ckpt = TorchCheckpoint.from_model(model)
    restored = ckpt.get_model()
    assert type(restored).__name__ == "TwoLayer"
    x = torch.randn(5, 3)
    torch.testing.assert_close(restored(x), model(x))
    into = TwoLayer()
    assert TorchCheckpoint.from_checkpoint(ckpt).get_model(into) is into
    torch.testing.assert_close(into(x), model(x))


def test_checkpoint_from_state_dict_and_from_dict() -> None:
    model = TwoLayer()
    x = torch.randn(2, 3)
    by_state = TorchCheckpoint.from_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="pass model="):
        by_state.get_model()
    torch.testing.assert_close(by_state.get_model(TwoLayer())(x), model(x))
    # the AIR pattern: a dict checkpoint with a "model" key (here saved from a DDP wrapper)
    ddp_keys = {f"module.{k}": v for k, v in model.state_dict().items()}
    plain = TorchCheckpoint.from_checkpoint(Checkpoint.from_dict({"model": ddp_keys, "epoch": 1}))
    torch.testing.assert_close(plain.get_model(TwoLayer())(x), model(x))
    with pytest.raises(ValueError, match="'model' key"):
        TorchCheckpoint.from_checkpoint(Checkpoint.from_dict({"weights": 1})).get_model()


def test_predictor_scores_numpy_and_pandas() -> None:
    model = TwoLayer()
    predictor = TorchPredictor.from_checkpoint(TorchCheckpoint.from_model(model))
    x = np.random.default_rng(0).normal(size=(6, 3))
    expected = model(torch.tensor(x, dtype=torch.float32)).detach().numpy()[:, 0]
    out = predictor.predict(x)  # an array in, an array out (AIR)
    assert isinstance(out, np.ndarray) and out.shape == (6,)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    np.testing.assert_allclose(predictor.predict(frame)["predictions"], expected, rtol=1e-5)
    stacked = pd.DataFrame({"features": list(x)})  # one column holding arrays
    np.testing.assert_allclose(predictor.predict(stacked)["predictions"], expected, rtol=1e-5)


def test_predictor_multi_output_gives_one_array_per_row() -> None:
    model = torch.nn.Linear(2, 3)
    out = TorchPredictor(model).predict(np.ones((4, 2)))
    assert isinstance(out, np.ndarray) and out.shape == (4, 3)
    frame = TorchPredictor(model).predict(pd.DataFrame(np.ones((4, 2))))
    assert len(frame) == 4 and np.asarray(frame["predictions"][0]).shape == (3,)


def test_outside_a_fit_helpers_are_one_process_no_ops(tmp_path: Path) -> None:
    assert get_device() == torch.device("cpu")
    model = TwoLayer()
    assert prepare_model(model) is model
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(10.0)),
                                         batch_size=4)
    assert prepare_data_loader(loader) is loader
