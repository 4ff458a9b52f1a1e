"""The sandbox's Kubernetes API through the official client: objects, controllers, RBAC."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sentinel_sandbox.sandbox import Sandbox
from tests.sandbox.conftest import StartFn, kube_client

NS = "boutique"
REV = "deployment.kubernetes.io/revision"


def pods_of(core: client.CoreV1Api, app: str) -> list[str]:
    return sorted(
        p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=f"app={app}").items
    )


def test_list_and_get_objects(admin: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    pods = core.list_namespaced_pod(NS)
    assert len(pods.items) >= 11
    p = pods.items[0]
    assert p.status.phase == "Running"
    assert p.metadata.owner_references[0].kind == "ReplicaSet"
    assert core.read_namespaced_pod(p.metadata.name, NS).metadata.uid == p.metadata.uid
    assert {d.metadata.name for d in core.list_pod_for_all_namespaces().items} >= {p.metadata.name}
    deps = {d.metadata.name: d for d in apps.list_namespaced_deployment(NS).items}
    assert "checkout" in deps and deps["checkout"].metadata.annotations[REV] == "1"
    assert deps["checkout"].status.ready_replicas == 2
    rss = apps.list_namespaced_replica_set(NS, label_selector="app=checkout").items
    assert len(rss) == 1
    assert rss[0].metadata.annotations[REV] == "1"
    assert rss[0].metadata.owner_references[0].kind == "Deployment"
    assert rss[0].metadata.owner_references[0].name == "checkout"
    ns = core.read_namespace(NS)
    assert ns.metadata.labels["environment"] == "prod"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("nope", NS)
    assert e.value.status == 404


def test_delete_pod_is_replaced(sandbox: tuple[Sandbox, str], admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    before = pods_of(core, "cart")
    victim = before[0]
    deleted = core.delete_namespaced_pod(victim, NS)
    assert deleted.metadata.name == victim
    after = pods_of(core, "cart")
    assert victim not in after and len(after) == len(before)
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={victim}").items
    assert any(e.reason == "Killing" for e in events)
    rs_events = core.list_namespaced_event(NS, field_selector="reason=SuccessfulCreate").items
    assert any(
        set(after) - set(before) <= {e.message.split(": ")[1] for e in rs_events} for _ in [0]
    )


def test_rollout_restart_annotation_makes_new_pods(admin: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    before = pods_of(core, "currency")
    now = dt.datetime.now(dt.UTC).isoformat()
    body = {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}
        }
    }
    d = apps.patch_namespaced_deployment("currency", NS, body)
    assert d.metadata.annotations[REV] == "2"
    assert d.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] == now
    after = pods_of(core, "currency")
    assert len(after) == len(before) and not set(after) & set(before)
    rss = apps.list_namespaced_replica_set(NS, label_selector="app=currency").items
    assert sorted(int(r.metadata.annotations[REV]) for r in rss) == [1, 2]
    assert {r.metadata.annotations[REV]: r.spec.replicas for r in rss} == {"1": 0, "2": 2}


def test_merge_patch_and_json_patch(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    d = apps.patch_namespaced_deployment(
        "ad",
        NS,
        {"metadata": {"labels": {"team": "ads"}}},
        _content_type="application/merge-patch+json",
    )
    assert d.metadata.labels["team"] == "ads"
    d = apps.patch_namespaced_deployment(
        "ad", NS, [{"op": "replace", "path": "/spec/replicas", "value": 2}]
    )
    assert d.spec.replicas == 2
    with pytest.raises(ApiException) as e:
        apps.patch_namespaced_deployment("ad", NS, {"spec": {"replicas": -1}})
    assert e.value.status == 422


def test_rollback_removes_bad_behaviour(start_sandbox: StartFn) -> None:
    sb, url = start_sandbox("bad-deploy-errors")
    api = kube_client(url, sb.admin_token)
    apps = client.AppsV1Api(api)
    sb.tick(40)
    assert sb.state()["services"]["checkout"]["error_ratio"] > 0.3
    d = apps.read_namespaced_deployment("checkout", NS)
    assert d.metadata.annotations[REV] == "2"
    rss = apps.list_namespaced_replica_set(NS, label_selector="app=checkout").items
    rev1 = next(r for r in rss if r.metadata.annotations[REV] == "1")
    # What `kubectl rollout undo --to-revision=1` sends: the old template minus its hash label.
    template = api.sanitize_for_serialization(rev1.spec.template)
    template["metadata"]["labels"].pop("pod-template-hash")
    patch = {
        "metadata": {"annotations": {REV: "1"}},
        "spec": {"template": {"$patch": "replace", **template}},
    }
    d = apps.patch_namespaced_deployment("checkout", NS, patch)
    assert d.metadata.annotations[REV] == "3"
    assert d.spec.template.spec.containers[0].image.endswith(":v2.0.0")
    rss = {
        r.metadata.name: r
        for r in apps.list_namespaced_replica_set(NS, label_selector="app=checkout").items
    }
    reused = rss[rev1.metadata.name]
    assert reused.metadata.annotations[REV] == "3"
    assert reused.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    sb.tick(3)
    assert sb.state()["services"]["checkout"]["error_ratio"] < 0.01
    fault = sb.state()["faults"][0]
    assert fault["status"] == "healed"
    hist = httpx.get(f"{url}/sandbox/deployments", params={"service": "checkout"}).json()[
        "deployments"
    ]
    assert hist[0]["change"] == "rollback" and hist[0]["author"] == "sandbox-admin"
    assert hist[1]["change"] == "image" and hist[1]["commit"]


def test_scale_subresource(admin: client.ApiClient, sandbox: tuple[Sandbox, str]) -> None:
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    s = apps.read_namespaced_deployment_scale("frontend", NS)
    assert s.spec.replicas == 2
    s = apps.patch_namespaced_deployment_scale("frontend", NS, {"spec": {"replicas": 5}})
    assert s.spec.replicas == 5
    assert len(pods_of(core, "frontend")) == 5
    sb, _ = sandbox
    sb.tick(2)
    assert sb.state()["services"]["frontend"]["ready_pods"] == 5
    assert apps.read_namespaced_deployment("frontend", NS).spec.replicas == 5


def _jit(admin: client.ApiClient, pod: str, sa: str = "jit-1") -> str:
    """What Sentinel's executor does: SA + Role naming one pod + RoleBinding + TokenRequest."""
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account("sentinel", {"metadata": {"name": sa}})
    rbac.create_namespaced_role(
        NS,
        {
            "metadata": {"name": sa},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["delete"],
                    "resourceNames": [pod],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": sa},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "sentinel"}],
        },
    )
    tr = core.create_namespaced_service_account_token(
        sa, "sentinel", {"spec": {"audiences": [], "expirationSeconds": 600}}
    )
    assert tr.status.expiration_timestamp is not None
    return str(tr.status.token)


def test_scoped_token_only_touches_its_pod(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    sb, url = sandbox
    core = client.CoreV1Api(admin)
    a, b = pods_of(core, "cart")
    token = _jit(admin, a)
    scoped = kube_client(url, token)
    score, sapps = client.CoreV1Api(scoped), client.AppsV1Api(scoped)
    with pytest.raises(ApiException) as e:
        score.delete_namespaced_pod(b, NS)
    assert e.value.status == 403
    assert "cannot delete resource" in e.value.body and '"Forbidden"' in e.value.body
    with pytest.raises(ApiException) as e:
        sapps.patch_namespaced_deployment("cart", NS, {"spec": {"replicas": 3}})
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        score.list_namespaced_pod(NS)
    assert e.value.status == 403
    assert score.delete_namespaced_pod(a, NS).metadata.name == a
    assert a not in pods_of(core, "cart")


def test_expired_and_unknown_tokens_are_401(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    sb, url = sandbox
    core = client.CoreV1Api(admin)
    a = pods_of(core, "cart")[0]
    token = _jit(admin, a, sa="jit-exp")
    httpx.post(f"{url}/sandbox/clock", json={"advance_seconds": 601}).raise_for_status()
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(kube_client(url, token)).delete_namespaced_pod(a, NS)
    assert e.value.status == 401
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(kube_client(url, "not-a-token")).list_namespaced_pod(NS)
    assert e.value.status == 401
    r = httpx.get(f"{url}/api/v1/namespaces/{NS}/pods")
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"


def test_deleting_the_service_account_revokes_its_tokens(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    _, url = sandbox
    core = client.CoreV1Api(admin)
    a = pods_of(core, "cart")[0]
    token = _jit(admin, a, sa="jit-rev")
    core.delete_namespaced_service_account("jit-rev", "sentinel")
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(kube_client(url, token)).delete_namespaced_pod(a, NS)
    assert e.value.status == 401


def test_token_request_validation(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service_account_token(
            "sentinel-actor", "sentinel", {"spec": {"audiences": [], "expirationSeconds": 60}}
        )
    assert e.value.status == 422 and "less than 10 minutes" in e.value.body
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service_account_token(
            "ghost", "sentinel", {"spec": {"audiences": []}}
        )
    assert e.value.status == 404
    tr = core.create_namespaced_service_account_token(
        "sentinel-actor", "sentinel", {"spec": {"audiences": ["somewhere-else"]}}
    )
    # A token for another audience is not accepted by this API server.
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(
            kube_client(admin.configuration.host, tr.status.token)
        ).list_namespaced_pod(NS)
    assert e.value.status == 401


def test_standing_identity_can_only_mint_credentials(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    sb, url = sandbox
    token = (sb.state_dir / "sentinel.token").read_text().strip()
    st = kube_client(url, token)
    core, apps, rbac = client.CoreV1Api(st), client.AppsV1Api(st), client.RbacAuthorizationV1Api(st)
    pod = pods_of(core, "cart")[0]  # it may read pods (context)
    assert apps.read_namespaced_deployment("cart", NS).metadata.name == "cart"
    assert core.list_namespaced_event(NS) is not None
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_pod(pod, NS)
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        apps.patch_namespaced_deployment("cart", NS, {"spec": {"replicas": 3}})
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        apps.patch_namespaced_deployment_scale("cart", NS, {"spec": {"replicas": 3}})
    assert e.value.status == 403
    # ... but it can mint a just-in-time credential, which then works.
    jit = _jit(st, pod, sa="jit-st")
    assert (
        client.CoreV1Api(kube_client(url, jit)).delete_namespaced_pod(pod, NS).metadata.name == pod
    )
    rbac.delete_namespaced_role_binding("jit-st", NS)
    rbac.delete_namespaced_role("jit-st", NS)
    core.delete_namespaced_service_account("jit-st", "sentinel")
    with pytest.raises(ApiException) as e:
        rbac.read_namespaced_role("jit-st", NS)
    assert e.value.status == 404


def test_role_grants_need_escalate_or_holding(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    """A token scoped to one pod cannot create a Role granting more than it holds."""
    _, url = sandbox
    core = client.CoreV1Api(admin)
    pod = pods_of(core, "cart")[0]
    rbac = client.RbacAuthorizationV1Api(admin)
    client.CoreV1Api(admin).create_namespaced_service_account(
        "sentinel", {"metadata": {"name": "limited"}}
    )
    rbac.create_namespaced_role(
        NS,
        {
            "metadata": {"name": "limited"},
            "rules": [
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles"],
                    "verbs": ["create"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": "limited"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "limited"},
            "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": "sentinel"}],
        },
    )
    tok = core.create_namespaced_service_account_token(
        "limited", "sentinel", {"spec": {"audiences": []}}
    )
    lim = client.RbacAuthorizationV1Api(kube_client(url, tok.status.token))
    with pytest.raises(ApiException) as e:
        lim.create_namespaced_role(
            NS,
            {
                "metadata": {"name": "grab"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["pods"],
                        "verbs": ["delete"],
                        "resourceNames": [pod],
                    }
                ],
            },
        )
    assert e.value.status == 403 and "not currently held" in e.value.body
    with pytest.raises(ApiException) as e:
        rbac.create_namespaced_role(NS, {"metadata": {"name": "limited"}, "rules": []})
    assert e.value.status == 409


def test_self_subject_access_review(sandbox: tuple[Sandbox, str]) -> None:
    sb, url = sandbox
    token = (sb.state_dir / "sentinel.token").read_text().strip()
    authz = client.AuthorizationV1Api(kube_client(url, token))

    def can(verb: str, resource: str, group: str = "") -> bool:
        r = authz.create_self_subject_access_review(
            {
                "spec": {
                    "resourceAttributes": {
                        "namespace": NS,
                        "verb": verb,
                        "resource": resource,
                        "group": group,
                    }
                }
            }
        )
        return bool(r.status.allowed)

    assert can("create", "roles", "rbac.authorization.k8s.io")
    assert can("list", "pods")
    assert not can("delete", "pods")
    assert not can("patch", "deployments", "apps")


def test_events_v1_logs_preconditions_and_change_cause(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    sb, url = sandbox
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    httpx.post(
        f"{url}/sandbox/faults",
        json={"kind": "bad_deploy", "target": "email", "message": "email: v2"},
    )
    sb.tick(3)
    evs = client.EventsV1Api(admin).list_namespaced_event(NS).items
    assert any(e.reason == "ScalingReplicaSet" and e.regarding.kind == "Deployment" for e in evs)
    rss = apps.list_namespaced_replica_set(NS, label_selector="app=email").items
    newest = max(rss, key=lambda r: int(r.metadata.annotations[REV]))
    assert newest.metadata.annotations["kubernetes.io/change-cause"] == "email: v2"
    pod = pods_of(core, "email")[0]
    log = core.read_namespaced_pod_log(pod, NS, tail_lines=50)
    assert "level=error" in log
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_pod(
            pod, NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="x"))
        )
    assert e.value.status == 409
    uid = core.read_namespaced_pod(pod, NS).metadata.uid
    core.delete_namespaced_pod(
        pod, NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
    )
    assert pod not in pods_of(core, "email")


def test_token_bound_to_a_pod_dies_with_it(
    sandbox: tuple[Sandbox, str], admin: client.ApiClient
) -> None:
    _, url = sandbox
    core = client.CoreV1Api(admin)
    a, b = pods_of(core, "cart")
    uid = core.read_namespaced_pod(a, NS).metadata.uid
    tr = core.create_namespaced_service_account_token(
        "default",
        NS,
        {
            "spec": {
                "audiences": [],
                "expirationSeconds": 600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": a, "uid": uid},
            }
        },
    )
    bound = client.CoreV1Api(kube_client(url, tr.status.token))
    with pytest.raises(ApiException) as e:
        bound.list_namespaced_pod(NS)
    assert e.value.status == 403  # authenticated, but `default` holds no rights
    core.delete_namespaced_pod(a, NS)
    with pytest.raises(ApiException) as e:
        bound.list_namespaced_pod(NS)
    assert e.value.status == 401


def test_scoped_scale_token(sandbox: tuple[Sandbox, str], admin: client.ApiClient) -> None:
    _, url = sandbox
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account("sentinel", {"metadata": {"name": "act-scale"}})
    rbac.create_namespaced_role(
        NS,
        {
            "metadata": {"name": "act-scale"},
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments/scale"],
                    "verbs": ["patch"],
                    "resourceNames": ["frontend"],
                }
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        NS,
        {
            "metadata": {"name": "act-scale"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "act-scale",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "act-scale", "namespace": "sentinel"}],
        },
    )
    tok = core.create_namespaced_service_account_token(
        "act-scale", "sentinel", {"spec": {"audiences": []}}
    )
    apps = client.AppsV1Api(kube_client(url, tok.status.token))
    assert (
        apps.patch_namespaced_deployment_scale(
            "frontend", NS, {"spec": {"replicas": 3}}
        ).spec.replicas
        == 3
    )
    for call in (
        lambda: apps.patch_namespaced_deployment_scale("cart", NS, {"spec": {"replicas": 3}}),
        lambda: apps.patch_namespaced_deployment("frontend", NS, {"spec": {"replicas": 4}}),
        lambda: apps.read_namespaced_deployment_scale("frontend", NS),
    ):
        with pytest.raises(ApiException) as e:
            call()
        assert e.value.status == 403
