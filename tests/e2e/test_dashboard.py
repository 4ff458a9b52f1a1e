"""The dashboard end to end: ``sentinel serve`` serves the built dashboard; a browser
(playwright-core driving Debian's chromium, ``dashboard/e2e/run.mjs``) signs in as a
viewer and watches the incident of a freshly posted alert arrive in the list, sees the
approval panel disabled for its role; then signs in as an approver, opens the incident
whose CRITICAL rollback awaits approval, approves it, and sees the execution in the
timeline. Screenshots go to test-artifacts/.

Needs the build (``cd dashboard && npm install && npm run build``), node and chromium.
No Prometheus: after the dry-run rollback, verification escalates with "no verifier".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
    need,
    run_cli,
    sentinel_env,
    wait_http,
)

DASHBOARD = ROOT / "dashboard"
DIST = DASHBOARD / "dist"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ["approvals.png", "incident.png", "incidents-phone.png", "incident-viewer-phone.png"]
INVENTORY = {
    "deployments": [
        {
            "namespace": "shop",
            "name": "checkout",
            "replicas": 3,
            "current_revision": 7,
            "revisions": [5, 6, 7],
            "service": "checkout",
        }
    ]
}


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_dashboard_sign_in_open_incident_approve_and_see_it_executed(
    sqlite_url: str, tmp_path: Path
) -> None:
    need((DIST / "index.html").is_file(), "the dashboard build (dashboard/dist)")
    node = shutil.which("node")
    need(node is not None, "node")
    need(Path(CHROMIUM).is_file(), f"chromium at {CHROMIUM}")
    need((DASHBOARD / "node_modules" / "playwright-core").is_dir(), "dashboard/node_modules")

    env = sentinel_env(
        sqlite_url,
        tmp_path,
        SENTINEL_ENVIRONMENT="prod",
        SENTINEL_INVENTORY=json.dumps(INVENTORY),
    )
    run_cli(env, "db", "upgrade")
    ingest = create_token(env, "am", "ingest")
    viewer = create_token(env, "val", "viewer")
    approver = create_token(env, "alice", "approver")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    p = Proc(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_http(f"{base}/readyz", proc=p)
        h = {"Authorization": f"Bearer {viewer}"}

        # The dashboard is served: pages fall back to index.html, assets are cached, the
        # API keeps its JSON errors.
        page = httpx.get(f"{base}/incidents/whatever")
        assert page.status_code == 200 and '<div id="root">' in page.text
        asset = next((DIST / "assets").glob("*.js")).name
        r = httpx.get(f"{base}/assets/{asset}")
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        r = httpx.get(f"{base}/api/v1/no-such-route", headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"]
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}

        alert = am_alert(
            "HighErrorRateAfterDeploy", "checkout", namespace="shop", deployment="checkout"
        )
        for name in [*SCREENSHOTS, "audit.png", "failure.png"]:
            (ARTIFACTS / name).unlink(missing_ok=True)
        run = subprocess.run(
            [str(node), str(DASHBOARD / "e2e" / "run.mjs")],
            cwd=ROOT,
            env={
                **os.environ,
                "SENTINEL_URL": base,
                "VIEWER_TOKEN": viewer,
                "APPROVER_TOKEN": approver,
                # run.mjs posts the alert once the viewer watches the list
                "INGEST_TOKEN": ingest,
                "ALERT_JSON": json.dumps(am_payload(alert)),
                "ARTIFACTS_DIR": str(ARTIFACTS),
                "CHROMIUM": CHROMIUM,
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = run.stdout + run.stderr
        assert run.returncode == 0, out + "\n--- serve.log ---\n" + p.log.read_text()[-3000:]

        iid = json.loads(run.stdout.strip().splitlines()[-1])["incident_id"]
        doc = httpx.get(f"{base}/api/v1/incidents/{iid}", headers=h).json()
        tl = httpx.get(f"{base}/api/v1/incidents/{iid}/timeline", headers=h).json()
    finally:
        p.stop()

    for name in SCREENSHOTS:
        shot = ARTIFACTS / name
        assert shot.is_file() and shot.stat().st_size > 5000, f"{shot} missing or empty"

    # What the browser saw is what happened: approved by alice, executed once (dry run).
    (plan,) = doc["plans"]
    assert plan["proposed_action"] == "rollback_deployment"
    assert plan["human_approved"] is True and plan["execution_status"] == "SUCCESS"
    (approval,) = [e for e in tl if e["action_type"] == "APPROVAL"]
    assert approval["details"]["user"] == "alice"
    assert approval["details"]["comment"] == "e2e: roll it back"
    results = [
        e for e in tl if e["action_type"] == "SCRIPT_EXEC" and e["details"].get("phase") == "result"
    ]
    assert len(results) == 1 and results[0]["details"]["status"] == "SUCCEEDED"
    assert doc["status"] in ("ESCALATED", "CLOSED")
    if doc["status"] == "ESCALATED":
        assert "no verifier" in doc["escalation_reason"]
