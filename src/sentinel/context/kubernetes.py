"""Kubernetes context: the service's pods, events, Deployments and rollout history (ReplicaSets).

Read with the official client through an ApiClient the caller builds (Sentinel's standing,
read-only identity: ``sentinel.executors.kubernetes.standing_client``). Each read is one
query envelope with the exact API path; one failing read (403, timeout) leaves the others
standing. Objects are summarised (no env values, no full specs), bounded in count and
bytes, and passed through the secret redactor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import urllib3.exceptions
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from sentinel.context.base import ContextRequest, QueryResult, SourceResult
from sentinel.core.redact import redact

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"
_KEPT_ANNOTATIONS = (
    REVISION,
    REVISION_HISTORY,
    CHANGE_CAUSE,
    "kubectl.kubernetes.io/restartedAt",
    "sentinel.io/action",
    "sentinel.io/action-key",
)


class KubernetesContext:
    """Pods, events, Deployments and ReplicaSets of the incident's service in its namespace."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: Any,
        *,
        default_namespace: str = "default",
        service_label: str = "app",
        timeout_seconds: float = 10.0,
        max_items: int = 50,
        max_bytes: int = 65536,
        max_events_scanned: int = 1000,
    ) -> None:
        self.api = api_client
        self.default_namespace = default_namespace
        self.service_label = service_label
        self.timeout = timeout_seconds
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.max_events_scanned = max_events_scanned

    def namespace_for(self, request: ContextRequest) -> str:
        """The first alert's ``namespace`` label, else the configured default."""
        for a in request.alerts:
            ns = a.labels.get("namespace")
            if ns:
                return ns
        return self.default_namespace

    def gather(self, request: ContextRequest) -> SourceResult:
        """Four reads, each its own envelope; the source is ok when any of them is."""
        ns, svc = self.namespace_for(request), request.service
        selector = f"{self.service_label}={svc}"
        bad = None
        if not _NAMESPACE.match(ns):
            bad = f"namespace {ns!r} is not a Kubernetes namespace name"
        elif not _LABEL_VALUE.match(svc) or len(svc) > 63:
            bad = f"service {svc!r} is not a valid label value"
        core, apps = k8s.CoreV1Api(self.api), k8s.AppsV1Api(self.api)
        sel = {"labelSelector": selector}
        plan: list[tuple[str, str, Callable[[], list[dict[str, Any]]]]] = [
            (
                "pods",
                f"GET /api/v1/namespaces/{ns}/pods?{urlencode(sel)}",
                lambda: self._pods(core, ns, selector),
            ),
            (
                "deployments",
                f"GET /apis/apps/v1/namespaces/{ns}/deployments?{urlencode(sel)}",
                lambda: self._deployments(apps, ns, selector, svc),
            ),
            (
                "rollout_history",
                f"GET /apis/apps/v1/namespaces/{ns}/replicasets?{urlencode(sel)}",
                lambda: self._replicasets(apps, ns, selector),
            ),
            (
                "events",
                f"GET /api/v1/namespaces/{ns}/events?limit={self.max_events_scanned}"
                f" (kept: objects of {svc})",
                lambda: self._events(core, ns, svc),
            ),
        ]
        results: list[QueryResult] = []
        for name, query, read in plan:
            if bad is not None:
                results.append(QueryResult(name=name, query=query, ok=False, error=bad))
                continue
            try:
                items = read()
            except _ERRORS as exc:
                results.append(QueryResult(name=name, query=query, ok=False, error=_error(exc)))
                continue
            kept, truncated = _bound(redact(items), self.max_items, self.max_bytes)
            results.append(
                QueryResult(
                    name=name,
                    query=query,
                    ok=True,
                    truncated=truncated,
                    data={"namespace": ns, "count": len(items), "items": kept},
                )
            )
        ok = any(r.ok for r in results)
        return SourceResult(
            source=self.name,
            ok=ok,
            error=None if ok else results[0].error,
            truncated=any(r.truncated for r in results),
            queries=results,
        )

    # -- the reads -------------------------------------------------------------------------

    def _pods(self, core: Any, ns: str, selector: str) -> list[dict[str, Any]]:
        pods = core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=self.timeout)
        out = []
        for p in pods.items:
            statuses = (p.status.container_statuses or []) if p.status else []
            out.append(
                {
                    "name": p.metadata.name,
                    "phase": p.status.phase if p.status else None,
                    "ready": bool(statuses) and all(c.ready for c in statuses),
                    "restarts": sum(c.restart_count or 0 for c in statuses),
                    "node": p.spec.node_name if p.spec else None,
                    "created_at": _iso(p.metadata.creation_timestamp),
                    "terminating_since": _iso(p.metadata.deletion_timestamp),
                    "owner": _owner(p),
                    "revision_hash": (p.metadata.labels or {}).get("pod-template-hash"),
                    "containers": [_container_status(c) for c in statuses],
                }
            )
        return sorted(out, key=lambda x: str(x["name"]))

    def _deployments(self, apps: Any, ns: str, selector: str, svc: str) -> list[dict[str, Any]]:
        items = list(
            apps.list_namespaced_deployment(
                ns, label_selector=selector, _request_timeout=self.timeout
            ).items
        )
        if not items:  # not labelled: a Deployment named after the service
            try:
                items = [apps.read_namespaced_deployment(svc, ns, _request_timeout=self.timeout)]
            except ApiException as exc:
                if exc.status != 404:
                    raise
        out = []
        for d in items:
            st = d.status
            out.append(
                {
                    "name": d.metadata.name,
                    "replicas": d.spec.replicas,
                    "ready_replicas": st.ready_replicas if st else None,
                    "updated_replicas": st.updated_replicas if st else None,
                    "available_replicas": st.available_replicas if st else None,
                    "generation": d.metadata.generation,
                    "observed_generation": st.observed_generation if st else None,
                    "revision": _ann(d, REVISION),
                    "annotations": _kept_annotations(d),
                    "images": _images(d.spec.template),
                    "conditions": [
                        {
                            "type": c.type,
                            "status": c.status,
                            "reason": c.reason,
                            "message": c.message,
                        }
                        for c in (st.conditions or [] if st else [])
                    ],
                }
            )
        return out

    def _replicasets(self, apps: Any, ns: str, selector: str) -> list[dict[str, Any]]:
        rss = apps.list_namespaced_replica_set(
            ns, label_selector=selector, _request_timeout=self.timeout
        )
        out = []
        for rs in rss.items:
            rev = _ann(rs, REVISION)
            out.append(
                {
                    "name": rs.metadata.name,
                    "revision": int(rev) if rev and rev.isdigit() else rev,
                    "revision_history": _ann(rs, REVISION_HISTORY),
                    "change_cause": _ann(rs, CHANGE_CAUSE),
                    "created_at": _iso(rs.metadata.creation_timestamp),
                    "replicas": rs.spec.replicas if rs.spec else None,
                    "ready_replicas": rs.status.ready_replicas if rs.status else None,
                    "owner": _owner(rs),
                    "images": _images(rs.spec.template) if rs.spec else [],
                    "env_names": _env_names(rs.spec.template) if rs.spec else [],
                }
            )
        return sorted(out, key=lambda x: _rev_key(x["revision"]), reverse=True)

    def _events(self, core: Any, ns: str, svc: str) -> list[dict[str, Any]]:
        evs = core.list_namespaced_event(
            ns, limit=self.max_events_scanned, _request_timeout=self.timeout
        )
        prefix = f"{svc}-"
        out = []
        for e in evs.items:
            obj = e.involved_object
            name = obj.name if obj else None
            if not name or not (name == svc or name.startswith(prefix)):
                continue
            last = e.last_timestamp or e.event_time or e.first_timestamp
            out.append(
                {
                    "at": _iso(last),
                    "type": e.type,
                    "reason": e.reason,
                    "object": f"{obj.kind}/{name}",
                    "message": e.message,
                    "count": e.count,
                    "source": e.source.component if e.source else None,
                }
            )
        return sorted(out, key=lambda x: str(x["at"] or ""), reverse=True)


def _error(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        body = exc.body.decode() if isinstance(exc.body, bytes) else (exc.body or "")
        message = ""
        try:
            parsed = json.loads(body) if body else {}
            message = str(parsed.get("message", "")) if isinstance(parsed, dict) else ""
        except ValueError:
            message = body[:2000]
        return f"ApiException: HTTP {exc.status} {exc.reason}: {redact(message)}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def _bound(items: Any, max_items: int, max_bytes: int) -> tuple[list[Any], bool]:
    kept: list[Any] = []
    used = 0
    for item in list(items)[:max_items]:
        size = len(json.dumps(item, default=str))
        if used + size > max_bytes:
            return kept, True
        used += size
        kept.append(item)
    return kept, len(items) > max_items


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _ann(obj: Any, key: str) -> str | None:
    value = (obj.metadata.annotations or {}).get(key)
    return str(value) if value is not None else None


def _kept_annotations(obj: Any) -> dict[str, str]:
    ann = obj.metadata.annotations or {}
    return {k: str(ann[k]) for k in _KEPT_ANNOTATIONS if k in ann}


def _owner(obj: Any) -> str | None:
    refs = obj.metadata.owner_references or []
    return f"{refs[0].kind}/{refs[0].name}" if refs else None


def _images(template: Any) -> list[str]:
    if template is None or template.spec is None:
        return []
    return [str(c.image) for c in template.spec.containers or []]


def _env_names(template: Any) -> list[str]:
    """Environment variable names only: values may be secrets."""
    if template is None or template.spec is None:
        return []
    return sorted({e.name for c in template.spec.containers or [] for e in c.env or []})


def _container_status(c: Any) -> dict[str, Any]:
    last = c.last_state.terminated if c.last_state and c.last_state.terminated else None
    waiting = c.state.waiting if c.state and c.state.waiting else None
    return {
        "name": c.name,
        "image": c.image,
        "ready": c.ready,
        "restart_count": c.restart_count,
        "waiting_reason": waiting.reason if waiting else None,
        "last_terminated_reason": last.reason if last else None,
        "last_terminated_at": _iso(last.finished_at) if last else None,
    }


def _rev_key(rev: Any) -> int:
    return rev if isinstance(rev, int) else -1
