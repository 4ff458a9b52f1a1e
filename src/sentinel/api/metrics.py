"""Sentinel's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

ALERTS_RECEIVED = Counter(
    "sentinel_alerts_received_total", "Alerts accepted", ["source", "status"], registry=REGISTRY
)
INGEST_SECONDS = Histogram(
    "sentinel_ingest_request_seconds",
    "Time to authenticate, validate and commit an alert delivery",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
INCIDENTS = Gauge(
    "sentinel_incidents", "Incidents by status (read at scrape time)", ["status"], registry=REGISTRY
)
AUDIT_RECORDS = Gauge("sentinel_audit_records", "Audit log length", registry=REGISTRY)
