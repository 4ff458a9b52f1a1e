"""Pure units: chain hashing, canonical JSON, redaction, Alertmanager normalization, PromQL helpers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from sentinel.audit.chain import GENESIS, canonical, chain_hash
from sentinel.context.base import AlertContext, ContextRequest
from sentinel.context.prometheus import PrometheusContext, expr_from_generator_url
from sentinel.core.config import PrometheusSettings
from sentinel.core.redact import REDACTED, redact
from sentinel.ingest.schemas import AlertmanagerWebhook, normalize_alertmanager, service_of
from tests.conftest import am_alert, am_payload


def test_chain_hash_is_the_documented_formula() -> None:
    body = b'{"a":1}'
    expected = hashlib.sha256(b"\x00" + bytes(32) + (1).to_bytes(8, "big") + body).hexdigest()
    assert chain_hash(GENESIS, 1, body) == expected
    assert chain_hash(GENESIS, 2, body) != expected


def test_canonical_json_is_rfc8785() -> None:
    # RFC 8785: keys sorted by UTF-16 code units, shortest number form, no whitespace.
    assert canonical({"b": 1, "a": [1.0, 2.5, 1e21], "é": "x"}) == (
        b'{"a":[1,2.5,1e+21],"b":1,"\xc3\xa9":"x"}'
    )


def test_redaction() -> None:
    doc = {
        "api_key": "abc",
        "nested": [{"Password": "p"}, "Authorization: Bearer abcdefghijklmnopq"],
        "fine": "value",
        "token_count": 5,
    }
    out = redact(doc)
    assert out["api_key"] == REDACTED and out["nested"][0]["Password"] == REDACTED
    assert "abcdefghijklmnopq" not in out["nested"][1] and out["fine"] == "value"
    assert doc["api_key"] == "abc"  # the input is not modified


def test_service_label_precedence() -> None:
    assert service_of({"service": "a", "app": "b", "job": "c"}) == "a"
    assert service_of({"app": "b", "job": "c"}) == "b"
    assert service_of({"job": "c"}) == "c"
    assert service_of({}) == "unknown"


def test_alertmanager_normalization() -> None:
    raw = am_payload(am_alert("X", "svc", fingerprint="f1", severity="page"))
    raw["unknownTopLevel"] = {"tolerated": True}
    p = AlertmanagerWebhook.model_validate(raw)
    (a,) = normalize_alertmanager(p)
    assert (a.alertname, a.service, a.fingerprint, a.severity) == ("X", "svc", "f1", "page")
    assert a.ends_at is None and a.starts_at == datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    raw = am_payload(am_alert())
    raw["alerts"][0]["fingerprint"] = ""
    (b,) = normalize_alertmanager(AlertmanagerWebhook.model_validate(raw))
    assert len(b.fingerprint) == 16  # derived from the labels


def test_alertmanager_rejects_wrong_types() -> None:
    raw = am_payload(am_alert())
    raw["truncatedAlerts"] = "0"
    with pytest.raises(ValidationError):
        AlertmanagerWebhook.model_validate(raw)


def test_expr_from_generator_url() -> None:
    url = "http://p:9090/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+1&g0.tab=1"
    assert expr_from_generator_url(url) == "rate(x[5m]) > 1"
    assert expr_from_generator_url("http://p:9090/graph") is None
    assert expr_from_generator_url(None) is None


def test_prometheus_queries_escape_the_service() -> None:
    ctx = PrometheusContext(
        PrometheusSettings(url="http://127.0.0.1:1", service_queries={"up": 'up{job="$service"}'})
    )
    req = ContextRequest(
        incident_id="i",
        service='evil"} or vector(1) #',
        alerts=[AlertContext(alertname="A", labels={}, generator_url="http://p/graph?g0.expr=up")],
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    qs = dict(ctx.queries_for(req))
    assert qs["alert:A"] == "up"
    assert qs["up"] == 'up{job="evil\\"} or vector(1) #"}'
    ctx.close()


def test_new_id_is_a_time_ordered_uuid7() -> None:
    import time
    import uuid

    from sentinel.core.ids import new_id

    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # creation order is string order, within one process
    for s in ids[:: len(ids) // 50]:
        u = uuid.UUID(s)
        assert str(u) == s
        assert u.version == 7 and u.variant == uuid.RFC_4122
        ms = u.int >> 80
        # 20,000 ids may borrow a few milliseconds ahead (4,096 a millisecond at most)
        assert before <= ms <= after + len(ids) // 4096 + 1
