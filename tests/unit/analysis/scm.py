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


def transient_frame(
    *,
    root: str = "api",
    n_normal: int = 600,
    n_abnormal: int = 10,
    shock: float = 1.5,
    seed: int = 0,
    own: dict[str, float] | None = None,
) -> MetricFrame:
    """A short transient fault at 1-minute resolution (CIRCA's simulator in miniature).

    db → api → frontend, and cache → frontend (causes first; latency only). db and cache are
    noisy sources; api and frontend inherit nearly all their variance from their callees and
    add little own noise (0.2). ``root``'s own mechanism gets a shock of ``shock`` for the first
    two abnormal minutes, which propagates to its callers and then fades: against the root's
    whole spread the shock is no larger than the sources' noise peaks, against what its
    callees leave unexplained it is several sigmas. ``own`` overrides a service's own noise.
    """
    rng = np.random.default_rng(seed)
    n = n_normal + n_abnormal
    shock_at = np.zeros(n)
    shock_at[n_normal : n_normal + 2] = shock
    own = {"db": 1.0, "cache": 1.0, "api": 0.2, "frontend": 0.2} | (own or {})
    lat: dict[str, np.ndarray] = {}
    for svc in ("db", "cache", "api", "frontend"):
        x = rng.normal(0.0, own[svc], n) + (shock_at if svc == root else 0.0)
        if svc == "api":
            x = x + lat["db"]
        if svc == "frontend":
            x = x + 0.8 * lat["api"] + 0.6 * lat["cache"]
        lat[svc] = x
    nodes = [(svc, "latency") for svc in sorted(lat)]
    return MetricFrame(
        times=T0 + 60.0 * np.arange(n),
        values=np.column_stack([lat[s] for s, _ in nodes]),
        nodes=nodes,
        callgraph=[("frontend", "api"), ("frontend", "cache"), ("api", "db")],
        inject_time=T0 + 60.0 * n_normal,
    )
