"""Cache poisoning in a real Redis (db 11): the cart reads it live; deleting the keys heals it."""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from sentinel_sandbox import scenario as scenario_mod
from tests.conftest import need, port_open
from tests.sandbox.conftest import SCENARIOS, StartFn

REDIS_URL = "redis://127.0.0.1:6379/10"  # the demo uses db 11 and tests run in parallel

pytestmark = pytest.mark.redis


def test_poison_and_flush_in_real_redis(start_sandbox: StartFn) -> None:
    need(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    sc = scenario_mod.load(SCENARIOS / "cache-poisoning.yaml")
    prefix = f"sbtest-{uuid.uuid4().hex[:8]}:cart:"
    sc.cache.key_prefix = prefix
    r = redis.Redis.from_url(REDIS_URL)
    try:
        sb, url = start_sandbox(sc, redis_url=REDIS_URL)
        assert len(list(r.scan_iter(match=f"{prefix}*"))) == 50  # seeded healthy carts
        sb.tick(29)
        assert sb.state()["services"]["cart"]["error_ratio"] == 0
        sb.tick(3)  # the scheduled fault fires at t=30
        poisoned = list(r.scan_iter(match=f"{prefix}session:p*"))
        assert len(poisoned) == 300
        assert r.get(poisoned[0]).startswith(b"\x00")
        st = sb.state()
        assert st["cache"]["backend"] == "redis" and st["cache"]["poisoned_keys"] == 300
        assert st["services"]["cart"]["error_ratio"] > 0.5
        assert st["services"]["frontend"]["error_ratio"] > 0.2
        # What Sentinel's flush_redis_cache(key_pattern=...) does: SCAN MATCH + UNLINK.
        for k in list(r.scan_iter(match=f"{prefix}*", count=500)):
            r.unlink(k)
        sb.tick(2)
        st = sb.state()
        assert st["services"]["cart"]["error_ratio"] < 0.01
        assert st["faults"][0]["status"] == "healed"
        # Poison again through the API; deleting only the poisoned keys heals too.
        assert (
            httpx.post(
                f"{url}/sandbox/faults", json={"kind": "cache_poison", "target": "cart", "size": 20}
            ).status_code
            == 201
        )
        sb.tick(2)
        assert sb.state()["services"]["cart"]["error_ratio"] > 0.85  # nothing healthy left
        r.unlink(*list(r.scan_iter(match=f"{prefix}session:p*")))
        sb.tick(2)
        assert sb.state()["services"]["cart"]["error_ratio"] < 0.01
    finally:
        keys = list(r.scan_iter(match=f"{prefix}*"))
        if keys:
            r.unlink(*keys)
        r.close()


def test_missing_redis_does_not_stop_the_sandbox(start_sandbox: StartFn) -> None:
    sb, _ = start_sandbox("cache-poisoning", redis_url="redis://127.0.0.1:1/0")
    sb.tick(2)
    st = sb.state()
    assert st["cache"]["error"] and st["services"]["cart"]["error_ratio"] == 0
