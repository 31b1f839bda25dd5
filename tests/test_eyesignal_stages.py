"""The compiled stages' building blocks (inference/eyesignal/stages.py) against plain numpy on random input.

The whole pipeline is checked by test_eyesignal.py (chunk invariance, every class) and the validations; these
pin the helpers whose exactness the pipeline relies on: order statistics read from sorted data must be the
same values numpy's median gives, and run bookkeeping must match the masks it stands for.
"""

from __future__ import annotations

import numpy as np
import pytest
from eyemotion.inference.eyesignal import stages
from eyemotion.inference.eyesignal.processor import compile_stages


@pytest.mark.parametrize("n", [2, 3, 10, 11, 250, 2501])
def test_sorted_median_and_mad_are_numpys(n):
    rng = np.random.default_rng(n)
    v = np.sort(np.round(rng.gamma(2.0, 10.0, n), 1))  # rounded: ties, as in real velocities
    for k in sorted({2, n // 2 + 1, n}):
        below = v[:k]
        centre = stages._sorted_median(v, k)
        assert centre == np.median(below)
        assert stages._sorted_mad_median(v, k, centre) == np.median(np.abs(below - centre))
        off = centre + 0.37  # a centre between the samples
        assert stages._sorted_mad_median(v, k, off) == np.median(np.abs(below - off))


def test_slide_sorted_is_the_sorted_window_one_block_later():
    """The trailing window's sorted values, slid by a merge, are numpy's sort of the new window, ties included."""
    rng = np.random.default_rng(2)
    blocks = [np.sort(np.round(rng.gamma(2.0, 10.0, rng.integers(0, 30)), 0)) for _ in range(12)]
    window = np.zeros(0)
    for i, block in enumerate(blocks):
        drop = blocks[i - 4] if i >= 4 else np.zeros(0)  # a window of 4 blocks
        window = stages.slide_sorted(window, block, drop)
        assert np.array_equal(window, np.sort(np.concatenate(blocks[max(0, i - 3):i + 1])))


def test_velocity_thresholds_iterate_to_the_noise():
    """Noise of ~N(20, 3) deg/s plus saccade peaks: PT settles near median + 6 x 1.4826 MAD of the noise."""
    rng = np.random.default_rng(0)
    v = np.sort(np.concatenate((rng.normal(20, 3, 2000), rng.uniform(100, 500, 100))))
    peak, onset = stages.velocity_thresholds(v, 30.0, True, 20)
    assert 30 < peak < 45 and 20 < onset < 35 and onset < peak
    assert stages.velocity_thresholds(v, 30.0, False, 20) == (30.0, 30.0)  # the fixed threshold
    assert stages.velocity_thresholds(v[:10], 30.0, True, 20) == (30.0, 30.0)  # too few values


def test_runs_and_cover_match_their_masks():
    rng = np.random.default_rng(1)
    for _ in range(50):
        mask = rng.random(rng.integers(1, 40)) < 0.4
        s, e = stages.true_runs(mask)
        assert np.array_equal(stages.cover(s, e, len(mask)), mask)
        assert all(mask[a:b].all() and (a == 0 or not mask[a - 1]) for a, b in zip(s, e))
        code = rng.integers(0, 3, len(mask))
        rs, re = stages.code_runs(code)
        assert rs[0] == 0 and re[-1] == len(code) and np.array_equal(rs[1:], re[:-1])
        assert all((code[a:b] == code[a]).all() for a, b in zip(rs, re))
        assert all(code[b] != code[b - 1] for b in re[:-1])
    assert np.array_equal(stages.cover(np.array([-3, 8]), np.array([2, 20]), 10),
                          np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 1], bool))  # clipped to the array


def test_fill_interpolates_only_bounded_runs():
    bad = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1], bool)
    s, e = stages.fill_runs(bad, 2)
    assert list(zip(s, e)) == [(2, 4)]  # not the edges, not the run longer than 2
    values = np.arange(11, dtype=float).reshape(-1, 1) ** 2
    out = stages.interpolate_runs(values, s, e)
    assert out[2, 0] == pytest.approx(1 + (16 - 1) / 3) and out[3, 0] == pytest.approx(1 + 2 * (16 - 1) / 3)
    assert np.array_equal(np.delete(out, [2, 3]), np.delete(values, [2, 3]))


def test_savitzky_golay_derivative_of_a_parabola_is_exact():
    t = np.arange(50) / 250.0
    x = 3.0 * t * t + 2.0 * t
    d = stages.sg_derivative(x, t, 2)
    assert np.isnan(d[:2]).all() and np.isnan(d[-2:]).all()
    np.testing.assert_allclose(d[2:-2], 6.0 * t[2:-2] + 2.0, rtol=1e-9)


def test_compile_stages_runs_the_pipeline():
    assert 0 < compile_stages() < 120  # from numba's cache after setup.sh; compiling takes ~20 s
