"""Service specs and call graphs: the built-in Online-Boutique-like topology and its knobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ServiceSpec:
    """One service: its Deployment's shape and how it behaves under load."""

    name: str
    image: str
    version: str = "v1.0.0"
    replicas: int = 2
    base_latency_ms: float = 5.0
    cpu_per_request: float = 0.002  # CPU-seconds one request costs
    cpu_limit: float = 0.5  # cores per pod
    idle_cpu: float = 0.01  # cores per pod doing nothing
    memory_base_mb: float = 96.0
    memory_limit_mb: float = 256.0
    entry_rps: float = 0.0  # requests/s arriving from outside (the entry service)
    port: int = 8080
    config: dict[str, str] = field(default_factory=dict)
    # Name of the cache store this service reads on every request (cache poisoning).
    cache: str | None = None


@dataclass
class Edge:
    """A call: each request to ``caller`` makes ``calls`` requests to ``callee`` on average."""

    caller: str
    callee: str
    calls: float = 1.0
    criticality: float = 1.0  # chance that a failed call fails the caller's request
    timeout_ms: float = 1000.0


@dataclass
class Topology:
    """Services and the call graph between them."""

    services: dict[str, ServiceSpec]
    edges: list[Edge]

    def callees(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.caller == name]

    def callers(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.callee == name]

    def order(self) -> list[str]:
        """Services callers-first (a topological order); raises on a cycle."""
        indeg = {s: 0 for s in self.services}
        for e in self.edges:
            indeg[e.callee] += 1
        ready = sorted(s for s, d in indeg.items() if d == 0)
        out: list[str] = []
        while ready:
            s = ready.pop(0)
            out.append(s)
            for e in self.callees(s):
                indeg[e.callee] -= 1
                if indeg[e.callee] == 0:
                    ready.append(e.callee)
                    ready.sort()
        if len(out) != len(self.services):
            raise ValueError("the call graph has a cycle")
        return out


REGISTRY = "registry.example.com/boutique"


def online_boutique() -> Topology:
    """A call graph shaped like Google's Online Boutique demo (names shortened)."""

    def svc(name: str, **kw: Any) -> ServiceSpec:
        return ServiceSpec(name=name, image=f"{REGISTRY}/{name}", **kw)

    services = [
        svc(
            "frontend",
            version="v3.2.1",
            base_latency_ms=8,
            cpu_per_request=0.004,
            cpu_limit=0.5,
            entry_rps=40,
            memory_base_mb=128,
            memory_limit_mb=512,
        ),
        svc(
            "cart",
            version="v1.4.0",
            base_latency_ms=3,
            cpu_per_request=0.002,
            cpu_limit=0.3,
            cache="redis-cart",
            config={"CACHE_TTL_SECONDS": "300"},
        ),
        svc("productcatalog", version="v2.0.3", base_latency_ms=2, cpu_per_request=0.0015),
        svc("currency", version="v1.1.2", base_latency_ms=1.5, cpu_per_request=0.001),
        svc(
            "recommendation",
            version="v1.2.0",
            base_latency_ms=6,
            cpu_per_request=0.003,
            memory_base_mb=120,
        ),
        svc(
            "checkout",
            version="v2.0.0",
            base_latency_ms=10,
            cpu_per_request=0.003,
            config={"PAYMENT_TIMEOUT_MS": "1000"},
        ),
        svc("ad", version="v1.0.4", base_latency_ms=3, replicas=1),
        svc("shipping", version="v1.0.1", base_latency_ms=3, replicas=1),
        svc(
            "payment",
            version="v1.3.0",
            base_latency_ms=4,
            replicas=1,
            config={"GATEWAY_TIMEOUT_MS": "800", "GATEWAY_URL": "https://pay.example.com"},
        ),
        svc("email", version="v1.0.0", base_latency_ms=5, replicas=1),
        svc(
            "redis-cart",
            version="7.2.4",
            base_latency_ms=0.5,
            cpu_per_request=0.0002,
            replicas=1,
            memory_base_mb=64,
        ),
    ]
    edges = [
        Edge("frontend", "productcatalog", 2.0, 1.0),
        Edge("frontend", "currency", 1.5, 0.9, timeout_ms=1000),
        Edge("frontend", "cart", 0.6, 0.9),
        Edge("frontend", "recommendation", 0.5, 0.2),
        Edge("frontend", "ad", 0.5, 0.1, timeout_ms=300),
        Edge("frontend", "shipping", 0.2, 0.8),
        Edge("frontend", "checkout", 0.05, 1.0, timeout_ms=3000),
        Edge("checkout", "cart", 1.0, 1.0),
        Edge("checkout", "productcatalog", 2.0, 1.0),
        Edge("checkout", "currency", 2.0, 1.0),
        Edge("checkout", "shipping", 1.0, 1.0),
        Edge("checkout", "payment", 1.0, 1.0, timeout_ms=2000),
        Edge("checkout", "email", 1.0, 0.1),
        Edge("recommendation", "productcatalog", 1.0, 1.0),
        Edge("cart", "redis-cart", 1.0, 1.0, timeout_ms=200),
    ]
    return Topology({s.name: s for s in services}, edges)


def from_spec(raw: dict[str, Any]) -> Topology:
    """A topology from a scenario's ``services`` / ``edges`` mapping (overrides allowed)."""
    base = online_boutique() if raw.get("topology") == "online-boutique" else Topology({}, [])
    for name, spec in (raw.get("services") or {}).items():
        spec = dict(spec or {})
        spec.pop("versions", None)
        if name in base.services:
            cur = base.services[name]
            for k, v in spec.items():
                if not hasattr(cur, k):
                    raise ValueError(f"service {name}: unknown field {k!r}")
                setattr(cur, k, v)
        else:
            spec.setdefault("image", f"{REGISTRY}/{name}")
            base.services[name] = ServiceSpec(name=name, **spec)
    for e in raw.get("edges") or []:
        if isinstance(e, list | tuple):
            base.edges.append(Edge(str(e[0]), str(e[1])))
        else:
            base.edges.append(Edge(**e))
    for e in base.edges:
        if e.caller not in base.services or e.callee not in base.services:
            raise ValueError(f"edge {e.caller} -> {e.callee} names an unknown service")
    base.order()
    return base
