"""The simulated eye tracker: realism of the generated gaze, and the live node over real LSL."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.markers import MarkerOutlet, parse_marker
from eyemotion.acquisition.simulator import (
    ACCURACY_DEG,
    BLINK_MAX_S,
    BLINK_MIN_S,
    LID_CLOSE_S,
    LID_OPEN_S,
    MIN_JERK_PEAK,
    PRECISION_RMS_DEG,
    PSO_S,
    PSO_TURN,
    SACC_D0_S,
    SACC_SLOPE_S_PER_DEG,
    GazeModel,
    GroundTruth,
    MousePointer,
    SimulatedTracker,
    simulate_recording,
)

from eyemotion import UserError, streams
from eyemotion.config import ScreenConfig, SimulatorConfig
from eyemotion.streams import CLASSES, EVENT_CODES, GAZE_RAW

RATE = 250.0
L = {c.label: i for i, c in enumerate(GAZE_RAW.channels)}


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the True runs of `mask`."""
    d = np.diff(np.r_[0, mask.astype(int), 0])
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def to_deg(x: np.ndarray, y: np.ndarray, screen: ScreenConfig) -> tuple[np.ndarray, np.ndarray]:
    return (np.degrees(np.arctan((x - 0.5) * screen.width_mm / screen.distance_mm)),
            np.degrees(np.arctan((y - 0.5) * screen.height_mm / screen.distance_mm)))


@pytest.fixture(scope="module")
def recording():
    return simulate_recording(180.0, RATE, seed=3)


def test_seeded_and_chunking_independent():
    a, ta = GazeModel(ScreenConfig(), RATE, seed=5).generate(3000)
    m = GazeModel(ScreenConfig(), RATE, seed=5)
    parts = [m.generate(n) for n in (1, 700, 13, 2286)]
    b = np.concatenate([p[0] for p in parts])
    assert np.allclose(a, b, equal_nan=True, rtol=0, atol=1e-9)  # chunking does not change the output
    assert np.array_equal(ta.event, np.concatenate([p[1].event for p in parts]))
    c, _ = GazeModel(ScreenConfig(), RATE, seed=5).generate(3000)
    assert np.array_equal(a, c, equal_nan=True)
    d, _ = GazeModel(ScreenConfig(), RATE, seed=6).generate(3000)
    assert not np.array_equal(a, d, equal_nan=True)


def test_layout_follows_tobii_conventions(recording):
    ts, s, truth = recording
    screen = ScreenConfig()
    assert s.shape == (len(ts), 37) and len(truth) == len(ts)
    for eye in ("left", "right"):
        valid = s[:, L[f"valid.gaze_point.{eye}_eye"]] == 1
        assert 0.5 < valid.mean() < 0.99
        inv = ~valid
        # invalid samples: NaN values, validity 0, availability 1
        for label in ("x.position_on_display_area.gaze_point", "diameter.pupil",
                      "z.position_in_user_coordinates.gaze_origin"):
            assert np.isnan(s[inv, L[f"{label}.{eye}_eye"]]).all()
            assert not np.isnan(s[valid, L[f"{label}.{eye}_eye"]]).any()
        assert (s[:, L[f"available.gaze_point.{eye}_eye"]] == 1).all()
        assert set(np.unique(s[:, L[f"valid.pupil.{eye}_eye"]])) == {0.0, 1.0}
        # display coordinates: normalised, user coordinates on the display plane (z = 0)
        x = s[valid, L[f"x.position_on_display_area.gaze_point.{eye}_eye"]]
        assert -0.05 < x.min() and x.max() < 1.05
        assert np.allclose(s[valid, L[f"z.position_in_user_coordinates.gaze_point.{eye}_eye"]], 0)
        ux = s[valid, L[f"x.position_in_user_coordinates.gaze_point.{eye}_eye"]]
        assert np.allclose(ux, -screen.width_mm / 2 + x * screen.width_mm)
        oz = s[valid, L[f"z.position_in_user_coordinates.gaze_origin.{eye}_eye"]]
        assert abs(np.median(oz) - screen.distance_mm) < 30
    lx = s[:, L["x.position_in_user_coordinates.gaze_origin.left_eye"]]
    rx = s[:, L["x.position_in_user_coordinates.gaze_origin.right_eye"]]
    assert 55 < np.nanmedian(rx - lx) < 70  # interpupillary distance, left eye at negative x
    # y up: gaze on the top of the display has a larger user y than gaze at the bottom
    y = s[:, L["y.position_on_display_area.gaze_point.left_eye"]]
    uy = s[:, L["y.position_in_user_coordinates.gaze_point.left_eye"]]
    ok = ~np.isnan(y)
    assert np.corrcoef(y[ok], uy[ok])[0, 1] < -0.99
    dev = s[:, 36]
    assert np.all(np.diff(dev) > 0) and abs(np.median(np.diff(dev)) - 1 / RATE) < 1e-6


def test_truth_matches_samples(recording):
    _ts, s, truth = recording
    blink = truth.event == EVENT_CODES["blink"]
    loss = truth.event == EVENT_CODES["loss"]
    invalid = s[:, L["valid.gaze_point.left_eye"]] == 0
    # invalid: tracking loss and the closed part of a blink; the lid's closing and opening stay valid
    assert np.array_equal(invalid, loss | (blink & (truth.openness_mm == 0)))
    assert (blink & ~invalid).sum() > (blink & invalid).sum() / 2
    assert set(np.unique(truth.event)) >= {EVENT_CODES[k] for k in ("fixation", "saccade", "blink", "pso", "pursuit")}
    assert np.isnan(s[loss, L["diameter.eye_openness.left_eye"]]).all()
    assert not np.isnan(s[blink, L["diameter.eye_openness.left_eye"]]).any()
    ok = ~invalid & ~blink  # the eyelid distorts the blink's valid samples (test below)
    pupil = (s[ok, L["diameter.pupil.left_eye"]] + s[ok, L["diameter.pupil.right_eye"]]) / 2
    assert np.abs(pupil - truth.pupil_mm[ok]).max() < 0.06
    gx = (s[ok, L["x.position_on_display_area.gaze_point.left_eye"]]
          + s[ok, L["x.position_on_display_area.gaze_point.right_eye"]]) / 2
    assert np.median(np.abs(gx - truth.x[ok])) < 0.02  # per-eye offsets and noise, ~0.3 deg
    assert np.isfinite(truth.pupil_mm).all() and (truth.pupil_mm > 1.5).all() and (truth.pupil_mm < 8).all()


def test_blinks_span_the_eyelid_event(recording):
    """A blink in the truth is the whole lid event: closing (valid but distorted: gaze drops, pupil shrinks,
    openness falls), closed for 75-425 ms (invalid), reopening (valid, distorted). Partial blinks only dip
    the lid and leave every sample valid."""
    _, s, truth = recording
    valid = s[:, L["valid.gaze_point.left_eye"]] == 1
    openness = s[:, L["diameter.eye_openness.left_eye"]]
    y = s[:, L["y.position_on_display_area.gaze_point.left_eye"]]
    pupil = s[:, L["diameter.pupil.left_eye"]]
    start, end = runs(truth.event == EVENT_CODES["blink"])
    full = partial = 0
    for a, b in zip(start, end):
        closed_a, closed_b = runs(~valid[a:b])
        assert len(closed_a) <= 1 and np.isfinite(openness[a:b]).all()
        assert np.nanmedian(openness[a - 60:a]) > 9.0  # open before
        if not len(closed_a):  # partial blink: the lid dips to 30-70 % closed, nothing invalid
            partial += 1
            assert 0.3 * 11 - 0.3 < openness[a:b].min() < 0.7 * 11 + 0.3
            continue
        full += 1
        ca, cb = a + closed_a[0], a + closed_b[0]
        assert BLINK_MIN_S - 1e-9 <= (cb - ca) / RATE <= BLINK_MAX_S + 1e-9
        assert LID_CLOSE_S[0] - 2 / RATE <= (ca - a) / RATE <= LID_CLOSE_S[1] + 1 / RATE  # valid, lid closing
        assert LID_OPEN_S[0] - 2 / RATE <= (b - cb) / RATE <= LID_OPEN_S[1] + 1 / RATE  # valid, lid opening
        lid = truth.openness_mm
        assert openness[ca:cb].max() < 1.0 and np.all(np.diff(lid[a:ca]) < 0) and np.all(np.diff(lid[cb:b]) > 0)
        assert openness[ca - 1] < 4.0 and openness[a] > 9.0 and openness[cb] < 4.0 and openness[b - 1] > 9.0
        assert y[ca - 1] > y[a - 1] + 0.01  # the gaze drops as the lid covers the pupil
        assert pupil[ca - 1] < pupil[a - 1] - 0.2 and pupil[cb] < pupil[b] - 0.2  # the pupil looks smaller
    assert full >= 15 and partial >= 3  # ~17 per minute at baseline, a quarter of them partial, over 3 minutes


def test_post_saccadic_oscillations_follow_every_saccade(recording):
    """Each saccade ends in a PSO of 12-40 ms: one damped cycle of 0.15-0.5 deg, at most a quarter of the
    saccade's amplitude (Nystrom & Holmqvist 2010; Hooge et al. 2015); the overshoot's outward part is labelled saccade and the
    PSO starts where the eye turns back (N&H 2010: the saccade ends at the first velocity minimum), in samples at
    the sampled overshoot's extreme, where Zemblys et al. 2018's expert starts it."""
    _, _, truth = recording
    ax, ay = to_deg(truth.x, truth.y, ScreenConfig())
    ev = truth.event
    start, end = runs(ev == EVENT_CODES["saccade"])
    pso_len, ratio, swing, fast, n_pso = [], [], [], 0, 0
    for a, b in zip(start, end):
        if a == 0 or b >= len(ev) - 20:
            continue
        assert ev[b] == EVENT_CODES["pso"]  # always right after the saccade
        c = b + int(np.argmax(ev[b:] != EVENT_CODES["pso"]))
        pso_len.append((c - b) / RATE)
        dx, dy = ax[c] - ax[a - 1], ay[c] - ay[a - 1]
        amp = math.hypot(dx, dy)
        if amp > 2 and ev[c] == EVENT_CODES["fixation"]:  # measured against the still eye after it
            beyond = ((ax[a:c] - ax[c]) * dx + (ay[a:c] - ay[c]) * dy) / amp  # overshoot along the saccade
            ratio.append((beyond.max(), amp))
            turn = a + int(np.argmax(beyond))
            swing.append((beyond.max(), -beyond[turn - a:].min()))
            assert turn == b  # the PSO label starts at the sampled turning point
        speed = np.hypot(np.diff(ax[b - 1:c + 1]), np.diff(ay[b - 1:c + 1]))[:-1] * RATE
        fast, n_pso = fast + int((speed > 30).sum()), n_pso + (c - b)
    pso_len, ratio = np.asarray(pso_len), np.asarray(ratio)
    assert len(pso_len) > 300
    labelled = (1 - PSO_TURN) * np.asarray(PSO_S)  # from the turning point to the end, each on the sample grid
    assert pso_len.min() >= labelled[0] - 2 / RATE and pso_len.max() <= labelled[1] + 2 / RATE
    assert 0.015 < np.median(pso_len) < 0.028
    peak = ratio[:, 0]
    assert 0.25 < np.median(peak) < 0.4 and peak.max() < 0.52 and (peak <= 0.26 * ratio[:, 1]).all()
    assert peak.min() < 0.2 and np.corrcoef(peak, ratio[:, 1])[0, 1] < 0.3  # not proportional to the saccade
    # the undershoot is half the overshoot (Zemblys et al.'s EyeLink PSOs: median .50, zemblys.pso_swings); measured
    # here .49 (the exp(-3u) cycle before: .22)
    over, under = np.asarray(swing).T
    assert 0.4 < np.median(under / over) < 0.6
    # PSO samples faster than a 30 deg/s I-VT threshold: 42 % here (before: 32 %); issue 14 measured 40-48 % on the
    # held-back Tobii recordings
    assert 0.35 < fast / n_pso < 0.5


def test_smooth_pursuit_with_catch_up_saccades(recording):
    """Following moving content: eye speeds of 6-30 deg/s, and catch-up saccades between pursuit runs."""
    _, _, truth = recording
    ax, ay = to_deg(truth.x, truth.y, ScreenConfig())
    ev = truth.event
    start, end = runs(ev == EVENT_CODES["pursuit"])
    speeds = [np.median(np.hypot(np.diff(ax[a:b]), np.diff(ay[a:b]))) * RATE for a, b in zip(start, end) if b - a > 10]
    assert len(speeds) > 30 and 0.08 < (ev == EVENT_CODES["pursuit"]).mean() < 0.4
    assert min(speeds) > 5.0 and max(speeds) < 31.0 and 9 < np.median(speeds) < 25
    # catch-up saccades: pursuit, saccade, PSO, pursuit again
    catch_up = sum(1 for b, a2 in zip(end[:-1], start[1:]) if set(ev[b:a2]) <= {EVENT_CODES["saccade"], EVENT_CODES["pso"]}
                   and ev[b] == EVENT_CODES["saccade"])
    assert catch_up >= 10
    # static-image viewing: none
    _, _, still = simulate_recording(30.0, RATE, seed=3, pursuit_share=0.0)
    assert not (still.event == EVENT_CODES["pursuit"]).any()


@pytest.mark.parametrize("rate", [60.0, 120.0, 250.0])
def test_precision_and_accuracy_follow_the_fusion_specification(rate):
    """Binocular RMS sample-to-sample precision on fixations ~0.04 deg, and a mean binocular offset of
    ~0.3 deg over participants (Tobii Pro Fusion specification, see the simulator's docstring). The precision
    holds on the display and in the gaze angle seen from the moving eye (gaze origin to gaze point, what the
    eye-signal processor computes): the head sways smoothly, so it adds no jitter of its own from sample to sample."""
    screen = ScreenConfig()
    rms, rms_seen, offsets = [], [], []
    for seed in range(24):
        _, s, truth = simulate_recording(8.0, rate, seed=seed)
        mx, my = to_deg(*((s[:, L[f"{c}.position_on_display_area.gaze_point.left_eye"]]
                           + s[:, L[f"{c}.position_on_display_area.gaze_point.right_eye"]]) / 2 for c in "xy"),
                        screen)
        tx, ty = to_deg(truth.x, truth.y, screen)
        fix = truth.event == EVENT_CODES["fixation"]
        pair = fix[1:] & fix[:-1]
        rms.append(np.sqrt(np.mean(np.diff(mx)[pair] ** 2 + np.diff(my)[pair] ** 2)))
        offsets.append(math.hypot(np.median((mx - tx)[fix]), np.median((my - ty)[fix])))
        seen = np.mean([[np.degrees(np.arctan2(
            s[:, L[f"{c}.position_in_user_coordinates.gaze_point.{eye}"]]
            - s[:, L[f"{c}.position_in_user_coordinates.gaze_origin.{eye}"]],
            s[:, L[f"z.position_in_user_coordinates.gaze_origin.{eye}"]])) for c in "xy"]
            for eye in ("left_eye", "right_eye")], axis=0)
        rms_seen.append(np.sqrt(np.mean(np.sum(np.diff(seen, axis=1)[:, pair] ** 2, axis=0))))
    assert abs(np.median(rms) / PRECISION_RMS_DEG - 1) < 0.2
    assert abs(np.median(rms_seen) / PRECISION_RMS_DEG - 1) < 0.2
    assert abs(np.mean(offsets) / ACCURACY_DEG - 1) < 0.3


def test_fixation_jitter_and_saccade_main_sequence(recording):
    _ts, _s, truth = recording
    screen = ScreenConfig()
    ax, ay = to_deg(truth.x, truth.y, screen)
    start, end = runs(truth.event == EVENT_CODES["fixation"])
    spreads = [np.sqrt(np.mean((ax[a:b] - ax[a:b].mean()) ** 2 + (ay[a:b] - ay[a:b].mean()) ** 2))  # RMS
               for a, b in zip(start, end) if b - a > 50 and (truth.event[a:b] == 1).all()]
    assert 0.01 < np.median(spreads) < 0.06
    start, end = runs(truth.event == EVENT_CODES["saccade"])
    amp, vpeak, dur = [], [], []
    for a, b in zip(start, end):
        if a == 0 or b >= len(ax):
            continue
        x, y = ax[a - 1:b + 1], ay[a - 1:b + 1]
        amp.append(math.hypot(x[-2] - x[0], y[-2] - y[0]))
        vpeak.append((np.hypot(np.diff(x), np.diff(y)) * RATE).max())
        dur.append((b - a) / RATE)
    amp, vpeak, dur = map(np.asarray, (amp, vpeak, dur))
    big = amp > 2
    predicted = MIN_JERK_PEAK * amp / (SACC_D0_S + SACC_SLOPE_S_PER_DEG * amp)  # min-jerk peak of the duration
    ratio = vpeak[big] / predicted[big]
    # 250 Hz sampling slightly underestimates the peak of short saccades
    assert 0.8 < np.median(ratio) < 1.1 and ratio.min() > 0.6 and ratio.max() < 1.2
    assert np.corrcoef(amp, vpeak)[0, 1] > 0.6 and np.corrcoef(amp, dur)[0, 1] > 0.6
    assert 0.024 <= np.median(dur[(amp > 4) & (amp < 8)]) <= 0.044  # 21 ms + 2.2 ms/deg (Carpenter 1988)


def test_conditioning_changes_pupil_blinks_and_fixations():
    stats = {}
    for emotion in ("anger", "sadness", "surprise"):
        _, s, truth = simulate_recording(240.0, RATE, seed=11, conditions=[(0.0, emotion)])
        start, _ = runs(truth.event == EVENT_CODES["blink"])
        fs, fe = runs(truth.event == EVENT_CODES["fixation"])
        stats[emotion] = (np.nanmean(s[:, L["diameter.pupil.left_eye"]]), len(start) / 4.0,
                          np.median(fe - fs) / RATE)
        assert (truth.emotion == CLASSES.index(emotion)).all()
    assert stats["anger"][0] - stats["sadness"][0] > 0.15  # arousal dilates the pupil
    assert stats["anger"][1] > 1.5 * stats["surprise"][1]  # blinks per minute
    assert stats["sadness"][2] > 1.3 * stats["anger"][2]  # fixation duration


def test_seven_classes_are_learnable_from_gaze_statistics():
    """Nearest-centroid on 20 s windows (pupil, blinks, fixation duration, saccade size) beats chance."""

    def features(seed: int) -> tuple[np.ndarray, np.ndarray]:
        conditions = [(20.0 * i, CLASSES[(i + seed) % 7]) for i in range(35)]
        _, s, truth = simulate_recording(700.0, RATE, seed=seed, conditions=conditions)
        ax, ay = to_deg(truth.x, truth.y, ScreenConfig())
        rows, labels = [], []
        for i in range(35):
            sl = slice(int(20 * i * RATE), int(20 * (i + 1) * RATE))
            ev = truth.event[sl]
            fs, fe = runs(ev == 1)
            ss, _se = runs(ev == 2)
            step = np.hypot(np.diff(ax[sl]), np.diff(ay[sl]))
            rows.append([np.nanmean(s[sl, L["diameter.pupil.left_eye"]]), len(runs(ev == 3)[0]),
                         np.mean(fe - fs) / RATE, step[ev[1:] == 2].sum() / max(len(ss), 1)])
            labels.append(truth.emotion[sl][0])
        return np.asarray(rows), np.asarray(labels)

    xtr, ytr = features(1)
    xte, yte = features(2)
    mu, sd = xtr.mean(0), xtr.std(0)
    centroids = np.stack([((xtr - mu) / sd)[ytr == k].mean(0) for k in range(7)])
    pred = np.argmin(((((xte - mu) / sd)[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == yte).mean() > 0.35  # chance is 1/7 (about 0.55 measured, classes overlap)


def test_light_response_constricts_the_pupil():
    m = GazeModel(ScreenConfig(), RATE, seed=2)
    m.set_luminance(0.1)
    _, dark = m.generate(int(8 * RATE))
    m.set_luminance(0.9)
    _, bright = m.generate(int(8 * RATE))
    assert dark.pupil_mm[-250:].mean() - bright.pupil_mm[-250:].mean() > 1.2
    # constriction settles within ~1 s
    assert bright.pupil_mm[250:500].mean() - bright.pupil_mm[-250:].mean() < 0.3


def test_bad_condition_is_refused():
    m = GazeModel(ScreenConfig(), RATE)
    with pytest.raises(UserError, match="unknown emotion 'joy'"):
        m.set_condition("joy")
    with pytest.raises(UserError, match="outside 0..1"):
        m.set_condition(arousal=3)


def test_truth_file_round_trip(tmp_path, recording):
    ts, _, truth = recording
    for name in ("t.npz", "t.csv"):
        path = GroundTruth(**{k: v[:500] for k, v in vars(truth).items()}).save(tmp_path / name, ts[:500])
        t2, tr2 = GroundTruth.load(path)
        assert np.allclose(t2, ts[:500]) and np.array_equal(tr2.event, truth.event[:500])
        assert np.allclose(tr2.pupil_mm, truth.pupil_mm[:500])


def _pull_all(inlet, until, into, stamps):
    while True:
        data, ts = inlet.pull_chunk(timeout=0.1)
        into += data
        stamps += ts
        if not until():
            data, ts = inlet.pull_chunk(timeout=0.3)
            into += data
            stamps += ts
            if not data:
                return


def test_live_node_publishes_the_contract_at_rate_with_truth(config, namespace, tmp_path):
    truth_path = tmp_path / "truth.npz"
    node = SimulatedTracker(config, truth_path=truth_path)
    thread = threading.Thread(target=node.run, kwargs={"duration": 5.0, "handle_signals": False})
    thread.start()
    inlet = streams.open_inlet(GAZE_RAW, namespace=namespace, processing=pylsl.proc_none)
    info = inlet.info()
    assert streams.check_info(GAZE_RAW, info) == []
    assert info.source_id() == f"TittaLSL:Tobii_gaze@{config.simulator.serial}#{namespace}"
    assert info.nominal_srate() == 250.0
    assert streams.desc_value(info, "acquisition", "manufacturer") == "Tobii"
    assert streams.desc_value(info, "acquisition", "model") == "Tobii Pro Fusion"
    assert streams.desc_value(info, "acquisition", "serial_number") == config.simulator.serial
    inlet.open_stream(timeout=5)
    data, stamps = [], []
    _pull_all(inlet, thread.is_alive, data, stamps)
    thread.join()
    data, stamps = np.asarray(data), np.asarray(stamps)
    assert len(stamps) > 500
    assert np.all(np.diff(stamps) > 0)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert abs(rate - 250.0) / 250.0 < 0.01
    t_truth, truth = GroundTruth.load(truth_path)
    assert len(t_truth) == node.published
    # every received sample is a published one, with its truth
    idx = np.searchsorted(t_truth, stamps)
    np.testing.assert_allclose(t_truth[idx], stamps, rtol=0, atol=1e-9)
    invalid = np.isnan(data[:, L["diameter.pupil.left_eye"]])
    closed = (truth.event[idx] == EVENT_CODES["blink"]) & (truth.openness_mm[idx] == 0)
    assert np.array_equal(invalid, closed | (truth.event[idx] == EVENT_CODES["loss"]))
    ok = ~invalid & (truth.event[idx] != EVENT_CODES["blink"])
    assert np.abs(data[ok, L["diameter.pupil.left_eye"]] - truth.pupil_mm[idx][ok]).max() < 0.08


def test_live_conditioning_and_disconnect_via_markers(config, namespace):
    node = SimulatedTracker(config)
    thread = threading.Thread(target=node.run, kwargs={"duration": 9.0, "handle_signals": False})
    thread.start()
    runner = MarkerOutlet("runner", namespace=namespace)
    gaze = streams.open_inlet(GAZE_RAW, namespace=namespace, processing=pylsl.proc_none)
    tracker_markers = streams.open_inlet(streams.MARKERS, namespace=namespace,
                                         source_id=node.markers.outlet.get_info().source_id(),
                                         processing=pylsl.proc_none)
    gaze.open_stream(timeout=5)
    tracker_markers.open_stream(timeout=5)
    deadline = time.monotonic() + 5
    while node.model.emotion != "fear" and time.monotonic() < deadline:
        runner.push("clip_onset", clip="c1", emotion="fear")
        time.sleep(0.3)
    assert node.model.emotion == "fear"
    runner.push("simulate_disconnect", seconds=1.5)
    data, stamps = [], []
    _pull_all(gaze, thread.is_alive, data, stamps)
    thread.join()
    gaps = np.diff(stamps)
    assert gaps.max() > 1.3  # no samples while disconnected
    assert np.sort(gaps)[-2] < 0.1  # and a steady stream otherwise
    events = []
    for _ in range(20):
        texts, ts = tracker_markers.pull_chunk(timeout=0.2)
        events += [(parse_marker(t[0]), s) for t, s in zip(texts, ts)]
        if len(events) >= 2:
            break
    names = [e["event"] for e, _ in events]
    assert names == ["device_lost", "device_restored"]
    lost_t, restored_t = events[0][1], events[1][1]
    g = int(np.argmax(gaps))
    assert lost_t <= stamps[g + 1] and restored_t >= stamps[g] and events[1][0]["gap_s"] >= 1.4


def test_disconnect_api_and_reconnect(config, namespace):
    node = SimulatedTracker(config, follow_markers=False)
    node.open()
    try:
        for _ in range(10):
            node.step()
        before = node.published
        node.disconnect(1.5)
        assert not node.connected
        for _ in range(5):
            node.step()
        assert node.published == before
        deadline = time.monotonic() + 5
        while not node.connected and time.monotonic() < deadline:
            node.step()
        assert node.connected
        after = node.published
        for _ in range(10):
            node.step()
        assert node.published > after
    finally:
        node.close()


def test_mouse_mode_follows_the_pointer(xvfb_display):
    from Xlib import X, display

    d = display.Display(xvfb_display)
    root = d.screen().root
    geom = root.get_geometry()
    root.warp_pointer(int(geom.width * 0.8), int(geom.height * 0.25))
    d.sync()
    pointer = MousePointer(xvfb_display)
    x, y = pointer()
    assert abs(x - 0.8) < 0.01 and abs(y - 0.25) < 0.01
    m = GazeModel(ScreenConfig(), RATE, seed=1, target=pointer, loss_per_min=0)
    _, truth = m.generate(int(3 * RATE))
    fix = truth.event[-250:] == EVENT_CODES["fixation"]
    assert abs(np.median(truth.x[-250:][fix]) - 0.8) < 0.02 and abs(np.median(truth.y[-250:][fix]) - 0.25) < 0.02
    del X


def test_mouse_mode_without_display_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(UserError, match="needs a display"):
        MousePointer()


def test_unsupported_simulated_frequency(config):
    from eyemotion.config import TrackerConfig

    with pytest.raises(UserError, match="60, 120, 250"):
        SimulatedTracker(config.replace(tracker=TrackerConfig(frequency=100.0)))
    assert SimulatorConfig().mode == "random"


def test_the_simulated_participant_follows_calibration_targets(config):
    """calibration_point markers (the runner's targets) draw the simulated gaze; the end releases it."""
    from eyemotion.acquisition.simulator import SimulatedTracker

    from eyemotion.streams import GAZE_RAW

    tracker = SimulatedTracker(config, follow_markers=False)
    tracker.open()
    try:
        tracker.handle_marker({"event": "calibration_point", "phase": "validation", "x": 0.85, "y": 0.2})
        samples, truth = tracker.model.generate(int(tracker.rate * 3))
        last = slice(-int(tracker.rate), None)  # the last second: settled on the target
        on_target = (truth.event[last] == 1)
        assert abs(np.nanmedian(truth.x[last][on_target]) - 0.85) < 0.03
        assert abs(np.nanmedian(truth.y[last][on_target]) - 0.2) < 0.03
        x = samples[:, GAZE_RAW.index("x.position_on_display_area.gaze_point.left_eye")]
        assert abs(np.nanmedian(x[last]) - 0.85) < 0.05  # the published samples agree
        tracker.handle_marker({"event": "calibration", "phase": "accepted"})
        assert tracker.model.target is None  # free viewing again (random mode)
    finally:
        tracker.close()


def test_truth_log_spills_to_disk_and_survives_a_killed_tracker(tmp_path):
    """The live tracker's truth goes to `<file>.part` as it runs (flat memory in a long session); a killed
    tracker's rows, even a half-written last one, are kept and its restarted successor appends to them."""
    from eyemotion.acquisition.simulator import GroundTruth, TruthLog, simulate_recording

    _, _, truth = simulate_recording(2.0, 250, seed=3)
    stamps = 100.0 + np.arange(len(truth)) / 250
    half = len(truth) // 2
    first = TruthLog(tmp_path / "truth.npz")
    first.append(stamps[:half], GroundTruth(**{k: v[:half] for k, v in vars(truth).items()}))
    first._file.write(b"\0" * 12)  # killed in the middle of a row: never closed
    second = TruthLog(tmp_path / "truth.npz")
    second.append(stamps[half:], GroundTruth(**{k: v[half:] for k, v in vars(truth).items()}))
    assert second.close() == len(truth)
    assert not (tmp_path / "truth.npz.part").exists()
    loaded_t, loaded = GroundTruth.load(tmp_path / "truth.npz")
    np.testing.assert_array_equal(loaded_t, stamps)
    np.testing.assert_array_equal(loaded.x, truth.x)
    np.testing.assert_array_equal(loaded.event, truth.event)


def test_pursuit_share_option_reaches_the_live_tracker(config):
    """`[simulator] pursuit_share = 0` (static images): the live tracker's model never pursues; out of range
    is a clear error."""
    import dataclasses

    tracker = SimulatedTracker(config.replace(simulator=dataclasses.replace(config.simulator, pursuit_share=0.0)),
                               follow_markers=False)
    tracker.open()
    try:
        _, truth = tracker.model.generate(int(tracker.rate * 30))
        assert not (truth.event == EVENT_CODES["pursuit"]).any() and (truth.event == EVENT_CODES["pso"]).any()
    finally:
        tracker.close()
    with pytest.raises(UserError, match="simulator.pursuit_share"):
        SimulatorConfig(pursuit_share=1.5).validate()
