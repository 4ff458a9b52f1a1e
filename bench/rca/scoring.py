"""AC@k and Avg@5 at service level (shared by run.py and peers.py; stdlib only)."""

from __future__ import annotations

import json
from pathlib import Path


def service_of(column: str) -> str:
    """``<service>_<metric>`` → service (the text before the last underscore)."""
    return column.rsplit("_", 1)[0] if "_" in column else column


def dedupe_services(ranked: list[str]) -> list[str]:
    """A metric-level ranking as a service-level one (first occurrence wins)."""
    out: list[str] = []
    for s in ranked:
        if s not in out:
            out.append(s)
    return out


def ac_at(ranked_services: list[str] | None, truth: str, k: int) -> float:
    """1.0 when the true service is among the first k (a failed run is a miss)."""
    if not ranked_services:
        return 0.0
    return 1.0 if truth in ranked_services[:k] else 0.0


def summarize(rows: list[tuple[list[str] | None, str, float]]) -> dict[str, float]:
    """rows: (service ranking or None on failure, truth, seconds) → AC@1, AC@3, Avg@5, s/case."""
    n = len(rows) or 1
    acs = {k: sum(ac_at(r, t, k) for r, t, _ in rows) / n for k in range(1, 6)}
    return {
        "cases": float(len(rows)),
        "AC@1": acs[1],
        "AC@3": acs[3],
        "Avg@5": sum(acs.values()) / 5,
        "s/case": sum(s for _, _, s in rows) / n,
        "failed": float(sum(1 for r, _, _ in rows if not r)),
    }


def labels(dataset_dir: Path) -> dict[str, dict[str, object]]:
    return dict(json.loads((dataset_dir / "labels.json").read_text()))
