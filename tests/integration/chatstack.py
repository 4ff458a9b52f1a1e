"""Local servers for the chat and paging tests (no test reaches the internet).

- ``FakeSlack`` speaks the Slack Web API subset Sentinel uses (chat.postMessage, chat.update:
  bearer token, JSON or form bodies, ``{"ok": ..., "channel": ..., "ts": ...}`` answers and
  Slack's error names), so the real ``slack_sdk.WebClient(base_url=...)`` drives it.
- ``FakePagerDuty`` speaks Events API v2 (``POST /v2/enqueue`` → 202 success with the dedup key).
- ``QuietPrometheus`` answers the two query endpoints with empty results: an alert expression
  that returns nothing is clear, so verification passes.
- ``signed`` builds a Slack interaction request the way Slack signs one (v0 scheme).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode


class _Server:
    """A threaded local HTTP server whose handler calls ``self.handle``."""

    def __init__(self) -> None:
        outer = self
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                n = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(n) if n else b""
                status, doc = outer.handle(method, self.path, dict(self.headers.items()), raw)
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                self._serve("POST")

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self._serve("GET")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _form_or_json(headers: dict[str, str], raw: bytes) -> dict[str, Any]:
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if "json" in ctype:
        doc = json.loads(raw or b"{}")
        return doc if isinstance(doc, dict) else {}
    fields = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    if isinstance(fields.get("blocks"), str):
        fields["blocks"] = json.loads(fields["blocks"])
    return fields


class FakeSlack(_Server):
    """chat.postMessage / chat.update for one bot token and one channel; records every call."""

    def __init__(self, token: str, channel: str) -> None:
        self.token = token
        self.channel = channel
        self.calls: list[dict[str, Any]] = []  # {"method", "args"} of accepted calls
        self.messages: dict[str, dict[str, Any]] = {}  # ts -> latest message
        self.refused: list[dict[str, Any]] = []
        self._seq = 0
        super().__init__()
        self.api_url = f"{self.base}/api/"

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        name = path.split("?")[0].removeprefix("/api/")
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        args = _form_or_json(headers, raw)
        with self.lock:
            if auth != f"Bearer {self.token}":
                self.refused.append({"method": name, "error": "invalid_auth"})
                return 200, {"ok": False, "error": "invalid_auth"}
            if args.get("channel") != self.channel:
                return 200, {"ok": False, "error": "channel_not_found"}
            if not args.get("text") and not args.get("blocks"):
                return 200, {"ok": False, "error": "no_text"}
            if name == "chat.postMessage":
                self._seq += 1
                ts = f"{int(time.time())}.{self._seq:06d}"
                msg = {
                    "ts": ts,
                    "text": args.get("text"),
                    "blocks": args.get("blocks") or [],
                    "thread_ts": args.get("thread_ts"),
                    "reply_broadcast": bool(args.get("reply_broadcast")),
                }
                self.messages[ts] = msg
                self.calls.append({"method": name, "args": args, "ts": ts})
                return 200, {"ok": True, "channel": self.channel, "ts": ts, "message": msg}
            if name == "chat.update":
                ts = str(args.get("ts"))
                if ts not in self.messages:
                    return 200, {"ok": False, "error": "message_not_found"}
                self.messages[ts].update(
                    {"text": args.get("text"), "blocks": args.get("blocks") or []}
                )
                self.calls.append({"method": name, "args": args, "ts": ts})
                return 200, {
                    "ok": True,
                    "channel": self.channel,
                    "ts": ts,
                    "text": args.get("text"),
                }
            return 200, {"ok": False, "error": "unknown_method"}

    def posts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["method"] == "chat.postMessage"]

    def updates(self) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["method"] == "chat.update"]


class FakePagerDuty(_Server):
    """Events API v2: validates the event, records it, answers 202 like PagerDuty."""

    def __init__(self, routing_key: str) -> None:
        self.routing_key = routing_key
        self.events: list[dict[str, Any]] = []
        super().__init__()
        self.url = f"{self.base}/v2/enqueue"

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        if method != "POST" or path != "/v2/enqueue":
            return 404, {"status": "invalid path"}
        try:
            ev = json.loads(raw)
        except ValueError:
            return 400, {"status": "invalid event", "message": "Event object is invalid"}
        if ev.get("routing_key") != self.routing_key:
            return 400, {"status": "invalid event", "errors": ["Invalid routing key"]}
        action = ev.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            return 400, {"status": "invalid event", "errors": ["'event_action' is invalid"]}
        if action == "trigger":
            p = ev.get("payload") or {}
            if not (p.get("summary") and p.get("source") and p.get("severity")):
                return 400, {"status": "invalid event", "errors": ["payload is incomplete"]}
        elif not ev.get("dedup_key"):
            return 400, {"status": "invalid event", "errors": ["'dedup_key' is missing"]}
        with self.lock:
            self.events.append(ev)
        return 202, {
            "status": "success",
            "message": "Event processed",
            "dedup_key": ev["dedup_key"],
        }

    def actions(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(e["event_action"], e["dedup_key"]) for e in self.events]


class QuietPrometheus(_Server):
    """The Prometheus HTTP API's query endpoints, always returning no series."""

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        if path.startswith("/api/v1/query_range"):
            return 200, {"status": "success", "data": {"resultType": "matrix", "result": []}}
        if path.startswith("/api/v1/query"):
            return 200, {"status": "success", "data": {"resultType": "vector", "result": []}}
        return 404, {"status": "error", "error": "not found"}


def interaction_body(
    approval_id: str,
    slack_user: str,
    *,
    action: str = "sentinel_approve",
    channel: str = "C0SENTINEL",
    message_ts: str = "1.000001",
) -> bytes:
    """A block_actions payload as Slack posts it (form field ``payload=``)."""
    payload = {
        "type": "block_actions",
        "user": {"id": slack_user, "username": slack_user.lower(), "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "api_app_id": "A0APP",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": "incidents"},
        "message": {"ts": message_ts, "type": "message"},
        "response_url": "https://hooks.slack.invalid/actions/T0TEAM/1/x",
        "trigger_id": "1.2.3",
        "actions": [
            {
                "type": "button",
                "action_id": action,
                "block_id": "sentinel_approval",
                "value": approval_id,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends: X-Slack-Request-Timestamp and the v0 HMAC signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig,
    }
