"""The figures of the session report (`eyemotion.report`), drawn with matplotlib (Agg) into PNG files.

Each function takes the report's per-trial rows and the recorded streams, writes one PNG and returns its
file name (relative to the report folder).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion.streams import CLASSES, EVENT_CODES

CLASS_COLOURS = ("#7f7f7f", "#f2b701", "#3969ac", "#e73f74", "#11a579", "#7f3c8d", "#e68310")
BLINK_RATE_WINDOW_S = 3.0  # blinks per minute in a centred sliding window of this length
PRE_S, POST_S = 2.0, 3.0  # timelines show the clip and this much before/after it


def _save(fig: Any, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def confusion(trials: list[Any], path: Path) -> str:
    """Self-reported emotion (rows) against the ER estimate's top class (columns), counts over the session."""
    import matplotlib.pyplot as plt

    m = np.zeros((len(CLASSES), len(CLASSES)), int)
    for t in trials:
        if t.felt in CLASSES and t.er is not None:
            m[CLASSES.index(t.felt), CLASSES.index(t.er.top)] += 1
    fig, ax = plt.subplots(figsize=(5.6, 5.0), layout="constrained")
    ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1, m.max()))
    for i in range(len(CLASSES)):
        for j in range(len(CLASSES)):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("model estimate (ER, top class over the clip)")
    ax.set_ylabel("self-report (felt emotion)")
    agree = int(np.trace(m))
    ax.set_title(f"self-report vs estimate: {agree}/{int(m.sum())} agree", fontsize=10)
    return _save(fig, path)


def valence_arousal(trials: list[Any], path: Path) -> str:
    """Self-reported valence and arousal against the model's estimates (mean ± SD over the clip)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.9), layout="constrained")
    for ax, key in zip(axes, ("valence", "arousal")):
        for t in trials:
            est = getattr(t, f"{key}_est")
            rep = getattr(t, key)
            if est is None or not math.isfinite(rep):
                continue
            colour = CLASS_COLOURS[CLASSES.index(t.felt)] if t.felt in CLASSES else "black"
            ax.errorbar(rep, est[0], yerr=est[1], fmt="o", color=colour, capsize=3)
            ax.annotate(str(t.trial), (rep, est[0]), textcoords="offset points", xytext=(5, 3), fontsize=8)
        lo, hi = _span(trials, key)
        ax.plot([lo, hi], [lo, hi], color="#999", lw=0.8, ls="--", label="equal")
        ax.set_xlabel(f"self-reported {key}")
        ax.set_ylabel(f"estimated {key}")
        ax.set_title(key, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def _span(trials: list[Any], key: str) -> tuple[float, float]:
    values = [getattr(t, key) for t in trials] + [getattr(t, f"{key}_est")[0] for t in trials
                                                   if getattr(t, f"{key}_est") is not None]
    values = [v for v in values if math.isfinite(v)]
    return (min(values + [-1.0]), max(values + [1.0]))


def timeline(t: Any, gaze: Any, emotion: Any, window_s: float, path: Path) -> str:
    """Baseline-corrected pupil, blink rate and the ER probabilities around one clip, onset and offset marked."""
    import matplotlib.pyplot as plt

    lo, hi = t.onset - PRE_S, t.offset + POST_S
    fig, axes = plt.subplots(3, 1, figsize=(7.6, 5.6), sharex=True, layout="constrained")
    if gaze is not None and len(gaze):
        inside = (gaze.time_stamps >= lo) & (gaze.time_stamps <= hi)
        tt = gaze.time_stamps[inside] - t.onset
        pupil = gaze.channel("pupil")[inside].astype(float)
        b0 = t.baseline_onset if math.isfinite(t.baseline_onset) else t.onset - 1.0
        base_mask = (gaze.time_stamps >= b0) & (gaze.time_stamps < t.onset)
        base = np.nanmean(gaze.channel("pupil")[base_mask]) if base_mask.any() else math.nan
        if math.isfinite(base):
            axes[0].plot(tt, pupil - base, color="#3969ac", lw=1)
            axes[0].set_ylabel("pupil − baseline\n(mm)")
        else:
            axes[0].text(0.5, 0.5, "no pupil in the baseline", transform=axes[0].transAxes, ha="center")
        blink = gaze.channel("event")[inside] == EVENT_CODES["blink"]
        onsets = tt[1:][blink[1:] & ~blink[:-1]]
        grid = np.arange(-PRE_S, hi - t.onset, 0.25)
        half = BLINK_RATE_WINDOW_S / 2
        rate = [60.0 * np.sum(np.abs(onsets - g) <= half) / BLINK_RATE_WINDOW_S for g in grid]
        axes[1].plot(grid, rate, color="#11a579", lw=1.2)
        axes[1].set_ylim(0, max(30.0, max(rate, default=0) * 1.15))
        axes[1].set_ylabel(f"blinks/min\n({BLINK_RATE_WINDOW_S:g} s window)")
    else:
        for ax in axes[:2]:
            ax.text(0.5, 0.5, "no eyemotion_gaze recorded", transform=ax.transAxes, ha="center")
    if emotion is not None and len(emotion):
        inside = (emotion.time_stamps >= lo) & (emotion.time_stamps <= hi)
        for k, c in enumerate(CLASSES):
            axes[2].plot(emotion.time_stamps[inside] - t.onset, emotion.channel(f"er_{c}")[inside], lw=1.2,
                         color=CLASS_COLOURS[k], label=c)
        axes[2].set_ylim(0, 1)
        axes[2].legend(fontsize=7, ncol=4, loc="upper left", bbox_to_anchor=(0, -0.28))
    else:
        axes[2].text(0.5, 0.5, "no eyemotion_emotion recorded", transform=axes[2].transAxes, ha="center")
    axes[2].set_ylabel(f"ER probability\n(window end, {window_s:g} s)")
    for ax in axes:
        ax.axvline(0, color="black", lw=1)
        ax.axvline(t.offset - t.onset, color="black", lw=1, ls="--")
        ax.axvspan(0, t.offset - t.onset, color="#f2b701", alpha=0.08)
    axes[0].set_title(f"trial {t.trial}: {t.clip_id} — onset (solid) / offset (dashed) of the clip", fontsize=10)
    axes[2].set_xlabel("seconds from clip onset")
    return _save(fig, path)


def heatmap(t: Any, gaze: Any, frame: np.ndarray | None, meta: dict[str, Any], config: Any, path: Path) -> str:
    """Fixation density during the clip over a frame of the clip, in screen coordinates (the clip drawn where
    the runner showed it: centred, as high as the window allows, stimuli/runner.py `_movie_size`)."""
    import matplotlib.pyplot as plt
    from scipy.ndimage import gaussian_filter

    screen = {**config.screen.__dict__, **(meta.get("screen") or {})}
    w_px, h_px = float(screen["width_px"]), float(screen["height_px"])
    aspect_screen = w_px / h_px
    fig, ax = plt.subplots(figsize=(6.4, 6.4 / aspect_screen + 0.5), layout="constrained")
    ax.set_facecolor("#202020")
    if frame is not None:
        aspect = frame.shape[1] / frame.shape[0]
        h = min(1.0, aspect_screen / aspect)
        w = h * aspect / aspect_screen
        ax.imshow(frame, extent=(0.5 - w / 2, 0.5 + w / 2, 0.5 + h / 2, 0.5 - h / 2), zorder=0, aspect="auto")
        where = "over the clip's middle frame"
    else:
        where = "clip frame not found: plain background"
    n = 0
    if gaze is not None and len(gaze):
        inside = (gaze.time_stamps >= t.onset) & (gaze.time_stamps <= t.offset)
        fix = inside & (gaze.channel("event") == EVENT_CODES["fixation"])
        x, y = gaze.channel("x")[fix].astype(float), gaze.channel("y")[fix].astype(float)
        ok = np.isfinite(x) & np.isfinite(y)
        n = int(ok.sum())
        if n:
            bins = (36, 64)
            hist, _, _ = np.histogram2d(y[ok], x[ok], bins=bins, range=((0, 1), (0, 1)))
            hist = gaussian_filter(hist, sigma=1.5)
            hist = hist / hist.max() if hist.max() > 0 else hist
            masked = np.ma.masked_less(hist, 0.05)
            ax.imshow(masked, extent=(0, 1, 1, 0), cmap="inferno", alpha=0.6, zorder=1, vmin=0, vmax=1, aspect="auto")
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_aspect(1 / aspect_screen)  # the screen's shape: x and y are both normalised
    ax.set_xticks([])
    ax.set_yticks([])
    title = f"trial {t.trial}: fixations on {t.clip_id} ({n} samples; {where})" if t.trial else \
        f"fixations over {t.clip_id} ({n} samples)"
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
