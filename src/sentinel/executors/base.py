"""Shared pieces of the executors: the mutating action ids, input parsing and result envelopes.

Every executor answers with a plain JSON dict that goes verbatim into the audit log. The
envelope always carries ``ok``, ``executor``, ``action_id``, ``target``, ``params`` and
``idempotency_key``; a refusal adds ``refused: True``, ``may_have_run: False`` and an
``error`` saying why. Executors never raise for bad input: a malformed action is a refusal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentinel.core.clock import utcnow

# The catalog's state-changing action ids (policy/actions.py owns the catalog; executors
# may not import policy, so the ids are repeated here as plain strings).
FLUSH_REDIS_CACHE = "flush_redis_cache"
RESTART_KUBERNETES_POD = "restart_kubernetes_pod"
ROLLOUT_RESTART_DEPLOYMENT = "rollout_restart_deployment"
ROLLBACK_DEPLOYMENT = "rollback_deployment"
SCALE_DEPLOYMENT = "scale_deployment"
RUN_SSH_COMMAND = "run_ssh_command"
REBOOT_EC2_INSTANCE = "reboot_ec2_instance"
ECS_FORCE_NEW_DEPLOYMENT = "ecs_force_new_deployment"

MUTATING_ACTIONS: frozenset[str] = frozenset(
    {
        FLUSH_REDIS_CACHE,
        RESTART_KUBERNETES_POD,
        ROLLOUT_RESTART_DEPLOYMENT,
        ROLLBACK_DEPLOYMENT,
        SCALE_DEPLOYMENT,
        RUN_SSH_COMMAND,
        REBOOT_EC2_INSTANCE,
        ECS_FORCE_NEW_DEPLOYMENT,
    }
)


@dataclass(frozen=True)
class ActionCall:
    """The parts of an action dict an executor reads, with their types checked."""

    action_id: str
    params: dict[str, Any]
    target: str


def parse_action(action: object) -> ActionCall | str:
    """Check the shape ``{"action_id": str, "params": dict, "target": str}``; a str is the error."""
    if not isinstance(action, Mapping):
        return f"action must be a JSON object, got {type(action).__name__}"
    action_id = action.get("action_id")
    if not isinstance(action_id, str) or not action_id:
        return "action.action_id must be a non-empty string"
    params = action.get("params", {})
    if not isinstance(params, Mapping):
        return f"action.params must be a JSON object, got {type(params).__name__}"
    target = action.get("target", "")
    if not isinstance(target, str):
        return f"action.target must be a string, got {type(target).__name__}"
    return ActionCall(action_id=action_id, params=dict(params), target=target)


def envelope(executor: str, action: object, idempotency_key: str) -> dict[str, Any]:
    """The fields every result starts with, read leniently from a possibly malformed action."""
    raw: Mapping[str, Any] = action if isinstance(action, Mapping) else {}
    params = raw.get("params")
    return {
        "executor": executor,
        "action_id": raw.get("action_id") if isinstance(raw.get("action_id"), str) else None,
        "target": raw.get("target") if isinstance(raw.get("target"), str) else None,
        "params": dict(params) if isinstance(params, Mapping) else None,
        "idempotency_key": idempotency_key,
    }


def refused(
    executor: str, action: object, idempotency_key: str, error: str, **extra: Any
) -> dict[str, Any]:
    """A result for an action that was not attempted (bad input, unsupported, unknown target)."""
    return {
        "ok": False,
        **envelope(executor, action, idempotency_key),
        "refused": True,
        "may_have_run": False,
        "error": error,
        **extra,
    }


def unsupported_action(
    executor: str, action: object, idempotency_key: str, supported: frozenset[str]
) -> dict[str, Any]:
    """A refusal for an action id this executor does not handle."""
    call = parse_action(action)
    name = call.action_id if isinstance(call, ActionCall) else None
    return refused(
        executor,
        action,
        idempotency_key,
        f"executor {executor!r} does not handle action {name!r}; it handles {sorted(supported)}",
        supported_actions=sorted(supported),
    )


def error_text(exc: BaseException) -> str:
    """The full error as the auditor should read it: its class and its message."""
    return f"{type(exc).__name__}: {exc}"


def now_iso() -> str:
    """The current aware UTC time in ISO 8601 form (for results)."""
    return utcnow().isoformat()


class Stopwatch:
    """Wall-clock start (UTC ISO) and a monotonic duration in milliseconds."""

    def __init__(self) -> None:
        self.started_at = now_iso()
        self._t0 = time.monotonic()

    def ms(self) -> float:
        """Milliseconds since the stopwatch started, rounded to 0.1 ms."""
        return round((time.monotonic() - self._t0) * 1000.0, 1)

    def stamp(self) -> dict[str, Any]:
        """``started_at``, ``finished_at`` and ``duration_ms`` for a result."""
        return {"started_at": self.started_at, "finished_at": now_iso(), "duration_ms": self.ms()}
