"""Prometheus and Alertmanager in miniature, for machines where neither is installed.

``Scraper`` keeps what a Prometheus scraping ``/metrics`` every ``scrape_interval`` would
store (a ``promql.SampleStore``, timestamps on the sandbox's metrics clock).
``RuleEvaluator`` evaluates the scenario's alert rule every ``evaluation_interval`` with
Prometheus' state machine (inactive → pending → firing after ``for``; resolved as soon as
the expression returns no series for it). ``Notifier`` groups alerts as Alertmanager's
route does (``group_by``, ``group_wait``, ``group_interval``, ``repeat_interval``,
``send_resolved``) and POSTs the Alertmanager webhook, version 4, with the same shape:
``groupKey``, ``groupLabels``, ``commonLabels``/``commonAnnotations``, ``externalURL``,
and per alert ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
``generatorURL`` (Prometheus' ``/graph?g0.expr=...&g0.tab=1``) and ``fingerprint``
(Alertmanager's FNV-1a label-set fingerprint, 16 hex digits).

All times here are the metrics clock (the sandbox's boot time + simulated seconds), so a
run with manual ticks behaves exactly like one in real time.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sentinel_sandbox import promql

log = logging.getLogger("sentinel_sandbox.alerting")

ZERO_TIME = "0001-01-01T00:00:00Z"
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's ``model.LabelSet.Fingerprint()``: FNV-1a 64 over sorted name/value."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for b in part.encode():
                h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ 0xFF) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def generator_url(external_url: str, expr: str) -> str:
    """What Prometheus puts in ``generatorURL``: its graph page for the rule's expression."""
    return f"{external_url.rstrip('/')}/graph?g0.expr={urllib.parse.quote_plus(expr)}&g0.tab=1"


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _label_set_string(labels: dict[str, str]) -> str:
    """``model.LabelSet.String()``: ``{a="x", b="y"}``."""
    return "{" + ", ".join(f"{k}={json.dumps(labels[k])}" for k in sorted(labels)) + "}"


def parse_seconds(v: Any) -> float:
    """``10s``, ``1m`` or a number of seconds."""
    if isinstance(v, int | float):
        return float(v)
    text = str(v).strip()
    return 0.0 if text in ("", "0") else promql.parse_duration(text)


@dataclass
class ActiveAlert:
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: float
    value: float
    generator_url: str = ""
    fired_at: float | None = None
    resolved_at: float | None = None

    @property
    def state(self) -> str:
        if self.resolved_at is not None:
            return "inactive"
        return "firing" if self.fired_at is not None else "pending"


class RuleEvaluator:
    """One alerting rule, evaluated like Prometheus' rule manager does."""

    def __init__(self, rule: dict[str, Any], external_url: str) -> None:
        self.name = str(rule["name"])
        self.expr = str(rule["expr"]).strip()
        self.node = promql.parse(self.expr)
        self.for_s = parse_seconds(rule.get("for", "0s"))
        self.labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
        self.annotations = {str(k): str(v) for k, v in (rule.get("annotations") or {}).items()}
        self.generator_url = generator_url(external_url, self.expr)
        self.active: dict[str, ActiveAlert] = {}
        self.evaluations = 0

    def evaluate(self, store: promql.SampleStore, t: float) -> list[ActiveAlert]:
        """Evaluate at t; returns the alerts to send (firing ones and fresh resolutions)."""
        self.evaluations += 1
        v = promql.Evaluator(store).instant(self.node, t)
        if not isinstance(v, promql.Vector):
            raise promql.PromQLError("an alerting rule's expression must return a vector")
        seen: set[str] = set()
        for lb, value in v.samples:
            labels = {k: val for k, val in lb if k != "__name__"}
            labels.update(self.labels)
            labels["alertname"] = self.name
            fp = fingerprint(labels)
            seen.add(fp)
            a = self.active.get(fp)
            if a is None or a.resolved_at is not None:
                a = ActiveAlert(
                    labels, self._annotations(labels, value), t, value, self.generator_url
                )
                self.active[fp] = a
            a.value = value
            a.annotations = self._annotations(labels, value)
            if a.fired_at is None and t - a.active_at >= self.for_s:
                a.fired_at = t
        out: list[ActiveAlert] = []
        for fp, a in list(self.active.items()):
            if fp not in seen and a.resolved_at is None:
                if a.fired_at is None:
                    del self.active[fp]  # pending alerts just vanish
                    continue
                a.resolved_at = t
            if a.resolved_at is not None and t - a.resolved_at > 15 * 60:
                del self.active[fp]  # Prometheus keeps resolved alerts 15 min
                continue
            if a.fired_at is not None:
                out.append(a)
        return out

    def _annotations(self, labels: dict[str, str], value: float) -> dict[str, str]:
        """Templates: ``{{ $labels.x }}``, ``{{ $value }}`` (what the scenarios use)."""

        def sub(text: str) -> str:
            text = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), text)
            return re.sub(r"\{\{\s*\$value\s*\}\}", promql.fmt_value(value), text)

        return {k: sub(v) for k, v in self.annotations.items()}


@dataclass
class _Group:
    labels: dict[str, str]
    alerts: dict[str, ActiveAlert] = field(default_factory=dict)
    first_seen: float = 0.0
    last_sent: float | None = None
    sent_state: dict[str, str] = field(default_factory=dict)  # fingerprint -> status sent


class Notifier:
    """Alertmanager's dispatcher for one route with one webhook receiver."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_file: str | None = None,
        receiver: str = "sentinel",
        group_by: tuple[str, ...] = ("alertname", "service"),
        group_wait_s: float = 1.0,
        group_interval_s: float = 5.0,
        repeat_interval_s: float = 3600.0,
        send_resolved: bool = True,
        external_url: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.token = token
        self.token_file = token_file
        self.receiver = receiver
        self.group_by = group_by
        self.group_wait_s = group_wait_s
        self.group_interval_s = group_interval_s
        self.repeat_interval_s = repeat_interval_s
        self.send_resolved = send_resolved
        self.external_url = external_url
        self.timeout_s = timeout_s
        self.groups: dict[str, _Group] = {}
        self.sent: list[dict[str, Any]] = []  # every payload delivered (tests, the demo)
        self.errors: list[str] = []
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def receive(self, alerts: list[ActiveAlert], now: float) -> None:
        """What Prometheus sends after an evaluation (firing and resolved alerts)."""
        for a in alerts:
            gl = {k: a.labels[k] for k in self.group_by if k in a.labels}
            key = "{}:" + _label_set_string(gl)
            g = self.groups.get(key)
            if g is None:
                g = self.groups[key] = _Group(gl, first_seen=now)
            g.alerts[fingerprint(a.labels)] = a

    def flush(self, now: float) -> None:
        """Send every group whose timer is due and whose content changed (or repeat is due)."""
        for key, g in list(self.groups.items()):
            due = (
                now - g.first_seen >= self.group_wait_s
                if g.last_sent is None
                else now - g.last_sent >= self.group_interval_s
            )
            if not due:
                continue
            state = {
                fp: ("resolved" if a.resolved_at is not None else "firing")
                for fp, a in g.alerts.items()
            }
            firing = [fp for fp, s in state.items() if s == "firing"]
            changed = {fp: s for fp, s in state.items() if g.sent_state.get(fp) != s}
            if not self.send_resolved:
                changed = {fp: s for fp, s in changed.items() if s == "firing"}
            repeat = (
                g.last_sent is not None and firing and now - g.last_sent >= self.repeat_interval_s
            )
            if not changed and not repeat:
                continue
            if not firing and not any(g.sent_state.get(fp) == "firing" for fp in state):
                del self.groups[key]  # nothing was ever announced: nothing to resolve
                continue
            alerts = [
                a
                for fp, a in sorted(g.alerts.items())
                if self.send_resolved or state[fp] == "firing"
            ]
            self._enqueue(self.payload(key, g, alerts))
            g.last_sent = now
            g.sent_state = state
            for fp, s in state.items():
                if s == "resolved":
                    del g.alerts[fp]
            if not g.alerts:
                del self.groups[key]

    def payload(self, key: str, g: _Group, alerts: list[ActiveAlert]) -> dict[str, Any]:
        """The webhook body, version 4."""
        docs: list[dict[str, Any]] = []
        for a in alerts:
            resolved = a.resolved_at is not None
            docs.append(
                {
                    "status": "resolved" if resolved else "firing",
                    "labels": dict(a.labels),
                    "annotations": dict(a.annotations),
                    "startsAt": rfc3339(a.fired_at or a.active_at),
                    "endsAt": rfc3339(a.resolved_at) if a.resolved_at is not None else ZERO_TIME,
                    "generatorURL": a.generator_url,
                    "fingerprint": fingerprint(a.labels),
                }
            )
        common_l = _common([d["labels"] for d in docs])
        common_a = _common([d["annotations"] for d in docs])
        return {
            "receiver": self.receiver,
            "status": "firing" if any(d["status"] == "firing" for d in docs) else "resolved",
            "alerts": docs,
            "groupLabels": dict(g.labels),
            "commonLabels": common_l,
            "commonAnnotations": common_a,
            "externalURL": self.external_url,
            "version": "4",
            "groupKey": key,
            "truncatedAlerts": 0,
        }

    # -- delivery (a thread, with retries, like Alertmanager's notifier) ---------------------

    def _enqueue(self, body: dict[str, Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-notify", daemon=True)
            self._thread.start()
        self._q.put(body)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as c:
            while True:
                body = self._q.get()
                try:
                    if body is None:
                        return
                    self._deliver(c, body)
                finally:
                    self._q.task_done()

    def _deliver(self, c: httpx.Client, body: dict[str, Any]) -> None:
        delay = 0.5
        for _ in range(8):
            headers = {"User-Agent": "Alertmanager/0.25.0 (sentinel-sandbox)"}
            token = self.token
            if self.token_file:
                try:
                    token = Path(self.token_file).read_text().strip() or None
                except OSError:
                    token = None
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                r = c.post(self.url, json=body, headers=headers)
                if r.status_code < 500 and r.status_code != 429:
                    if r.status_code >= 400:
                        self.errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    else:
                        self.sent.append(body)
                    return
                self.errors.append(f"HTTP {r.status_code}")
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def idle(self) -> bool:
        """Nothing queued or in flight (tests)."""
        return self._q.unfinished_tasks == 0

    def close(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout=5)
            self._thread = None


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    out = dict(maps[0])
    for m in maps[1:]:
        out = {k: v for k, v in out.items() if m.get(k) == v}
    return out


@dataclass
class AlertingConfig:
    """The sandbox's own Prometheus + Alertmanager, for ``--alert-webhook``."""

    webhook_url: str | None = None
    webhook_token: str | None = None
    webhook_token_file: str | None = None
    scrape_interval_s: float = 5.0
    evaluation_interval_s: float = 5.0
    group_wait_s: float = 1.0
    group_interval_s: float = 5.0
    external_url: str = ""


class Alerting:
    """Scrape store + rule + notifier, driven by the sandbox's tick."""

    def __init__(self, cfg: AlertingConfig, rule: dict[str, Any] | None) -> None:
        self.cfg = cfg
        self.store = promql.SampleStore()
        self.rule = RuleEvaluator(rule, cfg.external_url) if rule else None
        self.notifier = (
            Notifier(
                cfg.webhook_url,
                token=cfg.webhook_token,
                token_file=cfg.webhook_token_file,
                group_wait_s=cfg.group_wait_s,
                group_interval_s=cfg.group_interval_s,
                external_url=cfg.external_url,
            )
            if cfg.webhook_url
            else None
        )
        self.next_scrape: float | None = None
        self.next_eval: float | None = None
        self.errors: list[str] = []

    def set_external_url(self, url: str) -> None:
        """Where this "Prometheus" is served (generatorURL, externalURL)."""
        self.cfg.external_url = url
        if self.rule is not None:
            self.rule.generator_url = generator_url(url, self.rule.expr)
        if self.notifier is not None:
            self.notifier.external_url = url

    def on_tick(
        self, t: float, samples: Callable[[], list[tuple[str, dict[str, str], float]]]
    ) -> None:
        """Called after every tick with the metrics clock and what /metrics would show."""
        if self.next_scrape is None or t >= self.next_scrape - 1e-6:
            self.store.append(t, samples())
            self.next_scrape = t + self.cfg.scrape_interval_s
        if self.rule is not None and (self.next_eval is None or t >= self.next_eval - 1e-6):
            self.next_eval = t + self.cfg.evaluation_interval_s
            try:
                alerts = self.rule.evaluate(self.store, t)
            except promql.PromQLError as exc:
                self.errors.append(str(exc))
                alerts = []
            if self.notifier is not None:
                self.notifier.receive(alerts, t)
        if self.notifier is not None:
            self.notifier.flush(t)

    def rule_state(self) -> list[dict[str, Any]]:
        """Like Prometheus' /api/v1/alerts: every pending or firing alert of the rule."""
        if self.rule is None:
            return []
        return [
            {
                "labels": a.labels,
                "annotations": a.annotations,
                "state": a.state,
                "activeAt": rfc3339(a.active_at),
                "value": promql.fmt_value(a.value),
            }
            for a in self.rule.active.values()
            if a.state != "inactive"
        ]

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
