"""The workflow's analyzer on context snapshots captured from sandbox scenario runs.

Each fixture is the Prometheus part of the context snapshot a `sentinel demo --scenario NAME`
run stored for its incident (the demo's SQLite database), with the sandbox's call graph: one
per scenario in scenarios/. The alert fired some 35 s after the fault: eight points at 5 s,
which the engine must not overfit, with baselines of five scrapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentinel.analysis.causal.analyzer import CausalAnalyzer

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("sandbox_*.json"))


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_injected_service_is_named(path: Path) -> None:
    case = _load(path)
    out = CausalAnalyzer().analyze(case["incident"], case["snapshot"])
    assert out["ranking"], out["hypothesis"]
    assert out["ranking"][0]["service"] == case["expected_root_cause"], out["ranking"][:3]
    assert out["hypothesis"].startswith(f"root cause: {case['expected_root_cause']}")
    if case["expected_root_cause"] != "frontend":
        # the frontend only relays its callees' errors and latency: they explain it
        assert out["ranking"][0]["service"] != "frontend"


def test_there_are_sandbox_fixtures() -> None:
    assert len(CASES) >= 7  # every scenario in scenarios/


# The metric named for the root service: its own state (cpu, memory) when that moved no later
# than the symptom that scored highest; the symptom itself otherwise.
NAMED_METRIC = {
    "sandbox_bad_config": "error",
    "sandbox_bad_deploy_errors": "error",
    "sandbox_cache_poisoning": "error",
    "sandbox_cpu_hog": "cpu",  # latency scores 85σ against cpu's 6σ, but the hog is the cpu
    "sandbox_memory_leak": "mem",
    "sandbox_slow_dependency": "latency",
    "sandbox_traffic_spike": "cpu",  # not the alert's own series, though it moved as early
}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_root_metric_is_named(path: Path) -> None:
    case = _load(path)
    out = CausalAnalyzer().analyze(case["incident"], case["snapshot"])
    metric = NAMED_METRIC[path.stem]
    assert out["ranking"][0]["metric"] == metric, out["ranking"][:2]
    assert out["hypothesis"].startswith(f"root cause: {case['expected_root_cause']} {metric} ")
    if metric == "cpu":  # the chain goes from the service's state to its symptom
        first = out["chain"][0]
        assert first["cause"] == {"service": case["expected_root_cause"], "metric": "cpu"}
        assert first["effect"]["service"] == case["expected_root_cause"]
        assert first["effect"]["metric"] in {"latency", "error"}


def test_a_resource_metric_that_moved_later_is_not_named() -> None:
    from sentinel.analysis.causal.engine import Analysis, NodeResult
    from sentinel.analysis.causal.explain import root_metric

    def node(metric: str, anomaly: float, onset: float | None, parents: list[int]) -> NodeResult:
        return NodeResult("db", metric, anomaly, anomaly, anomaly, onset, 0.0, parents)

    def analysis(nodes: list[NodeResult]) -> Analysis:
        return Analysis(nodes, 100.0, "given", "callgraph", 1.0, [], {}, [("db", 50.0, 2)])

    # cpu (0) and mem (1) are parents of latency (2), which scored highest.
    early = [
        node("cpu", 6.0, 95.0, []),
        node("mem", 9.0, 99.0, []),
        node("latency", 80.0, 100.0, [0, 1]),
    ]
    assert root_metric(analysis(early), 2) == 0  # the earliest first, not the largest
    late = [
        node("cpu", 6.0, 105.0, []),
        node("mem", 1.0, 90.0, []),
        node("latency", 80.0, 100.0, [0, 1]),
    ]
    assert root_metric(analysis(late), 2) == 2  # cpu after the symptom, mem calm
    no_onset = [
        node("cpu", 6.0, None, []),
        node("mem", 0.0, None, []),
        node("latency", 80.0, 100.0, [0, 1]),
    ]
    assert root_metric(analysis(no_onset), 2) == 2
