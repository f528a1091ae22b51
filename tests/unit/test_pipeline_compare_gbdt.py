"""pipelines/compare_gbdt.py compiles: one shared ingest + split feeding both GBDT fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflowdsl import CompileError
from airflowdsl.cli._load import compile_target

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "compare_gbdt.py"


def test_both_trainers_share_one_preprocessed_dataset() -> None:
    compiled = compile_target(str(PIPELINE), ["rounds=20"])
    assert compiled.order[:2] == ["load_data", "split"]
    assert set(compiled.order[2:4]) == {"fit_xgboost", "fit_lightgbm"}
    assert compiled.order[-1] == "compare"
    for fit in ("fit_xgboost", "fit_lightgbm"):
        node = compiled.graph.nodes[fit]
        assert node["kind"] == "train"
        assert node["inputs"] == {"train": ("split", 0), "valid": ("split", 1)}
        assert node["params"]["rounds"] == 20
    assert compiled.graph.nodes["compare"]["inputs"]["valid"] == ("split", 1)


def test_bad_params_are_refused_at_compile_time() -> None:
    with pytest.raises(CompileError, match="rounds"):
        compile_target(str(PIPELINE), ["rounds=0"])
