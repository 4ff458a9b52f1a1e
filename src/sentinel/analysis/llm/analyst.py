"""The LLM analyst and planner: typed answers over read-only tools, bound to evidence and budget.

No error escapes `analyze` or `plan`. A model that fails, times out, exhausts the token
budget or never gives a valid answer yields a result with `fallback_required: True`;
`FallbackPlanner` and `FallbackAnalyzer` then hand the incident to the deterministic
path (runbooks, the causal engine) and record why. A proposal leaves this layer only
after `parse_proposal` accepted it and the inventory holds what it names.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry, RunContext, UsageLimits, capture_run_messages
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ModelRequestTimeout,
    ModelTimeoutError,
    RunTimedOut,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.output import ToolOutput
from pydantic_ai.settings import ModelSettings

from sentinel.analysis.llm.evidence import (
    Evidence,
    bind_action,
    bind_rca,
    injection_flags,
    ranking_of,
    unknown_names,
)
from sentinel.analysis.llm.prompts import (
    ANALYST_SYSTEM,
    NARRATOR_SYSTEM,
    analyst_user,
    narrator_user,
    planner_system,
    planner_user,
    remediation_ids,
)
from sentinel.analysis.llm.schemas import SENSITIVE_KEYS, PlanOutput, RcaOutput
from sentinel.analysis.llm.settings import LlmSettings
from sentinel.analysis.llm.tools import (
    DeploymentsReader,
    LogsReader,
    MetricsReader,
    RunState,
    Toolbox,
)
from sentinel.analysis.llm.trace import (
    ReplayExhausted,
    compact_messages,
    count,
    recorded_model,
    recorded_tool_results,
    retry_errors,
    tool_calls_of,
    usage_of,
)
from sentinel.core.redact import redact
from sentinel.policy.actions import Action, ProposedAction, parse_proposal

__all__ = [
    "FallbackAnalyzer",
    "FallbackPlanner",
    "LlmAnalyst",
    "build_llm",
    "build_model",
]

RCA_TOOL = "submit_rca"
PLAN_TOOL = "submit_plan"
# Below this many tokens left, a call is not worth starting.
MIN_CALL_TOKENS = 1_000
# Evidence digest in the analyst's prompt (characters); the rest is listed by id to read.
# Every request of the call re-sends it, so it is kept to what a first look needs.
ANALYST_EVIDENCE_CHARS = 5_000
# Settings that decide how a recorded call is read back; the trace keeps them.
REPLAY_LIMITS = (
    "max_retries",
    "max_requests_per_call",
    "max_tool_calls_per_call",
    "tool_output_max_chars",
)

InventorySource = Mapping[str, Any] | Callable[[], Mapping[str, Any]]
_T = TypeVar("_T")


def build_model(settings: LlmSettings) -> Model:
    """The pydantic-ai model for the configured provider (the key comes from settings only)."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.provider == "openai":
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        # Local OpenAI-compatible servers need no key, but the client wants one.
        provider = OpenAIProvider(base_url=settings.base_url, api_key=key or "unused")
        return OpenAIChatModel(settings.model, provider=provider)
    if settings.provider == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        return AnthropicModel(
            settings.model,
            provider=AnthropicProvider(api_key=key or "unused", base_url=settings.base_url),
        )
    raise ValueError("llm.provider is not set: the LLM analyst is off")


@dataclass
class _Call:
    """What one model call produced (output None when it failed)."""

    output: Any
    outcome: str
    error: str | None
    flags: list[dict[str, Any]]
    usage: dict[str, Any]
    trace: dict[str, Any]
    refusals: list[dict[str, Any]] = field(default_factory=list)


def _spent(rca: Mapping[str, Any] | None) -> int:
    """Tokens the analysis of this incident already used (the plan gets the rest)."""
    if not rca:
        return 0
    for usage in (rca.get("usage"), (rca.get("llm_attempt") or {}).get("usage")):
        if isinstance(usage, Mapping) and usage.get("total_tokens") is not None:
            return int(usage["total_tokens"])
    return 0


class LlmAnalyst:
    """Analyzer and Planner backed by a model; `analyze`/`plan` satisfy the workflow ports."""

    name = "llm"

    def __init__(
        self,
        settings: LlmSettings,
        *,
        metrics: MetricsReader | None = None,
        logs: LogsReader | None = None,
        deployments: DeploymentsReader | None = None,
        inventory: InventorySource | None = None,
        model: Model | None = None,
    ) -> None:
        self.settings = settings
        self.toolbox = Toolbox(metrics=metrics, logs=logs, deployments=deployments)
        self._inventory = inventory
        self._model = (
            model if model is not None else (build_model(settings) if settings.enabled else None)
        )
        self._agents: dict[tuple[str, bool], Agent[RunState, Any]] = {}
        self._replayers: dict[tuple[tuple[str, Any], ...], LlmAnalyst] = {}
        self._loop = _LoopThread()

    def close(self) -> None:
        """Stop the analyst's event loop thread (and its replayers')."""
        self._loop.close()
        for r in self._replayers.values():
            r.close()

    # ------------------------------------------------------------ ports

    def analyze(self, incident: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
        """RCA of the incident from its snapshot (see module docstring for failure results)."""
        return self._analyze(incident, snapshot, None)

    def plan(
        self, incident: dict[str, Any], rca: dict[str, Any] | None, context: dict[str, Any]
    ) -> dict[str, Any]:
        """One validated catalog action, or {action_id: None, reason, fallback_required}."""
        return self._plan(incident, rca, context, None)

    def replay_analyze(
        self, trace: Mapping[str, Any], incident: dict[str, Any], snapshot: dict[str, Any]
    ) -> dict[str, Any]:
        """Re-run an analysis from its recorded model responses and tool results (no model)."""
        return self._replayer(trace)._analyze(incident, snapshot, trace)

    def replay_plan(
        self,
        trace: Mapping[str, Any],
        incident: dict[str, Any],
        rca: dict[str, Any] | None,
        context: dict[str, Any],
    ) -> dict[str, Any]:
        """Re-run a planning call from its recorded model responses and tool results."""
        return self._replayer(trace)._plan(incident, rca, context, trace)

    def _replayer(self, trace: Mapping[str, Any]) -> LlmAnalyst:
        """An analyst under the limits the trace was recorded with (retries, tool calls...).

        Validation retries and usage limits decide how a recording is read back, so replay
        uses the recorded ones, not today's configuration; it never has a model of its own.
        """
        limits = {k: v for k, v in dict(trace.get("limits") or {}).items() if k in REPLAY_LIMITS}
        settings = self.settings.model_copy(update={"provider": None, "api_key": None, **limits})
        key = tuple(sorted(limits.items()))
        found = self._replayers.get(key)
        if found is None:
            found = LlmAnalyst(settings, model=_NoModel())
            self._replayers[key] = found
        return found

    def narrate(
        self, facts: str | Mapping[str, Any], *, token_limit: int | None = None
    ) -> dict[str, Any]:
        """Post-mortem prose from audit-log facts: {text, ok, flags, outcome, usage, llm_trace}.

        The facts go to the model as delimited data; its text is checked for names the
        facts do not contain (flagged, never dropped silently).
        """
        ev = Evidence()
        ev.add("facts", {"kind": "facts"}, redact(facts if isinstance(facts, str) else dict(facts)))
        limit = self.settings.token_budget_per_incident if token_limit is None else token_limit
        flags: list[dict[str, Any]] = [{**f, "evidence_id": "facts"} for f in injection_flags(ev)]
        if limit < MIN_CALL_TOKENS:
            return {
                "text": "",
                "ok": False,
                "flags": flags,
                "outcome": "skipped",
                "error": f"token budget for the incident exhausted ({limit} left)",
                "usage": _zero_usage(),
                "llm_trace": None,
            }
        state = RunState(
            evidence=ev, token_limit=limit, max_chars=self.settings.tool_output_max_chars
        )
        call = self._call("narrate", NARRATOR_SYSTEM, narrator_user(facts), state, limit)
        text = call.output.strip() if isinstance(call.output, str) else ""
        flags += call.flags
        flags += [
            {"kind": "unknown_entity", "name": tok, "field": "narrative"}
            for tok in unknown_names(text, ev)
        ]
        return {
            "text": text,
            "ok": bool(text),
            "flags": flags,
            "outcome": call.outcome,
            "error": call.error,
            "usage": call.usage,
            "llm_trace": call.trace,
        }

    def narrate_postmortem(self, facts_markdown: str) -> str:
        """The model's prose for a post-mortem ("" when the model failed: use the facts alone)."""
        return str(self.narrate(facts_markdown)["text"])

    # ------------------------------------------------------------ analyze

    def _inventory_now(self) -> tuple[dict[str, Any], str]:
        src = self._inventory
        if src is None:
            return {}, "none"
        try:
            return dict(src() if callable(src) else src), "provider"
        except Exception as exc:  # noqa: BLE001 - a broken inventory read must not lose the RCA
            return {"_error": f"{type(exc).__name__}: {exc}"}, "provider"

    def _analyze(
        self,
        incident: dict[str, Any],
        snapshot: dict[str, Any],
        replay: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if isinstance(snapshot.get("inventory"), Mapping):
            inventory, inv_source = dict(snapshot["inventory"]), "snapshot"
        elif replay is not None:
            inventory, inv_source = dict(replay.get("inventory") or {}), "recording"
        else:
            inventory, inv_source = self._inventory_now()
        inventory.pop("_error", None)
        ev = Evidence.build(incident, snapshot, inventory)
        limit = (
            count(replay.get("token_limit"), self.settings.token_budget_per_incident)
            if replay
            else self.settings.token_budget_per_incident
        )
        user = analyst_user(incident, ev, max_chars=min(ANALYST_EVIDENCE_CHARS, limit))
        state = RunState(
            evidence=ev, token_limit=limit, max_chars=self.settings.tool_output_max_chars
        )
        call = self._call("analyze", ANALYST_SYSTEM, user, state, limit, replay=replay)
        call.trace["inventory_source"] = inv_source
        if inv_source == "provider":
            call.trace["inventory"] = inventory  # replay needs what the vocabulary held
        base: dict[str, Any] = {
            "analyzer": self.name,
            "outcome": call.outcome,
            "error": call.error,
            "usage": call.usage,
            "llm_trace": call.trace,
        }
        flags = call.flags + injection_flags(ev)
        out = call.output
        if not isinstance(out, RcaOutput):
            return {
                **base,
                "ok": False,
                "fallback_required": True,
                "reason": f"llm analyst {call.outcome}: {call.error}",
                "root_cause_found": False,
                "root_cause_service": None,
                "hypothesis": None,
                "confidence": 0.0,
                "flags": flags,
            }
        conf, bound_flags, caps = bind_rca(out, ev)
        return {
            **base,
            "ok": True,
            "fallback_required": False,
            "root_cause_found": out.root_cause_found,
            "root_cause_service": out.root_cause_service if out.root_cause_found else None,
            "hypothesis": out.hypothesis,
            "causal_chain": [link.model_dump() for link in out.causal_chain],
            "evidence_refs": list(out.evidence_refs),
            "entities": [e.model_dump() for e in out.entities],
            "confidence": conf,
            "model_confidence": out.confidence,
            "confidence_caps": caps,
            "reasoning": out.reasoning,
            "ranking": ev.ranking[:10],
            "flags": flags + bound_flags,
        }

    # ------------------------------------------------------------ plan

    def _plan(
        self,
        incident: dict[str, Any],
        rca: dict[str, Any] | None,
        context: dict[str, Any],
        replay: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        snapshot = dict(context.get("snapshot") or {})
        if rca and "ranking" not in snapshot and ranking_of(rca):
            snapshot["ranking"] = ranking_of(rca)
        inventory = context.get("inventory")
        if inventory is None:
            inventory = dict(replay.get("inventory") or {}) if replay else self._inventory_now()[0]
            inventory.pop("_error", None)
        ev = Evidence.build(incident, snapshot, inventory)
        if replay is not None:
            limit = count(replay.get("token_limit"), self.settings.token_budget_per_incident)
        else:
            limit = self.settings.token_budget_per_incident - _spent(rca)
        if limit < MIN_CALL_TOKENS:
            return {
                "action_id": None,
                "reason": f"llm planner: token budget for the incident exhausted ({limit} left)",
                "planner": self.name,
                "ok": False,
                "fallback_required": True,
                "outcome": "skipped",
                "error": "token budget exhausted",
                "flags": [],
                "usage": _zero_usage(),
                "llm_trace": None,
            }
        user = planner_user(incident, rca, ev, max_chars=min(12_000, limit))
        state = RunState(
            evidence=ev, token_limit=limit, max_chars=self.settings.tool_output_max_chars
        )
        call = self._call("plan", planner_system(), user, state, limit, replay=replay)
        if context.get("inventory") is None:
            call.trace["inventory"] = inventory
        base: dict[str, Any] = {
            "planner": self.name,
            "outcome": call.outcome,
            "error": call.error,
            "flags": call.flags + injection_flags(ev),
            "usage": call.usage,
            "llm_trace": call.trace,
        }
        out = call.output
        if not isinstance(out, PlanOutput):
            last = call.refusals[-1]["message"] if call.refusals else call.error
            return {
                **base,
                "action_id": None,
                "reason": f"llm planner {call.outcome}: {last}",
                "ok": False,
                "fallback_required": True,
            }
        if out.action_id is None:
            return {
                **base,
                "action_id": None,
                "reason": f"llm planner proposed no action: {out.reasoning}",
                "reasoning": out.reasoning,
                "ok": True,
                "fallback_required": False,
            }
        parsed = parse_proposal(ProposedAction(action_id=out.action_id, params=out.params))
        assert isinstance(parsed, Action)  # the output validator accepted it
        return {
            **base,
            "action_id": parsed.action_id.value,
            "params": parsed.params(),
            "reasoning": out.reasoning,
            "evidence_refs": list(out.evidence_refs),
            "target": parsed.target(),
            "ok": True,
            "fallback_required": False,
        }

    # ------------------------------------------------------------ one model call

    def _model_settings(self) -> ModelSettings:
        s = self.settings
        return ModelSettings(
            temperature=s.temperature,
            max_tokens=s.max_output_tokens,
            timeout=s.timeout_seconds,
            max_retries=s.transport_retries,
        )

    def _agent(self, kind: str, replay: bool) -> Agent[RunState, Any]:
        key = (kind, replay)
        agent = self._agents.get(key)
        if agent is not None:
            return agent
        retries = self.settings.max_retries
        output: Any
        system: str
        if kind == "analyze":
            output = ToolOutput(RcaOutput, name=RCA_TOOL)
            system = ANALYST_SYSTEM
        elif kind == "plan":
            output = ToolOutput(PlanOutput, name=PLAN_TOOL)
            system = planner_system()
        else:
            output, system = str, NARRATOR_SYSTEM
        agent = Agent(
            self._model,
            output_type=output,
            instructions=system,
            deps_type=RunState,
            tools=[] if kind == "narrate" else self.toolbox.tools(replay=replay),
            retries={"output": retries, "tools": retries},
            model_settings=self._model_settings(),
            defer_model_check=True,
            name=f"sentinel-{kind}",
        )
        if kind == "plan":
            agent.output_validator(_validate_plan)
        self._agents[key] = agent
        return agent

    def _call(
        self,
        kind: str,
        system: str,
        user: str,
        state: RunState,
        limit: int,
        *,
        replay: Mapping[str, Any] | None = None,
    ) -> _Call:
        s = self.settings
        model: Model | None = self._model
        if replay is not None:
            model = recorded_model(replay)
            state.recorded = recorded_tool_results(replay)
        trace: dict[str, Any] = {
            "kind": kind,
            "provider": s.provider,
            "model": s.model if replay is None else replay.get("model"),
            "base_url": s.base_url,
            "system_prompt": system,
            "user_prompt": user,
            "token_limit": limit,
            "timeout_seconds": s.timeout_seconds,
            "limits": {k: getattr(s, k) for k in REPLAY_LIMITS},
            "replayed": replay is not None,
        }
        output: Any = None
        outcome, error = "ok", None
        captured: list[ModelMessage] = []
        if model is None:
            outcome, error = "model_error", "no model configured (llm.provider is not set)"
        else:
            agent = self._agent(kind, replay is not None)
            limits = UsageLimits(
                request_limit=s.max_requests_per_call,
                tool_calls_limit=s.max_tool_calls_per_call,
                total_tokens_limit=limit,
            )

            async def run() -> tuple[Any, list[ModelMessage], BaseException | None]:
                with capture_run_messages() as messages:
                    try:
                        result = await agent.run(
                            user,
                            model=model,
                            deps=state,
                            usage_limits=limits,
                            timeout=s.timeout_seconds,
                        )
                    except Exception as exc:  # noqa: BLE001 - classified below
                        return None, messages, exc
                    return result.output, messages, None

            try:
                # The run's own deadline fires first; this one only guards a stuck tool thread.
                output, captured, failure = self._loop.run(run(), s.timeout_seconds + 5)
                if failure is not None:
                    raise failure
            except ReplayExhausted:
                outcome = str(replay.get("outcome") if replay else "error")
                error = str(replay.get("error") if replay else "replay exhausted")
            except UsageLimitExceeded as exc:
                outcome, error = "budget_exceeded", str(exc)
            except (RunTimedOut, ModelRequestTimeout, ModelTimeoutError, TimeoutError) as exc:
                outcome, error = "timeout", f"{type(exc).__name__}: {exc}"
            except UnexpectedModelBehavior as exc:
                outcome, error = "invalid_output", str(exc)
            except ModelAPIError as exc:
                outcome, error = "model_error", f"{type(exc).__name__}: {exc}"
            except (AgentRunError, Exception) as exc:  # noqa: BLE001 - never lose the incident
                outcome, error = "error", f"{type(exc).__name__}: {exc}"
        messages = compact_messages(captured)
        output_tools = {RCA_TOOL, PLAN_TOOL}
        instructions = next(
            (m.get("instructions") for m in messages if m.get("instructions")), None
        )
        for m in messages:
            m.pop("instructions", None)
        if instructions:
            trace["system_prompt"] = instructions
        usage: dict[str, Any] = usage_of(messages)
        calls = tool_calls_of(messages, output_tools)
        usage["tool_calls"] = len(calls)
        usage["cost_usd"] = round(
            usage["input_tokens"] / 1000 * s.prompt_price_per_1k
            + usage["output_tokens"] / 1000 * s.completion_price_per_1k,
            6,
        )
        flags = _output_flags(messages, {RCA_TOOL: RcaOutput, PLAN_TOOL: PlanOutput})
        flags += list(state.refusals)
        for err in retry_errors(messages):
            if err.get("type") in (None, "extra_forbidden", "json_invalid"):
                continue  # the first two are flagged from the raw responses
            flags.append(
                {
                    "kind": "invalid_output",
                    "error_type": err.get("type"),
                    "field": ".".join(str(x) for x in err.get("loc", [])),
                    "message": err.get("msg"),
                    "tool": err.get("tool_name"),
                }
            )
        trace.update(
            {
                "messages": messages,
                "tool_calls": calls,
                "outcome": outcome,
                "error": error,
                "usage": usage,
            }
        )
        return _Call(output, outcome, error, flags, usage, trace, list(state.refusals))


def _output_flags(
    messages: list[dict[str, Any]], schemas: Mapping[str, type[BaseModel]]
) -> list[dict[str, Any]]:
    """From every raw answer: unparseable JSON, and keys outside the schema (risk, approval...)."""
    flags: list[dict[str, Any]] = []
    for m in messages:
        if m.get("kind") != "response":
            continue
        for p in m["parts"]:
            schema = schemas.get(str(p.get("tool_name")))
            if p.get("part_kind") != "tool-call" or schema is None:
                continue
            args = p.get("args")
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args.strip() else {}
                except ValueError as exc:
                    flags.append(
                        {
                            "kind": "invalid_output",
                            "error_type": "json_invalid",
                            "message": str(exc),
                            "tool": p.get("tool_name"),
                        }
                    )
                    continue
            if not isinstance(args, dict):
                continue
            for key in args:
                if key not in schema.model_fields:
                    flags.append(
                        {
                            "kind": "forbidden_field"
                            if str(key).lower() in SENSITIVE_KEYS
                            else "unknown_field",
                            "field": str(key)[:100],
                            "tool": p.get("tool_name"),
                        }
                    )
    return flags


def _zero_usage() -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "output_tokens": 0,
        "total_tokens": 0,
        "requests": 0,
        "tool_calls": 0,
        "cost_usd": 0.0,
    }


class _NoModel(FunctionModel):
    """The model of a replaying analyst: any call that is not from a recording fails."""

    def __init__(self) -> None:
        def refuse(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            raise RuntimeError("replay calls no model")

        super().__init__(refuse, model_name="no-model")


class _LoopThread:
    """One event loop on a daemon thread for every model call of an analyst.

    The provider's async HTTP client binds its connections to the loop that opened them,
    so calls from many worker threads all run here (concurrently), never on per-thread loops.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run a coroutine on the loop and wait (at most `timeout` seconds) for its result."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="sentinel-llm", daemon=True).start()
                self._loop = loop
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def close(self) -> None:
        """Stop the loop (a later call starts a new one)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


def _refuse(state: RunState, kind: str, message: str, **kw: Any) -> ModelRetry:
    state.refusals.append({"kind": kind, "message": message, **kw})
    return ModelRetry(message)


def _validate_plan(ctx: RunContext[RunState], out: PlanOutput) -> PlanOutput:
    """Refuse (and send back) anything that is not a catalog action on real things."""
    state = ctx.deps
    sensitive = [k for k in out.params if k.lower() in SENSITIVE_KEYS]
    if sensitive:
        raise _refuse(
            state,
            "forbidden_field",
            f"params may not carry {sensitive}: risk, approval and policy are decided by the "
            "policy engine, not by you",
            field=[f"params.{k}" for k in sensitive],
        )
    if out.action_id is None:
        return out
    parsed = parse_proposal(ProposedAction(action_id=out.action_id, params=out.params))
    if not isinstance(parsed, Action):
        raise _refuse(
            state,
            parsed.code,
            f"{parsed.message}. Remediation action ids: {remediation_ids()}; "
            "or answer action_id null",
            action_id=out.action_id[:100],
        )
    why = bind_action(parsed, state.evidence.inventory)
    if why is not None:
        kind = "read_only" if parsed.read_only else "not_in_inventory"
        raise _refuse(
            state,
            kind,
            f"{why}. Name something that exists (lookup_inventory), or answer action_id null",
            action_id=parsed.action_id.value,
            target=parsed.target(),
        )
    return out


class _Named(Protocol):
    name: str


class _PlannerLike(_Named, Protocol):
    def plan(
        self, incident: dict[str, Any], rca: dict[str, Any] | None, context: dict[str, Any]
    ) -> dict[str, Any]: ...


class _AnalyzerLike(_Named, Protocol):
    def analyze(self, incident: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]: ...


class FallbackPlanner:
    """The primary (LLM) planner, and the fallback (runbooks) when it has no valid proposal."""

    def __init__(self, primary: _PlannerLike, fallback: _PlannerLike) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name}+{fallback.name}"

    def plan(
        self, incident: dict[str, Any], rca: dict[str, Any] | None, context: dict[str, Any]
    ) -> dict[str, Any]:
        """Primary's proposal if it made one; else the fallback's, with why it took over."""
        try:
            first = self.primary.plan(incident, rca, context)
        except Exception as exc:  # noqa: BLE001 - the deterministic path must still run
            first = {
                "action_id": None,
                "reason": f"{type(exc).__name__}: {exc}",
                "outcome": "error",
            }
        if first.get("action_id"):
            return {**first, "planner": first.get("planner", self.primary.name)}
        why = str(first.get("reason") or "no proposal")
        second = self.fallback.plan(incident, rca, context)
        out = {
            **second,
            "planner": self.fallback.name,
            "fallback": {
                "from": self.primary.name,
                "why": why,
                "outcome": first.get("outcome"),
                "flags": first.get("flags", []),
                "usage": first.get("usage"),
            },
            "llm_trace": first.get("llm_trace"),
        }
        if not second.get("action_id"):
            out["reason"] = (
                f"{self.primary.name}: {why}; {self.fallback.name}: {second.get('reason')}"
            )
        return out


class FallbackAnalyzer:
    """The primary (LLM) analyzer, and the fallback (causal engine) when it fails."""

    def __init__(self, primary: _AnalyzerLike, fallback: _AnalyzerLike) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = f"{primary.name}+{fallback.name}"

    def analyze(self, incident: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
        """Primary's RCA unless it asks for the fallback (or raises)."""
        try:
            first = self.primary.analyze(incident, snapshot)
        except Exception as exc:  # noqa: BLE001
            first = {"fallback_required": True, "reason": f"{type(exc).__name__}: {exc}"}
        if not first.get("fallback_required"):
            return first
        second = self.fallback.analyze(incident, snapshot)
        return {
            **second,
            "analyzer": self.fallback.name,
            "fallback": {"from": self.primary.name, "why": first.get("reason")},
            "llm_attempt": {
                k: first.get(k) for k in ("outcome", "error", "flags", "usage", "llm_trace")
            },
        }


def build_llm(settings: LlmSettings, **tools: Any) -> LlmAnalyst | None:
    """The analyst when a provider is configured; None (off) otherwise."""
    if not settings.enabled:
        return None
    return LlmAnalyst(settings, **tools)
