"""Normalisation statistics, computed once on training data and saved in the model card.

`NormStats.fit` computes per-feature mean and std (NaN-aware); `save_norm_stats` writes them into the
card JSON beside the .onnx (`card["normalisation"][key]`), `load_norm_stats` reads them back at run time;
they are never recomputed live. `apply` standardises and maps NaN (a missing modality or window) to 0,
which is the training mean.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from eyemotion.inference.runtime import ModelError, card_path

MIN_STD = 1e-8


@dataclass(frozen=True)
class NormStats:
    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray, names: tuple[str, ...] | list[str]) -> NormStats:
        """Mean/std over every row of `data` (any leading shape, last axis = features); NaNs ignored."""
        flat = np.asarray(data, float).reshape(-1, len(names))
        if not np.isfinite(flat).any(axis=0).all():
            missing = [n for n, ok in zip(names, np.isfinite(flat).any(axis=0)) if not ok]
            raise ValueError(f"no finite training value for {len(missing)} features, e.g. {missing[:3]}")
        mean = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
        return cls(tuple(names), mean, np.where(std > MIN_STD, std, 1.0))

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of `data` (last axis = features); NaN -> 0 (the training mean)."""
        data = np.asarray(data, float)
        if data.shape[-1] != len(self.names):
            raise ModelError(f"data has {data.shape[-1]} features but the normalisation has {len(self.names)}")
        return np.nan_to_num((data - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NormStats:
        names, mean, std = tuple(d["names"]), np.asarray(d["mean"], float), np.asarray(d["std"], float)
        if not (len(names) == len(mean) == len(std)) or not np.all(std > 0):
            raise ValueError("names, mean and std must have one positive std per feature")
        return cls(names, mean, std)


def save_norm_stats(model_path: str | Path, key: str, stats: NormStats) -> Path:
    """Write `stats` into the model card beside `model_path` under normalisation/<key> (atomically)."""
    path = card_path(Path(model_path))
    card = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    card.setdefault("normalisation", {})[key] = stats.to_dict()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_norm_stats(model_path: str | Path, key: str) -> NormStats:
    """The statistics saved with a model (ModelError naming the card and key if absent or malformed)."""
    path = card_path(Path(model_path))
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))["normalisation"][key]
        return NormStats.from_dict(entry)
    except FileNotFoundError:
        raise ModelError(f"model card {path} not found; re-export the model with its card") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model card {path} has no valid normalisation statistics {key!r} ({exc}); "
                         "re-export the model with save_norm_stats") from None
