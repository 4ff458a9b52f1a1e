"""Onset detection and robust scores: noise, seasonality, short spikes."""

from __future__ import annotations

import numpy as np

from sentinel.analysis.causal.onset import (
    detect_onset,
    first_crossing,
    robust_center_scale,
    robust_z,
    upper_mean,
)


def test_detect_onset_finds_a_step_under_noise_and_seasonality() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(1000.0)
    season = 2.0 * np.sin(2 * np.pi * t / 300)
    x = np.column_stack([season + rng.normal(0, 1, 1000) for _ in range(10)])
    x[700:, 3] += 8.0
    x[700:, 5] += 6.0
    z = robust_z(x, slice(0, 500))
    assert abs(detect_onset(z) - 700) <= 10


def test_detect_onset_finds_a_disturbed_end_of_a_few_points() -> None:
    # 1,440 calm points, then 10 of which the first few are disturbed (an alert minutes after a
    # transient fault): the split is at the disturbance, not held away from the end.
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, (1450, 10))
    x[1440:1443, 2] += 5.0
    x[1440:1443, 6] += 4.0
    z = robust_z(x, slice(0, 725))
    assert 1438 <= detect_onset(z) <= 1441


def test_a_short_spike_weighs_less_than_a_persistent_shift() -> None:
    spike = np.zeros(400)
    spike[100:110] = 20.0
    shift = np.full(400, 4.0)
    assert upper_mean(shift, share=0.5) > upper_mean(spike, share=0.5)


def test_robust_scale_ignores_outliers_and_is_never_zero() -> None:
    x = np.concatenate([np.random.default_rng(0).normal(10, 1, 500), [1e6] * 5])
    med, scale = robust_center_scale(x)
    assert abs(float(med) - 10) < 0.2 and 0.8 < float(scale) < 1.2
    _, scale0 = robust_center_scale(np.zeros(50))
    assert float(scale0) > 0


def test_first_crossing_reports_the_start_and_minus_one_when_calm() -> None:
    z = np.zeros((100, 2))
    z[60:, 0] = 10.0
    on = first_crossing(z, 50)
    assert 60 <= on[0] <= 62 and on[1] == -1
