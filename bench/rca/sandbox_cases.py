"""The `sandbox` RCA dataset: captured context snapshots of sandbox scenario runs as RCAEval cases.

    uv run python bench/rca/sandbox_cases.py            # -> bench/rca/data/sandbox/

Sources: the fixtures of tests/unit/analysis/test_causal_sandbox.py (one `sentinel demo` run
per scenario in scenarios/) and bench/llm_tokens/snapshots/ (one run per scenario, captured
by capture.py). A snapshot whose Prometheus data is identical to an earlier one (the same run
captured twice) is skipped, so 14 snapshots give 10 cases.

Per case (the layout of gen.py):

- ``data.csv``: ``time`` + one ``<service>_<metric>`` column per series of the snapshot's
  per-service queries (cpu, mem, latency, error, restarts). The alert's own query is left
  out (it names the target). Prometheus already returns every range query on one 5 s step
  grid anchored at the query start, so the grid is the union of the timestamps, filled to a
  regular 5 s step; a series is forward-filled over gaps and back-filled over its leading
  points (the rate() series start one scrape after the gauges, when Prometheus has two
  samples); a series with no value at all (a quantile of no traffic) is dropped.
- ``inject_time.txt``: the injection time is not recorded in a snapshot. What is recorded is
  the alert's ``startsAt``; the rule's ``for`` (scenarios/*.yaml, 10 s in every scenario) is
  subtracted: the time the alert condition began to hold, the latest the fault can have
  started. Both times are kept in labels.json.
- ``callgraph.json``: the sandbox call graph (the fixture's ``incident.callgraph``, which is
  the Online-Boutique topology of src/sentinel_sandbox/topology.py; taken from that module
  for snapshots that do not carry it).
- ``labels.json`` (per dataset, scorer only): the scenario's injected service.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "unit" / "analysis" / "fixtures"
LLM_SNAPSHOTS = ROOT / "bench" / "llm_tokens" / "snapshots"
SCENARIOS = ROOT / "scenarios"
METRICS = ("cpu", "mem", "latency", "error", "restarts")
STEP = 5.0


def sources() -> list[Path]:
    return sorted(FIXTURES.glob("sandbox_*.json")) + sorted(LLM_SNAPSHOTS.glob("*.json.gz"))


def read_snapshot(path: Path) -> dict[str, Any]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return dict(json.loads(raw))


def _scenario(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text()))


def _duration(text: str) -> float:
    text = str(text).strip()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for u in ("ms", "s", "m", "h"):
        if text.endswith(u):
            return float(text[: -len(u)]) * units[u]
    return float(text)


def _callgraph(snap: dict[str, Any]) -> list[list[str]]:
    edges = (snap.get("incident") or {}).get("callgraph", {}).get("edges")
    if edges:
        return [[str(a), str(b)] for a, b in edges]
    sys.path.insert(0, str(ROOT / "src"))
    from sentinel_sandbox.topology import online_boutique

    return [[e.caller, e.callee] for e in online_boutique().edges]


def frame(snap: dict[str, Any]) -> pd.DataFrame:
    """The snapshot's per-service series on one regular 5 s grid (see the module doc)."""
    cols: dict[str, pd.Series] = {}
    for q in snap["snapshot"]["prometheus"]["queries"]:
        if q.get("name") not in METRICS or not q.get("ok", True):
            continue
        for s in q["data"].get("series") or []:
            service = s["metric"].get("service")
            if not service or not s["values"]:
                continue
            t = [float(v[0]) for v in s["values"]]
            x = pd.to_numeric(pd.Series([v[1] for v in s["values"]]), errors="coerce")
            cols[f"{service}_{q['name']}"] = pd.Series(x.to_numpy(dtype=float), index=t)
    if not cols:
        raise ValueError("the snapshot has no per-service Prometheus series")
    stamps = sorted({t for c in cols.values() for t in c.index})
    grid = np.round(np.arange(stamps[0], stamps[-1] + STEP / 2, STEP), 3)
    df = pd.DataFrame(index=grid)
    for name in sorted(cols):
        c = cols[name]
        c.index = np.round(np.asarray(c.index, dtype=float), 3)
        c = c[~c.index.duplicated()].reindex(grid).replace([np.inf, -np.inf], np.nan)
        c = c.ffill().bfill()
        if c.notna().all():
            df[name] = c
    df.index.name = "time"
    return df.reset_index()


def convert(snap: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write one case directory; returns its label."""
    scen = _scenario(str(snap["scenario"]))
    faults = scen.get("faults") or [scen["fault"]]
    target = str(faults[0]["target"])
    alert = snap["incident"]["source_alert"]
    alert_start = datetime.fromisoformat(str(alert["starts_at"])).timestamp()
    hold = _duration((scen.get("alert") or {}).get("for", "0s"))
    inject = alert_start - hold
    df = frame(snap)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "data.csv", index=False)
    (out / "inject_time.txt").write_text(f"{inject:.3f}\n")
    (out / "callgraph.json").write_text(json.dumps({"edges": _callgraph(snap)}))
    return {
        "root_cause": target,
        "fault": str(faults[0]["kind"]),
        "scenario": str(snap["scenario"]),
        "inject_time": "alert startsAt - for",
        "alert_start": alert_start,
        "alert_for_s": hold,
        "points": len(df),
        "points_after_inject": int((df["time"] >= inject).sum()),
    }


def build(out_dir: Path, paths: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    labels: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for path in paths if paths is not None else sources():
        snap = read_snapshot(path)
        prom = json.dumps(snap["snapshot"]["prometheus"], sort_keys=True).encode()
        digest = hashlib.sha256(prom).hexdigest()
        if digest in seen:
            print(f"skip {path.name}: same Prometheus data as an earlier snapshot")
            continue
        seen.add(digest)
        origin = "fixture" if path.parent == FIXTURES else "llm"
        case = f"{snap['scenario']}-{origin}"
        labels[case] = {**convert(snap, out_dir / case), "source": str(path.relative_to(ROOT))}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=1))
    return labels


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default=str(HERE / "data" / "sandbox"))
    args = ap.parse_args()
    labels = build(Path(args.out))
    for case, lab in labels.items():
        print(
            case, lab["root_cause"], f"{lab['points']} points, {lab['points_after_inject']} after"
        )


if __name__ == "__main__":
    main()
