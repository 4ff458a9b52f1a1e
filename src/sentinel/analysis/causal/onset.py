"""Onset detection and robust anomaly scores, tolerant of noise, seasonality and load surges."""

from __future__ import annotations

import numpy as np

from sentinel.analysis.causal.series import Array

MAD_TO_SIGMA = 1.4826
UPPER_SHARE = 0.2  # scores average the top 20% of a window: short spikes weigh little


def robust_center_scale(x: Array, axis: int = 0) -> tuple[Array, Array]:
    """Median and a robust sigma (MAD, then IQR, then std), never zero."""
    med = np.median(x, axis=axis)
    mad = MAD_TO_SIGMA * np.median(np.abs(x - np.expand_dims(med, axis)), axis=axis)
    q75, q25 = np.percentile(x, [75, 25], axis=axis)
    iqr = (q75 - q25) / 1.349
    std = np.std(x, axis=axis)
    scale = np.where(mad > 0, mad, np.where(iqr > 0, iqr, std))
    floor = 1e-3 * (np.abs(med) + 1e-6)
    return med, np.maximum(scale, floor)


PEAK_FLOOR = 0.01
FLAT_REL = 0.05
SHORT_BASELINE = 30  # points


def robust_z(values: Array, base: slice) -> Array:
    """Each column standardized by its baseline median and robust sigma.

    The sigma is floored at 1 % of the column's largest deviation from the baseline median
    over the whole window: a metric that was flat (an error rate of exactly 0) would
    otherwise get a near-zero sigma and an absurd z-score that outranks the real cause.
    """
    med, scale = robust_center_scale(values[base])
    if values.size:
        peak = np.max(np.abs(values - med), axis=0)
        scale = np.maximum(scale, PEAK_FLOOR * peak)
        # A handful of scrapes (an alert a minute after the fault) or a flat, quantized
        # baseline says little about a metric's noise: assume at least FLAT_REL of its level.
        nb = values[base].shape[0]
        flat = np.ptp(values[base], axis=0) == 0 if nb else np.zeros(values.shape[1], bool)
        if nb < SHORT_BASELINE:
            flat[:] = True
        scale = np.where(flat, np.maximum(scale, FLAT_REL * np.abs(med)), scale)
    return np.asarray((values - med) / scale, dtype=np.float64)


def upper_mean(x: Array, axis: int = 0, share: float = UPPER_SHARE) -> Array:
    """Mean of the largest ``share`` of values along ``axis`` (at least two, or one if fewer)."""
    n = x.shape[axis]
    if n == 0:
        shape = list(x.shape)
        del shape[axis]
        return np.zeros(shape)
    k = max(min(2, n), int(round(share * n)))
    part = -np.partition(-x, k - 1, axis=axis)
    return np.asarray(np.take(part, np.arange(k), axis=axis).mean(axis=axis), dtype=np.float64)


def detect_onset(z: Array, lo: int | None = None, hi: int | None = None) -> int:
    """The split index that best separates a calm start from a disturbed end (binary segmentation).

    The end may be as short as two points: CIRCA's simulator has 10 abnormal points after
    1,440 normal ones, and its fault lasts two of them.

    ``z`` are per-metric scores against the series' first half; the aggregate is the mean of the
    largest deviations (clipped so one wild metric cannot decide alone).
    """
    n = z.shape[0]
    if n < 8:
        return int(n // 2)
    a = np.clip(np.abs(z), 0, 10)
    k = max(1, int(round(0.1 * a.shape[1]))) if a.shape[1] else 1
    agg = -np.partition(-a, k - 1, axis=1)[:, :k].mean(axis=1) if a.shape[1] else np.zeros(n)
    cs = np.concatenate([[0.0], np.cumsum(agg)])
    lo = max(2, lo if lo is not None else int(0.1 * n))
    # The disturbed end may be a few points only (an alert minutes after a transient fault).
    hi = n - 2 if hi is None else min(n - 2, hi)
    if hi <= lo:
        return int(n // 2)
    idx = np.arange(lo, hi)
    left = cs[idx] / idx
    right = (cs[n] - cs[idx]) / (n - idx)
    gain = (right - left) * np.sqrt(idx * (n - idx) / n)
    return int(idx[int(np.argmax(gain))])


def first_crossing(
    z: Array, start: int, threshold: float = 3.0, width: int = 3, back: int = 0
) -> Array:
    """Per column, the first index at or after ``start - back`` where the rolling mean of |z|
    over ``width`` points exceeds ``threshold``; ``-1`` where it never does."""
    n, m = z.shape
    out = np.full(m, -1.0)
    s = max(0, start - back)
    if n - s < 1 or m == 0:
        return out
    a = np.abs(z[s:])
    w = max(1, min(width, a.shape[0]))
    cs = np.vstack([np.zeros((1, m)), np.cumsum(a, axis=0)])
    roll = (cs[w:] - cs[:-w]) / w
    hit = roll > threshold
    anyhit = hit.any(axis=0)
    first = np.argmax(hit, axis=0)
    out[anyhit] = (first[anyhit] + w - 1 + s).astype(np.float64)
    return out
