"""Routes each action to the executor configured for it; dry-run for everything else."""

from __future__ import annotations

from typing import Any, Protocol

from sentinel.executors.base import parse_action
from sentinel.executors.dry_run import DryRunExecutor


class _Executor(Protocol):
    name: str
    supported_actions: frozenset[str]

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]: ...

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None: ...


class ExecutorRouter:
    """The Executor port over several executors: first one supporting the action wins."""

    name = "router"

    def __init__(self, executors: list[_Executor], fallback: _Executor | None = None) -> None:
        self.executors = executors
        self.fallback: _Executor = fallback or DryRunExecutor()

    def pick(self, action: dict[str, Any]) -> _Executor:
        """The executor that would run this action."""
        call = parse_action(action)
        action_id = call if isinstance(call, str) else call.action_id
        for ex in self.executors:
            if action_id in ex.supported_actions:
                return ex
        return self.fallback

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Run the action on its executor."""
        return self.pick(action).execute(action, idempotency_key)

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None:
        """Ask the action's executor whether it already ran."""
        return self.pick(action).reconcile(action, idempotency_key)
