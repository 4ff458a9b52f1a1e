"""`sentinel rca CASE_DIR` on a generated case (RCAEval layout)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel.cli_rca import rca_command


def _write_case(d: Path) -> None:
    rng = np.random.default_rng(0)
    n, onset = 600, 400
    after = (np.arange(n) >= onset).astype(float)
    db = 5 + rng.normal(0, 1, n) + 6 * after
    api = 5 + rng.normal(0, 0.3, n) + 3 * db
    web = 5 + rng.normal(0, 0.3, n) + 3 * api
    df = pd.DataFrame(
        {
            "time": 1_700_000_000 + np.arange(n),
            "web_latency": web,
            "web_cpu": 30 + rng.normal(0, 1, n),
            "api_latency": api,
            "api_cpu": 30 + rng.normal(0, 1, n),
            "db_latency": db,
            "db_cpu": 30 + rng.normal(0, 1, n),
        }
    )
    d.mkdir(parents=True, exist_ok=True)
    df.to_csv(d / "data.csv", index=False)
    (d / "inject_time.txt").write_text(str(1_700_000_000 + onset))
    (d / "callgraph.json").write_text(json.dumps({"edges": [["web", "api"], ["api", "db"]]}))


def test_rca_command_prints_the_ranking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_case(tmp_path / "case")
    assert rca_command(tmp_path / "case", as_json=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ranking"][0] == {
        "service": "db",
        "metric": "latency",
        "score": out["ranking"][0]["score"],
    }
    assert isinstance(out["explanation"], str) and out["explanation"]


def test_rca_command_rejects_a_missing_or_invalid_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rca_command(tmp_path / "nope", as_json=True) == 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "data.csv").write_text("a,b\n1,2\n")
    assert rca_command(tmp_path / "bad", as_json=True) == 2
    assert "invalid RCA case" in capsys.readouterr().err


def test_cli_entry_point(tmp_path: Path) -> None:
    _write_case(tmp_path / "case")
    proc = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "rca", str(tmp_path / "case"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0 and "No such command" in proc.stderr:
        pytest.skip("`rca` is not registered in sentinel.cli yet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ranking"][0]["service"] == "db"
