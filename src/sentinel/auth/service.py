"""Create users and tokens; authenticate a bearer token into a principal with scopes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from sentinel.auth.models import ApiToken, User
from sentinel.core.clock import utcnow
from sentinel.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized


class Role(StrEnum):
    INGEST = "ingest"
    VIEWER = "viewer"
    RESPONDER = "responder"
    APPROVER = "approver"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, tuple[str, ...]] = {
    Role.INGEST: ("ingest",),
    Role.VIEWER: ("read",),
    Role.RESPONDER: ("read", "respond"),
    Role.APPROVER: ("read", "respond", "approve"),
    Role.ADMIN: ("read", "respond", "approve", "ingest", "admin"),
}

TOKEN_PREFIX = "snt_"


@dataclass(frozen=True)
class Principal:
    """Who is calling, with which role and scopes."""

    user_id: str
    name: str
    role: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """Raise Forbidden unless the principal holds the scope."""
        if scope not in self.scopes:
            raise Forbidden(f"this token lacks the '{scope}' scope", {"role": self.role})


def hash_token(token: str) -> str:
    """SHA-256 hex of a token (tokens are 256-bit random, so a plain hash suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(*, session: Session, name: str, role: str) -> tuple[User, str]:
    """Create a user with one token; return the user and the plaintext token (shown once)."""
    try:
        role_enum = Role(role)
    except ValueError as exc:
        raise BadRequest(
            f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}"
        ) from exc
    if not name or len(name) > 255:
        raise BadRequest("a user name is 1 to 255 characters")
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(name=name, role=role_enum.value)
    session.add(user)
    session.flush()
    token = issue_token(session=session, user=user)
    return user, token


def issue_token(*, session: Session, user: User) -> str:
    """Issue a new token for a user; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.user_id,
            token_hash=hash_token(token),
            scopes=list(ROLE_SCOPES[Role(user.role)]),
        )
    )
    session.flush()
    return token


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def _revoke_all(session: Session, user: User) -> int:
    tokens = list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.user_id, ApiToken.revoked.is_(False))
        )
    )
    for t in tokens:
        t.revoked = True
    return len(tokens)


def rotate_token(*, session: Session, name: str) -> tuple[User, str, int]:
    """Revoke every token of a user and issue a new one (a leaked token, a rotation).
    Returns the user, the new plaintext token (shown once) and how many were revoked."""
    user = _user(session, name)
    if user.disabled:
        raise Conflict(f"user {name!r} is disabled")
    revoked = _revoke_all(session, user)
    session.flush()
    return user, issue_token(session=session, user=user), revoked


def disable_user(*, session: Session, name: str) -> tuple[User, int]:
    """Disable a user and revoke every token of theirs; returns how many were revoked."""
    user = _user(session, name)
    user.disabled = True
    revoked = _revoke_all(session, user)
    session.flush()
    return user, revoked


def list_users(*, session: Session) -> list[dict[str, object]]:
    """Every user with role, state and live token count (never a token or its hash)."""
    out: list[dict[str, object]] = []
    for user in session.scalars(select(User).order_by(User.name)):
        live = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.user_id, ApiToken.revoked.is_(False))
        ).all()
        out.append(
            {"name": user.name, "role": user.role, "disabled": user.disabled, "tokens": len(live)}
        )
    return out


def authenticate(*, session: Session, authorization: str | None) -> Principal:
    """Resolve an ``Authorization: Bearer`` header to a principal or raise Unauthorized."""
    if not authorization:
        raise Unauthorized("missing Authorization header (Bearer token)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.user_id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token.strip()))
    ).first()
    if row is None:
        raise Unauthorized("unknown token")
    tok, user = row
    if tok.revoked or user.disabled:
        raise Unauthorized("token revoked")
    if tok.expires_at is not None and tok.expires_at <= utcnow():
        raise Unauthorized("token expired")
    return Principal(user.user_id, user.name, user.role, frozenset(tok.scopes))
