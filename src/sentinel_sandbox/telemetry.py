"""Prometheus text exposition of the simulation, and a Loki-compatible log query.

Metric names (see README.md for the full table) follow the conventions a real cluster
exposes: ``http_requests_total`` / ``http_request_duration_seconds`` (the service's own
server-side instrumentation), cAdvisor's ``container_cpu_usage_seconds_total`` and
``container_memory_working_set_bytes``, kube-state-metrics'
``kube_pod_container_status_restarts_total``, ``kube_pod_container_resource_limits``,
``kube_pod_status_ready`` and ``kube_deployment_*``.

LogQL subset: a stream selector ``{label="v", label!="v", label=~"re", label!~"re"}``
followed by any number of line filters (``|= "text"``, ``!= "text"``, ``|~ "re"``,
``!~ "re"``), ``| logfmt`` and label filters on logfmt fields (``| level="error"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sentinel_sandbox.sim import BUCKETS, CODES, LogLine, Simulation

MiB = 1024 * 1024


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(round(v, 6))


def _labels(d: dict[str, str]) -> str:
    esc = (
        str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in d.values()
    )
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(d.keys(), esc, strict=True)) + "}"


class _Families:
    def __init__(self) -> None:
        self.fams: dict[str, tuple[str, str, list[str]]] = {}
        self.samples: list[tuple[str, dict[str, str], float]] = []

    def add(
        self, name: str, typ: str, help_: str, sample: str, labels: dict[str, str], value: float
    ) -> None:
        fam = self.fams.setdefault(name, (typ, help_, []))
        fam[2].append(f"{sample}{_labels(labels)} {_fmt(value)}")
        self.samples.append((sample, labels, float(value)))

    def render(self) -> str:
        out: list[str] = []
        for name, (typ, help_, lines) in self.fams.items():
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {typ}")
            out.extend(lines)
        return "\n".join(out) + "\n"


def exposition(sim: Simulation, services: Iterable[str] | None = None) -> str:
    """Prometheus text format 0.0.4 for the given services (all when None)."""
    return _families(sim, services).render()


def samples(sim: Simulation) -> list[tuple[str, dict[str, str], float]]:
    """What one scrape of ``/metrics`` would see: (sample name, labels, value) triples."""
    return _families(sim, None).samples


def _families(sim: Simulation, services: Iterable[str] | None) -> _Families:
    ns = sim.ns
    wanted = list(services) if services is not None else list(sim.topo.services)
    f = _Families()
    for s in wanted:
        st = sim.stats[s]
        base = {"namespace": ns, "service": s, "deployment": s}
        for code in CODES:
            f.add(
                "http_requests_total",
                "counter",
                "Requests served, by status code.",
                "http_requests_total",
                {**base, "code": code},
                st.requests[code],
            )
        h = "http_request_duration_seconds"
        for b, c in zip(BUCKETS, st.buckets, strict=True):
            f.add(
                h,
                "histogram",
                "Request latency as seen by the service.",
                f"{h}_bucket",
                {**base, "le": _fmt(b)},
                c,
            )
        f.add(h, "histogram", "", f"{h}_bucket", {**base, "le": "+Inf"}, st.duration_count)
        f.add(h, "histogram", "", f"{h}_sum", base, st.duration_sum)
        f.add(h, "histogram", "", f"{h}_count", base, st.duration_count)
    for s in wanted:
        spec = sim.topo.services[s]
        for p in sim.cluster.pods_of(ns, s):
            pl = {"namespace": ns, "service": s, "deployment": s, "pod": p.name, "container": s}
            f.add(
                "container_cpu_usage_seconds_total",
                "counter",
                "Cumulative CPU time consumed by the container, in core-seconds.",
                "container_cpu_usage_seconds_total",
                pl,
                p.cpu_seconds,
            )
            f.add(
                "container_memory_working_set_bytes",
                "gauge",
                "Current working set of the container, in bytes.",
                "container_memory_working_set_bytes",
                pl,
                round(p.mem_mb * MiB),
            )
            f.add(
                "kube_pod_container_status_restarts_total",
                "counter",
                "The number of container restarts per container.",
                "kube_pod_container_status_restarts_total",
                pl,
                p.restarts,
            )
            lim = "kube_pod_container_resource_limits"
            f.add(
                lim,
                "gauge",
                "The container's resource limits.",
                lim,
                {**pl, "resource": "cpu", "unit": "core"},
                spec.cpu_limit,
            )
            f.add(
                lim,
                "gauge",
                "",
                lim,
                {**pl, "resource": "memory", "unit": "byte"},
                spec.memory_limit_mb * MiB,
            )
            f.add(
                "kube_pod_status_ready",
                "gauge",
                "Whether the pod is ready to serve requests.",
                "kube_pod_status_ready",
                {**{k: pl[k] for k in ("namespace", "service", "pod")}, "condition": "true"},
                1 if p.ready else 0,
            )
        d = sim.cluster.deployments.get((ns, s))
        if d is not None:
            dl = {"namespace": ns, "service": s, "deployment": s}
            ready = sum(1 for p in sim.cluster.pods_of(ns, s) if p.ready)
            f.add(
                "kube_deployment_spec_replicas",
                "gauge",
                "Desired replicas.",
                "kube_deployment_spec_replicas",
                dl,
                d.replicas,
            )
            f.add(
                "kube_deployment_status_replicas_available",
                "gauge",
                "Available replicas.",
                "kube_deployment_status_replicas_available",
                dl,
                ready,
            )
            f.add(
                "kube_deployment_status_observed_generation",
                "gauge",
                "The generation observed by the deployment controller.",
                "kube_deployment_status_observed_generation",
                dl,
                d.generation,
            )
    return f


# -- Loki ----------------------------------------------------------------------------------


class LogQLError(ValueError):
    """A query outside the supported subset."""


_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_STAGE = re.compile(
    r'\s*(\|=|!=|\|~|!~)\s*"((?:[^"\\]|\\.)*)"|\s*\|\s*logfmt\b|\s*\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|==|=)\s*"((?:[^"\\]|\\.)*)"'
)
_LOGFMT = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')


def _unescape(s: str) -> str:
    return s.encode().decode("unicode_escape") if "\\" in s else s


def _match(op: str, actual: str, want: str) -> bool:
    if op in ("=", "=="):
        return actual == want
    if op == "!=":
        return actual != want
    if op == "=~":
        return re.fullmatch(want, actual) is not None
    return re.fullmatch(want, actual) is None


def parse_logql(q: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Returns (stream matchers, pipeline stages) or raises LogQLError."""
    q = q.strip()
    if not q.startswith("{") or "}" not in q:
        raise LogQLError("parse error: queries must start with a stream selector {...}")
    end = q.index("}")
    inner, rest = q[1:end], q[end + 1 :]
    matchers: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(inner.strip()) and inner[pos:].strip():
        m = _MATCHER.match(inner, pos)
        if not m:
            raise LogQLError(f"parse error: bad matcher near {inner[pos:]!r}")
        matchers.append((m.group(1), m.group(2), _unescape(m.group(3))))
        pos = m.end()
    if not matchers:
        raise LogQLError("parse error: queries require at least one matcher")
    stages: list[tuple[str, str, str]] = []
    pos = 0
    while rest[pos:].strip():
        m = _STAGE.match(rest, pos)
        if not m:
            raise LogQLError(f"parse error: unsupported pipeline stage near {rest[pos:]!r}")
        if m.group(1):
            stages.append(("line", m.group(1), _unescape(m.group(2))))
        elif m.group(3):
            stages.append(("label", m.group(4), f"{m.group(3)}\x00{_unescape(m.group(5))}"))
        pos = m.end()
    for _, op, val in [*matchers, *[s for s in stages if s[1] in ("=~", "!~", "|~")]]:
        if op in ("=~", "!~", "|~"):
            try:
                re.compile(val.split("\x00")[-1])
            except re.error as exc:
                raise LogQLError(f"parse error: invalid regex {val!r}: {exc}") from exc
    return matchers, stages


def _line_ok(line: LogLine, stages: list[tuple[str, str, str]]) -> bool:
    fields: dict[str, str] | None = None
    for kind, op, val in stages:
        if kind == "line":
            if op == "|=" and val not in line.line:
                return False
            if op == "!=" and val in line.line:
                return False
            if op == "|~" and re.search(val, line.line) is None:
                return False
            if op == "!~" and re.search(val, line.line) is not None:
                return False
        else:
            if fields is None:
                fields = {k: v.strip('"') for k, v in _LOGFMT.findall(line.line)}
            name, want = val.split("\x00", 1)
            if not _match(op, fields.get(name, ""), want):
                return False
    return True


def stream_labels(line: LogLine) -> dict[str, str]:
    return {
        "namespace": line.namespace,
        "service": line.service,
        "pod": line.pod,
        "container": line.service,
        "job": f"{line.namespace}/{line.service}",
    }


def parse_time(v: str | None, default_ns: int) -> int:
    """Loki accepts nanoseconds, (fractional) seconds or RFC3339."""
    if v is None or v == "":
        return default_ns
    try:
        if re.fullmatch(r"\d+", v):
            n = int(v)
            return n if n > 10**14 else n * 10**9
        return int(float(v) * 1e9)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError as exc:
        raise LogQLError(f"invalid time {v!r}") from exc


def query_range(
    sim: Simulation, query: str, start_ns: int, end_ns: int, limit: int, direction: str
) -> dict[str, Any]:
    """Loki's ``/loki/api/v1/query_range`` answer for a log query."""
    matchers, stages = parse_logql(query)
    hits: list[LogLine] = []
    for q in sim.logs.values():
        for line in q:
            if not (start_ns <= line.ts_ns < end_ns):
                continue
            labels = stream_labels(line)
            if not all(_match(op, labels.get(k, ""), v) for k, op, v in matchers):
                continue
            if _line_ok(line, stages):
                hits.append(line)
    hits.sort(key=lambda x: x.ts_ns, reverse=(direction != "forward"))
    hits = hits[:limit]
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for line in hits:
        key = tuple(sorted(stream_labels(line).items()))
        streams.setdefault(key, []).append([str(line.ts_ns), line.line])
    result = [{"stream": dict(k), "values": v} for k, v in streams.items()]
    return {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": result,
            "stats": {"summary": {"totalEntriesReturned": len(hits)}},
        },
    }
