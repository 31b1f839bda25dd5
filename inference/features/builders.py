"""Model input builders: the EMERT window and the crossmodal window, as streaming objects.

Both keep the last window's worth of their inputs (push as they arrive) and build the input of the window
`[end - window_s, end)` on request. What they return depends only on the samples inside the window, so
live and offline runs give the same inputs. Selection is deterministic: `even_indices`.

* EMERT (002_cbeb04dbce786b8c.txt, Sec. V-A-2): 8 face frames, 32 eye-movement samples and 32
  fixation-map frames evenly spaced over a span. 002 samples them from each whole clip (1-2 min) for
  training and testing: `EmertWindowBuilder.window(end, start=onset)` does that (the dataset builder's
  per-clip rows). Live, the span is the 4-s sliding window ending now: a deviation from 002 (a live
  prediction cannot wait for the clip to end), reported separately by `models.train`. Face frames are
  eyemotion_face embeddings (frames with a face only), eye movement = all eyemotion_gaze channels (the
  model encodes them, `models.emert.EyeEncoding`), fixation maps come from `inference.eyesignal` as
  (n, H, W) arrays.
* Crossmodal (000_e9deb5c9c21c243c.txt, Sec. 3.1.1, 3.5.1, 3.5.3): the visual sequence pairs each face
  frame's embedding with the 103 gaze statistics of the 1-s window ending at that frame; early fusion
  concatenates them per step, model-level fusion keeps them apart, and the averaged-gaze variant is the
  mean of the gaze statistics over the whole window. The audio sequence is eGeMAPS per sub-window.

Missing data stays NaN with a presence mask; `NormStats.apply` (normalisation.py) maps NaN to 0, i.e.
the training mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eyemotion.streams import FACE, FACE_EMBEDDING_DIM

from .windows import FeatureWindows

EMERT_FACE_FRAMES = 8
EMERT_EYE_SAMPLES = 32
EMERT_FIXATION_FRAMES = 32
_PRESENT = FACE.index("face_present")
_EMBEDDING = slice(FACE.index("embedding_000"), FACE.index("embedding_000") + FACE_EMBEDDING_DIM)


def even_indices(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n), first and last included (repeats when n < k)."""
    if n <= 0:
        return np.zeros(0, int)
    return np.rint(np.linspace(0, n - 1, k)).astype(int)


class TimedBuffer:
    """Timestamped rows (any trailing shape), pruned to the last `keep_s` seconds of data."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.times = np.zeros(0)
        self.rows: np.ndarray | None = None

    def push(self, timestamps: np.ndarray, rows: np.ndarray) -> None:
        timestamps = np.asarray(timestamps, float).reshape(-1)
        rows = np.asarray(rows, float)
        if len(timestamps) != len(rows):
            raise ValueError(f"{len(timestamps)} timestamps for {len(rows)} rows")
        if not len(timestamps):
            return
        self.times = np.concatenate([self.times, timestamps])
        self.rows = rows.copy() if self.rows is None else np.concatenate([self.rows, rows])
        keep = np.searchsorted(self.times, self.times[-1] - self.keep_s, side="left")
        if keep:
            self.times, self.rows = self.times[keep:], self.rows[keep:]

    def between(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray | None]:
        lo, hi = np.searchsorted(self.times, [start, end], side="left")
        return self.times[lo:hi], None if self.rows is None else self.rows[lo:hi]


def _pick(rows: np.ndarray | None, k: int, trailing: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    if rows is None or len(rows) == 0:
        return np.full((k, *trailing), np.nan), False
    return rows[even_indices(len(rows), k)], True


@dataclass
class EmertWindow:
    end: float
    face: np.ndarray  # (8, 128)
    gaze: np.ndarray  # (32, gaze channels)
    fixation: np.ndarray  # (32, H, W)
    face_present: bool
    gaze_present: bool
    fixation_present: bool


class EmertWindowBuilder:
    """EMERT inputs of a span: 8 face embeddings, 32 gaze samples, 32 fixation maps (evenly spaced)."""

    def __init__(self, window_s: float, gaze_channels: int, map_shape: tuple[int, int],
                 keep_s: float | None = None) -> None:
        self.window_s = window_s
        self.gaze_channels = gaze_channels
        self.map_shape = tuple(map_shape)
        # live: a window may be asked for up to 1 s behind the newest sample; offline: pass math.inf
        keep = keep_s if keep_s is not None else window_s + 1.0
        self.face, self.gaze, self.fixation = TimedBuffer(keep), TimedBuffer(keep), TimedBuffer(keep)

    def push_face(self, timestamps: np.ndarray, face_samples: np.ndarray) -> None:
        """eyemotion_face samples; frames without a face are not used."""
        face_samples = np.asarray(face_samples, float)
        present = face_samples[:, _PRESENT] > 0.5
        self.face.push(np.asarray(timestamps)[present], face_samples[present][:, _EMBEDDING])

    def push_gaze(self, timestamps: np.ndarray, gaze_samples: np.ndarray) -> None:
        self.gaze.push(timestamps, gaze_samples)

    def push_fixation(self, timestamps: np.ndarray, maps: np.ndarray) -> None:
        self.fixation.push(timestamps, maps)

    def window(self, end: float, start: float | None = None) -> EmertWindow:
        """The inputs of [start, end): by default the sliding window [end - window_s, end); a whole clip
        with start = its onset (002's per-clip sampling; the buffers must still hold it: keep_s)."""
        start = end - self.window_s if start is None else start
        face, has_face = _pick(self.face.between(start, end)[1], EMERT_FACE_FRAMES, (FACE_EMBEDDING_DIM,))
        gaze, has_gaze = _pick(self.gaze.between(start, end)[1], EMERT_EYE_SAMPLES, (self.gaze_channels,))
        maps, has_maps = _pick(self.fixation.between(start, end)[1], EMERT_FIXATION_FRAMES, self.map_shape)
        return EmertWindow(end, face, gaze, maps, has_face, has_gaze, has_maps)


@dataclass
class CrossmodalWindow:
    end: float
    face: np.ndarray  # (T, 128) per-frame face embeddings
    gaze: np.ndarray  # (T, 103) gaze statistics of the 1-s window ending at each frame
    gaze_mean: np.ndarray  # (103,) averaged-gaze variant: mean over the window's gaze statistics
    audio: np.ndarray  # (S, 88) eGeMAPS of the sub-windows
    visual_present: np.ndarray  # (T,) a face was found at that step
    audio_present: bool  # some sub-window holds speech

    @property
    def early_fusion(self) -> np.ndarray:
        """(T, 128 + 103): [x_v; x_g] per step (Sec. 3.1.1, early fusion)."""
        return np.concatenate([self.face, self.gaze], axis=1)

    @property
    def model_level_fusion(self) -> tuple[np.ndarray, np.ndarray]:
        """(face (T, 128), gaze (T, 103)): separate encoder inputs (Sec. 3.1.1, model-level fusion)."""
        return self.face, self.gaze

    @property
    def model_level_fusion_averaged(self) -> tuple[np.ndarray, np.ndarray]:
        """(face (T, 128), gaze_mean (103,)): the averaged-gaze variant (Sec. 3.5.1)."""
        return self.face, self.gaze_mean


class CrossmodalWindowBuilder:
    """Crossmodal inputs: a visual sequence (face embedding + gaze statistics) and an eGeMAPS sequence."""

    def __init__(self, window_s: float, frames: int, audio_steps: int, n_gaze: int = 103,
                 n_audio: int = 88, gaze_tolerance_s: float = 0.5, keep_s: float | None = None) -> None:
        self.window_s = window_s
        self.frames = frames
        self.audio_steps = audio_steps
        self.n_gaze, self.n_audio = n_gaze, n_audio
        self.gaze_tolerance_s = gaze_tolerance_s  # a frame uses gaze statistics at most this old
        keep = keep_s if keep_s is not None else window_s + 1.0 + gaze_tolerance_s
        self.face, self.gaze, self.audio = TimedBuffer(keep), TimedBuffer(keep), TimedBuffer(keep)

    def push_face(self, timestamps: np.ndarray, face_samples: np.ndarray) -> None:
        face_samples = np.asarray(face_samples, float)
        present = face_samples[:, _PRESENT] > 0.5
        self.face.push(np.asarray(timestamps)[present], face_samples[present][:, _EMBEDDING])

    def push_gaze_stats(self, windows: FeatureWindows) -> None:
        rows = np.where(windows.valid[:, None], windows.values, np.nan)
        self.gaze.push(windows.times, rows)

    def push_audio(self, windows: FeatureWindows) -> None:
        speech = windows.extra.get("speech", np.ones(len(windows)))
        rows = np.column_stack([np.where(windows.valid[:, None], windows.values, np.nan), speech])
        self.audio.push(windows.times, rows)

    def _gaze_at(self, frame_times: np.ndarray) -> np.ndarray:
        out = np.full((len(frame_times), self.n_gaze), np.nan)
        times, rows = self.gaze.times, self.gaze.rows
        if rows is None or not len(times):
            return out
        idx = np.searchsorted(times, frame_times, side="right") - 1
        ok = (idx >= 0) & (frame_times - times[np.maximum(idx, 0)] <= self.gaze_tolerance_s)
        out[ok] = rows[idx[ok]]
        return out

    def window(self, end: float) -> CrossmodalWindow:
        start = end - self.window_s
        times, emb = self.face.between(start, end)
        if emb is None or not len(times):
            face = np.full((self.frames, FACE_EMBEDDING_DIM), np.nan)
            gaze = np.full((self.frames, self.n_gaze), np.nan)
            present = np.zeros(self.frames, bool)
        else:
            pick = even_indices(len(times), self.frames)
            face, gaze, present = emb[pick], self._gaze_at(times[pick]), np.ones(self.frames, bool)
        _, gaze_rows = self.gaze.between(start, end + 1e-9)
        finite = gaze_rows[np.isfinite(gaze_rows).all(axis=1)] if gaze_rows is not None else np.zeros((0,))
        gaze_mean = finite.mean(axis=0) if len(finite) else np.full(self.n_gaze, np.nan)
        _, audio_rows = self.audio.between(start + 1e-9, end + 1e-9)
        if audio_rows is not None and len(audio_rows) and self.audio_steps == 1:
            audio_rows = audio_rows[-1:]  # one step: the newest sub-window (voiced-frame pooled, audio.py)
        audio, has_audio = _pick(audio_rows, self.audio_steps, (self.n_audio + 1,))
        audio_present = bool(has_audio and np.nansum(audio[:, -1]) > 0)
        return CrossmodalWindow(end, face, gaze, gaze_mean, audio[:, :-1], present, audio_present)
