"""Small hand-built structural causal models where the root cause is known by construction."""

from __future__ import annotations

import numpy as np

from sentinel.analysis.causal.series import ChangeEvent, MetricFrame

T0 = 1_700_000_000.0


def chain_frame(
    *,
    n: int = 600,
    onset: int = 400,
    root: str = "db",
    fault: float = 10.0,
    surge: float = 0.0,
    amplify: float = 3.0,
    seed: int = 0,
    events: list[ChangeEvent] | None = None,
) -> MetricFrame:
    """frontend → api → db call chain plus two bystanders (cache, auth called by frontend).

    Latency flows callee → caller, amplified ``amplify`` times per hop with little own noise
    on the callers: a symptom's z-score is larger than the cause's. ``surge`` adds a load
    surge on every service's cpu and latency a minute before the onset (not a fault).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    after = (t >= onset).astype(float)
    load = 1.0 + surge * (t >= onset - 60)  # a surge that began a minute before the fault
    cols: dict[tuple[str, str], np.ndarray] = {}
    true: dict[str, np.ndarray] = {}
    noise = {"db": 1.0, "api": 0.3, "frontend": 0.3, "cache": 0.5, "auth": 0.5}
    # Each service's latency is measured with error that does not travel to its callers.
    meas = {"db": 1.5, "api": 1.5, "frontend": 0.3, "cache": 1.5, "auth": 1.5}
    for svc in ("db", "cache", "auth", "api", "frontend"):
        cpu = 30 * load + rng.normal(0, 1.5, n)
        own = 5 * load + rng.normal(0, noise[svc], n)
        if svc == root:
            own = own + fault * max(noise[svc], meas[svc]) * after
        lat = own
        if svc == "api":
            lat = lat + amplify * true[("db")]
        if svc == "frontend":
            lat = lat + amplify * true["api"] + 0.5 * true["cache"] + 0.5 * true["auth"]
        true[svc] = lat
        cols[(svc, "cpu")] = cpu
        cols[(svc, "latency")] = lat + rng.normal(0, meas[svc], n)
    nodes = sorted(cols)
    return MetricFrame(
        times=T0 + t,
        values=np.column_stack([cols[k] for k in nodes]),
        nodes=nodes,
        callgraph=[
            ("frontend", "api"),
            ("frontend", "cache"),
            ("frontend", "auth"),
            ("api", "db"),
        ],
        inject_time=T0 + onset,
        events=list(events or []),
    )
