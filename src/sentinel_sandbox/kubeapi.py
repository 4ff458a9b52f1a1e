"""The Kubernetes-API-compatible HTTP surface (enough for the official Python client).

Paths: ``/api/v1/...`` (core) and ``/apis/<group>/<version>/...``. Resources served:

    core v1        pods (list/get/delete, pods/log), events (list/get), namespaces
                   (list/get), serviceaccounts (list/get/create/delete,
                   serviceaccounts/token create = TokenRequest)
    apps/v1        deployments (list/get/patch/update, deployments/scale get/patch/update),
                   replicasets (list/get)
    rbac/v1        roles, rolebindings, clusterroles, clusterrolebindings
                   (list/get/create/delete)
    authorization  selfsubjectaccessreviews (create)

Every request is authenticated (401) and authorized by RBAC (403) before it is served;
errors are ``Status`` objects with the code, reason and message the real API server
uses, so the official client raises ``ApiException`` with the right status.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sentinel_sandbox import patch as patching
from sentinel_sandbox.cluster import NotFound, rfc3339
from sentinel_sandbox.rbac import (
    MAX_TOKEN_SECONDS,
    MIN_TOKEN_SECONDS,
    RBAC_GROUP,
    AuthError,
    Identity,
)
from sentinel_sandbox.sandbox import Sandbox

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

# (group, resource) -> (kind, list kind, namespaced)
RESOURCES: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("", "pods"): ("Pod", "PodList", True),
    ("", "events"): ("Event", "EventList", True),
    ("events.k8s.io", "events"): ("Event", "EventList", True),
    ("", "namespaces"): ("Namespace", "NamespaceList", False),
    ("", "serviceaccounts"): ("ServiceAccount", "ServiceAccountList", True),
    ("apps", "deployments"): ("Deployment", "DeploymentList", True),
    ("apps", "replicasets"): ("ReplicaSet", "ReplicaSetList", True),
    (RBAC_GROUP, "roles"): ("Role", "RoleList", True),
    (RBAC_GROUP, "rolebindings"): ("RoleBinding", "RoleBindingList", True),
    (RBAC_GROUP, "clusterroles"): ("ClusterRole", "ClusterRoleList", False),
    (RBAC_GROUP, "clusterrolebindings"): ("ClusterRoleBinding", "ClusterRoleBindingList", False),
    ("authorization.k8s.io", "selfsubjectaccessreviews"): ("SelfSubjectAccessReview", "", False),
}
VERSIONS = {
    "": "v1",
    "apps": "v1",
    RBAC_GROUP: "v1",
    "authorization.k8s.io": "v1",
    "events.k8s.io": "v1",
}
RBAC_RESOURCES = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")


def _meta_name(body: Any) -> str | None:
    meta = body.get("metadata") if isinstance(body, dict) else None
    return str(meta["name"]) if isinstance(meta, dict) and meta.get("name") else None


class ApiError(Exception):
    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _gr(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_gr(group, resource)} "{name}" not found',
        {"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, name: str, msg: str) -> ApiError:
    return ApiError(
        422, "Invalid", f'{kind} "{name}" is invalid: {msg}', {"name": name, "kind": kind}
    )


def _check_preconditions(body: Any, uid: str, rv: str, resource: str, name: str) -> None:
    pre = body.get("preconditions") if isinstance(body, dict) else None
    if not pre:
        return
    if pre.get("uid") and pre["uid"] != uid:
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource} "{name}": Precondition failed: '
            f"UID in precondition: {pre['uid']}, UID in object meta: {uid}",
            {"name": name, "kind": resource},
        )
    if pre.get("resourceVersion") and pre["resourceVersion"] != rv:
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource} "{name}": Precondition failed: '
            f"ResourceVersion in precondition: {pre['resourceVersion']}, "
            f"ResourceVersion in object meta: {rv}",
            {"name": name, "kind": resource},
        )


def events_v1(ev: dict[str, Any]) -> dict[str, Any]:
    """A core/v1 Event in the events.k8s.io/v1 shape."""
    first = ev["firstTimestamp"]
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": copy.deepcopy(ev["metadata"]),
        "eventTime": first.replace("Z", ".000000Z"),
        "reason": ev["reason"],
        "note": ev["message"],
        "type": ev["type"],
        "regarding": copy.deepcopy(ev["involvedObject"]),
        "reportingController": ev["source"]["component"],
        "reportingInstance": ev.get("reportingInstance", ""),
        "action": ev["reason"],
        "deprecatedCount": ev["count"],
        "deprecatedFirstTimestamp": first,
        "deprecatedLastTimestamp": ev["lastTimestamp"],
        "deprecatedSource": copy.deepcopy(ev["source"]),
    }


# -- selectors ---------------------------------------------------------------------------


def _split_selector(sel: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [s.strip() for s in out if s.strip()]


def label_match(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for req in _split_selector(selector):
        m = re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)", req)
        if m:
            vals = {v.strip() for v in m.group(3).split(",")}
            has = m.group(1) in labels and labels[m.group(1)] in vals
            if (m.group(2) == "in") != has:
                return False
            continue
        if "!=" in req:
            k, v = req.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in req:
            k, v = req.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif req.startswith("!"):
            if req[1:] in labels:
                return False
        elif req not in labels:
            return False
    return True


def _dotted(obj: Any, path: str) -> str:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return ""
        obj = obj.get(part)
    return "" if obj is None else str(obj)


def field_match(selector: str | None, obj: dict[str, Any]) -> bool:
    if not selector:
        return True
    for req in _split_selector(selector):
        if "!=" in req:
            k, v = req.split("!=", 1)
            if _dotted(obj, k.strip()) == v.strip():
                return False
        elif "=" in req:
            k, v = req.replace("==", "=").split("=", 1)
            if _dotted(obj, k.strip()) != v.strip():
                return False
        else:
            raise ApiError(
                400,
                "BadRequest",
                f'unable to parse requirement: found "{req}", expected: =, != or ==',
            )
    return True


# -- the API -----------------------------------------------------------------------------


class KubeApi:
    """Request handling for the Kubernetes paths of one Sandbox."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except ApiError as e:
            return JSONResponse(
                status_body(e.code, e.reason, e.message, e.details), status_code=e.code
            )

    async def _handle(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        segs = [s for s in path.split("/") if s]
        try:
            ident = self.sb.rbac.authenticate(request.headers.get("authorization"))
        except AuthError:
            raise ApiError(401, "Unauthorized", "Unauthorized") from None
        if segs == ["api"]:
            return JSONResponse(
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )
        if segs[0] == "api":
            group, version, rest = "", segs[1] if len(segs) > 1 else "", segs[2:]
        else:
            if len(segs) < 3:
                return JSONResponse({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
            group, version, rest = segs[1], segs[2], segs[3:]
        if VERSIONS.get(group) != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3 or (group, resource) not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespaced = RESOURCES[(group, resource)][2]
        if namespaced is False and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        method = request.method
        if method == "GET":
            if request.query_params.get("watch") in ("true", "1"):
                raise ApiError(405, "MethodNotAllowed", "watch is not supported by the sandbox")
            verb = "get" if name else "list"
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise ApiError(405, "MethodNotAllowed", f"method {method} not allowed")
        if method == "POST" and name and not sub:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        body: Any = None
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            raw = await request.body()
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                if method != "DELETE":
                    raise ApiError(
                        400, "BadRequest", "the request body is not valid JSON"
                    ) from None
        authz_name = name
        if resource == "selfsubjectaccessreviews":
            return self._ssar(ident, body)
        if not self.sb.rbac.allowed(ident, verb, group, resource, sub, ns, authz_name):
            self._audit(ident.user, verb, group, resource, sub, ns, name, 403, body)
            where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
            full = f"{resource}/{sub}" if sub else resource
            who = f'"{name}" ' if name else ""
            raise ApiError(
                403,
                "Forbidden",
                f'{_gr(group, resource)} {who}is forbidden: User "{ident.user}" cannot {verb} resource "{full}" in API group "{group}"{where}',
                {"name": name or "", "group": group, "kind": resource},
            )
        with self.sb.lock:
            if ns is not None and ns not in self.sb.cluster.namespaces and verb != "list":
                raise not_found("", "namespaces", ns)
            try:
                result = self._dispatch(ident, verb, group, resource, sub, ns, name, body, request)
            except ApiError as exc:
                self._audit(ident.user, verb, group, resource, sub, ns, name, exc.code, body)
                raise
        code = (
            result.status_code if isinstance(result, Response) else 201 if verb == "create" else 200
        )
        self._audit(ident.user, verb, group, resource, sub, ns, name, code, body)
        if isinstance(result, Response):
            return result
        return JSONResponse(result, status_code=code)

    def _audit(
        self,
        user: str,
        verb: str,
        group: str,
        resource: str,
        sub: str,
        ns: str | None,
        name: str | None,
        code: int,
        body: Any,
    ) -> None:
        """The API server's audit log of every write (tests: who minted which token, when)."""
        if verb in ("get", "list"):
            return
        now = self.sb.clock.now()
        rec: dict[str, Any] = {
            "at": rfc3339(now),
            "ts": round(now, 6),
            "user": user,
            "verb": verb,
            "group": group,
            "resource": f"{resource}/{sub}" if sub else resource,
            "namespace": ns,
            "name": name or _meta_name(body),
            "code": code,
        }
        if isinstance(body, dict):
            if resource == "serviceaccounts" and sub == "token":
                spec = body.get("spec") or {}
                rec["token_request"] = {
                    "expirationSeconds": spec.get("expirationSeconds"),
                    "audiences": spec.get("audiences"),
                    "boundObjectRef": spec.get("boundObjectRef"),
                }
            elif resource in ("roles", "clusterroles"):
                rec["rules"] = body.get("rules")
            elif resource in ("rolebindings", "clusterrolebindings"):
                rec["roleRef"] = body.get("roleRef")
                rec["subjects"] = body.get("subjects")
        with self.sb.lock:
            self.sb.api_audit.append(rec)
            del self.sb.api_audit[:-5000]

    # -- dispatch -----------------------------------------------------------------------

    def _dispatch(
        self,
        ident: Identity,
        verb: str,
        group: str,
        resource: str,
        sub: str,
        ns: str | None,
        name: str | None,
        body: Any,
        request: Request,
    ) -> Any:
        sb = self.sb
        cl = sb.cluster
        q = request.query_params
        if verb == "list":
            items = self._list(group, resource, ns)
            items = [
                o
                for o in items
                if label_match(
                    q.get("labelSelector"), (o.get("metadata") or {}).get("labels") or {}
                )
                and field_match(q.get("fieldSelector"), o)
            ]
            kind, list_kind, _ = RESOURCES[(group, resource)]
            api_version = f"{group}/v1" if group else "v1"
            limit = q.get("limit")
            if limit and limit.isdigit() and int(limit) > 0:
                items = items[: int(limit)]
            return {
                "apiVersion": api_version,
                "kind": list_kind,
                "metadata": {"resourceVersion": str(cl.rv)},
                "items": items,
            }
        if name is None:
            if verb == "create" and resource in ("serviceaccounts", *RBAC_RESOURCES):
                return self._rbac_object(ident, verb, group, resource, ns or "", None, body)
            raise ApiError(
                405, "MethodNotAllowed", f"{verb} on {resource} is not supported by the sandbox"
            )
        if resource == "pods":
            p = cl.pods.get((ns or "", name))
            if p is None:
                raise not_found(group, resource, name)
            if sub == "log" and verb == "get":
                return self._pod_log(p.service, name, q)
            if sub == "status" and verb == "get":
                return cl.render_pod(p)
            if sub:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if verb == "get":
                return cl.render_pod(p)
            if verb == "delete":
                _check_preconditions(body, p.uid, str(p.resource_version), "pods", name)
                out = cl.render_pod(p, deleting=True)
                cl.delete_pod(ns or "", name)
                return out
            raise ApiError(
                405, "MethodNotAllowed", f"{verb} on pods is not supported by the sandbox"
            )
        if resource == "deployments":
            try:
                d = cl.deployment(ns or "", name)
            except NotFound:
                raise not_found(group, resource, name) from None
            if sub == "scale":
                return self._scale(ident, d, verb, body, request)
            if sub == "status" and verb == "get":
                return cl.render_deployment(d)
            if sub:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if verb == "get":
                return cl.render_deployment(d)
            if verb in ("patch", "update"):
                current = cl.render_deployment(d)
                new = self._patched(current, verb, body, request, "Deployment", name)
                return self._apply_deployment(ident, d, new)
            raise ApiError(
                405, "MethodNotAllowed", f"{verb} on deployments is not supported by the sandbox"
            )
        if resource == "replicasets":
            rs = cl.replicasets.get((ns or "", name))
            if rs is None or sub or verb != "get":
                if rs is None:
                    raise not_found(group, resource, name)
                raise ApiError(405, "MethodNotAllowed", "replicasets are read-only in the sandbox")
            return cl.render_rs(rs)
        if resource == "events":
            for ev in cl.events:
                if ev["metadata"]["name"] == name and ev["metadata"]["namespace"] == ns:
                    return events_v1(ev) if group else ev
            raise not_found(group, resource, name)
        if resource == "namespaces":
            if name not in cl.namespaces:
                raise not_found(group, resource, name)
            return cl.render_namespace(name)
        if resource == "serviceaccounts" and sub == "token":
            return self._token_request(ns or "", name, body)
        if resource in ("serviceaccounts", *RBAC_RESOURCES):
            return self._rbac_object(ident, verb, group, resource, ns or "", name, body)
        raise ApiError(405, "MethodNotAllowed", "not supported")

    def _list(self, group: str, resource: str, ns: str | None) -> list[dict[str, Any]]:
        cl = self.sb.cluster
        if resource == "pods":
            return [
                cl.render_pod(p)
                for (pns, _), p in sorted(cl.pods.items())
                if ns is None or pns == ns
            ]
        if resource == "deployments":
            return [
                cl.render_deployment(d)
                for (dns, _), d in sorted(cl.deployments.items())
                if ns is None or dns == ns
            ]
        if resource == "replicasets":
            return [
                cl.render_rs(r)
                for (rns, _), r in sorted(cl.replicasets.items())
                if ns is None or rns == ns
            ]
        if resource == "events":
            evs = [e for e in cl.events if ns is None or e["metadata"]["namespace"] == ns]
            return [events_v1(e) if group else copy.deepcopy(e) for e in evs]
        if resource == "namespaces":
            return [cl.render_namespace(n) for n in sorted(cl.namespaces)]
        store = self.sb.rbac.objects.get(resource)
        if store is not None:
            return [
                copy.deepcopy(o) for (ons, _), o in sorted(store.items()) if ns is None or ons == ns
            ]
        raise ApiError(405, "MethodNotAllowed", "not listable")

    # -- handlers -----------------------------------------------------------------------

    def _patched(
        self, current: dict[str, Any], verb: str, body: Any, request: Request, kind: str, name: str
    ) -> dict[str, Any]:
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be an object")
            return body
        ct = request.headers.get("content-type", "")
        try:
            return patching.apply(ct, current, body)
        except patching.PatchError as exc:
            raise invalid(kind, name, str(exc)) from None
        except ValueError:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got "{ct}")',
            ) from None

    def _apply_deployment(self, ident: Identity, d: Any, new: dict[str, Any]) -> dict[str, Any]:
        cl = self.sb.cluster
        before = copy.deepcopy(d.template)
        meta = new.get("metadata") or {}
        if meta.get("name", d.name) != d.name:
            raise invalid("Deployment", d.name, "metadata.name: Invalid value: field is immutable")
        try:
            change = cl.apply_deployment(d, new)
        except ValueError as exc:
            raise invalid("Deployment", d.name, str(exc)) from None
        self.sb.record_api_change(d, before, change, ident.user)
        return cl.render_deployment(d)

    def _scale(
        self, ident: Identity, d: Any, verb: str, body: Any, request: Request
    ) -> dict[str, Any]:
        cl = self.sb.cluster
        current = cl.render_scale(d)
        if verb == "get":
            return current
        if verb not in ("patch", "update"):
            raise ApiError(405, "MethodNotAllowed", f"{verb} on deployments/scale is not supported")
        new = self._patched(current, verb, body, request, "Scale", d.name)
        replicas = (new.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid(
                "Scale", d.name, "spec.replicas: Invalid value: must be greater than or equal to 0"
            )
        obj = cl.render_deployment(d)
        obj["spec"]["replicas"] = replicas
        self._apply_deployment(ident, d, obj)
        return cl.render_scale(d)

    def _pod_log(self, service: str, pod: str, q: Any) -> Response:
        lines = [ln for ln in self.sb.sim.logs.get(service, []) if ln.pod == pod]
        tail = q.get("tailLines")
        if tail and tail.isdigit():
            lines = lines[-int(tail) :]
        ts = q.get("timestamps") in ("true", "1")
        text = "".join(
            (f"{rfc3339(ln.ts_ns / 1e9)} " if ts else "") + ln.line + "\n" for ln in lines
        )
        limit = q.get("limitBytes")
        if limit and limit.isdigit():
            text = text[: int(limit)]
        return PlainTextResponse(text)

    def _token_request(self, ns: str, sa: str, body: Any) -> dict[str, Any]:
        sb = self.sb
        if (ns, sa) not in sb.rbac.objects["serviceaccounts"]:
            raise not_found("", "serviceaccounts", sa)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a TokenRequest")
        spec = body.get("spec") or {}
        exp = spec.get("expirationSeconds")
        if exp is None:
            exp = 3600
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise ApiError(400, "BadRequest", "spec.expirationSeconds must be an integer")
        if exp < MIN_TOKEN_SECONDS:
            raise invalid(
                "TokenRequest",
                sa,
                "spec.expirationSeconds: Invalid value: "
                + f"{exp}: may not specify a duration less than 10 minutes",
            )
        if exp > MAX_TOKEN_SECONDS:
            raise invalid(
                "TokenRequest",
                sa,
                f"spec.expirationSeconds: Invalid value: {exp}: may not specify a duration larger than 2^32 seconds",
            )
        auds = spec.get("audiences") or []
        if not isinstance(auds, list) or not all(isinstance(a, str) for a in auds):
            raise ApiError(400, "BadRequest", "spec.audiences must be a list of strings")
        bound = spec.get("boundObjectRef")
        if bound:
            kind = bound.get("kind")
            if kind not in ("Pod", "Secret", "Node"):
                raise invalid(
                    "TokenRequest", sa, f'spec.boundObjectRef.kind: Unsupported value: "{kind}"'
                )
            if kind == "Pod":
                p = sb.cluster.pods.get((ns, bound.get("name") or ""))
                if p is None:
                    raise not_found("", "pods", str(bound.get("name")))
                if bound.get("uid") and bound["uid"] != p.uid:
                    raise ApiError(
                        409,
                        "Conflict",
                        f"the UID in the bound object reference ({bound['uid']}) does not match the UID in record ({p.uid})",
                    )
        token, expires, used_auds = sb.rbac.issue(ns, sa, exp, auds, bound)
        out_spec: dict[str, Any] = {"audiences": used_auds, "expirationSeconds": exp}
        if bound:
            out_spec["boundObjectRef"] = bound
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": sa, "namespace": ns, "creationTimestamp": rfc3339(sb.clock.now())},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
        }

    def _rbac_object(
        self,
        ident: Identity,
        verb: str,
        group: str,
        resource: str,
        ns: str,
        name: str | None,
        body: Any,
    ) -> Any:
        sb = self.sb
        store = sb.rbac.objects[resource]
        kind = RESOURCES[(group, resource)][0]
        if verb == "create":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", f"the request body must be a {kind}")
            meta = body.get("metadata") or {}
            oname = meta.get("name") or ""
            if not oname and not meta.get("generateName"):
                raise invalid(
                    kind, "", "metadata.name: Required value: name or generateName is required"
                )
            if oname and not NAME_RE.match(oname):
                raise invalid(
                    kind,
                    oname,
                    f'metadata.name: Invalid value: "{oname}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters',
                )
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            if oname and (ns, oname) in store:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{_gr(group, resource)} "{oname}" already exists',
                    {"name": oname, "group": group, "kind": resource},
                )
            if resource in ("roles", "clusterroles"):
                rules = body.get("rules") or []
                for i, r in enumerate(rules):
                    if not r.get("verbs"):
                        raise invalid(
                            kind,
                            oname,
                            f"rules[{i}].verbs: Required value: verbs must contain at least one value",
                        )
                if not sb.rbac.allowed(
                    ident, "escalate", RBAC_GROUP, resource, "", ns or None, oname
                ) and not sb.rbac.covers(ident, ns or None, rules):
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'{_gr(group, resource)} "{oname}" is forbidden: user "{ident.user}" (groups={ident.groups}) is attempting to grant RBAC permissions not currently held',
                        {"name": oname, "group": group, "kind": resource},
                    )
            if resource in ("rolebindings", "clusterrolebindings"):
                ref = body.get("roleRef") or {}
                if ref.get("kind") not in ("Role", "ClusterRole") or not ref.get("name"):
                    raise invalid(kind, oname, "roleRef: Required value")
                if resource == "clusterrolebindings" and ref.get("kind") == "Role":
                    raise invalid(kind, oname, 'roleRef.kind: Unsupported value: "Role"')
                for i, s in enumerate(body.get("subjects") or []):
                    if s.get("kind") not in ("ServiceAccount", "User", "Group") or not s.get(
                        "name"
                    ):
                        raise invalid(kind, oname, f"subjects[{i}]: Invalid value")
                ref_res = "roles" if ref["kind"] == "Role" else "clusterroles"
                if not sb.rbac.allowed(
                    ident, "bind", RBAC_GROUP, ref_res, "", ns or None, ref["name"]
                ):
                    role = sb.rbac.objects[ref_res].get(
                        (ns if ref_res == "roles" else "", ref["name"])
                    )
                    if role is None or not sb.rbac.covers(
                        ident, ns or None, role.get("rules") or []
                    ):
                        raise ApiError(
                            403,
                            "Forbidden",
                            f'{_gr(group, resource)} "{oname}" is forbidden: user "{ident.user}" (groups={ident.groups}) is attempting to grant RBAC permissions not currently held',
                            {"name": oname, "group": group, "kind": resource},
                        )
            return sb.create_object(resource, ns, body)
        assert name is not None
        obj = store.get((ns, name))
        if obj is None:
            raise not_found(group, resource, name)
        if verb == "get":
            return copy.deepcopy(obj)
        if verb == "delete":
            del store[(ns, name)]
            if resource == "serviceaccounts":
                return obj
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": group,
                    "kind": resource,
                    "uid": obj["metadata"]["uid"],
                },
            }
        raise ApiError(
            405, "MethodNotAllowed", f"{verb} on {resource} is not supported by the sandbox"
        )

    def _ssar(self, ident: Identity, body: Any) -> Response:
        attrs = ((body or {}).get("spec") or {}).get("resourceAttributes") or {}
        with self.sb.lock:
            ok = self.sb.rbac.allowed(
                ident,
                attrs.get("verb", ""),
                attrs.get("group", ""),
                attrs.get("resource", ""),
                attrs.get("subresource", ""),
                attrs.get("namespace") or None,
                attrs.get("name") or None,
            )
        out = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": None},
            "spec": (body or {}).get("spec") or {},
            "status": {"allowed": ok},
        }
        return JSONResponse(out, status_code=201)
