"""Context sources against the sandbox: Kubernetes (official client), Loki, deploys, git.

One sandbox is served in-process for the module; a bad checkout deploy is injected whose
panic message and commit message carry secret-shaped strings, so the tests can check the
redaction as well as the data. GitHub is the one thing not reachable here: its REST shape
is exercised through an httpx mock transport.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from sentinel.context.base import AlertContext, ContextRequest, SourceResult
from sentinel.context.changes import ChangesSettings, DeploymentsContext, GitContext
from sentinel.context.kubernetes import KubernetesContext
from sentinel.context.loki import LokiContext, LokiSettings, logql_string
from sentinel.executors.kubernetes import KubernetesSettings, standing_client
from sentinel_sandbox import scenario as scenario_mod
from sentinel_sandbox.app import ServerThread
from sentinel_sandbox.sandbox import Sandbox
from tests.conftest import free_port

NS = "boutique"
LEAKED_BEARER = "Bearer sk_live_4f9b2c7d1e8a6f3b"
LEAKED_AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
MESSAGE = f"checkout: deploy v2.1.0 (stricter order validation; ci key {LEAKED_AWS_KEY})"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    sb = Sandbox(scenario_mod.default(), tmp_path_factory.mktemp("ctx"), tick_seconds=0)
    server = ServerThread(sb).start()
    sb.tick(3)
    r = httpx.post(
        f"{server.url}/sandbox/faults",
        json={
            "kind": "bad_deploy",
            "target": "checkout",
            "size": 0.5,
            "version": "v2.1.0",
            "author": "Sam Rivera <sam@example.com>",
            "message": MESSAGE,
            "error_message": f"panic: nil pointer (upstream said Authorization: {LEAKED_BEARER})",
        },
    )
    assert r.status_code == 201, r.text
    r = httpx.post(
        f"{server.url}/sandbox/faults",
        json={"kind": "bad_deploy", "target": "ad", "size": 0.01, "message": "ad: deploy v1.1"},
    )
    assert r.status_code == 201, r.text
    sb.tick(8)
    yield server
    server.stop()


def request(service: str = "checkout", namespace: str = NS) -> ContextRequest:
    now = datetime.now(UTC)
    return ContextRequest(
        incident_id="inc-ctx",
        service=service,
        alerts=[
            AlertContext(
                alertname="CheckoutHighErrorRate",
                labels={"service": service, "namespace": namespace},
                starts_at=now - timedelta(seconds=30),
            )
        ],
        now=now + timedelta(seconds=1),
    )


def kube_context(srv: ServerThread, token_file: Path | None = None, **kw: Any) -> KubernetesContext:
    settings = KubernetesSettings(
        api_server=srv.url,
        token_file=str(token_file or Path(srv.sb.state_dir) / "sentinel.token"),
    )
    return KubernetesContext(standing_client(settings), default_namespace=NS, **kw)


def by_name(result: SourceResult) -> dict[str, Any]:
    return {q.name: q for q in result.queries}


def no_leak(result: SourceResult) -> None:
    text = result.model_dump_json()
    assert LEAKED_BEARER not in text and LEAKED_AWS_KEY not in text


# -- Kubernetes ---------------------------------------------------------------------------------


def test_kubernetes_context_reads_pods_events_deployments_and_history(srv: ServerThread) -> None:
    res = kube_context(srv).gather(request())
    assert res.source == "kubernetes" and res.ok and res.error is None
    q = by_name(res)
    assert list(q) == ["pods", "deployments", "rollout_history", "events"]
    assert all(x.ok for x in q.values()), [x.error for x in q.values()]
    assert q["pods"].query == f"GET /api/v1/namespaces/{NS}/pods?labelSelector=app%3Dcheckout"
    pods = q["pods"].data["items"]
    assert len(pods) == 2 and all(p["name"].startswith("checkout-") for p in pods)
    assert all(p["containers"][0]["image"].endswith(":v2.1.0") for p in pods)
    dep = q["deployments"].data["items"][0]
    assert dep["name"] == "checkout" and dep["revision"] == "2" and dep["replicas"] == 2
    history = q["rollout_history"].data["items"]
    assert [h["revision"] for h in history] == [2, 1]
    assert history[0]["images"][0].endswith(":v2.1.0")
    assert "stricter order validation" in history[0]["change_cause"]
    events = q["events"].data["items"]
    assert events and all(e["object"].split("/")[1].startswith("checkout") for e in events)
    assert any(e["reason"] == "ScalingReplicaSet" for e in events)
    no_leak(res)


def test_kubernetes_context_keeps_what_it_may_read_when_a_read_is_forbidden(
    srv: ServerThread, tmp_path: Path
) -> None:
    # An identity that may list pods only: the other three reads fail, each with its 403.
    admin = client.ApiClient(
        client.Configuration(
            host=srv.url,
            api_key={"authorization": srv.sb.admin_token},
            api_key_prefix={"authorization": "Bearer"},
        )
    )
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account(
        "sentinel", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="pods-only"))
    )
    rbac.create_namespaced_role(
        NS,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pods-only"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        NS,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="pods-only"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="pods-only"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="pods-only", namespace="sentinel")
            ],
        ),
    )
    tr = core.create_namespaced_service_account_token(
        "pods-only",
        "sentinel",
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    assert tr.status is not None
    token_file = tmp_path / "pods-only.token"
    token_file.write_text(str(tr.status.token))
    res = kube_context(srv, token_file).gather(request())
    q = by_name(res)
    assert res.ok and q["pods"].ok and len(q["pods"].data["items"]) == 2
    for name in ("deployments", "rollout_history", "events"):
        assert not q[name].ok and q[name].data is None
        assert "HTTP 403" in q[name].error and "Forbidden" in q[name].error
        assert "cannot list resource" in q[name].error


def test_kubernetes_context_bounds_and_refuses_odd_names(srv: ServerThread) -> None:
    res = kube_context(srv, max_items=1).gather(request("frontend"))
    q = by_name(res)
    assert q["pods"].truncated and len(q["pods"].data["items"]) == 1
    assert q["pods"].data["count"] == 2 and res.truncated
    odd = kube_context(srv).gather(request("checkout,app!=x"))
    assert not odd.ok and all("not a valid label value" in (x.error or "") for x in odd.queries)
    dead = KubernetesContext(
        standing_client(
            KubernetesSettings(
                api_server=f"http://127.0.0.1:{free_port()}",
                token_file=str(Path(srv.sb.state_dir) / "sentinel.token"),
            )
        ),
        default_namespace=NS,
        timeout_seconds=1,
    ).gather(request())
    assert not dead.ok and "Connection refused" in (dead.error or "")


# -- Loki ---------------------------------------------------------------------------------------


def loki(srv: ServerThread, **kw: Any) -> LokiContext:
    return LokiContext(LokiSettings(url=srv.url, **kw))


def test_loki_returns_the_service_lines_with_secrets_masked(srv: ServerThread) -> None:
    res = loki(srv).gather(request())
    assert res.source == "loki" and res.ok
    q = by_name(res)
    assert q["logs"].query == '{service="checkout"}'
    assert q["errors"].query.startswith('{service="checkout"} |~ ')
    lines = q["errors"].data["lines"]
    assert lines and all(x["labels"]["service"] == "checkout" for x in lines)
    panics = [x["line"] for x in lines if "panic: nil pointer" in x["line"]]
    assert panics and all("[REDACTED]" in p for p in panics)
    ats = [x["at"] for x in q["logs"].data["lines"]]
    assert ats == sorted(ats, reverse=True)  # newest first
    no_leak(res)


def test_loki_bounds_lines_and_bytes(srv: ServerThread) -> None:
    res = loki(srv, max_lines=5, max_line_chars=80).gather(request("frontend"))
    q = by_name(res)["logs"]
    assert q.ok and q.truncated and len(q.data["lines"]) == 5
    assert all(len(x["line"]) <= 81 for x in q.data["lines"])
    small = loki(srv, max_lines=5000, max_bytes=1024).gather(request("frontend"))
    lines = by_name(small)["logs"].data["lines"]
    assert small.truncated and len(json.dumps(lines)) <= 1024 + 200


def test_loki_errors_are_reported_whole(srv: ServerThread) -> None:
    bad = loki(srv, queries={"broken": '{service="$service"} | unknown_stage'}).gather(request())
    assert not bad.ok and bad.queries[0].error is not None
    assert bad.queries[0].error.startswith("HTTP 400: ")
    assert logql_string('we"ird\\svc\n') == 'we\\"ird\\\\svc\\n'


def test_one_source_down_leaves_the_others_whole(srv: ServerThread) -> None:
    down = LokiContext(LokiSettings(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1))
    settings = ChangesSettings(
        deployments_url=f"{srv.url}/sandbox/deployments",
        git_repo_path=str(Path(srv.sb.state_dir) / "repo"),
    )
    results = {
        s.name: s.gather(request())
        for s in (down, kube_context(srv), DeploymentsContext(settings), GitContext(settings))
    }
    assert not results["loki"].ok
    assert results["loki"].error is not None and "ConnectError" in results["loki"].error
    assert all(not q.ok and q.error for q in results["loki"].queries)
    assert all(results[n].ok for n in ("kubernetes", "deployments", "git"))


# -- deployments and commits --------------------------------------------------------------------


def test_deployments_context_reads_the_deploy_history(srv: ServerThread) -> None:
    ctx = DeploymentsContext(ChangesSettings(deployments_url=f"{srv.url}/sandbox/deployments"))
    res = ctx.gather(request())
    q = by_name(res)
    assert res.ok and q["service"].ok and q["all"].ok
    assert "service=checkout" in q["service"].query and "since=" in q["service"].query
    mine = q["service"].data["deployments"]
    assert mine[0]["service"] == "checkout" and mine[0]["version"] == "v2.1.0"
    assert mine[0]["change"] == "image" and mine[0]["author"].startswith("Sam Rivera")
    assert {d["service"] for d in q["all"].data["deployments"]} == {"checkout", "ad"}
    # The initial import is a day old: outside the default 6 h, inside a 2-day look-back.
    wide = DeploymentsContext(
        ChangesSettings(
            deployments_url=f"{srv.url}/sandbox/deployments", lookback_seconds=2 * 86400
        )
    ).gather(request())
    assert len(by_name(wide)["all"].data["deployments"]) == 13
    no_leak(res)
    missing = DeploymentsContext(
        ChangesSettings(deployments_url=f"{srv.url}/sandbox/nowhere")
    ).gather(request())
    assert not missing.ok and (missing.error or "").startswith("HTTP 404")


def test_git_context_reads_recent_commits_with_their_files(srv: ServerThread) -> None:
    settings = ChangesSettings(git_repo_path=str(Path(srv.sb.state_dir) / "repo"))
    res = GitContext(settings).gather(request())
    assert res.source == "git" and res.ok
    q = by_name(res)["local"]
    commits = q.data["commits"]
    assert len(commits) == 2  # the two deploys; the day-old initial import is out of range
    mine = next(c for c in commits if c["message"].startswith("checkout: deploy v2.1.0"))
    assert mine["author"] == "Sam Rivera <sam@example.com>"
    assert "[REDACTED]" in mine["message"]
    assert "services/checkout/deployment.yaml" in mine["files"]
    assert mine["touches_service"] is True and len(mine["sha"]) == 40
    assert datetime.fromisoformat(mine["at"]) <= datetime.now(UTC) + timedelta(seconds=5)
    other = next(c for c in commits if c["message"] == "ad: deploy v1.1")
    assert other["touches_service"] is False and other["files"][0].startswith("services/ad/")
    no_leak(res)
    one = GitContext(settings.model_copy(update={"max_commits": 1})).gather(request())
    assert one.truncated and len(by_name(one)["local"].data["commits"]) == 1
    nowhere = GitContext(ChangesSettings(git_repo_path="/nonexistent/repo")).gather(request())
    assert not nowhere.ok and "NotGitRepository" in (nowhere.error or "")


def test_github_commits_shape_and_the_token_stays_out_of_results() -> None:
    secret = "ghp_exampleexampleexample0123456789"
    seen: list[httpx.Request] = []

    def answer(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.headers.get("authorization") != f"Bearer {secret}":
            return httpx.Response(401, json={"message": "Bad credentials"})
        return httpx.Response(
            200,
            json=[
                {
                    "sha": "a" * 40,
                    "html_url": "https://github.com/acme/shop/commit/" + "a" * 40,
                    "commit": {
                        "author": {
                            "name": "Sam Rivera",
                            "email": "sam@example.com",
                            "date": "2026-01-01T10:00:00Z",
                        },
                        "message": "checkout: tighten validation",
                    },
                }
            ],
        )

    settings = ChangesSettings(github_owner="acme", github_repo="shop", github_token=secret)
    res = GitContext(settings, transport=httpx.MockTransport(answer)).gather(request())
    assert res.ok
    q = by_name(res)["github"]
    assert q.query.startswith("GET /repos/acme/shop/commits?since=") and "per_page=30" in q.query
    assert seen[0].url.path == "/repos/acme/shop/commits"
    assert seen[0].url.params["per_page"] == "30" and seen[0].url.params["since"].endswith("Z")
    assert seen[0].headers["accept"] == "application/vnd.github+json"
    assert q.data["commits"][0]["author"] == "Sam Rivera <sam@example.com>"
    assert q.data["commits"][0]["message"] == "checkout: tighten validation"
    assert secret not in res.model_dump_json() and secret not in repr(settings)
    wrong = ChangesSettings(github_owner="acme", github_repo="shop", github_token="nope")
    bad = GitContext(wrong, transport=httpx.MockTransport(answer)).gather(request())
    assert not bad.ok and bad.error == "HTTP 401: Bad credentials"
    assert "nope" not in bad.model_dump_json()


def test_context_kubernetes_alone_reads_the_cluster_and_acts_on_nothing(
    srv: ServerThread, tmp_path: Path
) -> None:
    """``context.kubernetes`` without ``executors.kubernetes``: the workflow's context has
    the cluster (read through that identity), and Kubernetes actions stay dry runs."""
    from sentinel.bootstrap import build_deps
    from sentinel.core.config import Settings
    from sentinel.core.db import make_engine
    from sentinel.executors.dry_run import DryRunExecutor

    kube = {
        "api_server": srv.url,
        "token_file": str(Path(srv.sb.state_dir) / "sentinel.token"),
        "default_namespace": NS,
    }
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", context={"kubernetes": kube})
    engine = make_engine(settings.database_url)
    deps = build_deps(settings, engine)
    kinds = [s for s in deps.context_sources if s.name == "kubernetes"]
    assert len(kinds) == 1
    res = kinds[0].gather(request())
    assert res.ok and by_name(res)["pods"].data["items"], res
    restart = {"action_id": "restart_kubernetes_pod", "params": {"namespace": NS, "pod": "x"}}
    assert deps.executor is not None
    assert isinstance(deps.executor.pick(restart), DryRunExecutor)  # type: ignore[attr-defined]

    # Beside the executor, the context reads through its own identity: a token the sandbox
    # does not know fails the reads, while the executor's is untouched.
    bad = tmp_path / "bad.token"
    bad.write_text("not-a-token")
    both = Settings(
        database_url=settings.database_url,
        executors={"kubernetes": kube},
        context={"kubernetes": {**kube, "token_file": str(bad)}},
    )
    deps = build_deps(both, engine)
    kinds = [s for s in deps.context_sources if s.name == "kubernetes"]
    assert len(kinds) == 1
    assert not kinds[0].gather(request()).ok
    engine.dispose()


@pytest.mark.parametrize("half", [{"github_owner": "acme"}, {"github_repo": "shop"}])
def test_half_a_github_repository_is_a_configuration_error(half: dict[str, str]) -> None:
    """An owner without a repository (or the reverse) fails at start-up, not silently."""
    with pytest.raises(ValueError, match="github_owner and github_repo go together"):
        ChangesSettings(**half)
