"""What keeps the prompts small: log lines by shape, the ranking first, compact blocks."""

from __future__ import annotations

from sentinel.analysis.llm.evidence import Evidence, compact_lines
from sentinel.analysis.llm.prompts import analyst_user


def test_log_lines_collapse_by_shape_most_frequent_first() -> None:
    lines = [
        {"at": f"t{i:02d}", "labels": {"pod": f"p{i % 2}"}, "line": f"error id={i} took {i}ms"}
        for i in range(30)
    ] + [{"at": "t99", "line": "panic: nil map"}]
    out = compact_lines(lines)
    assert out["lines_total"] == 31 and out["distinct"] == 2
    top = out["top"][0]
    assert top["count"] == 30 and (top["first"], top["last"]) == ("t00", "t29")
    assert top["pods"] == ["p0", "p1"]
    assert out["top"][1]["line"] == "panic: nil map"


def test_a_large_source_does_not_push_the_ranking_out_of_the_prompt() -> None:
    big = {"name": "big", "query": "q", "ok": True, "data": {"blob": "x" * 20_000}}
    snapshot = {
        "data": {"prometheus": {"ok": True, "queries": [big]}},
        "causal": {"ranking": [{"service": "checkout", "metric": "error", "score": 9.0}]},
    }
    incident = {"incident_id": "i", "service": "checkout", "title": "t"}
    ev = Evidence.build(incident, snapshot)
    text = analyst_user(incident, ev, max_chars=2_000)
    assert '"ranking:0":' in text
    assert "1 more evidence items were left out" in text
    assert "\n " not in text  # no indentation
