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


def test_the_digest_keeps_series_lines_failures_and_lists_what_it_left_out() -> None:
    series = {
        "series": [
            {"metric": {"service": "checkout"}, "values": [[1, "0.01"], [2, "0.5"], [3, "0.41"]]},
            {"metric": {"service": "cart"}, "values": [[1, "0"], [2, "0"]]},
        ]
    }
    queries = [
        {"name": "error", "query": "sum(rate(x[1m]))", "ok": True, "data": series},
        {"name": "down", "query": "up", "ok": False, "error": "HTTP 503 from prometheus"},
        {"name": "copy", "query": "sum(rate(x[5m]))", "ok": True, "data": series},
    ]
    snapshot = {
        "data": {
            "prometheus": {"ok": True, "queries": queries},
            "kubernetes": {"ok": True, "queries": [{"name": "big", "data": {"x": "y" * 900}}]},
        },
        "causal": {"ranking": [{"service": "checkout", "metric": "error", "score": 9.0}]},
    }
    incident = {"incident_id": "i", "service": "checkout", "title": "t"}
    text = analyst_user(incident, Evidence.build(incident, snapshot), max_chars=1_000)
    assert '"checkout: 0.01->0.41 [0.01..0.5]"' in text and '"cart: 0"' in text
    assert '"error":"HTTP 503 from prometheus","ok":false' in text
    assert '"summary":"same as snapshot:prometheus:error"' in text
    assert "sum(rate(x[1m]))" in text  # metric queries stay: they say what a series is
    assert text.rstrip().endswith("(read_evidence reads one): snapshot:kubernetes:big")
    assert '"truncated"' not in text and "null" not in text
