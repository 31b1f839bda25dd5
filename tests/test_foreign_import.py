"""`eyemotion import-foreign`: other labs' gaze recordings become sessions that the whole pipeline reads.

The Tobii 4C recording of oldstylejoe/tobii_streamer has no licence, so it is not committed: `tobii4c_xdf`
writes a synthetic file of the same layout (stream 'Tobii4C', type 'Gaze', 2 float32 channels of normalised
x/y, no desc, nominal rate 0, ~90 Hz with jitter and holes, no footer). The two xdf-modules example files are
committed (MIT) under tests/data/.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.foreign import MAX_GAP_S, ForeignError, import_foreign, load_mappings
from eyemotion.acquisition.replay import XdfWriter
from streamgen import viewing

from eyemotion.cli import main
from eyemotion.config import load_config
from eyemotion.session import Session, read_session_json

DATA = Path(__file__).parent / "data" / "xdf-modules-example-files"
TAG_FOOTER = 6


def _strip_footers(path: Path) -> None:
    """Drop the StreamFooter chunks (a recording whose recorder never closed it, like test.xdf)."""
    data, out, pos = path.read_bytes(), bytearray(b"XDF:"), 4
    while pos < len(data):
        nbytes = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 1 + nbytes], "little")
        end = pos + 1 + nbytes + length
        tag = struct.unpack("<H", data[pos + 1 + nbytes:pos + 3 + nbytes])[0]
        if tag != TAG_FOOTER:
            out += data[pos:end]
        pos = end
    path.write_bytes(bytes(out))


def tobii4c_xdf(path: Path, seconds: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic Tobii 4C recording; returns its (stamps, xy)."""
    rng = np.random.default_rng(seed)
    intervals = 1 / 90 + rng.normal(0, 0.0008, int(seconds * 90))
    stamps = 500.0 + np.cumsum(np.clip(intervals, 0.008, None))
    holes = ((stamps > 510.0) & (stamps < 510.05)) | ((stamps > 520.0) & (stamps < 520.3))  # 50 ms, 300 ms
    stamps = stamps[~holes]
    xy = viewing(stamps)["xy"].astype(np.float32)
    info = pylsl.StreamInfo("Tobii4C", "Gaze", 2, 0.0, pylsl.cf_float32, "")
    with XdfWriter(path) as w:
        w.add_stream(1, info.as_xml())
        for k in range(0, len(stamps), 32):
            w.write_samples(1, stamps[k:k + 32], xy[k:k + 32])
    _strip_footers(path)
    return stamps, xy


def test_tobii4c_layout_imports_resampled_with_missing_fields_stated(tmp_path: Path) -> None:
    stamps, xy = tobii4c_xdf(tmp_path / "test.xdf")
    config = load_config(None)
    folder, record = import_foreign(tmp_path / "test.xdf", config, participant="EXT01", sessions_dir=tmp_path / "s")
    assert record["mapping"] == "tobii-consumer-xy" and record["rate_hz"] == 90
    assert "pupil diameter" in record["missing"] and "eye openness" in record["missing"]
    assert any("validity" in m for m in record["missing"])
    assert any("pupil" in c for c in record["cannot_run"])
    # the simulated viewing: 350-ms fixations with 40-ms saccades (tests/streamgen.py)
    assert record["eye_signal"]["fixations"] > 50 and 200 < record["eye_signal"]["median_fixation_ms"] < 350
    meta = read_session_json(folder)
    assert meta["imported"]["source"].endswith("test.xdf") and meta["simulated_sources"] == []
    gaze = Session.load(folder).stream("Tobii_gaze")
    assert gaze.nominal_srate == 90
    assert np.allclose(np.diff(gaze.time_stamps), 1 / 90, atol=1e-6)  # a regular grid
    x = gaze.channel("x.position_on_display_area.gaze_point.left_eye")
    valid = gaze.channel("valid.gaze_point.left_eye") > 0
    truth = np.interp(gaze.time_stamps, stamps, xy[:, 0])
    ok = valid & np.isfinite(x)
    # linear interpolation between samples 11 ms apart: within the fixational jitter and saccade slopes
    assert np.median(np.abs(x[ok] - truth[ok])) < 2e-3
    in_long_hole = (gaze.time_stamps > 520.01) & (gaze.time_stamps < 520.29)
    in_short_hole = (gaze.time_stamps > 510.01) & (gaze.time_stamps < 510.04)
    assert in_long_hole.any() and not valid[in_long_hole].any()  # 300 ms > MAX_GAP_S: left invalid
    assert MAX_GAP_S > 0.06 and valid[in_short_hole].all()  # ~60 ms hole: interpolated
    assert np.isnan(gaze.channel("diameter.pupil.left_eye")).all()
    assert (gaze.channel("valid.pupil.left_eye") == 0).all() and (gaze.channel("available.pupil.left_eye") == 0).all()


def test_foreign_xdf_through_eyesignal_features_bids_report_replay(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    tobii4c_xdf(tmp_path / "test.xdf", seconds=25.0)
    sessions = tmp_path / "s"
    assert main(["import-foreign", str(tmp_path / "test.xdf"), "--participant", "EXT01", "--session-id", "S1",
                 "--sessions-dir", str(sessions)]) == 0
    out = capsys.readouterr().out
    assert "missing: pupil diameter" in out and "cannot run:" in out
    folder = sessions / "EXT01" / "S1"
    assert main(["eyesignal", "process", str(folder)]) == 0
    table = np.genfromtxt(folder / "eyemotion_gaze.csv", delimiter=",", names=True)
    assert len(table) > 2000 and np.isin(table["event"], [1, 2]).mean() > 0.5  # fixations and saccades found
    assert main(["features", str(folder)]) == 0
    stats = np.genfromtxt(folder / "features" / "gaze_statistics.csv", delimiter=",", names=True)
    assert len(stats) > 10
    assert main(["export", str(folder), "--bids", str(tmp_path / "bids")]) == 0
    physio = tmp_path / "bids" / "sub-EXT01" / "ses-S1" / "beh" / "sub-EXT01_ses-S1_task-emotion_recording-eye1_physio.tsv.gz"
    with gzip.open(physio, "rt") as f:
        rows = f.read().splitlines()
    assert len(rows) == len(Session.load(folder).stream("Tobii_gaze"))
    assert main(["report", str(folder)]) == 0
    assert "Imported from another lab" in (folder / "report" / "index.html").read_text()
    capsys.readouterr()
    assert main(["replay", str(folder), "--speed", "20"]) == 0
    replayed = capsys.readouterr().out
    n = len(Session.load(folder).stream("Tobii_gaze"))
    assert "Tobii_gaze@import-" in replayed and f": {n}," in replayed.replace(f": {n} samples", f": {n},")
    assert main(["sessions", str(sessions)]) == 0
    listing = capsys.readouterr().out
    assert "imported" in listing and "bids" in listing


def test_xdf_modules_files_are_refused_without_gaze_and_import_with_a_mapping(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    for name in ("minimal.xdf", "empty_streams.xdf"):
        assert main(["import-foreign", str(DATA / name), "--participant", "EXT02",
                     "--sessions-dir", str(tmp_path / "s")]) != 0
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eyemotion: error")]
        assert len(err) == 1 and "no ready-made mapping matches" in err[0] and "--mapping FILE.toml" in err[0]
    assert not (tmp_path / "s" / "EXT02").exists() or not any((tmp_path / "s" / "EXT02").iterdir())
    own = tmp_path / "own.toml"
    own.write_text('[eeg-as-gaze]\nformat = "xdf"\nmatch_name = "^SendDataC$"\nxy_units = "pixels"\n'
                   '[eeg-as-gaze.channels]\nx = 1\ny = 2\n')
    folder, record = import_foreign(DATA / "minimal.xdf", load_config(None), participant="EXT02",
                                    sessions_dir=tmp_path / "s", mapping=str(own))
    session = Session.load(folder)
    gaze = session.stream("Tobii_gaze")
    assert record["resampling"].startswith("kept: regular 10 Hz") and len(gaze) == 9
    assert gaze.channel("x.position_on_display_area.gaze_point.left_eye")[1] == pytest.approx(22 / 1920)
    texts = [m.fields.get("text") for m in session.markers.events("foreign_marker")]
    assert texts[1:5] == ["Hello", "World", "from", "LSL"]  # the string stream, as markers
    own.write_text('[counter]\nformat = "xdf"\nmatch_name = "^Data stream"\n[counter.channels]\nx = 0\ny = 0\n')
    folder, record = import_foreign(DATA / "empty_streams.xdf", load_config(None), participant="EXT03",
                                    sessions_dir=tmp_path / "s", mapping=str(own))
    assert len(Session.load(folder).stream("Tobii_gaze")) == 10
    assert any("is empty" in s for s in record["skipped"])


def test_pupil_labs_relay_layout(tmp_path: Path) -> None:
    labels = ["confidence", "norm_pos_x", "norm_pos_y", "diameter0_3d", "diameter1_3d"]
    info = pylsl.StreamInfo("pupil_capture", "Gaze", len(labels), 0.0, pylsl.cf_double64, "pc")
    chans = info.desc().append_child("channels")
    for lab in labels:
        chans.append_child("channel").append_child_value("label", lab)
    t = 100 + np.arange(1200) / 120
    data = np.column_stack([np.where(np.arange(1200) % 10 == 0, 0.2, 0.95), 0.25 + 0 * t, 0.8 + 0 * t,
                            3.0 + 0 * t, 3.4 + 0 * t])
    with XdfWriter(tmp_path / "pl.xdf") as w:
        w.add_stream(1, info.as_xml())
        w.write_samples(1, t, data)
    folder, record = import_foreign(tmp_path / "pl.xdf", load_config(None), participant="PL01",
                                    sessions_dir=tmp_path / "s")
    assert record["mapping"] == "pupil-labs-lsl" and "eye openness" in record["missing"]
    assert any("scene camera" in c for c in record["cannot_run"])
    gaze = Session.load(folder).stream("Tobii_gaze")
    y = gaze.channel("y.position_on_display_area.gaze_point.right_eye")
    valid = gaze.channel("valid.gaze_point.right_eye") > 0
    assert np.nanmedian(y) == pytest.approx(0.2)  # flipped: Pupil's y grows upwards
    assert not valid[::10].any() and valid.mean() == pytest.approx(0.9, abs=0.01)  # confidence 0.2 < 0.6: invalid
    assert np.nanmedian(gaze.channel("diameter.pupil.right_eye")) == pytest.approx(3.0)  # eye 0 = right
    assert np.nanmedian(gaze.channel("diameter.pupil.left_eye")) == pytest.approx(3.4)


def test_tobii_pro_lab_tsv(tmp_path: Path) -> None:
    t_us = (np.arange(600) * 1e6 / 60).astype(np.int64)
    lines = [("Recording timestamp [μs]\tGaze point X [DACS px]\tGaze point Y [DACS px]\tPupil diameter left [mm]\t"
              "Pupil diameter right [mm]\tValidity left\tValidity right")]
    for k, t in enumerate(t_us):
        bad = 100 <= k < 130
        lines.append(f"{t}\t{'' if bad else 960}\t{'' if bad else 270}\t3.1\t3.2\t"
                     f"{'Invalid' if bad else 'Valid'}\t{'Invalid' if bad else 'Valid'}")
    (tmp_path / "export.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    folder, record = import_foreign(tmp_path / "export.tsv", load_config(None), participant="TPL01",
                                    sessions_dir=tmp_path / "s")
    assert record["mapping"] == "tobii-pro-lab-tsv" and record["rate_hz"] == 60
    gaze = Session.load(folder).stream("Tobii_gaze")
    x = gaze.channel("x.position_on_display_area.gaze_point.left_eye")
    assert np.nanmedian(x) == pytest.approx(0.5) and np.nanmedian(
        gaze.channel("y.position_on_display_area.gaze_point.left_eye")) == pytest.approx(0.25)
    assert np.isnan(x[101:129]).all() and not np.isnan(x[:99]).any()
    assert "pupil diameter" not in record["missing"]


def test_bad_mapping_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[m]\nformat = "xdf"\n[m.channels]\nx = 0\n')
    with pytest.raises(ForeignError, match="maps no gaze point"):
        load_mappings(bad)
    bad.write_text('[m]\nformat = "xdf"\nsmoothing = 3\n[m.channels]\nx = 0\ny = 1\n')
    tobii4c_xdf(tmp_path / "t.xdf", seconds=2)
    assert main(["import-foreign", str(tmp_path / "t.xdf"), "--participant", "E1", "--mapping", str(bad),
                 "--sessions-dir", str(tmp_path / "s")]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eyemotion: error")]
    assert len(err) == 1 and "unknown keys ['smoothing']" in err[0]
    assert json.loads(json.dumps(sorted(load_mappings())))  # the ready-made file loads
