"""The causal model: one tick moves load along the call graph and effects back up it.

Per tick of ``dt`` simulated seconds:

1. Load, callers first: a service's request rate is its entry rate plus, for every
   caller, the caller's rate times the calls it makes per request.
2. Pods: each ready pod takes an equal share. CPU demand = share x CPU per request x
   the revision's CPU factor + idle + any hog; usage is capped at the limit (throttled).
   Utilisation u stretches latency (queueing, 1/(1-u^3)) and past 1 sheds requests
   (503). Memory = base + leak; a leak grows with time, slows the pod (GC) past 70 %
   and OOM-kills it at the limit (restart counted, leak reset, not ready for 2 ticks).
3. Latency and errors, callees first: a service's own latency (its revision's latency
   factor and extra ms, queueing, GC, a slow external dependency, cache misses) plus,
   for each callee, calls x min(callee latency, timeout). A call fails when the callee
   fails or exceeds the caller's timeout (latency is log-normal, sigma 0.5); a failed
   call fails the caller's request with the edge's criticality. Codes: 503 shed,
   500 own or upstream errors, 504 timeouts.
4. Counters, histogram buckets (the log-normal CDF at each bound), per-pod CPU seconds,
   memory, restarts, and log lines whose volume follows what happened.

Everything random comes from one seeded ``random.Random``, so a run is deterministic
given the seed, the scenario and the sequence of API calls.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sentinel_sandbox.cluster import Cluster, Pod, behaviour_key, image_tag
from sentinel_sandbox.topology import Topology

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIGMA = 0.5
CODES = ("200", "500", "503", "504")
LOG_CAP = 4000


@dataclass
class Behaviour:
    """What a revision (image + config) does differently from a healthy one."""

    error_rate: float = 0.0
    latency_factor: float = 1.0
    extra_latency_ms: float = 0.0
    cpu_factor: float = 1.0
    leak_mb_per_min: float = 0.0
    error_message: str = "internal server error"

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Behaviour:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"behaviour: unknown fields {sorted(unknown)}")
        return cls(**raw)


HEALTHY = Behaviour()


@dataclass
class ServiceStats:
    """Cumulative counters and the last tick's view of one service."""

    requests: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CODES, 0.0))
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    duration_sum: float = 0.0
    duration_count: float = 0.0
    rps: float = 0.0
    latency_ms: float = 0.0
    error_ratio: float = 0.0
    own_latency_ms: float = 0.0
    codes_now: dict[str, float] = field(default_factory=dict)
    cpu_utilisation: float = 0.0
    ready_pods: int = 0


@dataclass
class LogLine:
    ts_ns: int
    namespace: str
    service: str
    pod: str
    level: str
    line: str


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _p_exceeds(median_s: float, bound_s: float) -> float:
    if median_s <= 0:
        return 0.0
    return 1.0 - _phi((math.log(bound_s) - math.log(median_s)) / SIGMA)


class Simulation:
    """Runs the causal model over a Cluster's pods for one namespace."""

    def __init__(
        self,
        cluster: Cluster,
        topology: Topology,
        namespace: str,
        rng: random.Random,
        versions: dict[str, dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.cluster = cluster
        self.topo = topology
        self.ns = namespace
        self.rng = rng
        self.t = 0.0  # simulated seconds since boot
        self.ticks = 0
        self.behaviours: dict[str, Behaviour] = {}
        self.versions = {
            svc: {tag: Behaviour.parse(b) for tag, b in tags.items()}
            for svc, tags in (versions or {}).items()
        }
        self.stats = {s: ServiceStats() for s in topology.services}
        self.logs: dict[str, deque[LogLine]] = {s: deque(maxlen=LOG_CAP) for s in topology.services}
        # Fault effects that live outside revisions:
        self.slow_deps: dict[
            str, list[tuple[str, float]]
        ] = {}  # service -> [(dependency, extra ms)]
        self.entry_multiplier = 1.0
        self.cache_poisoned: dict[str, tuple[int, int]] = {}  # cache name -> (poisoned, total)
        self._log_seq = 0

    # -- behaviour lookup -------------------------------------------------------------

    def register(self, template: dict[str, Any], behaviour: Behaviour) -> str:
        key = behaviour_key(template)
        self.behaviours[key] = behaviour
        return key

    def behaviour_of(self, pod: Pod) -> Behaviour:
        rs = self.cluster.replicasets.get((pod.namespace, pod.rs_name))
        if rs is None:
            return HEALTHY
        b = self.behaviours.get(behaviour_key(rs.template))
        if b is not None:
            return b
        return self.versions.get(pod.service, {}).get(image_tag(rs.template), HEALTHY)

    # -- logging ----------------------------------------------------------------------

    def log(self, service: str, pod: str, level: str, msg: str, now: float, **kv: Any) -> None:
        self._log_seq += 1
        ts_ns = int(now * 1e9) + self._log_seq % 1_000_000
        parts = [f"level={level}", f'msg="{msg}"']
        for k, v in kv.items():
            sv = str(v)
            parts.append(f'{k}="{sv}"' if (" " in sv or "=" in sv or not sv) else f"{k}={sv}")
        self.logs[service].append(LogLine(ts_ns, self.ns, service, pod, level, " ".join(parts)))

    # -- one tick ---------------------------------------------------------------------

    def tick(self, dt: float, now: float) -> None:
        """Advance the model by ``dt`` simulated seconds (``now`` stamps logs)."""
        self.t += dt
        self.ticks += 1
        topo = self.topo
        order = topo.order()
        rps: dict[str, float] = {}
        for s in order:
            spec = topo.services[s]
            base = spec.entry_rps * self.entry_multiplier * (1.0 + 0.03 * self.rng.gauss(0, 1))
            rps[s] = max(0.0, base) + sum(rps[e.caller] * e.calls for e in topo.callers(s))
        latency: dict[str, float] = {}  # ms, median
        err: dict[str, float] = {}
        for s in reversed(order):
            latency[s], err[s] = self._service_tick(s, rps[s], latency, err, dt, now)

    def _service_tick(
        self,
        s: str,
        rps: float,
        latency: dict[str, float],
        err: dict[str, float],
        dt: float,
        now: float,
    ) -> tuple[float, float]:
        spec = self.topo.services[s]
        st = self.stats[s]
        pods = self.cluster.pods_of(self.ns, s)
        for p in pods:
            if p.unready_ticks > 0:
                p.unready_ticks -= 1
                if p.unready_ticks == 0:
                    p.resource_version = self.cluster.next_rv()
        ready = [p for p in pods if p.ready]
        st.ready_pods = len(ready)
        own500 = 0.0
        shed = 0.0
        own_lat = 0.0
        util_sum = 0.0
        pod_msgs: list[tuple[Pod, float, str]] = []
        share = rps / len(ready) if ready else 0.0
        for p in pods:
            beh = self.behaviour_of(p)
            if not p.ready:
                p.cpu_now = spec.idle_cpu
                p.cpu_seconds += p.cpu_now * dt
                p.mem_mb = spec.memory_base_mb * 0.5
                continue
            demand = share * spec.cpu_per_request * beh.cpu_factor + spec.idle_cpu + p.hog_cores
            u = demand / spec.cpu_limit
            util_sum += min(u, 1.0)
            p.cpu_now = min(demand, spec.cpu_limit) * (1.0 + 0.02 * self.rng.gauss(0, 1))
            p.cpu_now = max(0.0, p.cpu_now)
            p.cpu_seconds += p.cpu_now * dt
            q = 1.0 / (1.0 - min(u, 0.97) ** 3)
            pod_shed = max(0.0, 1.0 - 1.0 / u) if u > 1.0 else 0.0
            # memory
            p.leak_mb += beh.leak_mb_per_min * dt / 60.0
            p.mem_mb = spec.memory_base_mb + p.leak_mb + 0.05 * share + abs(self.rng.gauss(0, 1.0))
            frac = p.mem_mb / spec.memory_limit_mb
            gc = 1.0 + max(0.0, frac - 0.7) * 4.0
            pod_lat = (spec.base_latency_ms * beh.latency_factor + beh.extra_latency_ms) * q * gc
            own_lat += pod_lat
            own500 += beh.error_rate
            shed += pod_shed
            if beh.error_rate > 0:
                pod_msgs.append((p, beh.error_rate, beh.error_message))
            if pod_shed > 0.01:
                pod_msgs.append((p, pod_shed, "shed"))
            if u > 0.9:
                self._maybe_log(
                    s,
                    p.name,
                    "warn",
                    0.5,
                    now,
                    "cpu throttled",
                    cpu_cores=f"{p.cpu_now:.3f}",
                    limit=spec.cpu_limit,
                )
            if frac > 0.8:
                self._maybe_log(
                    s,
                    p.name,
                    "warn",
                    0.3,
                    now,
                    "heap usage high",
                    heap_mb=int(p.mem_mb),
                    limit_mb=int(spec.memory_limit_mb),
                )
            if p.mem_mb >= spec.memory_limit_mb:
                self._oom(p, spec.memory_limit_mb, now)
        n_ready = len(ready)
        if n_ready:
            own_lat /= n_ready
            own500 /= n_ready
            shed /= n_ready
            st.cpu_utilisation = util_sum / n_ready
        else:
            own_lat = spec.base_latency_ms
            shed = 1.0 if rps > 0 else 0.0
            st.cpu_utilisation = 0.0
        for dep, extra in self.slow_deps.get(s, []):
            own_lat += extra * (1.0 + 0.05 * self.rng.gauss(0, 1))
            self._maybe_log(
                s,
                self._pick(ready),
                "warn",
                0.8,
                now,
                "slow upstream call",
                upstream=dep,
                duration_ms=int(extra),
            )
        if spec.cache:
            poisoned, total = self.cache_poisoned.get(spec.cache, (0, 0))
            pf = poisoned / total if total else 0.0
            if pf > 0:
                own500 = 1.0 - (1.0 - own500) * (1.0 - 0.9 * pf)
                own_lat *= 1.0 + pf
                for _ in range(min(4, max(1, int(pf * 5)))):
                    k = self.rng.randrange(max(poisoned, 1))
                    self.log(
                        s,
                        self._pick(ready),
                        "error",
                        "failed to decode cached cart",
                        now,
                        cache=spec.cache,
                        key=f"cart:session:p{k:05d}",
                        error="invalid character '\\x00' looking for beginning of value",
                    )
        st.own_latency_ms = own_lat
        lat = own_lat
        ok_err = 1.0
        ok_timeout = 1.0
        for e in self.topo.callees(s):
            lc, ec = latency[e.callee], err[e.callee]
            p_to = _p_exceeds(lc / 1000.0, e.timeout_ms / 1000.0)
            lat += e.calls * min(lc, e.timeout_ms)
            fe = 1.0 - (1.0 - ec * e.criticality) ** e.calls
            ft = 1.0 - (1.0 - p_to * e.criticality) ** e.calls
            ok_err *= 1.0 - fe
            ok_timeout *= 1.0 - ft
            if fe > 0.02:
                self._maybe_log(
                    s,
                    self._pick(ready),
                    "error",
                    min(1.0, fe * 3),
                    now,
                    "upstream call failed",
                    callee=e.callee,
                    error=f"rpc error: code = Unavailable desc = {e.callee} returned 500",
                )
            if ft > 0.02:
                self._maybe_log(
                    s,
                    self._pick(ready),
                    "error",
                    min(1.0, ft * 3),
                    now,
                    "upstream call timed out",
                    callee=e.callee,
                    timeout_ms=int(e.timeout_ms),
                    error="rpc error: code = DeadlineExceeded desc = context deadline exceeded",
                )
            elif lc > 0.5 * e.timeout_ms:
                self._maybe_log(
                    s,
                    self._pick(ready),
                    "warn",
                    0.5,
                    now,
                    "slow call",
                    callee=e.callee,
                    duration_ms=int(lc),
                )
        lat *= 1.0 + 0.03 * self.rng.gauss(0, 1)
        lat = max(lat, 0.1)
        f503 = min(1.0, shed)
        rem = 1.0 - f503
        f500 = rem * (1.0 - (1.0 - own500) * ok_err)
        rem2 = rem - f500
        f504 = rem2 * (1.0 - ok_timeout)
        f200 = max(0.0, rem2 - f504)
        n = rps * dt
        fr = {"200": f200, "500": f500, "503": f503, "504": f504}
        for code, f in fr.items():
            st.requests[code] += n * f
        med_s = lat / 1000.0
        for i, b in enumerate(BUCKETS):
            st.buckets[i] += n * _phi((math.log(b) - math.log(med_s)) / SIGMA)
        st.duration_sum += n * med_s * math.exp(SIGMA**2 / 2)
        st.duration_count += n
        st.rps = rps
        st.latency_ms = lat
        st.error_ratio = 1.0 - f200 if n > 0 else 0.0
        st.codes_now = fr
        # logs: an access line per tick, errors in proportion
        if ready and n > 0:
            self.log(
                s,
                self._pick(ready),
                "info",
                "request served",
                now,
                method="GET",
                status=200,
                duration_ms=f"{lat:.1f}",
                rps=f"{rps:.1f}",
            )
        for p, rate, msg in pod_msgs:
            if msg == "shed":
                self._maybe_log(
                    s,
                    p.name,
                    "error",
                    min(1.0, rate * 3),
                    now,
                    "rejecting request: server overloaded",
                    status=503,
                )
            else:
                count = min(4, max(1, int(rate * 10)))
                for _ in range(count):
                    if self.rng.random() < min(1.0, rate * 4):
                        self.log(s, p.name, "error", "request failed", now, status=500, error=msg)
        return lat, 1.0 - f200

    def _pick(self, pods: list[Pod]) -> str:
        return self.rng.choice(pods).name if pods else ""

    def _maybe_log(
        self, s: str, pod: str, level: str, prob: float, now: float, msg: str, **kv: Any
    ) -> None:
        if self.rng.random() < prob:
            self.log(s, pod, level, msg, now, **kv)

    def _oom(self, p: Pod, limit_mb: float, now: float) -> None:
        from sentinel_sandbox.cluster import rfc3339

        p.restarts += 1
        p.leak_mb = 0.0
        p.unready_ticks = 2
        p.mem_mb = 0.0
        p.last_terminated = {
            "exitCode": 137,
            "reason": "OOMKilled",
            "startedAt": rfc3339(p.started_at),
            "finishedAt": rfc3339(now),
            "containerID": f"containerd://{p.uid.replace('-', '')}{p.restarts}",
        }
        p.started_at = now
        p.resource_version = self.cluster.next_rv()
        self.log(
            p.service,
            p.name,
            "error",
            "container killed: out of memory",
            now,
            reason="OOMKilled",
            limit_mb=int(limit_mb),
            restarts=p.restarts,
        )
        self.cluster.event(
            p.namespace,
            "Pod",
            p.name,
            "BackOff",
            f"Back-off restarting failed container {p.service} in pod {p.name}_{p.namespace}({p.uid})",
            type_="Warning",
            uid=p.uid,
        )
        self.cluster.event(
            p.namespace,
            "Pod",
            p.name,
            "OOMKilling",
            f"Memory cgroup out of memory: Killed process (container {p.service}) in pod {p.name}",
            type_="Warning",
            component="kernel-monitor",
            uid=p.uid,
        )

    def reset_counters(self) -> None:
        self.stats = {s: ServiceStats() for s in self.topo.services}
        for q in self.logs.values():
            q.clear()
