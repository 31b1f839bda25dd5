"""Protocol validation, schedules, demo clips, trials.csv, SAM mapping, validation maths and the Titta
adapter up to the device boundary (no window needed except where noted)."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from eyemotion.stimuli import calibration as cal
from eyemotion.stimuli.democlips import DEMO_CLIP_S, ensure_demo_clips, make_clip
from eyemotion.stimuli.protocol import (
    ProtocolError,
    balanced_latin_row,
    build_schedule,
    load_protocol,
    participant_number,
    probe_clip,
)
from eyemotion.stimuli.sam import ScaleSpec, auto_answer, to_unit
from eyemotion.stimuli.trials import TrialRecord, read_trials, write_trials

from eyemotion import UserError
from eyemotion.config import Config
from eyemotion.streams import CLASSES


@pytest.fixture(scope="module")
def clips() -> Path:
    return ensure_demo_clips()


def blocked_protocol(folder: Path, clips: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["id,clip,emotion,block"]
    for e in ("happiness", "sadness", "fear", "anger"):
        rows += [f"{e}_a,{e}.mp4,{e},", f"{e}_b,{e}.mp4,{e},"]
    (folder / "conditions.csv").write_text("\n".join(rows) + "\n")
    (folder / "p.toml").write_text(f'[protocol]\nconditions = "conditions.csv"\nclip_root = "{clips}"\n'
                                   '[randomisation]\nseed = 3\norder = "blocked"\n')
    return folder / "p.toml"


def test_demo_protocol_is_valid_and_points_at_generated_clips(clips):
    from eyemotion.stimuli.commands import DEMO_PROTOCOL

    protocol = load_protocol(DEMO_PROTOCOL)
    assert sorted(c.emotion for c in protocol.conditions) == sorted(CLASSES)
    for c in protocol.conditions:
        assert c.path.parent == clips and c.has_audio and c.duration_s == pytest.approx(DEMO_CLIP_S, abs=0.05)
    # long enough for `dataset build` to cut at least two windows of the models from every demo clip
    f = Config().features
    assert DEMO_CLIP_S >= max(f.emert_window_s, f.crossmodal_window_s) + 1.0


def test_broken_protocol_reports_every_problem(tmp_path, clips):
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    (tmp_path / "conditions.csv").write_text(
        "clip,emotion,notes\n"
        f"{clips / 'happiness.mp4'},happiness,ok\n"
        "missing.mp4,sadness,\n"
        "corrupt.mp4,fear,\n"
        f"{clips / 'anger.mp4'},rage,\n"
        f"{clips / 'happiness.mp4'},happiness,duplicate id\n")
    toml = tmp_path / "broken.toml"
    toml.write_text('[protocol]\nconditions = "conditions.csv"\ncolour = "red"\n'
                    "[durations]\nbaseline_s = -1.0\niti_s = \"long\"\nmax_clip_s = 2.0\n"
                    "[ratings]\nsam_points = 4\n[calibration]\npoints = 7\npoint_s = 0.5\n"
                    '[tracking]\non_lost = "panic"\n[extras]\nx = 1\n')
    with pytest.raises(ProtocolError) as err:
        load_protocol(toml)
    lines = str(err.value).splitlines()
    expected = ["unknown key protocol.colour", "durations.baseline_s must be within 0-3600", "durations.iti_s must be float",
                "ratings.sam_points must be 5, 7 or 9", "calibration.points must be 0, 1, 3, 5, 9 or 13",
                "calibration.point_s must be >= 0.8", "tracking.on_lost must be", "unknown section [extras]",
                "row 3: clip 'missing.mp4' not found", "row 4: clip 'corrupt.mp4' not a readable video",
                "row 5: unknown emotion 'rage'", "row 2: clip", "more than durations.max_clip_s",
                "row 6: clip id 'happiness' repeats row 2"]
    for text in expected:
        assert any(text in line for line in lines[1:]), (text, lines)
    assert lines[0].startswith(f"protocol broken.toml has {len(lines) - 1} problems")


def test_bad_protocol_cli_error_without_traceback_or_session(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('[protocol]\nconditions = "nope.csv"\n')
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    proc = subprocess.run([sys.executable, "-m", "eyemotion.cli", "stimuli", "run", str(toml), "-p", "P001"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "conditions table" in proc.stderr and "nope.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "sessions").exists()


def test_xlsx_conditions_are_read(tmp_path, clips):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Clip", "Emotion", "Notes"])
    sheet.append(["fear.mp4", "Fear", "from a spreadsheet"])
    book.save(tmp_path / "c.xlsx")
    (tmp_path / "p.toml").write_text(f'[protocol]\nconditions = "c.xlsx"\nclip_root = "{clips}"\n')
    (cond,) = load_protocol(tmp_path / "p.toml").conditions
    assert (cond.emotion, cond.clip_id, cond.notes) == ("fear", "fear", "from a spreadsheet")


def test_schedule_is_seeded_blocked_and_counterbalanced(tmp_path, clips):
    protocol = load_protocol(blocked_protocol(tmp_path, clips))
    a1, a2 = build_schedule(protocol, "P001"), build_schedule(protocol, "P001")
    assert [t.condition.clip_id for t in a1] == [t.condition.clip_id for t in a2]
    orders = {}
    for p in ("P001", "P002", "P003", "P004"):
        sched = build_schedule(protocol, p)
        assert sorted(t.condition.clip_id for t in sched) == sorted(c.clip_id for c in protocol.conditions)
        assert [t.trial for t in sched] == list(range(1, 9))
        blocks = [t.block for t in sched]
        assert all(len(set(g)) == 1 for g in (blocks[i:i + 2] for i in range(0, 8, 2)))  # emotion blocks
        orders[p] = tuple(dict.fromkeys(blocks))
    # four participants, four block orders; each block opens the session once (Latin square)
    assert len(set(orders.values())) == 4 and len({o[0] for o in orders.values()}) == 4
    assert participant_number("P017") == 17


def test_balanced_latin_square_is_carryover_balanced():
    n = 6
    rows = [balanced_latin_row(n, r) for r in range(n)]
    assert all(sorted(r) == list(range(n)) for r in rows)
    assert all(sorted(col) == list(range(n)) for col in zip(*rows))
    pairs = [p for r in rows for p in itertools.pairwise(r)]
    assert len(pairs) == len(set(pairs)) == n * (n - 1)  # every ordered neighbour pair exactly once


def test_demo_clip_has_picture_sound_and_emotion_brightness(tmp_path):
    bright = make_clip("happiness", tmp_path / "h.mp4", seconds=1.0)
    dark = make_clip("fear", tmp_path / "f.mp4", seconds=1.0)
    probe = probe_clip(bright)
    assert probe.has_audio and probe.fps == 25 and probe.frames == 25 and (probe.width, probe.height) == (320, 240)

    def mean_luma(path: Path) -> float:
        cap = cv2.VideoCapture(str(path))
        values = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            values.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).mean())
        cap.release()
        return float(np.mean(values))

    assert mean_luma(bright) > mean_luma(dark) + 60


def test_trials_csv_round_trip(tmp_path):
    rec = TrialRecord("P001", 1, "fear", 1, "c1", "fear.mp4", "fear", 3.0, 25.0, 75, clip_onset_lsl=12.5,
                      valence_sam=3, valence=to_unit(3, 9), felt_emotion="fear", intensity=4, tracker_lost=True)
    write_trials(tmp_path, [rec])
    (back,) = read_trials(tmp_path)
    assert back.valence_sam == 3 and back.valence == pytest.approx(-0.5) and back.tracker_lost is True
    assert back.arousal_sam is None and math.isnan(back.arousal) and back.clip_onset_lsl == 12.5
    assert not list(tmp_path.glob(".*.tmp"))


def test_sam_mapping_and_auto_answers_are_deterministic():
    assert [to_unit(p, 9) for p in (1, 5, 9)] == [-1.0, 0.0, 1.0]
    spec = ScaleSpec("valence", "", 9)
    assert auto_answer("happiness", "P001", 3, spec) == auto_answer("happiness", "P001", 3, spec)
    happy = [auto_answer("happiness", f"P{i:03d}", 1, spec)[0] for i in range(30)]
    sad = [auto_answer("sadness", f"P{i:03d}", 1, spec)[0] for i in range(30)]
    assert np.mean(happy) > np.mean(sad) + 3
    felt = [CLASSES[auto_answer("fear", f"P{i:03d}", 2, ScaleSpec("emotion", "", 7))[0] - 1] for i in range(50)]
    assert 0.6 < felt.count("fear") / 50 < 0.95


def test_validation_quality_recovers_a_known_offset():
    screen = type("S", (), {"width_mm": 531.0, "height_mm": 299.0, "distance_mm": 650.0})
    rng = np.random.default_rng(0)
    offset_deg = 1.0
    dx = math.tan(math.radians(offset_deg)) * 650.0 / 531.0  # 1 deg to the right of a central target
    per_point = []
    for target in [(0.5, 0.5)]:
        n = 60
        g = np.zeros((n, 9))
        g[:, 1] = target[0] + dx + rng.normal(0, 1e-4, n)
        g[:, 2] = target[1] + rng.normal(0, 1e-4, n)
        g[:, 5], g[:, 6] = g[:, 1], g[:, 2]
        g[:, 3] = g[:, 7] = 1
        g[:, 4] = g[:, 8] = 650.0
        per_point.append((target, g))
    result = cal.validation_quality(per_point, screen, 120.0, 0.5, 1, 5)
    assert result.accuracy_deg == pytest.approx(offset_deg, abs=0.02)
    assert 0 < result.precision_deg < 0.05 and result.data_loss_pct == 0


class FakeTittaTracker:
    """Stands in for titta's myTobii one level below our adapter (no Tobii here)."""

    def __init__(self, settings):
        self.settings = settings
        self.calibrated_on = None

    def init(self):
        pass

    def calibrate(self, win):
        self.calibrated_on = win

    def calibration_history(self):
        return [[2.1, 2.5, 0.3, 0.4, 5.0, 7.0, 0.1, 0.1, "not used"], [0.4, 0.6, 0.05, 0.07, 1.0, 3.0, 0.02, 0.02, "used"]]


def test_titta_adapter_settings_and_history(tmp_path):
    from eyemotion.stimuli.commands import DEMO_PROTOCOL

    from eyemotion.config import TrackerConfig

    protocol = load_protocol(DEMO_PROTOCOL)
    made = []

    def connect(settings):
        made.append(FakeTittaTracker(settings))
        return made[-1]

    results = cal.titta_calibrate("WIN", protocol, TrackerConfig(simulate=False, frequency=120.0,
                                  address="tet-tcp://10.0.0.5"), tmp_path, "P001", connect=connect)
    s = made[0].settings
    assert (s.SAMPLING_RATE, s.TRACKER_ADDRESS, s.N_CAL_TARGETS, s.eye_tracker_name) == (120, "tet-tcp://10.0.0.5", 5,
                                                                                        "Tobii Pro Fusion")
    assert len(s.VAL_POS_TOBII) == 4 and s.DATA_STORAGE_PATH == str(tmp_path) and made[0].calibrated_on == "WIN"
    assert [r.accepted for r in results] == [False, True]
    assert results[1].accuracy_deg == pytest.approx(0.5) and results[1].precision_deg == pytest.approx(0.06)
    assert results[1].good and not results[0].good


def test_titta_without_a_tracker_is_a_clear_error(tmp_path, xvfb_display):
    from eyemotion.stimuli.commands import DEMO_PROTOCOL

    from eyemotion.config import TrackerConfig

    protocol = load_protocol(DEMO_PROTOCOL)
    with pytest.raises(UserError, match="Tobii eye tracker not available through Titta"):
        cal.titta_calibrate(None, protocol, TrackerConfig(simulate=False), tmp_path, "P001")


def test_no_display_check(monkeypatch):
    from eyemotion.stimuli.runner import DisplayError, check_display

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DisplayError, match="no display available"):
        check_display()
