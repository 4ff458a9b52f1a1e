"""The action catalog: every action Sentinel can take, its typed parameters and its risk floor.

Anything not in this catalog does not exist. A planner (runbook or LLM) hands over an
untrusted `ProposedAction` (an id string, a params dict and free-text reasoning);
`parse_proposal` turns it into one of the typed `Action` models below or a
`ProposalError`. The reasoning never reaches the policy or an executor.

Risk floors (configuration may raise them, never lower them):

    restart_kubernetes_pod       SAFE
    rollout_restart_deployment   WARNING
    rollback_deployment          CRITICAL
    scale_deployment             WARNING
    flush_redis_cache            SAFE for a key pattern with a literal part,
                                 WARNING for a whole db (or a wildcard-only pattern)
    run_ssh_command              WARNING
    reboot_ec2_instance          CRITICAL
    ecs_force_new_deployment     WARNING
    query_metrics, fetch_recent_logs, list_recent_deployments   read-only (SAFE)

Every action has `target()`, a stable string naming what it touches (rate limits,
protected-resource globs, audit): `k8s:<ns>/pod/<pod>`, `k8s:<ns>/deployment/<name>`,
`redis:<cluster>/db/<n>`, `redis:<cluster>/keys/<pattern>`, `ssh:<host>`,
`ec2:<instance-id>`, `ecs:<cluster>/service/<service>`, and for the read-only tools
`prometheus:query`, `logs:<service>`, `deployments:<environment>`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

__all__ = [
    "CATALOG",
    "Action",
    "ActionId",
    "EcsForceNewDeployment",
    "FetchRecentLogs",
    "FlushRedisCache",
    "ListRecentDeployments",
    "ProposalError",
    "ProposedAction",
    "QueryMetrics",
    "RebootEc2Instance",
    "RestartKubernetesPod",
    "RiskLevel",
    "RollbackDeployment",
    "RolloutRestartDeployment",
    "RunSshCommand",
    "ScaleDeployment",
    "canonical_json",
    "catalog_schema",
    "params_from_target",
    "parse_proposal",
    "proposal_digest",
]


_RISK_RANK = {"SAFE": 0, "WARNING": 1, "CRITICAL": 2}


class RiskLevel(StrEnum):
    """How much an action can hurt; ordered SAFE < WARNING < CRITICAL."""

    SAFE = "SAFE"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        """Position in the order SAFE (0) < WARNING (1) < CRITICAL (2)."""
        return _RISK_RANK[self]

    # str would compare alphabetically (CRITICAL < SAFE); compare by rank instead.
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return _RISK_RANK[self] < _RISK_RANK[other]

    def __le__(self, other: object) -> bool:
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return _RISK_RANK[self] <= _RISK_RANK[other]

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return _RISK_RANK[self] > _RISK_RANK[other]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return _RISK_RANK[self] >= _RISK_RANK[other]


class ActionId(StrEnum):
    """The closed set of action ids; nothing else can be proposed."""

    RESTART_KUBERNETES_POD = "restart_kubernetes_pod"
    ROLLOUT_RESTART_DEPLOYMENT = "rollout_restart_deployment"
    ROLLBACK_DEPLOYMENT = "rollback_deployment"
    SCALE_DEPLOYMENT = "scale_deployment"
    FLUSH_REDIS_CACHE = "flush_redis_cache"
    RUN_SSH_COMMAND = "run_ssh_command"
    REBOOT_EC2_INSTANCE = "reboot_ec2_instance"
    ECS_FORCE_NEW_DEPLOYMENT = "ecs_force_new_deployment"
    QUERY_METRICS = "query_metrics"
    FETCH_RECENT_LOGS = "fetch_recent_logs"
    LIST_RECENT_DEPLOYMENTS = "list_recent_deployments"


# Parameter shapes. Patterns are anchored by pydantic (Rust regex: `$` is end of text).
# They keep shell metacharacters, whitespace and prose out of every identifier.
K8sNamespace = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
K8sName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]
RedisClusterName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
RedisKeyPattern = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$")]
HostName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
]
CommandId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Ec2InstanceId = Annotated[str, StringConstraints(pattern=r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")]
EcsName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")]
ServiceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")]
EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Timeframe = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,3}[smhd]$")]
PromQL = Annotated[str, StringConstraints(min_length=1, max_length=4000)]

# Integers stay below 2**53 so the canonical JSON equals RFC 8785's number form.
_MAX_INT = 2**31 - 1

_GLOB_CHARS = frozenset("*?[]")


class Action(BaseModel):
    """Base of every catalog action: the typed, validated parameters of one action."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    action_id: ClassVar[ActionId]
    risk_floor: ClassVar[RiskLevel]
    read_only: ClassVar[bool] = False
    summary: ClassVar[str]

    def target(self) -> str:
        """Stable name of what the action touches, e.g. `k8s:prod/pod/checkout-7d9f`."""
        raise NotImplementedError

    def static_risk(self) -> RiskLevel:
        """Catalog risk for these parameters (never below `risk_floor`)."""
        return self.risk_floor

    def params(self) -> dict[str, Any]:
        """The parameters as plain JSON values (every field, None included)."""
        # Every field is a str, an int or None, so the field dict is already JSON.
        return dict(self.__dict__)

    def digest(self) -> str:
        """SHA-256 hex of the canonical JSON of {action_id, params}; approvals bind to it."""
        return _sha256(_canonical_action(self.action_id.value, self.__dict__))


class RestartKubernetesPod(Action):
    """Delete one pod so its controller recreates it."""

    action_id: ClassVar[ActionId] = ActionId.RESTART_KUBERNETES_POD
    risk_floor: ClassVar[RiskLevel] = RiskLevel.SAFE
    summary: ClassVar[str] = "Delete one pod so its Deployment recreates it."

    namespace: K8sNamespace
    pod: K8sName

    def target(self) -> str:
        """Stable target name."""
        return f"k8s:{self.namespace}/pod/{self.pod}"


class RolloutRestartDeployment(Action):
    """Rolling restart of every pod of a deployment."""

    action_id: ClassVar[ActionId] = ActionId.ROLLOUT_RESTART_DEPLOYMENT
    risk_floor: ClassVar[RiskLevel] = RiskLevel.WARNING
    summary: ClassVar[str] = "Rolling restart of every pod of a Deployment."

    namespace: K8sNamespace
    deployment: K8sName

    def target(self) -> str:
        """Stable target name."""
        return f"k8s:{self.namespace}/deployment/{self.deployment}"


class RollbackDeployment(Action):
    """Roll a deployment back to an earlier recorded revision."""

    action_id: ClassVar[ActionId] = ActionId.ROLLBACK_DEPLOYMENT
    risk_floor: ClassVar[RiskLevel] = RiskLevel.CRITICAL
    summary: ClassVar[str] = "Roll a Deployment back to an earlier revision."

    namespace: K8sNamespace
    deployment: K8sName
    to_revision: int = Field(ge=1, le=_MAX_INT)

    def target(self) -> str:
        """Stable target name."""
        return f"k8s:{self.namespace}/deployment/{self.deployment}"


class ScaleDeployment(Action):
    """Set a deployment's replica count."""

    action_id: ClassVar[ActionId] = ActionId.SCALE_DEPLOYMENT
    risk_floor: ClassVar[RiskLevel] = RiskLevel.WARNING
    summary: ClassVar[str] = "Set the replica count of a Deployment."

    namespace: K8sNamespace
    deployment: K8sName
    replicas: int = Field(ge=0, le=1000)

    def target(self) -> str:
        """Stable target name."""
        return f"k8s:{self.namespace}/deployment/{self.deployment}"


class FlushRedisCache(Action):
    """Flush one Redis db, or delete the keys matching one allow-listed pattern (db 0).

    Exactly one of `db` and `key_pattern`. A pattern with a literal part is SAFE; a whole
    db, or a pattern made only of wildcards (which empties the db just the same), is
    WARNING.
    """

    action_id: ClassVar[ActionId] = ActionId.FLUSH_REDIS_CACHE
    risk_floor: ClassVar[RiskLevel] = RiskLevel.SAFE
    summary: ClassVar[str] = (
        "FLUSHDB one db of a Redis cluster (WARNING), or delete keys matching an "
        "allow-listed pattern with SCAN (SAFE). Give exactly one of db and key_pattern."
    )

    cluster: RedisClusterName
    db: int | None = Field(default=None, ge=0, le=_MAX_INT)
    key_pattern: RedisKeyPattern | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FlushRedisCache:
        if (self.db is None) == (self.key_pattern is None):
            raise ValueError("give exactly one of db and key_pattern")
        return self

    def target(self) -> str:
        """Stable target name."""
        if self.key_pattern is not None:
            return f"redis:{self.cluster}/keys/{self.key_pattern}"
        return f"redis:{self.cluster}/db/{self.db}"

    def static_risk(self) -> RiskLevel:
        """SAFE for a pattern with a literal part, WARNING for a whole db."""
        if self.key_pattern is not None and not set(self.key_pattern) <= _GLOB_CHARS:
            return RiskLevel.SAFE
        return RiskLevel.WARNING


class RunSshCommand(Action):
    """Run one allow-listed command (by id, never free text) on one host."""

    action_id: ClassVar[ActionId] = ActionId.RUN_SSH_COMMAND
    risk_floor: ClassVar[RiskLevel] = RiskLevel.WARNING
    summary: ClassVar[str] = "Run an allow-listed command, named by its id, on one host."

    host: HostName
    command_id: CommandId

    def target(self) -> str:
        """Stable target name."""
        return f"ssh:{self.host}"


class RebootEc2Instance(Action):
    """Reboot one EC2 instance."""

    action_id: ClassVar[ActionId] = ActionId.REBOOT_EC2_INSTANCE
    risk_floor: ClassVar[RiskLevel] = RiskLevel.CRITICAL
    summary: ClassVar[str] = "Reboot one EC2 instance."

    instance_id: Ec2InstanceId

    def target(self) -> str:
        """Stable target name."""
        return f"ec2:{self.instance_id}"


class EcsForceNewDeployment(Action):
    """Force a new deployment of an ECS service (replaces its tasks)."""

    action_id: ClassVar[ActionId] = ActionId.ECS_FORCE_NEW_DEPLOYMENT
    risk_floor: ClassVar[RiskLevel] = RiskLevel.WARNING
    summary: ClassVar[str] = "Force a new deployment of an ECS service."

    cluster: EcsName
    service: EcsName

    def target(self) -> str:
        """Stable target name."""
        return f"ecs:{self.cluster}/service/{self.service}"


class QueryMetrics(Action):
    """Read-only: run a PromQL query."""

    action_id: ClassVar[ActionId] = ActionId.QUERY_METRICS
    risk_floor: ClassVar[RiskLevel] = RiskLevel.SAFE
    read_only: ClassVar[bool] = True
    summary: ClassVar[str] = "Read-only: run a PromQL query."

    promql: PromQL

    def target(self) -> str:
        """Stable target name."""
        return "prometheus:query"


class FetchRecentLogs(Action):
    """Read-only: fetch a service's recent logs."""

    action_id: ClassVar[ActionId] = ActionId.FETCH_RECENT_LOGS
    risk_floor: ClassVar[RiskLevel] = RiskLevel.SAFE
    read_only: ClassVar[bool] = True
    summary: ClassVar[str] = "Read-only: fetch a service's logs for a timeframe like 15m, 2h, 1d."

    service: ServiceName
    timeframe: Timeframe

    def target(self) -> str:
        """Stable target name."""
        return f"logs:{self.service}"


class ListRecentDeployments(Action):
    """Read-only: list recent deployments of an environment."""

    action_id: ClassVar[ActionId] = ActionId.LIST_RECENT_DEPLOYMENTS
    risk_floor: ClassVar[RiskLevel] = RiskLevel.SAFE
    read_only: ClassVar[bool] = True
    summary: ClassVar[str] = "Read-only: list recent deployments of an environment."

    environment: EnvironmentName

    def target(self) -> str:
        """Stable target name."""
        return f"deployments:{self.environment}"


_ACTION_TYPES: tuple[type[Action], ...] = (
    RestartKubernetesPod,
    RolloutRestartDeployment,
    RollbackDeployment,
    ScaleDeployment,
    FlushRedisCache,
    RunSshCommand,
    RebootEc2Instance,
    EcsForceNewDeployment,
    QueryMetrics,
    FetchRecentLogs,
    ListRecentDeployments,
)

CATALOG: Mapping[ActionId, type[Action]] = MappingProxyType({t.action_id: t for t in _ACTION_TYPES})
"""Action id -> its typed model (which carries `risk_floor`, `read_only`, `summary`)."""

_BY_VALUE: Mapping[str, type[Action]] = MappingProxyType({k.value: v for k, v in CATALOG.items()})


class ProposedAction(BaseModel):
    """What a planner or an LLM hands over; `action_id` and `params` are untrusted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_id: str
    params: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""

    @classmethod
    def of(cls, action: Action, reasoning: str = "") -> ProposedAction:
        """Build a proposal from a typed action."""
        return cls(action_id=action.action_id.value, params=action.params(), reasoning=reasoning)


class ProposalError(BaseModel):
    """Why a proposal is not a catalog action: `not_in_catalog` or `invalid_params`."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    details: tuple[str, ...] = ()


def _shown(value: str, limit: int = 64) -> str:
    """Quote an untrusted string for a message, cut short so prose cannot ride along."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def parse_proposal(proposal: ProposedAction) -> Action | ProposalError:
    """Validate a proposal into its typed catalog action, or say why it is not one."""
    action_type = _BY_VALUE.get(proposal.action_id)
    if action_type is None:
        return ProposalError(
            code="not_in_catalog",
            message=f"action {_shown(proposal.action_id)} is not in catalog",
        )
    try:
        return action_type.model_validate(proposal.params)
    except ValidationError as exc:
        details = tuple(
            f"{'.'.join(str(p) for p in err['loc']) or '(params)'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_input=False)
        )
        return ProposalError(
            code="invalid_params",
            message=f"invalid params for {action_type.action_id.value}: " + "; ".join(details),
            details=details,
        )


# One encoder, built once: json.dumps with options builds a new one per call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8 (RFC 8785 for catalog params)."""
    return _CANONICAL.encode(value).encode("utf-8", "surrogatepass")


_json_str = json.encoder.encode_basestring  # what the encoder uses with ensure_ascii=False


def _canonical_action(action_id: str, params: dict[str, Any]) -> bytes:
    """`canonical_json({"action_id": action_id, "params": params})`, built directly.

    Catalog params are str, int or None, which this writes exactly as the encoder does
    (sorted keys, no spaces); anything else goes through the encoder. Building the
    string here costs a third of a general encoder call on every decision.
    """
    parts = []
    for key in sorted(params):
        value = params[key]
        kind = type(value)
        if kind is str:
            text = _json_str(value)
        elif kind is int:
            text = int.__repr__(value)
        elif value is None:
            text = "null"
        else:
            return canonical_json({"action_id": action_id, "params": params})
        parts.append(f"{_json_str(key)}:{text}")
    body = f'{{"action_id":{_json_str(action_id)},"params":{{{",".join(parts)}}}}}'
    return body.encode("utf-8", "surrogatepass")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raw_digest(proposal: ProposedAction) -> str:
    """Digest of a proposal that is not a valid catalog action (still deterministic)."""
    body = {"action_id": proposal.action_id, "params": proposal.params}
    try:
        data = canonical_json(body)
    except (TypeError, ValueError, RecursionError):
        data = canonical_json({"action_id": proposal.action_id, "params": "<not JSON>"})
    return _sha256(data)


def proposal_digest(proposal: ProposedAction | Action) -> str:
    """SHA-256 hex over the canonical JSON of {action_id, params}: what approvals bind to.

    For a valid proposal the params are the validated ones (every field, None included),
    so `{"cluster": "c", "db": 0}` and `{"cluster": "c", "db": 0, "key_pattern": null}`
    are one proposal. The reasoning is not part of the digest.
    """
    if isinstance(proposal, Action):
        return proposal.digest()
    parsed = parse_proposal(proposal)
    if isinstance(parsed, Action):
        return parsed.digest()
    return _raw_digest(proposal)


def catalog_schema() -> list[dict[str, Any]]:
    """The catalog as data (id, risk floor, read-only, summary, JSON schema of params)."""
    return [
        {
            "action_id": t.action_id.value,
            "risk_floor": t.risk_floor.value,
            "read_only": t.read_only,
            "summary": t.summary,
            "params_schema": t.model_json_schema(),
        }
        for t in _ACTION_TYPES
    ]


def params_from_target(action_id: str, target: str) -> dict[str, Any]:
    """The params a target string names for an action (for `policy explain --target`).

    Raises ValueError when the target does not fit the action. Params that a target
    cannot carry (to_revision, replicas, command_id, promql, timeframe) must be added by
    the caller.
    """
    action_type = _BY_VALUE.get(action_id)
    if action_type is None:
        raise ValueError(f"action {_shown(action_id)} is not in catalog")
    scheme, sep, rest = target.partition(":")
    parts = rest.split("/", 2)
    aid = action_type.action_id
    if not sep:
        raise ValueError(f"target {_shown(target)} has no scheme (like k8s:)")
    if aid is ActionId.RESTART_KUBERNETES_POD:
        if scheme == "k8s" and len(parts) == 3 and parts[1] == "pod":
            return {"namespace": parts[0], "pod": parts[2]}
    elif aid in (
        ActionId.ROLLOUT_RESTART_DEPLOYMENT,
        ActionId.ROLLBACK_DEPLOYMENT,
        ActionId.SCALE_DEPLOYMENT,
    ):
        if scheme == "k8s" and len(parts) == 3 and parts[1] == "deployment":
            return {"namespace": parts[0], "deployment": parts[2]}
    elif aid is ActionId.FLUSH_REDIS_CACHE:
        if scheme == "redis" and len(parts) == 3 and parts[1] == "db" and parts[2].isdigit():
            return {"cluster": parts[0], "db": int(parts[2])}
        if scheme == "redis" and len(parts) == 3 and parts[1] == "keys":
            return {"cluster": parts[0], "key_pattern": parts[2]}
    elif aid is ActionId.RUN_SSH_COMMAND:
        if scheme == "ssh" and rest:
            return {"host": rest}
    elif aid is ActionId.REBOOT_EC2_INSTANCE:
        if scheme == "ec2" and rest:
            return {"instance_id": rest}
    elif aid is ActionId.ECS_FORCE_NEW_DEPLOYMENT:
        if scheme == "ecs" and len(parts) == 3 and parts[1] == "service":
            return {"cluster": parts[0], "service": parts[2]}
    elif aid is ActionId.QUERY_METRICS:
        if target == "prometheus:query":
            return {}
    elif aid is ActionId.FETCH_RECENT_LOGS:
        if scheme == "logs" and rest:
            return {"service": rest}
    elif aid is ActionId.LIST_RECENT_DEPLOYMENTS and scheme == "deployments" and rest:
        return {"environment": rest}
    raise ValueError(f"target {_shown(target)} does not fit action {aid.value}")
