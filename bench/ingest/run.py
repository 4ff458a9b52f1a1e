"""Ingest benchmark: POST /api/v1/alerts/alertmanager against a bare Starlette endpoint.

For each target (bare Starlette, Sentinel on SQLite, Sentinel on PostgreSQL) this starts a
uvicorn server in its own process (one worker, --no-access-log, uvloop/httptools when
installed, API only), then drives it from separate load-generator processes:

* a load pass: a fixed number of requests in flight (default 16) for a warm-up (3 s,
  not measured) and a measured window (15 s); every request is one Alertmanager v4
  delivery with one alert, ~70% new fingerprints over 50 services and ~30% re-deliveries
  of a fingerprint the server already acknowledged;
* a closed-loop latency pass: one request in flight, to show what a single delivery costs.

After each Sentinel target it checks in the database that every 202-acknowledged delivery
was committed (one alert row per acknowledged fingerprint, received_count summing to the
number of acknowledged deliveries, one ALERT_INGESTED audit record per delivery).

    uv run python bench/ingest/run.py [--duration 15] [--concurrency 16] [--targets bare,sqlite,postgres]

Results are printed as a table and written to bench/out/ingest.csv.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PATH = "/api/v1/alerts/alertmanager"
HOST = "127.0.0.1"
PG_ADMIN_URL = os.environ.get(
    "SENTINEL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0

SERVICES = [
    "checkout", "cart", "payments", "orders", "inventory", "shipping", "catalog", "search",
    "recommendations", "reviews", "pricing", "promotions", "users", "auth", "sessions",
    "notifications", "email", "sms", "billing", "invoices", "ledger", "fraud", "risk",
    "kyc", "gateway", "edge-proxy", "cdn-origin", "media", "thumbnails", "uploads",
    "analytics", "events", "ingest", "etl", "warehouse", "reporting", "feature-flags",
    "config", "scheduler", "cron", "queue", "kafka-connect", "redis-cache", "postgres-main",
    "elastic", "mobile-bff", "web-bff", "graphql", "admin", "support",
]  # fmt: skip
ALERTS = [
    ("HighErrorRate", "critical", "5xx ratio above 5% for 5m"),
    ("HighLatencyP99", "warning", "p99 latency above 800ms for 10m"),
    ("PodCrashLooping", "critical", "pod restarted more than 3 times in 10m"),
    ("KubePodNotReady", "warning", "pod not ready for 15m"),
    ("HighMemoryUsage", "warning", "container memory above 90% of its limit"),
    ("DiskSpaceLow", "warning", "volume less than 10% free"),
    ("TargetDown", "critical", "scrape target down for 2m"),
    ("SLOErrorBudgetBurn", "critical", "fast burn: 14.4x over 1h"),
]


# --------------------------------------------------------------------------------------
# uvicorn factory for the Sentinel targets (configured from SENTINEL_* in the environment)
# --------------------------------------------------------------------------------------


def sentinel_app() -> Any:
    """``uvicorn --factory bench.ingest.run:sentinel_app``: Sentinel's API, no worker."""
    from sentinel.api.app import create_app
    from sentinel.core.config import load_settings

    return create_app(load_settings(), with_worker=False)


# --------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------


class Payloads:
    """Alertmanager v4 deliveries of ``per_delivery`` alerts of one group (alertname and
    service, as Alertmanager groups them, one pod each): new fingerprints or re-deliveries."""

    def __init__(self, tag: int, redeliver: float, seed: int, per_delivery: int = 1) -> None:
        self.tag = tag
        self.redeliver = redeliver
        self.per_delivery = per_delivery
        self.rng = random.Random(seed)
        self.n = 0
        # (the delivery's fingerprints, its exact body) for deliveries the server 202'd
        self.acked: list[tuple[tuple[str, ...], bytes]] = []
        self._acked_set: set[tuple[str, ...]] = set()

    def next(self) -> tuple[tuple[str, ...], bytes]:
        if self.acked and self.rng.random() < self.redeliver:
            return self.rng.choice(self.acked)
        return self.new()

    def new(self) -> tuple[tuple[str, ...], bytes]:
        rng = self.rng
        svc = rng.choice(SERVICES)
        name, severity, what = rng.choice(ALERTS)
        alerts = [self._alert(svc, name, severity, what) for _ in range(self.per_delivery)]
        common = (
            dict(alerts[0]["labels"])
            if len(alerts) == 1
            else {k: v for k, v in alerts[0]["labels"].items() if k not in ("pod", "instance")}
        )
        common_annotations = alerts[0]["annotations"] if len(alerts) == 1 else {}
        doc = {
            "receiver": "sentinel",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"alertname": name, "service": svc},
            "commonLabels": common,
            "commonAnnotations": common_annotations,
            "externalURL": "http://alertmanager-main-0:9093",
            "version": "4",
            "groupKey": f'{{}}/{{severity=~"warning|critical"}}:{{alertname="{name}", service="{svc}"}}',
            "truncatedAlerts": 0,
        }
        fps = tuple(a["fingerprint"] for a in alerts)
        return fps, json.dumps(doc, separators=(",", ":")).encode()

    def _alert(self, svc: str, name: str, severity: str, what: str) -> dict[str, Any]:
        rng = self.rng
        self.n += 1
        fp = f"{self.tag:02x}{self.n:06x}{rng.getrandbits(32):08x}"
        pod = f"{svc}-{rng.getrandbits(24):06x}-{rng.getrandbits(20):05x}"
        labels = {
            "alertname": name,
            "service": svc,
            "severity": severity,
            "namespace": "prod",
            "cluster": "prod-eu-west-1",
            "job": svc,
            "pod": pod,
            "instance": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}:8080",
            "prometheus": "monitoring/k8s",
        }
        annotations = {
            "summary": f"{name} on {svc}",
            "description": f"{svc}/{pod}: {what}",
            "runbook_url": f"https://runbooks.example.internal/{name.lower()}",
        }
        starts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return {
            "status": "firing",
            "labels": labels,
            "annotations": annotations,
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=sum%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29&g0.tab=1",
            "fingerprint": fp,
        }

    def ack(self, fps: tuple[str, ...], body: bytes) -> None:
        if fps not in self._acked_set:
            self._acked_set.add(fps)
            self.acked.append((fps, body))


# --------------------------------------------------------------------------------------
# Load generator (runs in its own process)
# --------------------------------------------------------------------------------------


class RawConn:
    """A minimal HTTP/1.1 keep-alive client: far less CPU per request than httpx."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nUser-Agent: sentinel-bench\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        try:
            writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body))
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("server closed the connection")
            status = int(status_line.split(b" ", 2)[1])
            length = 0
            close = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"connection" and v.strip().lower() == b"close":
                    close = True
                elif k == b"transfer-encoding":
                    raise ConnectionError("chunked responses are not supported")
            payload = await reader.readexactly(length) if length else b""
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class HttpxConn:
    """The same interface over httpx, to cross-check the raw client (--client httpx)."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    async def post(self, body: bytes) -> tuple[int, bytes]:
        r = await self.client.post(PATH, content=body, headers=self.headers)
        return r.status_code, r.content

    def close(self) -> None:
        pass


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def _drive(cfg: dict[str, Any]) -> dict[str, Any]:
    port, token, conc = cfg["port"], cfg["token"], cfg["concurrency"]
    t0 = cfg["start_at"]  # wall clock, the same for every load-generator process
    w_start, w_end = t0 + cfg["warmup"], t0 + cfg["warmup"] + cfg["duration"]
    payloads = Payloads(cfg["tag"], cfg["redeliver"], cfg["seed"], cfg["per_delivery"])
    window_lat: list[float] = []
    acked: Counter[str] = Counter()
    status_seen: Counter[str] = Counter()
    samples: list[str] = []
    total = {"requests": 0, "window_requests": 0, "window_errors": 0, "acked_deliveries": 0}
    cpu: dict[str, float] = {}

    httpx_client = None
    if cfg["client"] == "httpx":
        import httpx

        httpx_client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            timeout=cfg["timeout"],
            limits=httpx.Limits(max_connections=conc, max_keepalive_connections=conc),
        )

    async def cpu_marks() -> None:
        await asyncio.sleep(max(0.0, w_start - time.time()))
        cpu["start"] = _cpu_seconds()
        await asyncio.sleep(max(0.0, w_end - time.time()))
        cpu["end"] = _cpu_seconds()

    async def worker() -> None:
        conn: RawConn | HttpxConn = (
            HttpxConn(httpx_client, token)
            if httpx_client is not None
            else RawConn(HOST, port, token)
        )
        while time.time() < w_end:
            fps, body = payloads.next()
            sent = time.perf_counter()
            status = 0
            err = ""
            try:
                async with asyncio.timeout(cfg["timeout"]):
                    status, resp = await conn.post(body)
                if status != 202 and len(samples) < 5:
                    samples.append(f"{status} {resp[:200]!r}")
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
                err = type(exc).__name__
                if len(samples) < 5:
                    samples.append(f"{err}: {exc}")
            took_ms = (time.perf_counter() - sent) * 1000.0
            done = time.time()
            total["requests"] += 1
            status_seen[str(status) if status else err] += 1
            if status == 202:
                acked.update(fps)
                total["acked_deliveries"] += 1
                payloads.ack(fps, body)
            if w_start <= done < w_end:
                total["window_requests"] += 1
                if status == 202:
                    window_lat.append(took_ms)
                else:
                    total["window_errors"] += 1
        conn.close()

    await asyncio.sleep(max(0.0, t0 - time.time()))
    marks = asyncio.create_task(cpu_marks())
    await asyncio.gather(*(worker() for _ in range(conc)))
    await marks
    if httpx_client is not None:
        await httpx_client.aclose()
    return {
        "window_lat": window_lat,
        "acked": dict(acked),
        "status": dict(status_seen),
        "samples": samples,
        "cpu": cpu.get("end", 0.0) - cpu.get("start", 0.0),
        **total,
    }


def loadgen_main(cfg: dict[str, Any], chan: Any) -> None:
    """Entry of one load-generator process: ready, wait for the start time, run, report."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    if cfg["client"] == "httpx":
        import httpx  # noqa: F401 - imported before the clock starts
    chan.send("ready")
    cfg = {**cfg, "start_at": chan.recv()}
    with runner:
        result = runner.run(_drive(cfg))
    chan.send(result)
    chan.close()


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def uvicorn_flags() -> list[str]:
    flags = ["--no-access-log", "--log-level", "warning"]
    for mod, flag in (("uvloop", "--loop"), ("httptools", "--http")):
        try:
            __import__(mod)
            flags += [flag, mod]
        except ImportError:
            pass
    return flags


class Server:
    """One uvicorn process serving one target."""

    def __init__(self, app: list[str], env: dict[str, str], log: Path, procs: int = 1) -> None:
        self.port = free_port()
        self.log = log
        self._fh = log.open("ab")
        cmd = [sys.executable, "-m", "uvicorn", *app, "--app-dir", str(ROOT)]
        cmd += ["--host", HOST, "--port", str(self.port), *uvicorn_flags()]
        if procs > 1:
            cmd += ["--workers", str(procs)]  # a supervisor and `procs` serving children
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._fh, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return  # uvicorn binds only after the app's startup has finished
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"server not up after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's processes so far: it and its children (/proc)."""
        total = 0.0
        todo, seen = [self.p.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                if pid == self.p.pid:
                    return math.nan
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    todo += [int(c) for c in task.read_text().split()]
                except OSError:
                    continue
        return total

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._fh.close()


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    try:
        vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


# --------------------------------------------------------------------------------------
# One pass: N load-generator processes against one server
# --------------------------------------------------------------------------------------


@dataclass
class PassResult:
    target: str
    kind: str  # "load" | "latency"
    concurrency: int
    duration: float
    requests: int = 0
    errors: int = 0
    rps: float = 0.0
    p50: float = math.nan
    p90: float = math.nan
    p99: float = math.nan
    max_ms: float = math.nan
    server_cpu: float = math.nan  # % of one core, over the measured window
    loadgen_cpu: float = math.nan  # % of one core, all load-generator processes together
    host_cpu: float = math.nan  # % of all cores
    other_cpu: float = math.nan  # % of one core used by everything else (PostgreSQL included)
    acked: Counter[str] = field(default_factory=Counter)  # 202'd deliveries per fingerprint
    acked_deliveries: int = 0
    status: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)


def pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return math.nan
    return sorted_vals[min(len(sorted_vals) - 1, max(0, math.ceil(p * len(sorted_vals)) - 1))]


def run_pass(
    server: Server, token: str, target: str, kind: str, args: argparse.Namespace, tag: int
) -> PassResult:
    conc = args.concurrency if kind == "load" else 1
    procs = max(1, min(args.procs if kind == "load" else 1, conc))
    duration = args.duration if kind == "load" else args.latency_duration
    warmup = args.warmup if kind == "load" else min(args.warmup, 1.0)
    ctx = mp.get_context("spawn")
    pipes, children = [], []
    for i in range(procs):
        share = conc // procs + (1 if i < conc % procs else 0)
        cfg = {
            "port": server.port,
            "token": token,
            "concurrency": share,
            "warmup": warmup,
            "duration": duration,
            "redeliver": args.redeliver,
            "per_delivery": args.alerts_per_delivery,
            "seed": args.seed * 1000 + tag * 16 + i,
            "tag": (tag * 16 + i) % 256,
            "client": args.client,
            "timeout": args.timeout,
        }
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=loadgen_main, args=(cfg, theirs), daemon=True)
        p.start()
        theirs.close()
        pipes.append(mine)
        children.append(p)
    for chan, p in zip(pipes, children, strict=True):  # every interpreter is up and imported
        if not chan.poll(120) or chan.recv() != "ready":
            raise RuntimeError(f"load generator {p.pid} did not start")
    start_at = time.time() + 0.2  # one start time for all of them
    for chan in pipes:
        chan.send(start_at)

    w_start, w_end = start_at + warmup, start_at + warmup + duration
    time.sleep(max(0.0, w_start - time.time()))
    srv0, host0 = server.cpu_seconds(), host_cpu()
    time.sleep(max(0.0, w_end - time.time()))
    srv1, host1 = server.cpu_seconds(), host_cpu()

    res = PassResult(target, kind, conc, duration)
    lat: list[float] = []
    gen_cpu = 0.0
    for rx, p in zip(pipes, children, strict=True):
        if not rx.poll(args.timeout + 30):
            raise RuntimeError(f"load generator {p.pid} sent no result")
        r = rx.recv()
        p.join(timeout=10)
        lat.extend(r["window_lat"])
        res.requests += r["window_requests"]
        res.errors += r["window_errors"]
        res.acked.update(r["acked"])
        res.acked_deliveries += r["acked_deliveries"]
        res.status.update(r["status"])
        res.samples.extend(r["samples"])
        gen_cpu += r["cpu"]
    lat.sort()
    res.rps = (res.requests - res.errors) / duration
    res.p50, res.p90, res.p99 = pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99)
    res.max_ms = lat[-1] if lat else math.nan
    res.server_cpu = 100.0 * (srv1 - srv0) / duration
    res.loadgen_cpu = 100.0 * gen_cpu / duration
    if host1[1] > host0[1]:
        res.host_cpu = 100.0 * (host1[0] - host0[0]) / (host1[1] - host0[1])
        cores = os.cpu_count() or 1
        res.other_cpu = max(0.0, res.host_cpu * cores - res.server_cpu - res.loadgen_cpu)
    return res


def background_cpu(seconds: float = 1.0) -> float:
    """% of one core busy on this machine while the benchmark runs nothing."""
    b0, t0 = host_cpu()
    time.sleep(seconds)
    b1, t1 = host_cpu()
    return 100.0 * (b1 - b0) / (t1 - t0) * (os.cpu_count() or 1) if t1 > t0 else math.nan


# --------------------------------------------------------------------------------------
# Databases and the commit check
# --------------------------------------------------------------------------------------


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Check:
    ok: bool
    acked_deliveries: int
    acked_alerts: int
    acked_fingerprints: int
    alert_rows: int
    received_sum: int
    ingested_audit: int
    missing: int  # acked fingerprints with no row, or a row counting fewer deliveries

    def line(self) -> str:
        return (
            f"all {self.acked_deliveries} acknowledged deliveries ({self.acked_alerts} alerts) "
            "committed: "
            f"{'yes' if self.ok else 'no'}  "
            f"({self.acked_fingerprints} fingerprints -> {self.alert_rows} alert rows; "
            f"received_count sum {self.received_sum}; "
            f"ALERT_INGESTED audit records {self.ingested_audit}"
            + (f"; {self.missing} fingerprints short" if self.missing else "")
            + ")"
        )


def verify_committed(db_url: str, acked: Counter[str], deliveries: int) -> Check:
    """Every 202'd delivery is in the database (extra rows only from non-202 replies)."""
    from sqlalchemy import create_engine, text

    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            rows = c.execute(
                text(
                    "SELECT fingerprint, SUM(received_count), COUNT(*) FROM alerts "
                    "WHERE source = 'alertmanager' GROUP BY fingerprint"
                )
            ).all()
            audit = c.execute(
                text("SELECT COUNT(*) FROM audit_log WHERE action_type = 'ALERT_INGESTED'")
            ).scalar_one()
    finally:
        eng.dispose()
    in_db = {fp: int(n) for fp, n, _ in rows}
    missing = sum(1 for fp, n in acked.items() if in_db.get(fp, 0) < n)
    return Check(
        ok=missing == 0 and int(audit) >= deliveries,
        acked_deliveries=deliveries,
        acked_alerts=sum(acked.values()),
        acked_fingerprints=len(acked),
        alert_rows=sum(int(k) for _, _, k in rows),
        received_sum=sum(in_db.values()),
        ingested_audit=int(audit),
        missing=missing,
    )


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------


@dataclass
class TargetResult:
    name: str
    passes: list[PassResult]
    check: Check | None = None
    skipped: str | None = None


def run_target(
    name: str, app: list[str], env: dict[str, str], token: str, args: argparse.Namespace, tmp: Path
) -> TargetResult:
    server = Server(app, env, tmp / f"{name}.log", args.server_procs)
    passes: list[PassResult] = []
    try:
        server.wait_ready()
        print(f"  {name}: uvicorn pid {server.p.pid} on :{server.port}", flush=True)
        passes.append(run_pass(server, token, name, "load", args, tag=len(passes) * 3 + 1))
        _progress(passes[-1])
        batches = _batch_sizes(server.port)
        if batches:
            print(f"    writer commits so far: {batches}", flush=True)
        if args.latency_duration > 0:
            passes.append(run_pass(server, token, name, "latency", args, tag=len(passes) * 3 + 2))
            _progress(passes[-1])
    finally:
        server.stop()
    return TargetResult(name, passes)


def _batch_sizes(port: int) -> str:
    """Sentinel's ``sentinel_ingest_batch_deliveries`` histogram, summed up (warm-up included)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as r:
            text_ = r.read().decode()
    except OSError:
        return ""
    got: dict[str, float] = {}
    for line in text_.splitlines():
        if line.startswith("sentinel_ingest_batch_deliveries_"):
            k, _, v = line.rpartition(" ")
            got[k.split("{")[0].removeprefix("sentinel_ingest_batch_deliveries_")] = float(v)
    count, total = got.get("count", 0.0), got.get("sum", 0.0)
    if not count:
        return ""
    return f"{count:.0f} commits, {total / count:.1f} deliveries a commit on average"


def _progress(r: PassResult) -> None:
    print(
        f"    {r.kind:<7} {r.requests} requests, {r.errors} errors, {r.rps:.0f} req/s, "
        f"p99 {r.p99:.1f} ms",
        flush=True,
    )
    bad = {k: v for k, v in r.status.items() if k != "202"}
    if bad:
        print(f"    non-202 outcomes (whole pass): {bad}; e.g. {r.samples[:3]}", flush=True)


def sentinel_target(name: str, db_url: str, args: argparse.Namespace, tmp: Path) -> TargetResult:
    from tests.conftest import create_token, sentinel_env

    work = tmp / name
    work.mkdir()
    env = sentinel_env(db_url, work)
    if args.writer_threads:
        env["SENTINEL_INGEST__WRITER_THREADS"] = str(args.writer_threads)
    if args.batch_linger_ms is not None:
        env["SENTINEL_INGEST__BATCH_LINGER_MS"] = str(args.batch_linger_ms)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    t = time.monotonic()
    token = create_token(env, "bench-ingest", "ingest")  # also migrates the database
    print(f"  {name}: database migrated, ingest token created ({time.monotonic() - t:.1f} s)")
    app = ["--factory", "bench.ingest.run:sentinel_app"]
    res = run_target(name, app, env, token, args, tmp)
    acked: Counter[str] = Counter()
    for p in res.passes:
        acked.update(p.acked)
    res.check = verify_committed(db_url, acked, sum(p.acked_deliveries for p in res.passes))
    print(f"    {res.check.line()}", flush=True)
    return res


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _f(v: float, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def report(
    results: list[TargetResult], args: argparse.Namespace, cpus: int
) -> list[dict[str, Any]]:
    bare_rps = {
        p.kind: p.rps for r in results if r.name == "bare" for p in r.passes
    }  # per pass kind
    rows: list[dict[str, Any]] = []
    for r in results:
        for p in r.passes:
            base = bare_rps.get(p.kind)
            ratio = p.rps / base if base and r.name != "bare" else math.nan
            rows.append(
                {
                    "target": r.name,
                    "pass": p.kind,
                    "concurrency": p.concurrency,
                    "duration_s": p.duration,
                    "requests": p.requests,
                    "errors": p.errors,
                    "req_per_s": round(p.rps, 1),
                    "alerts_per_s": round(p.rps * args.alerts_per_delivery, 1),
                    "p50_ms": round(p.p50, 2),
                    "p90_ms": round(p.p90, 2),
                    "p99_ms": round(p.p99, 2),
                    "max_ms": round(p.max_ms, 2),
                    "ratio_vs_bare": round(ratio, 3),
                    "server_cpu_pct": round(p.server_cpu, 1),
                    "loadgen_cpu_pct": round(p.loadgen_cpu, 1),
                    "other_cpu_pct": round(p.other_cpu, 1),
                    "host_cpu_pct": round(p.host_cpu, 1),
                    "acked_deliveries": r.check.acked_deliveries if r.check else "",
                    "acked_alerts": r.check.acked_alerts if r.check else "",
                    "all_committed": ("yes" if r.check.ok else "no") if r.check else "",
                }
            )

    hdr = (
        f"{'target':<18}{'pass':<9}{'in-flight':>9}{'requests':>10}{'errors':>8}{'req/s':>9}"
        f"{'alerts/s':>10}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'vs bare':>9}{'srv cpu':>9}{'gen cpu':>9}"
        f"{'other cpu':>10}"
    )
    print()
    print(
        f"Ingest benchmark: {args.duration:g} s measured after {args.warmup:g} s warm-up; "
        f"latency pass {args.latency_duration:g} s at 1 in flight; client {args.client}, "
        f"{args.procs} load-generator process(es); {args.server_procs} server process(es) a "
        f"target; {args.alerts_per_delivery} alert(s) per delivery, "
        f"~{args.redeliver:.0%} re-deliveries"
    )
    print(hdr)
    print("-" * len(hdr))
    for row in rows:
        print(
            f"{row['target']:<18}{row['pass']:<9}{row['concurrency']:>9}{row['requests']:>10}"
            f"{row['errors']:>8}{_f(row['req_per_s'], '.0f'):>9}{_f(row['alerts_per_s'], '.0f'):>10}"
            f"{_f(row['p50_ms'], '.2f'):>9}"
            f"{_f(row['p90_ms'], '.2f'):>9}{_f(row['p99_ms'], '.2f'):>9}"
            f"{_f(row['ratio_vs_bare'], '.2f') + ('x' if not math.isnan(row['ratio_vs_bare']) else ''):>9}"
            f"{_f(row['server_cpu_pct'], '.0f') + '%':>9}{_f(row['loadgen_cpu_pct'], '.0f') + '%':>9}"
            f"{_f(row['other_cpu_pct'], '.0f') + '%':>10}"
        )
    print()
    print(
        f"CPU: this machine has {cpus} core(s). The server (one uvicorn process) and the load "
        "generator"
        + (" (and PostgreSQL)" if any(r.name.endswith("postgres") for r in results) else "")
        + " share them, so the figures are lower bounds of what the server does on its own "
        "machine. srv/gen/other cpu are % of ONE core over the measured window; other = "
        "everything else on the machine (PostgreSQL for the postgres target, and any "
        f"unrelated process). CPU busy before the run started: {args.background_cpu:.0f}% "
        "of one core."
    )
    busy = [r for r in rows if r["target"] == "bare" and r["other_cpu_pct"] > 25]
    if args.background_cpu > 25 or busy:
        print(
            "WARNING: other processes were using the CPU during the run; rates are depressed "
            "and noisy. Re-run on an idle machine for figures to compare across commits."
        )
    for r in results:
        if r.skipped:
            print(f"{r.name}: skipped ({r.skipped})")
        if r.check:
            print(f"{r.name}: {r.check.line()}")
    print()
    print(
        f"Goal: >= {GOAL_RATIO:g}x the bare endpoint's req/s with every alert committed, "
        f"p99 < {GOAL_P99_MS:g} ms (load pass)"
    )
    loads = {r["target"]: r for r in rows if r["pass"] == "load"}
    for row in rows:
        if row["target"] == "bare" or row["target"].startswith("floor-") or row["pass"] != "load":
            continue
        met_ratio = not math.isnan(row["ratio_vs_bare"]) and row["ratio_vs_bare"] >= GOAL_RATIO
        met_p99 = row["p99_ms"] < GOAL_P99_MS
        met_commit = row["all_committed"] == "yes"
        verdict = "met" if met_ratio and met_p99 and met_commit else "NOT met"
        print(
            f"  {row['target']:<18} {_f(row['ratio_vs_bare'], '.2f')}x bare "
            f"[{'ok' if met_ratio else 'FAIL'}], p99 {row['p99_ms']:.1f} ms "
            f"[{'ok' if met_p99 else 'FAIL'}], committed {row['all_committed']} "
            f"[{'ok' if met_commit else 'FAIL'}] -> goal {verdict}"
        )
    floors = [(n[len("floor-") :], r) for n, r in loads.items() if n.startswith("floor-")]
    if floors:
        print("Durable floor (bare + a committed write of the raw body, nothing else):")
    for backend, floor in floors:
        line = f"  floor-{backend:<12} {_f(floor['ratio_vs_bare'], '.2f')}x bare"
        mine = loads.get(f"sentinel-{backend}")
        if mine is not None and floor["req_per_s"]:
            line += f"; sentinel-{backend} is {mine['req_per_s'] / floor['req_per_s']:.2f}x it"
        print(line)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path, args: argparse.Namespace, cpus: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    extra = {
        "run_at": stamp,
        "client": args.client,
        "loadgen_procs": args.procs,
        "server_procs": args.server_procs,
        "alerts_per_delivery": args.alerts_per_delivery,
        "cpus": cpus,
    }
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*extra, *(rows[0] if rows else {})])
        w.writeheader()
        for row in rows:
            w.writerow({**extra, **{k: ("" if v != v else v) for k, v in row.items()}})


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per load pass")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before it")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight (load pass)")
    ap.add_argument(
        "--latency-duration",
        type=float,
        default=5.0,
        help="seconds of the closed-loop pass at 1 in flight (0 skips it)",
    )
    ap.add_argument("--procs", type=int, default=1, help="load-generator processes (load pass)")
    ap.add_argument(
        "--server-procs",
        type=int,
        default=1,
        help="uvicorn worker processes per target, bare included (Sentinel: `sentinel api --workers`)",
    )
    ap.add_argument(
        "--writer-threads",
        type=int,
        default=0,
        help="ingest writer threads per Sentinel process (0: Sentinel's default)",
    )
    ap.add_argument(
        "--batch-linger-ms",
        type=float,
        default=None,
        help="Sentinel's ingest.batch_linger_ms (default: 0.3 on PostgreSQL, 0 on SQLite)",
    )
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw")
    ap.add_argument("--redeliver", type=float, default=0.3, help="share of re-deliveries")
    ap.add_argument(
        "--alerts-per-delivery",
        type=int,
        default=1,
        help="alerts in each delivery (one group: alertname and service, a pod each)",
    )
    ap.add_argument(
        "--targets",
        default="bare,floor,sqlite,postgres",
        help="floor: floor-sqlite, and floor-postgres when postgres is a target too",
    )
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ingest.csv")
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.concurrency < 1:
        ap.error("--duration must be > 0 and --concurrency >= 1")
    if not 1 <= args.alerts_per_delivery <= 10000:
        ap.error("--alerts-per-delivery must be 1..10000 (Sentinel's limit a delivery)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - {"bare", "floor", "floor-postgres", "sqlite", "postgres"}
    if unknown:
        print(f"unknown targets: {sorted(unknown)}", file=sys.stderr)
        return 2
    cpus = os.cpu_count() or 1
    args.background_cpu = background_cpu()
    print(
        f"uvicorn flags: {' '.join(uvicorn_flags())}; {cpus} CPU core(s); "
        f"CPU already busy before the run: {args.background_cpu:.0f}% of one core"
    )
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-bench-"))
    results: list[TargetResult] = []
    failed = False
    try:
        if "bare" in targets:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
            results.append(run_target("bare", ["bench.ingest.bare_app:app"], env, "x", args, tmp))
        if "floor" in targets:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
            env["FLOOR_DB"] = str(tmp / "floor.db")
            app = ["bench.ingest.floor_app:app"]
            results.append(run_target("floor-sqlite", app, env, "x", args, tmp))
        if "floor-postgres" in targets or ("floor" in targets and "postgres" in targets):
            if not pg_reachable():
                results.append(TargetResult("floor-postgres", [], skipped="no PostgreSQL on :5432"))
            else:
                from tests.conftest import fresh_pg_database

                with fresh_pg_database() as url:
                    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
                    env["FLOOR_PG"] = url.replace("postgresql+psycopg://", "postgresql://")
                    app = ["bench.ingest.floor_app:app"]
                    results.append(run_target("floor-postgres", app, env, "x", args, tmp))
        if "sqlite" in targets:
            results.append(
                sentinel_target("sentinel-sqlite", f"sqlite:///{tmp / 'sentinel.db'}", args, tmp)
            )
        if "postgres" in targets:
            if not pg_reachable():
                results.append(
                    TargetResult("sentinel-postgres", [], skipped="no PostgreSQL on :5432")
                )
            else:
                from tests.conftest import fresh_pg_database

                with fresh_pg_database() as url:
                    results.append(sentinel_target("sentinel-postgres", url, args, tmp))
    except Exception:
        failed = True
        logs = sorted(tmp.glob("*.log"))
        for log in logs:
            print(f"--- {log.name} (tail) ---\n{log.read_text()[-2000:]}", file=sys.stderr)
        raise
    finally:
        if not failed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    rows = report(results, args, cpus)
    write_csv(rows, args.out, args, cpus)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0 if all(r.check is None or r.check.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
