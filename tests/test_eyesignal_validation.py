"""Validation thresholds against the simulator's ground truth and pymovements' I-VT (seeded, deterministic).

The figures are those `eyemotion eyesignal validate` prints (SIMULATED data; the real-data figures are in
test_eyesignal_hooge.py). The bounds sit just below what the detector measures (180 s, seed 0; seeds 1 and 2 give
the same within 0.05), per class and rate; they are not all at the 0.8 aim of issue 14. Saccades follow the duration
main sequence (21 ms + 2.2 ms/deg, 25-45 ms for 2-10 deg): at 60 Hz a saccade is 1-3 samples, so one sample off at
an edge costs a third to a half of it. PSOs are labelled from the sampled overshoot's extreme, where Zemblys et al.
2018's expert starts them (until issue 14's stop 22: from the first sample after the continuous turn, up to a sample
later; saccade was then 0.76 / 0.86 / 0.84 and PSO 0.49 / 0.54 / 0.58), and last 9-31 ms: 1-3 samples at 60 Hz, 1-5
at 120 Hz, 2-9 at 250 Hz. Since issue 14's stop 23 a PSO's undershoot is half its overshoot, as after real PSOs
(test_eyesignal_zemblys.py; it was a fifth, and PSO measured 0.63 / 0.65 / 0.65, the other classes within 0.02).
Since stop 24 a PSO lasts less than pso_max_ms, and a larger saccade within a saccade's PSO reach is the next
saccade, not its PSO (PSO was 0.63 / 0.67 / 0.71, saccade 0.91 / 0.92 / 0.86). Since stop 25 a PSO lasts at most
pso_max_ms in whole samples (4 at 120 Hz, 2 at 60 Hz; it could last 5 and 3, 42 and 50 ms), and pursuit starts where
a saccade onto a moving target ends (PSO was 0.67 / 0.70 / 0.73). Since stop 26 a saccade starts at its first sample
in flight at 250 Hz, where that sample moves the eye less than the noise, and a PSO at the overshoot's extreme where
that is N&H's offset (saccade was 0.91 / 0.94 / 0.89, fixation at 250 Hz 0.89; now 0.91 / 0.95 / 0.94 and 0.91).
Since stop 27 a PSO is also found where the eye steps back out of N&H's offset farther than the steps' noise, a
return the centred velocity window averages away at 60-120 Hz, and lasts while the eye steps out of its last sample
farther than that noise, and a PSO's reach counts from the saccade's own offset (PSO was 0.72 / 0.73 / 0.74, saccade
0.91 / 0.95 / 0.94; now saccade 0.92 / 0.95 / 0.94). Since stop 28 a PSO return whose velocity falls below the PSO
threshold but goes on falling through the reach is no longer taken for movement, and an overshoot's extreme that
lies beyond both its neighbours by more than 3 noise SDs is a PSO even where its steps are shorter than the step
threshold (PSO was 0.74 / 0.75 / 0.75; then 0.76 / 0.76 / 0.75), and the PSO threshold is also the noise where the
eye has settled after the PSO's reach, which gained on the real data (Hooge et al. kappa inside all 12 coders' spread)
and cost the PSOs into pursuit here (PSO 0.76 / 0.75 / 0.74). Since stop 29 the simulated head sways smoothly: its
sample-to-sample jitter had made the gaze angle the processor computes from the gaze origin twice as noisy as the
Fusion's 0.04 deg at 60 Hz (test_simulator.py; PSO 0.76 / 0.79 / 0.78 then), and a PSO lasts while the eye steps out of
its last sample farther than the steps' noise alone (before the onset and after the PSO's reach), not also the onset
threshold (0.25 deg a sample at 60 Hz) (PSO 0.79 / 0.81 / 0.78). Since stop 30 a PSO into pursuit is judged on the steps
less the pursuit's (Larsson et al. 2013), as its return runs against the pursuit, a saccade that starts inside a
blink (the lid reopening) is blink (blink 0.85 / 0.85 / 0.87 -> 0.85 / 0.86 / 0.89), and a PSO also goes on while the
eye moves from its last sample to the sample after next farther than the noise of such two-sample displacements,
over the 40 ms before the onset the walk back found (before the onset moves on to the first sample in flight): PSO
reaches 0.82 / 0.84 / 0.82 (300 s: 0.806 / 0.829 / 0.814; static viewing 0.83 / 0.85 / 0.88), at the 0.8 aim; with
other seeds 60 Hz sits at it (0.808 and 0.796 over 300 s). What is left: the PSOs' slow ends, which the noise hides,
and the PSOs into pursuit (still the least found, `test_psos_into_pursuit_are_found`); at 60 Hz one sample is a third
to all of a PSO. A labeller that knows each PSO's
true start and the rest path after it, and keeps its samples more than 2 noise SDs from that path (`visible_psos`),
reaches 0.91 / 0.92 / 0.93. Fixation lost 0.01-0.03 when pursuit had to move steadily and last 80 ms (more of the
simulator's pursuit, and of the eyelid-distorted blink samples once called pursuit, is called fixation), which gained on
all three real data sets (issue 14's closing notes). The pupil RMSE inside true blinks counts the eyelid-distorted
samples the simulator adds around a blink, which 002's rule does not interpolate.
"""

from __future__ import annotations

import numpy as np
import pytest
from eyemotion.acquisition.simulator import simulate_recording
from eyemotion.inference.eyesignal.processor import OUT, process_recording
from eyemotion.inference.eyesignal.validate import (
    BLINK,
    FIX,
    PSO,
    PURSUIT,
    SAC,
    cohen_kappa,
    format_table,
    overlap_matches,
    runs,
    validate,
    visible_psos,
)

DURATION = 180.0
# rate: lower bounds of kappa for fixation, saccade, blink, PSO, pursuit
KAPPA = {60.0: (0.88, 0.91, 0.83, 0.81, 0.94), 120.0: (0.91, 0.95, 0.84, 0.83, 0.95),
         250.0: (0.91, 0.93, 0.87, 0.81, 0.91)}
KEYS = ("kappa_fixation", "kappa_saccade", "kappa_blink", "kappa_pso", "kappa_pursuit")


@pytest.fixture(scope="module")
def figures():
    return {f.rate: f for f in validate(tuple(KAPPA), DURATION, seed=0)}


@pytest.mark.parametrize("rate", list(KAPPA))
def test_validation_thresholds(figures, rate):
    f = figures[rate]
    assert f.samples == int(DURATION * rate)
    for key, bound in zip(KEYS, KAPPA[rate]):
        assert getattr(f, key) >= bound, key
    assert f.blinks_true >= 20 and f.blink_precision >= 0.95 and f.blink_recall >= 0.9
    assert f.pupil_rmse_blink_mm <= 0.25
    assert f.pupil_rmse_valid_mm <= 0.02
    assert f.pymovements_agreement >= 0.85 and f.pymovements_kappa >= 0.55
    assert 1.0 < f.delay_s <= 1.62 and (rate != 250.0 or f.delay_s <= 1.52)


@pytest.mark.parametrize(("rate", "bound"), [(60.0, 0.6), (120.0, 0.6), (250.0, 0.58)])
def test_psos_into_pursuit_are_found(rate, bound):
    """A PSO after a catch-up saccade returns against the pursuit, so its velocity cancels the pursuit's and its steps
    carry the pursuit's: judged on the absolute steps and velocity, 52 / 53 / 52 % of the true PSO samples into
    pursuit were PSO (180 s, seed 0, 60 / 120 / 250 Hz); on the steps less the pursuit's (Larsson et al. 2013)
    69 / 67 / 63 %, and 77 / 75 / 68 % with a PSO's two-sample displacements too."""
    t, raw, truth = simulate_recording(DURATION, rate=rate, seed=0, pursuit_share=0.1)
    code = process_recording(t, raw, rate).samples[:, OUT["event"]].astype(int)
    into = np.zeros(len(code), bool)
    for s, e in runs(truth.event == PSO):
        into[s:e] = e < len(code) and truth.event[e] == PURSUIT
    assert into.sum() > 50 and np.mean(code[into] == PSO) >= bound


@pytest.mark.parametrize("rate", [120.0, 250.0])
def test_the_lid_reopening_is_blink_not_saccade(rate):
    """As the lid reopens it drags the pupil's image; where the vertical velocity has fallen below the onset threshold
    the blink's extension ends, and the rest of that movement, a saccade that starts inside the blink, had been saccade
    and PSO: 1.7 / 2.4 % of the true blink samples at 120 / 250 Hz (180 s, seed 0). Now it is the blink's."""
    t, raw, truth = simulate_recording(DURATION, rate=rate, seed=0, pursuit_share=0.1)
    code = process_recording(t, raw, rate).samples[:, OUT["event"]].astype(int)
    blink = truth.event == BLINK
    assert blink.sum() > 0.05 * len(code) and np.mean(np.isin(code[blink], (SAC, PSO))) < 0.005


def test_table_prints_every_rate(figures):
    table = format_table(list(figures.values()))
    assert "60 Hz" in table and "250 Hz" in table and "kappa saccade" in table


@pytest.mark.parametrize("rate", [60.0, 120.0, 250.0])
def test_saccade_edges_are_not_smeared(rate):
    """Issue 14: saccades started early and lasted too long (the centred velocity window). Onsets now land
    within a sample of the true first sample (median) and detected saccades are as long as the true ones
    (median, within a sample)."""
    t, raw, truth = simulate_recording(120.0, rate, seed=1)
    code = process_recording(t, raw, rate).samples[:, OUT["event"]].astype(int)
    true_runs, found = runs(truth.event == 2), runs(code == 2)
    j = np.clip(np.searchsorted(found[:, 0], true_runs[:, 0]), 1, len(found) - 1)
    nearest = np.where(np.abs(found[j - 1, 0] - true_runs[:, 0]) < np.abs(found[j, 0] - true_runs[:, 0]),
                       found[j - 1, 0], found[j, 0])
    lag = nearest - true_runs[:, 0]
    assert abs(np.median(lag[np.abs(lag) < 10])) <= 1
    assert abs(np.median(np.diff(found, axis=1)) - np.median(np.diff(true_runs, axis=1))) <= 1


def test_metrics_helpers():
    assert cohen_kappa(np.array([1, 1, 0, 0]), np.array([1, 1, 0, 0])) == 1.0
    assert cohen_kappa(np.array([1, 0, 1, 0]), np.array([0, 1, 0, 1])) == -1.0
    a = np.array([[0, 5], [10, 12], [20, 30]])
    b = np.array([[4, 6], [13, 19], [29, 40]])
    assert overlap_matches(a, b) == 2 and overlap_matches(b, a) == 2
    assert overlap_matches(a, np.zeros((0, 2), int)) == 0


def test_visible_psos_keep_what_lies_2_noise_sds_from_the_rest_path():
    """Each PSO keeps its start and its samples through the last one more than 2 SDs from the rest path, the true
    path after it extrapolated back (here a pursuit at 0.1 deg a sample); a PSO with no such sample is fixation."""
    event = np.array([FIX] * 3 + [SAC] * 2 + [PSO] * 4 + [FIX] * 4 + [SAC] * 2 + [PSO] * 2 + [FIX] * 4)
    x = 0.1 * np.arange(len(event), dtype=float)  # the rest path
    x[5:9] += [0.5, -0.3, 0.15, 0.05]  # seen, seen (2 SDs are 0.2), then within the noise
    x[15:17] += [0.1, -0.05]  # never seen
    y = np.zeros(len(event))
    seen = visible_psos(event, x, y, noise_sd=0.1)
    assert runs(seen == PSO).tolist() == [[5, 7]]
    assert np.all(seen[7:9] == FIX) and np.all(seen[15:17] == FIX)
    assert np.array_equal(seen[event != PSO], event[event != PSO])


def test_static_viewing_has_no_pursuit_kappa_and_a_bad_share_is_refused():
    """`--pursuit-share 0` simulates static images: the truth holds no pursuit, so its kappa is undefined and printed
    as '-' (not 1.0 for two empty labellings); a share outside 0-1 gets a one-line error and a non-zero exit."""
    import subprocess
    import sys
    from pathlib import Path

    static = validate((250.0,), 20.0, pursuit_share=0.0)[0]
    assert np.isnan(static.kappa_pursuit) and static.kappa_fixation > 0.8
    assert format_table([static]).splitlines()[6].split() == ["kappa", "pursuit", "-"]
    eyemotion = Path(sys.executable).with_name("eyemotion")
    bad = subprocess.run([str(eyemotion), "eyesignal", "validate", "--pursuit-share", "1.5"], capture_output=True,
                         text=True, timeout=120, check=False)
    assert bad.returncode != 0 and "--pursuit-share 1.5 is not a share" in bad.stderr
