"""The ContextSource port and the shapes it speaks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field


class AlertContext(BaseModel):
    """What a source needs to know of one alert."""

    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    generator_url: str | None = None
    starts_at: datetime | None = None


class ContextRequest(BaseModel):
    """What to gather context for."""

    incident_id: str
    service: str
    alerts: list[AlertContext]
    now: datetime


class QueryResult(BaseModel):
    """One query's envelope: the exact query, and either data or the full error text."""

    name: str
    query: str
    ok: bool
    error: str | None = None
    truncated: bool = False
    data: Any = None


class SourceResult(BaseModel):
    """A source's answer; partial results are fine and say so."""

    source: str
    ok: bool
    error: str | None = None
    truncated: bool = False
    queries: list[QueryResult] = Field(default_factory=list)


class ContextSource(Protocol):
    """A read-only source of context (Prometheus, Loki, Kubernetes, git, deploys)."""

    name: str

    def gather(self, request: ContextRequest) -> SourceResult:
        """Return what the source knows about the request; never raise for a source failure."""
        ...
