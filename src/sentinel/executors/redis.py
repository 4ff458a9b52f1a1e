"""The Redis executor: ``flush_redis_cache`` on named clusters, at most once, with a marker key.

Two forms, exactly one per action:

- ``db``: ``FLUSHDB ASYNC`` on that db inside one MULTI/EXEC with ``SET`` of the marker
  ``sentinel:action:<idempotency key>`` (TTL 7 days), so the flush and its proof commit
  atomically. ASYNC empties the db at once and frees the memory in the background, so the
  command returns quickly and the timeout stays meaningful on a large db.
- ``key_pattern``: ``SCAN MATCH`` (never ``KEYS``) + ``UNLINK`` in batches in the cluster
  URL's db, at most ``max_keys`` keys (``truncated`` says the limit stopped it), then the
  marker. Other actions' markers are never deleted by a pattern.

The marker's value is the action's result as JSON; ``reconcile`` returns it when the
marker exists and None when it does not (a partial SCAN delete may have happened, so the
action must not be re-run blindly). Connect and every command time out; the client never
retries on its own. Bad input is refused (``ok: False``), never raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from sentinel.executors.base import (
    FLUSH_REDIS_CACHE,
    ActionCall,
    Stopwatch,
    envelope,
    error_text,
    parse_action,
    refused,
    unsupported_action,
)

log = logging.getLogger("sentinel.executors.redis")

MARKER_PREFIX = "sentinel:action:"
MARKER_TTL_SECONDS = 7 * 24 * 3600
SAMPLE_KEYS = 20

_MARKER_PREFIX_B = MARKER_PREFIX.encode()


def marker_key(idempotency_key: str) -> str:
    """The key whose presence proves the action under this idempotency key completed."""
    return f"{MARKER_PREFIX}{idempotency_key}"


def _key_text(key: bytes) -> str:
    return key.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class _Request:
    """A validated flush_redis_cache call."""

    call: ActionCall
    cluster: str
    db: int
    key_pattern: str | None


@dataclass
class _DeleteStats:
    """What a SCAN + UNLINK pass did (possibly partially, when ``error`` is set)."""

    scan_calls: int = 0
    unlink_batches: int = 0
    keys_matched: int = 0
    keys_deleted: int = 0
    markers_skipped: int = 0
    truncated: bool = False
    sample_deleted_keys: list[str] = field(default_factory=list)
    error: str | None = None
    unlink_in_doubt: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "scan_calls": self.scan_calls,
            "unlink_batches": self.unlink_batches,
            "keys_matched": self.keys_matched,
            "keys_deleted": self.keys_deleted,
            "markers_skipped": self.markers_skipped,
            "truncated": self.truncated,
            "sample_deleted_keys": list(self.sample_deleted_keys),
        }


class RedisExecutor:
    """Runs ``flush_redis_cache`` against configured Redis clusters (name -> redis URL)."""

    name = "redis"
    supported_actions: frozenset[str] = frozenset({FLUSH_REDIS_CACHE})

    def __init__(
        self,
        clusters: Mapping[str, str],
        timeout_seconds: float = 5.0,
        scan_count: int = 500,
        max_keys: int = 100_000,
        marker_ttl_seconds: int = MARKER_TTL_SECONDS,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be > 0")
        if scan_count < 1 or max_keys < 1 or marker_ttl_seconds < 1:
            raise ValueError("scan_count, max_keys and marker_ttl_seconds must be >= 1")
        self.timeout_seconds = float(timeout_seconds)
        self.scan_count = scan_count
        self.max_keys = max_keys
        self.marker_ttl_seconds = marker_ttl_seconds
        self._urls = dict(clusters)
        self._default_db: dict[str, int] = {}
        self._endpoints: dict[str, str] = {}
        for cluster, url in self._urls.items():
            try:
                pool = redis.ConnectionPool.from_url(url)
            except ValueError as exc:
                # The URL may hold a password: name the cluster, never echo the URL.
                raise ValueError(f"redis cluster {cluster!r}: invalid URL ({exc})") from None
            kw = pool.connection_kwargs
            self._default_db[cluster] = int(kw.get("db") or 0)
            self._endpoints[cluster] = _endpoint(pool)

    # -- the Executor port ---------------------------------------------------------------

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Flush a db or delete a key pattern; the result says exactly what was sent and done."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            return req
        if req.key_pattern is None:
            return self._flush_db(req, idempotency_key)
        return self._delete_pattern(req, idempotency_key)

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None:
        """The recorded result if the marker exists; None when it cannot tell."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            if req.get("config_dependent"):
                # The cluster map may have changed since the call: do not claim it never ran.
                return None
            return {**req, "reconciled": True}
        marker = marker_key(idempotency_key)
        try:
            with self._connect(req.cluster, req.db) as client:
                stored = self._read_marker(client, marker)
        except RedisError as exc:
            log.warning("reconcile %s: cannot read marker: %s", idempotency_key, error_text(exc))
            return None
        if stored is None:
            return None
        # An unreadable marker (no fields) still proves completion; a readable one must
        # describe this very action.
        recorded = (stored.get("action_id"), stored.get("params"))
        if "action_id" in stored and recorded != (req.call.action_id, req.call.params):
            log.warning("reconcile %s: marker records a different action", idempotency_key)
            return None
        return {**stored, "reconciled": True, "reconciled_from": f"marker {marker}"}

    # -- read-only facts for the policy -------------------------------------------------

    def inventory(self) -> dict[str, dict[str, Any]]:
        """Per cluster: its dbs (CONFIG GET databases, else INFO keyspace) and reachability."""
        out: dict[str, dict[str, Any]] = {}
        for cluster in sorted(self._urls):
            entry: dict[str, Any] = {"endpoint": self._endpoints[cluster]}
            default_db = self._default_db[cluster]
            try:
                with self._connect(cluster, default_db) as client:
                    dbs, source = _databases(client, default_db)
                entry.update(reachable=True, dbs=dbs, dbs_source=source)
            except RedisError as exc:
                entry.update(reachable=False, dbs=[], error=error_text(exc))
            out[cluster] = entry
        return out

    # -- validation -----------------------------------------------------------------------

    def _validate(self, action: dict[str, Any], key: str) -> _Request | dict[str, Any]:
        call = parse_action(action)
        if not isinstance(call, ActionCall):
            return refused(self.name, action, key, call)
        if call.action_id not in self.supported_actions:
            return unsupported_action(self.name, action, key, self.supported_actions)
        if not isinstance(key, str) or not key:
            return refused(self.name, action, key, "idempotency_key must be a non-empty string")
        p = call.params
        unknown = sorted(set(p) - {"cluster", "db", "key_pattern"})
        if unknown:
            return refused(self.name, action, key, f"unknown parameters {unknown}")
        cluster = p.get("cluster")
        if not isinstance(cluster, str) or not cluster:
            return refused(self.name, action, key, "params.cluster must be a non-empty string")
        db, pattern = p.get("db"), p.get("key_pattern")
        if (db is None) == (pattern is None):
            return refused(
                self.name, action, key, "give exactly one of params.db and params.key_pattern"
            )
        if db is not None and (isinstance(db, bool) or not isinstance(db, int) or db < 0):
            return refused(self.name, action, key, f"params.db must be an integer >= 0, got {db!r}")
        if pattern is not None and (not isinstance(pattern, str) or not pattern):
            return refused(self.name, action, key, "params.key_pattern must be a non-empty string")
        if cluster not in self._urls:
            return refused(
                self.name,
                action,
                key,
                f"unknown redis cluster {cluster!r}; configured: {sorted(self._urls)}",
                config_dependent=True,
            )
        return _Request(
            call=call,
            cluster=cluster,
            db=db if db is not None else self._default_db[cluster],
            key_pattern=pattern,
        )

    # -- the two forms ------------------------------------------------------------------

    def _base(self, req: _Request, key: str, mode: str) -> dict[str, Any]:
        return {
            **envelope(
                self.name,
                {
                    "action_id": req.call.action_id,
                    "params": req.call.params,
                    "target": req.call.target,
                },
                key,
            ),
            "cluster": req.cluster,
            "endpoint": self._endpoints[req.cluster],
            "db": req.db,
            "key_pattern": req.key_pattern,
            "mode": mode,
            "marker_key": marker_key(key),
            "marker_ttl_seconds": self.marker_ttl_seconds,
            "timeout_seconds": self.timeout_seconds,
        }

    def _flush_db(self, req: _Request, key: str) -> dict[str, Any]:
        sw = Stopwatch()
        marker = marker_key(key)
        base = self._base(req, key, "flushdb")
        commands: list[str] = [f"SELECT {req.db} (on connect)"]
        failed = {"ok": False, **base, "commands": commands, "may_have_run": False}
        with self._connect(req.cluster, req.db) as client:
            try:
                commands.append("PING")
                client.ping()
                commands.append(f"GET {marker}")
                prior = self._read_marker(client, marker)
            except RedisError as exc:
                return {**failed, "stage": "connect", "error": error_text(exc), **sw.stamp()}
            if prior is not None:
                return {**prior, "replayed": True, "reconciled_from": f"marker {marker}"}
            tx = [
                "MULTI",
                "DBSIZE",
                "FLUSHDB ASYNC",
                f"SET {marker} <result summary JSON> EX {self.marker_ttl_seconds}",
                "EXEC",
            ]
            commands.extend(tx)
            summary = {
                "ok": True,
                **base,
                "commands": list(commands),
                "started_at": sw.started_at,
                "note": "summary written in the same MULTI/EXEC as FLUSHDB",
            }
            pipe = client.pipeline(transaction=True)
            pipe.dbsize()
            pipe.flushdb(asynchronous=True)
            pipe.set(marker, json.dumps(summary), ex=self.marker_ttl_seconds)
            try:
                replies = pipe.execute()
            except RedisError as exc:
                return self._after_tx_error(req, key, exc, failed, sw)
            keys_before = int(replies[0])
            result: dict[str, Any] = {
                "ok": True,
                **base,
                "commands": commands,
                "keys_before": keys_before,
                "keys_flushed": keys_before,
                "transaction_replies": [keys_before, bool(replies[1]), bool(replies[2])],
                "may_have_run": True,
            }
            commands.append("DBSIZE")
            try:
                # Counts the marker itself, and anything written since EXEC.
                result["keys_after"] = int(client.dbsize())
            except RedisError as exc:
                result["keys_after"] = None
                result["keys_after_error"] = error_text(exc)
            commands.append(f"SET {marker} <this result JSON> XX KEEPTTL")
            result.update(sw.stamp())
            try:
                client.set(marker, json.dumps(result), xx=True, keepttl=True)
            except RedisError as exc:
                # The summary written in the transaction still proves the flush.
                result["marker_update_error"] = error_text(exc)
            return result

    def _after_tx_error(
        self,
        req: _Request,
        key: str,
        exc: RedisError,
        failed: dict[str, Any],
        sw: Stopwatch,
    ) -> dict[str, Any]:
        """EXEC's reply was lost or refused: the marker (same transaction) says if it ran."""
        marker = marker_key(key)
        try:
            with self._connect(req.cluster, req.db) as check:
                stored = self._read_marker(check, marker)
        except RedisError as check_exc:
            stored = None
            failed = {**failed, "marker_check_error": error_text(check_exc)}
        if stored is not None:
            return {
                **stored,
                "transaction_error": error_text(exc),
                "confirmed_by": f"marker {marker} written in the same transaction",
                **sw.stamp(),
            }
        # A refused transaction (EXECABORT, READONLY, NOAUTH...) ran nothing; a lost
        # connection or timeout may still have reached the server.
        return {
            **failed,
            "stage": "transaction",
            "error": error_text(exc),
            "may_have_run": not isinstance(exc, ResponseError),
            **sw.stamp(),
        }

    def _delete_pattern(self, req: _Request, key: str) -> dict[str, Any]:
        assert req.key_pattern is not None
        sw = Stopwatch()
        marker = marker_key(key)
        base = self._base(req, key, "scan_unlink")
        base.update(scan_count=self.scan_count, max_keys=self.max_keys)
        commands: list[str] = [f"SELECT {req.db} (on connect)"]
        failed = {"ok": False, **base, "commands": commands, "may_have_run": False}
        with self._connect(req.cluster, req.db) as client:
            try:
                commands.append("PING")
                client.ping()
                commands.append(f"GET {marker}")
                prior = self._read_marker(client, marker)
                commands.append("DBSIZE")
                keys_before = int(client.dbsize())
            except RedisError as exc:
                return {**failed, "stage": "connect", "error": error_text(exc), **sw.stamp()}
            if prior is not None:
                return {**prior, "replayed": True, "reconciled_from": f"marker {marker}"}
            stats = self._scan_unlink(client, req.key_pattern)
            commands.append(
                f"SCAN <cursor> MATCH {req.key_pattern} COUNT {self.scan_count} x{stats.scan_calls}"
            )
            commands.append(f"UNLINK <up to {self.scan_count} keys> x{stats.unlink_batches}")
            if stats.error is not None:
                return {
                    **failed,
                    **stats.as_dict(),
                    "keys_before": keys_before,
                    "stage": "scan_unlink",
                    "error": stats.error,
                    "may_have_run": stats.keys_deleted > 0 or stats.unlink_in_doubt,
                    "partial": stats.keys_deleted > 0 or stats.unlink_in_doubt,
                    **sw.stamp(),
                }
            result: dict[str, Any] = {
                "ok": True,
                **base,
                "commands": commands,
                "keys_before": keys_before,
                **stats.as_dict(),
                "may_have_run": True,
            }
            if stats.truncated:
                result["note"] = (
                    f"stopped at max_keys={self.max_keys} before the scan finished;"
                    " matching keys may remain"
                )
            commands.append("DBSIZE")
            try:
                result["keys_after"] = int(client.dbsize())
            except RedisError as exc:
                result["keys_after"] = None
                result["keys_after_error"] = error_text(exc)
            commands.append(f"SET {marker} <this result JSON> EX {self.marker_ttl_seconds}")
            result.update(sw.stamp())
            try:
                client.set(marker, json.dumps(result), ex=self.marker_ttl_seconds)
            except RedisError as exc:
                # The keys are gone; only the proof is missing (reconcile would say None).
                result["marker_error"] = error_text(exc)
            return result

    def _scan_unlink(self, client: redis.Redis, pattern: str) -> _DeleteStats:
        """Delete keys matching ``pattern`` with SCAN + UNLINK, bounded by max_keys; no marker."""
        stats = _DeleteStats()
        seen: set[bytes] = set()
        cursor = 0
        try:
            while True:
                cursor, page = client.scan(cursor=cursor, match=pattern, count=self.scan_count)
                stats.scan_calls += 1
                fresh_set: set[bytes] = set()
                fresh: list[bytes] = []
                for item in page:
                    k = item if isinstance(item, bytes) else str(item).encode()
                    if k.startswith(_MARKER_PREFIX_B):
                        stats.markers_skipped += 1
                    elif k not in seen and k not in fresh_set:
                        fresh.append(k)
                        fresh_set.add(k)
                stats.keys_matched += len(fresh)
                room = self.max_keys - len(seen)
                if len(fresh) > room:
                    fresh = fresh[:room]
                    stats.truncated = True
                for i in range(0, len(fresh), self.scan_count):
                    batch = fresh[i : i + self.scan_count]
                    stats.unlink_in_doubt = True
                    stats.keys_deleted += int(client.unlink(*batch))
                    stats.unlink_in_doubt = False
                    stats.unlink_batches += 1
                    seen.update(batch)
                    room = SAMPLE_KEYS - len(stats.sample_deleted_keys)
                    stats.sample_deleted_keys.extend(_key_text(k) for k in batch[:room])
                if cursor == 0:
                    break
                if len(seen) >= self.max_keys:
                    stats.truncated = True
                    break
        except RedisError as exc:
            stats.error = error_text(exc)
        return stats

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _connect(self, cluster: str, db: int) -> Iterator[redis.Redis]:
        """A client for one db of a cluster: connect and read timeouts, no automatic retry."""
        pool = redis.ConnectionPool.from_url(self._urls[cluster])
        # Set after parsing so a URL query string cannot loosen the timeouts or add retries.
        pool.connection_kwargs.update(
            db=db,
            socket_timeout=self.timeout_seconds,
            socket_connect_timeout=self.timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            retry_on_error=[],
        )
        client = redis.Redis(connection_pool=pool)
        try:
            yield client
        finally:
            client.close()
            pool.disconnect()

    @staticmethod
    def _read_marker(client: redis.Redis, marker: str) -> dict[str, Any] | None:
        raw = client.get(marker)
        if raw is None:
            return None
        text = (
            raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else str(raw)
        )
        try:
            stored = json.loads(text)
        except ValueError:
            stored = None
        if not isinstance(stored, dict):
            # Present but unreadable: it still proves the action completed.
            return {
                "ok": True,
                "marker_value": text[:2000],
                "note": "marker value is not a JSON object",
            }
        return stored


def _endpoint(pool: redis.ConnectionPool) -> str:
    """Where a pool connects, without credentials."""
    kw = pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    return f"{scheme}://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"


def _databases(client: redis.Redis, default_db: int) -> tuple[list[int], str]:
    """The db numbers a server has: CONFIG GET databases, or the non-empty ones from INFO."""
    try:
        conf = client.config_get("databases")
        for name, value in conf.items():
            key = name.decode() if isinstance(name, bytes) else str(name)
            if key == "databases" and value is not None:
                return list(range(int(value))), "config"
    except (ResponseError, ValueError):
        # Managed Redis often disables CONFIG; fall back to the keyspace section.
        pass
    info = client.info("keyspace")
    dbs = {default_db}
    for section in info:
        if isinstance(section, str) and section.startswith("db") and section[2:].isdigit():
            dbs.add(int(section[2:]))
    return sorted(dbs), "info keyspace"
