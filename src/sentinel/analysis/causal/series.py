"""Metric series as one aligned matrix: loading a case directory or a Prometheus snapshot."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

Array = npt.NDArray[np.float64]

# Label keys that name the service a Prometheus series belongs to, most specific first.
SERVICE_LABELS = ("service", "job", "app", "container", "pod", "deployment", "instance")


class CaseError(ValueError):
    """A case directory that cannot be analysed (missing or malformed files)."""


@dataclass(frozen=True)
class ChangeEvent:
    """A deploy, config change or scaling action: a candidate cause of its own."""

    time: float
    service: str
    kind: str = "deploy"
    description: str = ""


@dataclass
class MetricFrame:
    """Aligned series: ``values[:, j]`` is metric ``nodes[j] = (service, metric)`` at ``times``."""

    times: Array
    values: Array
    nodes: list[tuple[str, str]]
    callgraph: list[tuple[str, str]] | None = None  # (caller, callee)
    inject_time: float | None = None
    events: list[ChangeEvent] = field(default_factory=list)


def split_column(name: str) -> tuple[str, str]:
    """``<service>_<metric>``: the metric is the text after the last underscore."""
    if "_" in name:
        service, metric = name.rsplit("_", 1)
        if service and metric:
            return service, metric
    return name, "value"


def frame_from_dataframe(
    df: pd.DataFrame,
    *,
    inject_time: float | None = None,
    callgraph: list[tuple[str, str]] | None = None,
    events: list[ChangeEvent] | None = None,
) -> MetricFrame:
    """A RCAEval-style frame (``time`` + ``<service>_<metric>`` columns) as a MetricFrame."""
    if "time" not in df.columns:
        raise CaseError("data.csv has no 'time' column")
    df = df.sort_values("time")
    times = pd.to_numeric(df["time"], errors="coerce").to_numpy(dtype=np.float64)
    keep = np.isfinite(times)
    cols = [c for c in df.columns if c != "time"]
    num = df[cols].apply(pd.to_numeric, errors="coerce").iloc[keep]
    num = num.ffill().bfill()
    good = [c for c in cols if num[c].notna().all()]
    values = num[good].to_numpy(dtype=np.float64) if good else np.zeros((int(keep.sum()), 0))
    return MetricFrame(
        times=times[keep],
        values=values,
        nodes=[split_column(str(c)) for c in good],
        callgraph=callgraph,
        inject_time=inject_time,
        events=list(events or []),
    )


def _read_events(path: Path) -> list[ChangeEvent]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CaseError(f"{path.name}: {exc}") from exc
    items = raw.get("events", []) if isinstance(raw, dict) else raw
    return [e for e in (parse_event(x) for x in items if isinstance(x, dict)) if e is not None]


def parse_event(item: dict[str, Any]) -> ChangeEvent | None:
    """A change event from a loose dict (``time``/``timestamp``/``at``, ``service``/``target``)."""
    t = item.get("time", item.get("timestamp", item.get("at")))
    svc = item.get("service", item.get("target", item.get("deployment")))
    if t is None or not svc:
        return None
    try:
        ts = float(t)
    except (TypeError, ValueError):
        try:
            ts = pd.Timestamp(str(t)).timestamp()
        except (ValueError, TypeError):
            return None
    desc = item.get("description") or item.get("version") or item.get("summary") or ""
    return ChangeEvent(
        time=ts, service=str(svc), kind=str(item.get("kind", "deploy")), description=str(desc)
    )


def load_case(case_dir: Path) -> MetricFrame:
    """Read ``data.csv``, ``inject_time.txt`` and the optional ``callgraph.json``/``events.json``."""
    if not case_dir.is_dir():
        raise CaseError(f"{case_dir} is not a directory")
    data = case_dir / "data.csv"
    if not data.is_file():
        raise CaseError(f"{case_dir} has no data.csv")
    try:
        df = pd.read_csv(data)
    except (OSError, ValueError) as exc:
        raise CaseError(f"data.csv: {exc}") from exc
    inject: float | None = None
    it = case_dir / "inject_time.txt"
    if it.is_file():
        try:
            inject = float(it.read_text().strip())
        except ValueError as exc:
            raise CaseError(f"inject_time.txt: {exc}") from exc
    callgraph: list[tuple[str, str]] | None = None
    cg = case_dir / "callgraph.json"
    if cg.is_file():
        try:
            edges = json.loads(cg.read_text()).get("edges", [])
            callgraph = [(str(a), str(b)) for a, b in edges]
        except (ValueError, TypeError, AttributeError) as exc:
            raise CaseError(f"callgraph.json: {exc}") from exc
    ev = case_dir / "events.json"
    events = _read_events(ev) if ev.is_file() else []
    return frame_from_dataframe(df, inject_time=inject, callgraph=callgraph, events=events)


def _series_service(labels: dict[str, Any], default: str) -> str:
    for key in SERVICE_LABELS:
        v = labels.get(key)
        if v:
            return str(v)
    return default


def frame_from_snapshot(snapshot: dict[str, Any], default_service: str) -> MetricFrame:
    """Every Prometheus query_range series in a context snapshot, aligned on one time grid."""
    series: dict[tuple[str, str], dict[float, float]] = {}
    events: list[ChangeEvent] = []
    for src in snapshot.values() if isinstance(snapshot, dict) else []:
        if not isinstance(src, dict):
            continue
        for q in src.get("queries") or []:
            if not isinstance(q, dict) or not q.get("ok", True):
                continue
            data = q.get("data") or {}
            if not isinstance(data, dict):
                continue
            for item in data.get("events") or []:
                if isinstance(item, dict) and (e := parse_event(item)) is not None:
                    events.append(e)
            name = str(q.get("name") or "value").replace("_", "-")
            for s in data.get("series") or []:
                if not isinstance(s, dict):
                    continue
                labels = s.get("metric") or {}
                svc = _series_service(labels if isinstance(labels, dict) else {}, default_service)
                key = (svc.replace("_", "-"), name)
                pts = series.setdefault(key, {})
                for pair in s.get("values") or []:
                    try:
                        ts, val = float(pair[0]), float(pair[1])
                    except (TypeError, ValueError, IndexError):
                        continue
                    if math.isfinite(ts) and math.isfinite(val):
                        pts[ts] = pts.get(ts, 0.0) + val  # several series of one key: summed
        for item in src.get("events") or []:
            if isinstance(item, dict) and (e := parse_event(item)) is not None:
                events.append(e)
    if not series:
        return MetricFrame(times=np.zeros(0), values=np.zeros((0, 0)), nodes=[], events=events)
    df = pd.DataFrame({f"{k[0]}_{k[1]}": pd.Series(v) for k, v in sorted(series.items())})
    df = df.sort_index()
    df.insert(0, "time", df.index.to_numpy(dtype=np.float64))
    return frame_from_dataframe(df.reset_index(drop=True), events=events)
