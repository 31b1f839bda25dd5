"""Real data coded sample by sample: two recordings of Zemblys et al. 2018's lookAtPoint_EL (tests/data/zemblys2018,
MIT), one expert's fixations, saccades, PSOs and blinks, fed at 250 Hz.

Thresholds sit below the figures measured on this subset (the five recordings' figures are in the README).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eyemotion.inference.eyesignal import zemblys

from eyemotion import UserError
from eyemotion.streams import EVENT_CODES


@pytest.fixture(scope="module")
def figures():
    return zemblys.validate(zemblys.load())


def test_subset_loads_at_250_hz():
    recs = zemblys.load()
    assert [r.name for r in recs] == ["lookAtPoint_EL_S1", "lookAtPoint_EL_S6"]
    for r in recs:
        assert np.allclose(np.diff(r.t_s), 0.004, atol=1e-4)  # every 4th sample of 1000 Hz
        assert np.isnan(r.x_px[r.expert == EVENT_CODES["blink"]]).any()  # EyeLink's blinks: invalid samples
        assert (r.expert == EVENT_CODES["pso"]).sum() > 100


def test_the_expert_starts_a_pso_at_the_overshoots_extreme():
    """The simulator's PSO label convention (acquisition/simulator.py) checked on real coding: the expert's first PSO
    sample is the sampled overshoot's extreme (median 0 samples), at the native 1000 Hz and at 250 Hz."""
    for rate, reach, spread in ((1000.0, 15, 3), (250.0, 4, 1)):
        offsets = zemblys.pso_starts(zemblys.load(rate=rate), reach=reach)
        assert len(offsets) > 150  # 182 PSOs after saccades of 1 deg or more on this subset
        assert np.median(offsets) == 0
        assert -spread <= np.percentile(offsets, 25) and np.percentile(offsets, 75) <= 1


def test_the_undershoot_is_half_the_overshoot():
    """The simulator's PSO shape (acquisition/simulator.py) checked on real recordings: after the expert's PSOs, the
    eye swings back past its resting place by about half as far as it overshot it (this subset: median .52 at
    1000 Hz and .51 at 250 Hz; all five recordings: .50 at 1000 Hz, over 322 PSOs of more than 0.05 deg)."""
    for rate in (1000.0, 250.0):
        swings = zemblys.pso_swings(zemblys.load(rate=rate))
        over, under = swings[swings[:, 0] > 0.05].T
        assert len(over) > 120  # 138 and 133 on this subset
        assert 0.4 < np.median(under / over) < 0.65
        assert 0.2 < np.median(over) < 0.45  # deg; the simulator draws 0.15-0.5


def test_detector_agrees_with_the_expert(figures):
    ours = figures.detectors["eyemotion"]
    # measured on this subset: fixation .827, saccade .844, PSO .640, blink .920
    assert ours.kappa["fixation"] >= 0.74 and ours.kappa["saccade"] >= 0.78
    assert ours.kappa["pso"] >= 0.5 and ours.kappa["blink"] >= 0.85
    for other in ("remodnav", "pymovements I-VT"):  # ahead of both anchors on saccades, of REMoDNaV on PSOs
        assert ours.kappa["saccade"] > figures.detectors[other].kappa["saccade"]
    assert ours.kappa["pso"] > figures.detectors["remodnav"].kappa["pso"]
    assert ours.events["blink"] == figures.expert.events["blink"]  # every blink, the short-gap ones too
    assert math.isnan(figures.detectors["pymovements I-VT"].kappa["pso"])  # I-VT has no PSO class
    expert = figures.expert
    assert expert.kappa["saccade"] == pytest.approx(1.0) and expert.events["blink"] == 23
    # not over-segmenting: fewer saccade events than 1.2x the expert's (issue 14 found 1.57x on Tobii data)
    assert ours.events["saccade"] <= 1.2 * expert.events["saccade"]
    table = zemblys.format_table(figures)
    assert "kappa pso" in table and "remodnav" in table


def test_scores_count_runs_per_recording():
    fix, sac = EVENT_CODES["fixation"], EVENT_CODES["saccade"]
    expert = np.array([fix, fix, sac, sac, fix, fix, sac, -1])
    codes = np.array([fix, sac, fix, sac, sac, sac, sac, fix])
    s = zemblys.score(codes, expert, breaks=np.array([0, 5]), rate=250.0)
    assert s.events["saccade"] == 3  # [1, 2), and [3, 7) split where the second recording starts
    assert s.median_ms["saccade"] == 8.0  # 1, 2 and 2 samples at 250 Hz
    labelled = expert >= 0
    a, b = codes[labelled] == sac, expert[labelled] == sac
    po = np.mean(a == b)
    pe = a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean())
    assert s.kappa["saccade"] == pytest.approx((po - pe) / (1 - pe))


def test_bad_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="lookAtPoint_EL"):
        zemblys.load(tmp_path)
    (tmp_path / "lookAtPoint_EL_S1.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match="not a lookAtPoint_EL recording"):
        zemblys.load(tmp_path)
    with pytest.raises(UserError, match="divide"):
        zemblys.load(zemblys.DEFAULT_DATA, rate=300.0)


def test_the_validate_command_prints_every_table(tmp_path):
    eyemotion = Path(sys.executable).with_name("eyemotion")
    out = tmp_path / "figures.json"
    result = subprocess.run([str(eyemotion), "eyesignal", "validate", "--rates", "120", "--duration", "20",
                             "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for heading in ("SIMULATED data", "Hooge et al. 2018", "Zemblys et al. 2018 lookAtPoint_EL"):
        assert heading in result.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == {"simulator", "hooge2018", "zemblys2018", "gazecom"}
    assert figures["gazecom"] is None and "pass --gazecom" in result.stdout  # no GazeCom data is committed
    assert figures["zemblys2018"]["expert"]["events"]["blink"] == 23


def test_real_data_is_chunk_invariant():
    """Live, replay and offline give the same events on real data too, with every class it holds (the blinks
    here are gaps shorter than 75 ms inside eyelid artefacts, seeded by `_gap_blinks`)."""
    import dataclasses
    import itertools

    from eyemotion.config import EyesignalConfig
    from eyemotion.inference.eyesignal.hooge import tobii_gaze
    from eyemotion.inference.eyesignal.processor import OUT, EyeSignalOutput, EyeSignalProcessor, process_recording

    rec = zemblys.load()[0]
    raw = tobii_gaze(rec.x_px, rec.y_px, zemblys.SCREEN)
    every_push = dataclasses.replace(EyesignalConfig(), compute_block_ms=0.0)
    for cfg, high in ((None, 40), (every_push, 5)):
        whole = process_recording(rec.t_s, raw, zemblys.RATE, cfg, zemblys.SCREEN)
        codes = set(whole.samples[:, OUT["event"]].astype(int).tolist())
        assert {EVENT_CODES[k] for k in ("fixation", "saccade", "pso", "blink")} <= codes
        proc = EyeSignalProcessor(zemblys.RATE, cfg, zemblys.SCREEN)
        bounds = np.r_[0, np.cumsum(np.random.default_rng(3).integers(1, high, len(rec.t_s)))]
        parts = [proc.push(rec.t_s[a:b], raw[a:b]) for a, b in itertools.pairwise(bounds) if a < len(rec.t_s)]
        streamed = EyeSignalOutput.concat([*parts, proc.flush()])
        assert np.array_equal(streamed.samples, whole.samples, equal_nan=True) and streamed.events == whole.events


def test_a_short_gap_is_a_blink_only_when_the_gaze_swings_away_and_back():
    from eyemotion.inference.eyesignal.hooge import tobii_gaze
    from eyemotion.inference.eyesignal.processor import OUT, process_recording

    rate, n = 250.0, 1000
    t = np.arange(n) / rate
    rng = np.random.default_rng(1)

    def labelled(y_path: np.ndarray) -> np.ndarray:
        x = 960.0 + rng.normal(0, 1.0, n)
        y = y_path + rng.normal(0, 1.0, n)
        y[500:512] = np.nan  # 48 ms invalid: a gap by 002's rule (< 75 ms)
        out = process_recording(t, tobii_gaze(x, y, zemblys.SCREEN), rate, None, zemblys.SCREEN)
        return out.samples[:, OUT["event"]].astype(int)

    swing = np.full(n, 540.0)
    swing[488:500] = 540.0 + np.linspace(0, 300, 12)  # the lid drags the gaze down ...
    swing[512:524] = 540.0 + np.linspace(300, 0, 12)  # ... and back after the pupil reappears
    blink = labelled(swing) == EVENT_CODES["blink"]
    assert blink[500:512].all() and blink[490:522].mean() > 0.8

    saccade = np.full(n, 540.0)
    saccade[488:500] = 540.0 + np.linspace(0, 300, 12)  # a saccade into the gap, and the eye stays there
    saccade[500:] = 840.0
    assert not (labelled(saccade) == EVENT_CODES["blink"]).any()
