"""The Kubernetes executor: pod restart, rollout restart, rollback and scale, each under its own token.

Sentinel's standing identity may only read (pods, events, deployments, replicasets) and
create/delete ServiceAccounts, Roles, RoleBindings and TokenRequests. For every action it:

1. creates a ServiceAccount ``<prefix>-<sha256(idempotency key)[:20]>`` in
   ``service_account_namespace``: one account per action, because a token is authorized
   by every Role bound to its account;
2. creates a Role of the same name in the target's namespace whose rules name only the
   one target (``resourceNames: [name]``) and only the verbs the action needs (``delete``
   pods; ``patch`` deployments; ``patch`` deployments/scale), and a RoleBinding to the
   account;
3. requests a token for the account (TokenRequest, ``expirationSeconds`` ≥ 600,
   ``audiences`` from the settings, empty = the API server's);
4. makes the one call with that token only (no retries: a 403 while a fresh binding
   propagates is retried, as it proves nothing ran);
5. deletes the RoleBinding, the Role and the ServiceAccount, which revokes the token.

The result records the scope under ``jit`` (rules, account, expiry), never the token.

Idempotency: the names derive from the idempotency key, and the mutating patch sets the
Deployment annotation ``sentinel.io/action-key`` to the key in the same request as the
change (scale: right after the scale subresource call). ``reconcile`` deletes any
leftover account/Role/RoleBinding of the key, then reads the target with the standing
identity: pod gone, terminating or replaced (another uid) → done; Deployment annotated
with the key (and, for a rollback, running that revision's template; for scale, at the
requested replicas) → done; anything else → None (a human decides). Bad input is refused
(``ok: False``), never raised.

The standing identity needs (ClusterRole, bound cluster-wide or per target namespace):
``roles``, ``rolebindings``: create, delete, get, list, plus ``escalate`` and ``bind`` on
``roles`` (to grant what it does not hold); ``serviceaccounts``: create, delete, get, list
and ``serviceaccounts/token``: create (in ``service_account_namespace``); and read-only
get/list on ``pods``, ``pods/log``, ``events``, ``namespaces``, ``deployments``,
``deployments/scale``, ``replicasets``. RBAC has no deny rules and ``escalate`` lets it
write any Role, so on a real cluster add a ValidatingAdmissionPolicy admitting only Roles
labelled ``app.kubernetes.io/managed-by=sentinel`` whose rules all carry ``resourceNames``
and only the verbs above.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sentinel.core.clock import utcnow
from sentinel.executors.base import (
    RESTART_KUBERNETES_POD,
    ROLLBACK_DEPLOYMENT,
    ROLLOUT_RESTART_DEPLOYMENT,
    SCALE_DEPLOYMENT,
    ActionCall,
    Stopwatch,
    envelope,
    error_text,
    parse_action,
    refused,
    unsupported_action,
)
from sentinel.executors.jit import JitGrant

log = logging.getLogger("sentinel.executors.kubernetes")

# The catalog's shapes (policy/actions.py), repeated because executors may not import policy.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_MAX_INT = 2**31 - 1

ACTION_KEY_ANNOTATION = "sentinel.io/action-key"
ACTION_ANNOTATION = "sentinel.io/action"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
TARGET_UID_ANNOTATION = "sentinel.io/target-uid"
TARGET_ANNOTATION = "sentinel.io/target"
HASH_LABEL = "pod-template-hash"
MANAGED_BY = {"app.kubernetes.io/managed-by": "sentinel", "sentinel.io/jit": "true"}
IN_CLUSTER_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
RBAC_GROUP = "rbac.authorization.k8s.io"

_T = TypeVar("_T")


class KubernetesSettings(BaseModel):
    """Kubernetes executor (and context) configuration: where the API is, who Sentinel is there."""

    model_config = ConfigDict(extra="forbid")

    # Where the API server is: exactly one of api_server, kubeconfig or in_cluster.
    api_server: str | None = None  # e.g. https://10.0.0.1:6443; needs token_file
    kubeconfig: str | None = None  # path to a kubeconfig file
    kube_context: str | None = None  # kubeconfig context; None = its current-context
    in_cluster: bool = False  # the pod's mounted ServiceAccount (standing identity)
    # The standing identity's bearer token (re-read on every request: projected tokens
    # rotate). With kubeconfig it replaces the kubeconfig user's credentials.
    token_file: str | None = None
    ca_file: str | None = None  # CA bundle for the API server; None = kubeconfig / system
    verify_ssl: bool = True
    # Per-action identities.
    service_account_namespace: str = "sentinel"
    name_prefix: str = Field(default="sentinel-act", pattern=r"^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$")
    token_ttl_seconds: int = Field(default=600, ge=600, le=86400)
    audiences: list[str] = Field(default_factory=list)  # empty = the API server's audiences
    rbac_wait_seconds: float = Field(default=5.0, ge=0, le=60)  # retry 403 while RBAC settles
    # Reads (inventory, context).
    namespaces: list[str] = Field(default_factory=list)  # inventory scope; empty = all
    default_namespace: str = "default"  # context: when the alert names no namespace
    service_label: str = "app"  # the label whose value names a workload's service
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    read_timeout_seconds: float = Field(default=20.0, gt=0, le=600)

    @field_validator("service_account_namespace", "default_namespace")
    @classmethod
    def _ns(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes namespace name")
        return value

    @field_validator("namespaces")
    @classmethod
    def _nss(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _NAMESPACE.match(v)]
        if bad:
            raise ValueError(f"{bad} are not Kubernetes namespace names")
        return value

    @field_validator("api_server")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"api_server {value!r} must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesSettings:
        sources = [self.api_server is not None, self.kubeconfig is not None, self.in_cluster]
        if sum(sources) > 1:
            raise ValueError("give at most one of api_server, kubeconfig and in_cluster")
        if self.api_server is not None and self.token_file is None:
            raise ValueError("api_server needs token_file (the standing identity's token)")
        return self

    def is_configured(self) -> bool:
        """Whether an API server is configured at all."""
        return self.api_server is not None or self.kubeconfig is not None or self.in_cluster


def jit_name(prefix: str, idempotency_key: str) -> str:
    """The ServiceAccount/Role/RoleBinding name for one action: DNS-safe, from the key's hash."""
    return f"{prefix}-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]}"


def base_configuration(settings: KubernetesSettings) -> Any:
    """A client Configuration for the API server (host, TLS), from the settings' source.

    Raises ValueError when the source cannot be loaded (bad kubeconfig, not in a pod).
    """
    cfg = k8s.Configuration()
    try:
        if settings.in_cluster:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        elif settings.kubeconfig is not None:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=settings.kubeconfig,
                context=settings.kube_context,
                client_configuration=cfg,
                persist_config=False,
            )
        elif settings.api_server is not None:
            cfg.host = settings.api_server.rstrip("/")
        else:
            raise ValueError("kubernetes: configure api_server, kubeconfig or in_cluster")
    except k8s_config.ConfigException as exc:
        raise ValueError(f"kubernetes: cannot load the client configuration: {exc}") from exc
    if settings.ca_file is not None:
        cfg.ssl_ca_cert = settings.ca_file
    if not settings.verify_ssl:
        cfg.verify_ssl = False
    return cfg


def standing_client(settings: KubernetesSettings) -> Any:
    """An ApiClient as Sentinel's standing identity (reads; minting per-action identities)."""
    cfg = base_configuration(settings)
    if settings.token_file is not None:
        path = Path(settings.token_file)

        def refresh(c: Any) -> None:
            c.api_key["authorization"] = path.read_text().strip()

        cfg.api_key = {"authorization": path.read_text().strip()}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        cfg.refresh_api_key_hook = refresh
        # The token alone is the identity: never also present a kubeconfig client cert.
        cfg.cert_file = None
        cfg.key_file = None
    return k8s.ApiClient(cfg)


def _token_client(base: Any, bearer: str) -> Any:
    """An ApiClient that authenticates with ``bearer`` only, sending each request once."""
    cfg = k8s.Configuration(host=base.host)
    cfg.ssl_ca_cert = base.ssl_ca_cert
    cfg.verify_ssl = base.verify_ssl
    cfg.tls_server_name = base.tls_server_name
    cfg.assert_hostname = base.assert_hostname
    cfg.proxy = base.proxy
    cfg.no_proxy = base.no_proxy
    cfg.api_key = {"authorization": bearer}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    cfg.retries = False  # a mutating call is sent once
    return k8s.ApiClient(cfg)


# -- errors --------------------------------------------------------------------------------


def _status_text(exc: Any) -> tuple[int, str, str]:
    """(HTTP status, Status reason, Status message) of an ApiException."""
    status = int(exc.status or 0)
    reason, message = str(exc.reason or ""), ""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            message = body[:2000]
        else:
            if isinstance(parsed, dict):
                reason = str(parsed.get("reason") or reason)
                message = str(parsed.get("message") or "")
    return status, reason, message


def api_error(exc: BaseException) -> dict[str, Any]:
    """The full error of a Kubernetes call and whether it may have changed anything."""
    if isinstance(exc, ApiException):
        status, reason, message = _status_text(exc)
        text = f"ApiException: HTTP {status} {reason}: {message}".rstrip(": ")
        # 4xx: the API server refused; status 0: the client never sent the request.
        sent_nothing = status == 0 or 400 <= status < 500
        return {
            "error": text,
            "http_status": status or None,
            "k8s_reason": reason or None,
            "may_have_run": not sent_nothing,
        }
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    not_sent = isinstance(
        cause,
        urllib3.exceptions.ConnectTimeoutError  # includes NewConnectionError
        | urllib3.exceptions.SSLError
        | ConnectionRefusedError,
    )
    return {"error": error_text(exc), "may_have_run": not not_sent}


_CALL_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


class _Failed(Exception):
    """A step failed before the action ran; ``detail`` is the api_error dict."""

    def __init__(self, stage: str, detail: dict[str, Any]) -> None:
        super().__init__(detail.get("error"))
        self.stage = stage
        self.detail = detail


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    """A validated action: its namespace, its target's kind and name, and the fields."""

    call: ActionCall
    namespace: str
    kind: str  # "pod" | "deployment"
    name: str
    to_revision: int | None = None
    replicas: int | None = None


@dataclass
class _Grant:
    """A minted per-action identity: ``api`` is the token's client; ``grant`` the record."""

    name: str
    namespace: str
    rules: list[dict[str, Any]]
    api: Any = None
    grant: JitGrant | None = None
    setup: list[str] = field(default_factory=list)


def _rule(group: str, resource: str, verbs: list[str], name: str) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": [resource], "verbs": verbs, "resourceNames": [name]}


def rules_for(action_id: str, name: str) -> list[dict[str, Any]]:
    """The RBAC rules one action's token gets: its one target, its verbs only."""
    if action_id == RESTART_KUBERNETES_POD:
        return [_rule("", "pods", ["delete"], name)]
    if action_id == SCALE_DEPLOYMENT:
        return [
            _rule("apps", "deployments/scale", ["patch"], name),
            # the action-key annotation on the Deployment itself (metadata only)
            _rule("apps", "deployments", ["patch"], name),
        ]
    return [_rule("apps", "deployments", ["patch"], name)]


# The official client imports its API and model classes lazily; compiling them on first use
# costs seconds, which would land on the first incident's critical path.
WARM_CLASSES = (
    "ApiClient",
    "CoreV1Api",
    "AppsV1Api",
    "RbacAuthorizationV1Api",
    "V1PodList",
    "V1Pod",
    "V1DeploymentList",
    "V1Deployment",
    "V1ReplicaSetList",
    "V1ReplicaSet",
    "CoreV1EventList",
    "V1Scale",
    "V1Status",
    "V1Role",
    "V1RoleBinding",
    "V1ServiceAccount",
    "AuthenticationV1TokenRequest",
    "V1TokenRequestSpec",
    "V1DeleteOptions",
)


def warm_up() -> None:
    """Import the client classes the executor and the context source use (idempotent)."""
    for name in WARM_CLASSES:
        getattr(k8s, name, None)


class KubernetesExecutor:
    """Runs the four Kubernetes catalog actions, each with a token scoped to its one target."""

    name = "kubernetes"
    supported_actions: frozenset[str] = frozenset(
        {
            RESTART_KUBERNETES_POD,
            ROLLOUT_RESTART_DEPLOYMENT,
            ROLLBACK_DEPLOYMENT,
            SCALE_DEPLOYMENT,
        }
    )

    def __init__(self, settings: KubernetesSettings, *, api_client: Any = None) -> None:
        if not settings.is_configured() and api_client is None:
            raise ValueError("kubernetes: configure api_server, kubeconfig or in_cluster")
        self.settings = settings
        self._standing = api_client if api_client is not None else standing_client(settings)
        self._timeout = (settings.connect_timeout_seconds, settings.read_timeout_seconds)

    @property
    def standing_api(self) -> Any:
        """The standing identity's ApiClient (read-only uses: inventory, context)."""
        return self._standing

    def close(self) -> None:
        """Release the standing client's connections."""
        self._standing.close()

    # -- the Executor port -----------------------------------------------------------------

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Mint a token for this one target and verb, make the one call, revoke the token."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            return req
        sw = Stopwatch()
        base = self._result_base(req, idempotency_key)
        try:
            target = self._read_target(req)
        except _Failed as exc:
            # A read changes nothing, whatever happened to it.
            detail = {**exc.detail, "may_have_run": False}
            return {"ok": False, **base, "stage": exc.stage, **detail, **sw.stamp()}
        if isinstance(target, str):
            return {**refused(self.name, action, idempotency_key, target), **base, **sw.stamp()}
        if req.kind == "deployment" and _annotation(target.obj, ACTION_KEY_ANNOTATION) == (
            idempotency_key
        ):
            done = self._deployment_done(req, idempotency_key, target.obj)
            if done is not None:
                return {**base, **done, "replayed": True, **sw.stamp()}
        grant = _Grant(
            name=jit_name(self.settings.name_prefix, idempotency_key),
            namespace=req.namespace,
            rules=rules_for(req.call.action_id, req.name),
        )
        out: dict[str, Any]
        try:
            self._mint(grant, req, idempotency_key, target.uid)
            out = self._act(grant, req, idempotency_key, target)
        except _Failed as exc:
            out = {"ok": False, "stage": exc.stage, **exc.detail}
            if exc.stage.startswith("jit:"):
                out["may_have_run"] = False  # the action's call was never made
        except Exception as exc:  # noqa: BLE001 - an unexpected client error is the result
            log.exception("kubernetes %s: unexpected error", idempotency_key)
            out = {"ok": False, "stage": "call", "error": error_text(exc), "may_have_run": True}
        finally:
            cleanup = self._revoke(grant.name, req.namespace)
        out.setdefault("may_have_run", True)
        jit = grant.grant.as_dict() if grant.grant is not None else None
        return {
            **base,
            **out,
            "jit": jit,
            "jit_setup": grant.setup,
            "jit_cleanup": cleanup,
            **sw.stamp(),
        }

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None:
        """Revoke any leftover identity of the key, then read the target: the done result or None."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            return {**req, "reconciled": True}
        name = jit_name(self.settings.name_prefix, idempotency_key)
        recorded_uid: str | None = None
        try:
            role = k8s.RbacAuthorizationV1Api(self._standing).read_namespaced_role(
                name, req.namespace, _request_timeout=self._timeout
            )
            recorded_uid = _annotation(role, TARGET_UID_ANNOTATION)
        except _CALL_ERRORS:
            pass  # gone already (or unreadable): the uid is then unknown
        cleanup = self._revoke(name, req.namespace)
        base = {**self._result_base(req, idempotency_key), "jit_cleanup": cleanup}
        try:
            if req.kind == "pod":
                seen = self._pod_done(req, recorded_uid)
            else:
                dep = k8s.AppsV1Api(self._standing).read_namespaced_deployment(
                    req.name, req.namespace, _request_timeout=self._timeout
                )
                seen = None
                if _annotation(dep, ACTION_KEY_ANNOTATION) == idempotency_key:
                    seen = self._deployment_done(req, idempotency_key, dep)
        except _CALL_ERRORS as exc:
            log.warning("reconcile %s: cannot read the target: %s", idempotency_key, exc)
            return None
        if seen is None:
            return None
        return {**base, **seen, "reconciled": True, "may_have_run": True}

    # -- read-only facts for the policy ----------------------------------------------------

    def inventory(self) -> dict[str, Any]:
        """Pods and Deployments that exist now (policy.facts shapes), plus ``errors``.

        Read with the standing identity. A failed read leaves its list empty (no target
        is valid) and says why.
        """
        out: dict[str, Any] = {"pods": [], "deployments": [], "errors": []}
        core, apps = k8s.CoreV1Api(self._standing), k8s.AppsV1Api(self._standing)
        label = self.settings.service_label
        rs_owner: dict[tuple[str, str], str] = {}
        revisions: dict[tuple[str, str], set[int]] = {}
        try:
            for rs in self._list(
                apps.list_namespaced_replica_set, apps.list_replica_set_for_all_namespaces
            ):
                ns, owner = rs.metadata.namespace, _owner(rs, "Deployment")
                if owner is None:
                    continue
                rs_owner[(ns, rs.metadata.name)] = owner
                rev = _int(_annotation(rs, REVISION_ANNOTATION))
                if rev is not None:
                    revisions.setdefault((ns, owner), set()).add(rev)
        except _CALL_ERRORS as exc:
            out["errors"].append(f"list replicasets: {api_error(exc)['error']}")
        try:
            for d in self._list(
                apps.list_namespaced_deployment, apps.list_deployment_for_all_namespaces
            ):
                ns, dname = d.metadata.namespace, d.metadata.name
                labels = dict(d.metadata.labels or {})
                out["deployments"].append(
                    {
                        "namespace": ns,
                        "name": dname,
                        "replicas": int(d.spec.replicas if d.spec.replicas is not None else 1),
                        "current_revision": _int(_annotation(d, REVISION_ANNOTATION)) or 0,
                        "revisions": sorted(revisions.get((ns, dname), set())),
                        "labels": labels,
                        "service": labels.get(label)
                        or ((d.spec.template.metadata.labels or {}).get(label)),
                    }
                )
        except _CALL_ERRORS as exc:
            out["deployments"] = []
            out["errors"].append(f"list deployments: {api_error(exc)['error']}")
        try:
            for p in self._list(core.list_namespaced_pod, core.list_pod_for_all_namespaces):
                if p.metadata.deletion_timestamp is not None:
                    continue  # terminating: nothing left to act on
                ns = p.metadata.namespace
                labels = dict(p.metadata.labels or {})
                rs = _owner(p, "ReplicaSet")
                out["pods"].append(
                    {
                        "namespace": ns,
                        "name": p.metadata.name,
                        "deployment": rs_owner.get((ns, rs)) if rs else None,
                        "labels": labels,
                        "service": labels.get(label),
                    }
                )
        except _CALL_ERRORS as exc:
            out["pods"] = []
            out["errors"].append(f"list pods: {api_error(exc)['error']}")
        return out

    def _list(
        self, namespaced: Callable[..., Any], everywhere: Callable[..., Any]
    ) -> Iterator[Any]:
        if self.settings.namespaces:
            for ns in self.settings.namespaces:
                yield from namespaced(ns, _request_timeout=self._timeout).items
        else:
            yield from everywhere(_request_timeout=self._timeout).items

    # -- just-in-time identities -----------------------------------------------------------

    def mint(
        self, idempotency_key: str, namespace: str, rules: list[dict[str, Any]]
    ) -> tuple[Any, dict[str, Any]]:
        """Create a per-action identity with these rules: (an ApiClient with its token, the grant).

        Raises RuntimeError with the full error when a step fails (what was created stays
        until ``revoke``). ``execute`` mints the same way; this is for operators and tests.
        """
        grant = _Grant(
            name=jit_name(self.settings.name_prefix, idempotency_key),
            namespace=namespace,
            rules=copy.deepcopy(rules),
        )
        req = _Request(
            call=ActionCall(action_id="jit_session", params={}, target=""),
            namespace=namespace,
            kind="custom",
            name="",
        )
        try:
            self._mint(grant, req, idempotency_key, None)
        except _Failed as exc:
            raise RuntimeError(f"{exc.stage}: {exc.detail.get('error')}") from exc
        assert grant.grant is not None
        return grant.api, grant.grant.as_dict()

    def revoke(self, idempotency_key: str, namespace: str) -> dict[str, str]:
        """Delete the key's RoleBinding, Role and ServiceAccount; what happened to each."""
        return self._revoke(jit_name(self.settings.name_prefix, idempotency_key), namespace)

    @contextmanager
    def jit_session(
        self, idempotency_key: str, namespace: str, rules: list[dict[str, Any]]
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """``mint`` on entry, ``revoke`` on exit (even when minting failed half-way)."""
        api = None
        try:
            api, grant = self.mint(idempotency_key, namespace, rules)
            yield api, grant
        finally:
            if api is not None:
                api.close()
            self.revoke(idempotency_key, namespace)

    def _mint(self, grant: _Grant, req: _Request, key: str, target_uid: str | None) -> None:
        """Create the ServiceAccount, Role, RoleBinding and a token; fills ``grant``."""
        s = self.settings
        core, rbac = k8s.CoreV1Api(self._standing), k8s.RbacAuthorizationV1Api(self._standing)
        notes = {ACTION_KEY_ANNOTATION: key, TARGET_ANNOTATION: _target_text(req)}
        if target_uid:
            notes[TARGET_UID_ANNOTATION] = target_uid
        sa_ns = s.service_account_namespace

        def meta() -> k8s.V1ObjectMeta:
            return k8s.V1ObjectMeta(
                name=grant.name, labels=dict(MANAGED_BY), annotations=dict(notes)
            )

        def create(what: str, fn: Callable[[], Any], delete: Callable[[], Any] | None) -> None:
            try:
                fn()
                grant.setup.append(f"created {what}")
            except ApiException as exc:
                if exc.status != 409:
                    raise _Failed(f"jit:create {what}", api_error(exc)) from exc
                if delete is None:
                    grant.setup.append(f"re-used existing {what}")
                    return
                # Left by an interrupted run of this same key: recreate with these rules.
                try:
                    delete()
                    fn()
                except _CALL_ERRORS as again:
                    raise _Failed(f"jit:recreate {what}", api_error(again)) from again
                grant.setup.append(f"re-created {what}")
            except _CALL_ERRORS as exc:
                raise _Failed(f"jit:create {what}", api_error(exc)) from exc

        t = self._timeout
        create(
            f"serviceaccount {sa_ns}/{grant.name}",
            lambda: core.create_namespaced_service_account(
                sa_ns, k8s.V1ServiceAccount(metadata=meta()), _request_timeout=t
            ),
            None,
        )
        create(
            f"role {grant.namespace}/{grant.name}",
            lambda: rbac.create_namespaced_role(
                grant.namespace,
                k8s.V1Role(metadata=meta(), rules=[_policy_rule(r) for r in grant.rules]),
                _request_timeout=t,
            ),
            lambda: rbac.delete_namespaced_role(grant.name, grant.namespace, _request_timeout=t),
        )
        binding = k8s.V1RoleBinding(
            metadata=meta(),
            role_ref=k8s.V1RoleRef(api_group=RBAC_GROUP, kind="Role", name=grant.name),
            subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=grant.name, namespace=sa_ns)],
        )
        create(
            f"rolebinding {grant.namespace}/{grant.name}",
            lambda: rbac.create_namespaced_role_binding(
                grant.namespace, binding, _request_timeout=t
            ),
            lambda: rbac.delete_namespaced_role_binding(
                grant.name, grant.namespace, _request_timeout=t
            ),
        )
        token_request = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(
                audiences=list(s.audiences), expiration_seconds=s.token_ttl_seconds
            )
        )
        issued = utcnow()
        try:
            answer: Any = core.create_namespaced_service_account_token(
                grant.name, sa_ns, token_request, _request_timeout=t
            )
        except _CALL_ERRORS as exc:
            raise _Failed("jit:token_request", api_error(exc)) from exc
        grant.setup.append(f"requested a token for serviceaccount {sa_ns}/{grant.name}")
        expires = answer.status.expiration_timestamp
        expires = _utc(expires) if isinstance(expires, datetime) else issued
        grant.api = _token_client(self._standing.configuration, str(answer.status.token))
        grant.grant = JitGrant(
            mechanism="kubernetes_token_request",
            identity=f"system:serviceaccount:{sa_ns}:{grant.name}",
            issued_at=issued,
            expires_at=expires,
            scope={
                "service_account": f"{sa_ns}/{grant.name}",
                "role": f"{grant.namespace}/{grant.name}",
                "role_binding": f"{grant.namespace}/{grant.name}",
                "rules": copy.deepcopy(grant.rules),
                "audiences": list(s.audiences),
                "expiration_seconds_requested": s.token_ttl_seconds,
            },
        )

    def _revoke(self, name: str, namespace: str) -> dict[str, str]:
        """Delete the RoleBinding, Role and ServiceAccount (its tokens die with it)."""
        core, rbac = k8s.CoreV1Api(self._standing), k8s.RbacAuthorizationV1Api(self._standing)
        sa_ns, t = self.settings.service_account_namespace, self._timeout
        steps: list[tuple[str, Callable[[], Any]]] = [
            (
                "role_binding",
                lambda: rbac.delete_namespaced_role_binding(name, namespace, _request_timeout=t),
            ),
            ("role", lambda: rbac.delete_namespaced_role(name, namespace, _request_timeout=t)),
            (
                "service_account",
                lambda: core.delete_namespaced_service_account(name, sa_ns, _request_timeout=t),
            ),
        ]
        out: dict[str, str] = {}
        for what, fn in steps:
            try:
                fn()
                out[what] = "deleted"
            except ApiException as exc:
                out[what] = "absent" if exc.status == 404 else api_error(exc)["error"]
            except _CALL_ERRORS as exc:
                out[what] = api_error(exc)["error"]
            if out[what] not in ("deleted", "absent"):
                log.error("kubernetes: could not delete %s %s: %s", what, name, out[what])
        return out

    # -- the actions -----------------------------------------------------------------------

    def _act(self, grant: _Grant, req: _Request, key: str, target: _Target) -> dict[str, Any]:
        with grant.api as api:
            if req.call.action_id == RESTART_KUBERNETES_POD:
                return self._restart_pod(api, req, target)
            if req.call.action_id == ROLLOUT_RESTART_DEPLOYMENT:
                return self._rollout_restart(api, req, key, target)
            if req.call.action_id == ROLLBACK_DEPLOYMENT:
                return self._rollback(api, req, key, target)
            return self._scale(api, req, key, target)

    def _once(self, stage: str, fn: Callable[[], _T]) -> _T:
        """Make a mutating call; retry only a 403 (RBAC not yet settled: nothing ran)."""
        deadline = time.monotonic() + self.settings.rbac_wait_seconds
        delay = 0.1
        while True:
            try:
                return fn()
            except ApiException as exc:
                if exc.status == 403 and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                raise _Failed(stage, api_error(exc)) from exc
            except _CALL_ERRORS as exc:
                raise _Failed(stage, api_error(exc)) from exc

    def _restart_pod(self, api: Any, req: _Request, target: _Target) -> dict[str, Any]:
        path = f"DELETE /api/v1/namespaces/{req.namespace}/pods/{req.name}"
        before = self._siblings(req, target)
        body = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=target.uid))
        deleted = self._once(
            "call",
            lambda: k8s.CoreV1Api(api).delete_namespaced_pod(
                req.name, req.namespace, body=body, _request_timeout=self._timeout
            ),
        )
        deletion = getattr(getattr(deleted, "metadata", None), "deletion_timestamp", None)
        out: dict[str, Any] = {
            "ok": True,
            "request": {"call": path, "preconditions": {"uid": target.uid}},
            "pod": {
                "uid": target.uid,
                "owner": target.owner,
                "node": getattr(target.obj.spec, "node_name", None),
                "deletion_timestamp": _iso(deletion),
            },
            "may_have_run": True,
        }
        after = self._siblings(req, target)
        read_back: dict[str, Any] = {"label_selector": after.get("label_selector")}
        if "error" in after:
            read_back["error"] = after["error"]
        else:
            live = after["pods"]
            read_back["old_pod_present"] = target.uid in after["uids"]
            read_back["pods_now"] = live
            # A controller usually recreates at once; none here just means not yet.
            read_back["new_pods"] = sorted(set(live) - set(before.get("pods", [])))
        out["read_back"] = read_back
        return out

    def _siblings(self, req: _Request, target: _Target) -> dict[str, Any]:
        """Live pods with the target's labels (its ReplicaSet's), read as the standing identity."""
        labels = dict(target.obj.metadata.labels or {})
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        try:
            pods: Any = k8s.CoreV1Api(self._standing).list_namespaced_pod(
                req.namespace, label_selector=selector or None, _request_timeout=self._timeout
            )
        except _CALL_ERRORS as exc:
            return {"label_selector": selector, "error": api_error(exc)["error"]}
        live = [p for p in pods.items if p.metadata.deletion_timestamp is None]
        return {
            "label_selector": selector,
            "pods": sorted(p.metadata.name for p in live),
            "uids": [p.metadata.uid for p in live],
        }

    def _rollout_restart(
        self, api: Any, req: _Request, key: str, target: _Target
    ) -> dict[str, Any]:
        now = utcnow().replace(microsecond=0).isoformat().replace("+00:00", "Z")
        body = {
            "metadata": {
                "annotations": {
                    ACTION_KEY_ANNOTATION: key,
                    ACTION_ANNOTATION: ROLLOUT_RESTART_DEPLOYMENT,
                }
            },
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: now}}}},
        }
        dep = self._patch(api, req, body)
        return {
            "ok": True,
            "request": self._patch_request(req, body),
            "deployment": {
                "revision_before": _int(_annotation(target.obj, REVISION_ANNOTATION)),
                "revision_after": _int(_annotation(dep, REVISION_ANNOTATION)),
                "generation": dep.metadata.generation,
                "restarted_at": now,
            },
            "may_have_run": True,
        }

    def _rollback(self, api: Any, req: _Request, key: str, target: _Target) -> dict[str, Any]:
        assert req.to_revision is not None and target.template is not None
        body = {
            "metadata": {
                "annotations": {
                    ACTION_KEY_ANNOTATION: key,
                    ACTION_ANNOTATION: f"{ROLLBACK_DEPLOYMENT} to_revision={req.to_revision}",
                }
            },
            "spec": {"template": {"$patch": "replace", **target.template}},
        }
        dep = self._patch(api, req, body)
        return {
            "ok": True,
            "request": self._patch_request(req, body),
            "deployment": {
                "revision_before": _int(_annotation(target.obj, REVISION_ANNOTATION)),
                "to_revision": req.to_revision,
                "from_replicaset": target.owner,
                "revision_after": _int(_annotation(dep, REVISION_ANNOTATION)),
                "images_before": _images(target.obj.spec.template),
                "images_after": _images(dep.spec.template),
                "generation": dep.metadata.generation,
            },
            "may_have_run": True,
        }

    def _scale(self, api: Any, req: _Request, key: str, target: _Target) -> dict[str, Any]:
        assert req.replicas is not None
        body = {"spec": {"replicas": req.replicas}}
        path = f"PATCH /apis/apps/v1/namespaces/{req.namespace}/deployments/{req.name}/scale"
        scale: Any = self._once(
            "call",
            lambda: k8s.AppsV1Api(api).patch_namespaced_deployment_scale(
                req.name, req.namespace, body, _request_timeout=self._timeout
            ),
        )
        out: dict[str, Any] = {
            "ok": True,
            "request": {
                "call": path,
                "content_type": "application/strategic-merge-patch+json",
                "body": body,
            },
            "deployment": {
                "replicas_before": target.obj.spec.replicas,
                "replicas_after": scale.spec.replicas,
            },
            "may_have_run": True,
        }
        marker = {
            "metadata": {
                "annotations": {
                    ACTION_KEY_ANNOTATION: key,
                    ACTION_ANNOTATION: f"{SCALE_DEPLOYMENT} replicas={req.replicas}",
                }
            }
        }
        try:
            self._patch(api, req, marker)
            out["marker"] = self._patch_request(req, marker)
        except _Failed as exc:
            # The scale happened; only the proof for reconcile is missing.
            out["marker_error"] = exc.detail.get("error")
        return out

    def _patch(self, api: Any, req: _Request, body: dict[str, Any]) -> Any:
        return self._once(
            "call",
            lambda: k8s.AppsV1Api(api).patch_namespaced_deployment(
                req.name, req.namespace, body, _request_timeout=self._timeout
            ),
        )

    @staticmethod
    def _patch_request(req: _Request, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "call": f"PATCH /apis/apps/v1/namespaces/{req.namespace}/deployments/{req.name}",
            "content_type": "application/strategic-merge-patch+json",
            "body": body,
        }

    # -- reading the target (standing identity) --------------------------------------------

    def _read_target(self, req: _Request) -> _Target | str:
        """The target as it is now; a str says why the action cannot run (not found...)."""
        t = self._timeout
        try:
            if req.kind == "pod":
                pod: Any = k8s.CoreV1Api(self._standing).read_namespaced_pod(
                    req.name, req.namespace, _request_timeout=t
                )
                return _Target(obj=pod, uid=pod.metadata.uid, owner=_owner(pod, "ReplicaSet"))
            apps = k8s.AppsV1Api(self._standing)
            dep: Any = apps.read_namespaced_deployment(req.name, req.namespace, _request_timeout=t)
        except ApiException as exc:
            if exc.status == 404:
                return f"{req.kind} {req.namespace}/{req.name} not found"
            raise _Failed("read_target", api_error(exc)) from exc
        except _CALL_ERRORS as exc:
            raise _Failed("read_target", api_error(exc)) from exc
        target = _Target(obj=dep, uid=dep.metadata.uid)
        if req.call.action_id != ROLLBACK_DEPLOYMENT:
            return target
        assert req.to_revision is not None
        try:
            rss = self._replicasets(req, dep)
        except _CALL_ERRORS as exc:
            raise _Failed("read_target", api_error(exc)) from exc
        by_rev = {_int(_annotation(r, REVISION_ANNOTATION)): r for r in rss}
        current = _int(_annotation(dep, REVISION_ANNOTATION))
        rs = by_rev.get(req.to_revision)
        if rs is None:
            known = sorted(r for r in by_rev if r is not None)
            return (
                f"deployment {req.namespace}/{req.name} has no revision {req.to_revision};"
                f" its revisions are {known}"
            )
        if req.to_revision == current:
            return (
                f"deployment {req.namespace}/{req.name} is already at revision"
                f" {req.to_revision}: nothing to roll back"
            )
        target.owner = rs.metadata.name
        target.template = _pod_template(self._standing, rs.spec.template)
        return target

    def _replicasets(self, req: _Request, dep: Any) -> list[Any]:
        """The ReplicaSets the Deployment owns (by selector, then owner uid)."""
        match = (dep.spec.selector.match_labels or {}) if dep.spec.selector else {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        rss: Any = k8s.AppsV1Api(self._standing).list_namespaced_replica_set(
            req.namespace, label_selector=selector or None, _request_timeout=self._timeout
        )
        return [
            r
            for r in rss.items
            if any(
                o.kind == "Deployment" and o.uid == dep.metadata.uid
                for o in (r.metadata.owner_references or [])
            )
        ]

    def _pod_done(self, req: _Request, recorded_uid: str | None) -> dict[str, Any] | None:
        try:
            pod: Any = k8s.CoreV1Api(self._standing).read_namespaced_pod(
                req.name, req.namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return {"ok": True, "reconciled_from": f"pod {req.namespace}/{req.name} is gone"}
        if pod.metadata.deletion_timestamp is not None:
            return {
                "ok": True,
                "reconciled_from": f"pod {req.namespace}/{req.name} is terminating since"
                f" {_iso(pod.metadata.deletion_timestamp)}",
            }
        if recorded_uid is not None and pod.metadata.uid != recorded_uid:
            return {
                "ok": True,
                "reconciled_from": f"pod {req.namespace}/{req.name} was replaced: uid"
                f" {pod.metadata.uid}, the intent recorded {recorded_uid}",
            }
        return None

    def _deployment_done(self, req: _Request, key: str, dep: Any) -> dict[str, Any] | None:
        """The done result if the Deployment shows this action's effect, else None."""
        where = f"deployment {req.namespace}/{req.name}"
        proof = f"{where} carries {ACTION_KEY_ANNOTATION}={key}"
        revision = _int(_annotation(dep, REVISION_ANNOTATION))
        if req.call.action_id == ROLLOUT_RESTART_DEPLOYMENT:
            return {
                "ok": True,
                "reconciled_from": f"{proof} (set in the same patch as the restart)",
                "deployment": {"revision_after": revision},
            }
        if req.call.action_id == SCALE_DEPLOYMENT:
            if dep.spec.replicas != req.replicas:
                return None
            return {
                "ok": True,
                "reconciled_from": f"{proof} and has spec.replicas={req.replicas}",
                "deployment": {"replicas_after": dep.spec.replicas},
            }
        assert req.to_revision is not None
        rss = self._replicasets(req, dep)
        for rs in rss:
            revs = {_int(_annotation(rs, REVISION_ANNOTATION))}
            history = _annotation(rs, REVISION_HISTORY_ANNOTATION) or ""
            revs |= {_int(h) for h in history.split(",")}
            if req.to_revision not in revs:
                continue
            wanted = _pod_template(self._standing, rs.spec.template)
            running = _pod_template(self._standing, dep.spec.template)
            if wanted == running:
                return {
                    "ok": True,
                    "reconciled_from": f"{proof} and runs the template of revision"
                    f" {req.to_revision} (replicaset {rs.metadata.name})",
                    "deployment": {"revision_after": revision, "to_revision": req.to_revision},
                }
        return None

    # -- validation ------------------------------------------------------------------------

    def _validate(self, action: dict[str, Any], key: str) -> _Request | dict[str, Any]:
        call = parse_action(action)
        if not isinstance(call, ActionCall):
            return refused(self.name, action, key, call)
        if call.action_id not in self.supported_actions:
            return unsupported_action(self.name, action, key, self.supported_actions)
        if not isinstance(key, str) or not key:
            return refused(self.name, action, key, "idempotency_key must be a non-empty string")
        p = call.params
        fields = {
            RESTART_KUBERNETES_POD: {"namespace", "pod"},
            ROLLOUT_RESTART_DEPLOYMENT: {"namespace", "deployment"},
            ROLLBACK_DEPLOYMENT: {"namespace", "deployment", "to_revision"},
            SCALE_DEPLOYMENT: {"namespace", "deployment", "replicas"},
        }[call.action_id]
        unknown = sorted(set(p) - fields)
        if unknown:
            return refused(self.name, action, key, f"unknown parameters {unknown}")
        missing = sorted(fields - set(p))
        if missing:
            return refused(self.name, action, key, f"missing parameters {missing}")
        ns = p["namespace"]
        if not isinstance(ns, str) or not _NAMESPACE.match(ns):
            return refused(self.name, action, key, f"params.namespace {ns!r} is not a namespace")
        kind = "pod" if call.action_id == RESTART_KUBERNETES_POD else "deployment"
        name = p[kind]
        if not isinstance(name, str) or not _NAME.match(name):
            return refused(self.name, action, key, f"params.{kind} {name!r} is not a {kind} name")
        number: int | None = None
        for field_name, low in (("to_revision", 1), ("replicas", 0)):
            if field_name in fields:
                v = p[field_name]
                high = _MAX_INT if field_name == "to_revision" else 1000
                if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                    return refused(
                        self.name,
                        action,
                        key,
                        f"params.{field_name} must be an integer in [{low}, {high}], got {v!r}",
                    )
                number = v
        return _Request(
            call=call,
            namespace=ns,
            kind=kind,
            name=name,
            to_revision=number if call.action_id == ROLLBACK_DEPLOYMENT else None,
            replicas=number if call.action_id == SCALE_DEPLOYMENT else None,
        )

    def _result_base(self, req: _Request, key: str) -> dict[str, Any]:
        return {
            **envelope(
                self.name,
                {
                    "action_id": req.call.action_id,
                    "params": req.call.params,
                    "target": req.call.target,
                },
                key,
            ),
            "namespace": req.namespace,
            "kind": req.kind,
            "name": req.name,
            "api_server": self._standing.configuration.host,
        }


@dataclass
class _Target:
    """The target read before acting: the object, its uid, and for a rollback the template."""

    obj: Any
    uid: str
    owner: str | None = None  # the pod's ReplicaSet / the rollback's source ReplicaSet
    template: dict[str, Any] | None = None


def _policy_rule(rule: dict[str, Any]) -> k8s.V1PolicyRule:
    return k8s.V1PolicyRule(
        api_groups=list(rule["apiGroups"]),
        resources=list(rule["resources"]),
        verbs=list(rule["verbs"]),
        resource_names=list(rule["resourceNames"]),
    )


def _target_text(req: _Request) -> str:
    return f"k8s:{req.namespace}/{req.kind}/{req.name}" if req.name else req.namespace


def _annotation(obj: Any, key: str) -> str | None:
    meta = getattr(obj, "metadata", None)
    annotations = getattr(meta, "annotations", None) or {}
    value = annotations.get(key)
    return str(value) if value is not None else None


def _owner(obj: Any, kind: str) -> str | None:
    for ref in obj.metadata.owner_references or []:
        if ref.kind == kind:
            return str(ref.name)
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _pod_template(api: Any, template: Any) -> dict[str, Any]:
    """A pod template as plain JSON, without the controller's pod-template-hash label."""
    out: dict[str, Any] = api.sanitize_for_serialization(template) or {}
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def _images(template: Any) -> list[str]:
    return [str(c.image) for c in (template.spec.containers or [])]


def _iso(value: Any) -> str | None:
    return _utc(value).isoformat() if isinstance(value, datetime) else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
