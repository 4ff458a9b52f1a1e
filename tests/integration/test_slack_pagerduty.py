"""Slack and PagerDuty, end to end against local servers that speak their APIs.

- The Slack adapter drives a local Web API server with the real ``slack_sdk.WebClient``.
- ``sentinel serve`` (SQLite and PostgreSQL) posts an incident's updates into one Slack thread,
  the approval request with Approve/Reject buttons carrying only the approval id; signed
  interactions decide it under the API's rules (forged, stale, unknown user, wrong role,
  self-approval of CRITICAL and replays are refused and audited); the approved action runs
  once; the escalation pages PagerDuty once under the incident's dedup key.
- An incident that closes resolves its page under the same key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError

from sentinel.notify.pagerduty import PagerDutyNotifier, dedup_key
from sentinel.notify.slack import SlackNotifier, approval_message, verify_signature
from tests.conftest import am_alert, am_payload, run_cli, wait_for
from tests.integration.actstack import ActStack, act_stack, entries, post_alerts
from tests.integration.chatstack import (
    FakePagerDuty,
    FakeSlack,
    QuietPrometheus,
    interaction_body,
    signed,
)

BOT_TOKEN = "xoxb-1111111111-2222222222-SentinelTestBotToken"
SIGNING_SECRET = "0123456789abcdef0123456789abcdef"
ROUTING_KEY = "R0SENTINELTESTROUTINGKEY00000001"
CHANNEL = "C0SENTINEL"
SLACK_USERS = {"U0ALICE": "alice", "U0VIEWER": "oncall", "U0SELF": "sentinel"}
INVENTORY = {
    "deployments": [
        {
            "namespace": "shop",
            "name": "cart",
            "replicas": 3,
            "current_revision": 3,
            "revisions": [2, 3],
            "service": "cart",
        }
    ]
}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    s = FakeSlack(BOT_TOKEN, CHANNEL)
    yield s
    s.close()


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    p = FakePagerDuty(ROUTING_KEY)
    yield p
    p.close()


def chat_env(slack: FakeSlack, pagerduty: FakePagerDuty, **extra: str) -> dict[str, str]:
    return {
        "SENTINEL_NOTIFY__SLACK_BOT_TOKEN": BOT_TOKEN,
        "SENTINEL_NOTIFY__SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SENTINEL_NOTIFY__SLACK_CHANNEL": CHANNEL,
        "SENTINEL_NOTIFY__SLACK_API_URL": slack.api_url,
        "SENTINEL_NOTIFY__SLACK_USERS": json.dumps(SLACK_USERS),
        "SENTINEL_NOTIFY__PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "SENTINEL_NOTIFY__PAGERDUTY_EVENTS_URL": pagerduty.url,
        "SENTINEL_ENVIRONMENT": "prod",
        "SENTINEL_INVENTORY": json.dumps(INVENTORY),
        "SENTINEL_INGEST__GROUP_WINDOW_SECONDS": "0",
        **extra,
    }


def rollback_alert(stack: ActStack) -> str:
    """A deploy-error alert: the runbook proposes a CRITICAL rollback, which needs a human."""
    alert = am_alert("HighErrorRateAfterDeploy", "cart", namespace="shop", deployment="cart")
    (incident_id,) = post_alerts(stack.base, stack.ingest_token, am_payload(alert))
    return incident_id


def buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e["value"])
        for b in blocks
        if b.get("type") == "actions"
        for e in b["elements"]
    ]


def block_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks)


# ---------------------------------------------------------------- adapters alone


def test_slack_notifier_speaks_the_web_api(slack: FakeSlack) -> None:
    n = SlackNotifier(BOT_TOKEN, CHANNEL, base_url=slack.api_url, timeout=5)
    root = n.post(
        {"text": "opened", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]}
    )
    assert root["ok"] is True and root["channel"] == CHANNEL and root["thread_ts"] is None
    doc = {
        "approval_id": "ap-1",
        "incident_id": "inc-1",
        "action_id": "rollback_deployment",
        "target": "k8s:shop/deployment/cart",
        "risk_level": "CRITICAL",
        "requested_by": "sentinel",
        "expires_at": "2026-11-25T10:00:00+00:00",
        "params": {"namespace": "shop", "deployment": "cart", "to_revision": 2},
        "proposal_digest": "d" * 64,
    }
    reply = n.post(approval_message(doc), thread_ts=root["ts"])
    assert reply["thread_ts"] == root["ts"]
    (posted_root, posted_reply) = slack.posts()
    assert posted_reply["args"]["thread_ts"] == root["ts"]
    assert posted_reply["args"]["reply_broadcast"] is True
    blocks = posted_reply["args"]["blocks"]
    assert buttons(blocks) == [("sentinel_approve", "ap-1"), ("sentinel_reject", "ap-1")]
    assert "d" * 64 not in block_text(blocks)  # the digest stays in the database
    done = n.update(CHANNEL, reply["ts"], approval_message(doc, outcome="*Approved* by alice"))
    assert done["ok"] is True
    assert buttons(slack.messages[reply["ts"]]["blocks"]) == []
    assert "Approved" in block_text(slack.messages[reply["ts"]]["blocks"])

    bad = SlackNotifier("xoxb-wrong-token-000000", CHANNEL, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as err:
        bad.post({"text": "x"})
    assert err.value.response["error"] == "invalid_auth"


def test_signature_verification() -> None:
    body = interaction_body("ap-1", "U0ALICE")
    h = signed(body, SIGNING_SECRET)
    ts, sig = h["X-Slack-Request-Timestamp"], h["X-Slack-Signature"]
    assert verify_signature(SIGNING_SECRET, body, ts, sig)
    assert not verify_signature(SIGNING_SECRET, body + b"x", ts, sig)  # tampered body
    forged = signed(body, "not-the-secret")["X-Slack-Signature"]
    assert not verify_signature(SIGNING_SECRET, body, ts, forged)
    stale = signed(body, SIGNING_SECRET, int(time.time()) - 301)
    assert not verify_signature(
        SIGNING_SECRET, body, stale["X-Slack-Request-Timestamp"], stale["X-Slack-Signature"]
    )
    assert not verify_signature(SIGNING_SECRET, body, "soon", sig)
    assert not verify_signature(SIGNING_SECRET, body, None, sig)


def test_pagerduty_events_v2(pagerduty: FakePagerDuty) -> None:
    n = PagerDutyNotifier(ROUTING_KEY, pagerduty.url, timeout_seconds=5)
    key = dedup_key("inc-1")
    out = n.send("trigger", key, "checkout is down", source="checkout", details={"a": 1})
    assert out == {
        "ok": True,
        "http_status": 202,
        "event_action": "trigger",
        "dedup_key": key,
        "status": "success",
        "message": "Event processed",
    }
    assert ROUTING_KEY not in json.dumps(out)
    assert n.send("resolve", key, "recovered")["ok"] is True
    assert pagerduty.actions() == [("trigger", key), ("resolve", key)]
    trig = pagerduty.events[0]
    assert trig["payload"]["severity"] == "critical" and trig["payload"]["source"] == "checkout"
    assert "payload" not in pagerduty.events[1]
    wrong = PagerDutyNotifier("R0WRONG", pagerduty.url).send("trigger", key, "x")
    assert wrong["ok"] is False and wrong["http_status"] == 400


# ---------------------------------------------------------------- the whole loop


def test_slack_approvals_follow_the_api_rules_and_escalation_pages_once(
    db_url: str, tmp_path: Path, slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    env = chat_env(slack, pagerduty)
    with act_stack(db_url, tmp_path, env=env, users={"sentinel": "admin"}) as stack:
        api = stack.viewer
        iid = rollback_alert(stack)
        api.wait_status(iid, "AWAITING_APPROVAL")
        (appr,) = api.approvals(status="pending")
        aid = appr["approval_id"]
        assert appr["risk_level"] == "CRITICAL" and appr["requested_by"] == "sentinel"

        # One thread: opened (root), root cause, decision = the approval request with buttons.
        posts = wait_for(lambda: len(slack.posts()) >= 3 and slack.posts(), what="3 Slack posts")
        root, rca_post, ask = posts
        assert root["args"].get("thread_ts") is None
        assert "Incident opened" in block_text(root["args"]["blocks"])
        assert rca_post["args"]["thread_ts"] == root["ts"] == ask["args"]["thread_ts"]
        assert buttons(ask["args"]["blocks"]) == [
            ("sentinel_approve", aid),
            ("sentinel_reject", aid),
        ]
        assert appr["proposal_digest"] not in block_text(ask["args"]["blocks"])
        assert '\\"to_revision\\": 2' in block_text(ask["args"]["blocks"])  # what is approved
        assert stack.query(
            "SELECT provider, channel, thread_ts FROM notify_threads WHERE incident_id = :i",
            i=iid,
        ) == [{"provider": "slack", "channel": CHANNEL, "thread_ts": root["ts"]}]

        url = f"{stack.base}/api/v1/slack/interactions"

        def click(
            user: str,
            action: str = "sentinel_approve",
            secret: str = SIGNING_SECRET,
            at: int | None = None,
        ) -> tuple[httpx.Response, bytes, dict[str, str]]:
            body = interaction_body(aid, user, action=action, channel=CHANNEL, message_ts=ask["ts"])
            headers = signed(body, secret, at)
            return httpx.post(url, content=body, headers=headers, timeout=10), body, headers

        # Not from Slack: nothing happens, nothing is updated.
        r, _, _ = click("U0ALICE", secret="forged-signing-secret")
        assert r.status_code == 401, r.text
        r, _, _ = click("U0ALICE", at=int(time.time()) - 301)
        assert r.status_code == 401, r.text
        body = interaction_body(aid, "U0ALICE", channel=CHANNEL, message_ts=ask["ts"])
        tampered = signed(body, SIGNING_SECRET)
        r = httpx.post(url, content=body.replace(b"U0ALICE", b"U0ALICF"), headers=tampered)
        assert r.status_code == 401, r.text
        assert slack.updates() == []

        # From Slack, but refused by the approval rules (each audited, the message says why).
        r, _, _ = click("U0NOBODY")
        assert r.status_code == 403 and "not mapped" in r.json()["error"]["message"], r.text
        r, _, _ = click("U0VIEWER")
        assert r.status_code == 403 and "may not decide" in r.json()["error"]["message"], r.text
        r, _, _ = click("U0SELF")
        assert r.status_code == 403, r.text
        assert "requester of a CRITICAL action" in r.json()["error"]["message"]
        assert [a["approval_id"] for a in api.approvals(status="pending")] == [aid]
        assert len(slack.updates()) == 3
        still = slack.messages[ask["ts"]]["blocks"]
        assert buttons(still) == [("sentinel_approve", aid), ("sentinel_reject", aid)]
        assert "requester of a CRITICAL action" in block_text(still)

        # Alice approves from Slack: the remediation starts once.
        r, body, headers = click("U0ALICE")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "APPROVED" and r.json()["decided_by"] == "alice"
        assert r.json()["slack_update"] == "updated"
        decided = slack.messages[ask["ts"]]["blocks"]
        assert buttons(decided) == [] and "Approved* by alice" in block_text(decided)

        # The same signed request again (inside the 300 s window): single use.
        r = httpx.post(url, content=body, headers=headers, timeout=10)
        assert r.status_code == 409 and "already APPROVED" in r.text, r.text
        r, _, _ = click("U0ALICE", action="sentinel_reject")
        assert r.status_code == 409, r.text
        after = block_text(slack.messages[ask["ts"]]["blocks"])
        assert buttons(slack.messages[ask["ts"]]["blocks"]) == []
        assert "Approved* by alice" in after and "refused" in after and "already APPROVED" in after

        # No verifier in this stack: executed, then escalated; PagerDuty paged once.
        inc = api.wait_status(iid, "ESCALATED", timeout=90)
        assert "no verifier" in inc["escalation_reason"]
        wait_for(lambda: pagerduty.events, timeout=30, what="the PagerDuty trigger")
        wait_for(
            lambda: any("Escalated" in block_text(p["args"]["blocks"]) for p in slack.posts()),
            timeout=30,
            what="the escalation in the Slack thread",
        )
        assert pagerduty.actions() == [("trigger", dedup_key(iid))]
        trigger = pagerduty.events[0]
        assert trigger["payload"]["source"] == "cart"
        assert trigger["payload"]["custom_details"]["incident_id"] == iid
        assert "no verifier" in trigger["payload"]["summary"]

        intents = stack.intents(iid)
        (execution,) = [i for i in intents if i["kind"] == "execute"]
        assert execution["status"] == "SUCCEEDED"
        assert execution["action_id"] == "rollback_deployment"
        keys = sorted(i["idempotency_key"] for i in intents if i["kind"] != "execute")
        assert keys == sorted(
            [
                f"{iid}:triage:slack:opened",
                f"{iid}:triage:slack:root_cause",
                f"{iid}:triage:slack:decision",
                f"{iid}:remediate:slack:executed",
                f"{iid}:remediate:slack:escalated",
                f"{iid}:remediate:pagerduty:trigger",
            ]
        )
        # The receiving server sees a call before its intent is marked done: wait for it.
        wait_for(
            lambda: all(i["status"] == "SUCCEEDED" for i in stack.intents(iid)),
            timeout=30,
            what="every intent SUCCEEDED",
        )
        thread = [p for p in slack.posts() if p["ts"] != root["ts"]]
        assert len(thread) == 4 and all(p["args"]["thread_ts"] == root["ts"] for p in thread)

        # Audited like API approvals: the decision (with the Slack user) and every refusal.
        tl = api.timeline(iid)
        approvals = [e["details"] for e in entries(tl, "APPROVAL")]
        assert [(d["decision"], d["user"]) for d in approvals] == [
            ("REFUSED", None),
            ("REFUSED", "oncall"),
            ("REFUSED", "sentinel"),
            ("APPROVED", "alice"),
            ("REFUSED", "alice"),
            ("REFUSED", "alice"),
        ]
        assert approvals[3]["via"] == {"channel": "slack", "slack_user_id": "U0ALICE"}
        assert approvals[3]["proposal_digest"] == appr["proposal_digest"]
        assert approvals[0]["via"]["slack_user_id"] == "U0NOBODY"
        rc, out = stack.audit_verify()
        assert rc == 0, out

        # Secrets never reach the audit log or the process log.
        exported = run_cli(stack.env, "audit", "export", "--format", "jsonl").stdout
        logged = (tmp_path / "sentinel.log").read_text()
        for secret in (BOT_TOKEN, SIGNING_SECRET, ROUTING_KEY):
            assert secret not in exported and secret not in logged


def test_a_closed_incident_resolves_its_page(
    sqlite_url: str, tmp_path: Path, slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    prom = QuietPrometheus()
    env = chat_env(
        slack,
        pagerduty,
        SENTINEL_PROMETHEUS__URL=prom.base,
        SENTINEL_VERIFY__INTERVAL_SECONDS="1",
        SENTINEL_VERIFY__STABLE_SECONDS="2",
        SENTINEL_VERIFY__DEADLINE_SECONDS="10",
    )
    try:
        with act_stack(sqlite_url, tmp_path, env=env) as stack:
            iid = rollback_alert(stack)
            stack.viewer.wait_status(iid, "AWAITING_APPROVAL")
            (appr,) = stack.viewer.approvals(status="pending")
            aid = appr["approval_id"]
            # The request with its buttons is in Slack (and its post recorded) before anyone decides.
            wait_for(
                lambda: any(
                    i["idempotency_key"] == f"{iid}:triage:slack:decision"
                    and i["status"] == "SUCCEEDED"
                    for i in stack.intents(iid)
                ),
                timeout=30,
                what="the approval request posted",
            )
            (ask,) = [p for p in slack.posts() if buttons(p["args"]["blocks"])]
            assert buttons(ask["args"]["blocks"]) == [
                ("sentinel_approve", aid),
                ("sentinel_reject", aid),
            ]
            # Approved through the CLI (the API): the Slack message drops its buttons too.
            out = run_cli(
                stack.env, "approve", aid, "--url", stack.base, "--token", stack.tokens["alice"]
            )
            assert out.stdout.startswith("APPROVED"), out.stdout + out.stderr
            decided = wait_for(
                lambda: (b := slack.messages[ask["ts"]]["blocks"]) and not buttons(b) and b,
                timeout=30,
                what="the approval message updated",
            )
            assert "Approved* by alice" in block_text(decided)
            assert len(slack.updates()) == 1
            stack.viewer.wait_status(iid, "CLOSED", timeout=60)
            wait_for(lambda: pagerduty.events, timeout=30, what="the PagerDuty resolve")
            assert pagerduty.actions() == [("resolve", dedup_key(iid))]
            wait_for(
                lambda: any("incident closed" in p["args"]["text"] for p in slack.posts()),
                timeout=30,
                what="the closing update in the Slack thread",
            )
            root = slack.posts()[0]
            assert all(p["args"]["thread_ts"] == root["ts"] for p in slack.posts()[1:])
            (page,) = wait_for(
                lambda: [
                    i
                    for i in stack.intents(iid)
                    if i["kind"] == "pagerduty" and i["status"] == "SUCCEEDED"
                ],
                timeout=30,
                what="the PagerDuty intent SUCCEEDED",
            )
            assert page["idempotency_key"] == f"{iid}:remediate:pagerduty:resolve"
    finally:
        prom.close()


def test_interactions_endpoint_edges(sqlite_url: str, tmp_path: Path) -> None:
    """Off without a signing secret; malformed, foreign and unknown-approval payloads."""
    from fastapi.testclient import TestClient
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from sentinel.api.app import create_app
    from sentinel.audit.models import AuditRecord
    from sentinel.bootstrap import upgrade_database
    from sentinel.core.config import Settings
    from sentinel.core.db import make_engine

    audit_cfg = {"checkpoint_dir": tmp_path / "cp", "signing_key_path": tmp_path / "k.pem"}
    off = Settings(database_url=sqlite_url, audit=audit_cfg)
    upgrade_database(off)
    url = "/api/v1/slack/interactions"
    body = interaction_body("no-such-approval", "U0ALICE")
    with TestClient(create_app(off)) as client:
        r = client.post(url, content=body, headers=signed(body, SIGNING_SECRET))
        assert r.status_code == 404 and "not configured" in r.text, r.text

    on = Settings(
        database_url=sqlite_url,
        audit=audit_cfg,
        notify={"slack_signing_secret": SIGNING_SECRET, "slack_users": SLACK_USERS},
    )
    assert SIGNING_SECRET not in repr(on) and SIGNING_SECRET not in str(on.model_dump())
    with TestClient(create_app(on)) as client:
        r = client.post(url, content=body, headers={"Content-Type": "text/plain"})
        assert r.status_code == 401, r.text
        junk = b"payload=%7Bnot-json"
        r = client.post(url, content=junk, headers=signed(junk, SIGNING_SECRET))
        assert r.status_code == 400, r.text
        other = b"payload=" + json.dumps({"type": "view_submission"}).encode()
        r = client.post(url, content=other, headers=signed(other, SIGNING_SECRET))
        assert r.status_code == 200 and r.json() == {"ok": True, "ignored": "view_submission"}
        # Signed, but alice does not exist in this database: refused, and the refusal audited.
        r = client.post(url, content=body, headers=signed(body, SIGNING_SECRET))
        assert r.status_code == 403, r.text
    engine = make_engine(sqlite_url)
    with Session(engine) as s:
        recs = [json.loads(r.body)["details"] for r in s.scalars(select(AuditRecord))]
    engine.dispose()
    refusals = [d for d in recs if d.get("decision") == "REFUSED"]
    assert [(d["approval_id"], d["via"]["slack_user_id"]) for d in refusals] == [
        ("no-such-approval", "U0ALICE")
    ]
