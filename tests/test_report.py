"""`eyemotion report`: the session report from a small real session folder (XDF written like LabRecorder)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import streamgen
from eyemotion.acquisition.markers import encode_marker
from eyemotion.acquisition.replay import XdfWriter
from eyemotion.stimuli.trials import TrialRecord, write_trials

from eyemotion import report_figures
from eyemotion.cli import main
from eyemotion.config import load_config
from eyemotion.report import write_report
from eyemotion.session import RECORDING_XDF, create_session_folder
from eyemotion.streams import CLASSES, EMOTION, FACE, GAZE_CLEAN, GAZE_RAW, MARKERS, stream_info

CLIPS = [("demo_anger", "anger", "anger", -0.75, 1.0), ("demo_fear", "fear", "happiness", 0.25, 0.5)]
WINDOW_S = 4.0


def _emotion(t: np.ndarray, onsets: list[float]) -> np.ndarray:
    """ER probabilities with a known top class per clip: 'anger' in clip 1 (0.6), 'surprise' in clip 2 (0.5)."""
    out = streamgen.emotion(t)
    er = np.full((len(t), len(CLASSES)), 0.1)
    for (onset, (_, _, _, _, _)), top, p in zip(zip(onsets, CLIPS), ("anger", "surprise"), (0.6, 0.5)):
        # windows whose centre lies in the clip
        inside = (t >= onset + WINDOW_S / 2) & (t <= onset + 3.0 + WINDOW_S / 2)
        er[inside] = (1 - p) / 6
        er[inside, CLASSES.index(top)] = p
    for i, c in enumerate(CLASSES):
        out[:, EMOTION.index(f"er_{c}")] = er[:, i]
    out[:, EMOTION.index("valence")] = -0.5
    return out


def make_session(root: Path, *, demo: bool = True, participant: str = "P001") -> Path:
    folder = create_session_folder(root, participant, "S01", demo=demo, protocol={"name": "test", "file": ""},
                                   screen={"width_px": 1920, "height_px": 1080, "width_mm": 531.0,
                                           "height_mm": 299.0, "distance_mm": 650.0})
    t0, dur = 100.0, 20.0
    onsets = [t0 + 4.0, t0 + 12.0]
    tg = t0 + np.arange(int(dur * 250)) / 250
    te = t0 + np.arange(int(dur * 2)) / 2
    tf = t0 + np.arange(int(dur * 12)) / 12
    with XdfWriter(folder / RECORDING_XDF) as w:
        w.add_stream(1, stream_info(GAZE_RAW, rate=250, extra={"simulated": "true"}).as_xml())
        w.write_samples(1, tg, streamgen.gaze_raw(tg))
        w.add_stream(2, stream_info(GAZE_CLEAN, rate=250).as_xml())
        w.write_samples(2, tg, streamgen.gaze_clean(tg))
        w.add_stream(3, stream_info(EMOTION, extra={"emert": "emert.onnx sha256:x", "window_s": str(WINDOW_S)})
                     .as_xml())
        w.write_samples(3, te, _emotion(te, onsets).astype(np.float32))
        w.add_stream(4, stream_info(FACE).as_xml())
        w.write_samples(4, tf, streamgen.face(tf).astype(np.float32))
        w.add_stream(5, stream_info(MARKERS).as_xml())
        w.write_samples(5, np.array(onsets), [[encode_marker("clip_onset", "runner", trial=i + 1)]
                                              for i in range(len(onsets))])
    records = [TrialRecord(participant=participant, trial=i + 1, block="main", block_index=1, clip_id=cid,
                           clip=f"{target}.mp4", target_emotion=target, clip_duration_s=3.0, clip_fps=25.0,
                           clip_frames=75, baseline_onset_lsl=on - 2.0, clip_onset_lsl=on, clip_offset_lsl=on + 3.0,
                           valence=val, arousal=aro, felt_emotion=felt, intensity=3)
               for i, ((cid, target, felt, val, aro), on) in enumerate(zip(CLIPS, onsets))]
    write_trials(folder, records)
    (folder / "session_summary.json").write_text(json.dumps({"session": {
        "gaps": [{"node": "camera", "start": 110.0, "end": 111.5}], "restarts": {"camera": 1, "tracker": 0},
        "gaze_to_prediction_ms": {"n": 40, "p50": 1600.0, "p95": 1900.0, "max": 2100.0}, "predictions": 40}}))
    return folder


def test_report_per_trial_estimates_figures_and_labels(tmp_path: Path) -> None:
    folder = make_session(tmp_path)
    assert main(["report", str(folder)]) == 0
    out = folder / "report"
    data = json.loads((out / "report.json").read_text())
    t1, t2 = data["trials"]
    assert t1["er"]["top"] == "anger" and t2["er"]["top"] == "surprise"
    assert t1["er"]["mean"][CLASSES.index("anger")] == pytest.approx(0.6, abs=1e-3)
    assert t1["er"]["sd"][CLASSES.index("anger")] == pytest.approx(0.0, abs=1e-3)
    assert t1["er"]["n"] == 7  # 2 Hz, window centres within the 3-s clip: ends 106.0 ... 109.0
    assert t1["valence_est"][0] == pytest.approx(-0.5, abs=1e-3)
    assert t1["fer"]["source"].startswith("FER (pretrained face model")
    # the streamgen viewing blinks 150 ms every 4 s: one blink inside each 3-s clip at most
    assert 0 <= t1["blink_pct"] <= 100 * 0.15 / 3 + 1
    assert math.isclose(t1["tracking_loss_pct"], t1["blink_pct"], abs_tol=2.0)
    assert data["models_trained_on_simulated_data"] and "emert.onnx" in data["models_trained_on_simulated_data"]
    assert data["simulated_sources"] == ["tracker", "camera", "microphone"]
    page = (out / "index.html").read_text()
    assert "not valid for real participants" in page and "Simulated sources" in page
    assert "demo_fear" in page and ("ER anger vs FER" in page or "both anger" in page)
    assert "p50 1600.0 ms" in page and "camera 1" in page
    assert "plain background" in page  # no protocol file here: the heat maps say so
    for name in ("confusion.png", "valence_arousal.png", "timeline_trial01.png", "heatmap_trial02.png"):
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
    assert not list(tmp_path.rglob(".report.*"))  # no temporary folder left


def test_real_session_without_simulated_desc_has_no_source_banner(tmp_path: Path) -> None:
    folder = make_session(tmp_path, demo=False)
    import eyemotion.session as session_mod

    session_mod.update_session_json(folder, simulated_sources=[])
    write_report(folder, load_config(None))
    page = (folder / "report" / "index.html").read_text()
    assert "Simulated sources" not in page
    assert "not valid for real participants" in page  # the shipped models still are simulated-trained


def test_failed_report_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_session(tmp_path)
    write_report(folder, load_config(None))
    before = (folder / "report" / "index.html").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_figures, "heatmap", broken)
    with pytest.raises(RuntimeError):
        write_report(folder, load_config(None))
    assert (folder / "report" / "index.html").read_text() == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".report")]
    assert (folder / RECORDING_XDF).exists()


def test_report_refuses_a_folder_that_is_not_a_session(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a session folder" in err[0]


def test_run_end_report_failure_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What `run`/`demo` call at the end: a report that cannot be written is a warning, the session stays."""
    from eyemotion.report import write_report_safely

    folder = make_session(tmp_path)
    (folder / RECORDING_XDF).write_bytes(b"XDF:broken")
    assert write_report_safely(folder, load_config(None)) is None
    assert "eyemotion report" in caplog.text and not (folder / "report").exists()
    assert (folder / RECORDING_XDF).read_bytes() == b"XDF:broken"
