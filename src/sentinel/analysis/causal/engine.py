"""Ranks root causes: each metric's deviation minus what its causal parents explain.

The model, per metric ``v`` with parents ``Pa(v)`` in the causal graph::

    z_v(t) = sum_p [b_p z_p(t) + c_p mean(z_p(t-L..t-1))] + g * common_k(t) + e_v(t)

``z`` is the metric standardized on the pre-onset baseline; ``common_k`` is the median of
all metrics of the same kind (a load surge or daily seasonality moves them together and is
not a fault). The coefficients are fitted by ridge regression over the whole window, so a
parent's shift may explain a child's shift. A symptom's deviation is then mostly explained
(its residual stays calm); a root cause's is not: the intervention happened in its own
mechanism. The score of a metric is the size of its unexplained deviation after onset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sentinel.analysis.causal.graph import (
    Kind,
    children_of,
    learn_parents,
    metric_kind,
    parents_from_callgraph,
)
from sentinel.analysis.causal.onset import (
    SHORT_BASELINE,
    detect_onset,
    first_crossing,
    robust_center_scale,
    robust_z,
    upper_mean,
)
from sentinel.analysis.causal.series import Array, ChangeEvent, MetricFrame

MAX_POINTS = 2400  # longer windows are block-averaged (1 h at 1 s -> 2 s steps)
ONSET_Z = 3.0  # a metric's onset: its |z| first stays above this (3 points)
ANOMALY_Z = 2.0  # a metric whose post-onset deviation is below this is calm
RIDGE = 1e-2
# The short-window regression test fits a long baseline (at least POINTS_PER_FEATURE points per
# regressor): no shrinkage, only enough ridge for numerical stability.
RIDGE_TEST = 1e-8
POINTS_PER_FEATURE = 5
GATE_DEV = 1.0  # below this deviation (baseline sigmas) a metric is not a candidate
NOISE_DEV = 0.5  # an unexplained deviation this small is noise
UPSTREAM_WEIGHT = 2.0  # how strongly an unexplained ancestor discounts its descendants
SIG_K = 3.0  # an unexplained deviation counts upstream above median + SIG_K robust sigmas
ZQ_CLIP = 1000.0  # the convex regressor z|z|/10 is clipped here
# A residual's sigma is at least this share of its metric's (short windows): a parent fit is
# trusted to explain at most 99.9 % of a metric's variance (sqrt(1 - 0.999) ~ 0.03).
RESID_FLOOR = 0.03
EVENT_HORIZON_S = 1800.0  # a change this long before the onset is still a suspect


@dataclass
class NodeResult:
    """Per metric: how far it moved, how much of that its parents do not explain, when."""

    service: str
    metric: str
    anomaly: float
    residual: float
    score: float
    onset: float | None
    explained: float  # share of the deviation the parents explain, 0..1
    parents: list[int]
    contrib: dict[int, float] = field(default_factory=dict)  # parent -> explained deviation


@dataclass
class Analysis:
    """Everything the ranking, the chain and the explanation are built from."""

    nodes: list[NodeResult]
    onset_time: float | None
    onset_source: str  # "given", "detected", "none"
    graph_source: str  # "callgraph", "learned", "none"
    step_s: float
    events: list[ChangeEvent]
    event_boost: dict[str, tuple[ChangeEvent, float]]
    service_scores: list[tuple[str, float, int | None]]  # (service, score, best node)


def _block_average(times: Array, values: Array, max_points: int) -> tuple[Array, Array]:
    n = len(times)
    if n <= max_points:
        return times, values
    b = int(np.ceil(n / max_points))
    m = (n // b) * b
    t = times[:m].reshape(-1, b).mean(axis=1)
    v = values[:m].reshape(-1, b, values.shape[1]).mean(axis=1)
    return t, v


def _lagged_mean(x: Array, lag: int) -> Array:
    """Mean of the ``lag`` previous points of each column (the column itself for lag 0)."""
    if lag <= 0:
        return x
    n = x.shape[0]
    cs = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    out = np.empty_like(x)
    for t0 in range(min(lag, n)):
        out[t0] = cs[t0 + 1] / (t0 + 1) if t0 == 0 else cs[t0] / t0
    if n > lag:
        out[lag:] = (cs[lag:n] - cs[: n - lag]) / lag
    return out


def _persistence_weight(n_post: int) -> float:
    """How much the persistent (median) shift counts against the peak: faults that matter on
    long windows persist, distractor spikes do not; very short windows have only a peak."""
    return float(np.interp(n_post, [10, 60], [0.0, 1.0]))


def _deviation(x: Array, split: int, share: float, weight: float) -> Array:
    """Per column, the post-onset deviation from the baseline median (baseline sigmas): the
    absolute median shift blended with the mean of the largest ``share`` of |values|."""
    post = x[split:]
    if post.shape[0] == 0:
        return np.zeros(x.shape[1])
    base = np.median(x[:split], axis=0)
    shift = np.abs(np.median(post, axis=0) - base)
    peak = upper_mean(np.abs(post - base), share=share)
    return np.asarray(weight * shift + (1.0 - weight) * peak, dtype=np.float64)


def analyze_frame(frame: MetricFrame, *, learn_graph: bool | None = None) -> Analysis:
    """Score every metric of ``frame`` as a root-cause candidate; never raises on thin data."""
    times, values = _block_average(frame.times, frame.values, MAX_POINTS)
    n, m = values.shape if values.ndim == 2 else (0, 0)
    if n < 6 or m == 0:
        return Analysis([], None, "none", "none", 0.0, frame.events, {}, [])
    step = float(np.median(np.diff(times))) if n > 1 else 1.0

    # 1. Onset: the given injection time, else the best split of the aggregate deviation.
    if frame.inject_time is not None and times[0] < frame.inject_time <= times[-1]:
        split = int(np.searchsorted(times, frame.inject_time))
        onset_source = "given"
    else:
        z_half = robust_z(values, slice(0, max(3, n // 2)))
        split = detect_onset(z_half)
        onset_source = "detected"
    split = int(min(max(split, 3), n - 1))
    base = slice(0, split)

    z = robust_z(values, base)
    z = np.clip(z, -1e6, 1e6)
    # Faults persist; distractor spikes do not: on long windows score the upper half.
    share = float(np.interp(n - split, [20, 100], [0.2, 0.5]))
    weight = _persistence_weight(n - split)
    dev = _deviation(z, split, share, weight)
    back = max(1, int(round(0.1 * split)))
    onset_idx = first_crossing(z, split, threshold=ONSET_Z, width=3, back=back)

    # 2. Graph.
    nodes = frame.nodes
    edges = frame.callgraph
    use_learned = learn_graph if learn_graph is not None else not edges
    if use_learned:
        parents = learn_parents(z, nodes, onset_idx, dev >= ANOMALY_Z)
        graph_source = "learned"
    else:
        parents = parents_from_callgraph(nodes, edges or [])
        graph_source = "callgraph"

    # 3. Common mode per kind (load surges, seasonality): median across services.
    kinds = [metric_kind(mt) for _, mt in nodes]
    common: dict[str, Array] = {}
    # Only resource and traffic metrics: faults travel through latency and errors, so a
    # fault that reaches most services would otherwise look like a common mode.
    by_metric: dict[str, list[int]] = {}
    for j, (_, mt) in enumerate(nodes):
        if kinds[j] in (Kind.RESOURCE, Kind.LOAD):
            by_metric.setdefault(mt, []).append(j)
    for mt, cols in sorted(by_metric.items()):
        if len(cols) >= 3:
            common[mt] = np.median(z[:, cols], axis=1)
    common_q = {
        k: np.clip(v, -50, 50) * np.abs(np.clip(v, -50, 50)) / 10.0 for k, v in common.items()
    }
    lag = max(1, min(30, int(round(30.0 / step)) if step > 0 else 1, n // 20 or 1))
    zl = _lagged_mean(z, lag)
    zc = np.clip(z, -ZQ_CLIP, ZQ_CLIP)
    zq = zc * np.abs(zc) / 10.0

    # 4. Residual after parents, per metric: what of its deviation the parents do not explain.
    resids = np.empty_like(z)
    fitted = np.zeros(m, dtype=bool)
    # Short post-onset window after a long baseline: the residual is a regression test (below).
    test = weight < 0.5 and split >= SHORT_BASELINE
    contribs: list[dict[int, float]] = []
    for j in range(m):
        ps = parents[j]
        feats, names = _features(ps, z, zl, zq, common, common_q, n)
        y = z[:, j]
        contrib: dict[int, float] = {}
        if len(feats) > 1:
            xm = np.column_stack(feats)
            if weight >= 0.5:
                # A free step at the onset takes the metric's own change, so that parents
                # that happen to shift at the same time (a load surge) cannot soak it up:
                # their coefficients come from how they co-move with it otherwise.
                step_d = np.zeros(n)
                step_d[split:] = 1.0
                coef = _ridge(np.column_stack([xm, step_d]), y, free=(0, xm.shape[1]))[:-1]
            else:
                # In the regression test the fit must be unbiased: shrinkage leaves part of a
                # parent's effect in the residual, and at a root cause's extreme values (a
                # shock of many sigmas) that part is a false innovation in each of its children.
                coef = _ridge(xm, y, ridge=RIDGE_TEST if test else RIDGE)
            resid = y - xm @ coef
            fitted[j] = bool(names)
            for c, p in enumerate(names, start=1):
                if p >= 0:
                    d = float(np.median(xm[split:, c]) - np.median(xm[:split, c])) * coef[c]
                    contrib[p] = contrib.get(p, 0.0) + d
        else:
            resid = y - np.median(y[:split])
        # In the metric's own baseline sigmas, like its deviation, so the two compare.
        resids[:, j] = resid - np.median(resid[:split])
        contribs.append(contrib)
    unexplained = np.minimum(_deviation(resids, split, share, weight), dev)
    if test:
        # A transient fault (CIRCA's 2-point shock) is an innovation in the metric's own
        # mechanism: small against the metric's spread, which its ancestors dominate, but large
        # against what its parents leave unexplained in normal times (a regression test).
        unexplained = np.where(fitted, _innovation(resids, split, share, weight), unexplained)

    u_med = float(np.median(unexplained))
    u_mad = 1.4826 * float(np.median(np.abs(unexplained - u_med)))
    significant = np.where(unexplained > u_med + SIG_K * u_mad, unexplained, 0.0)
    upstream_u = _upstream(significant, parents)
    # The noise floor of the statistic: most metrics are calm or explained (short windows
    # have a higher one: their peak statistic of pure noise is ~2).
    noise = max(NOISE_DEV, u_med)
    results: list[NodeResult] = []
    for j in range(m):
        ps = parents[j]
        a = float(dev[j])
        residual = float(unexplained[j])
        # The share of its deviation its parents explain (split among them by contribution).
        explained = float(np.clip(1.0 - residual / a, 0.0, 1.0)) if a > 0 and ps else 0.0
        # A metric downstream of a parent whose own change is unexplained is its effect, even
        # where the regression cannot model the link (saturation, non-monotone responses).
        up = float(upstream_u[j])
        upstream = max(0.0, up - noise) / max(residual, noise)
        score = residual / (1.0 + UPSTREAM_WEIGHT * upstream)
        if a < GATE_DEV:
            score *= 0.1
        o = float(onset_idx[j])
        results.append(
            NodeResult(
                service=nodes[j][0],
                metric=nodes[j][1],
                anomaly=a,
                residual=residual,
                score=score,
                onset=float(times[int(o)]) if o >= 0 else None,
                explained=explained,
                parents=ps,
                contrib=contribs[j],
            )
        )

    onset_time = float(times[split])
    boost = _event_boost(frame.events, onset_time)
    return Analysis(
        nodes=results,
        onset_time=onset_time,
        onset_source=onset_source,
        graph_source=graph_source,
        step_s=step,
        events=frame.events,
        event_boost=boost,
        service_scores=_service_scores(results, boost),
    )


def _innovation(resids: Array, split: int, share: float, weight: float) -> Array:
    """Per column, the post-onset deviation of the residual in the residual's own baseline
    sigmas (floored at RESID_FLOOR metric sigmas: a near-perfect parent fit is not trusted
    to magnify a wiggle more than about thirtyfold)."""
    _, rs = robust_center_scale(resids[:split])
    return _deviation(resids / np.maximum(rs, RESID_FLOOR), split, share, weight)


def _upstream(u: Array, parents: list[list[int]]) -> Array:
    """Per metric, the largest unexplained deviation among its ancestors (max-propagation
    along the parent lists; cycles are harmless, the maximum converges)."""
    m = len(parents)
    up = np.zeros(m)
    for _ in range(m):
        changed = False
        for j in range(m):
            best = up[j]
            for p in parents[j]:
                v = max(u[p], up[p]) if p != j else up[p]
                if v > best:
                    best = v
            if best > up[j]:
                up[j] = best
                changed = True
        if not changed:
            break
    return up


def _features(
    ps: list[int],
    z: Array,
    zl: Array,
    zq: Array,
    common: dict[str, Array],
    common_q: dict[str, Array],
    n: int,
) -> tuple[list[Array], list[int]]:
    """Regressors of one metric and the parent each belongs to (-1: a common mode).

    The full model (each parent now, lagged and convex, plus every common mode) needs
    ``POINTS_PER_FEATURE`` points per regressor; on short windows (an alert that fires a
    minute after the fault) it falls back to the parents' current values, then to none:
    an overfitted regression would explain every deviation away.
    """
    full: list[tuple[Array, int]] = []
    for p in ps:
        # propagation is rarely linear (saturation, retries) and takes time (lag)
        full += [(z[:, p], p), (zl[:, p], p), (zq[:, p], p)]
    for k in sorted(common):  # every common mode: a surge moves cpu, then latency
        full += [(common[k], -1), (common_q[k], -1)]
    simple = [(z[:, p], p) for p in ps]
    for cand in (full, simple):
        if n >= POINTS_PER_FEATURE * (len(cand) + 1):
            return [np.ones(n)] + [f for f, _ in cand], [p for _, p in cand]
    return [np.ones(n)], []


def _ridge(x: Array, y: Array, free: tuple[int, ...] = (0,), ridge: float = RIDGE) -> Array:
    xtx = x.T @ x
    lam = ridge * (np.trace(xtx) / max(1, xtx.shape[0]))
    reg = lam * np.eye(xtx.shape[0])
    for f in free:  # no penalty on the intercept (and the step)
        reg[f, f] = 0.0
    try:
        return np.asarray(np.linalg.solve(xtx + reg, x.T @ y), dtype=np.float64)
    except np.linalg.LinAlgError:
        return np.asarray(np.linalg.lstsq(x, y, rcond=None)[0], dtype=np.float64)


def _event_boost(events: list[ChangeEvent], onset: float) -> dict[str, tuple[ChangeEvent, float]]:
    """Changes shortly before the onset make their service a stronger suspect (1.0 = at onset)."""
    out: dict[str, tuple[ChangeEvent, float]] = {}
    for e in events:
        dt = onset - e.time
        if -60.0 <= dt <= EVENT_HORIZON_S:
            w = float(np.exp(-max(dt, 0.0) / (EVENT_HORIZON_S / 3)))
            if e.service not in out or out[e.service][1] < w:
                out[e.service] = (e, w)
    return out


def _service_scores(
    nodes: list[NodeResult], boost: dict[str, tuple[ChangeEvent, float]]
) -> list[tuple[str, float, int | None]]:
    best: dict[str, tuple[float, int | None]] = {}
    for j, r in enumerate(nodes):
        if r.service not in best or r.score > (best[r.service][0]):
            best[r.service] = (r.score, j)
    top = max((s for s, _ in best.values()), default=0.0)
    for svc, (_, w) in boost.items():
        s, jb = best.get(svc, (0.0, None))
        # A change right before the onset on a service that moved itself is strong evidence;
        # on a service with no metrics of its own it is a candidate below the measured ones.
        s = s * (1.0 + w) if s > 0 else 0.5 * w * top
        best[svc] = (s, jb)
    out = [(svc, s, j) for svc, (s, j) in best.items()]
    out.sort(key=lambda x: (-x[1], x[0]))
    return out


def children(analysis: Analysis) -> list[list[int]]:
    """Children lists of the analysis' metric graph."""
    return children_of([r.parents for r in analysis.nodes])
