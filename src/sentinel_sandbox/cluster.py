"""Deployments, ReplicaSets, pods and events, and the deployment controller that links them.

The controller follows Kubernetes' rules where Sentinel can observe them: a change to a
Deployment's pod template selects (or creates) the ReplicaSet whose template hash matches,
gives it the next revision number (a re-used ReplicaSet keeps its older numbers in the
``deployment.kubernetes.io/revision-history`` annotation, as ``kubectl rollout undo``
shows on a real cluster), scales it to the Deployment's replicas and every other
ReplicaSet to zero. A deleted pod is replaced by its ReplicaSet with a new name.
Pods roll over at once (no surge/unavailability budget): the sandbox favours
observability over rollout realism.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sentinel_sandbox.topology import ServiceSpec

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "pod-template-hash"
REVISION_HISTORY_LIMIT = 10
NODES = ("node-a", "node-b", "node-c")


def rfc3339(ts: float) -> str:
    """Kubernetes' time format (seconds precision, Z)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def template_hash(template: dict[str, Any]) -> str:
    """A stable pod-template-hash (the template without its own hash label)."""
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    n = int.from_bytes(hashlib.sha256(_canonical(t)).digest()[:4], "big")
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in str(n))


def behaviour_key(template: dict[str, Any]) -> str:
    """What decides a pod's behaviour: each container's image and environment, nothing else."""
    parts = []
    for c in (template.get("spec") or {}).get("containers") or []:
        env = sorted((e.get("name"), e.get("value")) for e in c.get("env") or [])
        parts.append([c.get("name"), c.get("image"), env])
    return hashlib.sha256(_canonical(parts)).hexdigest()[:16]


def image_tag(template: dict[str, Any]) -> str:
    cs = (template.get("spec") or {}).get("containers") or [{}]
    image = str(cs[0].get("image") or "")
    return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"


def container_env(template: dict[str, Any]) -> dict[str, str]:
    cs = (template.get("spec") or {}).get("containers") or [{}]
    return {str(e.get("name")): str(e.get("value")) for e in cs[0].get("env") or []}


@dataclass
class Pod:
    name: str
    namespace: str
    service: str
    rs_name: str
    template_hash: str
    uid: str
    created_at: float
    node: str
    ip: str
    restarts: int = 0
    leak_mb: float = 0.0
    hog_cores: float = 0.0
    unready_ticks: int = 1
    last_terminated: dict[str, Any] | None = None
    started_at: float = 0.0
    cpu_seconds: float = 0.0
    cpu_now: float = 0.0
    mem_mb: float = 0.0
    resource_version: int = 0

    @property
    def ready(self) -> bool:
        return self.unready_ticks <= 0


@dataclass
class ReplicaSet:
    name: str
    namespace: str
    deployment: str
    uid: str
    template: dict[str, Any]
    hash: str
    revision: int
    created_at: float
    replicas: int = 0
    revision_history: list[int] = field(default_factory=list)
    resource_version: int = 0
    change_cause: str | None = None


@dataclass
class Deployment:
    name: str
    namespace: str
    uid: str
    created_at: float
    labels: dict[str, str]
    annotations: dict[str, str]
    replicas: int
    template: dict[str, Any]
    selector: dict[str, Any]
    generation: int = 1
    current_rs: str = ""
    resource_version: int = 0
    extra_spec: dict[str, Any] = field(default_factory=dict)


class NotFound(KeyError):
    """No such object."""


class Cluster:
    """The objects of one simulated cluster and the controllers that keep them consistent."""

    def __init__(self, rng: random.Random, clock: Any) -> None:
        self.rng = rng
        self.clock = clock
        self.rv = 1
        self.namespaces: dict[str, dict[str, str]] = {}
        self.namespace_meta: dict[str, tuple[str, float]] = {}
        self.deployments: dict[tuple[str, str], Deployment] = {}
        self.replicasets: dict[tuple[str, str], ReplicaSet] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.events: list[dict[str, Any]] = []
        self.services: dict[tuple[str, str], ServiceSpec] = {}

    # -- helpers ------------------------------------------------------------------------

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def new_uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ensure_namespace(self, ns: str, labels: dict[str, str] | None = None) -> None:
        if ns not in self.namespaces:
            self.namespaces[ns] = {"kubernetes.io/metadata.name": ns, **(labels or {})}
            self.namespace_meta[ns] = (self.new_uid(), self.clock.now())

    def event(
        self,
        ns: str,
        kind: str,
        name: str,
        reason: str,
        message: str,
        *,
        type_: str = "Normal",
        component: str = "kubelet",
        uid: str = "",
        api_version: str = "v1",
    ) -> None:
        """Record an event; a repeat of the same one bumps its count (as the recorder does)."""
        now = self.clock.now()
        for ev in reversed(self.events[-50:]):
            io = ev["involvedObject"]
            if (
                io["name"] == name
                and io["kind"] == kind
                and ev["reason"] == reason
                and ev["message"] == message
                and ev["metadata"]["namespace"] == ns
            ):
                ev["count"] += 1
                ev["lastTimestamp"] = rfc3339(now)
                ev["metadata"]["resourceVersion"] = str(self.next_rv())
                return
        suffix = f"{int(now * 1e9):x}"[-16:]
        self.events.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{name}.{suffix}{len(self.events):04x}",
                    "namespace": ns,
                    "uid": self.new_uid(),
                    "resourceVersion": str(self.next_rv()),
                    "creationTimestamp": rfc3339(now),
                },
                "involvedObject": {
                    "apiVersion": api_version,
                    "kind": kind,
                    "name": name,
                    "namespace": ns,
                    "uid": uid,
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": rfc3339(now),
                "lastTimestamp": rfc3339(now),
                "source": {"component": component},
                "reportingComponent": component,
                "reportingInstance": "",
            }
        )
        if len(self.events) > 2000:
            del self.events[:500]

    # -- deployments ----------------------------------------------------------------------

    def create_deployment(self, ns: str, spec: ServiceSpec) -> Deployment:
        """A Deployment for a service (revision 1) with its pods."""
        self.ensure_namespace(ns)
        labels = {"app": spec.name}
        container: dict[str, Any] = {
            "name": spec.name,
            "image": f"{spec.image}:{spec.version}",
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": spec.port, "name": "http", "protocol": "TCP"}],
            "resources": {
                "limits": {
                    "cpu": f"{int(spec.cpu_limit * 1000)}m",
                    "memory": f"{int(spec.memory_limit_mb)}Mi",
                },
                "requests": {
                    "cpu": f"{int(spec.cpu_limit * 500)}m",
                    "memory": f"{int(spec.memory_base_mb)}Mi",
                },
            },
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
        if spec.config:
            container["env"] = [
                {"name": k, "value": str(v)} for k, v in sorted(spec.config.items())
            ]
        template = {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "containers": [container],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler",
            },
        }
        d = Deployment(
            name=spec.name,
            namespace=ns,
            uid=self.new_uid(),
            created_at=self.clock.now(),
            labels=dict(labels),
            annotations={},
            replicas=spec.replicas,
            template=template,
            selector={"matchLabels": dict(labels)},
        )
        self.deployments[(ns, spec.name)] = d
        self.services[(ns, spec.name)] = spec
        self.sync(d)
        return d

    def deployment(self, ns: str, name: str) -> Deployment:
        try:
            return self.deployments[(ns, name)]
        except KeyError:
            raise NotFound(name) from None

    def replicasets_of(self, d: Deployment) -> list[ReplicaSet]:
        return sorted(
            (
                rs
                for rs in self.replicasets.values()
                if rs.namespace == d.namespace and rs.deployment == d.name
            ),
            key=lambda r: r.revision,
        )

    def pods_of_rs(self, rs: ReplicaSet) -> list[Pod]:
        return sorted(
            (p for p in self.pods.values() if p.namespace == rs.namespace and p.rs_name == rs.name),
            key=lambda p: (p.created_at, p.name),
        )

    def pods_of(self, ns: str, service: str) -> list[Pod]:
        return sorted(
            (p for p in self.pods.values() if p.namespace == ns and p.service == service),
            key=lambda p: p.name,
        )

    def rs_of_pod(self, p: Pod) -> ReplicaSet:
        return self.replicasets[(p.namespace, p.rs_name)]

    def revision_template(self, ns: str, name: str, revision: int) -> dict[str, Any] | None:
        d = self.deployment(ns, name)
        for rs in self.replicasets_of(d):
            if rs.revision == revision:
                return rs.template
        return None

    def sync(self, d: Deployment) -> dict[str, Any]:
        """Run the deployment controller once; returns what changed (for history)."""
        h = template_hash(d.template)
        rss = self.replicasets_of(d)
        active = next((rs for rs in rss if rs.hash == h), None)
        max_rev = max((rs.revision for rs in rss), default=0)
        change: dict[str, Any] = {"kind": "none", "revision": None}
        if active is None:
            tmpl = copy.deepcopy(d.template)
            tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
            cause = d.annotations.get(CHANGE_CAUSE)
            active = ReplicaSet(
                name=f"{d.name}-{h}",
                namespace=d.namespace,
                deployment=d.name,
                uid=self.new_uid(),
                template=tmpl,
                hash=h,
                revision=max_rev + 1,
                created_at=self.clock.now(),
                resource_version=self.next_rv(),
                change_cause=cause,
            )
            self.replicasets[(d.namespace, active.name)] = active
            change = {"kind": "new_revision", "revision": active.revision}
        elif active.name != d.current_rs:
            if d.current_rs:  # re-used: an older revision becomes the newest (a rollback)
                active.revision_history.append(active.revision)
                old = active.revision
                active.revision = max_rev + 1
                change = {"kind": "rollback", "revision": active.revision, "from_revision": old}
            active.resource_version = self.next_rv()
        d.current_rs = active.name
        d.annotations[REVISION] = str(active.revision)
        for rs in self.replicasets_of(d):
            want = d.replicas if rs is active else 0
            if rs.replicas != want:
                verb = "up" if want > rs.replicas else "down"
                self.event(
                    d.namespace,
                    "Deployment",
                    d.name,
                    "ScalingReplicaSet",
                    f"Scaled {verb} replica set {rs.name} from {rs.replicas} to {want}",
                    component="deployment-controller",
                    uid=d.uid,
                    api_version="apps/v1",
                )
                rs.replicas = want
                rs.resource_version = self.next_rv()
            self._sync_pods(rs)
        # revisionHistoryLimit: drop the oldest idle ReplicaSets.
        idle = [rs for rs in self.replicasets_of(d) if rs.replicas == 0 and rs is not active]
        while len(idle) > REVISION_HISTORY_LIMIT:
            gone = idle.pop(0)
            del self.replicasets[(gone.namespace, gone.name)]
        return change

    def _sync_pods(self, rs: ReplicaSet) -> None:
        pods = self.pods_of_rs(rs)
        while len(pods) < rs.replicas:
            pods.append(self._create_pod(rs))
        while len(pods) > rs.replicas:
            p = pods.pop()  # newest first, as the ReplicaSet controller prefers
            self._remove_pod(p)
            self.event(
                rs.namespace,
                "ReplicaSet",
                rs.name,
                "SuccessfulDelete",
                f"Deleted pod: {p.name}",
                component="replicaset-controller",
                uid=rs.uid,
                api_version="apps/v1",
            )

    def _create_pod(self, rs: ReplicaSet) -> Pod:
        while True:
            suffix = "".join(self.rng.choice(SAFE_ALPHABET) for _ in range(5))
            name = f"{rs.name}-{suffix}"
            if (rs.namespace, name) not in self.pods:
                break
        now = self.clock.now()
        p = Pod(
            name=name,
            namespace=rs.namespace,
            service=rs.deployment,
            rs_name=rs.name,
            template_hash=rs.hash,
            uid=self.new_uid(),
            created_at=now,
            started_at=now,
            node=self.rng.choice(NODES),
            ip=f"10.244.{self.rng.randint(0, 3)}.{self.rng.randint(2, 254)}",
            resource_version=self.next_rv(),
        )
        self.pods[(p.namespace, p.name)] = p
        self.event(
            rs.namespace,
            "ReplicaSet",
            rs.name,
            "SuccessfulCreate",
            f"Created pod: {name}",
            component="replicaset-controller",
            uid=rs.uid,
            api_version="apps/v1",
        )
        self.event(
            p.namespace,
            "Pod",
            name,
            "Scheduled",
            f"Successfully assigned {p.namespace}/{name} to {p.node}",
            component="default-scheduler",
            uid=p.uid,
        )
        image = rs.template["spec"]["containers"][0]["image"]
        self.event(
            p.namespace,
            "Pod",
            name,
            "Pulled",
            f'Container image "{image}" already present on machine',
            uid=p.uid,
        )
        self.event(p.namespace, "Pod", name, "Started", f"Started container {p.service}", uid=p.uid)
        return p

    def _remove_pod(self, p: Pod) -> None:
        self.pods.pop((p.namespace, p.name), None)
        self.event(
            p.namespace,
            "Pod",
            p.name,
            "Killing",
            f"Stopping container {p.service}",
            uid=p.uid,
        )

    def delete_pod(self, ns: str, name: str) -> Pod:
        """Delete a pod; its ReplicaSet creates a replacement with a new name at once."""
        p = self.pods.get((ns, name))
        if p is None:
            raise NotFound(name)
        self._remove_pod(p)
        rs = self.replicasets.get((ns, p.rs_name))
        if rs is not None:
            self._sync_pods(rs)
        return p

    # -- rendering ------------------------------------------------------------------------

    def owner_ref(self, kind: str, name: str, uid: str) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": kind,
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def render_pod(self, p: Pod, deleting: bool = False) -> dict[str, Any]:
        rs = self.replicasets.get((p.namespace, p.rs_name))
        tmpl = copy.deepcopy(rs.template) if rs else {"metadata": {}, "spec": {"containers": []}}
        spec = tmpl.get("spec", {})
        spec["nodeName"] = p.node
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", "default")
        created = rfc3339(p.created_at)
        started = rfc3339(p.started_at)
        containers = spec.get("containers") or []
        statuses = []
        for c in containers:
            cs: dict[str, Any] = {
                "name": c["name"],
                "image": c["image"],
                "imageID": f"{c['image'].rsplit(':', 1)[0]}@sha256:{hashlib.sha256(c['image'].encode()).hexdigest()}",
                "containerID": f"containerd://{hashlib.sha256((p.uid + str(p.restarts)).encode()).hexdigest()}",
                "ready": p.ready,
                "started": p.ready,
                "restartCount": p.restarts,
                "state": {"running": {"startedAt": started}},
                "lastState": {},
            }
            if p.last_terminated:
                cs["lastState"] = {"terminated": dict(p.last_terminated)}
            statuses.append(cs)
        cond = "True" if p.ready else "False"
        meta: dict[str, Any] = {
            "name": p.name,
            "generateName": f"{p.rs_name}-",
            "namespace": p.namespace,
            "uid": p.uid,
            "resourceVersion": str(p.resource_version),
            "creationTimestamp": created,
            "labels": dict(tmpl.get("metadata", {}).get("labels") or {}),
            "ownerReferences": [self.owner_ref("ReplicaSet", p.rs_name, rs.uid if rs else "")],
        }
        annotations = tmpl.get("metadata", {}).get("annotations")
        if annotations:
            meta["annotations"] = dict(annotations)
        if deleting:
            meta["deletionTimestamp"] = rfc3339(self.clock.now() + 30)
            meta["deletionGracePeriodSeconds"] = 30
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": created},
                    {"type": "ContainersReady", "status": cond, "lastTransitionTime": started},
                    {"type": "Ready", "status": cond, "lastTransitionTime": started},
                ],
                "hostIP": f"192.168.0.{NODES.index(p.node) + 10}",
                "podIP": p.ip,
                "podIPs": [{"ip": p.ip}],
                "startTime": created,
                "qosClass": "Burstable",
                "containerStatuses": statuses,
            },
        }

    def render_rs(self, rs: ReplicaSet) -> dict[str, Any]:
        d = self.deployments.get((rs.namespace, rs.deployment))
        pods = self.pods_of_rs(rs)
        ready = sum(1 for p in pods if p.ready)
        ann = {REVISION: str(rs.revision)}
        if rs.change_cause:
            ann[CHANGE_CAUSE] = rs.change_cause
        if rs.revision_history:
            ann[REVISION_HISTORY] = ",".join(str(r) for r in rs.revision_history)
        if d is not None:
            ann["deployment.kubernetes.io/desired-replicas"] = str(d.replicas)
            ann["deployment.kubernetes.io/max-replicas"] = str(d.replicas + 1)
        labels = dict(rs.template.get("metadata", {}).get("labels") or {})
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs.name,
                "namespace": rs.namespace,
                "uid": rs.uid,
                "resourceVersion": str(rs.resource_version),
                "generation": 1,
                "creationTimestamp": rfc3339(rs.created_at),
                "labels": labels,
                "annotations": ann,
                "ownerReferences": [
                    self.owner_ref("Deployment", rs.deployment, d.uid if d else "")
                ],
            },
            "spec": {
                "replicas": rs.replicas,
                "selector": {
                    "matchLabels": {k: v for k, v in labels.items() if k in ("app", HASH_LABEL)}
                },
                "template": copy.deepcopy(rs.template),
            },
            "status": {
                "replicas": len(pods),
                "fullyLabeledReplicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "observedGeneration": 1,
            },
        }

    def render_deployment(self, d: Deployment) -> dict[str, Any]:
        pods = [p for rs in self.replicasets_of(d) for p in self.pods_of_rs(rs)]
        updated = [p for p in pods if p.rs_name == d.current_rs]
        ready = sum(1 for p in pods if p.ready)
        now = rfc3339(self.clock.now())
        available = ready >= max(1, d.replicas - max(1, d.replicas // 4)) or d.replicas == 0
        spec: dict[str, Any] = {
            "replicas": d.replicas,
            "selector": copy.deepcopy(d.selector),
            "template": copy.deepcopy(d.template),
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": 600,
        }
        spec.update(copy.deepcopy(d.extra_spec))
        status: dict[str, Any] = {
            "observedGeneration": d.generation,
            "replicas": len(pods),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable"
                    if available
                    else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{d.current_rs}" has successfully progressed.',
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ],
        }
        if len(pods) - ready:
            status["unavailableReplicas"] = len(pods) - ready
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": d.name,
                "namespace": d.namespace,
                "uid": d.uid,
                "resourceVersion": str(d.resource_version),
                "generation": d.generation,
                "creationTimestamp": rfc3339(d.created_at),
                "labels": dict(d.labels),
                "annotations": dict(d.annotations),
            },
            "spec": spec,
            "status": status,
        }

    def render_scale(self, d: Deployment) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": d.name,
                "namespace": d.namespace,
                "uid": d.uid,
                "resourceVersion": str(d.resource_version),
                "creationTimestamp": rfc3339(d.created_at),
            },
            "spec": {"replicas": d.replicas},
            "status": {
                "replicas": len(
                    [
                        p
                        for p in self.pods.values()
                        if p.namespace == d.namespace and p.service == d.name
                    ]
                ),
                "selector": ",".join(
                    f"{k}={v}" for k, v in sorted(d.selector.get("matchLabels", {}).items())
                ),
            },
        }

    def render_namespace(self, ns: str) -> dict[str, Any]:
        uid, created = self.namespace_meta[ns]
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "uid": uid,
                "resourceVersion": "1",
                "creationTimestamp": rfc3339(created),
                "labels": dict(self.namespaces[ns]),
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    # -- updates from the API --------------------------------------------------------------

    def apply_deployment(self, d: Deployment, new: dict[str, Any]) -> dict[str, Any]:
        """Apply a full (patched) Deployment object; returns what the controller did."""
        spec = new.get("spec") or {}
        meta = new.get("metadata") or {}
        template = spec.get("template")
        if not isinstance(template, dict) or not (template.get("spec") or {}).get("containers"):
            raise ValueError("spec.template.spec.containers: Required value")
        replicas = spec.get("replicas", d.replicas)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ValueError("spec.replicas: Invalid value: must be greater than or equal to 0")
        tl = (template.get("metadata") or {}).get("labels") or {}
        sel = (spec.get("selector") or d.selector).get("matchLabels") or {}
        if any(tl.get(k) != v for k, v in sel.items()):
            raise ValueError(
                "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`"
            )
        if (spec.get("selector") or d.selector) != d.selector:
            raise ValueError("spec.selector: Invalid value: field is immutable")
        template_changed = template_hash(template) != template_hash(d.template)
        scale_changed = replicas != d.replicas
        d.labels = dict(meta.get("labels") or {})
        ann = dict(meta.get("annotations") or {})
        ann[REVISION] = d.annotations.get(REVISION, "1")
        d.annotations = ann
        d.extra_spec = {
            k: v
            for k, v in spec.items()
            if k
            not in (
                "replicas",
                "selector",
                "template",
                "strategy",
                "revisionHistoryLimit",
                "progressDeadlineSeconds",
            )
        }
        old_replicas = d.replicas
        d.template = copy.deepcopy(template)
        d.template.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
        d.replicas = replicas
        if template_changed or scale_changed:
            d.generation += 1
        d.resource_version = self.next_rv()
        change = self.sync(d)
        change["template_changed"] = template_changed
        change["scale_changed"] = scale_changed
        change["old_replicas"] = old_replicas
        return change
