"""End to end: a tiny training on a synthetic dataset with a planted signal, ONNX export, parity with
onnxruntime (through `eyemotion.inference.runtime`), missing modalities, and broken model files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from eyemotion import UserError
from eyemotion.cli import main
from eyemotion.inference.runtime import ModelError, OnnxModel
from eyemotion.models import shapes
from eyemotion.models.crossmodal import VARIANTS, Crossmodal, CrossmodalConfig
from eyemotion.models.dataset import make_synthetic_dataset
from eyemotion.models.export import (AXIS_NAMES, PARITY_TOL, example_inputs, export_checkpoint, export_graph,
                                     graphs_of, parity)
from eyemotion.models.train import TrainSettings, load_checkpoint, train
from eyemotion.streams import CLASSES

torch.set_num_threads(1)
CHANCE = 1 / len(CLASSES)
FAST = {"batch_size": 32, "lr": 1e-3, "folds": [0], "progress": False, "threads": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """10 participants x 7 classes x 3 windows, a weak planted signal; fold 0 holds out 2 participants."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("models") / "ds", participants=10, windows_per_class=3,
                                  signal=0.2, seed=1)


@pytest.fixture(scope="module")
def emert_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("emert")
    return train("emert", dataset, out, TrainSettings(epochs=5, **FAST))


@pytest.fixture(scope="module")
def crossmodal_run(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("crossmodal")
    return train("crossmodal", dataset, out, TrainSettings(epochs=6, **FAST))


@pytest.fixture(scope="module")
def exported(emert_run, crossmodal_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    paths = export_checkpoint(emert_run.checkpoint, out) + export_checkpoint(crossmodal_run.checkpoint, out)
    return {p.stem: p for p in paths}


def test_emert_learns_the_planted_signal_on_held_out_participants(emert_run):
    m = emert_run.summary
    assert m["er7"]["war"]["mean"] > 3 * CHANCE, m["er7"]
    assert m["er7"]["uar"]["mean"] > 3 * CHANCE
    assert m["er3"]["war"]["mean"] > 0.6
    assert m["fer7"]["war"]["mean"] > 2 * CHANCE
    # valence/arousal: better than always predicting 0 on planted values of mean |v| ~ 0.5
    assert m["valence"]["mae"]["mean"] < 0.4
    fold = emert_run.folds[0]
    assert fold["n_test"] == 2 * 7 * 3 and len(fold["test_participants"]) == 2


def test_crossmodal_learns_from_each_modality(crossmodal_run):
    m = crossmodal_run.summary
    for task in ("er7_visual", "er7_audio", "er7_joint"):
        assert m[task]["war"]["mean"] > 3 * CHANCE, (task, m[task])


def test_a_dataset_without_signal_stays_near_chance(tmp_path):
    """The control: the same pipeline on features without a planted signal does not beat chance clearly."""
    ds = make_synthetic_dataset(tmp_path / "null", participants=10, windows_per_class=3, signal=0.0, seed=2)
    run = train("crossmodal", ds, tmp_path / "run", TrainSettings(epochs=6, final_model=False, **FAST))
    for task in ("er7_visual", "er7_audio"):
        assert run.summary[task]["war"]["mean"] < 0.35, (task, run.summary[task])


def test_training_writes_report_confusion_png_and_checkpoint(emert_run):
    out = emert_run.path.parent
    report = json.loads(emert_run.path.read_text())
    assert report["model"] == "emert" and report["settings"]["seed"] == 0
    assert set(report["summary"]) == {"er7", "er3", "fer7", "fer3", "valence", "arousal"}
    assert set(report["summary"]["er7"]) == {"weighted_f1", "macro_f1", "war", "uar", "n"}
    # every head next to its baselines: uniform chance (WAR = UAR = 1/K) and the training majority class
    base = report["evaluation"]["baselines"]
    assert base["chance"]["er7"]["uar"]["mean"] == pytest.approx(1 / 7)
    assert base["chance"]["er3"]["war"]["mean"] == pytest.approx(1 / 3)
    assert base["majority"]["er7"]["uar"]["mean"] == pytest.approx(1 / 7)  # one class predicted: recall 1 of 7
    assert report["evaluation"]["protocol"] == "window"  # the synthetic dataset has no per-clip rows
    assert set(report["summary"]["valence"]) == {"mae", "mse", "rmse"}
    cm = np.array(report["confusion"]["er7"])
    assert cm.shape == (7, 7) and cm.sum() == report["folds"][0]["n_test"]
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, meta = load_checkpoint(out / "model.pt")
    assert meta["kind"] == "emert" and meta["metrics"]["er7"]["war"]["mean"] == report["summary"]["er7"]["war"]["mean"]
    # the final model was trained on every participant with the statistics of all of them
    assert np.allclose(model.face_norm.mean.numpy(), meta["normalisation"]["face"]["mean"])


def test_training_is_reproducible_with_a_seed(dataset, tmp_path):
    settings = TrainSettings(epochs=2, final_model=False, **FAST)
    a = train("crossmodal", dataset, tmp_path / "a", settings)
    b = train("crossmodal", dataset, tmp_path / "b", settings)
    assert a.folds[0]["final_loss"] == b.folds[0]["final_loss"]


def _torch_outputs(module, feeds: dict[str, np.ndarray], names) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in module(*(torch.from_numpy(feeds[n]) for n in names))]


LENGTH_SETS = [
    {"face_frames": 8, "eye_samples": 32, "fixation_slices": 32, "visual_frames": 10, "audio_steps": 6},
    {"face_frames": 3, "eye_samples": 17, "fixation_slices": 40, "visual_frames": 25, "audio_steps": 2},
    {"face_frames": 1, "eye_samples": 1, "fixation_slices": 1, "visual_frames": 1, "audio_steps": 1},
]


@pytest.mark.parametrize("stem", ["emert", "crossmodal-visual", "crossmodal-audio", "crossmodal-joint"])
def test_onnx_parity_with_pytorch_through_the_runtime(stem, exported, emert_run, crossmodal_run):
    run = emert_run if stem == "emert" else crossmodal_run
    model, _ = load_checkpoint(run.checkpoint)
    graph = next(g for g in graphs_of("emert" if stem == "emert" else "crossmodal", model, stem.split("-")[0])
                 if g.name == stem)
    onnx_model = OnnxModel(exported[stem])
    assert [i.name for i in onnx_model.inputs] == list(graph.inputs)
    for batch in (1, 4):
        for i, lengths in enumerate(LENGTH_SETS):
            feeds = example_inputs(graph.inputs, batch, lengths, seed=100 + i)
            got = onnx_model.run(feeds)
            want = _torch_outputs(graph.module, feeds, graph.inputs)
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.shape == w.shape and g.shape[0] == batch
                assert np.max(np.abs(g - w)) <= PARITY_TOL


def test_model_cards(exported, emert_run):
    card = json.loads(exported["emert"].with_suffix(".json").read_text())
    assert card["class_order"] == list(CLASSES) and card["class_order_3"] == list(shapes.CLASSES_3)
    assert [i["name"] for i in card["inputs"]] == ["face", "eye", "fixation"]
    assert card["inputs"][1]["shape"] == ["batch", "eye_samples", shapes.EYE_DIM]
    assert card["inputs"][0]["trained_length"] == 8
    assert card["gaze_channels"] == list(shapes.GAZE_CHANNELS)
    model, _ = load_checkpoint(emert_run.checkpoint)
    assert card["normalisation"]["applied_in_graph"] is True
    assert np.allclose(card["normalisation"]["statistics"]["eye"]["mean"], model.eye_norm.mean.numpy())
    assert card["metrics"]["er7"]["war"]["mean"] == emert_run.summary["er7"]["war"]["mean"]
    assert card["training_data"]["provenance"]["source"] == "synthetic"
    assert card["licence"] and card["opset"] >= 17 and card["parity"]["max_abs_diff"] <= PARITY_TOL
    assert card["outputs"][0] == {"name": "er7_probs", "dtype": "float32", "shape": ["batch", 7],
                                  "description": card["outputs"][0]["description"]}
    audio = json.loads(exported["crossmodal-audio"].with_suffix(".json").read_text())
    assert [i["name"] for i in audio["inputs"]] == ["audio"] and audio["variant"] == "model-averaged"


def test_missing_modality_audio_only_and_visual_only(exported, crossmodal_run):
    """Monomodal test time (000 Sec. 3): each single-modality graph runs on its modality alone."""
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(3, 6, 88)).astype(np.float32)
    face = rng.normal(size=(3, 10, 128)).astype(np.float32)
    gaze = rng.normal(size=(3, 10, 103)).astype(np.float32)
    a_probs, a_emb = OnnxModel(exported["crossmodal-audio"]).run({"audio": audio})
    v_probs, v_emb = OnnxModel(exported["crossmodal-visual"]).run({"visual_face": face, "visual_gaze": gaze})
    for p in (a_probs, v_probs):
        assert p.shape == (3, 7) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert a_emb.shape == v_emb.shape == (3, shapes.CROSSMODAL_UNITS)
    joint, v_from_joint, a_from_joint = OnnxModel(exported["crossmodal-joint"]).run(
        {"visual_face": face, "visual_gaze": gaze, "audio": audio})
    assert np.allclose(a_from_joint, a_probs, atol=1e-5) and np.allclose(v_from_joint, v_probs, atol=1e-5)
    assert np.allclose(joint.sum(1), 1, atol=1e-5)
    with pytest.raises(ModelError, match="needs input 'visual_gaze'"):
        OnnxModel(exported["crossmodal-visual"]).run({"visual_face": face})


def test_the_exported_audio_graph_is_the_trained_ensemble(exported, crossmodal_run):
    """The crossmodal default is an ensemble of 5 (Lakshminarayanan et al. 2017); the ONNX graph averages the
    probabilities of the very members that were trained, so the shipped model is the evaluated method."""
    model, meta = load_checkpoint(crossmodal_run.checkpoint)
    assert meta["config"]["members"] == 5 and len(model.members) == 5
    audio = np.random.default_rng(3).normal(size=(4, 2, 88)).astype(np.float32)
    got = OnnxModel(exported["crossmodal-audio"]).run({"audio": audio})[0]
    with torch.no_grad():
        each = [torch.softmax(m(audio=torch.from_numpy(audio)).audio_logits, -1).numpy() for m in model.members]
    assert np.allclose(got, np.mean(each, axis=0), atol=PARITY_TOL)
    assert max(np.abs(e - got).max() for e in each) > 1e-4  # not one member: the mean of different ones


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "model-averaged"])
def test_every_crossmodal_variant_exports_with_parity(variant, tmp_path):
    torch.manual_seed(0)
    model = Crossmodal(CrossmodalConfig(variant=variant)).eval()
    lengths = {"visual_frames": 10, "audio_steps": 6}
    for graph in graphs_of("crossmodal", model, f"cm-{variant}"):
        path = tmp_path / f"{graph.name}.onnx"
        export_graph(graph, path, lengths)
        assert parity(graph, path, {AXIS_NAMES[n]: lengths[AXIS_NAMES[n]] for n in graph.inputs}) <= PARITY_TOL
        if variant == "no-gaze" and graph.part == "visual":
            assert graph.inputs == ("visual_face",)  # the EmoBed ablation needs no gaze input


def test_corrupt_or_missing_onnx_gives_a_clear_error(exported, tmp_path):
    broken = tmp_path / "emert.onnx"
    broken.write_bytes(exported["emert"].read_bytes()[:5000])  # truncated file
    shutil.copy(exported["emert"].with_suffix(".json"), broken.with_suffix(".json"))
    with pytest.raises(ModelError, match="cannot be loaded"):
        OnnxModel(broken)
    with pytest.raises(ModelError, match="not found"):
        OnnxModel(tmp_path / "absent.onnx")
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(exported["emert"], lonely)
    with pytest.raises(ModelError, match="card"):
        OnnxModel(lonely)
    assert issubclass(ModelError, UserError)


def test_export_and_train_cli_errors(tmp_path, dataset, capsys):
    """Bad input through the real CLI: one line on stderr, exit code 2, no traceback."""
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"garbage")
    cases = [
        (["export-onnx", str(bad), "--out", str(tmp_path)], "cannot be read"),
        (["train", "emert", str(tmp_path / "missing")], "is not a directory"),
        (["train", "crossmodal", str(dataset), "--folds", "7", "--no-final", "--quiet", "--out", str(tmp_path / "r")],
         "fold(s) [7] do not exist"),
        (["train", "crossmodal", str(dataset), "--folds", "x"], "--folds must be comma-separated integers"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for sub in (["train"], ["export-onnx"], ["dataset", "synthetic"]):
        with pytest.raises(SystemExit) as exit_info:
            main(sub + ["--help"])
        assert exit_info.value.code == 0 and "usage" in capsys.readouterr().out
