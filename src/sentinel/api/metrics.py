"""Sentinel's own Prometheus metrics.

One process exposes its own registry. Under ``sentinel api --workers N`` every process
writes its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by the CLI before the
processes start; prometheus_client reads it at import) and whichever process answers a
scrape reports all of them: counters and histograms summed over the processes, the
gauges (read from the database at scrape time) as the most recent value.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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
INGEST_BATCH = Histogram(
    "sentinel_ingest_batch_deliveries",
    "Deliveries stored by one commit of the ingest writer",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
INCIDENTS = Gauge(
    "sentinel_incidents",
    "Incidents by status (read at scrape time)",
    ["status"],
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
AUDIT_RECORDS = Gauge(
    "sentinel_audit_records",
    "Audit log length",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)


def exposition() -> bytes:
    """The scrape body: this process's registry, or every API process's samples."""
    if not os.environ.get(MULTIPROC_ENV):
        return generate_latest(REGISTRY)
    merged = CollectorRegistry()
    MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return generate_latest(merged)
