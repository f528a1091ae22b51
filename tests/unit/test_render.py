"""Rendering: SVG/DOT/Mermaid are parsed back and every step is found."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import airflowdsl as af

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def dag() -> af.CompiledPipeline:
    from dsl_ok import cancer

    return cancer.compile()


def _svg_nodes(path: Path) -> dict[str, str]:
    """{node title: its text} of a Graphviz SVG."""
    root = ET.parse(path).getroot()
    out = {}
    for g in root.iter(f"{SVG_NS}g"):
        if g.get("class") == "node":
            title = g.find(f"{SVG_NS}title")
            assert title is not None and title.text
            out[title.text] = " ".join(t.text or "" for t in g.iter(f"{SVG_NS}text"))
    return out


def _svg_edge_labels(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [" ".join(t.text or "" for t in g.iter(f"{SVG_NS}text"))
            for g in root.iter(f"{SVG_NS}g") if g.get("class") == "edge"]


def test_svg_has_every_step_with_kind_and_edge_types(dag: af.CompiledPipeline,
                                                     tmp_path: Path) -> None:
    out = dag.render(tmp_path / "dag.svg")
    nodes = _svg_nodes(out)
    assert set(nodes) == {"load", "split", "fit", "score"}
    assert "ingest" in nodes["load"] and "train" in nodes["fit"]
    labels = _svg_edge_labels(out)
    assert labels.count("Checkpoint") == 1 and labels.count("Dataset") == 3
    assert [p.name for p in tmp_path.iterdir()] == ["dag.svg"]   # no temp file left


def test_dot_shapes_by_kind_and_status(dag: af.CompiledPipeline, tmp_path: Path) -> None:
    out = dag.render(tmp_path / "dag.dot", status={"fit": "failed", "load": "cached"})
    text = out.read_text()
    for name, shape in [("load", "cylinder"), ("split", "box"), ("fit", "box3d"),
                        ("score", "parallelogram")]:
        m = re.search(rf'^\s*{name} \[(.*)\]$', text, re.M)
        assert m, name
        assert f"shape={shape}" in m.group(1)
    fit_line = next(line for line in text.splitlines() if line.strip().startswith("fit ["))
    assert "[failed]" in fit_line and 'fillcolor="#ef476f"' in fit_line
    assert "split -> fit" in text and 'label=Checkpoint' in text


def test_mermaid(dag: af.CompiledPipeline, tmp_path: Path) -> None:
    text = dag.render(tmp_path / "dag.mmd", status={"fit": "succeeded"}).read_text()
    assert "flowchart TD" in text
    labels = dict(re.findall(r'^\s+(n\d+)\W+"([^"<]+)<br/>', text, re.M))
    assert sorted(labels.values()) == ["fit", "load", "score", "split"]
    ids = {v: k for k, v in labels.items()}
    assert f'{ids["fit"]} -->|"Checkpoint"| {ids["score"]}' in text
    assert re.search(rf"class .*\b{ids['fit']}\b.* st_succeeded", text)
    assert re.search(rf"class .*\b{ids['load']}\b.* ingest", text)


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_binary_formats(dag: af.CompiledPipeline, tmp_path: Path, suffix: str,
                        magic: bytes) -> None:
    assert dag.render(tmp_path / f"dag{suffix}").read_bytes().startswith(magic)


def test_unknown_suffix(dag: af.CompiledPipeline, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown suffix"):
        dag.render(tmp_path / "dag.jpeg")


def test_two_hundred_steps_render_quickly(tmp_path: Path) -> None:
    @af.ingest
    def src() -> af.Dataset: ...

    @af.preprocess
    def stage(ds: af.Dataset) -> af.Dataset: ...

    @af.pipeline
    def wide():
        ds = src()
        for _ in range(10):
            ds = stage(ds)
        for _ in range(189):
            stage(ds)

    dag = wide.compile()
    assert dag.graph.number_of_nodes() == 200
    t0 = time.perf_counter()
    svg = dag.render(tmp_path / "wide.svg")
    elapsed = time.perf_counter() - t0
    assert len(_svg_nodes(svg)) == 200
    assert elapsed < 30   # "seconds": generous on a loaded 2-core box (typ. ~1 s)
    mmd = dag.render(tmp_path / "wide.mmd").read_text()
    assert len(re.findall(r"^\s+n\d+\(", mmd, re.M)) == 199
