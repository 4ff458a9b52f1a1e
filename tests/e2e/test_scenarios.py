"""Every public scenario, end to end, with real Prometheus and Alertmanager, ends as expected."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, need, port_open
from tests.integration.promstack import binaries_present

SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


def _run(name: str) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel.cli",
            "demo",
            "--scenario",
            name,
            "--json",
            "--port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        doc = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        doc = {"scenario": name, "as_expected": False}
    doc["_stderr"] = out.stderr[-2000:]
    doc["_exit"] = out.returncode
    return doc


@pytest.mark.prometheus
@pytest.mark.redis
@pytest.mark.slow
def test_every_public_scenario_ends_as_expected(tmp_path: Path) -> None:
    need(binaries_present(), "the prometheus and prometheus-alertmanager binaries")
    need(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379 (cache-poisoning)")
    assert len(SCENARIOS) >= 6
    # All at once: each waits mostly on its fault schedule, scrapes and durable sleeps.
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        results = list(pool.map(_run, SCENARIOS))
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
