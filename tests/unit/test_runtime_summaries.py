"""A step task's summary: the consumer's line of content hashes and the driver's dict."""

from __future__ import annotations

from airflowdsl.runtime import summaries
from airflowdsl.runtime.manifests import output_content, whole_content


def _manifest(*contents: str) -> dict:
    return {"key": "k" * 40, "outputs": [{"content": c, "files": {}} for c in contents]}


def test_packed_summary_round_trips_and_leads_with_its_outputs_content_hashes() -> None:
    summary = {"started": 1.0, "manifest": _manifest("a1", "b2"), "records": {"r": [1]}}
    raw = summaries.pack(summary)
    assert raw.startswith(summaries.HEAD + b"a1,b2\n")
    assert summaries.unpack(raw) == summary
    assert summaries.unpack(memoryview(raw)) == summary
    assert summaries.contents(raw) == ["a1", "b2"] == summaries.contents(summary)


def test_a_summary_without_a_manifest_names_no_content() -> None:
    raw = summaries.pack({"started": 1.0, "manifest": None})
    assert summaries.contents(raw) is None and summaries.unpack(raw)["manifest"] is None


def test_whole_output_hash_is_the_same_from_the_line_and_from_the_manifest() -> None:
    """What a consumer resolves from the summary's line is what planning computes from a
    stored manifest (``output_content``): the keys of both paths agree."""
    for contents in (["only"], ["a1", "b2", "c3"]):
        m = _manifest(*contents)
        assert whole_content(summaries.contents(summaries.pack({"manifest": m})) or []) == \
            output_content(m, None)
        assert [output_content(m, i) for i in range(len(contents))] == contents
