"""``airflowdsl graph``: renders, and bad input is one stderr line with exit code 2."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airflowdsl.cli import app
from airflowdsl.cli._load import parse_params, split_target

RES = Path(__file__).resolve().parent.parent / "resources"
ROOT = RES.parent.parent
runner = CliRunner()


def _graph(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["graph", *args])
    return result.exit_code, result.stdout, result.stderr


def test_graph_renders_shipped_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "bc.svg"
    code, stdout, stderr = _graph(str(ROOT / "pipelines" / "breast_cancer.py"), "-o", str(out),
                                  "-p", "num_boost_round=10", "-p", "test_size=0.3")
    assert code == 0, stderr
    assert "6 steps" in stdout
    titles = {t.text for t in ET.parse(out).getroot().iter("{http://www.w3.org/2000/svg}title")}
    assert {"load_data", "split", "fit_scaler", "tune_xgboost", "predict", "evaluate"} <= titles


def test_graph_with_pipeline_name_and_mermaid(tmp_path: Path) -> None:
    out = tmp_path / "d.mmd"
    code, _, stderr = _graph(f"{RES / 'dsl_two_pipelines.py'}:second", "-o", str(out))
    assert code == 0, stderr
    assert "one<br/>" in out.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["/no/such/file.py"], "error: file not found: /no/such/file.py"),
    ([str(RES / "dsl_no_pipeline.py")], "no @af.pipeline found in"),
    ([str(RES / "dsl_two_pipelines.py")], "holds several pipelines (first, second); pick one"),
    ([f"{RES / 'dsl_two_pipelines.py'}:third"], "no pipeline 'third'"),
    ([str(RES / "broken_syntax.py")], "cannot import"),
    ([str(RES / "dsl_ok.py"), "-p", "max_depth"], "bad -p value 'max_depth': expected NAME=VALUE"),
    ([str(RES / "dsl_ok.py"), "-p", "max_depth=deep"],
     "pipeline 'cancer', parameter 'max_depth': expected int, got 'deep' (str)"),
    ([str(RES / "dsl_mistyped.py")], "3 compile errors in pipeline 'mistyped'"),
])
def test_bad_input_is_one_clear_error(args: list[str], message: str, tmp_path: Path) -> None:
    code, _stdout, stderr = _graph(*args, "-o", str(tmp_path / "x.svg"))
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("error: ")
    assert not (tmp_path / "x.svg").exists()


def test_bad_output_suffix(tmp_path: Path) -> None:
    code, _, stderr = _graph(str(RES / "dsl_ok.py"), "-o", str(tmp_path / "x.jpeg"))
    assert code == 2 and "unknown suffix" in stderr and stderr.count("\n") == 1


def test_parse_params_json_else_string() -> None:
    assert parse_params(["a=3", "b=0.5", "c=deep", 'd=[1, 2]', "e=true", "f=", "g=a=b"]) == {
        "a": 3, "b": 0.5, "c": "deep", "d": [1, 2], "e": True, "f": "", "g": "a=b"}


def test_split_target() -> None:
    assert split_target("p.py:cancer") == (Path("p.py"), "cancer")
    assert split_target("dir/p.py") == (Path("dir/p.py"), None)
    assert split_target("C:/dir/p.py") == (Path("C:/dir/p.py"), None)
