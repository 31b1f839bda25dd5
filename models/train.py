"""Training and participant-wise cross-validation of EMERT and the crossmodal embeddings.

`train(kind, dataset, out)` runs k-fold cross-validation over participants (5 folds as in
002_cbeb04dbce786b8c.txt Sec. V-A-1), reports per fold and as mean +- standard error over folds:
weighted F1 (002's F1), macro-F1, WAR (weighted average recall = accuracy) and UAR (unweighted average
recall) of each classification task, each next to two baselines (uniform chance and the training folds'
majority class), and MAE / MSE / RMSE of valence and arousal (EMERT). Rows without a label of a task
(fer7 = -1: no face) are left out of its loss and metrics. EMERT follows 002's per-clip protocol (Sec.
V-A-2) when the dataset has per-clip rows (`emert_datasets`), and then also reports the same models on
the live node's 4-s sliding windows (`evaluation.windows`). It writes
`report.json`, `confusion.png` (confusion matrices summed over the test folds) and, unless disabled,
`model.pt`: a final model trained on every participant, which `eyemotion export-onnx` turns into ONNX.

EMERT follows 002 Sec. V-A-2: Adam, batch size 16, learning rate 1e-4 and cosine decay. The crossmodal
model deviates from 000_e9deb5c9c21c243c.txt Sec. 4.1 (Adam, batch 64, lr 1e-4, weight decay 1e-4), which
underfits a small corpus (~200 steps on 320 clips) and swings with the seed: Adam, batch 32, lr 1e-3,
weight decay 1e-2, class-weighted losses, Gaussian input noise of 0.5 training SD on the audio, and early
stopping (patience 30, at most 300 epochs) on the class-weighted loss of inner validation participants.
The crossmodal model is by default an ensemble of 5 with a linear path beside each branch (`--members`,
`--no-wide`; `crossmodal.CrossmodalEnsemble`, `Crossmodal.wide`), trained as a cross-validation committee
(Krogh & Vedelsby 1995, NIPS 7, Sec. 4): the training participants are split into 5 groups (grouped,
class-stratified) and member i trains on the other four and early-stops on group i; the final model is the
same committee on every participant. A single model (`--members 1`) early-stops on the first group and the
final one trains for the folds' median best epoch. The linear baseline (`models.baseline`) runs beside the
model on the same features and folds and chooses its C on the same inner groups. Each crossmodal batch yields an
audio and a visual embedding batch; the shared classifier gets them alternately, audio first (one
optimiser step each), and rows with both modalities add the crossmodal triplet loss with weight alpha =
0.1 (001_8cd198317e00f0b1.txt Eq. 3.4). A corpus with one modality (speech only, faces only) trains that
branch alone, without dummy inputs. The joint head (001 Sec. 3.4) learns on detached embeddings, so it
does not change the monomodal model. Reported: mean +- SE over folds and pooled out-of-fold figures
(`evaluation.pooled`, and `evaluation.linear_baseline`), confusion.png and confusion_baseline.png.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from eyemotion import UserError, __version__
from eyemotion.models import shapes
from eyemotion.models.crossmodal import VARIANTS, Crossmodal, CrossmodalConfig, build_crossmodal
from eyemotion.models.dataset import WindowDataset, load_dataset
from eyemotion.models.emert import Emert, EmertConfig
from eyemotion.models.losses import TRIPLET_ALPHA, EmertTargets, crossmodal_triplet, emert_loss
from eyemotion.streams import CLASSES

log = logging.getLogger(__name__)

KINDS = ("emert", "crossmodal")
MODEL_INPUTS = {"emert": ("face", "eye", "fixation"), "crossmodal": ("visual_face", "visual_gaze", "audio")}
#: classification task -> (label array, class names)
TASKS = {
    "emert": {"er7": ("er7", CLASSES), "er3": ("er3", shapes.CLASSES_3), "fer7": ("fer7", CLASSES),
              "fer3": ("fer7", shapes.CLASSES_3)},
    "crossmodal": {"er7_visual": ("er7", CLASSES), "er7_audio": ("er7", CLASSES), "er7_joint": ("er7", CLASSES)},
}
#: tasks whose labels are mapped from another label (fer3: the coarse class of the FER label, 002 Sec. III-B-1)
LABEL_MAP = {"fer3": np.asarray(shapes.CLASS7_TO_3)}
REGRESSION = {"emert": ("valence", "arousal"), "crossmodal": ()}
CHECKPOINT = "model.pt"
REPORT = "report.json"
CONFUSION_PNG = "confusion.png"
CONFUSION_BASELINE_PNG = "confusion_baseline.png"


@dataclass
class TrainSettings:
    epochs: int = 0  # 0: the kind's default (EMERT 40; crossmodal at most 300, early-stopped)
    batch_size: int = 0  # 0: EMERT 16 (002); crossmodal 32 (small corpora)
    lr: float = 0.0  # 0: EMERT 1e-4 (002); crossmodal 1e-3
    weight_decay: float = -1.0  # < 0: the paper's (EMERT 0, crossmodal 1e-4)
    seed: int = 0
    folds: list[int] | None = None  # None: every fold of the dataset
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0: torch's default)
    final_model: bool = True  # also train on all participants and save model.pt
    progress: bool = True
    variant: str = "model-averaged"  # crossmodal only
    triplet_margin: float | None = None  # None: 000 Eq. 1 as printed
    protocol: str = "auto"  # EMERT: clip | window | auto (clip when the dataset has per-clip rows)
    patience: int = 30  # crossmodal: stop after this many epochs without a better inner-validation UAR (0: never)
    val_fraction: float = 0.2  # crossmodal: share of each training fold's participants held out for early stopping
    input_noise: float = -1.0  # < 0: the kind's default (crossmodal 0.5). Crossmodal: Gaussian noise (in training-SD units) added to the audio input in training
    baseline: bool = True  # crossmodal: also a logistic regression on the same features and folds (models.baseline)
    members: int = 0  # crossmodal: ensemble size, members from different initialisations, probabilities averaged (0: 5)
    wide: bool = True  # crossmodal: a linear path beside each branch (CrossmodalConfig.wide)

    def resolved(self, kind: str) -> TrainSettings:
        s = TrainSettings(**asdict(self))
        s.batch_size = s.batch_size or (16 if kind == "emert" else 32)
        s.epochs = s.epochs or (40 if kind == "emert" else 300)
        s.lr = s.lr or (1e-4 if kind == "emert" else 1e-3)
        if s.weight_decay < 0:
            s.weight_decay = 0.0 if kind == "emert" else 1e-2
        if s.input_noise < 0:
            s.input_noise = 0.0 if kind == "emert" else 0.5
        s.members = s.members or (1 if kind == "emert" else 5)
        return s


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise UserError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def build_model(kind: str, normalisation: dict | None, settings: TrainSettings,
                classes: np.ndarray | None = None) -> torch.nn.Module:
    """`classes`: crossmodal, the classes of the training rows (the others are never predicted)."""
    if kind == "emert":
        return Emert(EmertConfig(), normalisation)
    if kind == "crossmodal":
        return build_crossmodal(CrossmodalConfig(variant=settings.variant, members=settings.members or 1,
                                                 wide=settings.wide,
                                                 classes=None if classes is None else tuple(np.unique(classes))),
                                normalisation)
    raise UserError(f"unknown model {kind!r}; choose one of {', '.join(KINDS)}")


# --- metrics ---

def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_metrics(cm: np.ndarray) -> dict[str, float]:
    """Weighted F1, macro-F1, WAR and UAR from a confusion matrix (002 Sec. V-A-1).

    WAR weights each class's recall by its support (= accuracy; micro-F1 would equal it, so it is not
    reported); F1 is the support-weighted mean of the per-class F1 (002's F1 differs from its WAR, as
    this one does); UAR and macro-F1 average over the classes that occur in the truth (UAR) or in truth
    or prediction (macro-F1).
    """
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    war = float(tp.sum() / max(cm.sum(), 1))
    present = (support > 0) | (predicted > 0)
    weighted = float((f1 * support).sum() / max(support.sum(), 1))
    return {"weighted_f1": weighted, "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "war": war, "uar": float(recall[support > 0].mean()) if (support > 0).any() else 0.0}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    err = np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)
    mse = float(np.mean(err ** 2))
    return {"mae": float(np.mean(np.abs(err))), "mse": mse, "rmse": math.sqrt(mse)}


def summarise(per_fold: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Mean and standard error (sample std / sqrt(k); None for one fold) of every metric over folds."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for task in per_fold[0]:
        out[task] = {}
        for metric in per_fold[0][task]:
            vals = np.array([f[task][metric] for f in per_fold], dtype=float)
            se = float(vals.std(ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else None
            out[task][metric] = {"mean": float(vals.mean()), "se": se}
    return out


# --- batches ---

class _Tensors:
    """The dataset's arrays as tensors on the training device."""

    def __init__(self, ds: WindowDataset, kind: str, device: torch.device):
        names = MODEL_INPUTS[kind] if kind == "emert" else crossmodal_inputs(ds)
        missing = [k for k in names if k not in ds.inputs]
        if missing:
            raise UserError(f"dataset {ds.root} lacks {', '.join(missing)}, needed by {kind}; rebuild it with those inputs")
        self.x = {k: torch.as_tensor(ds.inputs[k], device=device) for k in names}
        #: crossmodal: per row, whether the modality holds any value (absent: all NaN)
        self.present = {m: torch.as_tensor(np.isfinite(ds.inputs[k]).reshape(len(ds), -1).any(1), device=device)
                        for m, k in (("audio", "audio"), ("visual", "visual_face")) if k in self.x}
        self.y = {k: torch.as_tensor(ds.labels[k], device=device) for k in ("er7", "er3", "fer7")}
        self.va = torch.as_tensor(np.stack([ds.labels["valence"], ds.labels["arousal"]], 1), device=device)

    def batch(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        y = {k: v[idx] for k, v in self.y.items()}
        y["va"] = self.va[idx]
        y.update({f"has_{m}": v[idx] for m, v in self.present.items()})
        return {k: v[idx] for k, v in self.x.items()}, y


def crossmodal_inputs(ds: WindowDataset, variant: str | None = None) -> tuple[str, ...]:
    """The crossmodal inputs that the dataset has: audio and/or the visual ones (monomodal corpora train
    without dummy inputs of the other modality)."""
    names = tuple(k for k in MODEL_INPUTS["crossmodal"] if k in ds.inputs)
    if "audio" not in names and "visual_face" not in names:
        raise UserError(f"dataset {ds.root} has neither audio nor visual_face; the crossmodal model needs one of them")
    return names


def _emert_step(model: Emert, opt: torch.optim.Optimizer, x: dict, y: dict) -> float:
    out = model(x["face"], x["eye"], x["fixation"])
    loss = emert_loss(out, EmertTargets(y["er7"], y["er3"], y["va"], y["fer7"]))["total"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def _crossmodal_steps(model: Crossmodal, opt: torch.optim.Optimizer, x: dict, y: dict, margin: float | None,
                      weight: torch.Tensor | None = None, noise: float = 0.0) -> float:
    """One optimiser step per modality present. Each row's loss uses only the modalities it has: the
    classifier loss on rows with that modality, the triplet loss and the joint head on rows with both."""
    total = 0.0
    has_a, has_v = y.get("has_audio"), y.get("has_visual")
    for modality in ("audio", "visual"):  # 000 Sec. 4.1: alternate audio / visual batches
        mine = has_a if modality == "audio" else has_v
        if mine is None or int(mine.sum()) < 1:
            continue
        audio = x.get("audio")
        if audio is not None and noise > 0:  # augmentation: noise in units of the training SD of each feature
            audio = audio + noise * model.audio_norm.std * torch.randn_like(audio)
        e_a = model.embed_audio(audio) if has_a is not None else None
        e_v = model.embed_visual(x["visual_face"], x.get("visual_gaze")) if has_v is not None else None
        emb = e_a if modality == "audio" else e_v
        logits = model.classify(emb[mine])
        wide = model.wide(modality, x.get("visual_face"), x.get("visual_gaze"), audio)
        if wide is not None:  # the linear path sees the same (noisy) inputs
            logits = logits + wide[mine]
        loss = F.cross_entropy(logits, y["er7"][mine], weight=weight)
        both = has_a & has_v if has_a is not None and has_v is not None else None
        if both is not None and int(both.sum()) >= 2:
            pooled_a, pooled_v = e_a[both].mean(1), e_v[both].mean(1)
            loss = loss + TRIPLET_ALPHA * crossmodal_triplet(pooled_a, pooled_v, y["er7"][both], margin)
            if modality == "visual":
                loss = loss + F.cross_entropy(model.classify_joint(pooled_a.detach(), pooled_v.detach()),
                                              y["er7"][both], weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach())
    return total


def class_weights(labels: np.ndarray, device: torch.device) -> torch.Tensor:
    """Inverse class frequency of the training rows (mean 1 over the classes present): the loss then weighs
    every class alike, which is what UAR measures."""
    counts = np.bincount(labels, minlength=shapes.N_CLASSES).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return torch.as_tensor(w, dtype=torch.float32, device=device)


def fit(kind: str, model: torch.nn.Module, data: _Tensors, train_idx: np.ndarray, settings: TrainSettings,
        desc: str = "train", val_idx: np.ndarray | list[np.ndarray] | None = None, er7: np.ndarray | None = None
        ) -> list[float]:
    """Train `model` in place on rows `train_idx`; returns the mean loss of each epoch.

    An ensemble trains each member in turn. With a list of inner folds as `val_idx` it is a cross-validation
    committee (Krogh & Vedelsby 1995, NIPS 7, Sec. 4): member i trains on `train_idx` less fold i and early-stops
    on fold i, so every training participant teaches most members and every member stops on unseen people.

    Crossmodal: the classifier losses are class-weighted (`class_weights` of `er7[train_idx]`) and, with
    `val_idx`, training stops once the mean UAR of the monomodal heads on those rows has not improved for
    `settings.patience` epochs; the model keeps the weights of its best epoch (`model.best_epoch`).
    """
    if hasattr(model, "members"):  # an ensemble: each member on its own, with its own batch order
        runs = []
        for i, m in enumerate(model.members):
            mine, val = train_idx, val_idx
            if isinstance(val_idx, list):  # a cross-validation committee: member i holds out inner fold i
                val = val_idx[i % len(val_idx)]
                mine = np.setdiff1d(train_idx, val)
            runs.append(fit(kind, m, data, mine, TrainSettings(**{**asdict(settings), "seed": settings.seed + 7919 * i}),
                            f"{desc} member {i}", val, er7))
        model.best_epoch = int(np.median([m.best_epoch for m in model.members]))
        model.eval()
        return [float(np.mean([r[e] for r in runs if e < len(r)])) for e in range(max(map(len, runs)))]
    device = next(model.parameters()).device
    weight = class_weights(er7[train_idx], device) if kind == "crossmodal" and er7 is not None else None
    best = (-math.inf, None, 0)  # (validation score, state, epoch)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.epochs) if kind == "emert" else None
    gen = torch.Generator().manual_seed(settings.seed)
    idx_all = torch.as_tensor(train_idx)
    losses = []
    model.train()
    bar = tqdm(range(settings.epochs), desc=desc, unit="epoch", disable=not settings.progress, leave=False)
    for _ in bar:
        order = idx_all[torch.randperm(len(idx_all), generator=gen)]
        epoch_loss, n = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            if len(batch) < 2:  # triplet mining and batch statistics need two windows
                continue
            x, y = data.batch(batch.to(device))
            if kind == "emert":
                epoch_loss += _emert_step(model, opt, x, y)
            else:
                epoch_loss += _crossmodal_steps(model, opt, x, y, settings.triplet_margin, weight,
                                                settings.input_noise)
            n += 1
        if sched is not None:
            sched.step()
        losses.append(epoch_loss / max(n, 1))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if kind == "crossmodal" and val_idx is not None and len(val_idx) and er7 is not None:
            uar = _val_score(model, data, val_idx, er7, weight)
            model.train()
            if uar > best[0]:
                best = (uar, {k: v.detach().clone() for k, v in model.state_dict().items()}, len(losses))
            elif settings.patience and len(losses) - best[2] >= settings.patience:
                break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.best_epoch = best[2] or len(losses)
    model.eval()
    return losses


@torch.no_grad()
def _val_score(model: torch.nn.Module, data: _Tensors, idx: np.ndarray, er7: np.ndarray,
               weight: torch.Tensor | None) -> float:
    """Early stopping: minus the class-weighted cross-entropy of the monomodal heads on rows `idx` (smoother
    than their UAR on a few participants)."""
    model.eval()
    device = next(model.parameters()).device
    x, y = data.batch(torch.as_tensor(idx, device=device))
    out = model(x.get("visual_face"), x.get("visual_gaze"), x.get("audio"))
    losses = [F.cross_entropy(logits[y[f"has_{m}"]], y["er7"][y[f"has_{m}"]], weight=weight)
              for m, logits in (("audio", out.audio_logits), ("visual", out.visual_logits))
              if logits is not None and bool(y[f"has_{m}"].any())]
    return -float(torch.stack(losses).mean()) if losses else 0.0


def _val_uar(model: torch.nn.Module, data: _Tensors, idx: np.ndarray, er7: np.ndarray) -> float:
    """Mean UAR of the crossmodal monomodal heads on rows `idx`."""
    pred = predict("crossmodal", model, data, idx)
    uars = []
    for task in ("er7_audio", "er7_visual"):
        if task in pred and (pred[task] >= 0).any():
            keep = pred[task] >= 0
            uars.append(classification_metrics(confusion_matrix(er7[idx][keep], pred[task][keep],
                                                                shapes.N_CLASSES))["uar"])
    return float(np.mean(uars)) if uars else 0.0


def _coarse_matrix(like: torch.Tensor) -> torch.Tensor:
    """(7, 3) 0/1 matrix: class -> coarse class (`shapes.CLASS7_TO_3`)."""
    return F.one_hot(torch.as_tensor(shapes.CLASS7_TO_3), len(shapes.CLASSES_3)).to(like)


@torch.no_grad()
def predict(kind: str, model: torch.nn.Module, data: _Tensors, idx: np.ndarray, chunk: int = 256) -> dict[str, np.ndarray]:
    """Predicted classes per task (and valence / arousal) for rows `idx`."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    device = next(model.parameters()).device
    for start in range(0, len(idx), chunk):
        x, _ = data.batch(torch.as_tensor(idx[start:start + chunk], device=device))
        if kind == "emert":
            out = model(x["face"], x["eye"], x["fixation"])
            fer3 = torch.softmax(out.fer7, -1) @ _coarse_matrix(out.fer7)  # FER head pooled per coarse class
            got = {"er7": out.er7.argmax(-1), "er3": out.er3.argmax(-1), "fer7": out.fer7.argmax(-1),
                   "fer3": fer3.argmax(-1), "valence": out.valence_arousal[:, 0], "arousal": out.valence_arousal[:, 1]}
        else:  # the heads of the modalities the dataset has; -1 for rows without that modality
            _, y = data.batch(torch.as_tensor(idx[start:start + chunk], device=device))
            out = model(x.get("visual_face"), x.get("visual_gaze"), x.get("audio"))
            has_a, has_v = y.get("has_audio"), y.get("has_visual")
            got = {}
            if out.visual_logits is not None:
                got["er7_visual"] = torch.where(has_v, out.visual_logits.argmax(-1), -1)
            if out.audio_logits is not None:
                got["er7_audio"] = torch.where(has_a, out.audio_logits.argmax(-1), -1)
            if out.joint_logits is not None:
                got["er7_joint"] = torch.where(has_a & has_v, out.joint_logits.argmax(-1), -1)
        for k, v in got.items():
            parts.setdefault(k, []).append(v.cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def task_labels(task: str, label: str, ds: WindowDataset, idx: np.ndarray) -> np.ndarray:
    """The labels of `task` for rows `idx`; -1 where the row has none (fer7 without a face)."""
    y = np.asarray(ds.labels[label][idx])
    if task in LABEL_MAP:
        y = np.where(y >= 0, LABEL_MAP[task][np.maximum(y, 0)], -1)
    return y


def baselines(truth: np.ndarray, train_truth: np.ndarray, n_classes: int) -> dict[str, dict[str, float]]:
    """What a model that learnt nothing scores on `truth`: "chance" = guessing uniformly over the classes in
    truth or training (expected confusion matrix), "majority" = always the training rows' most frequent class."""
    support = np.bincount(truth, minlength=n_classes).astype(float)
    used = np.zeros(n_classes, bool)  # guess among the classes the corpus has (a 4-class corpus: 1/4)
    used[np.union1d(truth, train_truth).astype(int)] = True
    expected = support[:, None] * used[None, :] / max(int(used.sum()), 1)
    majority = int(np.argmax(np.bincount(train_truth, minlength=n_classes))) if len(train_truth) else 0
    constant = confusion_matrix(truth, np.full(len(truth), majority), n_classes)
    return {"chance": classification_metrics(expected), "majority": classification_metrics(constant)}


def evaluate(kind: str, pred: dict[str, np.ndarray], ds: WindowDataset, idx: np.ndarray,
             train_idx: np.ndarray | None = None, train_ds: WindowDataset | None = None
             ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray], dict[str, dict]]:
    """(metrics per task, confusion matrix per classification task, baselines per task: chance and the
    majority class of rows `train_idx` of `train_ds` (default `ds`)). Rows without a label are left out."""
    metrics, cms, base = {}, {}, {}
    train_ds = train_ds or ds
    for task, (label, names) in TASKS[kind].items():
        if task not in pred:  # a crossmodal head of a modality the dataset lacks
            continue
        truth = task_labels(task, label, ds, idx)
        keep = (truth >= 0) & (pred[task] >= 0)
        cm = confusion_matrix(truth[keep], pred[task][keep], len(names))
        cms[task] = cm
        metrics[task] = {**classification_metrics(cm), "n": int(keep.sum())}
        train_truth = task_labels(task, label, train_ds, np.arange(0) if train_idx is None else train_idx)
        base[task] = baselines(truth[keep], train_truth[train_truth >= 0], len(names))
    for name in REGRESSION[kind]:
        truth = np.asarray(ds.labels[name][idx], dtype=float)
        rated = np.isfinite(truth)
        metrics[name] = regression_metrics(truth[rated], pred[name][rated]) if rated.any() else {}
    return metrics, cms, base


def inner_folds(ds: WindowDataset, train_idx: np.ndarray, s: TrainSettings) -> list[np.ndarray] | None:
    """The rows of each of round(1 / `s.val_fraction`) groups of the training participants (grouped,
    class-stratified; seeded): they early-stop the crossmodal model (a committee: one per member) and choose
    the baseline's C; None with fewer than 3 participants or without early stopping."""
    from eyemotion.models.dataset import assign_folds

    people = np.asarray(ds.labels["participant"])[train_idx]
    n = max(2, round(1 / s.val_fraction)) if s.val_fraction > 0 else 0
    if not n or s.patience <= 0 or len(set(people.tolist())) < max(3, n):
        return None
    return [train_idx[np.isin(people, held)] for held in assign_folds(people, n, s.seed, ds.labels["er7"][train_idx])]


def inner_validation(ds: WindowDataset, train_idx: np.ndarray, s: TrainSettings) -> np.ndarray | None:
    """The first inner fold (`inner_folds`): the early-stopping rows of a single model."""
    folds = inner_folds(ds, train_idx, s)
    return None if folds is None else folds[0]


def plot_confusion(cms: dict[str, np.ndarray], kind: str, path: Path, what: str = "") -> None:
    """One panel per classification task: row-normalised confusion with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cms), figsize=(5.2 * len(cms), 4.8), squeeze=False)
    for ax, (task, cm) in zip(axes[0], cms.items()):
        names = TASKS[kind][task][1]
        used = (cm.sum(0) + cm.sum(1)) > 0  # classes the corpus has (a 4-class corpus: 4 x 4)
        if used.sum() >= 2:
            cm, names = cm[np.ix_(used, used)], [n for n, u in zip(names, used) if u]
        share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{what or kind} {task} (all test folds)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


PROTOCOLS = {
    "clip": "002_cbeb04dbce786b8c.txt Sec. V-A-2: one sample per clip (8 face frames, 32 gaze samples, 32 "
            "fixation-map slices evenly from the whole clip), for training and testing",
    "window": "sliding windows ([features] emert_window_s, 8/32/32 frames evenly from each window), as the live "
              "node runs; a deviation from 002's per-clip sampling",
}


def emert_datasets(ds: WindowDataset, protocol: str) -> tuple[WindowDataset, WindowDataset | None, str]:
    """(rows to train and test on, sliding windows to test on as well or None, protocol) for EMERT.

    "clip" (002 Sec. V-A-2) uses the dataset's per-clip rows (`<dataset>/clips`, written by `dataset build`)
    and also reports the figures on its windows; "window" trains and tests on the windows; "auto" is
    "clip" when the dataset has per-clip rows.
    """
    from eyemotion.models.dataset import META_FILE
    from eyemotion.models.sessions_dataset import CLIP_DIR

    if protocol not in ("auto", *PROTOCOLS):
        raise UserError(f"unknown protocol {protocol!r}; use auto, clip or window")
    clips = Path(ds.root) / CLIP_DIR
    if protocol == "window" or (protocol == "auto" and not (clips / META_FILE).is_file()):
        return ds, None, "window"
    if not (clips / META_FILE).is_file():
        raise UserError(f"dataset {ds.root} has no per-clip rows ({CLIP_DIR}/); rebuild it with `eyemotion dataset "
                        "build` or train with --protocol window")
    return load_dataset(clips, MODEL_INPUTS["emert"]), ds, "clip"


def evaluation_summary(fold_reports: list[dict], protocol: str) -> dict:
    """The protocol, and mean +- SE over folds of the baselines (and of the sliding-window figures)."""
    def base(folds: list[dict], which: str) -> dict:
        return summarise([{t: b[which] for t, b in f["baselines"].items()} for f in folds])

    out = {"protocol": protocol, "protocol_text": PROTOCOLS[protocol],
           "baselines": {"chance": base(fold_reports, "chance"), "majority": base(fold_reports, "majority")},
           "windows": None}
    if all("windows" in f for f in fold_reports):
        w = [f["windows"] for f in fold_reports]
        out["windows"] = {"protocol_text": PROTOCOLS["window"] + " (the model trained per clip)",
                          "metrics": summarise([f["metrics"] for f in w]),
                          "baselines": {"chance": base(w, "chance"), "majority": base(w, "majority")}}
    return out


@dataclass
class TrainReport:
    path: Path
    summary: dict
    folds: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None


def train(kind: str, dataset: str | Path | WindowDataset, out: str | Path, settings: TrainSettings | None = None
          ) -> TrainReport:
    """Cross-validate `kind` on `dataset`, write the report, confusion PNG and (optionally) model.pt into `out`."""
    settings = settings or TrainSettings()
    if kind not in KINDS:
        raise UserError(f"unknown model {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "crossmodal" and settings.variant not in VARIANTS:
        raise UserError(f"unknown crossmodal variant {settings.variant!r}; choose one of {', '.join(VARIANTS)}")
    s = settings.resolved(kind)
    if s.epochs < 1:
        raise UserError("epochs must be >= 1")
    ds = dataset if isinstance(dataset, WindowDataset) else load_dataset(dataset, MODEL_INPUTS[kind] if kind == "emert" else ())
    if kind == "crossmodal" and "visual_face" in ds.inputs and "visual_gaze" not in ds.inputs and s.variant != "no-gaze":
        raise UserError(f"dataset {ds.root} has faces but no gaze statistics; train it with --variant no-gaze")
    ds, windows, s.protocol = emert_datasets(ds, s.protocol) if kind == "emert" else (ds, None, "window")
    folds = list(range(ds.n_folds)) if s.folds is None else list(s.folds)
    bad = [f for f in folds if not 0 <= f < ds.n_folds]
    if bad:
        raise UserError(f"fold(s) {bad} do not exist; the dataset has folds 0-{ds.n_folds - 1}")
    device = resolve_device(s.device)
    if s.threads:
        torch.set_num_threads(s.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = _Tensors(ds, kind, device)
    window_data = _Tensors(windows, kind, device) if windows is not None else None
    log.info("training %s on %s (%d rows, %d participants) on %s", kind, ds.root, len(ds),
             len(ds.meta["participants"]), device)
    t0 = time.monotonic()
    fold_reports, total_cm, linear_cm = [], {}, {}
    for k in folds:
        train_idx, test_idx = ds.split(k)
        torch.manual_seed(s.seed + k)
        model = build_model(kind, ds.normalisation(k), s, ds.labels["er7"][train_idx]).to(device)
        vals = inner_folds(ds, train_idx, s) if kind == "crossmodal" else None
        if vals is not None and s.members > 1:  # a committee: each member early-stops on its own inner fold
            losses = fit(kind, model, data, train_idx, s, desc=f"{kind} fold {k}", val_idx=vals, er7=ds.labels["er7"])
        else:
            val_idx = None if vals is None else vals[0]
            fit_idx = train_idx if val_idx is None else np.setdiff1d(train_idx, val_idx)
            losses = fit(kind, model, data, fit_idx, s, desc=f"{kind} fold {k}", val_idx=val_idx,
                         er7=ds.labels["er7"])
        metrics, cms, base = evaluate(kind, predict(kind, model, data, test_idx), ds, test_idx, train_idx)
        for task, cm in cms.items():
            total_cm[task] = total_cm.get(task, 0) + cm
        fold_reports.append({"fold": k, "test_participants": ds.meta["folds"][k], "n_train": len(train_idx),
                             "n_test": len(test_idx), "final_loss": losses[-1], "metrics": metrics, "baselines": base})
        if kind == "crossmodal":
            fold_reports[-1].update(epochs=len(losses), best_epoch=model.best_epoch,
                                    inner_folds=0 if vals is None else len(vals),
                                    member_best_epochs=[m.best_epoch for m in getattr(model, "members", [model])])
        if kind == "crossmodal" and s.baseline:  # the linear baseline, same features, folds and inner split
            from eyemotion.models import baseline as linear

            b_pred, b_c = linear.fit_predict(ds, train_idx, test_idx, vals, s.seed)
            b_metrics, b_cms, _ = evaluate(kind, b_pred, ds, test_idx, train_idx)
            for task, cm in b_cms.items():
                linear_cm[task] = linear_cm.get(task, 0) + cm
            fold_reports[-1]["linear_baseline"] = {"metrics": b_metrics, "C": b_c}
        if windows is not None:  # the same model on the live node's sliding windows of the test participants
            w_test = np.flatnonzero(np.isin(windows.labels["participant"], ds.meta["folds"][k]))
            w_metrics, _, w_base = evaluate(kind, predict(kind, model, window_data, w_test), windows, w_test,
                                            train_idx, ds)
            fold_reports[-1]["windows"] = {"n_test": len(w_test), "metrics": w_metrics, "baselines": w_base}
        log.info("fold %d: %s", k, ", ".join(f"{t} WAR {m['war']:.3f} UAR {m['uar']:.3f}" for t, m in metrics.items()
                                           if "war" in m))
    summary = summarise([f["metrics"] for f in fold_reports])
    evaluation = evaluation_summary(fold_reports, s.protocol)
    if kind == "crossmodal":
        evaluation["protocol_text"] = "the dataset's rows as they are (utterances or windows), speaker-wise folds"
    evaluation["pooled"] = {t: {**classification_metrics(cm), "n": int(cm.sum())} for t, cm in total_cm.items()}
    if linear_cm:
        evaluation["linear_baseline"] = {
            "text": "multinomial logistic regression, balanced class weights, C chosen on the inner validation "
                    "participants (models.baseline), same features and folds",
            "summary": summarise([f["linear_baseline"]["metrics"] for f in fold_reports]),
            "pooled": {t: {**classification_metrics(cm), "n": int(cm.sum())} for t, cm in linear_cm.items()},
            "confusion": {t: cm.tolist() for t, cm in linear_cm.items()}, "confusion_png": CONFUSION_BASELINE_PNG}
        plot_confusion(linear_cm, kind, out / CONFUSION_BASELINE_PNG, "linear baseline")
    checkpoint = None
    if s.final_model:
        torch.manual_seed(s.seed)
        model = build_model(kind, ds.normalisation(None), s, ds.labels["er7"]).to(device)
        final, everyone = s, np.arange(len(ds))
        vals = inner_folds(ds, everyone, s) if kind == "crossmodal" and s.members > 1 else None
        if vals is not None:  # the committee as in the folds, its inner folds drawn from every participant
            fit(kind, model, data, everyone, s, desc=f"{kind} all participants", val_idx=vals, er7=ds.labels["er7"])
            evaluation["final_epochs"] = [m.best_epoch for m in model.members]
        else:
            if kind == "crossmodal" and any("best_epoch" in f for f in fold_reports):
                # no participants left to stop on: the median best epoch of the folds (early stopping)
                final = TrainSettings(**{**asdict(s), "epochs": int(np.median([f["best_epoch"] for f in fold_reports]))})
                evaluation["final_epochs"] = final.epochs
            fit(kind, model, data, everyone, final, desc=f"{kind} all participants", er7=ds.labels["er7"])
        checkpoint = out / CHECKPOINT
        save_checkpoint(checkpoint, kind, model, s, ds, summary, evaluation)
    plot_confusion(total_cm, kind, out / CONFUSION_PNG)
    report = {
        "model": kind, "variant": s.variant if kind == "crossmodal" else None,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "eyemotion": __version__, "torch": str(torch.__version__), "device": str(device),
        "dataset": training_data_info(ds), "settings": asdict(s), "folds": fold_reports, "summary": summary,
        "evaluation": evaluation,
        "confusion": {t: cm.tolist() for t, cm in total_cm.items()}, "confusion_png": CONFUSION_PNG,
        "checkpoint": CHECKPOINT if checkpoint else None, "seconds": round(time.monotonic() - t0, 1),
    }
    (out / REPORT).write_text(json.dumps(report, indent=1))
    return TrainReport(out / REPORT, summary, fold_reports, checkpoint)


def training_data_info(ds: WindowDataset) -> dict:
    return {"path": str(ds.root), "n_windows": len(ds), "participants": ds.meta["participants"],
            "n_folds": ds.n_folds, "input_shapes": {k: list(v.shape[1:]) for k, v in ds.inputs.items()}, "provenance": ds.meta.get("provenance", {}), "created": ds.meta.get("created")}


def save_checkpoint(path: Path, kind: str, model: torch.nn.Module, settings: TrainSettings, ds: WindowDataset,
                    summary: dict, evaluation: dict | None = None) -> None:
    torch.save({
        "format": "eyemotion-checkpoint", "version": 1, "kind": kind, "config": model.config.to_dict(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "normalisation": model.normalisation(),
        "settings": asdict(settings), "training_data": training_data_info(ds), "metrics": summary,
        "evaluation": evaluation or {}, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "eyemotion": __version__,
        "torch": str(torch.__version__),
    }, path)


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on CPU, checkpoint metadata) from a `model.pt` written by `train`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; train one with `eyemotion train {{emert,crossmodal}} DATASET`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise UserError(f"checkpoint {path} cannot be read ({type(exc).__name__}); retrain it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "eyemotion-checkpoint":
        raise UserError(f"{path} is not an eyemotion checkpoint; pass the model.pt written by `eyemotion train`")
    if ckpt["kind"] == "emert":
        model: torch.nn.Module = Emert(EmertConfig(**ckpt["config"]))
    else:
        model = build_crossmodal(CrossmodalConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta
