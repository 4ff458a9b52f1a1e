"""The policy file: its schema, loading from YAML, and `policy check` validation.

A policy is data (YAML), evaluated by plain Python in `engine.py`. `Policy` pairs the
parsed document with the SHA-256 of the exact bytes it was parsed from; every decision
records that hash. Loading is strict: unknown keys, duplicate keys, naive datetimes and
unknown action ids are errors. Semantic mistakes that evaluation can survive safely (an
override below the catalog floor, CRITICAL listed as running alone) still load, are
neutralised at evaluation, and are reported by `check_policy_text`.

Shape (see policies/default.yaml):

    version: 1
    environments: {<env>: {mode: shadow|propose|autonomous, run_alone: [SAFE, WARNING]}}
    risk_overrides: {<action_id>: <risk>}          # may only raise the catalog floor
    approver_roles: {<risk>: [<role>, ...]}        # default [approver, admin]
    denied_namespaces: [<glob>, ...]
    protected: {labels: {<key>: <value>}, targets: [<target glob>, ...]}
    rate_limits: [{id, actions?, per: action|target|service, max, window_seconds}]
    blast_radius: {max_pods, max_percent}
    freezes: [{id, start, end, environments?, except_actions?, outcome, reason?}]
    rules: [{id, description?, match: {...}, effect: allow|require_approval|deny}]
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sentinel.policy._memo import Memo
from sentinel.policy.actions import CATALOG, ActionId, RiskLevel
from sentinel.policy.facts import UtcDatetime

__all__ = [
    "RESERVED_RULE_PREFIXES",
    "BlastRadius",
    "EnvironmentPolicy",
    "FreezeOutcome",
    "FreezeWindow",
    "Policy",
    "PolicyDocument",
    "PolicyError",
    "ProtectedResources",
    "RateLimit",
    "RateLimitScope",
    "Rule",
    "RuleEffect",
    "RuleMatch",
    "RunMode",
    "check_policy_text",
    "load_policy",
    "load_policy_file",
    "policy_problems",
]

DEFAULT_APPROVER_ROLES: tuple[str, ...] = ("approver", "admin")

RESERVED_RULE_PREFIXES: tuple[str, ...] = (
    "catalog.",
    "environment.",
    "inventory.",
    "guard.",
    "default.",
    "mode.",
    "matrix.",
    "approval.",
)
"""Prefixes of the engine's built-in rule ids; policy ids may not use them."""

RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class RunMode(StrEnum):
    """How much Sentinel may do on its own in an environment."""

    SHADOW = "shadow"  # record what would run, run nothing
    PROPOSE = "propose"  # everything allowed needs a human approval
    AUTONOMOUS = "autonomous"  # the matrix decides what runs alone


class RuleEffect(StrEnum):
    """What a matching rule does."""

    ALLOW = "allow"  # go on to rate limits, freezes, mode and matrix
    REQUIRE_APPROVAL = "require_approval"  # as allow, but always needs an approval
    DENY = "deny"


class FreezeOutcome(StrEnum):
    """What happens to an action inside a change freeze."""

    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


class RateLimitScope(StrEnum):
    """Which past actions a rate limit counts."""

    ACTION = "action"  # same action id, any target
    TARGET = "target"  # same target string
    SERVICE = "service"  # same owning service


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvironmentPolicy(_PolicyModel):
    """Run mode of one environment and the risk levels that run alone in autonomous mode."""

    mode: RunMode
    run_alone: list[RiskLevel] = Field(default_factory=lambda: [RiskLevel.SAFE])

    def runs_alone(self, risk: RiskLevel) -> bool:
        """SAFE always runs alone; WARNING if listed; CRITICAL never (ignored if listed)."""
        if risk is RiskLevel.CRITICAL:
            return False
        return risk is RiskLevel.SAFE or risk in self.run_alone


class ProtectedResources(_PolicyModel):
    """Resources no action may touch: by label (exact key and value) or by target glob."""

    labels: dict[str, str] = Field(default_factory=dict)
    targets: list[str] = Field(default_factory=list)


class RateLimit(_PolicyModel):
    """At most `max` actions in `window_seconds`, counted per action, target or service."""

    id: RuleId
    actions: list[ActionId] = Field(default_factory=list)  # empty: every mutating action
    per: RateLimitScope
    max: int = Field(ge=0)
    window_seconds: int = Field(gt=0)


class BlastRadius(_PolicyModel):
    """At most `max_pods` pods, and `max_percent` of a deployment's replicas, at once."""

    max_pods: int = Field(default=1, ge=1)
    max_percent: int = Field(default=25, ge=1, le=100)


class FreezeWindow(_PolicyModel):
    """A change freeze: [start, end) in the listed environments (empty: all)."""

    id: RuleId
    start: UtcDatetime
    end: UtcDatetime
    environments: list[str] = Field(default_factory=list)
    except_actions: list[ActionId] = Field(default_factory=list)
    outcome: FreezeOutcome = FreezeOutcome.REQUIRE_APPROVAL
    reason: str = ""


class RuleMatch(_PolicyModel):
    """Conditions of a rule; each given one must hold, an omitted one matches anything.

    namespaces, services and targets are globs (fnmatch, case-sensitive); labels must
    all be present with equal values on the resource (for a pod: its own labels over
    its deployment's).
    """

    actions: list[ActionId] | None = None
    environments: list[str] | None = None
    risks: list[RiskLevel] | None = None
    namespaces: list[str] | None = None
    services: list[str] | None = None
    targets: list[str] | None = None
    labels: dict[str, str] | None = None

    def is_catch_all(self) -> bool:
        """True when no condition is given."""
        return all(getattr(self, name) is None for name in type(self).model_fields)


class Rule(_PolicyModel):
    """One entry of the ordered rules list (first match wins)."""

    id: RuleId
    description: str = ""
    match: RuleMatch = Field(default_factory=RuleMatch)
    effect: RuleEffect


def _default_approver_roles() -> dict[RiskLevel, list[str]]:
    return {risk: list(DEFAULT_APPROVER_ROLES) for risk in RiskLevel}


class PolicyDocument(_PolicyModel):
    """The whole policy file."""

    version: Literal[1]
    environments: dict[str, EnvironmentPolicy]
    risk_overrides: dict[ActionId, RiskLevel] = Field(default_factory=dict)
    approver_roles: dict[RiskLevel, list[str]] = Field(default_factory=_default_approver_roles)
    denied_namespaces: list[str] = Field(default_factory=list)
    protected: ProtectedResources = Field(default_factory=ProtectedResources)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    freezes: list[FreezeWindow] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    def roles_for(self, risk: RiskLevel) -> tuple[str, ...]:
        """Roles that may approve an action of this risk (default approver, admin)."""
        roles = self.approver_roles.get(risk)
        return DEFAULT_APPROVER_ROLES if roles is None else tuple(roles)


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy and the SHA-256 hex of the bytes it was parsed from."""

    document: PolicyDocument
    sha256: str
    # Tables the engine derives from the document once (see sentinel.policy._memo).
    _memo: Memo = field(default_factory=Memo, init=False, repr=False, compare=False)


class PolicyError(ValueError):
    """The policy text cannot be loaded; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid policy: " + "; ".join(errors))
        self.errors = errors


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (a silent override in a policy)."""


def _construct_unique_mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def _parse(data: bytes) -> tuple[PolicyDocument | None, list[str]]:
    try:
        raw = yaml.load(data, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return None, [f"YAML{where}: {exc.problem or exc.context or 'invalid'}"]
    except yaml.YAMLError as exc:
        return None, [f"YAML: {exc}".replace("\n", " ")]
    if not isinstance(raw, dict):
        return None, ["the policy must be a YAML mapping"]
    try:
        return PolicyDocument.model_validate(raw), []
    except ValidationError as exc:
        return None, [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        ]


def load_policy(text: str | bytes) -> Policy:
    """Parse policy YAML (str is hashed as its UTF-8 bytes); raise PolicyError if invalid."""
    data = _as_bytes(text)
    document, errors = _parse(data)
    if document is None:
        raise PolicyError(errors)
    return Policy(document=document, sha256=hashlib.sha256(data).hexdigest())


def load_policy_file(path: str | os.PathLike[str]) -> Policy:
    """Read and parse a policy file; the hash is over the file's exact bytes."""
    return load_policy(Path(path).read_bytes())


def policy_problems(document: PolicyDocument) -> list[str]:
    """Semantic mistakes in a schema-valid policy; empty when it is sound."""
    problems: list[str] = []
    if not document.environments:
        problems.append("environments: at least one environment is needed")
    for action_id, risk in document.risk_overrides.items():
        floor = CATALOG[action_id].risk_floor
        if CATALOG[action_id].read_only:
            problems.append(
                f"risk_overrides.{action_id.value}: read-only tools change nothing and always "
                "run; their risk cannot be overridden (ignored at evaluation)"
            )
        elif risk < floor:
            problems.append(
                f"risk_overrides.{action_id.value}: {risk.value} is below the catalog floor "
                f"{floor.value}; an override may only raise an action's risk "
                f"(evaluation uses {floor.value})"
            )
    for env_name, env in document.environments.items():
        if RiskLevel.CRITICAL in env.run_alone:
            problems.append(
                f"environments.{env_name}.run_alone: CRITICAL never runs alone; it always "
                "needs a human approval (ignored at evaluation)"
            )
    for risk in RiskLevel:
        if not document.roles_for(risk):
            problems.append(f"approver_roles.{risk.value}: empty, so nobody could approve")
    known_envs = set(document.environments)
    for i, freeze in enumerate(document.freezes):
        if freeze.end <= freeze.start:
            problems.append(f"freezes[{i}] {freeze.id!r}: end must be after start")
        for env_name in freeze.environments:
            if env_name not in known_envs:
                problems.append(f"freezes[{i}] {freeze.id!r}: unknown environment {env_name!r}")
    seen_ids: set[str] = set()
    ids = (
        [("rate_limits", i, r.id) for i, r in enumerate(document.rate_limits)]
        + [("freezes", i, f.id) for i, f in enumerate(document.freezes)]
        + [("rules", i, r.id) for i, r in enumerate(document.rules)]
    )
    for section, i, rule_id in ids:
        if rule_id.startswith(RESERVED_RULE_PREFIXES):
            problems.append(
                f"{section}[{i}] {rule_id!r}: ids starting with {rule_id.split('.')[0]}. "
                "are reserved for the engine's built-in checks"
            )
        if rule_id in seen_ids:
            problems.append(f"{section}[{i}] {rule_id!r}: duplicate id")
        seen_ids.add(rule_id)
    catch_all: str | None = None
    for i, rule in enumerate(document.rules):
        if catch_all is not None:
            problems.append(
                f"rules[{i}] {rule.id!r}: unreachable, rule {catch_all!r} above matches everything"
            )
        for env_name in rule.match.environments or []:
            if env_name not in known_envs:
                problems.append(f"rules[{i}] {rule.id!r}: unknown environment {env_name!r}")
        if catch_all is None and rule.match.is_catch_all():
            catch_all = rule.id
    return problems


def check_policy_text(text: str | bytes) -> list[str]:
    """Every problem in a policy file's text (YAML, schema, semantics); empty when valid."""
    document, errors = _parse(_as_bytes(text))
    if document is None:
        return errors
    return policy_problems(document)
