"""KubernetesExecutor against the sandbox's Kubernetes API through the official client.

The sandbox is served in-process (manual ticks). Sentinel's executor runs as the standing
identity ``sentinel/sentinel`` (it may only read and mint per-action identities); the
tests check with the admin token what happened: the pod replaced, the revision rolled
back, the replicas changed, the per-action identity gone afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sentinel.core.redact import redact
from sentinel.executors.kubernetes import (
    ACTION_KEY_ANNOTATION,
    KubernetesExecutor,
    KubernetesSettings,
    jit_name,
    rules_for,
)
from sentinel.policy.facts import Inventory
from sentinel_sandbox import scenario as scenario_mod
from sentinel_sandbox.app import ServerThread
from sentinel_sandbox.sandbox import Sandbox
from tests.conftest import free_port

NS = "boutique"
SA_NS = "sentinel"
REV = "deployment.kubernetes.io/revision"


def kube(url: str, token: str) -> client.ApiClient:
    cfg = client.Configuration(host=url)
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    cfg.retries = False
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    sb = Sandbox(scenario_mod.default(), tmp_path_factory.mktemp("k8s"), tick_seconds=0)
    srv = ServerThread(sb).start()
    yield srv
    srv.stop()


class World:
    """The sandbox, an admin client for checking, and settings for Sentinel's executor."""

    def __init__(self, srv: ServerThread) -> None:
        self.sb: Sandbox = srv.sb
        self.url = srv.url
        self.admin = kube(self.url, self.sb.admin_token)
        self.core = client.CoreV1Api(self.admin)
        self.apps = client.AppsV1Api(self.admin)
        self.rbac = client.RbacAuthorizationV1Api(self.admin)
        self.standing_token_file = Path(self.sb.state_dir) / "sentinel.token"
        self.settings = KubernetesSettings(
            api_server=self.url,
            token_file=str(self.standing_token_file),
            service_account_namespace=SA_NS,
            default_namespace=NS,
        )

    def executor(self, **overrides: Any) -> KubernetesExecutor:
        return KubernetesExecutor(self.settings.model_copy(update=overrides))

    def pods(self, app: str) -> list[str]:
        items = self.core.list_namespaced_pod(NS, label_selector=f"app={app}").items
        return sorted(p.metadata.name for p in items if p.metadata and p.metadata.name)

    def deployment(self, name: str) -> Any:
        return self.apps.read_namespaced_deployment(name, NS)

    def leftovers(self) -> list[str]:
        """Every per-action ServiceAccount, Role and RoleBinding still present."""
        sel = "app.kubernetes.io/managed-by=sentinel"
        found = [
            f"sa/{x.metadata.name}"
            for x in self.core.list_namespaced_service_account(SA_NS, label_selector=sel).items
            if x.metadata
        ]
        found += [
            f"role/{x.metadata.name}"
            for x in self.rbac.list_namespaced_role(NS, label_selector=sel).items
            if x.metadata
        ]
        found += [
            f"rolebinding/{x.metadata.name}"
            for x in self.rbac.list_namespaced_role_binding(NS, label_selector=sel).items
            if x.metadata
        ]
        return found

    def issued_tokens(self) -> list[str]:
        return list(self.sb.rbac.tokens)


@pytest.fixture
def w(server: ServerThread) -> World:
    server.sb.reset()
    server.sb.tick(3)
    return World(server)


def restart(pod: str) -> dict[str, Any]:
    return {
        "action_id": "restart_kubernetes_pod",
        "params": {"namespace": NS, "pod": pod},
        "target": f"k8s:{NS}/pod/{pod}",
    }


def on_deployment(action_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "action_id": action_id,
        "params": {"namespace": NS, "deployment": name, **extra},
        "target": f"k8s:{NS}/deployment/{name}",
    }


def assert_no_secret(w: World, result: dict[str, Any]) -> None:
    text = json.dumps(result, default=str)
    assert not [t for t in w.issued_tokens() if t in text]
    assert redact(result) == result  # nothing secret-looking for the audit redactor to mask


# -- the actions have their real effects -----------------------------------------------------


def test_restart_pod_replaces_it_under_a_token_for_that_pod_only(w: World) -> None:
    ex = w.executor()
    before = w.pods("cart")
    victim = before[0]
    key = "inc-restart:remediate:execute"
    r = ex.execute(restart(victim), key)
    assert r["ok"] is True, r
    after = w.pods("cart")
    assert victim not in after and len(after) == len(before)
    assert r["read_back"]["old_pod_present"] is False
    assert r["read_back"]["new_pods"] == sorted(set(after) - set(before))
    jit = r["jit"]
    name = jit_name("sentinel-act", key)
    assert jit["mechanism"] == "kubernetes_token_request"
    assert jit["identity"] == f"system:serviceaccount:{SA_NS}:{name}"
    assert jit["scope"]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"], "resourceNames": [victim]}
    ]
    assert jit["lifetime_seconds"] >= 590 and jit["scope"]["audiences"] == []
    assert r["jit_cleanup"] == {
        "role_binding": "deleted",
        "role": "deleted",
        "service_account": "deleted",
    }
    assert w.leftovers() == []
    assert_no_secret(w, r)
    events = w.core.list_namespaced_event(NS, field_selector=f"involvedObject.name={victim}").items
    assert any(e.reason == "Killing" for e in events)


def test_rollout_restart_makes_new_pods_and_marks_the_deployment(w: World) -> None:
    ex = w.executor()
    before = w.pods("currency")
    key = "inc-rr:remediate:execute"
    r = ex.execute(on_deployment("rollout_restart_deployment", "currency"), key)
    assert r["ok"] is True, r
    after = w.pods("currency")
    assert len(after) == len(before) and not set(after) & set(before)
    d = w.deployment("currency")
    assert d.metadata.annotations[ACTION_KEY_ANNOTATION] == key
    assert d.metadata.annotations[REV] == "2" and r["deployment"]["revision_after"] == 2
    assert "kubectl.kubernetes.io/restartedAt" in d.spec.template.metadata.annotations
    assert r["jit"]["scope"]["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": ["patch"],
            "resourceNames": ["currency"],
        }
    ]
    assert w.leftovers() == []
    # Executing the same key again does not restart twice.
    again = ex.execute(on_deployment("rollout_restart_deployment", "currency"), key)
    assert again["ok"] is True and again["replayed"] is True and "jit" not in again
    assert w.deployment("currency").metadata.annotations[REV] == "2"
    assert w.pods("currency") == after


def test_rollback_to_a_named_revision_removes_the_bad_behaviour(w: World) -> None:
    r = httpx.post(
        f"{w.url}/sandbox/faults",
        json={"kind": "bad_deploy", "target": "checkout", "size": 0.5, "message": "checkout v9"},
    )
    assert r.status_code == 201, r.text
    w.sb.tick(5)
    assert w.sb.state()["services"]["checkout"]["error_ratio"] > 0.3
    assert w.deployment("checkout").metadata.annotations[REV] == "2"
    good_image = w.apps.list_namespaced_replica_set(NS, label_selector="app=checkout").items
    rev1 = next(rs for rs in good_image if rs.metadata.annotations[REV] == "1")
    ex = w.executor()
    key = "inc-rb:remediate:execute"
    res = ex.execute(on_deployment("rollback_deployment", "checkout", to_revision=1), key)
    assert res["ok"] is True, res
    d = w.deployment("checkout")
    assert d.spec.template.spec.containers[0].image == rev1.spec.template.spec.containers[0].image
    assert res["deployment"]["images_after"] == [d.spec.template.spec.containers[0].image]
    assert res["deployment"]["revision_before"] == 2 and res["deployment"]["revision_after"] == 3
    assert d.metadata.annotations[ACTION_KEY_ANNOTATION] == key
    w.sb.tick(3)
    assert w.sb.state()["services"]["checkout"]["error_ratio"] < 0.01
    assert w.sb.state()["faults"][0]["status"] == "healed"
    assert w.leftovers() == []
    assert_no_secret(w, res)


def test_rollback_to_a_missing_or_current_revision_is_refused_before_any_grant(w: World) -> None:
    ex = w.executor()
    missing = ex.execute(
        on_deployment("rollback_deployment", "checkout", to_revision=7), "inc-rb7:x:y"
    )
    assert missing["ok"] is False and missing["refused"] is True
    assert missing["may_have_run"] is False
    assert "no revision 7" in missing["error"] and "[1]" in missing["error"]
    current = ex.execute(
        on_deployment("rollback_deployment", "checkout", to_revision=1), "inc-rb1:x:y"
    )
    assert current["refused"] is True and "already at revision 1" in current["error"]
    assert w.leftovers() == []
    assert w.deployment("checkout").metadata.annotations[REV] == "1"


def test_scale_changes_replicas_through_the_scale_subresource(w: World) -> None:
    ex = w.executor()
    key = "inc-scale:remediate:execute"
    r = ex.execute(on_deployment("scale_deployment", "frontend", replicas=5), key)
    assert r["ok"] is True, r
    assert r["deployment"] == {"replicas_before": 2, "replicas_after": 5}
    assert len(w.pods("frontend")) == 5
    d = w.deployment("frontend")
    assert d.spec.replicas == 5 and d.metadata.annotations[ACTION_KEY_ANNOTATION] == key
    assert {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["patch"],
        "resourceNames": ["frontend"],
    } in r["jit"]["scope"]["rules"]
    assert all(rule["resourceNames"] == ["frontend"] for rule in r["jit"]["scope"]["rules"])
    assert w.leftovers() == []
    w.sb.tick(2)
    assert w.sb.state()["services"]["frontend"]["ready_pods"] == 5


# -- just-in-time credentials ------------------------------------------------------------------


def test_a_token_minted_for_one_pod_is_refused_on_another(w: World) -> None:
    ex = w.executor()
    mine, other = w.pods("cart")
    key = "inc-jit:remediate:execute"
    with ex.jit_session(key, NS, rules_for("restart_kubernetes_pod", mine)) as (api, grant):
        token = api.configuration.api_key["authorization"]
        assert grant["scope"]["rules"][0]["resourceNames"] == [mine]
        assert f"sa/{jit_name('sentinel-act', key)}" in w.leftovers()
        headers = {"Authorization": f"Bearer {token}"}
        # The minted token itself, over plain HTTP: refused on the other pod...
        r = httpx.delete(f"{w.url}/api/v1/namespaces/{NS}/pods/{other}", headers=headers)
        assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
        # ... and through the official client, refused on anything but its one pod and verb.
        scoped_core = client.CoreV1Api(kube(w.url, token))
        with pytest.raises(ApiException) as e:
            scoped_core.delete_namespaced_pod(other, NS)
        assert e.value.status == 403
        with pytest.raises(ApiException) as e:
            client.AppsV1Api(kube(w.url, token)).patch_namespaced_deployment(
                "cart", NS, {"spec": {"replicas": 3}}
            )
        assert e.value.status == 403
        with pytest.raises(ApiException) as e:
            scoped_core.read_namespaced_pod(mine, NS)  # delete only: not even get
        assert e.value.status == 403
        r = httpx.delete(f"{w.url}/api/v1/namespaces/{NS}/pods/{mine}", headers=headers)
        assert r.status_code == 200
        assert other in w.pods("cart") and mine not in w.pods("cart")
    # Leaving the session deleted the identity: the token is dead.
    assert w.leftovers() == []
    r = httpx.get(f"{w.url}/api/v1/namespaces/{NS}/pods", headers=headers)
    assert r.status_code == 401


def test_the_standing_identity_alone_cannot_act(w: World) -> None:
    ex = w.executor()
    standing = ex.standing_api
    pod = w.pods("cart")[0]
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(standing).delete_namespaced_pod(pod, NS)
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        client.AppsV1Api(standing).patch_namespaced_deployment(
            "cart", NS, {"spec": {"replicas": 3}}
        )
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        client.AppsV1Api(standing).patch_namespaced_deployment_scale(
            "cart", NS, {"spec": {"replicas": 3}}
        )
    assert e.value.status == 403
    assert pod in w.pods("cart")


# -- reconcile after a crash -------------------------------------------------------------------


def crashed_session(ex: KubernetesExecutor, key: str, rules: list[dict[str, Any]]) -> Any:
    """Mint an identity and never revoke it: what a process killed mid-action leaves."""
    api, _ = ex.mint(key, NS, rules)
    return api


def test_reconcile_finds_a_finished_rollout_and_revokes_the_leftover_identity(w: World) -> None:
    key = "inc-crash:remediate:execute"
    action = on_deployment("rollout_restart_deployment", "email")
    api = crashed_session(w.executor(), key, rules_for(action["action_id"], "email"))
    # The patch went through (with its marker), then the process died before cleanup.
    client.AppsV1Api(api).patch_namespaced_deployment(
        "email",
        NS,
        {
            "metadata": {"annotations": {ACTION_KEY_ANNOTATION: key}},
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}
                }
            },
        },
    )
    assert len(w.leftovers()) == 3
    fresh = w.executor()  # a new process
    seen = fresh.reconcile(action, key)
    assert seen is not None and seen["ok"] is True and seen["reconciled"] is True
    assert ACTION_KEY_ANNOTATION in seen["reconciled_from"]
    assert seen["jit_cleanup"] == {
        "role_binding": "deleted",
        "role": "deleted",
        "service_account": "deleted",
    }
    assert w.leftovers() == []


def test_reconcile_cannot_tell_when_the_call_never_happened(w: World) -> None:
    key = "inc-half:remediate:execute"
    action = on_deployment("rollout_restart_deployment", "email")
    crashed_session(w.executor(), key, rules_for(action["action_id"], "email"))
    assert w.executor().reconcile(action, key) is None
    assert w.leftovers() == []  # revoked even so
    assert w.deployment("email").metadata.annotations[REV] == "1"


def test_reconcile_restart_pod_and_scale(w: World) -> None:
    ex = w.executor()
    pod = w.pods("ad")[0]
    key = "inc-pod:remediate:execute"
    api = crashed_session(ex, key, rules_for("restart_kubernetes_pod", pod))
    assert ex.reconcile(restart(pod), key) is None  # the pod is still there
    api = crashed_session(ex, key, rules_for("restart_kubernetes_pod", pod))
    client.CoreV1Api(api).delete_namespaced_pod(pod, NS)
    seen = ex.reconcile(restart(pod), key)
    assert seen is not None and seen["ok"] is True and "is gone" in seen["reconciled_from"]
    assert w.leftovers() == []

    key = "inc-sc:remediate:execute"
    action = on_deployment("scale_deployment", "shipping", replicas=3)
    api = crashed_session(ex, key, rules_for("scale_deployment", "shipping"))
    client.AppsV1Api(api).patch_namespaced_deployment_scale(
        "shipping", NS, {"spec": {"replicas": 3}}
    )
    assert ex.reconcile(action, key) is None  # scaled, but the marker never landed
    api = crashed_session(ex, key, rules_for("scale_deployment", "shipping"))
    client.AppsV1Api(api).patch_namespaced_deployment(
        "shipping", NS, {"metadata": {"annotations": {ACTION_KEY_ANNOTATION: key}}}
    )
    seen = ex.reconcile(action, key)
    assert seen is not None and seen["ok"] is True and "spec.replicas=3" in seen["reconciled_from"]
    assert ex.reconcile(on_deployment("scale_deployment", "shipping", replicas=4), key) is None
    assert w.leftovers() == []


def test_reconcile_rollback(w: World) -> None:
    httpx.post(
        f"{w.url}/sandbox/faults", json={"kind": "bad_deploy", "target": "payment"}
    ).raise_for_status()
    w.sb.tick(2)
    ex = w.executor()
    action = on_deployment("rollback_deployment", "payment", to_revision=1)
    key = "inc-rbc:remediate:execute"
    assert ex.reconcile(action, key) is None
    done = ex.execute(action, key)
    assert done["ok"] is True
    seen = w.executor().reconcile(action, key)
    assert seen is not None and seen["ok"] is True
    assert "runs the template of revision 1" in seen["reconciled_from"]


# -- refusals and failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("not a dict", "must be a JSON object"),
        ({"action_id": "flush_redis_cache", "params": {}}, "does not handle"),
        ({"action_id": "restart_kubernetes_pod", "params": {"namespace": NS}}, "missing"),
        (
            {"action_id": "restart_kubernetes_pod", "params": {"namespace": NS, "pod": "x; rm"}},
            "is not a pod name",
        ),
        (
            {
                "action_id": "scale_deployment",
                "params": {"namespace": NS, "deployment": "ad", "replicas": True},
            },
            "params.replicas",
        ),
        (
            {
                "action_id": "rollback_deployment",
                "params": {"namespace": NS, "deployment": "ad", "to_revision": 0},
            },
            "params.to_revision",
        ),
        (
            {
                "action_id": "rollout_restart_deployment",
                "params": {"namespace": NS, "deployment": "ad", "force": True},
            },
            "unknown parameters",
        ),
    ],
)
def test_bad_input_is_refused_not_raised(w: World, action: Any, error: str) -> None:
    r = w.executor().execute(action, "inc-bad:remediate:execute")
    assert r["ok"] is False and r["refused"] is True and r["may_have_run"] is False
    assert error in r["error"]
    assert w.leftovers() == []


def test_missing_target_and_unreachable_api_server(w: World) -> None:
    r = w.executor().execute(restart("cart-0000000000-zzzzz"), "inc-nf:remediate:execute")
    assert r["refused"] is True and "not found" in r["error"]
    dead = w.executor(api_server=f"http://127.0.0.1:{free_port()}", connect_timeout_seconds=1)
    r = dead.execute(restart(w.pods("cart")[0]), "inc-dead:remediate:execute")
    assert r["ok"] is False and r["may_have_run"] is False and r["stage"] == "read_target"
    assert "Connection refused" in r["error"] or "NewConnectionError" in r["error"]
    assert dead.reconcile(restart("x"), "inc-dead:remediate:execute") is None


def test_a_grant_refused_by_rbac_fails_cleanly(w: World) -> None:
    # A standing identity that may no longer create Roles: nothing runs, nothing is left.
    standing = w.rbac.read_cluster_role("sentinel-standing")
    kept = [
        r for r in standing.rules or [] if not {"roles", "rolebindings"} & set(r.resources or [])
    ]
    assert len(kept) < len(standing.rules or [])
    w.rbac.delete_cluster_role("sentinel-standing")
    w.rbac.create_cluster_role(
        client.V1ClusterRole(metadata=client.V1ObjectMeta(name="sentinel-standing"), rules=kept)
    )
    ex = w.executor(rbac_wait_seconds=0)
    key = "inc-403:remediate:execute"
    try:
        r = ex.execute(on_deployment("rollout_restart_deployment", "ad"), key)
    finally:
        w.sb.reset()
    assert r["ok"] is False and r["may_have_run"] is False
    name = jit_name("sentinel-act", key)
    assert r["stage"] == f"jit:create role {NS}/{name}"
    assert r["http_status"] == 403 and "Forbidden" in r["error"]
    assert r["jit"] is None
    assert r["jit_setup"] == [f"created serviceaccount {SA_NS}/{name}"]
    assert r["jit_cleanup"]["service_account"] == "deleted"
    assert w.leftovers() == []


# -- inventory and settings ---------------------------------------------------------------------


def test_inventory_gives_policy_facts(w: World) -> None:
    httpx.post(
        f"{w.url}/sandbox/faults", json={"kind": "bad_deploy", "target": "checkout"}
    ).raise_for_status()
    w.sb.tick(1)
    inv = w.executor(namespaces=[NS]).inventory()
    assert inv["errors"] == []
    facts = Inventory.model_validate({"pods": inv["pods"], "deployments": inv["deployments"]})
    checkout = facts.deployment(NS, "checkout")
    assert checkout is not None
    assert checkout.current_revision == 2 and checkout.revisions == [1, 2]
    assert checkout.service == "checkout" and checkout.replicas == 2
    pod = w.pods("cart")[0]
    fact = facts.pod(NS, pod)
    assert fact is not None and fact.deployment == "cart" and fact.service == "cart"
    assert {p.name for p in facts.pods} >= set(w.pods("frontend"))


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="token_file"):
        KubernetesSettings(api_server="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="at most one"):
        KubernetesSettings(api_server="http://x", token_file="t", in_cluster=True)
    with pytest.raises(ValueError):
        KubernetesSettings(api_server="http://x", token_file="t", token_ttl_seconds=599)
    with pytest.raises(ValueError):
        KubernetesSettings(api_server="http://x", token_file="t", name_prefix="Bad_Prefix")
    assert not KubernetesSettings().is_configured()
    with pytest.raises(ValueError):
        KubernetesExecutor(KubernetesSettings())
