"""Scenario files: the YAML that names a topology, the faults to inject and the expected outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sentinel_sandbox.topology import Topology, from_spec

FAULT_KINDS = (
    "bad_deploy",
    "memory_leak",
    "cpu_hog",
    "cache_poison",
    "slow_dependency",
    "bad_config",
    "traffic_spike",
)
OUTCOMES = ("fixed_autonomously", "fixed_after_approval", "escalated")
ACTIONS = (
    "restart_kubernetes_pod",
    "rollout_restart_deployment",
    "rollback_deployment",
    "scale_deployment",
    "flush_redis_cache",
)


@dataclass
class FaultSpec:
    """One fault: what, where, when (seconds of simulated time after boot) and how big."""

    kind: str
    target: str
    start: float = 0.0
    size: float = 1.0
    version: str | None = None  # bad_deploy / memory_leak: the new image tag
    config: dict[str, str] = field(default_factory=dict)  # bad_config: env changes
    pod: str | int | None = None  # cpu_hog: a pod name or an index into the sorted pods
    duration: float | None = None  # slow_dependency / traffic_spike / cpu_hog
    author: str = "Dana Developer <dana@example.com>"
    message: str | None = None
    dependency: str | None = None  # slow_dependency: name of the slow upstream
    error_message: str | None = None  # bad_deploy / bad_config: what the failing code logs

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> FaultSpec:
        raw = dict(raw)
        kind = raw.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"fault: unknown fields {sorted(unknown)}")
        if "config" in raw:
            raw["config"] = {str(k): str(v) for k, v in (raw["config"] or {}).items()}
        return cls(**raw)


@dataclass
class CacheSpec:
    """The cache store a service reads (a real Redis when --redis-url is given)."""

    name: str = "redis-cart"
    key_prefix: str = "cart:"
    healthy_keys: int = 50


@dataclass
class Scenario:
    """A parsed scenario file."""

    name: str
    description: str
    seed: int
    namespace: str
    environment: str
    topology: Topology
    versions: dict[str, dict[str, dict[str, Any]]]  # service -> version tag -> behaviour
    faults: list[FaultSpec]
    cache: CacheSpec
    expected: dict[str, Any]
    alert: dict[str, Any]
    raw: dict[str, Any]


def parse(raw: dict[str, Any], name: str = "scenario") -> Scenario:
    """Validate and build a Scenario from a mapping (as loaded from YAML)."""
    if not isinstance(raw, dict):
        raise ValueError("a scenario is a mapping")
    topo = from_spec(raw)
    if not topo.services:
        raise ValueError("a scenario needs services (or `topology: online-boutique`)")
    versions: dict[str, dict[str, dict[str, Any]]] = {}
    for svc, spec in (raw.get("services") or {}).items():
        for v in (spec or {}).get("versions") or []:
            versions.setdefault(svc, {})[str(v["version"])] = dict(v.get("behaviour") or {})
    faults_raw = raw.get("faults") or ([raw["fault"]] if raw.get("fault") else [])
    faults = [FaultSpec.parse(f) for f in faults_raw]
    for f in faults:
        if f.target not in topo.services:
            raise ValueError(f"fault target {f.target!r} is not a service")
    cache = CacheSpec(**(raw.get("cache") or {}))
    expected = dict(raw.get("expected") or {})
    if expected:
        if expected.get("outcome") not in OUTCOMES:
            raise ValueError(f"expected.outcome must be one of {OUTCOMES}")
        rem = expected.get("remediation") or {}
        if rem.get("action") not in ACTIONS:
            raise ValueError(f"expected.remediation.action must be one of {ACTIONS}")
        if expected.get("root_cause_service") not in topo.services:
            raise ValueError("expected.root_cause_service must name a service")
    alert = dict(raw.get("alert") or {})
    if alert and not {"name", "expr", "labels"} <= set(alert):
        raise ValueError("alert needs name, expr and labels")
    return Scenario(
        name=str(raw.get("name") or name),
        description=str(raw.get("description") or ""),
        seed=int(raw.get("seed", 42)),
        namespace=str(raw.get("namespace", "boutique")),
        environment=str(raw.get("environment", "prod")),
        topology=topo,
        versions=versions,
        faults=faults,
        cache=cache,
        expected=expected,
        alert=alert,
        raw=raw,
    )


def load(path: str | Path) -> Scenario:
    """Load a scenario YAML file; its file name (without .yaml) is its default name."""
    p = Path(path)
    return parse(yaml.safe_load(p.read_text()), name=p.stem)


def default() -> Scenario:
    """The Online-Boutique topology with no fault."""
    return parse({"topology": "online-boutique"}, name="default")
