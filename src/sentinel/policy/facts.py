"""Facts: everything the policy engine may know at decision time, read deterministically.

The caller builds `Facts` from the live inventory (Kubernetes, Redis, hosts, AWS), the
action history and the clock; the engine reads nothing else. `now` is an input, so the
same facts always give the same decision (replay). Every `*_at` is an aware datetime,
normalised to UTC.

Lookups (a pod by namespace and name, history counts for a rate limit) read tables kept
privately on the facts (see `_memo`), answered with a dict lookup and a bisect; the
answers are always those of a plain scan. The tables are built when the facts are
constructed (`model_post_init`: validated from the recorded dict, as the workflow does
right before it decides, or built directly): indexing is part of loading a snapshot, a
few dozen microseconds beside the milliseconds that validating hundreds of facts takes,
and the decision itself then scans nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from operator import attrgetter, countOf, indexOf
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr

from sentinel.policy._memo import Memo, derived, derived_on_reuse, memo_of

__all__ = [
    "ActionRecord",
    "ApprovalFact",
    "DeploymentFact",
    "Ec2InstanceFact",
    "EcsServiceFact",
    "Facts",
    "HostFact",
    "HistoryField",
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
_K = TypeVar("_K", bound=Hashable)


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

    # Tables by key, built with the inventory (see the module docstring) and kept on this
    # frozen model; each answers the first item with its key, as a scan would.
    _memo: Memo = PrivateAttr(default_factory=Memo)

    def model_post_init(self, context: object, /) -> None:
        memo = memo_of(self)
        derived(memo, "pods", self.pods, _PODS_BY_KEY)
        derived(memo, "deployments", self.deployments, _DEPLOYMENTS_BY_KEY)
        derived(memo, "redis_clusters", self.redis_clusters, _REDIS_BY_NAME)
        derived(memo, "hosts", self.hosts, _HOSTS_BY_NAME)
        derived(memo, "ec2_instances", self.ec2_instances, _EC2_BY_ID)
        derived(memo, "ecs_services", self.ecs_services, _ECS_BY_KEY)

    def pod(self, namespace: str, name: str) -> PodFact | None:
        """The pod with that namespace and name, if it exists."""
        table = derived_on_reuse(memo_of(self), "pods", self.pods, _PODS_BY_KEY)
        if table is None:
            return _find(self.pods, _NAME, name, _NAMESPACE, namespace)
        return table.get((namespace, name))

    def deployment(self, namespace: str, name: str) -> DeploymentFact | None:
        """The deployment with that namespace and name, if it exists."""
        table = derived_on_reuse(
            memo_of(self), "deployments", self.deployments, _DEPLOYMENTS_BY_KEY
        )
        if table is None:
            return _find(self.deployments, _NAME, name, _NAMESPACE, namespace)
        return table.get((namespace, name))

    def redis_cluster(self, name: str) -> RedisClusterFact | None:
        """The Redis cluster with that name, if it exists."""
        table = derived_on_reuse(
            memo_of(self), "redis_clusters", self.redis_clusters, _REDIS_BY_NAME
        )
        if table is None:
            return _find(self.redis_clusters, _NAME, name)
        return table.get(name)

    def host(self, name: str) -> HostFact | None:
        """The host with that name, if it exists."""
        table = derived_on_reuse(memo_of(self), "hosts", self.hosts, _HOSTS_BY_NAME)
        if table is None:
            return _find(self.hosts, _NAME, name)
        return table.get(name)

    def allowed_commands(self, host: HostFact) -> set[str]:
        """Command ids allowed on a host: the union over its (known) groups."""
        groups = set(host.groups)
        return {c for g in self.host_groups if g.name in groups for c in g.allowed_command_ids}

    def ec2_instance(self, instance_id: str) -> Ec2InstanceFact | None:
        """The EC2 instance with that id, if it exists."""
        table = derived_on_reuse(memo_of(self), "ec2_instances", self.ec2_instances, _EC2_BY_ID)
        if table is None:
            return _find(self.ec2_instances, _INSTANCE_ID, instance_id)
        return table.get(instance_id)

    def ecs_service(self, cluster: str, name: str) -> EcsServiceFact | None:
        """The ECS service with that cluster and name, if it exists."""
        table = derived_on_reuse(memo_of(self), "ecs_services", self.ecs_services, _ECS_BY_KEY)
        if table is None:
            return _find(self.ecs_services, _NAME, name, _CLUSTER, cluster)
        return table.get((cluster, name))


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


HistoryField = Literal["action_id", "target", "service"]
"""An `ActionRecord` field that rate limits count by."""


class Facts(_Fact):
    """The complete input about the world for one decision."""

    environment: str
    now: UtcDatetime
    inventory: Inventory = Field(default_factory=Inventory)
    history: list[ActionRecord] = Field(default_factory=list)
    pods_in_flight: list[PodRef] = Field(default_factory=list)
    approval: ApprovalFact | None = None

    _memo: Memo = PrivateAttr(default_factory=Memo)

    def model_post_init(self, context: object, /) -> None:
        self.history_index().group_all()  # built with the facts (see the module docstring)

    def history_count(
        self,
        field: HistoryField,
        key: str,
        since: datetime,
        actions: frozenset[str] = frozenset(),
    ) -> int:
        """Past actions whose `field` equals `key`, stamped after `since` (strictly).

        When `actions` is not empty only records of those action ids count. Records
        stamped after `now` (clock skew) count too. The matching timestamps are found
        once per (field, key, actions) and kept sorted on these facts, so a count is a
        dict lookup and a bisect.
        """
        return self.history_index().count(field, key, since, actions)

    def history_index(self) -> _HistoryIndex:
        """The history lookups kept on these facts (see `history_count`)."""
        return derived(memo_of(self), "history", self.history, _HistoryIndex)


class _HistoryIndex:
    """Sorted timestamps of the history records matching a (field, key, actions)."""

    __slots__ = ("_complete", "_history", "_matching", "_times")

    def __init__(self, history: list[ActionRecord]) -> None:
        self._history = history
        self._matching: dict[tuple[HistoryField, str], list[ActionRecord]] = {}
        self._times: dict[tuple[HistoryField, str, frozenset[str]], list[datetime]] = {}
        self._complete = False  # _matching holds every (field, key) with a record

    def group_all(self) -> None:
        """Group the records by every field's key in one pass each (in history order)."""
        if self._complete:
            return
        matching: dict[tuple[HistoryField, str], list[ActionRecord]] = {}
        for field, get in _HISTORY_GETTERS.items():
            for record in self._history:
                key = get(record)
                if key is not None:
                    matching.setdefault((field, str(key)), []).append(record)
        self._matching = matching
        self._complete = True

    def count(self, field: HistoryField, key: str, since: datetime, actions: frozenset[str]) -> int:
        """See `Facts.history_count`."""
        times = self.times(field, key, actions)
        return len(times) - bisect_right(times, since)

    def times(self, field: HistoryField, key: str, actions: frozenset[str]) -> list[datetime]:
        found = self._times.get((field, key, actions))
        if found is None:
            found = self._times[field, key, actions] = self._collect(field, key, actions)
        return found

    def _collect(self, field: HistoryField, key: str, actions: frozenset[str]) -> list[datetime]:
        # The records with that key are found once, whatever `actions` narrows them to.
        records = self._matching.get((field, key))
        if records is None and self._complete:
            records = []
        if records is None:
            records = self._matching[field, key] = _all_with(
                self._history, _HISTORY_GETTERS[field], key
            )
        if actions:
            found = [r.at for r in records if r.action_id in actions]
        else:
            found = [r.at for r in records]
        found.sort()
        return found


_HISTORY_GETTERS: dict[HistoryField, Callable[[ActionRecord], object]] = {
    "action_id": attrgetter("action_id"),
    "target": attrgetter("target"),
    "service": attrgetter("service"),
}


def _all_with(items: list[_T], get: Callable[[_T], object], value: str) -> list[_T]:
    """Every item with `get(item) == value`, in order: one scan, no key column built.

    `operator.countOf` and `operator.indexOf` walk a lazy `map` at C speed (indexOf stops
    at each match and the next call resumes after it). A generator scan costs several
    times more; building a column of keys first costs an allocation per lookup.
    """
    found: list[_T] = []
    n = countOf(map(get, items), value)  # usually 0: one pass, nothing to raise
    if n:
        keys = map(get, items)
        at = 0
        for _ in range(n):
            at += indexOf(keys, value)
            found.append(items[at])
            at += 1
    return found


def _first_by(key: Callable[[_T], _K]) -> Callable[[list[_T]], dict[_K, _T]]:
    """A table builder: item by key, the first item winning like a scan would."""

    def build(items: list[_T]) -> dict[_K, _T]:
        backwards = items[::-1]  # later duplicates go in first; the first one overwrites
        return dict(zip(map(key, backwards), backwards, strict=True))

    return build


def _find(
    items: list[_T],
    get: Callable[[_T], object],
    value: str,
    also: Callable[[_T], object] | None = None,
    also_value: str | None = None,
) -> _T | None:
    """First item with `get(item) == value` (and `also(item) == also_value`): one scan.

    Like `_all_with`, it compares the keys at C speed over a lazy `map` and stops at the
    first match, so nothing is allocated per item.
    """
    keys = map(get, items)
    at = 0
    while True:
        try:
            at += indexOf(keys, value)
        except ValueError:
            return None
        item = items[at]
        if also is None or also(item) == also_value:
            return item
        at += 1


_NAME = attrgetter("name")
_NAMESPACE = attrgetter("namespace")
_CLUSTER = attrgetter("cluster")
_INSTANCE_ID = attrgetter("instance_id")

_PODS_BY_KEY: Callable[[list[PodFact]], dict[tuple[str, str], PodFact]] = _first_by(
    attrgetter("namespace", "name")
)
_DEPLOYMENTS_BY_KEY: Callable[[list[DeploymentFact]], dict[tuple[str, str], DeploymentFact]] = (
    _first_by(attrgetter("namespace", "name"))
)
_REDIS_BY_NAME: Callable[[list[RedisClusterFact]], dict[str, RedisClusterFact]] = _first_by(
    attrgetter("name")
)
_HOSTS_BY_NAME: Callable[[list[HostFact]], dict[str, HostFact]] = _first_by(attrgetter("name"))
_EC2_BY_ID: Callable[[list[Ec2InstanceFact]], dict[str, Ec2InstanceFact]] = _first_by(
    attrgetter("instance_id")
)
_ECS_BY_KEY: Callable[[list[EcsServiceFact]], dict[tuple[str, str], EcsServiceFact]] = _first_by(
    attrgetter("cluster", "name")
)
