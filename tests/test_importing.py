"""Labelled corpora in (`eyemotion dataset import`): real speech (a 12-file RAVDESS subset, CC BY-NC-SA 4.0,
tests/data/ravdess, and espeak-ng speech at other sample rates), real faces (scikit-image's astronaut), bad
input, speaker-grouped class-stratified folds, audio-only training with the linear baseline in the report."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from eyemotion.models.dataset import assign_folds, fold_table, load_dataset
from eyemotion.models.importing import import_corpus

from eyemotion import UserError
from eyemotion.streams import CLASSES

RAVDESS = Path(__file__).parent / "data" / "ravdess"
PATTERN = r"03-01-(?P<label>0[1-8])-\d\d-\d\d-\d\d-(?P<speaker>\d\d)\.flac$"
LABEL_MAP = "01=neutral,03=happiness,04=sadness,05=anger"


def _espeak(path: Path, text: str, rate: int, pitch: int) -> Path:
    assert shutil.which("espeak-ng"), "espeak-ng is part of the test environment (setup.sh installs it)"
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-p", str(pitch), "-w", str(raw), text], check=True, capture_output=True)
    signal, native = sf.read(raw, dtype="float32")
    raw.unlink()
    if rate != native:  # store at another sample rate (the importer resamples any rate)
        from scipy.signal import resample_poly

        signal = resample_poly(signal, rate, native).astype(np.float32)
    sf.write(path, np.column_stack([signal, signal]), rate)  # stereo: the importer averages the channels
    return path


@pytest.fixture(scope="module")
def espeak_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """3 speakers x 2 classes of espeak-ng speech at 44.1 and 8 kHz, with a label CSV."""
    root = tmp_path_factory.mktemp("espeak")
    rows = ["file,label,speaker,valence,arousal"]
    for s, rate in enumerate((44100, 8000, 44100)):
        for label, pitch, text in (("happy", 80, "What a wonderful day this is"), ("sad", 20, "I lost everything today")):
            name = f"spk{s}_{label}.wav"
            _espeak(root / name, text, rate, pitch)
            rows.append(f"{name},{label},spk{s},{0.5 if label == 'happy' else -0.5},")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root, root / "labels.csv"


def test_ravdess_subset_by_file_name_pattern(tmp_path: Path) -> None:
    summary = import_corpus("speech", RAVDESS, tmp_path / "ds", pattern=PATTERN, label_map=LABEL_MAP, n_folds=3,
                            name="RAVDESS", licence="CC BY-NC-SA 4.0", progress=False)
    ds = load_dataset(summary.path, ["audio"])
    assert len(ds) == 12 and summary.speakers == 3
    assert ds.inputs["audio"].shape == (12, 1, 88) and np.isfinite(ds.inputs["audio"]).all()
    assert sorted(set(ds.labels["er7"].tolist())) == [CLASSES.index(c) for c in ("neutral", "happiness", "sadness", "anger")]
    assert (ds.labels["fer7"] == -1).all() and np.isnan(ds.labels["valence"]).all()
    assert summary.no_speech == 0  # the live voice-activity gate passes every real utterance
    assert ds.meta["provenance"]["licence"] == "CC BY-NC-SA 4.0"
    assert "anger" in summary.table and len(ds.meta["folds"]) == 3
    # loud angry speech is louder than sad speech in the pooled functionals
    loud = list(json.loads((summary.path / "dataset.json").read_text())["normalisation"]["all"]["audio"]["mean"])
    assert len(loud) == 88


def test_keep_skips_labels_outside_the_classes(tmp_path: Path) -> None:
    """RAVDESS's "calm" is no class of ours: with --keep it is skipped like a class that is not kept."""
    summary = import_corpus("speech", RAVDESS, tmp_path / "ds", pattern=PATTERN, n_folds=3, progress=False,
                            label_map="01=calm,03=happiness,04=sadness,05=anger", keep="happiness,sadness,anger")
    ds = load_dataset(summary.path, ["audio"])
    assert len(ds) == 9 and CLASSES.index("neutral") not in ds.labels["er7"]
    with pytest.raises(UserError, match="unknown label '01'"):  # without --keep it is still an error
        import_corpus("speech", RAVDESS, tmp_path / "ds2", pattern=PATTERN, n_folds=3, progress=False,
                      label_map="01=calm,03=happiness,04=sadness,05=anger")


def test_csv_any_sample_rate_and_windowed_inputs(espeak_corpus, tmp_path: Path) -> None:
    root, labels = espeak_corpus
    summary = import_corpus("speech", root, tmp_path / "utt", csv_path=labels, n_folds=3, progress=False)
    ds = load_dataset(summary.path)
    assert len(ds) == 6 and ds.inputs["audio"].shape == (6, 1, 88)
    assert np.allclose(ds.labels["valence"], [0.5, -0.5] * 3) and np.isnan(ds.labels["arousal"]).all()
    # the same speech at 44.1 kHz and 8 kHz gives similar loudness (resampled to 16 kHz, not misread)
    loud = ds.inputs["audio"][:, 0, 0]
    assert np.isfinite(loud).all()
    windowed = import_corpus("speech", root, tmp_path / "win", csv_path=labels, n_folds=3, audio_window_s=1.0,
                             audio_steps=3, progress=False)
    assert load_dataset(windowed.path).inputs["audio"].shape == (6, 3, 88)


def test_user_given_folds_from_the_csv(espeak_corpus, tmp_path: Path) -> None:
    root, labels = espeak_corpus
    text = labels.read_text().splitlines()
    rows = [text[0] + ",fold"] + [line + f",{1 if 'spk2' in line else 0}" for line in text[1:]]
    table = tmp_path / "folds.csv"
    table.write_text("\n".join(rows) + "\n")
    ds = load_dataset(import_corpus("speech", root, tmp_path / "ds", csv_path=table, progress=False).path)
    assert ds.meta["folds"] == [["spk0", "spk1"], ["spk2"]]
    split = next(line for line in rows[1:] if "spk0_happy" in line).rsplit(",", 1)[0] + ",1"
    bad = tmp_path / "split.csv"
    bad.write_text("\n".join([rows[0], split] + [r for r in rows[1:] if "spk0_happy" not in r]) + "\n")
    with pytest.raises(UserError, match="spk0 is in folds"):
        import_corpus("speech", root, tmp_path / "bad", csv_path=bad, progress=False)


@pytest.mark.parametrize("case, match", [
    ("unknown label", "unknown label 'bored'.*--label-map"),
    ("missing file", "does not exist; fix its path"),
    ("one class", "only one class.*--allow-one-class-speakers"),
    ("corrupt audio", "cannot be read as audio"),
])
def test_bad_input_is_one_clear_error(espeak_corpus, tmp_path: Path, case: str, match: str) -> None:
    root, labels = espeak_corpus
    lines = labels.read_text().splitlines()
    if case == "unknown label":
        lines[1] = lines[1].replace(",happy,", ",bored,")
    elif case == "missing file":
        lines[1] = lines[1].replace("spk0_happy.wav", "nope.wav")
    elif case == "one class":
        lines[2] = lines[2].replace(",sad,", ",happy,")
    else:
        (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
        lines[1] = lines[1].replace("spk0_happy.wav", str(tmp_path / "corrupt.wav"))
    table = tmp_path / "bad.csv"
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=match) as err:
        import_corpus("speech", root, tmp_path / "out", csv_path=table, n_folds=3, progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out" / "windows.npz").exists()


def test_faces_from_images(tmp_path: Path) -> None:
    import cv2
    import skimage.data

    face = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    rows = ["file,label,participant"]
    for p in range(2):
        for label, image in (("happy", face), ("neutral", cv2.flip(face, 1))):
            cv2.imwrite(str(tmp_path / f"p{p}_{label}.png"), image)
            rows.append(f"p{p}_{label}.png,{label},p{p}")
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((240, 320, 3), 128, np.uint8))
    rows.append("blank.png,neutral,p0")
    (tmp_path / "faces.csv").write_text("\n".join(rows) + "\n")
    summary = import_corpus("faces", tmp_path, tmp_path / "ds", csv_path=tmp_path / "faces.csv", n_folds=2,
                            progress=False)
    ds = load_dataset(summary.path)
    assert ds.inputs["visual_face"].shape == (5, 1, 128) and summary.no_face == 1
    assert np.isnan(ds.inputs["visual_face"][-1]).all() and np.isfinite(ds.inputs["visual_face"][:4]).all()


def test_folds_are_grouped_and_stratified() -> None:
    rng = np.random.default_rng(3)
    people, labels = [], []
    for p in range(23):  # uneven speakers: 4-40 rows, skewed class mixes
        n = int(rng.integers(4, 40))
        people += [f"s{p:02d}"] * n
        labels += list(rng.choice(4, size=n, p=rng.dirichlet(np.ones(4) * 2)))
    people, labels = np.array(people), np.array(labels)
    folds = assign_folds(people, 5, seed=0, labels=labels)
    assert sorted(p for f in folds for p in f) == sorted(set(people))  # each speaker in exactly one fold
    overall = np.array([np.mean(labels == c) for c in range(4)])

    def worst(fs: list[list[str]]) -> float:
        return max(abs(np.mean(labels[np.isin(people, f)] == c) - overall[c]) for f in fs for c in range(4))

    assert worst(folds) < 0.15  # every fold near the corpus's class mix
    assert worst(folds) < np.mean([worst(assign_folds(people, 5, seed=s)) for s in range(5)])  # vs unstratified
    sizes = np.array([np.isin(people, f).sum() for f in folds])
    assert sizes.max() < 2.0 * sizes.min()
    table = fold_table(labels, people, folds)
    assert table.splitlines()[-2].split()[1:] == [str(s) for s in sizes] + [str(len(people))]


def test_audio_only_training_reports_the_linear_baseline(tmp_path: Path) -> None:
    from eyemotion.models.train import CONFUSION_BASELINE_PNG, TrainSettings, train

    path = import_corpus("speech", RAVDESS, tmp_path / "ds", pattern=PATTERN, label_map=LABEL_MAP, n_folds=3,
                         progress=False).path
    report = train("crossmodal", path, tmp_path / "run",
                   TrainSettings(epochs=5, patience=0, progress=False, threads=1, final_model=True))
    rep = json.loads(report.path.read_text())
    assert set(rep["summary"]) == {"er7_audio"}  # no visual or joint head without faces
    ev = rep["evaluation"]
    assert ev["pooled"]["er7_audio"]["n"] == 12
    assert set(ev["pooled"]["er7_audio"]) >= {"war", "uar", "weighted_f1", "macro_f1"}
    linear = ev["linear_baseline"]
    assert set(linear["summary"]) == {"er7_audio"} and linear["pooled"]["er7_audio"]["n"] == 12
    assert 0.0 <= linear["pooled"]["er7_audio"]["uar"] <= 1.0
    assert (tmp_path / "run" / CONFUSION_BASELINE_PNG).stat().st_size > 1000
    assert report.checkpoint is not None and report.checkpoint.is_file()


def test_the_import_command_prints_the_table_and_fails_in_one_line(tmp_path: Path) -> None:
    exe = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "eyemotion")
    args = [exe, "dataset", "import", "speech", str(RAVDESS), str(tmp_path / "ds"), "--pattern", PATTERN,
            "--label-map", LABEL_MAP, "--folds", "3", "--quiet"]
    ok = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "imported 12 speech rows of 3 speakers" in ok.stdout and "class x test fold" in ok.stdout
    assert "sadness" in ok.stdout and "0 utterance(s) would not pass" in ok.stdout
    bad = subprocess.run(args[:5] + [str(tmp_path / "ds2"), "--pattern", PATTERN, "--quiet"], capture_output=True,
                         text=True, timeout=300, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "unknown label '01'" in bad.stderr and "--label-map 01=CLASS" in bad.stderr
    assert not (tmp_path / "ds2" / "windows.npz").exists()


def test_mixed_corpus_trains_each_head_on_the_rows_that_have_its_modality(tmp_path: Path) -> None:
    from eyemotion.models.dataset import make_synthetic_dataset
    from eyemotion.models.train import TrainSettings, train

    ds = load_dataset(make_synthetic_dataset(tmp_path / "syn", participants=6, windows_per_class=2, n_folds=3))
    no_audio = np.arange(len(ds)) % 3 == 0  # a third of the rows without speech, another third without a face
    no_face = np.arange(len(ds)) % 3 == 1
    ds.inputs["audio"][no_audio] = np.nan
    ds.inputs["visual_face"][no_face] = np.nan
    report = train("crossmodal", ds, tmp_path / "run", TrainSettings(epochs=3, patience=0, progress=False, threads=1,
                                                                     final_model=False, baseline=True))
    pooled = json.loads(report.path.read_text())["evaluation"]["pooled"]
    assert pooled["er7_audio"]["n"] == int((~no_audio).sum())
    assert pooled["er7_visual"]["n"] == int((~no_face).sum())
    assert pooled["er7_joint"]["n"] == int((~no_audio & ~no_face).sum())


def test_the_shipped_audio_model_does_not_answer_one_class_to_real_speech() -> None:
    """The shipped crossmodal-audio graph on the 12 RAVDESS utterances through the live extractor (3-s windows):
    RAVDESS trained it, so this is a regression check of the shipped default, not a held-out figure."""
    from eyemotion.inference.features.audio import egemaps_windows
    from eyemotion.inference.runtime import OnnxModel

    model = OnnxModel(Path(__file__).resolve().parents[1] / "models" / "crossmodal-audio.onnx")
    assert "RAVDESS" in json.dumps(model.card["training_data"])
    predicted, truth = [], []
    for path in sorted(RAVDESS.glob("*.flac")):
        signal, _ = sf.read(path, dtype="float32")
        signal = np.concatenate([np.zeros(8000, np.float32), signal, np.zeros(8000, np.float32)])
        fw = egemaps_windows(np.arange(len(signal)) / 16000, signal)
        speech = fw.values[fw.extra["speech"] > 0]
        assert len(speech), f"{path.name}: the live gate passes no window"
        probs = model.run({"audio": speech[:, None].astype(np.float32)})[0]
        predicted.append(int(np.argmax(probs.mean(axis=0))))
        truth.append({"01": 0, "03": 1, "04": 2, "05": 3}[path.name[6:8]])
    assert len(set(predicted)) >= 3 and predicted.count(CLASSES.index("anger")) <= 6
    assert np.mean(np.array(predicted) == np.array(truth)) >= 0.5


def test_train_with_several_seeds_prints_model_and_baseline_per_seed(tmp_path: Path) -> None:
    from eyemotion.cli import main

    path = import_corpus("speech", RAVDESS, tmp_path / "ds", pattern=PATTERN, label_map=LABEL_MAP, n_folds=3,
                         progress=False).path
    out = tmp_path / "runs"
    assert main(["train", "crossmodal", str(path), "--out", str(out), "--seeds", "2", "--epochs", "3",
                 "--patience", "0", "--quiet", "--threads", "1", "--no-final"]) == 0
    for seed in (0, 1):
        rep = json.loads((out / f"seed-{seed}" / "report.json").read_text())
        assert rep["settings"]["seed"] == seed and "linear_baseline" in rep["evaluation"]
