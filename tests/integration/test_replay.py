"""`sentinel replay`: identical on recorded decisions; a policy edit shows the difference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ROOT,
    Proc,
    am_alert,
    am_payload,
    create_token,
    free_port,
    run_cli,
    sentinel_env,
    wait_for,
    wait_http,
)

INVENTORY = {
    "pods": [{"namespace": "shop", "name": "cart-7f9c", "deployment": "cart", "service": "cart"}],
    "deployments": [
        {
            "namespace": "shop",
            "name": "cart",
            "replicas": 3,
            "current_revision": 4,
            "revisions": [3, 4],
            "service": "cart",
        }
    ],
}


@pytest.mark.slow
def test_replay_identical_then_different_after_a_policy_edit(
    sqlite_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    shutil.copy(ROOT / "policies" / "default.yaml", policy)
    env = sentinel_env(
        sqlite_url,
        tmp_path,
        SENTINEL_INVENTORY=json.dumps(INVENTORY),
        SENTINEL_POLICY__FILE=str(policy),
    )
    run_cli(env, "db", "upgrade")
    ingest = create_token(env, "am", "ingest")
    viewer = create_token(env, "v", "viewer")
    port = free_port()
    p = Proc(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz", proc=p)
        alert = am_alert("KubePodCrashLooping", "cart", namespace="shop", pod="cart-7f9c")
        r = httpx.post(
            f"{base}/api/v1/alerts/alertmanager",
            json=am_payload(alert),
            headers={"Authorization": f"Bearer {ingest}"},
        )
        iid = r.json()["incident_ids"][0]
        h = {"Authorization": f"Bearer {viewer}"}

        def finished() -> dict | None:
            doc = httpx.get(f"{base}/api/v1/incidents/{iid}", headers=h).json()
            return doc if doc["status"] in ("ESCALATED", "CLOSED") else None

        doc = wait_for(finished, timeout=90, what="the incident to finish")
        md = httpx.get(f"{base}/api/v1/incidents/{iid}/postmortem", headers=h)
    finally:
        p.stop()
    # restart ran alone (SAFE, prod autonomous) on the dry-run executor; no Prometheus → escalated
    (plan,) = doc["plans"]
    assert plan["proposed_action"] == "restart_kubernetes_pod"
    assert plan["decision"]["outcome"] == "EXECUTE" and plan["execution_status"] == "SUCCESS"
    assert "no verifier" in doc["escalation_reason"]
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "# Post-mortem: KubePodCrashLooping on cart" in md.text
    assert "restart_kubernetes_pod" in md.text and "EXECUTE" in md.text

    same = run_cli(env, "replay", iid, "--json", check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    rep = json.loads(same.stdout)
    steps = [d["step"] for d in rep["decisions"]]
    assert steps == ["RiskEvaluation", "RemediationPlanning (runbook)", "RiskEvaluation.recheck"]
    assert all(d["identical"] for d in rep["decisions"])

    # Make pod restarts CRITICAL: the same recorded facts now need an approval.
    policy.write_text(
        policy.read_text().replace(
            "risk_overrides: {}", "risk_overrides:\n  restart_kubernetes_pod: CRITICAL"
        )
    )
    diff = run_cli(env, "replay", iid, "--json", check=False)
    assert diff.returncode == 1, diff.stdout + diff.stderr
    rep = json.loads(diff.stdout)
    first = rep["decisions"][0]
    assert first["identical"] is False
    assert first["differences"]["outcome"] == ["EXECUTE", "REQUIRE_APPROVAL"]
    assert "policy file changed" in first["note"]
    assert run_cli(env, "replay", "no-such-incident", check=False).returncode == 2
