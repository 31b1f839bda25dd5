"""Self-report screens: the Self-Assessment Manikin (SAM) for valence and arousal, drawn with PsychoPy
shapes, plus the felt emotion (the 7 canonical classes) and its intensity.

002_cbeb04dbce786b8c.txt, Sec. III-B: ER labels come from the participants' SAM self-assessment, and
valence and arousal are given in [-1, 1]. SAM (Bradley & Lang 1994) shows a row of manikins on a 9-point
scale; here the manikins stand at the odd points and the even points are small marks between them. A
rating is stored both as the raw point (1..N) and as `to_unit(point) = 2 (point - 1) / (N - 1) - 1`.

Valence manikins change the mouth (frown to smile) and brows; arousal manikins change the eyes (closed
to wide open) and a burst on the body (none to large). Units are PsychoPy 'height' units.

Input: digits pick a point, left/right move, Return/Space confirm, a mouse click picks and confirms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from eyemotion.streams import CLASSES

HIGHLIGHT = "#ffd400"
FG = "#dddddd"
DIM = "#777777"


def to_unit(point: int, n_points: int) -> float:
    """A scale point 1..N mapped linearly to [-1, 1]."""
    return 2.0 * (point - 1) / (n_points - 1) - 1.0


@dataclass(frozen=True)
class ScaleSpec:
    name: str  # valence | arousal | emotion | intensity
    title: str
    n_points: int
    low: str = ""
    high: str = ""
    labels: tuple[str, ...] = ()  # per-option labels (emotion)


def scale_specs(ratings: Any) -> list[ScaleSpec]:
    """The screens a protocol's [ratings] section asks for, in order."""
    specs = []
    if ratings.valence:
        specs.append(ScaleSpec("valence", "How pleasant or unpleasant did you feel?", ratings.sam_points,
                               "unpleasant", "pleasant"))
    if ratings.arousal:
        specs.append(ScaleSpec("arousal", "How calm or excited did you feel?", ratings.sam_points,
                               "calm", "excited"))
    if ratings.emotion:
        specs.append(ScaleSpec("emotion", "Which emotion did you feel most?", len(CLASSES),
                               labels=CLASSES))
    if ratings.intensity:
        specs.append(ScaleSpec("intensity", "How strongly did you feel it?", ratings.intensity_points,
                               "weak", "strong"))
    return specs


def _ellipse(w: float, h: float, n: int = 40, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + w / 2 * np.cos(a), cy + h / 2 * np.sin(a)])


class Manikin:
    """One SAM figure of height `size` at `pos`; `level` in [0, 1] sets the expression."""

    def __init__(self, win: Any, kind: str, level: float, pos: tuple[float, float], size: float) -> None:
        from psychopy import visual

        x, y = pos
        s = size
        line = max(1.5, s * 12)
        self.parts = []
        body = _ellipse(0.55 * s, 0.55 * s, cx=x, cy=y - 0.2 * s)
        self.parts.append(visual.ShapeStim(win, vertices=body, fillColor="#3a3a3a", lineColor=FG,
                                           lineWidth=line, units="height"))
        head_y = y + 0.22 * s
        self.parts.append(visual.ShapeStim(win, vertices=_ellipse(0.36 * s, 0.36 * s, cx=x, cy=head_y),
                                           fillColor="#3a3a3a", lineColor=FG, lineWidth=line, units="height"))
        eye_dx, eye_y = 0.075 * s, head_y + 0.04 * s
        if kind == "arousal":
            openness = 0.01 + 0.07 * level  # closed (calm) to wide open (excited)
            for dx in (-eye_dx, eye_dx):
                self.parts.append(visual.ShapeStim(win, vertices=_ellipse(0.06 * s, openness * s, 16, x + dx, eye_y),
                                                   fillColor=FG, lineColor=FG, units="height"))
            if level > 0.05:  # the burst on the body grows with arousal
                n = 10
                r_out, r_in = (0.06 + 0.2 * level) * s, 0.04 * s
                ang = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
                radius = np.where(np.arange(2 * n) % 2 == 0, r_out, r_in)
                star = np.column_stack([x + radius * np.cos(ang), y - 0.2 * s + radius * np.sin(ang)])
                self.parts.append(visual.ShapeStim(win, vertices=star, fillColor="#c8a000", lineColor="#ffd84d",
                                                   lineWidth=line / 2, units="height"))
            mouth_curve = 0.0
        else:
            for dx in (-eye_dx, eye_dx):
                self.parts.append(visual.ShapeStim(win, vertices=_ellipse(0.05 * s, 0.05 * s, 16, x + dx, eye_y),
                                                   fillColor=FG, lineColor=FG, units="height"))
            mouth_curve = 2 * level - 1  # -1 frown .. +1 smile
            inner = -0.03 * s * min(mouth_curve, 0.0)  # brows: inner ends rise when unhappy (sad look)
            for sgn in (-1, 1):
                self.parts.append(visual.ShapeStim(
                    win, vertices=[(x + sgn * 0.03 * s, eye_y + 0.07 * s + inner), (x + sgn * 0.12 * s, eye_y + 0.07 * s)],
                    closeShape=False, lineColor=FG, lineWidth=line, units="height"))
        mw = 0.1 * s
        xs = np.linspace(-mw, mw, 12)
        ys = head_y - 0.08 * s + mouth_curve * 0.05 * s * ((xs / mw) ** 2 - 0.5)
        self.parts.append(visual.ShapeStim(win, vertices=np.column_stack([x + xs, ys]), closeShape=False,
                                           lineColor=FG, lineWidth=line, units="height"))

    def draw(self) -> None:
        for p in self.parts:
            p.draw()


class RatingScreen:
    """One rating question with N options; `draw(selected)` renders it, `handle_key` updates the choice."""

    def __init__(self, win: Any, spec: ScaleSpec) -> None:
        from psychopy import visual

        self.spec = spec
        self.win = win
        aspect = win.size[0] / win.size[1]
        n = spec.n_points
        width = min(1.5, 0.9 * aspect)
        self.xs = [(-width / 2 + width * i / (n - 1)) if n > 1 else 0.0 for i in range(n)]
        self.y = -0.02
        self.title = visual.TextStim(win, spec.title, pos=(0, 0.33), height=0.045, color=FG, units="height",
                                     wrapWidth=1.4)
        self.hint = visual.TextStim(win, "press a number (or click), then RETURN", pos=(0, -0.42), height=0.028,
                                    color=DIM, units="height")
        self.figures: list[Manikin | None] = []
        self.option_labels = []
        self.option_boxes = []
        step = width / max(n - 1, 1)
        for i, x in enumerate(self.xs):
            if spec.name in ("valence", "arousal"):
                level = i / (n - 1)
                self.figures.append(Manikin(win, spec.name, level, (x, self.y), 0.24) if i % 2 == 0 else None)
                box_w, box_h, box_y = step * 0.9, 0.36, self.y - 0.02
            else:
                self.figures.append(None)
                box_w, box_h, box_y = step * 0.9, 0.16, self.y
            self.option_boxes.append(visual.Rect(win, width=box_w, height=box_h, pos=(x, box_y), lineColor=DIM,
                                                 fillColor=None, lineWidth=2, units="height"))
            label = spec.labels[i] if spec.labels else str(i + 1)
            text = f"{i + 1}\n{label}" if spec.labels else label
            self.option_labels.append(visual.TextStim(win, text, pos=(x, self.y - (0.23 if self.figures[i] or
                                                      spec.name in ("valence", "arousal") else 0.0)),
                                                      height=0.03 if spec.labels else 0.035, color=FG,
                                                      units="height"))
            if self.figures[i] is None and spec.name in ("valence", "arousal"):
                self.option_boxes[i].height = 0.08
        self.anchors = []
        if spec.low:
            self.anchors.append(visual.TextStim(win, spec.low, pos=(self.xs[0], self.y + 0.2), height=0.03,
                                                color=DIM, units="height"))
            self.anchors.append(visual.TextStim(win, spec.high, pos=(self.xs[-1], self.y + 0.2), height=0.03,
                                                color=DIM, units="height"))

    def draw(self, selected: int | None) -> None:
        self.title.draw()
        self.hint.draw()
        for a in self.anchors:
            a.draw()
        for i in range(self.spec.n_points):
            box = self.option_boxes[i]
            on = selected == i + 1
            box.lineColor = HIGHLIGHT if on else DIM
            box.lineWidth = 5 if on else 2
            box.draw()
            if self.figures[i] is not None:
                self.figures[i].draw()
            self.option_labels[i].color = HIGHLIGHT if on else FG
            self.option_labels[i].draw()

    def handle_key(self, key: str, selected: int | None) -> tuple[int | None, bool]:
        """(new selection, confirmed) after `key`."""
        n = self.spec.n_points
        key = key.removeprefix("num_")
        if key.isdigit() and 1 <= int(key) <= n:
            return int(key), False
        if key == "left":
            return max(1, (selected or (n + 1) // 2 + 1) - 1), False
        if key == "right":
            return min(n, (selected or (n + 1) // 2 - 1) + 1), False
        if key in ("return", "space", "enter", "num_enter") and selected is not None:
            return selected, True
        return selected, False

    def option_at(self, pos: tuple[float, float]) -> int | None:
        """The option under a mouse position (height units), if any."""
        for i, box in enumerate(self.option_boxes):
            if box.contains(pos):
                return i + 1
        return None


def auto_answer(emotion: str, participant: str, trial: int, spec: ScaleSpec, *, felt: str | None = None
                ) -> tuple[int, float]:
    """A deterministic, plausible answer (point 1..N, reaction time s) for `--auto-respond`.

    Seeded from participant, trial and scale. Valence/arousal centre on the clip emotion's place in the
    circumplex (Russell 1980) with some spread; the felt emotion is the target 80 % of the time; intensity
    is higher for the target than for neutral.
    """
    import zlib

    rng = np.random.default_rng(zlib.crc32(f"{participant}|{trial}|{spec.name}".encode()))
    centre = {  # (valence, arousal) in [-1, 1]
        "neutral": (0.0, -0.5), "happiness": (0.7, 0.4), "sadness": (-0.6, -0.3), "anger": (-0.6, 0.7),
        "disgust": (-0.5, 0.3), "fear": (-0.6, 0.8), "surprise": (0.3, 0.7),
    }[emotion]
    rt = float(rng.uniform(0.15, 0.45))
    n = spec.n_points
    if spec.name in ("valence", "arousal"):
        unit = centre[0 if spec.name == "valence" else 1] + rng.normal(0, 0.2)
        point = round(float(np.clip(unit, -1, 1) + 1) / 2 * (n - 1)) + 1
        return point, rt
    if spec.name == "emotion":
        choice = emotion if rng.random() < 0.8 else str(rng.choice([c for c in CLASSES if c != emotion]))
        return CLASSES.index(choice) + 1, rt
    strong = (felt or emotion) != "neutral"
    lo, hi = (max(1, math.ceil(n / 2)), n) if strong else (1, max(1, n // 2))
    return int(rng.integers(lo, hi + 1)), rt
