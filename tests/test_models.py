"""Unit tests of the model definitions, losses, dataset format and metrics (no training)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from eyemotion import UserError
from eyemotion.models import shapes
from eyemotion.models.crossmodal import VARIANTS, Crossmodal, CrossmodalConfig, CrossmodalEnsemble, build_crossmodal
from eyemotion.models.dataset import (DatasetError, assign_folds, load_dataset, make_synthetic_dataset,
                                      normalisation_stats)
from eyemotion.models.emert import EYE_CONTINUOUS, Emert, EmertConfig, EmtBlock
from eyemotion.models.losses import (EmertTargets, GradientReversal, crossmodal_triplet, emert_loss, hardest_pairs,
                                     inter_modal_triplet, intra_modal_triplet)
from eyemotion.models.train import (baselines, classification_metrics, confusion_matrix, evaluate, regression_metrics,
                                   summarise)
from eyemotion.streams import CLASSES, EVENT_CODES, FACE_EMBEDDING_DIM, GAZE_CLEAN, GAZE_VALIDITY_BITS

torch.set_num_threads(1)


def emert_batch(b: int, tv: int = 8, te: int = 32, tg: int = 32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(b, tv, shapes.FACE_DIM, generator=g), torch.randn(b, te, shapes.EYE_DIM, generator=g),
            torch.rand(b, tg, shapes.FIXATION_ROWS, shapes.FIXATION_COLS, generator=g))


def test_shapes_follow_the_stream_contract():
    assert shapes.EYE_DIM == len(GAZE_CLEAN.channels)
    assert shapes.GAZE_CHANNELS == tuple(GAZE_CLEAN.labels)
    assert shapes.FACE_DIM == FACE_EMBEDDING_DIM
    assert [s.shape for s in shapes.EMERT_INPUTS] == [(8, 128), (32, shapes.EYE_DIM), (32, 18, 32)]
    assert len(shapes.CLASS7_TO_3) == len(CLASSES) and set(shapes.CLASS7_TO_3) == {0, 1, 2}
    assert shapes.CLASSES_3[shapes.CLASS7_TO_3[CLASSES.index("neutral")]] == "neutral"


def test_emert_output_shapes():
    model = Emert().eval()
    out = model(*emert_batch(3))
    assert out.er7.shape == (3, 7) and out.fer7.shape == (3, 7) and out.er3.shape == (3, 3)
    assert out.valence_arousal.shape == (3, 2)
    assert out.valence_arousal.abs().max() <= 1
    assert out.invariant_logits.shape == (3, 3, 3) and out.specific_logits.shape == (3, 3, 3)
    # other window lengths work too (dynamic sequence length)
    assert model(*emert_batch(2, tv=3, te=5, tg=7)).er7.shape == (2, 7)


def test_emert_missing_values_are_treated_as_the_mean():
    model = Emert().eval()
    face, eye, fix = emert_batch(2)
    eye[0, :5, 2] = float("nan")
    out = model(face, eye, fix)
    assert torch.isfinite(out.er7).all() and torch.isfinite(out.valence_arousal).all()
    filled = eye.clone()
    filled[0, :5, 2] = 0.0  # the (default) mean
    assert torch.allclose(model(face, filled, fix).er7, out.er7)


@pytest.mark.parametrize("variant", VARIANTS)
def test_crossmodal_output_shapes(variant):
    model = Crossmodal(CrossmodalConfig(variant=variant)).eval()
    face, gaze, audio = torch.randn(4, 11, 128), torch.randn(4, 11, 103), torch.randn(4, 5, 88)
    out = model(face, gaze, audio)
    assert out.visual_logits.shape == out.audio_logits.shape == out.joint_logits.shape == (4, 7)
    assert out.visual_embedding.shape == out.audio_embedding.shape == (4, shapes.CROSSMODAL_UNITS)
    assert out.visual_embedding.abs().max() < 1 and out.audio_embedding.abs().max() < 1  # bounded embeddings
    gaze_changed = model(face, gaze + 3.0, audio).visual_logits
    if variant == "no-gaze":
        assert torch.equal(gaze_changed, out.visual_logits)
    else:
        assert not torch.allclose(gaze_changed, out.visual_logits)


def test_crossmodal_single_modality_in_pytorch():
    model = Crossmodal().eval()
    face, gaze, audio = torch.randn(2, 9, 128), torch.randn(2, 9, 103), torch.randn(2, 4, 88)
    both = model(face, gaze, audio)
    audio_only = model(audio=audio)
    visual_only = model(face, gaze)
    assert audio_only.visual_logits is None and audio_only.joint_logits is None
    assert visual_only.audio_logits is None and visual_only.joint_logits is None
    # the shared classifier does not see the other modality: monomodal outputs equal the bimodal ones
    assert torch.allclose(audio_only.audio_logits, both.audio_logits)
    assert torch.allclose(visual_only.visual_logits, both.visual_logits)
    with pytest.raises(ValueError, match="needs visual_face or audio"):
        model()
    with pytest.raises(ValueError, match="needs visual_gaze"):
        model(face)


def test_crossmodal_ensemble_averages_the_members_probabilities():
    torch.manual_seed(0)
    model = CrossmodalEnsemble(CrossmodalConfig(members=3)).eval()
    face, gaze, audio = torch.randn(4, 6, 128), torch.randn(4, 6, 103), torch.randn(4, 2, 88)
    out = model(face, gaze, audio)
    members = [m(face, gaze, audio) for m in model.members]
    for name in ("visual_logits", "audio_logits", "joint_logits"):
        probs = torch.stack([torch.softmax(getattr(o, name), -1) for o in members])
        assert torch.allclose(torch.softmax(getattr(out, name), -1), probs.mean(0), atol=1e-6)
        assert (probs[0] - probs[1]).abs().max() > 1e-3  # members start from different weights
    assert torch.equal(out.audio_embedding, members[0].audio_embedding)
    assert isinstance(build_crossmodal(CrossmodalConfig()), Crossmodal)
    with pytest.raises(ValueError, match="at least one member"):
        CrossmodalConfig(members=0)


def test_crossmodal_wide_path_is_a_linear_model_of_the_time_averaged_inputs():
    torch.manual_seed(1)
    model = Crossmodal(CrossmodalConfig(wide=True), {"audio": {"mean": [1.0] * 88, "std": [2.0] * 88}}).eval()
    face, gaze, audio = torch.randn(3, 5, 128), torch.randn(3, 5, 103), torch.randn(3, 4, 88)
    deep = model.classify(model.embed_audio(audio))
    want = ((audio - 1.0) / 2.0).mean(1) @ model.audio_wide.weight.T + model.audio_wide.bias
    assert torch.allclose(model(audio=audio).audio_logits, deep + want, atol=1e-5)
    visual = torch.cat([face.mean(1), gaze.mean(1)], -1) @ model.visual_wide.weight.T + model.visual_wide.bias
    deep_v = model.classify(model.embed_visual(face, gaze))
    assert torch.allclose(model(face, gaze).visual_logits, deep_v + visual, atol=1e-5)
    assert model.wide("audio", audio=audio) is not None and Crossmodal().wide("audio", audio=audio) is None


def test_crossmodal_never_predicts_a_class_its_training_data_lacked():
    torch.manual_seed(2)
    model = CrossmodalEnsemble(CrossmodalConfig(members=2, wide=True, classes=[0, 1, 2, 3])).eval()
    audio = torch.randn(5, 1, 88) * 50  # far outside the training range
    probs = torch.softmax(model(audio=audio).audio_logits, -1)
    assert torch.allclose(probs[:, :4].sum(1), torch.ones(5)) and float(probs[:, 4:].max()) < 1e-9
    free = Crossmodal(CrossmodalConfig()).eval()
    assert float(torch.softmax(free(audio=audio).audio_logits, -1)[:, 4:].min()) > 0
    with pytest.raises(ValueError, match="classes must be indices"):
        CrossmodalConfig(classes=[0, 9])


def test_crossmodal_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown crossmodal variant"):
        CrossmodalConfig(variant="late")


# --- gradient reversal ---

def test_gradient_reversal_negates_and_scales_the_gradient():
    x = torch.randn(5, 4, requires_grad=True)
    w = torch.randn(5, 4)
    y = GradientReversal(scale=0.5)(x)
    assert torch.equal(y, x)  # identity forward
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.5 * w)


def test_emert_discriminator_gradient_is_reversed_for_the_invariant_extractor():
    """The adversarial loss pushes MLP_c against the discriminator, and the discriminator along it."""
    torch.manual_seed(0)
    model = Emert().eval()  # eval: no dropout, so both passes are identical
    batch = emert_batch(4)
    grads = {}
    for scale in (1.0, -1.0):  # -1: the gradient reversal layer turned into an identity
        model.zero_grad()
        model.grl.scale = scale
        out = model(*batch)
        n = out.invariant_logits.shape[1]
        loss = torch.nn.functional.cross_entropy(out.invariant_logits.reshape(-1, n), torch.arange(n).repeat(4))
        loss.backward()
        grads[scale] = (model.invariant[0].weight.grad.clone(), model.discriminator[0].weight.grad.clone())
    assert grads[1.0][0].abs().sum() > 0
    assert torch.allclose(grads[1.0][0], -grads[-1.0][0], atol=1e-7)  # MLP_c: reversed
    assert torch.allclose(grads[1.0][1], grads[-1.0][1], atol=1e-7)  # D itself: unchanged


# --- EMERT eye input: pupil fluctuation, categorical channels (002 Sec. III-A-3) ---

EVENT = shapes.GAZE_CHANNELS.index("event")
VALIDITY = shapes.GAZE_CHANNELS.index("validity")


def test_event_codes_become_one_hot_and_validity_its_bits():
    model = Emert().eval()
    enc = model.eye_encoding
    codes = sorted(EVENT_CODES.values())  # read from the contract: new codes (pso, pursuit, ...) get a column
    assert model.config.event_codes == max(codes) + 1
    eye = torch.zeros(1, len(codes) + 2, shapes.EYE_DIM)
    eye[0, :len(codes), EVENT] = torch.tensor(codes, dtype=torch.float32)
    eye[0, len(codes), EVENT] = float("nan")  # no sample
    eye[0, len(codes) + 1, EVENT] = max(codes) + 1  # a code this model does not know
    masks = [float(i * 1337 % 4096) for i in range(len(codes))] + [float("nan"), 64.0]  # 1337: bits 0, 3-5, 8, 10
    eye[0, :, VALIDITY] = torch.tensor(masks, dtype=torch.float32)
    feats = enc(eye, model.eye_norm(eye))[0]
    n_cont = len(EYE_CONTINUOUS)
    one_hot = feats[:, n_cont:n_cont + model.config.event_codes]
    for row, code in enumerate(codes):
        assert one_hot[row].tolist() == [float(i == code) for i in range(model.config.event_codes)]
    assert one_hot[len(codes)].sum() == 0 and one_hot[len(codes) + 1].sum() == 0
    bits = feats[:, n_cont + model.config.event_codes:]
    assert bits.shape[1] == len(GAZE_VALIDITY_BITS) == model.config.validity_bits
    for row, mask in enumerate(masks):
        want = [0.0] * bits.shape[1] if math.isnan(mask) else [float((int(mask) >> k) & 1) for k in range(bits.shape[1])]
        assert bits[row].tolist() == want


def test_emert_reads_pupil_fluctuation_not_pupil_diameter():
    assert "pupil_fluctuation" in EYE_CONTINUOUS
    assert not {"pupil", "pupil_raw", "event", "validity"} & set(EYE_CONTINUOUS)
    model = Emert().eval()
    face, eye, fix = emert_batch(2)
    eye[..., EVENT] = 1.0
    eye[..., VALIDITY] = 3.0
    base = model(face, eye, fix).er7
    other = eye.clone()
    for name in ("pupil", "pupil_raw"):  # the diameter itself does not enter the model
        other[..., shapes.GAZE_CHANNELS.index(name)] += 2.5
    assert torch.allclose(model(face, other, fix).er7, base)
    for name, value in (("pupil_fluctuation", 0.3), ("event", 2.0), ("validity", 16.0)):
        changed = eye.clone()
        changed[..., shapes.GAZE_CHANNELS.index(name)] = value
        assert not torch.allclose(model(face, changed, fix).er7, base, atol=1e-6), name


def test_emt_block_self_attention_lets_the_queries_see_each_other():
    """With one memory token, cross-attention alone maps each query on its own; self-attention mixes them."""
    torch.manual_seed(0)
    q, memory = torch.randn(1, 4, 16), torch.randn(1, 1, 16)
    moved = q.clone()
    moved[0, 3] += 1.0  # change one query token only
    for self_attention, mixes in ((False, False), (True, True)):
        block = EmtBlock(16, 2, 32, 0.0, self_attention).eval()
        a, b = block(q, memory), block(moved, memory)
        assert torch.allclose(a[0, :3], b[0, :3], atol=1e-6) != mixes
    assert EmertConfig().self_attention


def test_fer_loss_leaves_out_samples_without_a_face():
    torch.manual_seed(0)
    model = Emert().eval()
    out = model(*emert_batch(4))
    er7, er3, va = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 0, 0]), torch.zeros(4, 2)
    masked = emert_loss(out, EmertTargets(er7, er3, va, torch.tensor([2, -1, 4, -1])))
    subset = torch.nn.functional.cross_entropy(out.fer7[[0, 2]], torch.tensor([2, 4])).detach()
    assert math.isclose(float(masked["fer"]), float(subset), rel_tol=1e-5)
    # no face anywhere: the FER head gets no gradient at all (and the loss stays finite)
    model.zero_grad()
    out = model(*emert_batch(4))
    none = emert_loss(out, EmertTargets(er7, er3, va, torch.full((4,), -1)))
    assert float(none["fer"]) == 0.0 and torch.isfinite(none["total"])
    none["total"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.fer_head.parameters())
    # valence/arousal not rated (NaN) are left out the same way
    nan_va = emert_loss(model(*emert_batch(4)), EmertTargets(er7, er3, torch.full((4, 2), float("nan")),
                                                             torch.tensor([0, 1, 2, 3])))
    assert torch.isfinite(nan_va["total"])


def test_emert_loss_uses_the_paper_weights():
    torch.manual_seed(0)
    out = Emert().eval()(*emert_batch(4))
    t = EmertTargets(torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 0, 0]), torch.zeros(4, 2), torch.tensor([0, 1, 2, 4]))
    parts = emert_loss(out, t)
    assert math.isclose(float(parts["total"].detach()), 0.3 * float(parts["adv"]) + 0.1 * (float(parts["er"]) + float(parts["fer"])),
                        rel_tol=1e-5)


# --- triplet mining (000, Sec. 3.3) ---

def test_hardest_pairs_intra_modal_hand_made_batch():
    # 1-d embeddings: class 0 at 0, 1, 3; class 1 at 4, 10
    emb = torch.tensor([[0.0], [1.0], [3.0], [4.0], [10.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    dist = torch.cdist(emb, emb)
    pos, neg, valid = hardest_pairs(dist, labels, labels)
    assert pos.tolist() == [2, 2, 0, 4, 3]  # farthest same-label example
    assert neg.tolist() == [3, 3, 3, 2, 2]  # closest other-label example
    assert valid.all()
    # loss = sum(d+ - d-) = (3-4) + (2-3) + (3-1) + (6-1) + (6-7) = 4
    assert math.isclose(float(intra_modal_triplet(emb, labels)), 4.0, abs_tol=1e-4)
    # hinge with margin 1: max(0, .+1) = 0 + 0 + 3 + 6 + 0 = 9
    assert math.isclose(float(intra_modal_triplet(emb, labels, margin=1.0)), 9.0, abs_tol=1e-4)


def test_hardest_pairs_inter_modal_hand_made_batch():
    a = torch.tensor([[0.0], [5.0], [9.0]])
    b = torch.tensor([[2.0], [4.0], [8.0]])  # row i of b is the other modality of window i
    labels = torch.tensor([0, 1, 0])
    pos, neg, valid = hardest_pairs(torch.cdist(a, b), labels, labels)
    # anchor a0=0: positives b0=2, b2=8 -> farthest b2; negative b1=4
    # anchor a1=5: positive b1=4 only; negatives b0=2 (3), b2=8 (3): argmin takes the first
    # anchor a2=9: positives b0 (7), b2 (1) -> b0; negative b1 (5)
    assert pos.tolist() == [2, 1, 0]
    assert neg.tolist() == [1, 0, 1]
    assert valid.all()
    # (8-4) + (1-3) + (7-5) = 4
    assert math.isclose(float(inter_modal_triplet(a, b, labels)), 4.0, abs_tol=1e-4)
    total = crossmodal_triplet(a, b, labels)
    expected = intra_modal_triplet(a, labels) + intra_modal_triplet(b, labels) + inter_modal_triplet(a, b, labels)
    assert math.isclose(float(total), float(expected), rel_tol=1e-6)


def test_anchor_without_negative_is_skipped():
    emb = torch.tensor([[0.0], [2.0], [7.0]])
    labels = torch.tensor([1, 1, 1])  # no negatives at all
    _, _, valid = hardest_pairs(torch.cdist(emb, emb), labels, labels)
    assert not valid.any()
    assert float(intra_modal_triplet(emb, labels)) == 0.0


def test_triplet_gradient_pulls_positives_and_pushes_negatives():
    emb = torch.tensor([[0.0], [1.0], [2.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    intra_modal_triplet(emb, labels).backward()
    # anchor 1's negative (2) is closer than its positive (0): descending the loss moves 1 towards 0
    assert emb.grad[1, 0] > 0


# --- dataset format ---

@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("ds") / "synthetic", participants=6, windows_per_class=1,
                                  visual_frames=4, audio_steps=3, n_folds=3)


def test_dataset_round_trip_and_participant_folds(small_dataset):
    ds = load_dataset(small_dataset, require=("face", "audio"))
    assert len(ds) == 6 * 7 and ds.n_folds == 3
    meta = json.loads((small_dataset / "dataset.json").read_text())
    assert meta["classes"] == list(CLASSES)
    held_out = []
    for k in range(ds.n_folds):
        train, test = ds.split(k)
        assert set(ds.labels["participant"][train]).isdisjoint(ds.labels["participant"][test])
        assert len(train) + len(test) == len(ds)
        held_out += sorted(set(ds.labels["participant"][test]))
    assert sorted(held_out) == meta["participants"]  # every participant is tested exactly once
    # the statistics of a fold come from its training participants only
    train, _ = ds.split(1)
    want = np.nanmean(ds.inputs["audio"][train].reshape(-1, 88), axis=0)
    assert np.allclose(ds.normalisation(1)["audio"]["mean"], want, atol=1e-5)
    assert not np.allclose(ds.normalisation(1)["audio"]["mean"], ds.normalisation(None)["audio"]["mean"], atol=1e-5)
    assert len(ds.normalisation(0)["fixation"]["mean"]) == 1


def test_normalisation_ignores_nan_and_floors_std():
    arr = np.ones((4, 3, 2), dtype=np.float32)
    arr[0, 0, 0] = np.nan
    stats = normalisation_stats({"audio": arr}, np.arange(4))
    assert stats["audio"]["mean"] == [1.0, 1.0] and stats["audio"]["std"] == [1.0, 1.0]


def test_too_few_participants_for_the_folds():
    with pytest.raises(DatasetError, match="3 participants cannot make 5"):
        assign_folds(["a", "b", "c"], 5)


def test_bad_datasets_give_clear_errors(tmp_path, small_dataset):
    with pytest.raises(DatasetError, match="is not a directory"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="has no windows.npz"):
        load_dataset(tmp_path / "empty")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "windows.npz").write_bytes(b"not a zip file")
    (corrupt / "dataset.json").write_text((small_dataset / "dataset.json").read_text())
    with pytest.raises(DatasetError, match="cannot be read"):
        load_dataset(corrupt)
    with pytest.raises(DatasetError, match="lacks eye_tracker"):
        load_dataset(small_dataset, require=("eye_tracker",))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "dataset.json").write_text((small_dataset / "dataset.json").read_text())
    with np.load(small_dataset / "windows.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["eye"] = arrays["eye"][:, :, :3]  # an older gaze layout
    np.savez(wrong / "windows.npz", **arrays)
    with pytest.raises(DatasetError, match="eye has shape"):
        load_dataset(wrong)
    assert issubclass(DatasetError, UserError)


# --- metrics ---

def test_classification_metrics_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[3, 1, 0], [0, 1, 1], [0, 0, 2]]
    m = classification_metrics(cm)
    assert math.isclose(m["war"], 6 / 8) and "micro_f1" not in m  # micro-F1 would only repeat WAR
    assert math.isclose(m["uar"], (3 / 4 + 1 / 2 + 1) / 3)
    f1 = [2 * 1 * 0.75 / 1.75, 2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) * 1 / (2 / 3 + 1)]
    assert math.isclose(m["macro_f1"], sum(f1) / 3)
    # 002's F1: per-class F1 weighted by support (4, 2, 2 rows): differs from WAR here
    assert math.isclose(m["weighted_f1"], (4 * f1[0] + 2 * f1[1] + 2 * f1[2]) / 8)
    assert not math.isclose(m["weighted_f1"], m["war"])


def test_chance_and_majority_baselines_by_hand():
    truth, train_truth = np.array([0, 0, 0, 1, 2, 2]), np.array([2, 2, 1])
    b = baselines(truth, train_truth, 3)
    assert math.isclose(b["chance"]["war"], 1 / 3) and math.isclose(b["chance"]["uar"], 1 / 3)
    # the training majority (class 2) on the test rows: 2 of 6 right, recall 1 for class 2 only
    assert math.isclose(b["majority"]["war"], 2 / 6) and math.isclose(b["majority"]["uar"], 1 / 3)
    assert math.isclose(b["majority"]["weighted_f1"], 2 / 6 * (2 * 1 / 3 * 1 / (1 / 3 + 1)))


def test_fer_metrics_leave_out_windows_without_a_face():
    from eyemotion.models.dataset import WindowDataset

    labels = {"er7": np.array([0, 1, 2, 3]), "er3": np.array([1, 2, 0, 0]), "fer7": np.array([0, -1, 2, -1]),
              "valence": np.zeros(4), "arousal": np.zeros(4)}
    ds = WindowDataset(None, {}, labels, {})
    pred = {"er7": np.array([0, 1, 2, 3]), "er3": np.array([1, 2, 0, 0]), "fer7": np.array([0, 5, 2, 5]),
            "fer3": np.array([1, 0, 0, 0]), "valence": np.zeros(4), "arousal": np.zeros(4)}
    metrics, cms, _ = evaluate("emert", pred, ds, np.arange(4), np.arange(4))
    assert metrics["fer7"]["n"] == 2 and metrics["fer7"]["war"] == 1.0 and cms["fer7"].sum() == 2
    assert metrics["fer3"]["n"] == 2 and metrics["er7"]["n"] == 4


def test_regression_metrics_and_standard_error():
    r = regression_metrics(np.array([0.0, 0.5, -1.0]), np.array([0.5, 0.5, 0.0]))
    assert math.isclose(r["mae"], 0.5) and math.isclose(r["mse"], (0.25 + 1) / 3)
    assert math.isclose(r["rmse"], math.sqrt((0.25 + 1) / 3))
    s = summarise([{"t": {"war": 0.5}}, {"t": {"war": 0.7}}, {"t": {"war": 0.9}}])
    assert math.isclose(s["t"]["war"]["mean"], 0.7)
    assert math.isclose(s["t"]["war"]["se"], 0.2 / math.sqrt(3))
    assert summarise([{"t": {"war": 0.5}}])["t"]["war"]["se"] is None
