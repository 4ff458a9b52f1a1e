"""The adapters a running worker uses, set once by bootstrap (workflow functions are module-level)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from sentinel.core.config import Settings
from sentinel.flows.ports import (
    Analyzer,
    Chat,
    ContextPort,
    Executor,
    Notifier,
    Pager,
    Planner,
    Verifier,
)
from sentinel.policy.rules import Policy


@dataclass
class Deps:
    settings: Settings
    engine: Engine
    context_sources: list[ContextPort] = field(default_factory=list)
    analyzer: Analyzer | None = None
    planner: Planner | None = None
    policy: Policy | None = None
    executor: Executor | None = None
    verifier: Verifier | None = None
    notifier: Notifier | None = None
    chat: Chat | None = None  # Slack: incident threads and approval requests
    pager: Pager | None = None  # PagerDuty: escalations page, closing resolves
    # Live inventory readers (read-only), each returning a partial policy.facts.Inventory
    # dict; their answers become the policy's facts at decision time.
    inventory_readers: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    # The LLM analyst when configured (kept for post-mortem narratives and shutdown).
    llm: Any = None


_deps: Deps | None = None


def configure(deps: Deps) -> None:
    """Install the process's adapters (bootstrap calls this before the worker starts)."""
    global _deps
    _deps = deps


def get() -> Deps:
    """The installed adapters; fails loudly if bootstrap did not run."""
    if _deps is None:
        raise RuntimeError("flows.deps.configure() was not called")
    return _deps
