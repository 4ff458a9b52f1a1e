"""RedisExecutor against the real Redis on 127.0.0.1:6379.

Whole-db tests own db 14 (flushed before and after); key-pattern tests work in db 13
under a random key prefix and delete only their own keys. Nothing here touches db 0.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from sentinel.executors.redis import MARKER_TTL_SECONDS, RedisExecutor, marker_key
from sentinel.flows.ports import Executor
from tests.conftest import free_port, need, port_open

pytestmark = pytest.mark.redis

FLUSH_DB = 14
PATTERN_DB = 13
URL = f"redis://127.0.0.1:6379/{PATTERN_DB}"


def flush_action(cluster: str = "cache", **params: Any) -> dict[str, Any]:
    params = {"cluster": cluster, **params}
    where = f"db/{params['db']}" if "db" in params else f"keys/{params.get('key_pattern')}"
    return {
        "action_id": "flush_redis_cache",
        "params": params,
        "target": f"redis:{cluster}/{where}",
    }


def new_key() -> str:
    return f"wf-{uuid.uuid4().hex[:12]}:execute"


@pytest.fixture
def flush_db() -> Iterator[redis.Redis]:
    """db 14, empty, this test's alone; emptied again afterwards."""
    need(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    r = redis.Redis(host="127.0.0.1", port=6379, db=FLUSH_DB)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A random key prefix in db 13; every key under it (and our markers) removed afterwards."""
    need(port_open("127.0.0.1", 6379), "Redis on 127.0.0.1:6379")
    p = f"sntest:{uuid.uuid4().hex[:10]}:"
    yield p
    r = redis.Redis(host="127.0.0.1", port=6379, db=PATTERN_DB)
    for match in (f"{p}*", f"sentinel:action:{p}*"):
        keys = list(r.scan_iter(match=match, count=1000))
        if keys:
            r.delete(*keys)
    r.close()


@pytest.fixture
def pdb() -> Iterator[redis.Redis]:
    r = redis.Redis(host="127.0.0.1", port=6379, db=PATTERN_DB)
    yield r
    r.close()


def count(r: redis.Redis, match: str) -> int:
    return sum(1 for _ in r.scan_iter(match=match, count=1000))


def stored_marker(r: redis.Redis, key: str) -> dict[str, Any]:
    raw = r.get(marker_key(key))
    assert raw is not None, "marker missing"
    value = json.loads(raw)
    assert isinstance(value, dict)
    return value


# -- FLUSHDB ---------------------------------------------------------------------------------


def test_flush_db_empties_the_db_and_writes_the_marker(
    flush_db: redis.Redis, prefix: str, pdb: redis.Redis
) -> None:
    flush_db.mset({f"k{i}": i for i in range(50)})
    pdb.set(f"{prefix}other-db", 1)  # the cluster URL's db is not the one flushed
    ex: Executor = RedisExecutor({"cache": URL})
    key = new_key()
    res = ex.execute(flush_action(db=FLUSH_DB), key)

    assert res["ok"] is True, res
    assert res["mode"] == "flushdb"
    assert res["db"] == FLUSH_DB and res["cluster"] == "cache"
    assert res["keys_before"] == 50 and res["keys_flushed"] == 50
    assert res["keys_after"] == 1  # only the marker
    assert flush_db.dbsize() == 1 and flush_db.exists("k0") == 0
    for cmd in ("MULTI", "DBSIZE", "FLUSHDB ASYNC", "EXEC", f"SET {marker_key(key)}"):
        assert any(c.startswith(cmd) for c in res["commands"]), cmd
    assert res["duration_ms"] >= 0 and res["started_at"] <= res["finished_at"]
    assert res["endpoint"] == "redis://127.0.0.1:6379"
    assert pdb.exists(f"{prefix}other-db") == 1

    ttl = flush_db.ttl(marker_key(key))
    assert 0 < ttl <= MARKER_TTL_SECONDS
    stored = stored_marker(flush_db, key)
    assert stored == json.loads(json.dumps(res))


def test_flush_db_with_the_same_key_is_not_repeated(flush_db: redis.Redis) -> None:
    ex = RedisExecutor({"cache": URL})
    key = new_key()
    flush_db.set("before", 1)
    first = ex.execute(flush_action(db=FLUSH_DB), key)
    assert first["ok"] is True
    flush_db.set("written-after-the-flush", 1)
    again = ex.execute(flush_action(db=FLUSH_DB), key)
    assert again["ok"] is True and again["replayed"] is True
    assert again["keys_flushed"] == first["keys_flushed"] == 1
    assert flush_db.exists("written-after-the-flush") == 1


def test_lost_exec_reply_is_confirmed_by_the_marker(
    flush_db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXEC ran but its reply was lost: the marker from the same transaction proves it."""
    real = redis.client.Pipeline.execute

    def lose_reply(self: redis.client.Pipeline, raise_on_error: bool = True) -> list[Any]:
        real(self, raise_on_error)
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(redis.client.Pipeline, "execute", lose_reply)
    flush_db.mset({"a": 1, "b": 2})
    key = new_key()
    res = RedisExecutor({"cache": URL}).execute(flush_action(db=FLUSH_DB), key)
    assert res["ok"] is True
    assert res["transaction_error"] == "ConnectionError: Connection closed by server."
    assert "same transaction" in res["confirmed_by"]
    assert flush_db.dbsize() == 1


def test_exec_that_never_arrived_is_reported_as_may_have_run(
    flush_db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout with no marker: the executor cannot tell, so it says so and does not retry."""

    def time_out(self: redis.client.Pipeline, raise_on_error: bool = True) -> list[Any]:
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(redis.client.Pipeline, "execute", time_out)
    flush_db.set("a", 1)
    res = RedisExecutor({"cache": URL}).execute(flush_action(db=FLUSH_DB), new_key())
    assert res["ok"] is False
    assert res["stage"] == "transaction"
    assert res["may_have_run"] is True
    assert res["error"] == "TimeoutError: Timeout reading from socket"
    assert flush_db.exists("a") == 1


def test_refused_transaction_did_not_run(
    flush_db: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def abort(self: redis.client.Pipeline, raise_on_error: bool = True) -> list[Any]:
        raise redis.ResponseError("EXECABORT Transaction discarded because of previous errors.")

    monkeypatch.setattr(redis.client.Pipeline, "execute", abort)
    res = RedisExecutor({"cache": URL}).execute(flush_action(db=FLUSH_DB), new_key())
    assert res["ok"] is False and res["may_have_run"] is False
    assert "EXECABORT" in res["error"]


def test_db_out_of_range_fails_without_running(flush_db: redis.Redis) -> None:
    res = RedisExecutor({"cache": URL}).execute(flush_action(db=4096), new_key())
    assert res["ok"] is False
    assert res["may_have_run"] is False
    assert "DB index is out of range" in res["error"]


# -- SCAN + UNLINK ---------------------------------------------------------------------------


def test_key_pattern_deletes_only_matching_keys_across_scan_pages(
    prefix: str, pdb: redis.Redis
) -> None:
    pdb.mset({f"{prefix}cache:{i}": i for i in range(1200)})
    pdb.mset({f"{prefix}keep:{i}": i for i in range(300)})
    pdb.set(f"{prefix}cachex", 1)  # shares the literal prefix but not the pattern
    ex = RedisExecutor({"cache": URL}, scan_count=50)
    key = f"{prefix}wf:execute"
    pattern = f"{prefix}cache:*"

    res = ex.execute(flush_action(key_pattern=pattern), key)

    assert res["ok"] is True, res
    assert res["mode"] == "scan_unlink"
    assert res["db"] == PATTERN_DB  # the cluster URL's db
    assert res["keys_matched"] == res["keys_deleted"] == 1200
    assert res["truncated"] is False
    assert res["scan_calls"] > 1200 // 50
    assert res["unlink_batches"] > 1
    assert 0 < len(res["sample_deleted_keys"]) <= 20
    assert all(k.startswith(f"{prefix}cache:") for k in res["sample_deleted_keys"])
    assert count(pdb, pattern) == 0
    assert count(pdb, f"{prefix}keep:*") == 300
    assert pdb.exists(f"{prefix}cachex") == 1
    assert any(c.startswith(f"SCAN <cursor> MATCH {pattern} COUNT 50") for c in res["commands"])
    assert not any(c.startswith("KEYS") for c in res["commands"])
    assert stored_marker(pdb, key)["keys_deleted"] == 1200
    assert 0 < pdb.ttl(marker_key(key)) <= MARKER_TTL_SECONDS


def test_key_pattern_stops_at_max_keys_and_says_so(prefix: str, pdb: redis.Redis) -> None:
    pdb.mset({f"{prefix}s:{i}": i for i in range(250)})
    ex = RedisExecutor({"cache": URL}, scan_count=30, max_keys=100)
    res = ex.execute(flush_action(key_pattern=f"{prefix}s:*"), f"{prefix}wf:execute")
    assert res["ok"] is True
    assert res["truncated"] is True
    assert res["keys_deleted"] == 100
    assert res["max_keys"] == 100
    assert "max_keys=100" in res["note"]
    assert count(pdb, f"{prefix}s:*") == 150


def test_a_pattern_never_deletes_other_actions_markers(flush_db: redis.Redis) -> None:
    flush_db.set("sentinel:action:some-other-workflow:execute", "{}")
    flush_db.mset({f"x{i}": i for i in range(10)})
    ex = RedisExecutor({"cache": f"redis://127.0.0.1:6379/{FLUSH_DB}"})
    res = ex.execute(flush_action(key_pattern="*"), new_key())
    assert res["ok"] is True
    assert res["keys_deleted"] == 10
    assert res["markers_skipped"] >= 1
    assert flush_db.exists("sentinel:action:some-other-workflow:execute") == 1


# -- reconcile -------------------------------------------------------------------------------


def test_reconcile_before_any_run_is_none(flush_db: redis.Redis, prefix: str) -> None:
    ex = RedisExecutor({"cache": URL})
    assert ex.reconcile(flush_action(db=FLUSH_DB), new_key()) is None
    assert ex.reconcile(flush_action(key_pattern=f"{prefix}*"), new_key()) is None


def test_reconcile_after_flush_db_returns_the_recorded_result(flush_db: redis.Redis) -> None:
    flush_db.mset({"a": 1, "b": 2})
    ex = RedisExecutor({"cache": URL})
    key = new_key()
    done = ex.execute(flush_action(db=FLUSH_DB), key)
    # A fresh executor (a new process after a crash) sees the same thing.
    seen = RedisExecutor({"cache": URL}).reconcile(flush_action(db=FLUSH_DB), key)
    assert seen is not None
    assert seen["ok"] is True and seen["reconciled"] is True
    assert seen["keys_flushed"] == done["keys_flushed"] == 2
    assert seen["reconciled_from"] == f"marker {marker_key(key)}"
    assert {k: v for k, v in seen.items() if k not in ("reconciled", "reconciled_from")} == done


def test_reconcile_after_pattern_delete_returns_the_recorded_result(
    prefix: str, pdb: redis.Redis
) -> None:
    pdb.mset({f"{prefix}c:{i}": i for i in range(40)})
    ex = RedisExecutor({"cache": URL})
    key = f"{prefix}wf:execute"
    done = ex.execute(flush_action(key_pattern=f"{prefix}c:*"), key)
    seen = ex.reconcile(flush_action(key_pattern=f"{prefix}c:*"), key)
    assert seen is not None and seen["reconciled"] is True
    assert seen["keys_deleted"] == done["keys_deleted"] == 40


def test_reconcile_with_only_the_transaction_summary_still_says_done(
    flush_db: redis.Redis,
) -> None:
    """A crash between EXEC and the marker's enrichment leaves the in-transaction summary."""
    ex = RedisExecutor({"cache": URL})
    key = new_key()
    ex.execute(flush_action(db=FLUSH_DB), key)
    summary = stored_marker(flush_db, key)
    for k in ("keys_before", "keys_flushed", "keys_after", "finished_at"):
        summary.pop(k, None)
    flush_db.set(marker_key(key), json.dumps(summary), keepttl=True)
    seen = ex.reconcile(flush_action(db=FLUSH_DB), key)
    assert seen is not None and seen["ok"] is True and seen["mode"] == "flushdb"


def test_reconcile_after_a_crash_mid_scan_delete_is_none(prefix: str, pdb: redis.Redis) -> None:
    pdb.mset({f"{prefix}c:{i}": i for i in range(120)})
    ex = RedisExecutor({"cache": URL}, scan_count=25, max_keys=60)
    key = f"{prefix}wf:execute"
    # The delete ran (partly) and the process died before writing the marker.
    with ex._connect("cache", PATTERN_DB) as client:
        stats = ex._scan_unlink(client, f"{prefix}c:*")
    assert stats.keys_deleted == 60 and stats.error is None
    assert pdb.exists(marker_key(key)) == 0
    assert ex.reconcile(flush_action(key_pattern=f"{prefix}c:*"), key) is None


def test_reconcile_ignores_a_marker_recording_a_different_action(flush_db: redis.Redis) -> None:
    ex = RedisExecutor({"cache": URL})
    key = new_key()
    ex.execute(flush_action(db=FLUSH_DB), key)
    assert ex.reconcile(flush_action(db=FLUSH_DB), key) is not None
    other = RedisExecutor({"cache": f"redis://127.0.0.1:6379/{FLUSH_DB}"})
    assert other.reconcile(flush_action(key_pattern="other:*"), key) is None


# -- refusals and failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (flush_action("nope", db=FLUSH_DB), "unknown redis cluster 'nope'"),
        (
            {"action_id": "restart_kubernetes_pod", "params": {"namespace": "a", "pod": "b"}},
            "does not handle action 'restart_kubernetes_pod'",
        ),
        (flush_action(db=FLUSH_DB, key_pattern="a:*"), "exactly one of params.db and"),
        (flush_action(), "exactly one of params.db and"),
        (flush_action(db=-1), "params.db must be an integer"),
        (flush_action(db=True), "params.db must be an integer"),
        (flush_action(db="3"), "params.db must be an integer"),
        (flush_action(key_pattern=""), "params.key_pattern must be a non-empty string"),
        (flush_action(db=FLUSH_DB, extra=1), "unknown parameters ['extra']"),
        ({"action_id": "flush_redis_cache", "params": "db=14"}, "params must be a JSON object"),
        ({"params": {}}, "action_id"),
        ("FLUSHALL", "action must be a JSON object"),
    ],
)
def test_bad_input_is_refused_and_touches_nothing(
    flush_db: redis.Redis, action: Any, message: str
) -> None:
    flush_db.set("survivor", 1)
    ex = RedisExecutor({"cache": URL})
    res = ex.execute(action, new_key())
    assert res["ok"] is False
    assert res["refused"] is True and res["may_have_run"] is False
    assert message in res["error"], res["error"]
    assert flush_db.exists("survivor") == 1
    json.dumps(res)


def test_reconcile_of_refused_input(flush_db: redis.Redis) -> None:
    ex = RedisExecutor({"cache": URL})
    bad = ex.reconcile(flush_action(db=FLUSH_DB, key_pattern="x"), new_key())
    assert bad is not None and bad["ok"] is False and bad["reconciled"] is True
    # Unknown cluster depends on configuration, which may have changed since the call.
    assert ex.reconcile(flush_action("gone", db=FLUSH_DB), new_key()) is None


@pytest.mark.parametrize("params", [{"db": FLUSH_DB}, {"key_pattern": "sntest:*"}])
def test_redis_down_fails_fast_with_the_full_error(params: dict[str, Any]) -> None:
    port = free_port()  # bound, then released: nothing listens there
    ex = RedisExecutor({"cache": f"redis://127.0.0.1:{port}/0"}, timeout_seconds=1.0)
    t0 = time.monotonic()
    res = ex.execute(flush_action(**params), new_key())
    assert time.monotonic() - t0 < 3.0
    assert res["ok"] is False
    assert res["may_have_run"] is False and res["stage"] == "connect"
    assert f"connecting to 127.0.0.1:{port}" in res["error"]
    assert "Connection refused" in res["error"]
    assert res["error"].startswith("ConnectionError: ")
    assert ex.reconcile(flush_action(**params), new_key()) is None


def test_unresponsive_redis_times_out_in_bounded_time() -> None:
    """A server that accepts TCP but never answers: the read timeout bounds every call."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        port = srv.getsockname()[1]
        ex = RedisExecutor({"cache": f"redis://127.0.0.1:{port}/0"}, timeout_seconds=1.0)
        t0 = time.monotonic()
        res = ex.execute(flush_action(db=FLUSH_DB), new_key())
        elapsed = time.monotonic() - t0
        assert elapsed < 3.0, elapsed
        assert res["ok"] is False and res["may_have_run"] is False
        assert "Timeout" in res["error"]
        t0 = time.monotonic()
        inv = ex.inventory()
        assert time.monotonic() - t0 < 3.0
        assert inv["cache"]["reachable"] is False


def test_credentials_never_reach_the_result() -> None:
    port = free_port()
    ex = RedisExecutor({"cache": f"redis://admin:s3cretpw@127.0.0.1:{port}/0"}, timeout_seconds=1)
    res = ex.execute(flush_action(db=1), new_key())
    assert res["ok"] is False
    assert "s3cretpw" not in json.dumps(res)
    assert "s3cretpw" not in json.dumps(ex.inventory())
    with pytest.raises(ValueError) as err:
        RedisExecutor({"bad": "http://admin:s3cretpw@127.0.0.1/0"})
    assert "s3cretpw" not in str(err.value) and "'bad'" in str(err.value)


# -- inventory -------------------------------------------------------------------------------


def test_inventory_lists_dbs_and_reachability(flush_db: redis.Redis) -> None:
    configured = int(flush_db.config_get("databases")["databases"])
    port = free_port()
    ex = RedisExecutor({"cache": URL, "down": f"redis://127.0.0.1:{port}/0"}, timeout_seconds=1.0)
    inv = ex.inventory()
    assert set(inv) == {"cache", "down"}
    assert inv["cache"]["reachable"] is True
    assert inv["cache"]["dbs"] == list(range(configured))
    assert inv["cache"]["dbs_source"] == "config"
    assert inv["cache"]["endpoint"] == "redis://127.0.0.1:6379"
    assert inv["down"]["reachable"] is False
    assert inv["down"]["dbs"] == []
    assert "Connection refused" in inv["down"]["error"]
    json.dumps(inv)


class _NoConfigRedis:
    """A server with CONFIG disabled, as many managed Redis services ship."""

    def config_get(self, name: str) -> dict[str, str]:
        raise redis.ResponseError("unknown command 'CONFIG'")

    def info(self, section: str) -> dict[str, Any]:
        return {"db0": {"keys": 3}, "db5": {"keys": 1}}


def test_inventory_falls_back_to_info_keyspace_without_config() -> None:
    from sentinel.executors.redis import _databases

    dbs, source = _databases(_NoConfigRedis(), 2)  # type: ignore[arg-type]
    assert dbs == [0, 2, 5]
    assert source == "info keyspace"
