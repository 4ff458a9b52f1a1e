"""DryRunExecutor: answers every catalog action with what it would do, and touches nothing."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

from sentinel.executors.base import MUTATING_ACTIONS
from sentinel.executors.dry_run import DryRunExecutor
from sentinel.flows.ports import Executor

ACTIONS: dict[str, dict[str, Any]] = {
    "flush_redis_cache": {"cluster": "cache-main", "db": 3},
    "restart_kubernetes_pod": {"namespace": "prod", "pod": "checkout-7d9f"},
    "rollout_restart_deployment": {"namespace": "prod", "deployment": "checkout"},
    "rollback_deployment": {"namespace": "prod", "deployment": "checkout", "to_revision": 41},
    "scale_deployment": {"namespace": "prod", "deployment": "checkout", "replicas": 6},
    "run_ssh_command": {"host": "db-1.internal", "command_id": "restart_pgbouncer"},
    "reboot_ec2_instance": {"instance_id": "i-0123456789abcdef0"},
    "ecs_force_new_deployment": {"cluster": "main", "service": "api"},
}

# A distinctive value of each action that must appear in the commands it would run.
EXPECTED_IN_PLAN = {
    "flush_redis_cache": "FLUSHDB",
    "restart_kubernetes_pod": "/namespaces/prod/pods/checkout-7d9f",
    "rollout_restart_deployment": "restartedAt",
    "rollback_deployment": "--to-revision=41",
    "scale_deployment": "spec.replicas=6",
    "run_ssh_command": "restart_pgbouncer",
    "reboot_ec2_instance": "i-0123456789abcdef0",
    "ecs_force_new_deployment": "forceNewDeployment=true",
}


def _action(action_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"action_id": action_id, "params": params or {}, "target": f"t:{action_id}"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test: a dry run touches nothing."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dry-run executor opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_catalog_fixture_covers_every_mutating_action() -> None:
    assert set(ACTIONS) == MUTATING_ACTIONS


def test_satisfies_the_executor_port() -> None:
    ex: Executor = DryRunExecutor()
    assert ex.reconcile(_action("scale_deployment"), "k") is None


@pytest.mark.parametrize("action_id", sorted(ACTIONS))
def test_records_what_it_would_do_for_every_action(action_id: str, no_network: None) -> None:
    ex = DryRunExecutor()
    action = _action(action_id, ACTIONS[action_id])
    res = ex.execute(action, f"wf-1:{action_id}")
    assert res["ok"] is True
    assert res["dry_run"] is True
    assert res["executor"] == "dry_run"
    assert res["action_id"] == action_id
    assert res["params"] == ACTIONS[action_id]
    assert res["target"] == f"t:{action_id}"
    assert res["idempotency_key"] == f"wf-1:{action_id}"
    assert res["would_run"] and all(isinstance(c, str) for c in res["would_run"])
    assert EXPECTED_IN_PLAN[action_id] in " ".join(res["would_run"])
    assert ex.calls == [res]


def test_key_pattern_flush_would_scan_not_keys() -> None:
    res = DryRunExecutor().execute(
        _action("flush_redis_cache", {"cluster": "c", "key_pattern": "session:*"}), "k"
    )
    plan = " ".join(res["would_run"])
    assert "SCAN" in plan and "MATCH session:*" in plan and "UNLINK" in plan
    assert "KEYS " not in plan and "FLUSHDB" not in plan


def test_same_key_twice_returns_the_recorded_result_once() -> None:
    ex = DryRunExecutor()
    action = _action("restart_kubernetes_pod", ACTIONS["restart_kubernetes_pod"])
    first = ex.execute(action, "wf-2:execute")
    again = ex.execute(action, "wf-2:execute")
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == first
    assert len(ex.calls) == 1


def test_reconcile_known_key_returns_recorded_result_unknown_returns_none() -> None:
    ex = DryRunExecutor()
    action = _action("scale_deployment", ACTIONS["scale_deployment"])
    assert ex.reconcile(action, "wf-3:execute") is None
    assert not ex.handled("wf-3:execute")
    done = ex.execute(action, "wf-3:execute")
    seen = ex.reconcile(action, "wf-3:execute")
    assert seen is not None
    assert seen["reconciled"] is True
    assert {k: v for k, v in seen.items() if k != "reconciled"} == done
    assert ex.handled("wf-3:execute")
    assert ex.reconcile(action, "other-key") is None


def test_results_are_copies() -> None:
    ex = DryRunExecutor()
    res = ex.execute(_action("scale_deployment", ACTIONS["scale_deployment"]), "k")
    res["would_run"].append("tampered")
    res["ok"] = False
    again = ex.reconcile(_action("scale_deployment"), "k")
    assert again is not None and again["ok"] is True and "tampered" not in again["would_run"]


@pytest.mark.parametrize(
    "action_id", ["query_metrics", "delete_namespace", "flush_redis_cache_now", "KEYS"]
)
def test_actions_outside_the_mutating_catalog_are_refused(action_id: str) -> None:
    res = DryRunExecutor().execute(_action(action_id), "k")
    assert res["ok"] is False
    assert res["refused"] is True
    assert res["may_have_run"] is False
    assert action_id in res["error"]
    assert "would_run" not in res


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (None, "JSON object"),
        ("flush_redis_cache", "JSON object"),
        ({}, "action_id"),
        ({"action_id": 7, "params": {}}, "action_id"),
        ({"action_id": "scale_deployment", "params": ["a"]}, "params"),
        ({"action_id": "scale_deployment", "params": {}, "target": 5}, "target"),
    ],
)
def test_malformed_actions_are_refused_not_raised(action: Any, message: str) -> None:
    res = DryRunExecutor().execute(action, "k")
    assert res["ok"] is False
    assert res["refused"] is True
    assert message in res["error"]


def test_concurrent_calls_with_one_key_record_one_call() -> None:
    ex = DryRunExecutor()
    action = _action("rollback_deployment", ACTIONS["rollback_deployment"])
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(ex.execute(action, "wf-4:execute")))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ex.calls) == 1
    assert sum(1 for r in results if not r.get("replayed")) == 1
