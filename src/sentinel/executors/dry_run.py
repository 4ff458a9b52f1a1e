"""The dry-run executor: records the call it would make and touches nothing (the default)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from sentinel.executors.base import (
    ECS_FORCE_NEW_DEPLOYMENT,
    FLUSH_REDIS_CACHE,
    MUTATING_ACTIONS,
    REBOOT_EC2_INSTANCE,
    RESTART_KUBERNETES_POD,
    ROLLBACK_DEPLOYMENT,
    ROLLOUT_RESTART_DEPLOYMENT,
    RUN_SSH_COMMAND,
    SCALE_DEPLOYMENT,
    ActionCall,
    envelope,
    now_iso,
    parse_action,
    refused,
    unsupported_action,
)


def _p(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    return "<missing>" if value is None else str(value)


def _flush_redis(params: dict[str, Any], key: str) -> list[str]:
    cluster = _p(params, "cluster")
    marker = f"SET sentinel:action:{key} <result summary> EX 604800"
    if params.get("key_pattern") is not None:
        return [
            f"redis cluster {cluster}: SCAN <cursor> MATCH {_p(params, 'key_pattern')} COUNT 500"
            " (until cursor 0)",
            "UNLINK <matching keys, one batch per SCAN page, at most 100000 keys>",
            marker,
        ]
    return [
        f"redis cluster {cluster}: SELECT {_p(params, 'db')}",
        "MULTI",
        "DBSIZE",
        "FLUSHDB ASYNC",
        marker,
        "EXEC",
    ]


def _k8s(params: dict[str, Any], key: str) -> list[str]:
    return [f"DELETE /api/v1/namespaces/{_p(params, 'namespace')}/pods/{_p(params, 'pod')}"]


def _rollout_restart(params: dict[str, Any], key: str) -> list[str]:
    path = (
        f"/apis/apps/v1/namespaces/{_p(params, 'namespace')}/deployments/{_p(params, 'deployment')}"
    )
    return [
        f"PATCH {path} spec.template.metadata.annotations"
        '["kubectl.kubernetes.io/restartedAt"]=<now>'
    ]


def _rollback(params: dict[str, Any], key: str) -> list[str]:
    return [
        f"kubectl rollout undo deployment/{_p(params, 'deployment')}"
        f" --namespace {_p(params, 'namespace')} --to-revision={_p(params, 'to_revision')}"
    ]


def _scale(params: dict[str, Any], key: str) -> list[str]:
    path = (
        f"/apis/apps/v1/namespaces/{_p(params, 'namespace')}/deployments/{_p(params, 'deployment')}"
    )
    return [f"PATCH {path}/scale spec.replicas={_p(params, 'replicas')}"]


def _ssh(params: dict[str, Any], key: str) -> list[str]:
    return [f"ssh {_p(params, 'host')} <allow-listed command {_p(params, 'command_id')}>"]


def _reboot(params: dict[str, Any], key: str) -> list[str]:
    return [f"ec2:RebootInstances InstanceIds=[{_p(params, 'instance_id')}]"]


def _ecs(params: dict[str, Any], key: str) -> list[str]:
    return [
        f"ecs:UpdateService cluster={_p(params, 'cluster')} service={_p(params, 'service')}"
        " forceNewDeployment=true"
    ]


_PLANS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    FLUSH_REDIS_CACHE: _flush_redis,
    RESTART_KUBERNETES_POD: _k8s,
    ROLLOUT_RESTART_DEPLOYMENT: _rollout_restart,
    ROLLBACK_DEPLOYMENT: _rollback,
    SCALE_DEPLOYMENT: _scale,
    RUN_SSH_COMMAND: _ssh,
    REBOOT_EC2_INSTANCE: _reboot,
    ECS_FORCE_NEW_DEPLOYMENT: _ecs,
}
assert frozenset(_PLANS) == MUTATING_ACTIONS


class DryRunExecutor:
    """Answers every catalog action with what it would have done; changes nothing anywhere.

    It remembers each idempotency key it handled (in memory, for the life of the process):
    a repeated ``execute`` returns the recorded result, and ``reconcile`` returns it for a
    known key and None for an unknown one.
    """

    name = "dry_run"
    supported_actions: frozenset[str] = MUTATING_ACTIONS

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Record the call the real executor would make; return ok=True, dry_run=True."""
        with self._lock:
            prior = self._results.get(idempotency_key)
            if prior is not None:
                return {**copy.deepcopy(prior), "replayed": True}
            result = self._answer(action, idempotency_key)
            self._results[idempotency_key] = result
            self.calls.append(copy.deepcopy(result))
            return copy.deepcopy(result)

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None:
        """The recorded result for a key handled earlier; None if this process never saw it."""
        with self._lock:
            prior = self._results.get(idempotency_key)
        if prior is None:
            return None
        return {**copy.deepcopy(prior), "reconciled": True}

    def handled(self, idempotency_key: str) -> bool:
        """Whether this executor has already answered this idempotency key."""
        with self._lock:
            return idempotency_key in self._results

    def _answer(self, action: object, key: str) -> dict[str, Any]:
        call = parse_action(action)
        if not isinstance(call, ActionCall):
            return refused(self.name, action, key, call, dry_run=True)
        plan = _PLANS.get(call.action_id)
        if plan is None:
            return {
                **unsupported_action(self.name, action, key, self.supported_actions),
                "dry_run": True,
            }
        return {
            "ok": True,
            **envelope(self.name, action, key),
            "dry_run": True,
            "would_run": plan(call.params, key),
            "touched": "nothing: dry run",
            "recorded_at": now_iso(),
        }
