"""The metric-level causal graph: from a service call graph, or learned from the data."""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from sentinel.analysis.causal.series import Array


class Kind(StrEnum):
    """What role a metric plays in how faults travel."""

    RESOURCE = "resource"  # cpu, memory, disk: a service's own state
    LATENCY = "latency"  # felt by callers
    ERROR = "error"  # felt by callers
    LOAD = "load"  # traffic: drives everything in its service


_LATENCY_WORDS = (
    "latency",
    "lat",
    "duration",
    "rt",
    "p50",
    "p90",
    "p95",
    "p99",
    "response",
    "time",
)
_ERROR_WORDS = ("error", "err", "fail", "5xx", "errors", "availability", "loss", "drop")
_LOAD_WORDS = ("request", "requests", "rate", "rps", "qps", "traffic", "throughput")


def metric_kind(metric: str) -> Kind:
    """Classify a metric name; unknown names count as the service's own resource state."""
    m = metric.lower().replace("-", "_")
    if m.startswith("alert:"):  # an alert rule's own series (CheckoutHighErrorRate): its SLI
        name = m[len("alert:") :]
        if any(e in name for e in _ERROR_WORDS if len(e) > 3):
            return Kind.ERROR
        if any(e in name for e in ("latency", "duration", "slow", "p99", "p95")):
            return Kind.LATENCY
    words = [w for w in m.split("_") if w] or [m]
    if any(w.startswith(e) for w in words for e in _ERROR_WORDS):
        return Kind.ERROR
    if any(w in _LATENCY_WORDS or w.startswith("lat") for w in words):
        return Kind.LATENCY
    if any(w in _LOAD_WORDS for w in words):
        return Kind.LOAD
    return Kind.RESOURCE


# (cause kind, effect kind) pairs inside one service.
_WITHIN_SERVICE = {
    (Kind.RESOURCE, Kind.LATENCY),
    (Kind.RESOURCE, Kind.ERROR),
    (Kind.LOAD, Kind.LATENCY),
    (Kind.LOAD, Kind.ERROR),
    (Kind.ERROR, Kind.LATENCY),  # retries and timeouts
    (Kind.LOAD, Kind.RESOURCE),
}


def parents_from_callgraph(
    nodes: list[tuple[str, str]], edges: list[tuple[str, str]]
) -> list[list[int]]:
    """Parents of each metric: its service's resources (and traffic) drive its latency and
    errors; a callee's latency and errors drive the caller's latency and errors.

    Call edges are (caller, callee); causality runs callee → caller. When a pair of services
    shares no output kind, every output of the callee is a parent of every output of the caller.
    """
    by_service: dict[str, list[int]] = {}
    for j, (svc, _) in enumerate(nodes):
        by_service.setdefault(svc, []).append(j)
    kinds = [metric_kind(m) for _, m in nodes]
    outputs = (Kind.LATENCY, Kind.ERROR)
    parents: list[set[int]] = [set() for _ in nodes]
    for idx in by_service.values():
        solo = len(idx) == 1
        for j in idx:
            for i in idx:
                if i == j or solo:
                    continue
                if (kinds[i], kinds[j]) in _WITHIN_SERVICE:
                    parents[j].add(i)
    for caller, callee in edges:
        if caller == callee:
            continue
        src = by_service.get(callee, [])
        dst = by_service.get(caller, [])
        if not src or not dst:
            continue
        src_out = [i for i in src if kinds[i] in outputs] or src
        dst_out = [j for j in dst if kinds[j] in outputs] or dst
        matched = False
        for j in dst_out:
            for i in src_out:
                if kinds[i] == kinds[j]:
                    parents[j].add(i)
                    matched = True
        if not matched:
            for j in dst_out:
                parents[j].update(src_out)
    return [sorted(p) for p in parents]


def learn_parents(
    z: Array,
    nodes: list[tuple[str, str]],
    onsets: Array,
    anomalous: np.ndarray,
    max_parents: int = 3,
    min_corr: float = 0.5,
) -> list[list[int]]:
    """A graph learned from the data when no topology is given.

    Within a service the kind rules of :func:`parents_from_callgraph` apply. Across services a
    metric's candidate parents are anomalous metrics that changed no later than it did
    (temporal precedence) and that move with it (|correlation| over the window at least
    ``min_corr``); the ``max_parents`` most correlated are kept.
    """
    parents = parents_from_callgraph(nodes, [])
    m = len(nodes)
    idx = np.flatnonzero(anomalous)
    if idx.size < 2:
        return parents
    sub = z[:, idx]
    sub = sub - sub.mean(axis=0)
    norm = np.sqrt((sub**2).sum(axis=0))
    norm[norm == 0] = 1.0
    corr = (sub.T @ sub) / np.outer(norm, norm)
    for a, j in enumerate(idx):
        cands: list[tuple[float, int]] = []
        for b, i in enumerate(idx):
            if i == j or nodes[i][0] == nodes[j][0]:
                continue
            oi, oj = onsets[i], onsets[j]
            if oi < 0 or oj < 0 or oi > oj:
                continue
            c = abs(float(corr[a, b]))
            if c >= min_corr:
                cands.append((c, int(i)))
        cands.sort(reverse=True)
        parents[int(j)] = sorted(set(parents[int(j)]) | {i for _, i in cands[:max_parents]})
    assert len(parents) == m
    return parents


def children_of(parents: list[list[int]]) -> list[list[int]]:
    """Invert a parent list."""
    kids: list[list[int]] = [[] for _ in parents]
    for j, ps in enumerate(parents):
        for i in ps:
            kids[i].append(j)
    return kids
