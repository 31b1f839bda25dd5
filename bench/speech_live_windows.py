"""The utterance-trained audio model on the live node's audio windows of held-out speakers (out of fold).

    .venv/bin/python bench/speech_live_windows.py DATASET CORPUS_FOLDER [--seed 0]

DATASET is a speech corpus imported with `eyemotion dataset import speech CORPUS_FOLDER DATASET ...`
(utterance-level inputs). Each utterance, with 0.5 s of digital silence on either side, goes through the live
extractor (`[features]` defaults: 3-s windows, hop 0.5 s, voiced-frame pooling, voice-activity gate); every
window the gate passes becomes a test row. Per speaker-wise fold of DATASET, the crossmodal model (the
`eyemotion train` defaults: a committee of 5 with the wide path, member i early-stopped on inner speaker group
i) and the logistic-regression baseline (C by inner cross-validation over the same groups) are trained on the
training speakers' utterances and scored on the test speakers' live windows. Prints pooled
WAR, UAR, weighted F1 and macro F1 of both, and the number of windows per predicted class.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from eyemotion.inference.features.audio import AudioSettings, egemaps_windows
from eyemotion.models import baseline as linear
from eyemotion.models import train as T
from eyemotion.models.dataset import WindowDataset, load_dataset
from eyemotion.models.importing import read_audio

from eyemotion.config import FeaturesConfig


def live_windows(ds: WindowDataset, folder: Path) -> WindowDataset:
    settings = AudioSettings.from_config(FeaturesConfig())
    rows, keep = [], []
    pad = np.zeros(8000, np.float32)
    for i, clip in enumerate(ds.labels["clip"]):
        s = np.concatenate([pad, read_audio(folder / str(clip)), pad])
        fw = egemaps_windows(np.arange(len(s)) / 16000, s, settings)
        speech = fw.values[fw.extra["speech"] > 0]
        rows += list(speech)
        keep += [i] * len(speech)
    idx = np.array(keep)
    labels = {k: v[idx] for k, v in ds.labels.items()}
    return WindowDataset(ds.root, {"audio": np.array(rows, np.float32)[:, None]}, labels, ds.meta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path)
    p.add_argument("corpus", type=Path)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    warnings.simplefilter("ignore")
    utt = load_dataset(args.dataset, ["audio"])
    win = live_windows(utt, args.corpus)
    s = T.TrainSettings(seed=args.seed, progress=False, threads=1).resolved("crossmodal")
    cpu = torch.device("cpu")
    d_u, d_w = T._Tensors(utt, "crossmodal", cpu), T._Tensors(win, "crossmodal", cpu)
    y_u, y_w = utt.labels["er7"], win.labels["er7"]
    x_u, _ = linear.features(utt, "er7_audio")
    x_w, _ = linear.features(win, "er7_audio")
    cms = {"crossmodal audio": 0, "logistic regression": 0}
    for k in range(utt.n_folds):
        train_idx, _ = utt.split(k)
        _, test_idx = win.split(k)
        torch.manual_seed(s.seed + k)
        model = T.build_model("crossmodal", utt.normalisation(k), s, y_u[train_idx])
        vals = T.inner_folds(utt, train_idx, s)
        T.fit("crossmodal", model, d_u, train_idx, s, val_idx=vals, er7=y_u)
        pred = T.predict("crossmodal", model, d_w, test_idx)["er7_audio"]
        cms["crossmodal audio"] = cms["crossmodal audio"] + T.confusion_matrix(y_w[test_idx], pred, 7)
        scores = []
        for val in vals:
            inner = np.setdiff1d(train_idx, val)
            mean, std = x_u[inner].mean(0), x_u[inner].std(0) + 1e-9
            scores.append([linear._uar(y_u[val], linear._model(c, args.seed).fit((x_u[inner] - mean) / std, y_u[inner])
                                       .predict((x_u[val] - mean) / std)) for c in linear.C_GRID])
        scores = np.mean(scores, axis=0)
        mean, std = x_u[train_idx].mean(0), x_u[train_idx].std(0) + 1e-9
        lr = linear._model(linear.C_GRID[int(np.argmax(scores))], args.seed).fit((x_u[train_idx] - mean) / std,
                                                                                y_u[train_idx])
        pred = lr.predict(np.nan_to_num((x_w[test_idx] - mean) / std))
        cms["logistic regression"] = cms["logistic regression"] + T.confusion_matrix(y_w[test_idx], pred, 7)
    print(f"{len(win)} live windows of {len(utt)} utterances, {utt.n_folds} speaker-wise folds, seed {args.seed}")
    for name, cm in cms.items():
        m = T.classification_metrics(cm)
        print(f"  {name:20s} WAR {m['war']:.3f}  UAR {m['uar']:.3f}  weighted F1 {m['weighted_f1']:.3f}  "
              f"macro F1 {m['macro_f1']:.3f}  windows per predicted class {cm.sum(0).tolist()}")


if __name__ == "__main__":
    main()
