"""A real Prometheus + Alertmanager pair for integration tests, on free loopback ports.

Everything lives in a temporary directory (configs, TSDB, Alertmanager state, logs); the
processes are started as plain subprocesses (no systemd) and are always stopped by the caller.
Also: a tiny scrape target served from a thread, whose series the test controls.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import Proc, free_port

PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER_BIN = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"


def binaries_present() -> bool:
    return all(Path(b).is_file() for b in (PROMETHEUS_BIN, ALERTMANAGER_BIN))


# ---------------------------------------------------------------- scrape target


class MetricsTarget:
    """An HTTP server in a thread that serves Prometheus text exposition at /metrics.

    ``gauges`` and ``counters`` map a sample line's name+labels (``'x{a="b"}'``) to a value;
    every scrape first adds ``climb[key]`` to the matching counter, so a counter keeps rising
    while the test wants it to.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.gauges: dict[str, float] = {}
        self.counters: dict[str, float] = {}
        self.climb: dict[str, float] = {}
        self.help: dict[str, tuple[str, str]] = {}  # metric name -> (type, help)
        self.scrapes = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = target.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def declare(self, name: str, kind: str, help_text: str) -> None:
        with self._lock:
            self.help[name] = (kind, help_text)

    def set_gauge(self, key: str, value: float) -> None:
        with self._lock:
            self.gauges[key] = value

    def set_climb(self, key: str, per_scrape: float) -> None:
        with self._lock:
            self.counters.setdefault(key, 0.0)
            self.climb[key] = per_scrape

    def render(self) -> str:
        with self._lock:
            self.scrapes += 1
            for key, step in self.climb.items():
                self.counters[key] = self.counters.get(key, 0.0) + step
            samples = {**self.counters, **self.gauges}
            lines: list[str] = []
            for name, (kind, help_text) in sorted(self.help.items()):
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                for key, value in sorted(samples.items()):
                    if key.split("{")[0] == name:
                        lines.append(f"{key} {value:g}")
            return "\n".join(lines) + "\n"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- processes


class Service:
    """A Prometheus or Alertmanager subprocess and where its log goes."""

    def __init__(self, name: str, args: list[str], log: Path, url: str) -> None:
        self.name = name
        self.log = log
        self.url = url
        self._fh = log.open("ab")
        self.p = subprocess.Popen(
            args, stdout=self._fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self._fh.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /-/ready until it answers 200 (or the process dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{tail(self.log)}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{tail(self.log)}")


def tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"<no log: {exc}>"


def start_prometheus(
    workdir: Path,
    *,
    job: str,
    target: str,
    rules: list[dict[str, Any]],
    alertmanager: str,
    interval: str = "1s",
) -> Service:
    """Prometheus scraping one target every ``interval``, with one rule group, sending to AM."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    rules_file = workdir / "rules.yml"
    rules_file.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "sentinel-test", "interval": interval, "rules": rules}]}
        )
    )
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    cfg = workdir / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    args = [
        PROMETHEUS_BIN,
        f"--config.file={cfg}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        "--log.level=info",
    ]
    return Service("prometheus", args, workdir / "prometheus.log", f"http://127.0.0.1:{port}")


def start_alertmanager(
    workdir: Path,
    *,
    port: int,
    webhook_url: str,
    bearer_token: str,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> Service:
    """Alertmanager (clustering off) routing everything to one webhook with send_resolved."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "sentinel",
            "group_by": ["alertname", "service"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "sentinel",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials": bearer_token}
                        },
                    }
                ],
            }
        ],
    }
    cfg = workdir / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(config))
    args = [
        ALERTMANAGER_BIN,
        f"--config.file={cfg}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=debug",
    ]
    return Service("alertmanager", args, workdir / "alertmanager.log", f"http://127.0.0.1:{port}")


@contextmanager
def logs_on_failure(*logs: tuple[str, Path]) -> Iterator[None]:
    """On any failure inside the block, print the tail of each log (pytest shows stdout)."""
    try:
        yield
    except BaseException:
        for name, path in logs:
            print(f"\n===== {name}: {path} (tail) =====\n{tail(path)}")
        raise


def stop_all(*things: Service | Proc | MetricsTarget | None) -> None:
    """Stop everything given, in order, even when one of them fails to stop."""
    errors: list[BaseException] = []
    for t in things:
        if t is None:
            continue
        try:
            if isinstance(t, MetricsTarget):
                t.close()
            else:
                t.stop()
        except Exception as exc:  # noqa: BLE001 - keep stopping the rest
            errors.append(exc)
    if errors:
        raise errors[0]
