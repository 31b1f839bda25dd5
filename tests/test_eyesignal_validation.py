"""Validation thresholds against the simulator's ground truth and pymovements' I-VT (seeded, deterministic).

The figures are those `eyemotion eyesignal validate` prints. Fixation and saccade kappas at 60 and 120 Hz
are below the 0.8 aim because the simulator labels as "saccade" the first sample at which the eye has
already arrived (its trajectory is sampled at (k+1)/rate and clipped at the target): at 60 Hz that is one
of every ~3.6 saccade samples, and no velocity-based classifier can see motion that has ended. Without
that sample the kappas reach the aim at every rate (second test).
"""

from __future__ import annotations

import numpy as np
import pytest
from eyemotion.acquisition.simulator import simulate_recording
from eyemotion.inference.eyesignal.processor import OUT, process_recording
from eyemotion.inference.eyesignal.validate import cohen_kappa, format_table, overlap_matches, runs, validate

DURATION = 180.0
# rate: (fixation kappa, saccade kappa) lower bounds
KAPPA = {60.0: (0.74, 0.66), 120.0: (0.82, 0.77), 250.0: (0.82, 0.79)}


@pytest.fixture(scope="module")
def figures():
    return {f.rate: f for f in validate(tuple(KAPPA), DURATION, seed=0)}


@pytest.mark.parametrize("rate", list(KAPPA))
def test_validation_thresholds(figures, rate):
    f = figures[rate]
    fix, sac = KAPPA[rate]
    assert f.samples == int(DURATION * rate)
    assert f.kappa_fixation >= fix and f.kappa_saccade >= sac
    assert f.kappa_blink >= 0.95
    assert f.blinks_true >= 20 and f.blink_precision >= 0.95 and f.blink_recall >= 0.95
    assert f.pupil_rmse_blink_mm <= 0.08  # linear interpolation across a 75-425 ms blink
    assert f.pupil_rmse_valid_mm <= 0.02
    assert f.pymovements_agreement >= 0.98 and f.pymovements_kappa >= 0.95
    assert 1.0 < f.delay_s < 2.0


def test_table_prints_every_rate(figures):
    table = format_table(list(figures.values()))
    assert "60 Hz" in table and "250 Hz" in table and "kappa saccade" in table


@pytest.mark.parametrize("rate", [60.0, 250.0])
def test_kappa_reaches_the_aim_without_the_simulators_arrival_sample(rate):
    t, raw, truth = simulate_recording(120.0, rate, seed=1)
    code = process_recording(t, raw, rate).samples[:, OUT["event"]].astype(int)
    te = truth.event.astype(int)
    keep = np.ones(len(te), bool)
    keep[runs(te == 2)[:, 1] - 1] = False
    assert cohen_kappa(code[keep] == 1, te[keep] == 1) >= 0.8
    assert cohen_kappa(code[keep] == 2, te[keep] == 2) >= 0.8


def test_metrics_helpers():
    assert cohen_kappa(np.array([1, 1, 0, 0]), np.array([1, 1, 0, 0])) == 1.0
    assert cohen_kappa(np.array([1, 0, 1, 0]), np.array([0, 1, 0, 1])) == -1.0
    a = np.array([[0, 5], [10, 12], [20, 30]])
    b = np.array([[4, 6], [13, 19], [29, 40]])
    assert overlap_matches(a, b) == 2 and overlap_matches(b, a) == 2
    assert overlap_matches(a, np.zeros((0, 2), int)) == 0
