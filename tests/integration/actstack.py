"""Shared setup for the decide-and-act end-to-end tests.

A metrics target whose gauges can be computed live at scrape time (here: from Redis), a
``sentinel serve`` on SQLite with its viewer/approver/ingest tokens, optionally behind a real
Prometheus + Alertmanager pair, and small readers for what the tests assert on: the API,
the side-effect intents table and the durable engine's workflow table.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import create_engine, text

from tests.conftest import (
    ROOT,
    Proc,
    free_port,
    need,
    port_open,
    run_cli,
    sentinel_env,
    wait_for,
    wait_http,
)
from tests.integration.promstack import (
    MetricsTarget,
    Service,
    binaries_present,
    logs_on_failure,
    start_alertmanager,
    start_prometheus,
    stop_all,
)

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_DB = 12  # this module's db; keys live under a random prefix
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
MARKER_PREFIX = "sentinel:action:"


# ---------------------------------------------------------------- scrape target


class LiveMetricsTarget(MetricsTarget):
    """A MetricsTarget whose ``live`` gauges are computed by a callback on every scrape."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[str, Callable[[], float]] = {}

    def set_live(self, key: str, compute: Callable[[], float]) -> None:
        with self._lock:
            self.live[key] = compute

    def render(self) -> str:
        with self._lock:
            live = dict(self.live)
        values = {key: float(compute()) for key, compute in live.items()}  # I/O outside the lock
        with self._lock:
            self.gauges.update(values)
        return super().render()


# ---------------------------------------------------------------- Redis


def count_keys(r: redis.Redis, pattern: str) -> int:
    """Keys matching ``pattern`` (SCAN, never KEYS)."""
    return sum(1 for _ in r.scan_iter(match=pattern, count=1000))


@dataclass
class RedisArea:
    """This test's corner of db 12: a random key prefix, and the incidents whose markers to drop."""

    r: redis.Redis
    prefix: str
    incident_ids: list[str] = field(default_factory=list)

    def seed(self, pattern_prefix: str, n: int) -> None:
        pipe = self.r.pipeline(transaction=False)
        for i in range(n):
            pipe.set(f"{self.prefix}{pattern_prefix}{i}", f"v{i}")
        pipe.execute()

    def count(self, pattern: str) -> int:
        return count_keys(self.r, f"{self.prefix}{pattern}")

    def markers(self, incident_id: str) -> list[str]:
        return [
            k.decode() for k in self.r.scan_iter(match=f"{MARKER_PREFIX}{incident_id}*", count=1000)
        ]

    def cleanup(self) -> None:
        keys = list(self.r.scan_iter(match=f"{self.prefix}*", count=1000))
        for iid in self.incident_ids:
            keys.extend(self.r.scan_iter(match=f"{MARKER_PREFIX}{iid}*", count=1000))
        if keys:
            self.r.delete(*keys)


@contextmanager
def redis_area() -> Iterator[RedisArea]:
    need(port_open(REDIS_HOST, REDIS_PORT), f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    area = RedisArea(r=r, prefix=f"sntact-{uuid.uuid4().hex[:10]}:")
    try:
        yield area
    finally:
        try:
            area.cleanup()
        finally:
            r.close()


# ---------------------------------------------------------------- Sentinel API


class Api:
    """Sentinel's HTTP API under one bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.c = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

    def get(self, path: str, **params: str) -> Any:
        r = self.c.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.c.post(path, json=body)

    def incidents(self, **params: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/incidents", limit="100", **params)["items"])

    def incident(self, incident_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/incidents/{incident_id}"))

    def timeline(self, incident_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/api/v1/incidents/{incident_id}/timeline"))

    def approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/approvals", **({"status": status} if status else {})))

    def wait_incident(self, service: str, timeout: float = 60) -> str:
        """The one incident of a service, once it exists."""
        found = wait_for(
            lambda: self.incidents(service=service),
            timeout=timeout,
            what=f"an incident for {service}",
        )
        assert len(found) == 1, found
        return str(found[0]["incident_id"])

    def wait_status(self, incident_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        """Poll until the incident has ``status``; fail fast if it settles elsewhere."""
        final = {"CLOSED", "ESCALATED"} - {status}
        seen: list[str] = []

        def reached() -> dict[str, Any] | None:
            inc = self.incident(incident_id)
            if not seen or seen[-1] != inc["status"]:
                seen.append(inc["status"])
            if inc["status"] in final:
                raise AssertionError(
                    f"incident {incident_id} went {seen}, not to {status}: "
                    f"{inc.get('escalation_reason')}"
                )
            return inc if inc["status"] == status else None

        return dict(wait_for(reached, timeout=timeout, what=f"incident {status} (seen {seen})"))

    def close(self) -> None:
        self.c.close()


def post_alerts(base: str, ingest_token: str, body: dict[str, Any]) -> list[str]:
    """POST an Alertmanager v4 body; return the incident ids it landed in."""
    r = httpx.post(
        f"{base}/api/v1/alerts/alertmanager",
        json=body,
        headers={"Authorization": f"Bearer {ingest_token}"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    return list(r.json()["incident_ids"])


# ---------------------------------------------------------------- the stack


@dataclass
class ActStack:
    tmp: Path
    db_url: str
    env: dict[str, str]
    base: str
    sentinel: Proc
    viewer: Api
    approver: Api
    ingest_token: str
    tokens: dict[str, str]
    target: MetricsTarget | None = None
    prom: Service | None = None
    am: Service | None = None

    # -- database readers (SQLite file; the server writes, we only read) --------------

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        eng = create_engine(self.db_url)
        try:
            with eng.connect() as c:
                return [dict(row._mapping) for row in c.execute(text(sql), params)]
        finally:
            eng.dispose()

    def intents(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT idempotency_key, kind, action_id, target, service, status, result"
            " FROM side_effect_intents WHERE incident_id = :i ORDER BY started_at",
            i=incident_id,
        )
        for row in rows:
            if isinstance(row["result"], str):
                row["result"] = json.loads(row["result"])
        return rows

    def workflows(self, incident_id: str) -> list[dict[str, Any]]:
        """The durable engine's runs for this incident (id prefix = incident id)."""
        return self.query(
            "SELECT workflow_uuid, name, status FROM workflow_status"
            " WHERE workflow_uuid LIKE :p ORDER BY created_at",
            p=f"{incident_id}:%",
        )

    def audit_verify(self) -> tuple[int, str]:
        out = run_cli(self.env, "audit", "verify", check=False)
        return out.returncode, out.stdout + out.stderr


_MAKE_USERS = """
import json, sys
from typer.testing import CliRunner
from sentinel.cli import app
tokens = {}
for name, role in json.loads(sys.argv[1]):
    r = CliRunner().invoke(app, ["users", "create", name, "--role", role, "--json"])
    if r.exit_code != 0:
        sys.exit(f"users create {name} exited {r.exit_code}: {r.output} {r.exception!r}")
    tokens[name] = json.loads(r.stdout.strip().splitlines()[-1])["token"]
print(json.dumps(tokens))
"""


def create_tokens(env: dict[str, str], users: dict[str, str]) -> dict[str, str]:
    """``sentinel users create`` for each name -> role, in one process (imports once)."""
    out = subprocess.run(
        [sys.executable, "-c", _MAKE_USERS, json.dumps(list(users.items()))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"creating users failed: {out.stdout}{out.stderr}"
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def start_sentinel(env: dict[str, str], tmp: Path, port: int) -> Proc:
    proc = Proc(["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "sentinel.log")
    wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc)
    return proc


def prom_instant(prom: Service, query: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom.url}/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    return list(r.json()["data"]["result"])


@contextmanager
def act_stack(
    db_url: str,
    tmp: Path,
    *,
    env: dict[str, str],
    target: MetricsTarget | None = None,
    job: str = "app",
    rules: list[dict[str, Any]] | None = None,
    users: dict[str, str] | None = None,
) -> Iterator[ActStack]:
    """``sentinel serve`` (+ target → Prometheus → Alertmanager → Sentinel when rules are given).

    ``env`` adds SENTINEL_* settings; ``users`` (name -> role) are created besides
    ``alertmanager`` (ingest), ``oncall`` (viewer) and ``alice`` (approver). With rules, Sentinel reads and verifies against that
    Prometheus, and the stack is yielded once Prometheus has scraped the target three times.
    """
    with_prom = rules is not None
    if with_prom:
        need(binaries_present(), "the prometheus and prometheus-alertmanager binaries")
        assert target is not None
    sentinel_port, am_port = free_port(), free_port()
    base = f"http://127.0.0.1:{sentinel_port}"
    prom_dir, am_dir = tmp / "prometheus", tmp / "alertmanager"
    logs = [("sentinel", tmp / "sentinel.log")]
    if with_prom:
        logs += [
            ("prometheus", prom_dir / "prometheus.log"),
            ("alertmanager", am_dir / "alertmanager.log"),
        ]
    prom: Service | None = None
    am: Service | None = None
    sentinel: Proc | None = None
    apis: list[Api] = []
    with logs_on_failure(*logs):
        try:
            extra = dict(env)
            if with_prom:
                assert target is not None and rules is not None
                prom = start_prometheus(
                    prom_dir,
                    job=job,
                    target=target.address,
                    rules=rules,
                    alertmanager=f"127.0.0.1:{am_port}",
                )
                prom.wait_ready()
                extra.setdefault("SENTINEL_PROMETHEUS__URL", prom.url)
                extra.setdefault("SENTINEL_PROMETHEUS__STEP_SECONDS", "1")
                extra.setdefault("SENTINEL_PROMETHEUS__LOOKBACK_SECONDS", "120")
            extra.setdefault("SENTINEL_LOG_LEVEL", "INFO")
            full_env = sentinel_env(db_url, tmp, **extra)
            tokens = create_tokens(
                full_env,
                {
                    "alertmanager": "ingest",
                    "oncall": "viewer",
                    "alice": "approver",
                    **(users or {}),
                },
            )
            ingest_token = tokens["alertmanager"]
            viewer = Api(base, tokens["oncall"])
            apis.append(viewer)
            approver = Api(base, tokens["alice"])
            apis.append(approver)
            sentinel = start_sentinel(full_env, tmp, sentinel_port)
            if with_prom:
                am = start_alertmanager(
                    am_dir,
                    port=am_port,
                    webhook_url=f"{base}/api/v1/alerts/alertmanager",
                    bearer_token=ingest_token,
                    group_wait="1s",
                    group_interval="1s",
                    repeat_interval="1h",
                )
                am.wait_ready()
                assert prom is not None
                wait_for(
                    lambda: any(
                        float(s["value"][1]) >= 3
                        for s in prom_instant(prom, f'count_over_time(up{{job="{job}"}}[1m])')
                    ),
                    timeout=30,
                    what="three scrapes of the target",
                )
            yield ActStack(
                tmp=tmp,
                db_url=db_url,
                env=full_env,
                base=base,
                sentinel=sentinel,
                viewer=viewer,
                approver=approver,
                ingest_token=ingest_token,
                tokens=tokens,
                target=target,
                prom=prom,
                am=am,
            )
        finally:
            for a in apis:
                a.close()
            stop_all(am, prom, sentinel, target)


# ---------------------------------------------------------------- timeline helpers


def entries(timeline: list[dict[str, Any]], action_type: str) -> list[dict[str, Any]]:
    return [e for e in timeline if e["action_type"] == action_type]


def index_of(timeline: list[dict[str, Any]], pred: Callable[[dict[str, Any]], bool]) -> int:
    for i, e in enumerate(timeline):
        if pred(e):
            return i
    raise AssertionError(
        "no such timeline entry in " + str([(e["action_type"], e["summary"]) for e in timeline])
    )


def script_exec(timeline: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
    return [e for e in entries(timeline, "SCRIPT_EXEC") if e["details"].get("phase") == phase]
