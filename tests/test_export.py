"""BIDS eye-tracking (BEP020, BIDS 1.11) and CSV export of the shared 30 s recording."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from eyemotion.acquisition.export import ExportError, export_bids, export_csv
from test_recorder import Recording, shared_recording

from eyemotion.cli import main
from eyemotion.config import config_from_dict
from eyemotion.session import Session

TRIALS = "trial,clip,target,valence,arousal,chosen\n1,demo_01,happiness,7,6,happiness\n"


@pytest.fixture(scope="module")
def session_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared recording copied (so adding trials.csv leaves the original alone)."""
    recording: Recording = shared_recording(tmp_path_factory)
    copy = tmp_path_factory.mktemp("export") / "P001" / "S01"
    shutil.copytree(recording.folder, copy)
    (copy / "trials.csv").write_text(TRIALS)
    return copy


@pytest.fixture(scope="module")
def bids(session_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bids")
    export_bids(session_copy, out, config_from_dict({}))
    return out


def _table(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_bids_eyetrack_files_follow_the_spec(bids: Path, session_copy: Path) -> None:
    beh = bids / "sub-P001" / "ses-S01" / "beh"
    prefix = "sub-P001_ses-S01_task-emotion"
    session = Session.load(session_copy)
    gaze = session.stream("Tobii_gaze")
    description = json.loads((bids / "dataset_description.json").read_text())
    assert description["BIDSVersion"] == "1.11.0" and description["Name"]
    assert (bids / "participants.tsv").read_text().splitlines() == ["participant_id", "sub-P001"]
    for label, eye in (("eye1", "left"), ("eye2", "right")):
        sidecar = json.loads((beh / f"{prefix}_recording-{label}_physio.json").read_text())
        for key in ("SamplingFrequency", "StartTime", "Columns", "RecordedEye", "SampleCoordinateSystem"):
            assert key in sidecar, key  # REQUIRED (continuous.yaml: Continuous, EyeTrack)
        assert sidecar["PhysioType"] == "eyetrack" and sidecar["RecordedEye"] == eye
        assert sidecar["Columns"][:3] == ["timestamp", "x_coordinate", "y_coordinate"]  # initial_columns
        assert sidecar["x_coordinate"]["Units"] and sidecar["y_coordinate"]["Units"]  # REQUIRED for eyetrack
        assert "diameter" in sidecar["pupil_size"]["Description"]
        rows = _table(beh / f"{prefix}_recording-{label}_physio.tsv.gz")
        assert len(rows) == len(gaze) and {len(r) for r in rows} == {len(sidecar["Columns"])}  # no header
        x = np.array([np.nan if r[1] == "n/a" else float(r[1]) for r in rows])
        expected = gaze.channel(f"x.position_on_display_area.gaze_point.{eye}_eye") * 1920
        np.testing.assert_allclose(x, expected, rtol=1e-12, equal_nan=True)
        events_sidecar = json.loads((beh / f"{prefix}_recording-{label}_physioevents.json").read_text())
        assert events_sidecar["Columns"][0] == "onset"
        assert events_sidecar["OnsetSource"] in sidecar["Columns"]
        events = _table(beh / f"{prefix}_recording-{label}_physioevents.tsv.gz")
        kinds = {r[2] for r in events}
        assert {"fixation", "saccade", "blink"} <= kinds
        assert any('"event": "sync_test"' in r[3] for r in events)
        onsets = [float(r[0]) for r in events]
        assert onsets == sorted(onsets)
    presentation = json.loads((beh / f"{prefix}_events.json").read_text())["StimulusPresentation"]
    for key in ("ScreenDistance", "ScreenOrigin", "ScreenResolution", "ScreenSize"):
        assert key in presentation  # REQUIRED with gaze-on-screen (checks/eyetrack.yaml)
    with open(beh / f"{prefix}_events.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
    assert header[:2] == ["onset", "duration"]
    with open(beh / f"{prefix}_beh.tsv") as f:
        beh_rows = list(csv.reader(f, delimiter="\t"))
    assert beh_rows == [["trial", "clip", "target", "valence", "arousal", "chosen"],
                        ["1", "demo_01", "happiness", "7", "6", "happiness"]]


@pytest.mark.skipif(shutil.which("bids-validator") is None,
                    reason="the official validator is not installed (npm install -g bids-validator)")
def test_official_bids_validator(bids: Path) -> None:
    result = subprocess.run(["bids-validator", str(bids), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    errors = [(issue["key"], [f["file"]["relativePath"] for f in issue["files"] if f.get("file")])
              for issue in report["issues"]["errors"]]
    # The npm package (bids-validator 1.x) predates BIDS 1.11, which added *_physioevents files: it reports
    # them as NOT_INCLUDED. Anything else is a real error.
    real = [(key, files) for key, files in errors
            if not (key == "NOT_INCLUDED" and all("_physioevents." in f for f in files))]
    assert real == []


def test_export_refuses_to_overwrite(bids: Path, session_copy: Path) -> None:
    with pytest.raises(ExportError, match="already holds this session's export"):
        export_bids(session_copy, bids, config_from_dict({}))


def test_csv_export(session_copy: Path, tmp_path: Path) -> None:
    files = export_csv(session_copy, tmp_path / "csv")
    names = {f.name for f in files}
    assert {"Tobii_gaze.csv", "eyemotion_audio.csv", "eyemotion_camera.csv", "eyemotion_markers.csv",
            "trials.csv"} <= names
    session = Session.load(session_copy)
    gaze = np.genfromtxt(tmp_path / "csv" / "Tobii_gaze.csv", delimiter=",", names=True)
    assert len(gaze) == len(session.stream("Tobii_gaze"))
    assert gaze.dtype.names[0] == "timestamp"
    with open(tmp_path / "csv" / "eyemotion_markers.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["event"] for r in rows] == [m.event for m in session.markers.markers]


def test_cli_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tmp_path / "none"), "--csv", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eyemotion: error:") and "does not exist" in err and "\n" not in err
