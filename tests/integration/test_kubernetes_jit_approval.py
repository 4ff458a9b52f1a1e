"""A CRITICAL action's credential exists only after its approval (SAFETY.md, just in time).

The whole flow, with no Prometheus: the sandbox (in this process, manual ticks) evaluates
bad-deploy-errors' rule and posts the Alertmanager webhook to ``sentinel serve``; Sentinel
proposes rollback_deployment, which the default policy rates CRITICAL in prod, and waits.
The sandbox's API-server audit log (every write through its Kubernetes API) shows no
ServiceAccount, Role, RoleBinding or TokenRequest — nothing at all — until the approval,
given through ``sentinel approve``; then exactly one token is minted, for a
ServiceAccount whose Role names only deployment ``checkout`` and verb ``patch``, the
rollback happens under it (a new revision with the old template), and the per-action
identity is removed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from sentinel import demo
from sentinel.core.config import VerifySettings
from sentinel_sandbox import scenario as scenario_mod
from sentinel_sandbox.alerting import AlertingConfig
from sentinel_sandbox.app import ServerThread
from sentinel_sandbox.sandbox import Sandbox
from tests.conftest import ROOT, free_port, run_cli, sentinel_env, wait_for
from tests.integration.actstack import Api, create_tokens, start_sentinel

NS = "boutique"
STANDING = "system:serviceaccount:sentinel:sentinel"
CREDENTIAL_WRITES = {"serviceaccounts", "serviceaccounts/token", "roles", "rolebindings"}


def _at(w: dict[str, Any]) -> float:
    return float(w["ts"])


def _writes(sb: Sandbox) -> list[dict[str, Any]]:
    with sb.lock:
        return [dict(r) for r in sb.api_audit]


def test_a_critical_rollback_gets_its_token_only_after_approval(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token_file = tmp_path / "ingest.token"
    sc = scenario_mod.load(ROOT / "scenarios" / "bad-deploy-errors.yaml")
    sb = Sandbox(
        sc,
        tmp_path / "sandbox",
        tick_seconds=0,
        alerting=AlertingConfig(
            webhook_url=f"{base}/api/v1/alerts/alertmanager", webhook_token_file=str(token_file)
        ),
    )
    srv = ServerThread(sb).start()
    sentinel = None
    apis: list[Api] = []
    try:
        settings = demo._settings(
            demo.load_scenario("bad-deploy-errors"),
            tmp_path,
            f"{srv.url}/prometheus",
            srv.url,
            None,
        ).model_copy(
            update={
                "verify": VerifySettings(
                    interval_seconds=0.5, stable_seconds=1, deadline_seconds=60
                )
            }
        )
        cfg = tmp_path / "sentinel.yaml"
        cfg.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
        env = sentinel_env(settings.database_url, tmp_path, SENTINEL_CONFIG=str(cfg))
        tokens = create_tokens(
            env, {"alertmanager": "ingest", "oncall": "viewer", "alice": "approver"}
        )
        token_file.write_text(tokens["alertmanager"])
        sentinel = start_sentinel(env, tmp_path, port)
        viewer = Api(base, tokens["oncall"])
        apis.append(viewer)
        before = sb.state()["services"]["checkout"]
        tokens_before = set(sb.rbac.tokens)

        sb.tick(60)  # checkout v2.1.0 at 30 s; the rule fires ~20 s later; the webhook goes out
        iid = viewer.wait_incident("checkout", timeout=60)
        viewer.wait_status(iid, "AWAITING_APPROVAL", timeout=60)
        [pending] = [a for a in viewer.approvals("pending") if a["incident_id"] == iid]
        assert pending["action_id"] == "rollback_deployment"
        assert pending["risk_level"] == "CRITICAL"
        time.sleep(2)  # nothing may be minted while it waits, however long

        # -- before the approval: no credential, no identity, no write at all
        assert _writes(sb) == [], _writes(sb)
        assert set(sb.rbac.tokens) == tokens_before
        assert sb.state()["services"]["checkout"]["revision"] == before["revision"] + 1 == 2

        t_approve = time.time()
        out = run_cli(
            env,
            "approve",
            pending["approval_id"],
            "--url",
            base,
            "--token",
            tokens["alice"],
            "--comment",
            "roll checkout back",
        )
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(
            lambda: viewer.incident(iid)["status"] in ("VERIFYING", "CLOSED", "ESCALATED"),
            timeout=60,
            what="the rollback to run",
        )

        # -- after: exactly one TokenRequest, for one target and one verb
        writes = _writes(sb)
        token_reqs = [w for w in writes if w["resource"] == "serviceaccounts/token"]
        assert len(token_reqs) == 1, writes
        [tr] = token_reqs
        assert tr["verb"] == "create" and tr["code"] == 201 and tr["user"] == STANDING
        assert tr["namespace"] == "sentinel"
        sa = tr["name"]
        # every write — credentials included — came after the approval
        assert all(_at(w) >= t_approve - 0.01 for w in writes), (t_approve, writes)
        [role] = [w for w in writes if w["resource"] == "roles" and w["verb"] == "create"]
        assert role["namespace"] == NS and role["user"] == STANDING
        assert role["rules"] == [
            {
                "apiGroups": ["apps"],
                "resources": ["deployments"],
                "verbs": ["patch"],
                "resourceNames": ["checkout"],
            }
        ]
        [binding] = [w for w in writes if w["resource"] == "rolebindings" and w["verb"] == "create"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa, "namespace": "sentinel"}
        ]
        # the one write the token was for, made with it
        acted = [w for w in writes if w["user"] == f"system:serviceaccount:sentinel:{sa}"]
        assert [(w["verb"], w["resource"], w["name"], w["code"]) for w in acted] == [
            ("patch", "deployments", "checkout", 200)
        ]
        # only the standing identity and that token wrote anything
        assert {w["user"] for w in writes} == {STANDING, f"system:serviceaccount:sentinel:{sa}"}
        assert {w["resource"] for w in writes} == CREDENTIAL_WRITES | {"deployments"}
        after = sb.state()["services"]["checkout"]
        assert after["revision"] == 3 and after["image"] == before["image"]
        # the per-action identity is gone again
        wait_for(
            lambda: any(
                w["verb"] == "delete" and w["resource"] == "serviceaccounts" and w["name"] == sa
                for w in _writes(sb)
            ),
            timeout=30,
            what="the per-action ServiceAccount's removal",
        )
        assert ("sentinel", sa) not in sb.rbac.objects["serviceaccounts"]

        # -- the fix holds: the error ratio clears and verification closes the incident
        sb.tick(40)
        viewer.wait_status(iid, "CLOSED", timeout=60)
        assert len([w for w in _writes(sb) if w["resource"] == "serviceaccounts/token"]) == 1
    finally:
        for a in apis:
            a.close()
        if sentinel is not None:
            sentinel.stop()
        srv.stop()
