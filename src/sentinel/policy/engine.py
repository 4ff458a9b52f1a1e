"""The policy and risk engine: `evaluate(proposal, facts, policy) -> Decision`, pure.

No I/O, no clock, no randomness: the same proposal, facts and policy always give the
same Decision (replay relies on it). Checks run in this order; the first that decides
names the decision's `rule_id`:

     1. catalog        unknown action id             DENY      catalog.unknown_action
                       params fail validation        DENY      catalog.invalid_params
     2. read-only tool (query_metrics, ...)          EXECUTE   catalog.read_only
     3. environment    not in the policy             DENY      environment.unknown
     4. inventory      a param names nothing real    DENY      inventory.<what>
     5. namespace      on the deny list              DENY      guard.denied_namespace
     6. protected      label or target glob          DENY      guard.protected
     7. rules list     first match wins; none        DENY      default.deny
                       effect deny                   DENY      <rule id>
     8. rate limits    max reached in window         DENY      <rate limit id>
     9. blast radius   too many pods at once         DENY      guard.blast_radius
    10. freeze         window with outcome deny      DENY      <freeze id>
                       window with require_approval  needs approval (<freeze id>)
    11. mode           shadow                        SHADOW    mode.shadow
                       propose                       needs approval (mode.propose)
                       rule effect require_approval  needs approval (<rule id>)
                       autonomous, CRITICAL          needs approval (matrix.critical_needs_approval)
                       autonomous, not run_alone     needs approval (matrix.needs_approval)
                       autonomous, runs alone        EXECUTE   <matched rule id>
    12. approval       none offered                  REQUIRE_APPROVAL  <the gate above>
                       offered but not valid         REQUIRE_APPROVAL  approval.<problem>
                       valid                         EXECUTE   approval.valid

SHADOW means "record what would run, run nothing": it is reported only for actions that
passed every guard; `shadow_outcome` says what autonomous mode would have done
(EXECUTE or REQUIRE_APPROVAL), ignoring any approval. Read-only tools execute in every
mode: they change nothing.

Risk is max(the action's catalog risk for its params, the configured override): an
override can raise the risk, never lower it; read-only tools stay SAFE. An unknown action
is reported CRITICAL.

An approval is valid when it is bound to this proposal's digest, not used, not expired
at `facts.now`, given by someone other than the requester for CRITICAL, and the approver
holds a role allowed for the risk. The caller must mark the approval used when a
decision with `approval_id` set is executed.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase, translate

from pydantic import BaseModel, ConfigDict

from sentinel.policy._memo import derived
from sentinel.policy.actions import (
    CATALOG,
    Action,
    ActionId,
    EcsForceNewDeployment,
    FlushRedisCache,
    ProposalError,
    ProposedAction,
    RebootEc2Instance,
    RestartKubernetesPod,
    RiskLevel,
    RollbackDeployment,
    RolloutRestartDeployment,
    RunSshCommand,
    ScaleDeployment,
    _raw_digest,
    parse_proposal,
)
from sentinel.policy.facts import DeploymentFact, Facts, HistoryField, Inventory, PodFact
from sentinel.policy.rules import (
    FreezeOutcome,
    Policy,
    PolicyDocument,
    RateLimit,
    RateLimitScope,
    Rule,
    RuleEffect,
    RunMode,
    check_policy_text,
)

__all__ = [
    "Decision",
    "Explanation",
    "Outcome",
    "StepStatus",
    "TraceStep",
    "check_policy_text",
    "evaluate",
    "explain",
    "format_explanation",
]


_HISTORY_FIELD: dict[RateLimitScope, HistoryField] = {
    RateLimitScope.TARGET: "target",
    RateLimitScope.SERVICE: "service",
    RateLimitScope.ACTION: "action_id",
}


@dataclass(frozen=True, slots=True)
class _Limit:
    """A rate limit with what each decision needs already worked out."""

    limit: RateLimit
    counted: frozenset[str]  # action ids it applies to and counts; empty: every one
    field: HistoryField
    window: timedelta


def _limits(rate_limits: list[RateLimit]) -> tuple[_Limit, ...]:
    return tuple(
        _Limit(
            limit,
            frozenset(a.value for a in limit.actions),
            _HISTORY_FIELD[limit.per],
            timedelta(seconds=limit.window_seconds),
        )
        for limit in rate_limits
    )


class Outcome(StrEnum):
    """What the engine decided."""

    EXECUTE = "EXECUTE"
    REQUIRE_APPROVAL = "REQUIRE_APPROVAL"
    DENY = "DENY"
    SHADOW = "SHADOW"  # shadow mode: record what would run, run nothing


class Decision(BaseModel):
    """The engine's verdict on one proposal, with everything needed to audit and replay it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome
    risk: RiskLevel
    rule_id: str
    reasons: list[str]
    action_id: str
    target: str | None
    service: str | None
    environment: str
    mode: RunMode | None
    matched_rule: str | None  # id of the rules-list entry that matched, if any
    approval_required_by: str | None  # the gate that asked for an approval, if any
    approval_id: str | None  # set when a valid approval turned the decision into EXECUTE
    shadow_outcome: Outcome | None  # in shadow mode: what autonomous mode would do
    proposal_digest: str
    policy_hash: str
    evaluated_at: datetime

    @property
    def runs(self) -> bool:
        """True only when the action may be executed now."""
        return self.outcome is Outcome.EXECUTE


_DECISION_FIELDS = frozenset(Decision.model_fields)
_new_object = object.__new__
_set_slot = object.__setattr__


def _trusted_decision(fields: dict[str, object]) -> Decision:
    """A Decision from fields the engine computed itself, without validating them again.

    Every value already has its field's type (enums, str, None, the facts' UTC datetime,
    a list of str the evaluation no longer touches), so validation would only copy them:
    the result equals `Decision(**fields)` (the tests check it) at a quarter of the cost.
    """
    decision = _new_object(Decision)
    _set_slot(decision, "__dict__", fields)
    _set_slot(decision, "__pydantic_fields_set__", set(_DECISION_FIELDS))
    _set_slot(decision, "__pydantic_extra__", None)
    _set_slot(decision, "__pydantic_private__", None)
    return decision


class StepStatus(StrEnum):
    """Result of one check in an explanation."""

    PASS = "pass"
    FAIL = "fail"
    INFO = "info"


class TraceStep(BaseModel):
    """One check the engine made, in order."""

    model_config = ConfigDict(frozen=True)

    check: str
    status: StepStatus
    detail: str
    rule_id: str | None = None


class Explanation(BaseModel):
    """A decision and the step-by-step checks that produced it."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    steps: list[TraceStep]


@dataclass(frozen=True, slots=True)
class _Denied:
    rule_id: str
    reason: str


@dataclass(slots=True)
class _Resolved:
    """What an action's params name in the inventory."""

    what: str  # e.g. "pod prod/checkout-7d9f"
    service: str | None
    namespace: str | None = None
    labels: tuple[tuple[str, Mapping[str, str]], ...] = ()  # (whose, labels), broadest first
    related_targets: tuple[str, ...] = ()  # e.g. a pod's deployment
    pod: PodFact | None = None
    deployment: DeploymentFact | None = None

    def merged_labels(self) -> dict[str, str]:
        """Labels for rule matching: a pod's own labels over its deployment's."""
        merged: dict[str, str] = {}
        for _, labels in self.labels:
            merged.update(labels)
        return merged


def evaluate(proposal: ProposedAction, facts: Facts, policy: Policy) -> Decision:
    """Decide EXECUTE / REQUIRE_APPROVAL / DENY / SHADOW for a proposal; pure, no I/O."""
    return _Evaluation(proposal, facts, policy, None).run()


def explain(proposal: ProposedAction, facts: Facts, policy: Policy) -> Explanation:
    """Evaluate and return the decision with the trace of every check made."""
    steps: list[TraceStep] = []
    decision = _Evaluation(proposal, facts, policy, steps).run()
    return Explanation(decision=decision, steps=steps)


def format_explanation(explanation: Explanation) -> str:
    """Human-readable trace for `sentinel policy explain`."""
    d = explanation.decision
    lines = [
        f"action   {d.action_id}  target {d.target or '-'}  service {d.service or '-'}",
        f"env      {d.environment}  mode {d.mode.value if d.mode else '-'}  risk {d.risk.value}",
        f"policy   sha256:{d.policy_hash}",
        f"digest   sha256:{d.proposal_digest}",
        "",
    ]
    for i, step in enumerate(explanation.steps, 1):
        rule = f"  [{step.rule_id}]" if step.rule_id else ""
        lines.append(f"{i:>2}. {step.status.value:<4} {step.check:<12} {step.detail}{rule}")
    lines.append("")
    shadow = f" (would be {d.shadow_outcome.value})" if d.shadow_outcome else ""
    lines.append(f"=> {d.outcome.value}{shadow}  rule {d.rule_id}")
    for reason in d.reasons:
        lines.append(f"   - {reason}")
    return "\n".join(lines)


class _Evaluation:
    """One evaluation; holds the running state so each check stays a small method."""

    __slots__ = (
        "proposal",
        "facts",
        "policy",
        "doc",
        "steps",
        "reasons",
        "action",
        "risk",
        "risk_why",
        "digest",
        "target",
        "service",
        "mode",
        "matched_rule",
    )

    def __init__(
        self,
        proposal: ProposedAction,
        facts: Facts,
        policy: Policy,
        steps: list[TraceStep] | None,
    ) -> None:
        self.proposal = proposal
        self.facts = facts
        self.policy = policy
        self.doc: PolicyDocument = policy.document
        self.steps = steps
        self.reasons: list[str] = []
        self.action: Action | None = None
        self.risk = RiskLevel.CRITICAL
        self.risk_why: str | None = None  # why the risk is above the catalog's, if it is
        self.digest = ""
        self.target: str | None = None
        self.service: str | None = None
        self.mode: RunMode | None = None
        self.matched_rule: Rule | None = None

    # -- bookkeeping -------------------------------------------------------------------

    def _step(
        self, check: str, status: StepStatus, detail: str, rule_id: str | None = None
    ) -> None:
        if self.steps is not None:
            self.steps.append(TraceStep(check=check, status=status, detail=detail, rule_id=rule_id))

    def _decide(
        self,
        outcome: Outcome,
        rule_id: str,
        *,
        required_by: str | None = None,
        approval_id: str | None = None,
        shadow_outcome: Outcome | None = None,
    ) -> Decision:
        return _trusted_decision(
            {
                "outcome": outcome,
                "risk": self.risk,
                "rule_id": rule_id,
                "reasons": self.reasons,
                "action_id": self.proposal.action_id,
                "target": self.target,
                "service": self.service,
                "environment": self.facts.environment,
                "mode": self.mode,
                "matched_rule": self.matched_rule.id if self.matched_rule else None,
                "approval_required_by": required_by,
                "approval_id": approval_id,
                "shadow_outcome": shadow_outcome,
                "proposal_digest": self.digest,
                "policy_hash": self.policy.sha256,
                "evaluated_at": self.facts.now,
            }
        )

    def _deny(self, check: str, denied: _Denied) -> Decision:
        self.reasons.append(denied.reason)
        self._step(check, StepStatus.FAIL, denied.reason, denied.rule_id)
        return self._decide(Outcome.DENY, denied.rule_id)

    # -- the pipeline ------------------------------------------------------------------

    def run(self) -> Decision:
        parsed = parse_proposal(self.proposal)
        if isinstance(parsed, ProposalError):
            return self._reject_proposal(parsed)
        action = self.action = parsed
        self.digest = action.digest()
        self.target = action.target()
        floor = action.static_risk()
        if action.read_only:  # read-only tools change nothing: overrides do not apply
            configured = floor
        else:
            configured = self.doc.risk_overrides.get(action.action_id, floor)
        self.risk = floor if configured is floor else max(floor, configured)
        if self.steps is not None:
            detail = f"{action.action_id} is in the catalog; risk {self.risk}"
            if configured < floor:
                detail += f" (override {configured} ignored: below the floor {floor})"
            self._step("catalog", StepStatus.PASS, detail)

        if action.read_only:
            self.reasons.append(f"{_ID_VALUE[type(action)]} is read-only")
            self._step("read-only", StepStatus.PASS, "read-only tool: changes nothing")
            return self._decide(Outcome.EXECUTE, "catalog.read_only")

        env = self.doc.environments.get(self.facts.environment)
        if env is None:
            return self._deny(
                "environment",
                _Denied(
                    "environment.unknown",
                    f"environment {self.facts.environment!r} is not in the policy",
                ),
            )
        self.mode = env.mode
        if self.steps is not None:
            self._step("environment", StepStatus.PASS, f"{self.facts.environment}: mode {env.mode}")

        resolved = _resolve(action, self.facts.inventory)
        if isinstance(resolved, _Denied):
            return self._deny("inventory", resolved)
        self.service = resolved.service
        if self.steps is not None:
            self._step("inventory", StepStatus.PASS, f"{resolved.what} exists")
        if isinstance(action, RestartKubernetesPod) and resolved.deployment is None:
            self._unowned_pod(action)

        denied = (
            self._check_namespace(resolved)
            or self._check_protected(resolved)
            or self._check_rules(resolved)
            or self._check_rate_limits()
            or self._check_blast_radius(action, resolved)
        )
        if denied is not None:
            return denied
        return self._gate(env.mode, env.runs_alone(self.risk))

    def _unowned_pod(self, action: RestartKubernetesPod) -> None:
        """A pod no Deployment in the inventory stands behind (a StatefulSet's, e.g. a
        database's, a DaemonSet's, a Job's or a bare pod) is not a SAFE restart: a bare pod
        never comes back, and a StatefulSet pod comes back with the same identity and data.
        CRITICAL, so a human approves it (SAFETY: deleting a critical database pod)."""
        if self.risk is RiskLevel.CRITICAL:
            return
        self.risk = RiskLevel.CRITICAL
        why = (
            f"pod {action.namespace}/{action.pod} has no Deployment behind it: "
            "restarting it is CRITICAL"
        )
        self.risk_why = why  # a reason of the decision, if no check denies it first
        self._step("controller", StepStatus.PASS, why, "guard.pod_without_deployment")

    def _reject_proposal(self, error: ProposalError) -> Decision:
        # What proposal_digest() gives for a proposal that does not parse, without parsing
        # it a second time.
        self.digest = _raw_digest(self.proposal)
        if error.code == "not_in_catalog":
            self.reasons.append(error.message)
            self._step("catalog", StepStatus.FAIL, error.message, "catalog.unknown_action")
            return self._decide(Outcome.DENY, "catalog.unknown_action")
        action_type = _catalog_type(self.proposal.action_id)
        if action_type is not None:
            floor = self.risk = action_type.risk_floor
            if not action_type.read_only:
                self.risk = max(floor, self.doc.risk_overrides.get(action_type.action_id, floor))
        self.reasons.append(error.message)
        self._step("catalog", StepStatus.FAIL, error.message, "catalog.invalid_params")
        return self._decide(Outcome.DENY, "catalog.invalid_params")

    def _check_namespace(self, resolved: _Resolved) -> Decision | None:
        ns = resolved.namespace
        if ns is None:
            return None
        patterns = self.doc.denied_namespaces
        denied = derived(self.policy._memo, "denied_namespaces", patterns, _globs_regex)
        if denied is not None and denied.match(ns) is not None:
            # The regex matches exactly when one of the globs does: name the first one.
            pattern = next(p for p in patterns if fnmatchcase(ns, p))
            return self._deny(
                "namespace",
                _Denied("guard.denied_namespace", f"namespace {ns} is deny-listed ({pattern})"),
            )
        if self.steps is not None:
            self._step("namespace", StepStatus.PASS, f"namespace {ns} is not deny-listed")
        return None

    def _check_protected(self, resolved: _Resolved) -> Decision | None:
        protected = self.doc.protected
        for whose, labels in resolved.labels:
            for key, value in protected.labels.items():
                if labels.get(key) == value:
                    return self._deny(
                        "protected",
                        _Denied("guard.protected", f"{whose} is protected by label {key}={value}"),
                    )
        assert self.target is not None
        if protected.targets:
            for target in (self.target, *resolved.related_targets):
                for pattern in protected.targets:
                    if fnmatchcase(target, pattern):
                        return self._deny(
                            "protected",
                            _Denied("guard.protected", f"{target} is protected ({pattern})"),
                        )
        if self.steps is not None:
            self._step("protected", StepStatus.PASS, "no protected label or target")
        return None

    def _check_rules(self, resolved: _Resolved) -> Decision | None:
        for rule in self.doc.rules:
            if self._matches(rule, resolved):
                self.matched_rule = rule
                if rule.effect is RuleEffect.DENY:
                    return self._deny("rules", _Denied(rule.id, f"denied by rule {rule.id}"))
                if self.steps is not None:
                    self._step("rules", StepStatus.PASS, f"rule {rule.id}: {rule.effect}", rule.id)
                return None
        return self._deny("rules", _Denied("default.deny", "no rule allows this action"))

    def _matches(self, rule: Rule, resolved: _Resolved) -> bool:
        m = rule.match
        action = self.action
        assert action is not None and self.target is not None
        if m.actions is not None and action.action_id not in m.actions:
            return False
        if m.environments is not None and self.facts.environment not in m.environments:
            return False
        if m.risks is not None and self.risk not in m.risks:
            return False
        if m.namespaces is not None and not _any_glob(resolved.namespace, m.namespaces):
            return False
        if m.services is not None and not _any_glob(resolved.service, m.services):
            return False
        if m.targets is not None and not _any_glob(self.target, m.targets):
            return False
        if m.labels is not None:
            labels = resolved.merged_labels()
            if any(labels.get(k) != v for k, v in m.labels.items()):
                return False
        return True

    def _check_rate_limits(self) -> Decision | None:
        action = self.action
        assert action is not None
        facts = self.facts
        now = facts.now
        action_id = _ID_VALUE[type(action)]
        limits = derived(self.policy._memo, "rate_limits", self.doc.rate_limits, _limits)
        history = None
        for entry in limits:
            counted = entry.counted
            if counted and action_id not in counted:
                continue
            field = entry.field
            limit = entry.limit
            key: str | None
            if field == "target":
                key = self.target
            elif field == "service":
                key = self.service
                if key is None:
                    self._step(
                        "rate limit", StepStatus.INFO, "no owning service: skipped", limit.id
                    )
                    continue
            else:
                key = action_id
            assert key is not None
            # Entries stamped after `now` (clock skew) count too: err on the safe side.
            if history is None:
                history = facts.history_index()
            count = history.count(field, key, now - entry.window, counted)
            if count >= limit.max or self.steps is not None:
                what = f"{'action' if field == 'action_id' else field} {key}"
                detail = f"{count} of max {limit.max} in {limit.window_seconds}s for {what}"
                if count >= limit.max:
                    return self._deny(
                        "rate limit", _Denied(limit.id, f"rate limit {limit.id}: {detail}")
                    )
                self._step("rate limit", StepStatus.PASS, detail, limit.id)
        return None

    def _check_blast_radius(self, action: Action, resolved: _Resolved) -> Decision | None:
        radius = self.doc.blast_radius
        inventory = self.facts.inventory
        pods_in_flight = self.facts.pods_in_flight
        in_flight = {(p.namespace, p.name) for p in pods_in_flight} if pods_in_flight else set()
        dep = resolved.deployment

        own = resolved.pod

        def of_deployment(refs: set[tuple[str, str]], d: DeploymentFact) -> int:
            n = 0
            for ns, name in refs:
                if own is not None and (ns, name) == (own.namespace, own.name):
                    pod: PodFact | None = own
                else:
                    pod = inventory.pod(ns, name)
                n += pod is not None and pod.namespace == d.namespace and pod.deployment == d.name
            return n

        # The pass details are only built for an explanation; denials always say why.
        explaining = self.steps is not None
        denied: str | None = None
        detail = "not a pod-level action"
        if isinstance(action, RestartKubernetesPod):
            affected = in_flight | {(action.namespace, action.pod)}
            if explaining:
                detail = f"{len(affected)} pod(s) at once (max {radius.max_pods})"
            if len(affected) > radius.max_pods:
                denied = f"{len(affected)} pods would be down at once (max {radius.max_pods})"
            elif dep is not None:
                # A restarted pod comes straight back, so one pod is always allowed.
                allowed = max(1, dep.replicas * radius.max_percent // 100)
                n = of_deployment(affected, dep)
                if explaining:
                    detail += f"; {n} of {dep.replicas} replicas of {dep.name} (max {allowed})"
                if n > allowed:
                    denied = (
                        f"{n} of {dep.replicas} replicas of {dep.name} would be down at once "
                        f"(max {radius.max_percent}% = {allowed})"
                    )
        elif isinstance(action, ScaleDeployment) and dep is not None:
            removed = max(0, dep.replicas - action.replicas)
            if explaining:
                detail = f"scale {dep.replicas} -> {action.replicas}: removes {removed} pod(s)"
            if removed:
                total = len(in_flight) + removed
                # Scaling down removes capacity for good: no one-pod minimum here.
                allowed = dep.replicas * radius.max_percent // 100
                n = of_deployment(in_flight, dep) + removed
                if total > radius.max_pods:
                    denied = f"{total} pods would be down at once (max {radius.max_pods})"
                elif n > allowed:
                    denied = (
                        f"{n} of {dep.replicas} replicas of {dep.name} would be removed "
                        f"(max {radius.max_percent}% = {allowed})"
                    )
        elif isinstance(action, RolloutRestartDeployment | RollbackDeployment) and dep is not None:
            n = of_deployment(in_flight, dep)
            if explaining:
                detail = f"{n} pod(s) of {dep.name} already being acted on"
            if n:
                denied = f"{n} pod(s) of {dep.name} are already being acted on"
        if denied is not None:
            return self._deny("blast radius", _Denied("guard.blast_radius", denied))
        if explaining:
            self._step("blast radius", StepStatus.PASS, detail)
        return None

    def _gate(self, mode: RunMode, runs_alone: bool) -> Decision:
        action = self.action
        assert action is not None
        if self.risk_why is not None:
            self.reasons.append(self.risk_why)
        now = self.facts.now
        env_name = self.facts.environment
        required_by: str | None = None

        for freeze in self.doc.freezes:
            if freeze.environments and env_name not in freeze.environments:
                continue
            if not freeze.start <= now < freeze.end or action.action_id in freeze.except_actions:
                continue
            if freeze.outcome is FreezeOutcome.DENY:
                why = f"change freeze {freeze.id}" + (f": {freeze.reason}" if freeze.reason else "")
                return self._deny("freeze", _Denied(freeze.id, why))
            if required_by is None:
                required_by = freeze.id
                self.reasons.append(f"change freeze {freeze.id} needs an approval")
                if self.steps is not None:
                    self._step(
                        "freeze", StepStatus.INFO, f"inside {freeze.id}: approval", freeze.id
                    )
        if required_by is None and self.steps is not None:
            self._step("freeze", StepStatus.PASS, "no change freeze in force")

        rule = self.matched_rule
        assert rule is not None  # _check_rules denies when nothing matches
        if required_by is None and rule.effect is RuleEffect.REQUIRE_APPROVAL:
            required_by = rule.id
            self.reasons.append(f"rule {rule.id} requires an approval")

        # What autonomous mode would decide (also the shadow-mode record).
        autonomous_by = required_by
        if autonomous_by is None and self.risk is RiskLevel.CRITICAL:
            autonomous_by = "matrix.critical_needs_approval"
        elif autonomous_by is None and not runs_alone:
            autonomous_by = "matrix.needs_approval"

        if mode is RunMode.SHADOW:
            would = Outcome.EXECUTE if autonomous_by is None else Outcome.REQUIRE_APPROVAL
            self.reasons.append(f"shadow mode in {env_name}: recorded, not run (would {would})")
            if self.steps is not None:
                self._step("mode", StepStatus.INFO, f"shadow: would {would}", "mode.shadow")
            return self._decide(Outcome.SHADOW, "mode.shadow", shadow_outcome=would)

        if mode is RunMode.PROPOSE:
            if required_by is None:
                required_by = "mode.propose"
            self.reasons.append(f"propose mode in {env_name}: every action needs an approval")
        elif autonomous_by == "matrix.critical_needs_approval":
            required_by = autonomous_by
            self.reasons.append("CRITICAL actions always need an approval")
        elif autonomous_by == "matrix.needs_approval":
            required_by = autonomous_by
            self.reasons.append(f"{self.risk.value} does not run alone in {env_name}")
        if self.steps is not None:
            self._step(
                "mode",
                StepStatus.INFO,
                f"{mode}: {'needs approval' if required_by else 'runs alone'}",
                required_by,
            )

        if required_by is None:
            self.reasons.append(f"{self.risk.value} runs alone in {env_name} (rule {rule.id})")
            return self._decide(Outcome.EXECUTE, rule.id)
        return self._check_approval(required_by)

    def _check_approval(self, required_by: str) -> Decision:
        approval = self.facts.approval
        if approval is None:
            if self.steps is not None:
                self._step("approval", StepStatus.INFO, "no approval offered", required_by)
            return self._decide(Outcome.REQUIRE_APPROVAL, required_by, required_by=required_by)
        problem: tuple[str, str] | None = None
        allowed_roles = self.doc.roles_for(self.risk)
        # Bytes, not str: compare_digest raises on non-ASCII str, and evaluate() never raises.
        if not hmac.compare_digest(approval.proposal_digest.encode(), self.digest.encode()):
            problem = ("approval.digest_mismatch", "is bound to a different proposal")
        elif approval.used:
            problem = ("approval.used", "was already used")
        elif approval.expires_at <= self.facts.now:
            problem = ("approval.expired", f"expired at {approval.expires_at.isoformat()}")
        elif (
            self.risk is RiskLevel.CRITICAL
            and approval.approver.strip().casefold() == approval.requester.strip().casefold()
        ):
            problem = ("approval.self_approval", "is by the requester (not allowed for CRITICAL)")
        elif not set(approval.approver_roles) & set(allowed_roles):
            problem = (
                "approval.role_not_allowed",
                f"approver lacks a role allowed for {self.risk.value} ({', '.join(allowed_roles)})",
            )
        if problem is not None:
            rule_id, why = problem
            self.reasons.append(f"approval {approval.approval_id} {why}")
            self._step(
                "approval", StepStatus.FAIL, f"approval {approval.approval_id} {why}", rule_id
            )
            return self._decide(Outcome.REQUIRE_APPROVAL, rule_id, required_by=required_by)
        self.reasons.append(f"approved by {approval.approver} ({approval.approval_id})")
        if self.steps is not None:
            self._step("approval", StepStatus.PASS, f"approval {approval.approval_id} is valid")
        return self._decide(
            Outcome.EXECUTE,
            "approval.valid",
            required_by=required_by,
            approval_id=approval.approval_id,
        )


def _catalog_type(action_id: str) -> type[Action] | None:
    try:
        return CATALOG[ActionId(action_id)]
    except ValueError:
        return None


_ID_VALUE: dict[type[Action], str] = {t: t.action_id.value for t in CATALOG.values()}
"""Each catalog type's action id as a plain str (`.value` on an enum member is slow)."""


def _globs_regex(patterns: list[str]) -> re.Pattern[str] | None:
    """One regex matching exactly the strings `fnmatchcase` matches with any of `patterns`."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))


def _any_glob(value: str | None, patterns: list[str]) -> bool:
    return value is not None and any(fnmatchcase(value, p) for p in patterns)


def _resolve(action: Action, inv: Inventory) -> _Resolved | _Denied:
    """Find what the params name in the inventory, or say what is missing."""
    if isinstance(action, RestartKubernetesPod):
        ns = action.namespace
        pod = inv.pod(ns, action.pod)
        if pod is None:
            return _Denied("inventory.pod_not_found", f"pod {action.pod} not found in {ns}")
        dep = inv.deployment(ns, pod.deployment) if pod.deployment else None
        labels: tuple[tuple[str, Mapping[str, str]], ...] = ((f"pod {ns}/{pod.name}", pod.labels),)
        related: tuple[str, ...] = ()
        if dep is not None:
            labels = ((f"deployment {ns}/{dep.name}", dep.labels), *labels)
            related = (f"k8s:{ns}/deployment/{dep.name}",)
        return _Resolved(
            what=f"pod {ns}/{pod.name}",
            service=pod.service or (dep.service if dep else None),
            namespace=ns,
            labels=labels,
            related_targets=related,
            pod=pod,
            deployment=dep,
        )
    if isinstance(action, RolloutRestartDeployment | RollbackDeployment | ScaleDeployment):
        ns = action.namespace
        dep = inv.deployment(ns, action.deployment)
        if dep is None:
            return _Denied(
                "inventory.deployment_not_found",
                f"deployment {action.deployment} not found in {ns}",
            )
        if isinstance(action, RollbackDeployment):
            if action.to_revision == dep.current_revision:
                return _Denied(
                    "inventory.revision_is_current",
                    f"revision {action.to_revision} is the current revision of {dep.name}",
                )
            if action.to_revision not in dep.revisions:
                return _Denied(
                    "inventory.revision_not_found",
                    f"revision {action.to_revision} of {dep.name} not found",
                )
        return _Resolved(
            what=f"deployment {ns}/{dep.name}",
            service=dep.service,
            namespace=ns,
            labels=((f"deployment {ns}/{dep.name}", dep.labels),),
            deployment=dep,
        )
    if isinstance(action, FlushRedisCache):
        cluster = inv.redis_cluster(action.cluster)
        if cluster is None:
            return _Denied(
                "inventory.redis_cluster_not_found", f"redis cluster {action.cluster} not found"
            )
        if action.db is not None and action.db not in cluster.dbs:
            return _Denied(
                "inventory.redis_db_not_found", f"db {action.db} not found in {cluster.name}"
            )
        if action.key_pattern is not None and action.key_pattern not in cluster.key_patterns:
            return _Denied(
                "inventory.redis_key_pattern_not_allowed",
                f"key pattern {action.key_pattern!r} is not allow-listed for {cluster.name}",
            )
        return _Resolved(
            what=f"redis cluster {cluster.name}",
            service=cluster.service,
            labels=((f"redis cluster {cluster.name}", cluster.labels),),
        )
    if isinstance(action, RunSshCommand):
        host = inv.host(action.host)
        if host is None:
            return _Denied("inventory.host_not_found", f"host {action.host} not found")
        if action.command_id not in inv.allowed_commands(host):
            return _Denied(
                "inventory.command_not_allowed",
                f"command {action.command_id} is not allowed on {host.name}",
            )
        return _Resolved(
            what=f"host {host.name}",
            service=host.service,
            labels=((f"host {host.name}", host.labels),),
        )
    if isinstance(action, RebootEc2Instance):
        instance = inv.ec2_instance(action.instance_id)
        if instance is None:
            return _Denied(
                "inventory.ec2_instance_not_found", f"instance {action.instance_id} not found"
            )
        return _Resolved(
            what=f"instance {instance.instance_id}",
            service=instance.service,
            labels=((f"instance {instance.instance_id}", instance.tags),),
        )
    if isinstance(action, EcsForceNewDeployment):
        svc = inv.ecs_service(action.cluster, action.service)
        if svc is None:
            return _Denied(
                "inventory.ecs_service_not_found",
                f"ECS service {action.service} not found in {action.cluster}",
            )
        return _Resolved(
            what=f"ECS service {svc.cluster}/{svc.name}",
            service=svc.service,
            labels=((f"ECS service {svc.cluster}/{svc.name}", svc.tags),),
        )
    return _Denied("inventory.unsupported_action", f"no inventory check for {action.action_id}")
