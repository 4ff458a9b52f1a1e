"""The LLM analyst and planner against the scripted server, through pydantic-ai's real OpenAI
client over HTTP. No test reaches a vendor: every base_url is a local scripted server."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from sentinel.analysis.llm import FallbackAnalyzer, FallbackPlanner, LlmAnalyst, build_llm
from sentinel.analysis.llm.scripted_server import Reply, ScriptedServer, call, final, say
from sentinel.analysis.llm.settings import LlmSettings
from sentinel.policy.actions import Action, ProposedAction, parse_proposal
from tests.integration.llmworld import (
    ERROR_RATE_Q,
    GOOD_PLAN,
    GOOD_RCA,
    INVENTORY,
    FakeMetrics,
    analyst,
    incident,
    policy_outcome,
    runbook_planner,
    snapshot,
)

CTX = {"inventory": INVENTORY}


def _no_trace(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "llm_trace"}


def test_correct_rca_and_valid_proposal_with_full_trace() -> None:
    metrics = FakeMetrics({ERROR_RATE_Q: {"result": [{"metric": {}, "value": [1, "0.41"]}]}})
    script = [
        call("query_metrics", promql=ERROR_RATE_Q),
        final("submit_rca", GOOD_RCA),
        call("lookup_inventory", kind="deployments", service="checkout"),
        final("submit_plan", GOOD_PLAN),
    ]
    with analyst(script, metrics=metrics) as (a, srv):
        rca = a.analyze(incident(), snapshot())
        plan = a.plan(incident(), rca, CTX)

    assert rca["ok"] and not rca["fallback_required"]
    assert rca["root_cause_service"] == "checkout"
    assert rca["confidence"] == 0.8 and rca["confidence_caps"] == []
    assert rca["flags"] == []
    assert metrics.queries == [ERROR_RATE_Q]

    assert plan["action_id"] == "rollback_deployment"
    assert plan["params"] == {"namespace": "shop", "deployment": "checkout", "to_revision": 6}
    assert isinstance(
        parse_proposal(ProposedAction(action_id=plan["action_id"], params=plan["params"])), Action
    )
    assert plan["target"] == "k8s:shop/deployment/checkout"
    # CRITICAL: the shipped policy asks a human, whatever the model thinks.
    assert policy_outcome(plan)[0] == "REQUIRE_APPROVAL"

    # The trace holds the exact prompts sent, the tool calls and the raw responses.
    t = rca["llm_trace"]
    json.dumps(t)  # JSON-serializable
    sent = srv.requests[0]["messages"]
    assert sent[0] == {"role": "system", "content": t["system_prompt"]}
    assert sent[1] == {"role": "user", "content": t["user_prompt"]}
    assert "snapshot:prometheus:error_rate" in t["user_prompt"]
    assert t["tool_calls"][0]["tool"] == "query_metrics"
    assert json.loads(t["tool_calls"][0]["args"]) == {"promql": ERROR_RATE_Q}
    env = t["tool_calls"][0]["result"]
    assert env["query"] == ERROR_RATE_Q and env["ok"] is True and env["truncated"] is False
    responses = [m for m in t["messages"] if m["kind"] == "response"]
    assert json.loads(responses[-1]["parts"][0]["args"]) == GOOD_RCA
    assert t["outcome"] == "ok" and t["usage"]["requests"] == 2

    # Usage and cost per call, and the plan only got what the analysis left of the budget.
    assert rca["usage"]["total_tokens"] > 0 and rca["usage"]["cost_usd"] > 0
    assert plan["llm_trace"]["token_limit"] == (
        a.settings.token_budget_per_incident - rca["usage"]["total_tokens"]
    )
    assert plan["llm_trace"]["tool_calls"][0]["result"]["data"][0]["name"] == "checkout"


def test_malformed_json_is_retried_then_succeeds() -> None:
    script = [
        final("submit_rca", '{"root_cause_found": true, "hypothesis": "checkout'),
        final("submit_rca", GOOD_RCA),
    ]
    with analyst(script) as (a, srv):
        rca = a.analyze(incident(), snapshot())
    assert rca["ok"] and rca["root_cause_service"] == "checkout"
    assert len(srv.requests) == 2
    # The second request carried the validation error back to the model.
    last = json.dumps(srv.requests[1]["messages"][-1])
    assert "Invalid JSON" in last or "json_invalid" in last
    assert any(f["kind"] == "invalid_output" for f in rca["flags"])


def test_action_outside_catalog_is_refused_retried_then_runbook_takes_over() -> None:
    bad = {"action_id": "delete_namespace", "params": {"namespace": "shop"}, "reasoning": "x"}
    script = [final("submit_plan", bad)] * 3  # first try + max_retries (2)
    with analyst(script) as (a, srv):
        planner = FallbackPlanner(a, runbook_planner())
        out = planner.plan(incident(), None, CTX)
    assert len(srv.requests) == 3
    assert "is not in catalog" in json.dumps(srv.requests[1]["messages"][-1])
    assert out["planner"] == "runbook" and out["runbook_id"] == "error-rate-after-deploy"
    assert out["action_id"] == "rollback_deployment"
    assert out["params"]["to_revision"] == 6
    assert out["fallback"]["from"] == "llm"
    assert out["fallback"]["outcome"] == "invalid_output"
    kinds = [f["kind"] for f in out["fallback"]["flags"]]
    assert kinds.count("not_in_catalog") == 3
    assert out["llm_trace"]["outcome"] == "invalid_output"


def test_pod_not_in_inventory_is_flagged_and_never_proposed() -> None:
    ghost = {
        "action_id": "restart_kubernetes_pod",
        "params": {"namespace": "shop", "pod": "checkout-ghost-0000"},
        "reasoning": "restart it",
    }
    real = {**ghost, "params": {"namespace": "shop", "pod": "checkout-7d9f8b-x2x9z"}}
    # It insists: refused every time, no proposal leaves the layer.
    with analyst([final("submit_plan", ghost)] * 3) as (a, _):
        out = a.plan(incident(), None, CTX)
    assert out["action_id"] is None and out["fallback_required"]
    assert "checkout-ghost-0000 is not in the inventory" in out["reason"]
    assert [f["kind"] for f in out["flags"]] == ["not_in_inventory"] * 3
    # It corrects itself after the refusal: the real pod is proposed, the flag stays.
    with analyst([final("submit_plan", ghost), final("submit_plan", real)]) as (a, srv):
        out = a.plan(incident(), None, CTX)
    assert out["params"]["pod"] == "checkout-7d9f8b-x2x9z"
    assert out["flags"][0]["kind"] == "not_in_inventory"
    assert "lookup_inventory" in json.dumps(srv.requests[1]["messages"][-1])


@pytest.mark.parametrize(
    "extra",
    [
        {"risk": "SAFE"},
        {"approval": {"approved": True, "approver": "sentinel"}},
        {"policy": "skip"},
        {"requires_approval": False},
    ],
)
def test_output_setting_risk_approval_or_policy_is_refused(extra: dict[str, Any]) -> None:
    key = next(iter(extra))
    script = [final("submit_plan", {**GOOD_PLAN, **extra})] * 3
    with analyst(script) as (a, _):
        out = a.plan(incident(), None, CTX)
    assert out["action_id"] is None and out["fallback_required"]
    assert key not in json.dumps(_no_trace(out).get("params", {}))
    flags = [f for f in out["flags"] if f["kind"] == "forbidden_field"]
    assert len(flags) == 3 and flags[0]["field"] == key


def test_risk_inside_params_is_refused_and_the_clean_retry_passes() -> None:
    sneaky = {**GOOD_PLAN, "params": {**GOOD_PLAN["params"], "risk": "SAFE"}}
    with analyst([final("submit_plan", sneaky), final("submit_plan", GOOD_PLAN)]) as (a, _):
        out = a.plan(incident(), None, CTX)
    assert out["params"] == GOOD_PLAN["params"]
    assert out["flags"][0] == {
        "kind": "forbidden_field",
        "message": out["flags"][0]["message"],
        "field": ["params.risk"],
    }


def test_model_that_times_out_falls_back_within_the_timeout() -> None:
    script = [Reply(content="late", delay=30)]
    with analyst(script, settings_kw={"timeout_seconds": 1.0}) as (a, _):
        planner = FallbackPlanner(a, runbook_planner())
        started = time.monotonic()
        out = planner.plan(incident(), None, CTX)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert out["planner"] == "runbook" and out["action_id"] == "rollback_deployment"
    assert out["fallback"]["outcome"] == "timeout"


def test_token_budget_exceeded_stops_and_falls_back() -> None:
    script = [
        Reply(
            tool_calls=call("query_metrics", promql="up").tool_calls,
            prompt_tokens=30_000,
            completion_tokens=10,
        ),
        final("submit_plan", GOOD_PLAN),
    ]
    metrics = FakeMetrics({"up": {"result": []}})
    with analyst(script, metrics=metrics) as (a, srv):
        planner = FallbackPlanner(a, runbook_planner())
        out = planner.plan(incident(), None, CTX)
    assert len(srv.requests) == 1  # stopped before asking again
    assert metrics.queries == []  # and before running the tool
    assert out["fallback"]["outcome"] == "budget_exceeded"
    assert out["fallback"]["usage"]["total_tokens"] == 30_010
    assert out["planner"] == "runbook"


def test_plan_is_skipped_when_the_analysis_spent_the_budget() -> None:
    with analyst([]) as (a, srv):
        out = a.plan(incident(), {"usage": {"total_tokens": 23_500}}, CTX)
    assert srv.requests == []
    assert out["fallback_required"] and out["outcome"] == "skipped"


@pytest.mark.parametrize(
    "reply",
    [Reply(status=500), Reply(raw="{not json at all", status=200)],
    ids=["http-500", "malformed-body"],
)
def test_server_errors_fall_back(reply: Reply) -> None:
    with analyst([reply]) as (a, _):
        rca = a.analyze(incident(), snapshot())
    assert rca["fallback_required"] and rca["outcome"] in {"model_error", "error"}
    assert rca["hypothesis"] is None and rca["confidence"] == 0.0
    fb = FallbackAnalyzer(a, _CausalStub())
    with analyst([reply]) as (a2, _):
        out = FallbackAnalyzer(a2, _CausalStub()).analyze(incident(), snapshot())
    assert fb.name == "llm+causal"
    assert out["analyzer"] == "causal" and out["llm_attempt"]["outcome"] == rca["outcome"]


class _CausalStub:
    name = "causal"

    def analyze(self, incident: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
        return {"hypothesis": "checkout ranks first", "ranking": snapshot["causal"]["ranking"]}


def test_no_root_cause_found_is_a_valid_answer() -> None:
    answer = {
        "root_cause_found": False,
        "hypothesis": "no root cause found: the only series is the symptom itself",
        "evidence_refs": ["snapshot:prometheus:error_rate"],
        "confidence": 0.9,
        "reasoning": "not enough evidence",
    }
    with analyst([final("submit_rca", answer)]) as (a, _):
        rca = a.analyze(incident(), snapshot())
    assert rca["ok"] and not rca["fallback_required"]
    assert rca["root_cause_found"] is False and rca["root_cause_service"] is None
    assert rca["confidence"] == 0.0


def test_names_absent_from_the_evidence_are_flagged_and_cap_confidence() -> None:
    answer = {
        **GOOD_RCA,
        "root_cause_service": "inventory-db",
        "hypothesis": "inventory-db-0 ran out of connections (pg_stat_activity_count) "
        "after revision 42",
        "evidence_refs": ["tool:made-up"],
        "confidence": 0.95,
    }
    with analyst([final("submit_rca", answer)]) as (a, _):
        rca = a.analyze(incident(), snapshot())
    names = {f["name"] for f in rca["flags"] if f["kind"] == "unknown_entity"}
    assert {"inventory-db", "inventory-db-0", "pg_stat_activity_count", "42"} <= names
    assert any(f["kind"] == "unknown_evidence_ref" for f in rca["flags"])
    assert any(f["kind"] == "disagrees_with_ranking" for f in rca["flags"])
    assert rca["confidence"] < 0.1 and rca["model_confidence"] == 0.95


def test_replay_reproduces_decisions_without_a_model() -> None:
    script = [call("query_metrics", promql=ERROR_RATE_Q), final("submit_rca", GOOD_RCA)]
    bad = {"action_id": "nuke", "params": {}, "reasoning": "x"}
    script += [final("submit_plan", bad), final("submit_plan", GOOD_PLAN)]
    metrics = FakeMetrics({ERROR_RATE_Q: {"result": []}})
    with analyst(script, metrics=metrics) as (a, _):
        rca = a.analyze(incident(), snapshot())
        plan = a.plan(incident(), rca, CTX)
    # No server, no provider: only the recording.
    off = LlmAnalyst(LlmSettings())
    rca2 = off.replay_analyze(rca["llm_trace"], incident(), snapshot())
    plan2 = off.replay_plan(plan["llm_trace"], incident(), rca, CTX)
    # Same decisions and tokens; the cost follows today's prices (none configured here).
    for before, after in ((rca, rca2), (plan, plan2)):
        assert _no_trace(after) | {"usage": None} == _no_trace(before) | {"usage": None}
        assert after["usage"] | {"cost_usd": 0} == before["usage"] | {"cost_usd": 0}
    assert plan2["llm_trace"]["replayed"] is True
    assert len(metrics.queries) == 1  # the replay read the recorded envelope


def test_replay_of_a_timeout_reproduces_the_timeout() -> None:
    with analyst([Reply(content="late", delay=30)], settings_kw={"timeout_seconds": 0.5}) as (
        a,
        _,
    ):
        plan = a.plan(incident(), None, CTX)
    again = LlmAnalyst(LlmSettings()).replay_plan(plan["llm_trace"], incident(), None, CTX)
    assert again["outcome"] == "timeout" and again["fallback_required"]


def test_tool_errors_come_back_in_full_and_outputs_are_truncated() -> None:
    big = {"result": [{"metric": {"pod": f"checkout-{i}"}, "value": [1, "1"]} for i in range(500)]}
    metrics = FakeMetrics({"up": big})
    logs_seen: list[tuple[str, str]] = []

    def logs(service: str, timeframe: str) -> list[str]:
        logs_seen.append((service, timeframe))
        raise RuntimeError("loki: 502 Bad Gateway from upstream loki-read-0")

    script = [
        call("query_metrics", promql="up"),
        call("query_metrics", promql="sum(rate(x[5m]"),
        call("fetch_recent_logs", service="checkout", timeframe="15m"),
        call("fetch_recent_logs", service="checkout; rm -rf /", timeframe="15m"),
        final("submit_rca", GOOD_RCA),
    ]
    with analyst(
        script, metrics=metrics, logs=logs, settings_kw={"tool_output_max_chars": 1000}
    ) as (
        a,
        _,
    ):
        rca = a.analyze(incident(), snapshot())
    calls = rca["llm_trace"]["tool_calls"]
    assert calls[0]["result"]["truncated"] is True
    assert len(json.dumps(calls[0]["result"]["data"])) <= 1000
    assert calls[1]["result"] == {
        "tool": "query_metrics",
        "query": "sum(rate(x[5m]",
        "ok": False,
        "truncated": False,
        "error": "HTTP 400: bad_data parse error",
        "evidence_id": f"tool:{calls[1]['id']}",
    }
    assert calls[2]["result"]["error"] == (
        "RuntimeError: loki: 502 Bad Gateway from upstream loki-read-0"
    )
    assert "invalid params for fetch_recent_logs" in calls[3]["result"]["error"]
    assert logs_seen == [("checkout", "15m")]


def test_secrets_are_redacted_from_prompts() -> None:
    inc = incident({"summary": "boom", "runbook": "use Bearer abcdefghijklmnopqrstuvwxyz"})

    def logs(service: str, timeframe: str) -> list[str]:
        raise RuntimeError("auth failed with Bearer zyxwvutsrqponmlkjihgfedcba")

    script = [
        call("fetch_recent_logs", service="checkout", timeframe="5m"),
        final("submit_rca", GOOD_RCA),
    ]
    with analyst(script, logs=logs) as (a, srv):
        rca = a.analyze(inc, snapshot())
    wire = json.dumps(srv.requests) + json.dumps(rca)
    assert "abcdefghijklmnopqrstuvwxyz" not in wire
    assert "zyxwvutsrqponmlkjihgfedcba" not in wire
    assert "[REDACTED]" in rca["llm_trace"]["user_prompt"]
    assert "[REDACTED]" in rca["llm_trace"]["tool_calls"][0]["result"]["error"]


def test_postmortem_narrative_is_prose_from_the_facts() -> None:
    facts = "- 12:00 HighErrorRateAfterDeploy fired for checkout\n- 12:03 rollback to revision 6"
    prose = "Checkout errors rose after a deploy. Sentinel rolled back to revision 6."
    with analyst([say(prose)]) as (a, srv):
        text = a.narrate_postmortem(facts)
    assert text == prose
    assert "rollback to revision 6" in srv.requests[0]["messages"][1]["content"]
    assert "tools" not in srv.requests[0]
    with analyst([say("The payments-db-7 failover caused it.")]) as (a, _):
        out2 = a.narrate(facts)
    assert out2["flags"] == [
        {"kind": "unknown_entity", "name": "payments-db-7", "field": "narrative"}
    ]
    with analyst([Reply(status=500)]) as (a, _):
        assert a.narrate_postmortem(facts) == ""


def test_off_by_default() -> None:
    assert build_llm(LlmSettings()) is None
    with pytest.raises(ValueError, match="model is required"):
        LlmSettings(provider="openai")
    out = LlmAnalyst(LlmSettings()).plan(incident(), None, CTX)
    assert out["fallback_required"] and "no model configured" in out["reason"]


def test_scripted_server_streams_sse() -> None:
    with ScriptedServer([say("hello"), call("lookup_inventory", kind="pods")]) as srv:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        r1 = httpx.post(f"{srv.base_url}/chat/completions", json=body)
        r2 = httpx.post(f"{srv.base_url}/chat/completions", json=body)
        r3 = httpx.post(f"{srv.base_url}/chat/completions", json={**body, "stream": False})
    chunks1 = [json.loads(x[6:]) for x in r1.text.split("\n\n") if x.startswith("data: {")]
    assert chunks1[0]["choices"][0]["delta"]["content"] == "hello"
    assert r1.text.rstrip().endswith("data: [DONE]")
    chunks2 = [json.loads(x[6:]) for x in r2.text.split("\n\n") if x.startswith("data: {")]
    assert chunks2[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == (
        "lookup_inventory"
    )
    assert r3.status_code == 500 and "exhausted" in r3.text
    assert len(srv.requests) == 3


def test_concurrent_incidents_share_one_analyst() -> None:
    """Worker threads call one analyst at once; every call runs on its single event loop."""
    from concurrent.futures import ThreadPoolExecutor

    def answer(body: dict[str, Any]) -> Reply:
        return final("submit_rca", GOOD_RCA, delay=0.5)

    with analyst([answer] * 9) as (a, srv):
        a.analyze(incident(), snapshot())  # warm up (imports, the loop thread)
        srv.requests.clear()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: a.analyze(incident(), snapshot()), range(8)))
        elapsed = time.monotonic() - started
        a.close()
    assert all(r["ok"] and r["root_cause_service"] == "checkout" for r in results)
    assert len(srv.requests) == 8
    assert elapsed < 2.5  # concurrent on the loop, not 8 x 0.5 s in a row
