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
    err = capsys.readouterr().err.strip().split("\r")[-1]  # after tqdm's progress bar, if any
    assert err.startswith("eyemotion: error:") and "does not exist" in err and "\n" not in err


# ---- issue 13: atomic outputs, merged participants, one-line file-system errors, the official validator ----

EXPORT_CONFIG = {"export": {"authors": ["Ada Lovelace", "Alan Turing"], "license": "CC0",
                            "institution_name": "Test Lab", "institution_address": "1 Test Street",
                            "institution_department": "Psychology"}}
# Recommended keys the export cannot honestly fill: we annotate no HED tags, a raw dataset has no source
# dataset, and the task has no Cognitive Atlas / CogPO term.
UNAVOIDABLE = {"HEDVersion", "SourceDatasets", "CogAtlasID", "CogPOID"}


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], check=False, capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A 200 kB tmpfs (a real full disk). Without root/mount: one level below our code, the gzip and file
    writes of the export raise ENOSPC once 200 kB are written (`real` says which one the test got)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if _mount("-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)):
        yield folder, True
        subprocess.run(["umount", str(folder)], check=True)
        return
    yield folder, False  # the test patches below our code itself (see _fill_up)


@pytest.fixture
def read_only(tmp_path: Path):
    """A read-only bind mount of a folder (a real EROFS); without mount rights the folder is made 0o555
    (EACCES for a non-root user) -- both are file-system errors our CLI must report in one line."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if _mount("--bind", str(folder), str(folder)):
        if _mount("-o", "remount,bind,ro", str(folder)):
            yield folder
        else:
            folder.chmod(0o555)
            yield folder
        subprocess.run(["umount", str(folder)], check=True)
        return
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # tqdm's progress bars
    assert len(lines) == 1 and lines[0].startswith("eyemotion: error:") and "Traceback" not in err, err
    return lines[0]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_bids_export_on_a_full_disk_leaves_nothing_and_a_retry_succeeds(
        session_copy: Path, small_disk: tuple[Path, bool], capsys: pytest.CaptureFixture) -> None:
    disk, real = small_disk
    if not real:
        pytest.skip("needs root to mount a tmpfs; the fallback below our code is "
                    "test_staged_output_failure_leaves_nothing")
    out = disk / "bids"
    assert main(["export", str(session_copy), "--bids", str(out)]) == 2
    err = _one_line(capsys)
    assert str(out) in err and "no space left" in err
    assert _files(disk) == [] and list(disk.iterdir()) == []  # no 0-byte dataset_description.json, no staging
    assert main(["export", str(session_copy), "--csv", str(disk / "csv")]) == 2
    assert "no space left" in _one_line(capsys) and list(disk.iterdir()) == []
    assert _mount("-o", "remount,size=30m", str(disk))  # space freed
    assert main(["export", str(session_copy), "--bids", str(out)]) == 0
    assert json.loads((out / "dataset_description.json").read_text())["BIDSVersion"]
    assert main(["export", str(session_copy), "--csv", str(disk / "csv")]) == 0
    assert (disk / "csv" / "Tobii_gaze.csv").stat().st_size > 0


def test_staged_output_failure_leaves_nothing(tmp_path: Path) -> None:
    """The helper itself: an error inside the block removes the staging folder and leaves `root` untouched."""
    from eyemotion.outputs import OutputError, staged_output

    root = tmp_path / "out"
    root.mkdir()
    (root / "keep.txt").write_text("lab file")
    with pytest.raises(OutputError, match="no space left"), staged_output(root) as stage:
        (stage / "half.csv").write_text("1,2")
        raise OSError(28, "No space left on device")
    assert [p.name for p in root.iterdir()] == ["keep.txt"]
    with pytest.raises(RuntimeError), staged_output(tmp_path / "new") as stage:
        (stage / "a.csv").write_text("x")
        raise RuntimeError("bug")
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with staged_output(root) as stage:
        (stage / "sub").mkdir()
        (stage / "sub" / "b.csv").write_text("y")
    assert (root / "sub" / "b.csv").read_text() == "y" and (root / "keep.txt").read_text() == "lab file"
    assert not any(p.name.startswith(".eyemotion-partial-") for p in root.iterdir())


def test_a_killed_writers_staging_folder_is_removed_by_the_next_output(tmp_path: Path) -> None:
    """SIGKILL leaves the staging folder behind (no `finally` runs); the next output beside it removes it, but
    not the staging folder of a writer that is still running."""
    import os
    import signal
    import sys

    from eyemotion.outputs import STAGING_PREFIX, staged_output

    script = ("import sys, time\nfrom eyemotion.outputs import staged_output\n"
              "with staged_output(sys.argv[1]) as stage:\n"
              "    (stage / 'half.csv').write_text('1,2')\n    print(stage, flush=True)\n    time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out")], stdout=subprocess.PIPE,
                              text=True)
    stage = Path(writer.stdout.readline().strip())
    assert stage.is_dir() and stage.name.startswith(f"{STAGING_PREFIX}{writer.pid}-")
    running = tmp_path / f"{STAGING_PREFIX}{os.getpid()}-alive"  # this process's own: still running
    running.mkdir()
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    assert stage.exists(), "a killed writer cannot clean up after itself"
    with staged_output(tmp_path / "next") as new:
        (new / "a.csv").write_text("x")
    assert not stage.exists() and running.is_dir() and (tmp_path / "next" / "a.csv").read_text() == "x"
    assert not (tmp_path / "out").exists()


def test_read_only_targets_give_one_line(session_copy: Path, read_only: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    for option in ("--csv", "--bids"):
        assert main(["export", str(session_copy), option, str(read_only / "out")]) == 2
        err = _one_line(capsys)
        assert str(read_only) in err and ("read-only" in err or "permission denied" in err)
    assert list(read_only.iterdir()) == []


def test_output_path_that_is_a_file_gives_one_line(session_copy: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    afile = tmp_path / "afile.txt"
    afile.write_text("notes")
    for option in ("--csv", "--bids"):
        assert main(["export", str(session_copy), option, str(afile)]) == 2
        assert "is a file, not a folder" in _one_line(capsys)
    assert main(["export", str(session_copy), "--csv", str(afile / "sub")]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert afile.read_text() == "notes"


def test_second_session_merges_participants(session_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "bids"
    out.mkdir()
    (out / "participants.tsv").write_text("participant_id\tage\tsex\tgroup\nsub-DEMO01\t27\tF\tcontrol\n")
    lab_sidecar = {"participant_id": {"Description": "id"}, "age": {"Description": "age", "Units": "year"}}
    (out / "participants.json").write_text(json.dumps(lab_sidecar))
    (out / "dataset_description.json").write_text(json.dumps({"Name": "lab data", "BIDSVersion": "1.11.0"}))
    export_bids(session_copy, out, config_from_dict({}))
    assert (out / "participants.tsv").read_text().splitlines() == [
        "participant_id\tage\tsex\tgroup", "sub-DEMO01\t27\tF\tcontrol", "sub-P001\tn/a\tn/a\tn/a"]
    assert json.loads((out / "participants.json").read_text()) == lab_sidecar
    assert json.loads((out / "dataset_description.json").read_text())["Name"] == "lab data"
    second = tmp_path / "P002" / "S01"
    shutil.copytree(session_copy, second)
    meta = json.loads((second / "session.json").read_text())
    (second / "session.json").write_text(json.dumps({**meta, "participant": "P002"}))
    export_bids(second, out, config_from_dict({}))
    assert (out / "participants.tsv").read_text().splitlines()[1:] == [
        "sub-DEMO01\t27\tF\tcontrol", "sub-P001\tn/a\tn/a\tn/a", "sub-P002\tn/a\tn/a\tn/a"]
    assert (out / "sub-P001").is_dir() and (out / "sub-P002").is_dir()


def _variant(session_copy: Path, tmp_path: Path, trials: bytes | None = None, **meta_fields) -> Path:
    folder = tmp_path / "P001" / "S01"
    shutil.copytree(session_copy, folder)
    if trials is not None:
        (folder / "trials.csv").write_bytes(trials)
    if meta_fields:
        meta = json.loads((folder / "session.json").read_text())
        (folder / "session.json").write_text(json.dumps({**meta, **meta_fields}))
    return folder


def test_spreadsheet_edited_trials_are_exported(session_copy: Path, tmp_path: Path) -> None:
    note = b"trial,clip,target,valence\n1,demo_01,happiness,7,participant sneezed\n2,demo_02,fear,3\n"
    folder = _variant(session_copy, tmp_path, trials=note)
    out = tmp_path / "bids"
    assert main(["export", str(folder), "--bids", str(out)]) == 0
    beh = next(out.rglob("*_beh.tsv")).read_text().splitlines()
    assert beh == ["trial\tclip\ttarget\tvalence\textra", "1\tdemo_01\thappiness\t7\tparticipant sneezed",
                   "2\tdemo_02\tfear\t3\t"]
    (folder / "trials.csv").write_bytes(b"\xef\xbb\xbftrial;clip;valence\r\n1;demo_01;7,5\r\n")
    assert Session.load(folder).trials == [{"trial": 1, "clip": "demo_01", "valence": 7.5}]


def test_short_trials_row_is_refused_with_the_row(session_copy: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    folder = _variant(session_copy, tmp_path, trials=b"trial,clip,valence\n1,demo_01,7\n2,demo_02\n")
    out = tmp_path / "csv"
    assert main(["export", str(folder), "--csv", str(out)]) == 2
    err = _one_line(capsys)
    assert "row 3 has 2 fields but the header has 3" in err and not out.exists()


def test_simulated_sources_are_labelled(session_copy: Path, tmp_path: Path) -> None:
    folder = _variant(session_copy, tmp_path, simulated_sources=["tracker"])
    export_bids(folder, tmp_path / "bids", config_from_dict({}))
    sidecar = json.loads(next((tmp_path / "bids").rglob("*_recording-eye1_physio.json")).read_text())
    for key in ("Manufacturer", "ManufacturersModelName", "DeviceSerialNumber"):
        assert "simulated" in sidecar[key]
    assert "SIMULATED" in (tmp_path / "bids" / "README").read_text()
    export_csv(folder, tmp_path / "csv")
    assert "SIMULATED SOURCES: tracker" in (tmp_path / "csv" / "NOTES.txt").read_text()
    real = _variant(session_copy, tmp_path / "real", simulated_sources=[])
    export_csv(real, tmp_path / "csv-real")
    assert "none" in (tmp_path / "csv-real" / "NOTES.txt").read_text()


def test_gzip_is_reproducible(bids: Path) -> None:
    for path in bids.rglob("*.tsv.gz"):
        header = path.read_bytes()[:10]
        assert header[3] & 0x08 == 0, f"{path.name}: file name in the gzip header"  # FNAME flag
        assert header[4:8] == b"\0\0\0\0", f"{path.name}: time stamp in the gzip header"  # MTIME


@pytest.fixture(scope="module")
def validated_bids(session_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session as `eyemotion run` leaves it: session.json names the protocol and its instructions."""
    folder = tmp_path_factory.mktemp("validated") / "P001" / "S01"
    shutil.copytree(session_copy, folder)
    meta = json.loads((folder / "session.json").read_text())
    meta["protocol"] = {"name": "test-protocol", "settings": {"protocol": {"instructions": "Watch the clips."}}}
    (folder / "session.json").write_text(json.dumps(meta))
    out = folder.parent.parent / "bids"
    export_bids(folder, out, config_from_dict(EXPORT_CONFIG))
    return out


def test_official_validator_deno(validated_bids: Path) -> None:
    """bids-validator-deno (dev extra; runs offline): 0 errors and no warning the export could avoid."""
    exe = shutil.which("bids-validator-deno") or str(Path(__import__("sys").executable).parent / "bids-validator-deno")
    assert Path(exe).exists(), "install the dev extra: pip install -e .[dev] (bids-validator-deno)"
    result = subprocess.run([exe, "-r", str(validated_bids), "--format", "json"], check=False, capture_output=True,
                            text=True, timeout=300)
    issues = json.loads(result.stdout)["issues"]["issues"]
    errors = [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
    assert errors == []
    warnings = {(i["code"], i.get("subCode")) for i in issues if i["severity"] == "warning"}
    avoidable = {w for w in warnings if w[1] not in UNAVOIDABLE}
    assert avoidable == set()
    description = json.loads((validated_bids / "dataset_description.json").read_text())
    assert description["Authors"] == ["Ada Lovelace", "Alan Turing"] and description["License"] == "CC0"
    for sidecar in validated_bids.glob("sub-*/ses-*/beh/*.json"):
        assert json.loads(sidecar.read_text())["TaskName"] == "emotion", sidecar.name
        assert "EnvironmentCoordinates" not in sidecar.read_text() and "SampleCoordinateUnits" not in sidecar.read_text()


def test_features_and_eyesignal_outputs_give_one_line(session_copy: Path, tmp_path: Path, read_only: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """`features --out` and `eyesignal process --out`: a file in the way, or a read-only target, is one line and
    leaves nothing (both write through eyemotion.outputs.staged_output)."""
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert main(["features", str(session_copy), "--out", str(afile), "--no-video"]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert main(["eyesignal", "process", str(session_copy), "--out", str(afile)]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert main(["features", str(session_copy), "--out", str(read_only / "features"), "--no-video"]) == 2
    err = _one_line(capsys)
    assert str(read_only) in err and ("read-only" in err or "permission denied" in err)
    assert main(["eyesignal", "process", str(session_copy), "--out", str(read_only)]) == 2
    err = _one_line(capsys)
    assert str(read_only) in err and ("read-only" in err or "permission denied" in err)
    assert list(read_only.iterdir()) == [] and afile.read_text() == "x"
    assert main(["eyesignal", "process", str(session_copy), "--out", str(tmp_path / "es")]) == 0
    assert sorted(p.name for p in (tmp_path / "es").iterdir()) == ["eyemotion_eye_events.jsonl", "eyemotion_gaze.csv"]


def test_clips_and_datasets_are_atomic_on_a_full_disk(small_disk: tuple[Path, bool], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """`stimuli make-demo-clips` and `dataset synthetic`: a full disk (real 200 kB tmpfs) is one line and leaves
    no half set; a file in the way is one line."""
    disk, real = small_disk
    afile = tmp_path / "afile.txt"
    afile.write_text("x")
    assert main(["stimuli", "make-demo-clips", str(afile), "--seconds", "1"]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert main(["dataset", "synthetic", str(afile), "--participants", "5", "--windows-per-class", "1"]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    if not real:
        pytest.skip("needs root to mount a tmpfs for the full-disk half")
    assert main(["stimuli", "make-demo-clips", str(disk / "clips"), "--seconds", "2", "--size", "640x480"]) == 2
    assert "no space left" in _one_line(capsys)
    assert main(["dataset", "synthetic", str(disk / "ds"), "--participants", "30", "--windows-per-class", "10"]) == 2
    assert "no space left" in _one_line(capsys)
    assert list(disk.iterdir()) == []


def test_clip_events_last_until_their_offset(bids: Path, session_copy: Path) -> None:
    session = Session.load(session_copy)
    onset, offset = session.markers.events("clip_onset")[0], session.markers.events("clip_offset")[0]
    with open(next(bids.glob("sub-*/ses-*/beh/*_events.tsv"))) as f:
        rows = {r["trial_type"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert float(rows["clip_onset"]["duration"]) == pytest.approx(offset.time - onset.time, abs=1e-6)
    assert float(rows["clip_onset"]["duration"]) > 0 and float(rows["clip_offset"]["duration"]) == 0


def test_export_from_a_read_only_session_folder(session_copy: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    """A session on a read-only medium exports (session.json cannot note the export: a warning); `features`
    into its default SESSION/features is one line."""
    folder = tmp_path / "P001" / "S01"
    shutil.copytree(session_copy, folder)
    before = (folder / "session.json").read_bytes()
    if not (_mount("--bind", str(folder), str(folder)) and _mount("-o", "remount,bind,ro", str(folder))):
        pytest.skip("needs root to make a read-only bind mount")
    try:
        assert main(["export", str(folder), "--csv", str(tmp_path / "csv")]) == 0
        assert (tmp_path / "csv" / "Tobii_gaze.csv").stat().st_size > 0
        assert main(["features", str(folder), "--no-video"]) == 2
        err = _one_line(capsys)
        assert str(folder) in err and "read-only" in err
        assert (folder / "session.json").read_bytes() == before and not (folder / "features").exists()
    finally:
        subprocess.run(["umount", str(folder)], check=True)
