"""Every public scenario, end to end, with real Prometheus and Alertmanager, ends as expected.

And one without them: ``SENTINEL_DEMO_ALERTS=sandbox`` makes the sandbox evaluate the rule,
post the Alertmanager webhook and answer Sentinel's PromQL queries itself.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sentinel.demo import run_in_subprocess
from tests.conftest import ROOT, need, port_open
from tests.integration.promstack import binaries_present

SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.prometheus
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(
    900
)  # seven scenario runs of 40-70 s, two at a time: ~190 s idle, far more on busy cores
def test_every_public_scenario_ends_as_expected(tmp_path: Path) -> None:
    need(binaries_present(), "the prometheus and prometheus-alertmanager binaries")
    need(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379 (cache-poisoning)")
    assert len(SCENARIOS) >= 6
    # All at once: each waits mostly on its fault schedule, scrapes and durable sleeps.
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        results = list(pool.map(run_in_subprocess, SCENARIOS))
    report = {
        r["scenario"]: {
            k: r.get(k)
            for k in (
                "as_expected",
                "final_status",
                "action",
                "decision",
                "timings_s",
                "root_cause",
                "root_cause_ok",
            )
        }
        for r in results
    }
    print(json.dumps(report, indent=1))
    bad = {
        r["scenario"]: (r.get("final_status"), r.get("action"), r["_stderr"][-600:])
        for r in results
        if not r.get("as_expected")
    }
    assert not bad, bad
    assert all(r["_exit"] == 0 for r in results)


@pytest.mark.slow
def test_a_scenario_without_prometheus_ends_as_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced no-Prometheus mode (the env var the demo honours): a CRITICAL rollback, approved."""
    monkeypatch.setenv("SENTINEL_DEMO_ALERTS", "sandbox")
    assert os.environ["SENTINEL_DEMO_ALERTS"] == "sandbox"
    r = run_in_subprocess("bad-deploy-errors")
    assert r.get("alerts_from") == "sandbox", r
    assert r.get("as_expected") and r["_exit"] == 0, (r, r["_stderr"][-1500:])
    assert r["final_status"] == "CLOSED" and r["action"] == "rollback_deployment"
    assert r["approved"] is True
    t = r["timings_s"]
    assert t["to_alert"] is not None and t["to_verified"] is not None
    assert t["to_alert"] < t["to_decision"] <= t["to_executed"] < t["to_verified"] <= t["to_end"]
