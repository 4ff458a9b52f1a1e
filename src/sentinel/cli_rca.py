"""`sentinel rca CASE_DIR`: the causal analyzer on one offline case (RCAEval layout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sentinel.analysis.causal import CaseError, rank_case


def rca_command(case_dir: Path, as_json: bool) -> int:
    """Print the ranking (JSON, or a short table) and return the exit code (2: bad case dir)."""
    try:
        result = rank_case(Path(case_dir))
    except CaseError as exc:
        print(f"error: invalid RCA case directory: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    for i, r in enumerate(result["ranking"][:10], start=1):
        metric = r["metric"] or "-"
        print(f"{i:2d}. {r['service']:30s} {metric:12s} {r['score']:.3f}")
    print(result["explanation"])
    return 0
