"""bench/rca/sandbox_cases.py: a captured sandbox snapshot as an RCAEval case directory."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd  # type: ignore[import-untyped]

from sentinel.analysis.causal.analyzer import analyze_frame_json
from sentinel.analysis.causal.series import load_case, split_column

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = Path(__file__).parent / "fixtures" / "sandbox_cpu_hog.json"


def _converter() -> ModuleType:
    path = ROOT / "bench" / "rca" / "sandbox_cases.py"
    spec = importlib.util.spec_from_file_location("sandbox_cases", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sandbox_cases"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_one_fixture_becomes_a_valid_case(tmp_path: Path) -> None:
    labels = _converter().build(tmp_path, [FIXTURE])
    assert list(labels) == ["cpu-hog-fixture"]
    lab = labels["cpu-hog-fixture"]
    assert lab["root_cause"] == "productcatalog"
    assert json.loads((tmp_path / "labels.json").read_text()) == labels

    case = tmp_path / "cpu-hog-fixture"
    df = pd.read_csv(case / "data.csv")
    assert df.columns[0] == "time"
    steps = df["time"].diff().dropna().round(3)
    assert (steps == 5.0).all()  # one regular 5 s grid
    assert not df.isna().any().any()
    services = {split_column(c)[0] for c in df.columns[1:]}
    metrics = {split_column(c)[1] for c in df.columns[1:]}
    assert "productcatalog" in services and len(services) == 11
    assert metrics <= {"cpu", "mem", "latency", "error", "restarts"}
    assert not any(c.startswith("alert") for c in df.columns)  # the alert names the target

    inject = float((case / "inject_time.txt").read_text())
    assert inject == lab["alert_start"] - 10.0  # startsAt minus the rule's `for: 10s`
    assert df["time"].iloc[0] < inject <= df["time"].iloc[-1]

    edges = json.loads((case / "callgraph.json").read_text())["edges"]
    assert ["frontend", "productcatalog"] in edges and ["cart", "redis-cart"] in edges

    out = analyze_frame_json(load_case(case))  # the engine reads it as any other case
    assert out["ranking"][0]["service"] == "productcatalog"


def test_a_repeated_capture_is_skipped(tmp_path: Path) -> None:
    labels = _converter().build(tmp_path, [FIXTURE, FIXTURE])
    assert len(labels) == 1
