"""Capture each public scenario's incident context from `sentinel demo` runs, once.

    uv run sentinel demo --scenario NAME --json       # leaves its state in /tmp/sentinel-demo-*
    uv run python bench/llm_tokens/capture.py /tmp/sentinel-demo-*

For every scenario in scenarios/*.yaml the newest run (by database mtime) whose incident
carries the scenario's alert is read (read-only): the incident document the workflow hands
the analyzer, the stored context snapshot, the causal engine's RCA and the inventory the
policy saw. Each goes to snapshots/<scenario>.json.gz, which `run.py` replays.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).parent / "snapshots"


def _alertnames() -> dict[str, str]:
    """alertname -> scenario name."""
    out: dict[str, str] = {}
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        alert = doc.get("alert") or {}
        name = alert.get("name") if isinstance(alert, dict) else None
        if name:
            out[str(name)] = str(doc["name"])
    return out


def _read(db: Path) -> dict[str, Any] | None:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute(
            "select incident_id, service, title, status, source_alert, rca from incidents"
            " order by created_at limit 1"
        ).fetchone()
        if row is None:
            return None
        incident_id, service, title, status, source_alert, rca = row
        snap = con.execute(
            "select data from context_snapshots where incident_id = ? order by created_at limit 1",
            (incident_id,),
        ).fetchone()
        inventory: dict[str, Any] = {}
        for (body,) in con.execute(
            "select body from audit_log where incident_id = ? and action_type = 'POLICY_EVAL'"
            " order by seq limit 1",
            (incident_id,),
        ):
            facts = json.loads(body)["details"]["input"].get("facts") or {}
            inventory = dict(facts.get("inventory") or {})
    finally:
        con.close()
    if snap is None:
        return None
    return {
        "incident": {
            "incident_id": incident_id,
            "service": service,
            "title": title,
            "status": "ANALYZING",
            "source_alert": json.loads(source_alert),
        },
        "snapshot": json.loads(snap[0]),
        "causal": json.loads(rca) if rca else None,
        "inventory": inventory,
        "_captured_from": f"{db.parent.name} (incident status {status})",
    }


def main() -> None:
    names = _alertnames()
    dbs = sorted(
        (Path(a) / "sentinel.db" for a in sys.argv[1:]),
        key=lambda p: p.stat().st_mtime if p.exists() else 0,
        reverse=True,
    )
    found: dict[str, dict[str, Any]] = {}
    for db in dbs:
        if not db.exists():
            continue
        case = _read(db)
        if case is None:
            continue
        alertname = (case["incident"]["source_alert"].get("labels") or {}).get("alertname")
        scenario = names.get(str(alertname))
        if scenario and scenario not in found:
            found[scenario] = {"scenario": scenario, **case}
    OUT.mkdir(exist_ok=True)
    for scenario, case in sorted(found.items()):
        path = OUT / f"{scenario}.json.gz"
        path.write_bytes(gzip.compress(json.dumps(case, sort_keys=True).encode(), mtime=0))
        print(f"{scenario:20} <- {case['_captured_from']}  ({path.stat().st_size} bytes)")
    missing = sorted(set(names.values()) - set(found))
    if missing:
        print(f"no run found for: {', '.join(missing)}")


if __name__ == "__main__":
    main()
