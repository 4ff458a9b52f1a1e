"""Exactly-once database steps and at-most-once side effects (WORKFLOW.md rules 3, 4, 6)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from sentinel.audit import chain as audit
from sentinel.audit.models import ActionType, Actor
from sentinel.core.clock import utcnow
from sentinel.core.db import transaction
from sentinel.flows import deps as flow_deps
from sentinel.flows import runtime
from sentinel.flows.models import Intent, IntentStatus, StepResult

log = logging.getLogger("sentinel.flows")

StepBody = Callable[[Any], dict[str, Any]]


def crash_point(name: str) -> None:
    """SIGKILL this process at a named point when configured to (for crash tests only)."""
    if flow_deps.get().settings.worker.crash_after_step == name:
        log.warning("crash point %s reached: SIGKILL", name)
        os.kill(os.getpid(), signal.SIGKILL)


def db_step(
    step: str,
    incident_id: str,
    inputs: dict[str, Any],
    body: Callable[[Any], dict[str, Any]],
    *,
    action_type: str = ActionType.WORKFLOW_STEP,
) -> dict[str, Any]:
    """Run a database step once: its change, its result and its audit record commit together.

    If the process died after the commit but before the engine checkpointed the step,
    the re-run finds the stored result and returns it without touching anything.
    """
    d = flow_deps.get()
    wf = runtime.current_workflow_id()
    with transaction(d.engine) as s:
        prior = s.get(StepResult, (wf, step))
        if prior is not None:
            return dict(prior.output)
        out = body(s)
        s.add(
            StepResult(
                workflow_id=wf, step=step, output=out, executor_id=d.settings.worker.executor_id
            )
        )
        audit.append(
            s,
            actor=Actor.SENTINEL_AGENT,
            action_type=action_type,
            incident_id=incident_id,
            details={
                "step": step,
                "workflow_id": wf,
                "executor_id": d.settings.worker.executor_id,
                "input": inputs,
                "output": out,
            },
        )
    crash_point(step)
    return out


def at_most_once(
    *,
    incident_id: str,
    kind: str,
    target: str,
    key: str,
    call: Callable[[], dict[str, Any]],
    reconcile: Callable[[], dict[str, Any] | None],
    action_type: str,
    action_id: str | None = None,
    service: str | None = None,
) -> dict[str, Any]:
    """Run an external side effect at most once under an idempotency key.

    The intent (EXECUTING) commits before the call. On re-entry with the intent still
    EXECUTING, the call is never repeated: ``reconcile`` asks the target whether it
    happened; if the target cannot tell, the intent becomes UNKNOWN for a human.
    """
    d = flow_deps.get()
    with transaction(d.engine) as s:
        intent = s.get(Intent, key)
        if intent is not None and intent.status != IntentStatus.EXECUTING:
            return {"status": intent.status, "result": intent.result, "replayed": True}
        fresh = intent is None
        if fresh:
            s.add(
                Intent(
                    idempotency_key=key,
                    incident_id=incident_id,
                    kind=kind,
                    target=target,
                    status=IntentStatus.EXECUTING,
                    executor_id=d.settings.worker.executor_id,
                    action_id=action_id,
                    service=service,
                )
            )
            audit.append(
                s,
                actor=Actor.SENTINEL_AGENT,
                action_type=action_type,
                incident_id=incident_id,
                details={"phase": "intent", "kind": kind, "target": target, "key": key},
            )
    crash_point(f"{kind}:after_intent")
    status: IntentStatus
    if fresh:
        try:
            result = call()
            status = _status_of(result)
        except Exception as exc:  # noqa: BLE001 - the failure itself is the recorded result
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            status = IntentStatus.FAILED
    else:
        seen = reconcile()
        if seen is None:
            status = IntentStatus.UNKNOWN
            result = {
                "ok": False,
                "reconcile": "interrupted mid-call; the target cannot tell whether it happened,"
                " so it was not repeated",
            }
        else:
            result = seen
            status = _status_of(seen)
    crash_point(f"{kind}:after_call")
    with transaction(d.engine) as s:
        intent = s.get(Intent, key)
        assert intent is not None
        intent.status = status
        intent.result = result
        intent.finished_at = utcnow()
        audit.append(
            s,
            actor=Actor.SENTINEL_AGENT,
            action_type=action_type,
            incident_id=incident_id,
            details={
                "phase": "result",
                "kind": kind,
                "target": target,
                "key": key,
                "status": status,
                "reconciled": not fresh,
                "result": result,
            },
        )
    return {"status": status, "result": result, "replayed": False}


def _status_of(result: dict[str, Any]) -> IntentStatus:
    """Succeeded, failed, or unknown when a failure may still have changed the target."""
    if result.get("ok", True):
        return IntentStatus.SUCCEEDED
    return IntentStatus.UNKNOWN if result.get("may_have_run") else IntentStatus.FAILED
