"""Ports the workflow steps talk to. Adapters satisfy them structurally (no import of flows needed)."""

from __future__ import annotations

from typing import Any, Protocol

from sentinel.context.base import ContextRequest, SourceResult


class ContextPort(Protocol):
    name: str

    def gather(self, request: ContextRequest) -> SourceResult: ...


class Analyzer(Protocol):
    """Root-cause analysis over the incident and its snapshot; returns an RCA document."""

    name: str

    def analyze(self, incident: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]: ...


class Planner(Protocol):
    """Proposes one catalog action for an incident ({action_id: None, reason} for none); never acts."""

    name: str

    def plan(
        self, incident: dict[str, Any], rca: dict[str, Any] | None, context: dict[str, Any]
    ) -> dict[str, Any]: ...


class Executor(Protocol):
    """Runs one approved action; reconcile says whether it already happened (None: can't tell)."""

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None: ...


class Verifier(Protocol):
    """Evaluates an alert expression now: {"ok": queried, "firing": bool, "query", "error"}."""

    def check(self, expression: str, labels: dict[str, str] | None = None) -> dict[str, Any]: ...


class Notifier(Protocol):
    """Tells humans; reconcile says whether a delivery already happened (None: can't tell)."""

    name: str

    def send(self, event: dict[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def reconcile(self, idempotency_key: str) -> bool | None: ...


class Chat(Protocol):
    """Posts incident updates to one chat channel; with ``thread_ts`` the post replies in that thread."""

    name: str
    channel: str

    def post(self, message: dict[str, Any], thread_ts: str | None = None) -> dict[str, Any]: ...

    def reconcile(self, idempotency_key: str) -> bool | None: ...


class Pager(Protocol):
    """Pages a human (trigger) and clears the page (resolve) under one dedup key per incident."""

    name: str

    def send(
        self,
        action: str,
        key: str,
        summary: str,
        source: str = "sentinel",
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...
