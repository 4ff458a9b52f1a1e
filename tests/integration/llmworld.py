"""A small incident world for the LLM tests: incident, snapshot, inventory, fakes, policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sentinel.analysis.llm import LlmAnalyst, LlmSettings
from sentinel.analysis.llm.scripted_server import ScriptedServer, Step
from sentinel.context.base import QueryResult
from sentinel.plan.runbooks import Runbook, RunbookPlanner
from sentinel.policy.actions import ProposedAction
from sentinel.policy.engine import evaluate
from sentinel.policy.facts import Facts
from sentinel.policy.rules import load_policy_file

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

INVENTORY: dict[str, Any] = {
    "pods": [
        {
            "namespace": "shop",
            "name": "checkout-7d9f8b-x2x9z",
            "deployment": "checkout",
            "service": "checkout",
        },
        {"namespace": "shop", "name": "payments-5c6d7-abcde", "deployment": "payments"},
    ],
    "deployments": [
        {
            "namespace": "shop",
            "name": "checkout",
            "replicas": 3,
            "current_revision": 7,
            "revisions": [5, 6, 7],
            "service": "checkout",
        },
        {
            "namespace": "shop",
            "name": "payments",
            "replicas": 2,
            "current_revision": 3,
            "revisions": [1, 2, 3],
            "service": "payments",
        },
    ],
}

ERROR_RATE_Q = 'sum(rate(http_requests_total{service="checkout",code=~"5.."}[1m]))'


def incident(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The incident document the workflow hands the analyzer and planner."""
    labels = {
        "alertname": "HighErrorRateAfterDeploy",
        "service": "checkout",
        "namespace": "shop",
        "deployment": "checkout",
    }
    return {
        "incident_id": "inc-llm-1",
        "service": "checkout",
        "title": "checkout 5xx above 5%",
        "status": "ANALYZING",
        "source_alert": {
            "alertname": "HighErrorRateAfterDeploy",
            "labels": labels,
            "annotations": annotations or {"summary": "checkout 5xx ratio above 5% for 5m"},
            "generator_url": None,
        },
    }


def snapshot() -> dict[str, Any]:
    """A snapshot with one Prometheus query and the causal ranking."""
    return {
        "data": {
            "prometheus": {
                "source": "prometheus",
                "ok": True,
                "queries": [
                    {
                        "name": "error_rate",
                        "query": ERROR_RATE_Q,
                        "ok": True,
                        "data": {
                            "step": 15,
                            "series": [
                                {
                                    "metric": {"service": "checkout"},
                                    "values": [[1, "0.01"], [2, "0.02"], [3, "0.41"]],
                                }
                            ],
                        },
                    }
                ],
            }
        },
        "causal": {
            "ranking": [
                {"service": "checkout", "metric": "error", "score": 0.91},
                {"service": "payments", "metric": "latency", "score": 0.22},
            ]
        },
    }


GOOD_RCA: dict[str, Any] = {
    "root_cause_found": True,
    "root_cause_service": "checkout",
    "hypothesis": "checkout revision 7 returns 5xx since its rollout",
    "causal_chain": [
        {
            "service": "checkout",
            "symptom": "5xx ratio 0.41",
            "evidence_refs": ["snapshot:prometheus:error_rate"],
        }
    ],
    "evidence_refs": ["snapshot:prometheus:error_rate", "ranking:0"],
    "entities": [
        {"kind": "service", "name": "checkout"},
        {"kind": "revision", "name": "7"},
    ],
    "confidence": 0.8,
    "reasoning": "the error rate rose right after revision 7",
}

GOOD_PLAN: dict[str, Any] = {
    "action_id": "rollback_deployment",
    "params": {"namespace": "shop", "deployment": "checkout", "to_revision": 6},
    "reasoning": "revision 7 broke checkout; 6 was healthy",
    "evidence_refs": ["snapshot:prometheus:error_rate"],
}


class FakeMetrics:
    """A metrics reader answering from a table (and recording queries)."""

    def __init__(self, table: dict[str, Any] | None = None) -> None:
        self.table = table or {}
        self.queries: list[str] = []

    def instant(self, query: str) -> QueryResult:
        self.queries.append(query)
        if query not in self.table:
            return QueryResult(
                name="instant", query=query, ok=False, error="HTTP 400: bad_data parse error"
            )
        return QueryResult(name="instant", query=query, ok=True, data=self.table[query])


def settings(base_url: str, **kw: Any) -> LlmSettings:
    """LLM settings pointing at a scripted server."""
    values: dict[str, Any] = {
        "provider": "openai",
        "base_url": base_url,
        "model": "scripted",
        "timeout_seconds": 10.0,
        "max_retries": 2,
        "prompt_price_per_1k": 0.5,
        "completion_price_per_1k": 1.5,
    }
    values.update(kw)
    return LlmSettings(**values)


@contextmanager
def analyst(
    script: list[Step], *, settings_kw: dict[str, Any] | None = None, **tools: Any
) -> Iterator[tuple[LlmAnalyst, ScriptedServer]]:
    """An analyst talking to a scripted server through the real OpenAI client over HTTP."""
    with ScriptedServer(script) as srv:
        tools.setdefault("inventory", INVENTORY)
        yield LlmAnalyst(settings(srv.base_url, **(settings_kw or {})), **tools), srv


def runbook_planner() -> RunbookPlanner:
    """The deterministic fallback: roll back to the previous revision after a deploy."""
    return RunbookPlanner(
        [
            Runbook.model_validate(
                {
                    "id": "error-rate-after-deploy",
                    "description": "errors rose after a deploy; roll back",
                    "match": {"alertname": "HighErrorRateAfterDeploy"},
                    "action": "rollback_deployment",
                    "params": {
                        "namespace": "$labels.namespace",
                        "deployment": "$labels.deployment",
                        "to_revision": {
                            "previous_revision": {
                                "namespace": "$labels.namespace",
                                "deployment": "$labels.deployment",
                            }
                        },
                    },
                }
            )
        ]
    )


@cache
def _policy() -> Any:
    return load_policy_file(ROOT / "policies" / "default.yaml")


def policy_outcome(proposal: dict[str, Any]) -> tuple[str, str]:
    """(outcome, rule id) of the shipped policy for a proposal, in prod, with no approval."""
    policy = _policy()
    facts = Facts.model_validate({"environment": "prod", "now": NOW, "inventory": INVENTORY})
    decision = evaluate(
        ProposedAction(
            action_id=str(proposal["action_id"]),
            params=dict(proposal.get("params") or {}),
            reasoning=str(proposal.get("reasoning") or ""),
        ),
        facts,
        policy,
    )
    return decision.outcome.value, decision.rule_id
