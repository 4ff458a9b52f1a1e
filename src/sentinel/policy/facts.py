"""Facts: everything the policy engine may know at decision time, read deterministically.

The caller builds `Facts` from the live inventory (Kubernetes, Redis, hosts, AWS), the
action history and the clock; the engine reads nothing else. `now` is an input, so the
same facts always give the same decision (replay). Every `*_at` is an aware datetime,
normalised to UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from operator import attrgetter
from typing import Annotated, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "ActionRecord",
    "ApprovalFact",
    "DeploymentFact",
    "Ec2InstanceFact",
    "EcsServiceFact",
    "Facts",
    "HostFact",
    "HostGroupFact",
    "Inventory",
    "PodFact",
    "PodRef",
    "RedisClusterFact",
    "UtcDatetime",
]


class _Fact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An aware datetime (naive ones are rejected), normalised to UTC."""

_T = TypeVar("_T")


class PodFact(_Fact):
    """A pod that exists now."""

    namespace: str
    name: str
    deployment: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    service: str | None = None


class DeploymentFact(_Fact):
    """A deployment that exists now, with the revisions it can be rolled back to."""

    namespace: str
    name: str
    replicas: int = Field(ge=0)
    current_revision: int
    revisions: list[int] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    service: str | None = None


class RedisClusterFact(_Fact):
    """A Redis cluster, its dbs and the key patterns that may be deleted."""

    name: str
    dbs: list[int] = Field(default_factory=lambda: [0])
    key_patterns: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    service: str | None = None


class HostGroupFact(_Fact):
    """A group of hosts and the command ids allowed on them."""

    name: str
    allowed_command_ids: list[str] = Field(default_factory=list)


class HostFact(_Fact):
    """A host reachable by SSH and the groups it belongs to."""

    name: str
    groups: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    service: str | None = None


class Ec2InstanceFact(_Fact):
    """An EC2 instance."""

    instance_id: str
    name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    service: str | None = None


class EcsServiceFact(_Fact):
    """An ECS service in a cluster."""

    cluster: str
    name: str
    tags: dict[str, str] = Field(default_factory=dict)
    service: str | None = None


class Inventory(_Fact):
    """What exists now; parameters must name something in here."""

    pods: list[PodFact] = Field(default_factory=list)
    deployments: list[DeploymentFact] = Field(default_factory=list)
    redis_clusters: list[RedisClusterFact] = Field(default_factory=list)
    hosts: list[HostFact] = Field(default_factory=list)
    host_groups: list[HostGroupFact] = Field(default_factory=list)
    ec2_instances: list[Ec2InstanceFact] = Field(default_factory=list)
    ecs_services: list[EcsServiceFact] = Field(default_factory=list)

    def pod(self, namespace: str, name: str) -> PodFact | None:
        """The pod with that namespace and name, if it exists."""
        return _find(self.pods, "name", name, lambda p: p.namespace == namespace)

    def deployment(self, namespace: str, name: str) -> DeploymentFact | None:
        """The deployment with that namespace and name, if it exists."""
        return _find(self.deployments, "name", name, lambda d: d.namespace == namespace)

    def redis_cluster(self, name: str) -> RedisClusterFact | None:
        """The Redis cluster with that name, if it exists."""
        return _find(self.redis_clusters, "name", name)

    def host(self, name: str) -> HostFact | None:
        """The host with that name, if it exists."""
        return _find(self.hosts, "name", name)

    def allowed_commands(self, host: HostFact) -> set[str]:
        """Command ids allowed on a host: the union over its (known) groups."""
        groups = set(host.groups)
        return {c for g in self.host_groups if g.name in groups for c in g.allowed_command_ids}

    def ec2_instance(self, instance_id: str) -> Ec2InstanceFact | None:
        """The EC2 instance with that id, if it exists."""
        return _find(self.ec2_instances, "instance_id", instance_id)

    def ecs_service(self, cluster: str, name: str) -> EcsServiceFact | None:
        """The ECS service with that cluster and name, if it exists."""
        return _find(self.ecs_services, "name", name, lambda s: s.cluster == cluster)


class ActionRecord(_Fact):
    """One action already executed (for rate limits)."""

    action_id: str
    target: str
    service: str | None = None
    at: UtcDatetime


class PodRef(_Fact):
    """A pod some action is acting on right now (for blast radius)."""

    namespace: str
    name: str


class ApprovalFact(_Fact):
    """A human approval offered for this proposal; the engine checks it is valid."""

    approval_id: str = Field(min_length=1)
    approver: str = Field(min_length=1)
    approver_roles: list[str] = Field(default_factory=list)
    requester: str = Field(min_length=1)
    proposal_digest: str
    expires_at: UtcDatetime
    used: bool = False


class Facts(_Fact):
    """The complete input about the world for one decision."""

    environment: str
    now: UtcDatetime
    inventory: Inventory = Field(default_factory=Inventory)
    history: list[ActionRecord] = Field(default_factory=list)
    pods_in_flight: list[PodRef] = Field(default_factory=list)
    approval: ApprovalFact | None = None


def _find(
    items: list[_T], attr: str, value: str, also: Callable[[_T], bool] | None = None
) -> _T | None:
    """First item whose `attr` equals `value` (and `also` holds).

    The key column is built and searched with C-level list operations: a plain
    generator scan costs several times more on inventories of hundreds of items.
    """
    keys = list(map(attrgetter(attr), items))
    start = 0
    while True:
        try:
            i = keys.index(value, start)
        except ValueError:
            return None
        if also is None or also(items[i]):
            return items[i]
        start = i + 1
