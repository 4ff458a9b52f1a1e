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
