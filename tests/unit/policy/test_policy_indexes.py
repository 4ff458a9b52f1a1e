"""The lookup tables kept on Facts / Inventory answer exactly what a scan would.

Inventory lookups and rate-limit counts go through tables built on first use and cached
on the (frozen) models. Every answer is checked here against a brute-force scan, on
random worlds with duplicate keys and on histories stamped at the window edges (exactly
`since`, a microsecond either side, in the future), cold and warm, and across copies.
"""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.policy import (
    ActionRecord,
    DeploymentFact,
    Ec2InstanceFact,
    EcsServiceFact,
    Facts,
    HostFact,
    HostGroupFact,
    Inventory,
    Outcome,
    PodFact,
    ProposedAction,
    RedisClusterFact,
    evaluate,
    explain,
)
from sentinel.policy.facts import HistoryField
from tests.unit.policy.conftest import INVENTORY, policy_from

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
NAMES = ["a", "b", "c"]
SPACES = ["x", "y"]
ACTION_IDS = ["restart_kubernetes_pod", "rollback_deployment", "scale_deployment"]
TARGETS = ["k8s:x/pod/a", "k8s:x/deployment/b", "ssh:c"]
SERVICES = [None, "api", "db"]
WINDOWS = [1, 60, 600]
US = timedelta(microseconds=1)
names = st.sampled_from(NAMES)
spaces = st.sampled_from(SPACES)
labels = st.dictionaries(st.sampled_from(["k", "v"]), st.sampled_from(["1", "2"]), max_size=1)


def first(items: list[Any], **want: Any) -> Any:
    """The brute-force answer: the first item whose attributes have the wanted values."""
    return next((i for i in items if all(getattr(i, k) == v for k, v in want.items())), None)


inventories = st.builds(
    Inventory,
    pods=st.lists(
        st.builds(
            PodFact,
            namespace=spaces,
            name=names,
            deployment=st.none() | names,
            labels=labels,
        ),
        max_size=8,
    ),
    deployments=st.lists(
        st.builds(
            DeploymentFact,
            namespace=spaces,
            name=names,
            replicas=st.integers(0, 3),
            current_revision=st.integers(1, 3),
            labels=labels,
        ),
        max_size=8,
    ),
    redis_clusters=st.lists(st.builds(RedisClusterFact, name=names, labels=labels), max_size=4),
    hosts=st.lists(
        st.builds(HostFact, name=names, groups=st.lists(names, max_size=3), labels=labels),
        max_size=4,
    ),
    host_groups=st.lists(
        st.builds(
            HostGroupFact,
            name=names,
            allowed_command_ids=st.lists(st.sampled_from(["c1", "c2", "c3"]), max_size=2),
        ),
        max_size=4,
    ),
    ec2_instances=st.lists(st.builds(Ec2InstanceFact, instance_id=names), max_size=4),
    ecs_services=st.lists(st.builds(EcsServiceFact, cluster=spaces, name=names), max_size=6),
)


def check_inventory(inv: Inventory) -> None:
    """Every lookup, for every key of the small universe (present or not), is the scan's."""
    for ns in SPACES:
        for name in NAMES:
            assert inv.pod(ns, name) is first(inv.pods, namespace=ns, name=name)
            assert inv.deployment(ns, name) is first(inv.deployments, namespace=ns, name=name)
            assert inv.ecs_service(ns, name) is first(inv.ecs_services, cluster=ns, name=name)
    for name in [*NAMES, "missing"]:
        assert inv.redis_cluster(name) is first(inv.redis_clusters, name=name)
        assert inv.host(name) is first(inv.hosts, name=name)
        assert inv.ec2_instance(name) is first(inv.ec2_instances, instance_id=name)
    for host in inv.hosts:
        expected = {
            c for g in inv.host_groups if g.name in host.groups for c in g.allowed_command_ids
        }
        assert inv.allowed_commands(host) == expected


@settings(max_examples=300, deadline=None)
@given(inventories)
def test_inventory_lookups_equal_a_scan(inv: Inventory) -> None:
    check_inventory(inv)  # cold: scans, then builds the tables on the second lookup
    check_inventory(inv)  # warm: reads them


@settings(max_examples=100, deadline=None)
@given(inventories, inventories)
def test_inventory_tables_follow_copies(inv: Inventory, other: Inventory) -> None:
    check_inventory(inv)
    # A copy with an update shares the original's private cache: it must not read it.
    updated = inv.model_copy(update={"pods": other.pods, "deployments": other.deployments})
    check_inventory(updated)
    check_inventory(inv)
    for clone in (copy.deepcopy(inv), inv.model_copy(), pickle.loads(pickle.dumps(inv))):
        assert clone == inv
        check_inventory(clone)


# -- history ---------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[ActionRecord], list[datetime]]:
    """Records stamped on and around the window edges, and the `since` values to ask."""
    sinces = [NOW - timedelta(seconds=w) for w in WINDOWS]
    stamps = st.sampled_from(
        [s + d for s in sinces for d in (-US, timedelta(0), US)] + [NOW, NOW + US, NOW + US * 9]
    )
    records = draw(
        st.lists(
            st.builds(
                ActionRecord,
                action_id=st.sampled_from(ACTION_IDS),
                target=st.sampled_from(TARGETS),
                service=st.sampled_from(SERVICES),
                at=stamps | st.integers(-900, 60).map(lambda s: NOW + timedelta(seconds=s)),
            ),
            max_size=12,
        )
    )
    return records, sinces


def brute_count(
    history: list[ActionRecord],
    field: HistoryField,
    key: str,
    since: datetime,
    actions: frozenset[str],
) -> int:
    return sum(
        1
        for r in history
        if getattr(r, field) == key and r.at > since and (not actions or r.action_id in actions)
    )


ACTION_SETS = [frozenset(), frozenset(ACTION_IDS[:1]), frozenset(ACTION_IDS[1:]), frozenset(["x"])]


def check_history(facts: Facts, sinces: list[datetime]) -> None:
    keys: dict[HistoryField, list[str]] = {
        "action_id": [*ACTION_IDS, "other"],
        "target": [*TARGETS, "other"],
        "service": ["api", "db", "other"],
    }
    for field in get_args(HistoryField):
        for key in keys[field]:
            for actions in ACTION_SETS:
                for since in sinces:
                    for edge in (since - US, since, since + US):
                        got = facts.history_count(field, key, edge, actions)
                        assert got == brute_count(facts.history, field, key, edge, actions)


@settings(max_examples=200, deadline=None)
@given(histories())
def test_history_counts_equal_a_scan(drawn: tuple[list[ActionRecord], list[datetime]]) -> None:
    history, sinces = drawn
    facts = Facts(environment="prod", now=NOW, history=history)
    check_history(facts, sinces)  # cold
    check_history(facts, sinces)  # warm
    # Shuffled order gives the same counts (the table sorts by time).
    check_history(Facts(environment="prod", now=NOW, history=history[::-1]), sinces)


@settings(max_examples=100, deadline=None)
@given(histories(), histories())
def test_history_tables_follow_copies(
    drawn: tuple[list[ActionRecord], list[datetime]],
    other: tuple[list[ActionRecord], list[datetime]],
) -> None:
    facts = Facts(environment="prod", now=NOW, history=drawn[0])
    check_history(facts, drawn[1])
    check_history(facts.model_copy(update={"history": other[0]}), drawn[1])
    check_history(facts, drawn[1])
    for clone in (copy.deepcopy(facts), pickle.loads(pickle.dumps(facts))):
        assert clone == facts
        check_history(clone, drawn[1])
    # The cache is no part of the data.
    assert facts == Facts(environment="prod", now=NOW, history=drawn[0])
    assert facts.model_dump() == Facts(environment="prod", now=NOW, history=drawn[0]).model_dump()


# -- the engine on the same histories --------------------------------------------------


PROPOSAL = ProposedAction(
    action_id="restart_kubernetes_pod", params={"namespace": "shop", "pod": "checkout-7d9f"}
)
TARGET = "k8s:shop/pod/checkout-7d9f"


@st.composite
def limited(draw: st.DrawFn) -> tuple[dict[str, Any], list[ActionRecord]]:
    """One rate limit and a history on its edges, for the shared world's checkout pod."""
    window = draw(st.sampled_from(WINDOWS))
    limit = {
        "id": "rate.x",
        "per": draw(st.sampled_from(["action", "target", "service"])),
        "max": draw(st.integers(0, 3)),
        "window_seconds": window,
        "actions": draw(st.sampled_from([[], ["restart_kubernetes_pod"], ["rollback_deployment"]])),
    }
    since = NOW - timedelta(seconds=window)
    history = draw(
        st.lists(
            st.builds(
                ActionRecord,
                action_id=st.sampled_from(ACTION_IDS),
                target=st.sampled_from([TARGET, "k8s:shop/pod/other"]),
                service=st.sampled_from([None, "checkout", "api"]),
                at=st.sampled_from([since - US, since, since + US, NOW, NOW + US]),
            ),
            max_size=8,
        )
    )
    return limit, history


@settings(max_examples=200, deadline=None)
@given(limited())
def test_rate_limit_decision_equals_a_scan(
    drawn: tuple[dict[str, Any], list[ActionRecord]],
) -> None:
    limit, history = drawn
    doc = {
        "version": 1,
        "environments": {"prod": {"mode": "autonomous", "run_alone": ["SAFE"]}},
        "rate_limits": [limit],
        "blast_radius": {"max_pods": 5, "max_percent": 100},
        "rules": [{"id": "allow-all", "effect": "allow"}],
    }
    policy = policy_from(doc)
    facts = Facts(environment="prod", now=NOW, inventory=INVENTORY, history=history)
    field = {"action": "action_id", "target": "target", "service": "service"}[limit["per"]]
    key = {"action": PROPOSAL.action_id, "target": TARGET, "service": "checkout"}[limit["per"]]
    applies = not limit["actions"] or PROPOSAL.action_id in limit["actions"]
    since = NOW - timedelta(seconds=limit["window_seconds"])
    count = brute_count(history, field, key, since, frozenset(limit["actions"]))
    denied = applies and count >= limit["max"]
    cold = evaluate(PROPOSAL, facts, policy)
    warm = evaluate(PROPOSAL, facts, policy)
    assert cold == warm
    assert (cold.outcome is Outcome.DENY) == denied, (count, cold)
    if denied:
        assert cold.rule_id == "rate.x"
        assert cold.reasons[0].startswith(f"rate limit rate.x: {count} of max {limit['max']}")
    steps = [s for s in explain(PROPOSAL, facts, policy).steps if s.check == "rate limit"]
    if applies:
        assert f"{count} of max {limit['max']} in {limit['window_seconds']}s" in steps[0].detail


# The digest's canonical JSON is built directly for catalog params (str, int, None) and
# by the general encoder otherwise: both must give the same bytes.
_JSON_VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=5))
def test_canonical_action_json_equals_the_encoder(action_id: str, params: dict[str, Any]) -> None:
    from sentinel.policy.actions import _canonical_action, canonical_json

    expected = canonical_json({"action_id": action_id, "params": params})
    assert _canonical_action(action_id, params) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="ab*?[]!-", max_size=5), max_size=4), st.text("abk-", max_size=6))
def test_denied_namespace_regex_equals_fnmatch(patterns: list[str], namespace: str) -> None:
    from fnmatch import fnmatchcase

    from sentinel.policy.engine import _globs_regex

    regex = _globs_regex(patterns)
    expected = any(fnmatchcase(namespace, p) for p in patterns)
    assert (regex is not None and regex.match(namespace) is not None) == expected
