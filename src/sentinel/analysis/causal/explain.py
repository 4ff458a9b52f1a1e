"""Turns an Analysis into the ranking, a causal chain with evidence per link, and prose."""

from __future__ import annotations

import math
from typing import Any

from sentinel.analysis.causal.engine import ANOMALY_Z, Analysis, NodeResult, children
from sentinel.analysis.causal.graph import Kind, metric_kind

MAX_RANKING = 20
MAX_CHAIN = 8


def root_metric(analysis: Analysis, j: int) -> int:
    """The metric to name for a service whose highest-scoring metric is ``j``.

    A resource metric of the same service (cpu, memory: its own state) that is a parent of
    ``j`` in the graph, deviates itself and began to move no later than ``j`` is named
    instead: a service's state changes before the latency and errors it causes, and a symptom
    that starts from zero (errors) can out-score its cause by far in sigmas (a CPU hog: cpu
    6σ, latency 85σ). The earliest such metric, then the largest. The score is unchanged.
    """
    nodes = analysis.nodes
    r = nodes[j]
    if r.onset is None or metric_kind(r.metric) is Kind.RESOURCE:
        return j
    causes = [
        (q.onset, -q.anomaly, p)
        for p in r.parents
        if (q := nodes[p]).service == r.service
        and q.onset is not None
        and q.onset <= r.onset
        and q.anomaly >= ANOMALY_Z
        and not q.metric.startswith("alert:")  # an alert's own series
        and metric_kind(q.metric) is Kind.RESOURCE
    ]
    return min(causes)[2] if causes else j


def ranking(analysis: Analysis, limit: int = MAX_RANKING) -> list[dict[str, Any]]:
    """One entry per service, best first: its root metric (``root_metric``) and the score."""
    out: list[dict[str, Any]] = []
    for svc, score, j in analysis.service_scores[:limit]:
        metric = analysis.nodes[root_metric(analysis, j)].metric if j is not None else None
        out.append({"service": svc, "metric": metric, "score": round(float(score), 4)})
    return out


def _label(r: NodeResult) -> str:
    return f"{r.service} {r.metric}"


def chain(analysis: Analysis, target_service: str | None = None) -> list[dict[str, Any]]:
    """From the top cause along its most-explained anomalous effects, towards ``target_service``
    when it is reachable. Each link carries its evidence."""
    if not analysis.service_scores or analysis.service_scores[0][2] is None:
        return []
    start = analysis.service_scores[0][2]
    named = root_metric(analysis, start)
    nodes = analysis.nodes
    kids = children(analysis)
    path = _path_to(start, target_service, kids, nodes) if target_service else None
    if path is None:
        path = [start]
        seen = {start, named}
        while len(path) < MAX_CHAIN:
            cur = path[-1]
            best, best_w = None, 0.0
            for c in kids[cur]:
                r = nodes[c]
                if c in seen or r.anomaly < ANOMALY_Z:
                    continue
                w = abs(r.contrib.get(cur, 0.0))
                if w > best_w:
                    best, best_w = c, w
            if best is None:
                break
            path.append(best)
            seen.add(best)
    if named != start:  # the service's own state first, then its symptom (root_metric)
        path = [named, *path][:MAX_CHAIN]
    links: list[dict[str, Any]] = []
    for a, b in zip(path, path[1:], strict=False):
        ra, rb = nodes[a], nodes[b]
        lag = None if ra.onset is None or rb.onset is None else rb.onset - ra.onset
        share = 0.0
        # The effect's explained share, split among its parents by the size of their parts.
        part = abs(rb.contrib.get(a, 0.0))
        total = sum(abs(v) for v in rb.contrib.values())
        if total > 0 and rb.explained:
            share = max(0.0, min(1.0, rb.explained * part / total))
        links.append(
            {
                "cause": {"service": ra.service, "metric": ra.metric},
                "effect": {"service": rb.service, "metric": rb.metric},
                "evidence": {
                    "cause_onset": ra.onset,
                    "effect_onset": rb.onset,
                    "lag_s": lag,
                    "effect_explained_by_cause": round(share, 3),
                    "effect_unexplained_z": round(rb.residual, 2),
                    "effect_deviation_z": round(rb.anomaly, 2),
                },
            }
        )
    return links


def _path_to(
    start: int, target: str | None, kids: list[list[int]], nodes: list[NodeResult]
) -> list[int] | None:
    """Shortest path over anomalous metrics from ``start`` to a metric of ``target``."""
    if target is None:
        return None
    if nodes[start].service == target:
        return [start]
    prev: dict[int, int] = {start: start}
    frontier = [start]
    while frontier:
        nxt: list[int] = []
        for u in frontier:
            for c in kids[u]:
                if c in prev or nodes[c].anomaly < ANOMALY_Z:
                    continue
                prev[c] = u
                if nodes[c].service == target:
                    path = [c]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1][:MAX_CHAIN]
                nxt.append(c)
        frontier = nxt
    return None


def confidence(analysis: Analysis) -> float:
    """0..1: how strong the top candidate is and how clearly it beats the runner-up."""
    scores = [s for _, s, _ in analysis.service_scores]
    if not scores or scores[0] <= 0:
        return 0.0
    top = scores[0]
    second = scores[1] if len(scores) > 1 else 0.0
    strength = 1.0 - math.exp(-max(0.0, top - 1.0) / ANOMALY_Z)
    margin = (top - second) / top
    return round(float(max(0.0, min(1.0, strength * (0.4 + 0.6 * margin)))), 3)


def _when(t: float | None, onset: float | None) -> str:
    if t is None or onset is None:
        return ""
    return f" (+{t - onset:.0f} s)" if t >= onset else f" ({t - onset:.0f} s)"


def explanation(analysis: Analysis, links: list[dict[str, Any]]) -> str:
    """A readable causal chain: ``frontend latency ← checkout latency ← payment cpu ...``."""
    if not analysis.service_scores or analysis.service_scores[0][1] <= 0:
        return "no root cause found: no metric deviated from its baseline"
    svc, score, j = analysis.service_scores[0]
    if j is None:
        ev = analysis.event_boost.get(svc)
        what = f"{ev[0].kind} {svc} {ev[0].description}".strip() if ev else svc
        return f"likely cause: {what} (no metrics of its own; score {score:.2f})"
    top = analysis.nodes[root_metric(analysis, j)]
    parts = [_label(top) + f" (unexplained deviation {top.residual:.1f}σ)"]
    for link in links:
        eff = link["effect"]
        e = link["evidence"]
        lag = e["lag_s"]
        lag_txt = f", {lag:+.0f} s" if lag is not None else ""
        parts.append(
            f"{eff['service']} {eff['metric']}"
            f" ({100 * e['effect_explained_by_cause']:.0f}% explained{lag_txt})"
        )
    text = " ← ".join(reversed(parts))
    if (ev := analysis.event_boost.get(svc)) is not None and analysis.onset_time is not None:
        e0 = ev[0]
        dt = analysis.onset_time - e0.time
        desc = f" {e0.description}" if e0.description else ""
        text += f", starting {dt:.0f} s after {e0.kind} {e0.service}{desc}"
    onset = analysis.onset_time
    if onset is not None:
        text += f"; onset {analysis.onset_source} at {onset:.0f}{_when(top.onset, onset)}"
    text += f"; graph: {analysis.graph_source}"
    return text
