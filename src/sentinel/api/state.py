"""Per-app state: settings, engine, the workflow enqueuer and a short-lived token cache."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from sentinel.api.ingest_writer import IngestWriter
from sentinel.auth import service as auth_service
from sentinel.auth.service import Principal
from sentinel.core.config import Settings
from sentinel.flows.runtime import Enqueuer
from sentinel.notify.slack import SlackNotifier
from sentinel.policy.rules import Policy, load_policy_file

TOKEN_CACHE_SECONDS = 30.0


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    enqueuer: Enqueuer
    writer: IngestWriter = field(init=False)
    _cache: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _policy: tuple[float, Policy] | None = None
    _slack: SlackNotifier | None = None

    def slack(self) -> SlackNotifier | None:
        """The Slack client (chat.update after a button click) when Slack posting is configured."""
        n = self.settings.notify
        if self._slack is None and n.slack_enabled:
            assert n.slack_bot_token is not None and n.slack_channel
            self._slack = SlackNotifier(
                n.slack_bot_token.get_secret_value(),
                n.slack_channel,
                base_url=n.slack_api_url,
                timeout=n.slack_timeout_seconds,
            )
        return self._slack

    def policy(self) -> Policy:
        """The policy file, re-read when it changes (approver roles come from it)."""
        path = self.settings.policy.file
        mtime = path.stat().st_mtime
        if self._policy is None or self._policy[0] != mtime:
            self._policy = (mtime, load_policy_file(path))
        return self._policy[1]

    def cached_principal(self, authorization: str | None) -> Principal | None:
        """The cached answer for this header, if fresh (no database, safe on the event loop)."""
        hit = self._cache.get(authorization or "")
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def authenticate(self, authorization: str | None) -> Principal:
        """Resolve a bearer token; positive answers are cached briefly (revocation lag ≤ 30 s)."""
        key = authorization or ""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        with Session(self.engine) as s:
            principal = auth_service.authenticate(session=s, authorization=authorization)
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (now + TOKEN_CACHE_SECONDS, principal)
        return principal


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.sentinel
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def _principal(request: Request, state: StateDep) -> Principal:
    return state.authenticate(request.headers.get("authorization"))


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def reader(principal: CurrentPrincipal) -> Principal:
    principal.require("read")
    return principal


Reader = Annotated[Principal, Depends(reader)]


def responder(principal: CurrentPrincipal) -> Principal:
    principal.require("respond")
    return principal


Responder = Annotated[Principal, Depends(responder)]
