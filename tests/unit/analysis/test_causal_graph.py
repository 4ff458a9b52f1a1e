"""The metric-level graph: kinds, direction of causality, learned parents."""

from __future__ import annotations

import numpy as np

from sentinel.analysis.causal.graph import (
    Kind,
    learn_parents,
    metric_kind,
    parents_from_callgraph,
)


def test_metric_kinds() -> None:
    assert metric_kind("latency") is Kind.LATENCY
    assert metric_kind("p99-duration") is Kind.LATENCY
    assert metric_kind("error-rate") is Kind.ERROR
    assert metric_kind("request-rate") is Kind.LOAD
    assert metric_kind("cpu") is Kind.RESOURCE
    assert metric_kind("mem") is Kind.RESOURCE


def test_causality_runs_from_callee_to_caller() -> None:
    nodes = [("web", "cpu"), ("web", "latency"), ("db", "cpu"), ("db", "latency")]
    parents = parents_from_callgraph(nodes, [("web", "db")])
    assert parents[1] == [0, 3]  # web latency <- web cpu, db latency
    assert parents[3] == [2]  # db latency <- db cpu only
    assert parents[0] == [] and parents[2] == []


def test_single_metric_services_connect_across_kinds() -> None:
    nodes = [("a", "value"), ("b", "x")]
    assert parents_from_callgraph(nodes, [("a", "b")]) == [[1], []]


def test_learned_parents_respect_temporal_precedence() -> None:
    rng = np.random.default_rng(0)
    cause = np.concatenate([np.zeros(100), np.full(100, 5.0)]) + rng.normal(0, 0.3, 200)
    effect = 2 * cause + rng.normal(0, 0.3, 200)
    z = np.column_stack([cause, effect])
    nodes = [("a", "latency"), ("b", "latency")]
    parents = learn_parents(z, nodes, np.array([100.0, 103.0]), np.array([True, True]))
    assert parents == [[], [0]]
