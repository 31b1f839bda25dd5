"""The linear baseline that `eyemotion train crossmodal` runs beside the model, on the same features and folds.

Per crossmodal head, one vector per row: audio = the mean over its eGeMAPS steps (88), visual = the mean
face embedding (128) and, when the dataset has them, the mean gaze statistics (103); joint = both. Features
are standardised with the training fold's statistics (a missing value becomes the mean, as in the model).
The classifier is scikit-learn's multinomial logistic regression with balanced class weights; its inverse
regularisation C is chosen from `C_GRID` by inner cross-validation on the same inner participant folds that
early-stop the model (mean UAR over the folds), then refit on the whole training fold. Rows without a modality
are left out of its head, as in the model's evaluation.
"""

from __future__ import annotations

import warnings

import numpy as np
from eyemotion.models.dataset import WindowDataset

C_GRID = (0.01, 0.1, 1.0, 10.0)
HEADS = {"er7_audio": ("audio",), "er7_visual": ("visual_face", "visual_gaze"),
         "er7_joint": ("audio", "visual_face", "visual_gaze")}


def _uar(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


def features(ds: WindowDataset, head: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows x features, rows that have every modality of `head`) or None when the dataset lacks it."""
    names = [k for k in HEADS[head] if k in ds.inputs]
    if ("audio" in HEADS[head] and "audio" not in names) or ("visual_face" in HEADS[head] and "visual_face" not in names):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: modality absent
        parts = [np.nanmean(ds.inputs[k].astype(np.float64), axis=1) for k in names]
    present = np.ones(len(ds), bool)
    for k in names:
        if k != "visual_gaze":
            present &= np.isfinite(ds.inputs[k]).reshape(len(ds), -1).any(1)
    return np.concatenate(parts, axis=1), present


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(x[train], axis=0), np.nanstd(x[train], axis=0)
    mean, std = np.nan_to_num(mean), np.where(~np.isfinite(std) | (std < 1e-9), 1.0, std)
    return np.nan_to_num((x - mean) / std)


def _model(c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)


def fit_predict(ds: WindowDataset, train_idx: np.ndarray, test_idx: np.ndarray,
                val_idx: np.ndarray | list[np.ndarray] | None, seed: int = 0
                ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(predicted class per head for rows `test_idx`, -1 where the row lacks the head's modality;
    the C chosen per head). `val_idx`: the inner validation rows, or a list of inner folds (C is then chosen
    on their mean UAR: inner cross-validation)."""
    pred, chosen = {}, {}
    vals = [] if val_idx is None else list(val_idx) if isinstance(val_idx, list) else [val_idx]
    y = np.asarray(ds.labels["er7"])
    for head in HEADS:
        got = features(ds, head)
        if got is None:
            continue
        x_all, present = got
        train = train_idx[present[train_idx]]
        out = np.full(len(test_idx), -1)
        if len(np.unique(y[train])) < 2:
            pred[head] = out
            continue
        c, scores = 1.0, []
        for held in vals:
            inner = np.setdiff1d(train, held)
            val = held[present[held]]
            if len(val) and len(np.unique(y[inner])) > 1:
                x = _standardise(x_all, inner)
                scores.append([_uar(y[val], _model(cc, seed).fit(x[inner], y[inner]).predict(x[val]))
                               for cc in C_GRID])
        if scores:
            c = C_GRID[int(np.argmax(np.mean(scores, axis=0)))]
        x = _standardise(x_all, train)
        model = _model(c, seed).fit(x[train], y[train])
        test_present = present[test_idx]
        if test_present.any():
            out[test_present] = model.predict(x[test_idx[test_present]])
        pred[head], chosen[head] = out, c
    return pred, chosen
