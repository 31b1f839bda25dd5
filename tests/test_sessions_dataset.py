"""`eyemotion dataset build` on real session folders (XDF written like LabRecorder, the runner's trials.csv),
labels from self-reports, FER auto-annotation, participant folds, bad inputs; the default-weights script."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from eyemotion.models import shapes
from eyemotion.models.dataset import load_dataset
from eyemotion.models.sessions_dataset import clips_from_trials, coarse_label, session_rows, session_windows
from eyemotion.models.simulate_sessions import SimulationSettings, simulate_session, write_session_folder
from eyemotion.stimuli.democlips import DEMO_CLIP_S

from eyemotion.cli import main
from eyemotion.config import Config
from eyemotion.streams import CLASSES

# clips as long as the demo protocol's, so these sessions stand in for recorded demo sessions
SETTINGS = SimulationSettings(participants=3, clip_s=DEMO_CLIP_S, pause_s=1.0, emotions=("happiness", "sadness"),
                              seed=1)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory):
    """Three simulated participants (2 clips of 6 s each) written as session folders."""
    root = tmp_path_factory.mktemp("sessions")
    config = Config()
    out = []
    for i in range(SETTINGS.participants):
        streams, trials = simulate_session(i, SETTINGS, config)
        out.append((write_session_folder(root, streams, trials, config), streams, trials))
    return out


def test_dataset_build_cuts_clips_into_labelled_windows(sessions, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folders = [s[0] for s in sessions]
    before = [(f / "recording.xdf").read_bytes() for f in folders]
    out = tmp_path / "ds"
    assert main(["dataset", "build", *map(str, folders), str(out), "--folds", "3", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    ds = load_dataset(out, require=("face", "eye", "fixation", "visual_face", "visual_gaze", "audio"))
    # 6-s clips, 4-s windows every 1 s: ends at onset+4 .. offset on the 0.125-s grid -> 2 or 3 windows a clip
    assert 3 * 2 * 2 <= len(ds) <= 3 * 2 * 3
    assert ds.inputs["fixation"].shape[1:] == (32, 18, 32) and ds.inputs["visual_face"].shape[1:] == (16, 128)
    sums = ds.inputs["fixation"].sum(axis=(2, 3))
    assert np.all((np.abs(sums - 1) < 1e-4) | (sums == 0)) and (sums > 0).mean() > 0.5
    for folder, streams, trials in sessions:
        mine = ds.labels["participant"] == streams.participant
        felt = {f"{streams.participant}/{t.trial}/{t.clip_id}": t for t in trials}
        for clip, er7, er3, v, a in zip(ds.labels["clip"][mine], ds.labels["er7"][mine], ds.labels["er3"][mine],
                                        ds.labels["valence"][mine], ds.labels["arousal"][mine]):
            t = felt[clip]
            assert CLASSES[er7] == t.felt and er3 == shapes.CLASS7_TO_3[er7]
            assert v == pytest.approx(t.valence) and a == pytest.approx(t.arousal)
    assert sorted(p for fold in ds.meta["folds"] for p in fold) == sorted({s[1].participant for s in sessions})
    for k in range(ds.n_folds):
        train, test = ds.split(k)
        assert not set(ds.labels["participant"][train]) & set(ds.labels["participant"][test])
    prov = ds.meta["provenance"]
    assert prov["source"] == "recorded sessions" and len(prov["sessions"]) == 3
    assert prov["counts"]["windows"] == len(ds) and prov["counts"]["windows_with_audio"] > 0
    # the XDF round trip gives the windows of the in-memory streams (the same builder objects)
    inputs, _, _ = session_windows(sessions[0][1], Config())
    first = ds.labels["participant"] == sessions[0][1].participant
    np.testing.assert_allclose(ds.inputs["eye"][first], np.stack(inputs["eye"]), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(ds.inputs["audio"][first], np.stack(inputs["audio"]), rtol=1e-4, atol=1e-5,
                               equal_nan=True)
    assert [(folder / "recording.xdf").read_bytes() for folder in folders] == before  # recordings untouched


def test_fer_labels_are_the_face_model_s_mean_probabilities(sessions) -> None:
    streams = sessions[0][1]
    _, labels, counts = session_windows(streams, Config())
    ts, face = streams.face
    probs = face[:, 5:12]
    clip = streams.clips[0]
    end = clip.onset + 4.0
    window = (ts >= end - 4) & (ts < end) & (face[:, 0] > 0.5)
    assert labels["fer7"][0] == int(np.argmax(np.nanmean(probs[window], axis=0)))
    assert counts["fer7_missing"] == 0


def test_without_a_face_there_is_no_fer_label_rather_than_the_er_label(sessions) -> None:
    """FER labels must not leak ER labels: no face -> fer7 = -1 (masked in the loss and the metrics)."""
    from dataclasses import replace

    streams = replace(sessions[0][1], face=None)
    (_, labels, counts), (_, clip_labels, clip_counts) = session_rows(streams, Config())
    assert labels["fer7"] and set(labels["fer7"]) == {-1} and counts["fer7_missing"] == len(labels["fer7"])
    assert set(clip_labels["fer7"]) == {-1} and clip_counts["fer7_missing"] == len(streams.clips)
    assert all(er7 >= 0 for er7 in labels["er7"])  # the ER labels stay


def test_per_clip_rows_sample_the_whole_clip(sessions) -> None:
    """002 Sec. V-A-2: 8 face frames, 32 gaze samples and 32 fixation slices evenly from each whole clip."""
    streams = sessions[0][1]
    (_, labels, _), (clip_inputs, clip_labels, clip_counts) = session_rows(streams, Config())
    n = len(streams.clips)
    assert clip_counts["clips"] == n and len(clip_labels["er7"]) == n
    assert np.stack(clip_inputs["face"]).shape == (n, 8, 128)
    assert np.stack(clip_inputs["eye"]).shape == (n, 32, shapes.EYE_DIM)
    assert np.stack(clip_inputs["fixation"]).shape == (n, 32, 18, 32)
    ts, gaze, _ = streams.gaze
    for clip, eye in zip(streams.clips, clip_inputs["eye"]):
        inside = gaze[(ts >= clip.onset) & (ts < clip.offset)]
        pick = np.rint(np.linspace(0, len(inside) - 1, 32)).astype(int)  # first to last sample of the clip
        np.testing.assert_array_equal(eye, inside[pick])
    # a clip gives one row, and its windows (4 s, every 1 s) several
    assert len(labels["er7"]) >= 2 * n


def test_demo_sessions_build_train_export_and_run_in_the_live_predictor(sessions, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The demo -> train -> export -> run loop, with the CLI commands the README gives, on sessions whose
    clips are as long as the demo protocol's."""
    from eyemotion.inference.live import Predictor, WindowInputs

    data, run, models = tmp_path / "ds", tmp_path / "run", tmp_path / "models"
    assert main(["dataset", "build", *(str(s[0]) for s in sessions), str(data), "--folds", "3", "--quiet"]) == 0
    clips = load_dataset(data / "clips", require=("face", "eye", "fixation"))
    windows = load_dataset(data)
    assert len(clips) == 3 * len(SETTINGS.emotions) and len(windows) > len(clips)
    assert clips.meta["folds"] == windows.meta["folds"]  # the clip protocol tests the same people
    capsys.readouterr()
    assert main(["train", "emert", str(data), "--out", str(run), "--epochs", "2", "--device", "cpu",
                 "--threads", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "per clip" in printed and "sliding windows" in printed and "majority class" in printed
    report = json.loads((run / "report.json").read_text())
    assert report["evaluation"]["protocol"] == "clip" and report["settings"]["epochs"] == 2
    assert report["folds"][0]["n_test"] + report["folds"][0]["n_train"] == len(clips)
    assert report["folds"][0]["windows"]["n_test"] > report["folds"][0]["n_test"]
    assert main(["export-onnx", str(run / "model.pt"), "--out", str(models)]) == 0
    card = json.loads((models / "emert.json").read_text())
    assert card["training_settings"]["epochs"] == 2 and card["evaluation"]["protocol"] == "clip"
    predictor = Predictor(Config(), emert=models / "emert.onnx")
    streams = sessions[0][1]
    feeder = WindowInputs(Config(), keep_s=math.inf)
    feeder.push_gaze(*streams.gaze)
    feeder.push_face(*streams.face)
    clip = streams.clips[0]
    prediction = predictor.predict(feeder.inputs(clip.onset + 5.0))
    assert prediction is not None and prediction.er7.sum() == pytest.approx(1.0, abs=1e-4)
    assert prediction.parts["emert"].shape == (7,)


def test_clip_times_fall_back_to_markers_and_unlabelled_trials_are_skipped() -> None:
    class M:
        def __init__(self, time, event, trial):
            self.time, self.event, self.fields = time, event, {"trial": trial}

    class Table:
        markers = (M(10.0, "clip_onset", 1), M(20.0, "clip_offset", 1), M(30.0, "clip_onset", 2),
                   M(40.0, "clip_offset", 2))

    rows = [{"trial": 1, "clip_id": "a", "clip_onset_lsl": "", "clip_offset_lsl": "", "felt_emotion": "fear",
             "valence": -0.5, "arousal": 0.75},
            {"trial": 2, "clip_id": "b", "clip_onset_lsl": 30.0, "clip_offset_lsl": 40.0, "felt_emotion": "",
             "valence": 0.0, "arousal": 0.0},
            {"trial": 3, "clip_id": "c", "clip_onset_lsl": "", "clip_offset_lsl": "", "felt_emotion": "anger",
             "valence": 0.1, "arousal": 0.1}]
    clips, skipped = clips_from_trials(rows, Table())
    assert [(c.clip, c.onset, c.offset, CLASSES[c.er7]) for c in clips] == [("a", 10.0, 20.0, "fear")]
    assert skipped == {"no felt emotion": 1, "no clip onset/offset": 1}


def test_coarse_labels_from_emotion_or_valence() -> None:
    neg, neu, pos = (shapes.CLASSES_3.index(c) for c in ("negative", "neutral", "positive"))
    assert [coarse_label(CLASSES.index(c), 0.0, "emotion") for c in CLASSES] == \
        [neu, pos, neg, neg, neg, neg, pos]
    assert [coarse_label(0, (sam - 5) / 4, "valence") for sam in range(1, 10)] == [neg] * 4 + [neu] + [pos] * 4


def test_bad_inputs_are_one_line_errors(sessions, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = sessions[0][0]
    assert main(["dataset", "build", str(folder), str(sessions[1][0])]) != 0  # OUT forgotten: a session
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a session folder" in err
    assert main(["dataset", "build", str(tmp_path / "nope"), str(tmp_path / "out"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert main(["dataset", "build", str(folder), str(tmp_path / "out1"), "--quiet"]) != 0  # 1 participant, 5 folds
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "participant-wise folds" in err
    assert main(["dataset", "build", str(folder), str(tmp_path / "one"), "--quiet", "--folds", "1"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 2 folds" in err and not (tmp_path / "one").exists()
    unlabelled = tmp_path / "copy"
    import shutil

    shutil.copytree(folder, unlabelled)
    path = unlabelled / "trials.csv"
    rows = list(csv.DictReader(path.open()))
    for row in rows:
        row["felt_emotion"] = ""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["dataset", "build", str(unlabelled), str(tmp_path / "out2"), "--quiet", "--folds", "1"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no labelled windows" in err


def test_default_weights_quick_run_trains_and_exports_models_the_node_loads(tmp_path: Path) -> None:
    from eyemotion.inference.live import Predictor
    from eyemotion.models.default_weights import INTENDED_USE, QUICK
    from eyemotion.models.default_weights import main as default_weights

    out = tmp_path / "models"
    assert default_weights(["--quick", "--out", str(out), "--work", str(tmp_path / "work"), "--jobs", "1",
                            "--threads", "1"]) == 0
    names = sorted(p.name for p in out.glob("*.onnx"))
    assert names == ["crossmodal-audio.onnx", "crossmodal-joint.onnx", "crossmodal-visual.onnx", "emert.onnx"]
    for path in out.glob("*.onnx"):
        card = json.loads(path.with_suffix(".json").read_text())
        assert card["intended_use"] == INTENDED_USE and INTENDED_USE in card["notes"]
        assert card["training_data"]["provenance"]["source"] == "simulated sessions"
        assert card["held_out"]["protocol"].startswith("3-fold cross-validation by participant")
        # the card names the training settings actually used, and the dataset only what it depends on
        assert card["training_settings"] == card["held_out"]["training_settings"]
        assert "emert_epochs" not in json.dumps(card["training_data"]["provenance"])
        assert set(card["held_out"]["baselines"]) == {"chance", "majority"}
        assert path.stat().st_size < 10e6
    predictor = Predictor(Config(), emert=out / "emert.onnx", crossmodal=out / "crossmodal")
    assert "trained on simulated sessions" in predictor.ids["emert"]
    # make-style: a second run reuses the dataset and checkpoints (same settings)
    stamp = (tmp_path / "work" / "dataset" / "windows.npz").stat().st_mtime_ns
    assert default_weights(["--quick", "--out", str(out), "--work", str(tmp_path / "work"), "--jobs", "1",
                            "--threads", "1"]) == 0
    assert (tmp_path / "work" / "dataset" / "windows.npz").stat().st_mtime_ns == stamp
    emert = json.loads((out / "emert.json").read_text())
    assert math.isfinite(emert["held_out"]["metrics"]["er7"]["war"]["mean"])
    assert emert["held_out"]["training_settings"]["epochs"] == QUICK.emert_epochs
    assert emert["held_out"]["training_settings"]["protocol"] == "clip" and emert["held_out"]["sliding_windows"]
    assert emert["paper_figures"]["er7"]["war"] == pytest.approx(0.3392)
    # a graph trained on a real corpus (the shipped RAVDESS audio graph) is not replaced by a simulated one
    real = out / "crossmodal-audio.json"
    card = json.loads(real.read_text())
    card["training_data"]["provenance"] = {"source": "import", "corpus": "RAVDESS"}
    real.write_text(json.dumps(card))
    before = (out / "crossmodal-audio.onnx").read_bytes()
    assert default_weights(["--quick", "--out", str(out), "--work", str(tmp_path / "work"), "--jobs", "1",
                            "--threads", "1"]) == 0
    assert json.loads(real.read_text())["training_data"]["provenance"]["corpus"] == "RAVDESS"
    assert (out / "crossmodal-audio.onnx").read_bytes() == before
    assert json.loads((out / "crossmodal-visual.json").read_text())["training_data"]["provenance"]["source"] == \
        "simulated sessions"
