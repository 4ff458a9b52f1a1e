"""Prompt tokens the LLM analyst + planner send per public scenario (goal: at most 8,000
an incident, every request of the analysis and the plan together).

    uv run python bench/llm_tokens/run.py            # every snapshots/*.json.gz
    uv run python bench/llm_tokens/run.py --json out.json

Each scenario's captured context (capture.py: the incident, the stored context snapshot,
the causal RCA and the inventory of a `sentinel demo` run) goes through the real
`LlmAnalyst.analyze` and `.plan` over the real OpenAI client to the scripted
OpenAI-compatible server, with the tools the composition root wires: query_metrics plus the analysis tools). The scripted
model does what a careful model would: the analyst reads the causal ranking and the error
logs in full (read_evidence), then submits an RCA; the planner looks the deployment up
when its prompt's inventory does not show it, then proposes a rollout restart.

Tokens are counted on the request bodies the server received (messages + tool schemas)
with the estimator the LLM layer's budget runs on against this server
(`scripted_server.estimate_tokens`: 4 characters a token of the JSON); tiktoken is
installed but needs its BPE files from the network. "first" is the first request of a
call (system prompt, user prompt, tools); "total" adds the later requests, which re-send
the conversation with the tool results.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from sentinel.analysis.llm import LlmAnalyst, LlmSettings  # noqa: E402
from sentinel.analysis.llm.scripted_server import (  # noqa: E402
    Reply,
    ScriptedServer,
    ToolCall,
    estimate_tokens,
    final,
)
from sentinel.context.base import QueryResult  # noqa: E402

SNAPSHOTS = Path(__file__).parent / "snapshots"
GOAL = 8_000
LOGS_ID = "snapshot:loki:errors"


class Tools:
    """The metrics reader (the capture has no live Prometheus: every query says so)."""

    def instant(self, query: str) -> QueryResult:
        return QueryResult(name="instant", query=query, ok=False, error="not in the capture")


def _tool_names(body: dict[str, Any]) -> set[str]:
    return {str(t.get("function", {}).get("name")) for t in body.get("tools", [])}


def careful_model(case: dict[str, Any]) -> Any:
    """A scripted model reading what a careful analyst/planner would, then answering."""
    ranking = (case.get("causal") or {}).get("ranking") or []
    root = str(ranking[0]["service"]) if ranking else str(case["incident"]["service"])
    deps = [d for d in case["inventory"].get("deployments", []) if d.get("service") == root]

    def step(body: dict[str, Any]) -> Reply:
        msgs = body["messages"]
        read = any(m.get("role") == "tool" for m in msgs)
        if "submit_rca" in _tool_names(body):
            if not read:
                first = [ToolCall("causal_ranking", {"top": 10})]
                if LOGS_ID in json.dumps(msgs):
                    first.append(ToolCall("read_evidence", {"evidence_id": LOGS_ID}))
                return Reply(tool_calls=tuple(first))
            return final(
                "submit_rca",
                {
                    "root_cause_found": True,
                    "root_cause_service": root,
                    "hypothesis": f"{root} is the root cause: the causal ranking puts it first",
                    "causal_chain": [
                        {"service": root, "symptom": "deviates first", "evidence_refs": []}
                    ],
                    "evidence_refs": ["ranking:0"],
                    "entities": [{"kind": "service", "name": root}],
                    "confidence": 0.7,
                    "reasoning": "ranking and logs agree",
                },
            )
        # The planner's prompt shows the inventory of the RCA's services: it looks the
        # deployment up only when the prompt does not show it.
        user = "".join(str(m.get("content")) for m in msgs if m.get("role") == "user")
        shown = any(f'"name":"{d["name"]}"' in user for d in deps)
        if not read and not shown:
            return Reply(
                tool_calls=(ToolCall("lookup_inventory", {"kind": "deployments", "service": root}),)
            )
        if not deps:
            return final("submit_plan", {"action_id": None, "params": {}, "reasoning": "none"})
        return final(
            "submit_plan",
            {
                "action_id": "rollout_restart_deployment",
                "params": {"namespace": deps[0]["namespace"], "deployment": deps[0]["name"]},
                "reasoning": "restart the root-cause deployment",
                "evidence_refs": ["ranking:0"],
            },
        )

    return step


def tokens(body: dict[str, Any]) -> int:
    """The estimate the scripted server reports as usage.prompt_tokens for this request."""
    return estimate_tokens(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", [])))


def measure(case: dict[str, Any], **settings_kw: Any) -> dict[str, Any]:
    """Prompt tokens of one incident's analysis and plan."""
    tools = Tools()
    step = careful_model(case)
    with ScriptedServer([step] * 12) as srv:
        settings = LlmSettings(
            provider="openai",
            base_url=srv.base_url,
            model="scripted",
            timeout_seconds=30.0,
            **settings_kw,
        )
        # As bootstrap.py wires it: metrics and the inventory (logs come in the snapshot).
        analyst = LlmAnalyst(settings, metrics=tools, inventory=case["inventory"])
        try:
            rca = analyst.analyze(
                case["incident"], {"data": case["snapshot"], "causal": case["causal"]}
            )
            n_analyze = len(srv.requests)
            plan = analyst.plan(case["incident"], rca, {"inventory": case["inventory"]})
        finally:
            analyst.close()
        reqs = [tokens(b) for b in srv.requests]
    a, p = reqs[:n_analyze], reqs[n_analyze:]
    usage_in = int((rca.get("usage") or {}).get("input_tokens", 0)) + int(
        (plan.get("usage") or {}).get("input_tokens", 0)
    )
    return {
        "scenario": case["scenario"],
        "analyze_first": a[0] if a else 0,
        "analyze_total": sum(a),
        "analyze_requests": len(a),
        "plan_first": p[0] if p else 0,
        "plan_total": sum(p),
        "plan_requests": len(p),
        "first_max": max([a[0] if a else 0, p[0] if p else 0]),
        "request_max": max(reqs, default=0),
        "total": sum(reqs),
        "recorded_input_tokens": usage_in,
        "rca_ok": bool(rca.get("ok")),
        "plan": plan.get("action_id"),
        "planner_outcome": plan.get("outcome"),
    }


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(gzip.decompress(path.read_bytes())))


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | analyst 1st req | analyst total (reqs) | planner 1st req "
        "| planner total (reqs) | largest request | incident total | plan |"
    )
    out = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        out.append(
            f"| {r['scenario']} | {r['analyze_first']:,} | {r['analyze_total']:,} "
            f"({r['analyze_requests']}) | {r['plan_first']:,} | {r['plan_total']:,} "
            f"({r['plan_requests']}) | {r['request_max']:,} | {r['total']:,} "
            f"| {r['plan'] or '-'} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    ap.add_argument("scenarios", nargs="*", help="names (default: every snapshot)")
    args = ap.parse_args()
    paths = sorted(SNAPSHOTS.glob("*.json.gz"))
    if args.scenarios:
        paths = [p for p in paths if p.name.removesuffix(".json.gz") in args.scenarios]
    rows = [measure(load(p)) for p in paths]
    print(table(rows))
    worst = max(r["request_max"] for r in rows)
    worst_total = max(r["total"] for r in rows)
    print(
        f"\nlargest single request: {worst:,} tokens; largest incident total: "
        f"{worst_total:,} (goal per incident <= {GOAL:,}); estimator: 4 chars/token"
    )
    for r in rows:
        if r["recorded_input_tokens"] != r["total"]:
            print(f"note: {r['scenario']}: usage recorded {r['recorded_input_tokens']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if worst_total <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
