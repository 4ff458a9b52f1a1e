"""The Sandbox: one simulated cluster, its clock, tick loop, faults, RBAC, history and cache.

Everything mutable is guarded by ``Sandbox.lock``; the tick thread and the HTTP handlers
take it for each short critical section. Cache reads (Redis I/O) happen outside it.
"""

from __future__ import annotations

import copy
import random
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from sentinel_sandbox import telemetry
from sentinel_sandbox.alerting import Alerting, AlertingConfig
from sentinel_sandbox.cache import CacheStore, MemoryCache, RedisCache
from sentinel_sandbox.cluster import (
    CHANGE_CAUSE,
    RESTARTED_AT,
    Cluster,
    Deployment,
    Pod,
    behaviour_key,
    container_env,
    rfc3339,
)
from sentinel_sandbox.history import History
from sentinel_sandbox.rbac import RBAC_GROUP, Rbac
from sentinel_sandbox.scenario import FaultSpec, Scenario
from sentinel_sandbox.sim import Behaviour, Simulation

SENTINEL_NS = "sentinel"
SENTINEL_SA = "sentinel"
SENTINEL_ACTOR_SA = "sentinel-actor"
STANDING_ROLE = "sentinel-standing"

# What Sentinel's standing identity may do: mint just-in-time credentials, read context.
STANDING_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [RBAC_GROUP],
        "resources": ["roles", "rolebindings"],
        "verbs": ["create", "delete", "get", "list"],
    },
    # Granting a permission it does not hold needs `escalate` (roles) and `bind` (bindings).
    {"apiGroups": [RBAC_GROUP], "resources": ["roles"], "verbs": ["escalate", "bind"]},
    {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
    {
        "apiGroups": [""],
        "resources": ["serviceaccounts"],
        "verbs": ["create", "delete", "get", "list"],
    },
    {
        "apiGroups": [""],
        "resources": ["pods", "pods/log", "events", "namespaces"],
        "verbs": ["get", "list"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "replicasets", "deployments/scale"],
        "verbs": ["get", "list"],
    },
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list"]},
]


class Clock:
    """Wall-clock time plus an offset that tests may advance (token expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def _bump(tag: str) -> str:
    parts = tag.lstrip("v").split(".")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        return f"{tag}-1"
    while len(nums) < 3:
        nums.append(0)
    nums[1] += 1
    nums[2] = 0
    return "v" + ".".join(str(n) for n in nums)


class Sandbox:
    """One simulated cluster built from a scenario."""

    def __init__(
        self,
        scenario: Scenario,
        state_dir: Path,
        *,
        redis_url: str | None = None,
        tick_seconds: float = 1.0,
        admin_token: str | None = None,
        alerting: AlertingConfig | None = None,
    ) -> None:
        self.scenario = scenario
        self.alerting_cfg = alerting or AlertingConfig()
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tick_seconds = tick_seconds
        self.dt = tick_seconds if tick_seconds > 0 else 1.0
        self.lock = threading.RLock()
        self.clock = Clock()
        self.cache: CacheStore = RedisCache(redis_url) if redis_url else MemoryCache()
        self.redis_url = redis_url
        self.admin_token = admin_token or f"sandbox-admin-{secrets.token_hex(24)}"
        self.sentinel_token = f"sandbox-sentinel-{secrets.token_hex(24)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cache_error: str | None = None
        self.alerting: Alerting
        self._build()

    # -- building -----------------------------------------------------------------------

    def _build(self) -> None:
        sc = self.scenario
        rng = random.Random(sc.seed)
        self.rng = rng
        self.cluster = Cluster(rng, self.clock)
        self.cluster.ensure_namespace(sc.namespace, {"environment": sc.environment})
        for ns in ("default", "kube-system", SENTINEL_NS):
            self.cluster.ensure_namespace(ns)
        order = sc.topology.order()
        for name in order:
            self.cluster.create_deployment(sc.namespace, copy.deepcopy(sc.topology.services[name]))
        for p in self.cluster.pods.values():
            p.unready_ticks = 0
        self.cluster.events.clear()
        self.sim = Simulation(self.cluster, sc.topology, sc.namespace, rng, sc.versions)
        # The metrics clock: boot time + simulated seconds (what the scrape store stamps).
        self.boot_wall = time.time()
        old: Alerting | None = getattr(self, "alerting", None)
        if old is not None:
            old.close()
        self.alerting = Alerting(self.alerting_cfg, sc.alert or None)
        repo = self.state_dir / "repo"
        if repo.exists():
            shutil.rmtree(repo)
        self.history = History(repo)
        now = self.clock.now()
        files: dict[str, str] = {}
        for name in order:
            d = self.cluster.deployment(sc.namespace, name)
            c = d.template["spec"]["containers"][0]
            files.update(
                self.history.service_files(name, c["image"], d.replicas, container_env(d.template))
            )
        sha = self.history.commit(
            files,
            f"Initial import of {len(order)} services",
            "Platform Team <platform@example.com>",
            now - 86400,
        )
        for name in order:
            d = self.cluster.deployment(sc.namespace, name)
            image = d.template["spec"]["containers"][0]["image"]
            self.history.record(
                at=rfc3339(now - 86400),
                namespace=sc.namespace,
                service=name,
                deployment=name,
                revision=1,
                change="initial",
                version=image.rsplit(":", 1)[-1],
                image=image,
                author="Platform Team <platform@example.com>",
                message=f"Initial import of {len(order)} services",
                commit=sha,
            )
        self._setup_rbac()
        # Writes through the Kubernetes API (the API server's audit log; /sandbox/audit).
        self.api_audit: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self._fault_specs: dict[int, FaultSpec] = {}
        self.pending = sorted(sc.faults, key=lambda f: f.start)
        try:
            self.cache.clear(sc.cache.key_prefix)
            self.cache.seed(sc.cache.key_prefix, sc.cache.healthy_keys)
            self.cache_error = None
        except Exception as exc:  # a missing Redis must not stop the sandbox
            self.cache_error = f"{type(exc).__name__}: {exc}"
        self._write_files()

    def _setup_rbac(self) -> None:
        self.rbac = Rbac(self.clock)
        self.rbac.bound_object_exists = self._bound_exists
        self.rbac.admin_token(self.admin_token)
        for ns in self.cluster.namespaces:
            self.create_object("serviceaccounts", ns, {"metadata": {"name": "default"}})
        self.create_object("serviceaccounts", SENTINEL_NS, {"metadata": {"name": SENTINEL_SA}})
        self.create_object(
            "serviceaccounts", SENTINEL_NS, {"metadata": {"name": SENTINEL_ACTOR_SA}}
        )
        self.create_object(
            "clusterroles", "", {"metadata": {"name": STANDING_ROLE}, "rules": STANDING_RULES}
        )
        self.create_object(
            "clusterrolebindings",
            "",
            {
                "metadata": {"name": STANDING_ROLE},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": STANDING_ROLE},
                "subjects": [
                    {"kind": "ServiceAccount", "name": SENTINEL_SA, "namespace": SENTINEL_NS}
                ],
            },
        )
        # The standing token: long-lived, like a legacy service-account token Secret.
        self.rbac.issue(SENTINEL_NS, SENTINEL_SA, 0, None, None)
        tok = next(
            t for t, i in self.rbac.tokens.items() if i.identity.sa == (SENTINEL_NS, SENTINEL_SA)
        )
        info = self.rbac.tokens.pop(tok)
        self.rbac.tokens[self.sentinel_token] = info

    def _bound_exists(self, kind: str | None, ns: str, name: str | None, uid: str | None) -> bool:
        if kind == "Pod":
            p = self.cluster.pods.get((ns, name or ""))
            return p is not None and (not uid or p.uid == uid)
        return kind == "Secret"

    def create_object(self, resource: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an RBAC object or ServiceAccount with server-set metadata."""
        kinds = {
            "serviceaccounts": ("v1", "ServiceAccount"),
            "roles": (f"{RBAC_GROUP}/v1", "Role"),
            "rolebindings": (f"{RBAC_GROUP}/v1", "RoleBinding"),
            "clusterroles": (f"{RBAC_GROUP}/v1", "ClusterRole"),
            "clusterrolebindings": (f"{RBAC_GROUP}/v1", "ClusterRoleBinding"),
        }
        api_version, kind = kinds[resource]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
        meta.update(
            {
                "uid": self.cluster.new_uid(),
                "resourceVersion": str(self.cluster.next_rv()),
                "creationTimestamp": rfc3339(self.clock.now()),
            }
        )
        if ns:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        obj["apiVersion"] = api_version
        obj["kind"] = kind
        self.rbac.objects[resource][(ns, meta["name"])] = obj
        return obj

    def _write_files(self) -> None:
        (self.state_dir / "admin.token").write_text(self.admin_token + "\n")
        (self.state_dir / "sentinel.token").write_text(self.sentinel_token + "\n")
        for name in ("admin.token", "sentinel.token"):
            (self.state_dir / name).chmod(0o600)

    def reset(self) -> None:
        """Back to the scenario's boot state (same tokens, scheduled faults re-armed)."""
        with self.lock:
            self.clock.offset = 0.0
            self._build()

    # -- ticking ------------------------------------------------------------------------

    def tick(self, n: int = 1) -> None:
        """Advance the simulation by n ticks of dt simulated seconds."""
        for _ in range(n):
            counts: dict[str, tuple[int, int]] = {}
            try:
                counts[self.scenario.cache.name] = self.cache.count(self.scenario.cache.key_prefix)
                self.cache_error = None
            except Exception as exc:
                self.cache_error = f"{type(exc).__name__}: {exc}"
            with self.lock:
                if counts:
                    self.sim.cache_poisoned.update(counts)
                while self.pending and self.pending[0].start <= self.sim.t:
                    self.inject(self.pending.pop(0))
                self.sim.tick(self.dt, self.clock.now())
                self._update_faults()
                self.alerting.on_tick(self.metrics_now(), lambda: telemetry.samples(self.sim))

    def metrics_now(self) -> float:
        """The metrics clock: boot time plus simulated seconds (≈ wall time when ticking live)."""
        return self.boot_wall + self.sim.t

    def start(self) -> None:
        if self.tick_seconds <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sandbox-tick", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.alerting.close()

    def _loop(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            nxt += self.tick_seconds
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    # -- faults -------------------------------------------------------------------------

    def inject(self, f: FaultSpec) -> dict[str, Any]:
        """Apply a fault now; returns its record."""
        with self.lock:
            ns = self.scenario.namespace
            if f.target not in self.scenario.topology.services:
                raise ValueError(f"unknown service {f.target!r}")
            rec: dict[str, Any] = {
                "id": len(self.faults) + 1,
                "kind": f.kind,
                "target": f.target,
                "size": f.size,
                "started_at": rfc3339(self.clock.now()),
                "started_sim_t": round(self.sim.t, 3),
                "status": "active",
                "healed_at": None,
                "details": {},
            }
            if f.kind in ("bad_deploy", "memory_leak", "bad_config"):
                d = self.cluster.deployment(ns, f.target)
                tmpl = copy.deepcopy(d.template)
                c = tmpl["spec"]["containers"][0]
                repo, _, tag = c["image"].rpartition(":")
                if f.kind == "bad_config":
                    if not f.config:
                        raise ValueError("bad_config needs config: {KEY: value}")
                    env = container_env(tmpl)
                    old = {k: env.get(k) for k in f.config}
                    env.update(f.config)
                    c["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
                    beh = Behaviour(
                        error_rate=f.size,
                        latency_factor=1.5,
                        error_message=f.error_message
                        or "upstream call failed: context deadline exceeded ("
                        + ", ".join(f"{k}={v}" for k, v in f.config.items())
                        + ")",
                    )
                    change = "config"
                    desc = ", ".join(f"{k} {old[k]} -> {v}" for k, v in f.config.items())
                    message = f.message or f"{f.target}: change config {desc}"
                    rec["details"]["config"] = dict(f.config)
                else:
                    new_tag = f.version or _bump(tag)
                    c["image"] = f"{repo}:{new_tag}"
                    if f.kind == "bad_deploy":
                        beh = Behaviour(
                            error_rate=f.size,
                            error_message=f.error_message
                            or f"panic: runtime error: invalid memory address or nil pointer dereference ({f.target} {new_tag})",
                        )
                    else:
                        beh = Behaviour(leak_mb_per_min=f.size)
                    change = "image"
                    message = f.message or f"{f.target}: deploy {new_tag}"
                    rec["details"]["version"] = new_tag
                rec["details"]["behaviour_key"] = self.sim.register(tmpl, beh)
                result = self.deploy(d, tmpl, author=f.author, message=message, change=change)
                rec["details"]["revision"] = result["revision"]
                rec["details"]["commit"] = result["commit"]
            elif f.kind == "cpu_hog":
                pods = self.cluster.pods_of(ns, f.target)
                if not pods:
                    raise ValueError(f"{f.target} has no pods")
                pod = self._pick_pod(pods, f.pod)
                pod.hog_cores = f.size
                rec["details"]["pod"] = pod.name
                self.sim.log(
                    f.target,
                    pod.name,
                    "warn",
                    "background job started",
                    self.clock.now(),
                    job="reindex-catalog",
                    threads=8,
                )
            elif f.kind == "cache_poison":
                spec = self.scenario.topology.services[f.target]
                if not spec.cache:
                    raise ValueError(f"{f.target} reads no cache")
                n = self.cache.poison(self.scenario.cache.key_prefix, int(f.size))
                self.sim.cache_poisoned[spec.cache] = self.cache.count(
                    self.scenario.cache.key_prefix
                )
                rec["details"].update(
                    {"cache": spec.cache, "keys": n, "key_prefix": self.scenario.cache.key_prefix}
                )
            elif f.kind == "slow_dependency":
                dep = f.dependency or f"{f.target}-upstream.example.com"
                self.sim.slow_deps.setdefault(f.target, []).append((dep, f.size))
                rec["details"].update({"dependency": dep, "extra_ms": f.size})
            elif f.kind == "traffic_spike":
                self.sim.entry_multiplier *= f.size
                rec["details"]["multiplier"] = f.size
            else:
                raise ValueError(f"unknown fault kind {f.kind!r}")
            if f.duration:
                rec["details"]["until_sim_t"] = self.sim.t + f.duration
            self.faults.append(rec)
            self._fault_specs[rec["id"]] = f
            return rec

    def _pick_pod(self, pods: list[Pod], which: str | int | None) -> Pod:
        if isinstance(which, str):
            for p in pods:
                if p.name == which:
                    return p
            raise ValueError(f"no pod {which!r}")
        return pods[(which or 0) % len(pods)]

    def clear_fault(self, fid: int) -> dict[str, Any]:
        """End a fault whose effect lives outside revisions (hog, slow dependency, spike)."""
        with self.lock:
            rec = next((r for r in self.faults if r["id"] == fid), None)
            if rec is None:
                raise KeyError(fid)
            if rec["status"] == "active":
                self._end(rec, "cleared")
            return rec

    def _end(self, rec: dict[str, Any], status: str) -> None:
        kind = rec["kind"]
        if kind == "slow_dependency":
            lst = self.sim.slow_deps.get(rec["target"], [])
            item = (rec["details"]["dependency"], rec["details"]["extra_ms"])
            if item in lst:
                lst.remove(item)
        elif kind == "traffic_spike":
            self.sim.entry_multiplier /= rec["details"]["multiplier"]
        elif kind == "cpu_hog":
            p = self.cluster.pods.get((self.scenario.namespace, rec["details"]["pod"]))
            if p is not None:
                p.hog_cores = 0.0
        elif kind == "cache_poison":
            self.cache.clear(f"{self.scenario.cache.key_prefix}session:p")
        elif kind in ("bad_deploy", "memory_leak", "bad_config") and status == "cleared":
            raise ValueError("a deploy fault is healed by rolling back, not by clearing")
        rec["status"] = status
        rec["healed_at"] = rfc3339(self.clock.now())

    def _update_faults(self) -> None:
        ns = self.scenario.namespace
        for rec in self.faults:
            if rec["status"] != "active":
                continue
            until = rec["details"].get("until_sim_t")
            if until is not None and self.sim.t >= until:
                self._end(rec, "expired")
                continue
            kind = rec["kind"]
            healed = False
            if kind in ("bad_deploy", "memory_leak", "bad_config"):
                d = self.cluster.deployment(ns, rec["target"])
                healed = behaviour_key(d.template) != rec["details"]["behaviour_key"]
            elif kind == "cpu_hog":
                healed = (ns, rec["details"]["pod"]) not in self.cluster.pods
            elif kind == "cache_poison":
                poisoned, _ = self.sim.cache_poisoned.get(rec["details"]["cache"], (0, 0))
                healed = poisoned == 0
            if healed:
                rec["status"] = "healed"
                rec["healed_at"] = rfc3339(self.clock.now())

    # -- deploys ------------------------------------------------------------------------

    def deploy(
        self, d: Deployment, template: dict[str, Any], *, author: str, message: str, change: str
    ) -> dict[str, Any]:
        """A developer's deploy: new template, one git commit, one deploy record."""
        with self.lock:
            obj = self.cluster.render_deployment(d)
            obj["spec"]["template"] = template
            obj["metadata"]["annotations"][CHANGE_CAUSE] = message
            result = self.cluster.apply_deployment(d, obj)
            c = d.template["spec"]["containers"][0]
            now = self.clock.now()
            sha = self.history.commit(
                self.history.service_files(
                    d.name, c["image"], d.replicas, container_env(d.template)
                ),
                message,
                author,
                now,
            )
            self.history.record(
                at=rfc3339(now),
                namespace=d.namespace,
                service=d.name,
                deployment=d.name,
                revision=result["revision"],
                change=change,
                version=c["image"].rsplit(":", 1)[-1],
                image=c["image"],
                author=author,
                message=message,
                commit=sha,
            )
            return {"revision": result["revision"], "commit": sha}

    def record_api_change(
        self, d: Deployment, before: dict[str, Any], change: dict[str, Any], actor: str
    ) -> None:
        """History for a change made through the Kubernetes API (remediations)."""
        now = rfc3339(self.clock.now())
        c = d.template["spec"]["containers"][0]
        common = {
            "at": now,
            "namespace": d.namespace,
            "service": d.name,
            "deployment": d.name,
            "version": c["image"].rsplit(":", 1)[-1],
            "image": c["image"],
            "author": actor,
            "commit": None,
        }
        if change.get("kind") == "rollback":
            self.history.record(
                revision=change["revision"],
                change="rollback",
                message=f"rolled back to the template of revision {change['from_revision']} (now revision {change['revision']})",
                details={"from_revision": change["from_revision"]},
                **common,
            )
        elif change.get("template_changed"):
            b_ann = (before.get("metadata") or {}).get("annotations") or {}
            a_ann = (d.template.get("metadata") or {}).get("annotations") or {}
            if behaviour_key(before) == behaviour_key(d.template) and b_ann.get(
                RESTARTED_AT
            ) != a_ann.get(RESTARTED_AT):
                kind, msg = "restart", f"rollout restart at {a_ann.get(RESTARTED_AT)}"
            elif container_env(before) != container_env(d.template):
                kind, msg = "config", "config changed through the API"
            else:
                kind, msg = "image", f"image set to {c['image']}"
            self.history.record(
                revision=change.get("revision")
                or int(d.annotations.get("deployment.kubernetes.io/revision", "0")),
                change=kind,
                message=msg,
                **common,
            )
        if change.get("scale_changed"):
            self.history.record(
                revision=int(d.annotations.get("deployment.kubernetes.io/revision", "0")),
                change="scale",
                message=f"scaled from {change['old_replicas']} to {d.replicas} replicas",
                details={"from": change["old_replicas"], "to": d.replicas},
                **common,
            )

    # -- views --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything a test or the demo wants to see at once."""
        with self.lock:
            ns = self.scenario.namespace
            services: dict[str, Any] = {}
            for s in self.scenario.topology.order():
                st = self.sim.stats[s]
                d = self.cluster.deployment(ns, s)
                c = d.template["spec"]["containers"][0]
                services[s] = {
                    "rps": round(st.rps, 3),
                    "latency_ms": round(st.latency_ms, 3),
                    "own_latency_ms": round(st.own_latency_ms, 3),
                    "error_ratio": round(st.error_ratio, 5),
                    "codes": {k: round(v, 5) for k, v in st.codes_now.items()},
                    "cpu_utilisation": round(st.cpu_utilisation, 4),
                    "ready_pods": st.ready_pods,
                    "replicas": d.replicas,
                    "revision": int(d.annotations.get("deployment.kubernetes.io/revision", "0")),
                    "image": c["image"],
                    "env": container_env(d.template),
                    "pods": [
                        {
                            "name": p.name,
                            "ready": p.ready,
                            "restarts": p.restarts,
                            "cpu_cores": round(p.cpu_now, 4),
                            "memory_mb": round(p.mem_mb, 2),
                            "hog_cores": p.hog_cores,
                            "revision": self.cluster.rs_of_pod(p).revision,
                        }
                        for p in self.cluster.pods_of(ns, s)
                    ],
                }
            return {
                "scenario": self.scenario.name,
                "namespace": ns,
                "environment": self.scenario.environment,
                "sim_time": round(self.sim.t, 3),
                "ticks": self.sim.ticks,
                "tick_seconds": self.tick_seconds,
                "services": services,
                "edges": [[e.caller, e.callee] for e in self.scenario.topology.edges],
                "faults": copy.deepcopy(self.faults),
                "pending_faults": [
                    {"kind": f.kind, "target": f.target, "start": f.start} for f in self.pending
                ],
                "cache": {
                    "name": self.scenario.cache.name,
                    "backend": "redis" if self.redis_url else "memory",
                    "key_prefix": self.scenario.cache.key_prefix,
                    "poisoned_keys": self.sim.cache_poisoned.get(self.scenario.cache.name, (0, 0))[
                        0
                    ],
                    "total_keys": self.sim.cache_poisoned.get(self.scenario.cache.name, (0, 0))[1],
                    "error": self.cache_error,
                },
                "files": {
                    "admin_token": str(self.state_dir / "admin.token"),
                    "sentinel_token": str(self.state_dir / "sentinel.token"),
                    "repo": str(self.state_dir / "repo"),
                },
            }
