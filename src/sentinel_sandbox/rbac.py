"""Bearer tokens, ServiceAccounts and RBAC: who a request is and what it may do.

Authentication: ``Authorization: Bearer <token>``. The admin token (``system:masters``)
may do everything. A ServiceAccount token (from a TokenRequest, or the standing token
written at start) is valid while it has not expired, its ServiceAccount still exists
with the same uid, its bound object (if any) still exists, and one of its audiences is
one the API server accepts. Anything else is 401.

Authorization follows Kubernetes RBAC: the union of the rules of every Role/ClusterRole
bound to the identity (RoleBindings in the request's namespace, ClusterRoleBindings
anywhere). A rule matches on verb, API group, resource (``pods``, ``deployments/scale``,
``serviceaccounts/token``) and, when it lists ``resourceNames``, the object's name: a
request without a name (list, create of a top-level object) never matches a rule that
names resources. There are no deny rules. Creating a Role requires the ``escalate``
verb on roles or holding every permission it grants; creating a RoleBinding requires
``bind`` on the referenced role or holding its permissions (as the real API server's
escalation check).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

RBAC_GROUP = "rbac.authorization.k8s.io"
API_AUDIENCES = (
    "https://kubernetes.default.svc.cluster.local",
    "https://kubernetes.default.svc",
    "kubernetes",
    "sandbox",
)
MIN_TOKEN_SECONDS = 600
MAX_TOKEN_SECONDS = 2**32
DEFAULT_TOKEN_SECONDS = 3600


@dataclass
class Identity:
    user: str
    groups: list[str]
    admin: bool = False
    sa: tuple[str, str] | None = None


@dataclass
class TokenInfo:
    identity: Identity
    expires_at: float | None
    audiences: list[str] = field(default_factory=lambda: list(API_AUDIENCES))
    sa_uid: str | None = None
    bound: dict[str, Any] | None = None


class AuthError(Exception):
    """401: the request carries no valid credential."""


def sa_user(ns: str, name: str) -> str:
    return f"system:serviceaccount:{ns}:{name}"


def rule_allows(
    rule: dict[str, Any], verb: str, group: str, resource: str, sub: str, name: str | None
) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and group not in groups:
        return False
    full = f"{resource}/{sub}" if sub else resource
    resources = rule.get("resources") or []
    if not (
        "*" in resources
        or full in resources
        or (sub and f"*/{sub}" in resources)
        or (sub and f"{resource}/*" in resources)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not (names and (name is None or name not in names))


class Rbac:
    """Tokens, ServiceAccounts, Roles, RoleBindings, ClusterRoles and ClusterRoleBindings."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.tokens: dict[str, TokenInfo] = {}
        # resource plural -> (namespace or "", name) -> object
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            "serviceaccounts": {},
            "roles": {},
            "rolebindings": {},
            "clusterroles": {},
            "clusterrolebindings": {},
        }
        self.bound_object_exists: Any = lambda kind, ns, name, uid: True

    # -- tokens -----------------------------------------------------------------------

    def admin_token(self, token: str | None = None) -> str:
        tok = token or f"sandbox-admin-{secrets.token_hex(24)}"
        self.tokens[tok] = TokenInfo(
            Identity("sandbox-admin", ["system:masters", "system:authenticated"], admin=True), None
        )
        return tok

    def issue(
        self,
        ns: str,
        sa: str,
        expiration_seconds: int | None,
        audiences: list[str] | None,
        bound: dict[str, Any] | None,
    ) -> tuple[str, float, list[str]]:
        """A token for a ServiceAccount (the caller has checked it exists and validated input)."""
        obj = self.objects["serviceaccounts"][(ns, sa)]
        ttl = expiration_seconds if expiration_seconds is not None else DEFAULT_TOKEN_SECONDS
        auds = list(audiences) if audiences else list(API_AUDIENCES)
        exp = self.clock.now() + ttl
        tok = secrets.token_urlsafe(40)
        self.tokens[tok] = TokenInfo(
            Identity(
                sa_user(ns, sa),
                ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                sa=(ns, sa),
            ),
            exp if ttl > 0 else None,
            auds,
            sa_uid=obj["metadata"]["uid"],
            bound=bound,
        )
        return tok, exp, auds

    def authenticate(self, header: str | None) -> Identity:
        if not header or not header.lower().startswith("bearer "):
            raise AuthError("Unauthorized")
        info = self.tokens.get(header[7:].strip())
        if info is None:
            raise AuthError("Unauthorized")
        if info.expires_at is not None and self.clock.now() >= info.expires_at:
            raise AuthError("Unauthorized")
        if not set(info.audiences) & set(API_AUDIENCES):
            raise AuthError("Unauthorized")
        if info.identity.sa is not None:
            sa = self.objects["serviceaccounts"].get(info.identity.sa)
            if sa is None or sa["metadata"]["uid"] != info.sa_uid:
                raise AuthError("Unauthorized")
            b = info.bound
            if b and not self.bound_object_exists(
                b.get("kind"), info.identity.sa[0], b.get("name"), b.get("uid")
            ):
                raise AuthError("Unauthorized")
        return info.identity

    # -- authorization ----------------------------------------------------------------

    def _subject_matches(self, subj: dict[str, Any], ident: Identity, binding_ns: str) -> bool:
        kind = subj.get("kind")
        if kind == "ServiceAccount":
            return ident.sa == (subj.get("namespace") or binding_ns, subj.get("name"))
        if kind == "User":
            return subj.get("name") == ident.user
        if kind == "Group":
            return subj.get("name") in ident.groups
        return False

    def rules_for(self, ident: Identity, ns: str | None) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for b in self.objects["clusterrolebindings"].values():
            if any(self._subject_matches(s, ident, "") for s in b.get("subjects") or []):
                role = self.objects["clusterroles"].get(("", b["roleRef"]["name"]))
                if role:
                    rules.extend(role.get("rules") or [])
        if ns:
            for (bns, _), b in self.objects["rolebindings"].items():
                if bns != ns:
                    continue
                if not any(self._subject_matches(s, ident, bns) for s in b.get("subjects") or []):
                    continue
                ref = b["roleRef"]
                role = (
                    self.objects["roles"].get((ns, ref["name"]))
                    if ref.get("kind") == "Role"
                    else self.objects["clusterroles"].get(("", ref["name"]))
                )
                if role:
                    rules.extend(role.get("rules") or [])
        return rules

    def allowed(
        self,
        ident: Identity,
        verb: str,
        group: str,
        resource: str,
        sub: str,
        ns: str | None,
        name: str | None,
    ) -> bool:
        if ident.admin:
            return True
        return any(
            rule_allows(r, verb, group, resource, sub, name) for r in self.rules_for(ident, ns)
        )

    def covers(self, ident: Identity, ns: str | None, rules: list[dict[str, Any]]) -> bool:
        """Does the identity already hold every permission in ``rules``?"""
        if ident.admin:
            return True
        for r in rules:
            names = r.get("resourceNames") or [None]
            for verb in r.get("verbs") or []:
                for group in r.get("apiGroups") or [""]:
                    for res in r.get("resources") or []:
                        resource, _, sub = res.partition("/")
                        for name in names:
                            if not self.allowed(ident, verb, group, resource, sub, ns, name):
                                return False
        return True
