"""Fixation maps: Gaussian-weighted fixation density on the display (002_cbeb04dbce786b8c.txt, Sec. III-A-3
and IV: EMERT takes 32 "eye fixation" frames per sample).

A map is a grid of `map_rows` x `map_columns` cells over the display. Every fixation sample of
eyemotion_gaze adds its duration (1 / rate seconds), spread by a Gaussian of `map_sigma_deg` (about the
fovea) centred on its gaze point, integrated over each cell; mass falling off the display is lost. A
map's sum is therefore the fixation time (s) it covers. Only samples coded fixation count, so blinks,
losses and saccades leave no trace (002 removes invalid fixations before building its maps).

`window_maps` gives the per-slice maps of one analysis window (32 slices for EMERT);
`FixationMapper` builds maps online from eyemotion_gaze chunks: one per completed time slice, and one
accumulated over the trial until `reset_trial()`. Each map is computed once from all of its samples,
so the result does not depend on chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from eyemotion.config import EyesignalConfig, ScreenConfig
from eyemotion.streams import EVENT_CODES, GAZE_CLEAN

_X, _Y, _EVENT = (GAZE_CLEAN.index(c) for c in ("x", "y", "event"))
FIXATION = EVENT_CODES["fixation"]


@dataclass(frozen=True)
class MapGrid:
    """The map's resolution and kernel, in normalised display units."""

    columns: int
    rows: int
    sigma_x: float  # Gaussian sd as a fraction of the display width
    sigma_y: float  # ... and height

    @classmethod
    def of(cls, cfg: EyesignalConfig | None = None, screen: ScreenConfig | None = None) -> MapGrid:
        cfg, screen = cfg or EyesignalConfig(), screen or ScreenConfig()
        sigma_mm = screen.distance_mm * math.tan(math.radians(cfg.map_sigma_deg))
        return cls(cfg.map_columns, cfg.map_rows, sigma_mm / screen.width_mm, sigma_mm / screen.height_mm)

    def _mass(self, pos: np.ndarray, cells: int, sigma: float) -> np.ndarray:
        """(n, cells): the share of a 1-D Gaussian at each position that falls into each cell."""
        edges = np.linspace(0.0, 1.0, cells + 1)
        cdf = ndtr((edges[None, :] - pos[:, None]) / sigma)
        return np.diff(cdf, axis=1)

    def density(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | float) -> np.ndarray:
        """(rows, columns) map of weighted Gaussians at normalised gaze points (NaN points are skipped)."""
        ok = np.isfinite(x) & np.isfinite(y)
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), x.shape)[ok]
        mx = self._mass(x[ok], self.columns, self.sigma_x)
        my = self._mass(y[ok], self.rows, self.sigma_y)
        return (my * w[:, None]).T @ mx


def window_maps(timestamps: np.ndarray, samples: np.ndarray, start: float, end: float, rate: float,
                slices: int = 32, grid: MapGrid | None = None) -> np.ndarray:
    """(slices, rows, columns) fixation maps of the window [start, end) of eyemotion_gaze samples."""
    grid = grid or MapGrid.of()
    out = np.zeros((slices, grid.rows, grid.columns))
    inside = (timestamps >= start) & (timestamps < end) & (samples[:, _EVENT] == FIXATION)
    if not inside.any() or end <= start:
        return out
    t = timestamps[inside]
    which = np.minimum(((t - start) / (end - start) * slices).astype(int), slices - 1)
    x, y = samples[inside, _X], samples[inside, _Y]
    for k in np.unique(which):
        sel = which == k
        out[k] = grid.density(x[sel], y[sel], 1.0 / rate)
    return out


@dataclass
class SliceMap:
    start: float  # slice start (s, LSL time)
    end: float
    map: np.ndarray  # (rows, columns), fixation seconds


class FixationMapper:
    """Online fixation maps from eyemotion_gaze chunks: fixed-length time slices and a per-trial total.

    Slices are `slice_s` long and aligned to `origin` (the first sample's timestamp by default); a slice
    is complete once a sample at or after its end arrives. The trial map is the sum of the completed
    slices since the last `reset_trial()` plus the slice in progress.
    """

    def __init__(self, rate: float, slice_s: float, grid: MapGrid | None = None, origin: float | None = None):
        if slice_s <= 0 or rate <= 0:
            raise ValueError("slice_s and rate must be > 0")
        self.rate, self.slice_s = rate, slice_s
        self.grid = grid or MapGrid.of()
        self.origin = origin
        self._slice: int | None = None
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        self._trial = np.zeros((self.grid.rows, self.grid.columns))

    def push(self, timestamps: np.ndarray, samples: np.ndarray) -> list[SliceMap]:
        """Add samples; return the slices they completed (oldest first)."""
        done: list[SliceMap] = []
        if not len(timestamps):
            return done
        if self.origin is None:
            self.origin = float(timestamps[0])
        index = np.floor((timestamps - self.origin) / self.slice_s).astype(np.int64)
        fix = samples[:, _EVENT] == FIXATION
        for k in np.unique(index):
            if self._slice is not None and k != self._slice:
                done.append(self._complete())
            self._slice = int(k)
            sel = (index == k) & fix
            self._x.append(samples[sel, _X])
            self._y.append(samples[sel, _Y])
        return done

    def _current(self) -> np.ndarray:
        x = np.concatenate(self._x) if self._x else np.zeros(0)
        y = np.concatenate(self._y) if self._y else np.zeros(0)
        return self.grid.density(x, y, 1.0 / self.rate)

    def _complete(self) -> SliceMap:
        m = self._current()
        start = self.origin + self._slice * self.slice_s
        self._trial = self._trial + m
        self._x, self._y = [], []
        return SliceMap(start, start + self.slice_s, m)

    def trial_map(self) -> np.ndarray:
        """Fixation seconds per cell since the last reset (completed slices + the current one)."""
        return self._trial + self._current()

    def reset_trial(self) -> None:
        """Start a new trial total (e.g. at a `clip_onset` marker); the slice in progress counts to the new one."""
        self._trial = np.zeros_like(self._trial)
