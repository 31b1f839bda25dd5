"""Calibration and validation: Titta's PsychoPy UI for a real Tobii, an equivalent procedure for the
simulated tracker.

Simulated tracker: the runner shows calibration targets, then validation targets, and computes from the
`Tobii_gaze` samples of the last `sample_s` of each validation target
  * accuracy: the angle between the eye-to-target and eye-to-mean-gaze directions, per eye, averaged
    over points (deg);
  * precision: RMS of the angles between successive samples (RMS-S2S, deg);
  * data loss: the share of expected samples that were missing or invalid.
The eye is placed in front of the screen centre at the tracker's gaze-origin distance (the screen
distance when the tracker gives none), a small-angle approximation of Titta's exact 3-D computation.
While a target is shown the mouse pointer is moved onto it, so a simulator in mouse mode
(`[simulator] mode = "mouse"`) looks at the targets; in random mode the validation comes out poor, as
it should.

Real tracker: `titta_calibrate` sets up `titta.Titta` (TittaPy underneath) with the protocol's settings
and runs Titta's own participant-setup / calibration / validation screens on the runner's window, then
converts Titta's validation history (per eye: deviation, RMS-S2S, data loss) into the same record.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from eyemotion import UserError

log = logging.getLogger(__name__)

#: Calibration target layouts in Tobii's display coordinates ((0, 0) top left), as in Titta's settings.
CAL_GRID = [(0.1, 0.1), (0.5, 0.1), (0.9, 0.1), (0.3, 0.3), (0.7, 0.3), (0.1, 0.5), (0.5, 0.5), (0.9, 0.5),
            (0.3, 0.7), (0.7, 0.7), (0.1, 0.9), (0.5, 0.9), (0.9, 0.9)]
CAL_LAYOUTS = {0: [], 1: [6], 3: [0, 6, 12], 5: [0, 2, 6, 10, 12], 9: [0, 1, 2, 5, 6, 7, 10, 11, 12],
               13: list(range(13))}
VAL_POINTS = [(0.2, 0.5), (0.5, 0.8), (0.8, 0.5), (0.5, 0.2), (0.5, 0.5), (0.3, 0.3), (0.7, 0.7),
              (0.7, 0.3), (0.3, 0.7)]


@dataclass
class ValidationResult:
    method: str  # "simulated" or "titta"
    attempt: int
    calibration_points: int
    validation_points: int
    accuracy_deg: float
    accuracy_left_deg: float
    accuracy_right_deg: float
    precision_deg: float
    precision_left_deg: float
    precision_right_deg: float
    data_loss_pct: float
    accepted: bool = False
    good: bool = False
    n_samples: int = 0
    time_lsl: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _angles(points_mm: np.ndarray, eye: np.ndarray) -> np.ndarray:
    v = points_mm - eye
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def eye_quality(gx: np.ndarray, gy: np.ndarray, valid: np.ndarray, target: tuple[float, float],
                width_mm: float, height_mm: float, distance_mm: float) -> tuple[float, float, int]:
    """(accuracy deg, RMS-S2S precision deg, n valid) of one eye's samples at one target."""
    ok = (valid > 0.5) & np.isfinite(gx) & np.isfinite(gy)
    if ok.sum() < 2:
        return math.nan, math.nan, int(ok.sum())
    eye = np.array([0.0, 0.0, distance_mm])
    to_mm = lambda x, y: np.column_stack([(np.asarray(x) - 0.5) * width_mm, (np.asarray(y) - 0.5) * height_mm,
                                          np.zeros(np.size(x))])
    dirs = _angles(to_mm(gx[ok], gy[ok]), eye)
    mean_dir = _angles(to_mm([gx[ok].mean()], [gy[ok].mean()]), eye)[0]
    tgt = _angles(to_mm([target[0]], [target[1]]), eye)[0]
    accuracy = math.degrees(math.acos(float(np.clip(mean_dir @ tgt, -1, 1))))
    steps = np.degrees(np.arccos(np.clip(np.sum(dirs[1:] * dirs[:-1], axis=1), -1, 1)))
    precision = float(np.sqrt(np.mean(steps ** 2)))
    return accuracy, precision, int(ok.sum())


def validation_quality(per_point: list[tuple[tuple[float, float], np.ndarray]], screen: Any, rate: float,
                       sample_s: float, attempt: int, n_cal: int) -> ValidationResult:
    """Combine per-target gaze (columns of tracking.GAZE_COLUMNS) into one ValidationResult."""
    acc = {"l": [], "r": []}
    prec = {"l": [], "r": []}
    valid_total, expected = 0, 0
    for target, g in per_point:
        expected += max(round(rate * sample_s), 1) * 2
        z = np.concatenate([g[:, 4], g[:, 8]]) if len(g) else np.zeros(0)
        z = z[np.isfinite(z)]
        distance = float(np.median(z)) if len(z) else screen.distance_mm
        for eye, (xi, yi, vi) in {"l": (1, 2, 3), "r": (5, 6, 7)}.items():
            if len(g) == 0:
                continue
            a, p, n = eye_quality(g[:, xi], g[:, yi], g[:, vi], target, screen.width_mm, screen.height_mm, distance)
            valid_total += n
            if math.isfinite(a):
                acc[eye].append(a)
                prec[eye].append(p)
    mean = lambda xs: float(np.mean(xs)) if xs else math.nan
    al, ar, pl, pr = mean(acc["l"]), mean(acc["r"]), mean(prec["l"]), mean(prec["r"])
    return ValidationResult(
        method="simulated", attempt=attempt, calibration_points=n_cal, validation_points=len(per_point),
        accuracy_deg=float(np.nanmean([al, ar])) if np.isfinite([al, ar]).any() else math.nan,
        accuracy_left_deg=al, accuracy_right_deg=ar,
        precision_deg=float(np.nanmean([pl, pr])) if np.isfinite([pl, pr]).any() else math.nan,
        precision_left_deg=pl, precision_right_deg=pr,
        data_loss_pct=100.0 * max(0.0, 1.0 - valid_total / max(expected, 1)), n_samples=valid_total)


def judge(result: ValidationResult, cal: Any) -> bool:
    """Whether a validation meets the protocol's accuracy and precision limits."""
    return (math.isfinite(result.accuracy_deg) and result.accuracy_deg <= cal.max_accuracy_deg
            and math.isfinite(result.precision_deg) and result.precision_deg <= cal.max_precision_deg)


# -- Titta (real Tobii) ------------------------------------------------------------------------------

TITTA_MODEL = "Tobii Pro Fusion"


def titta_settings(protocol: Any, tracker: Any, folder: Any, participant: str) -> Any:
    """Titta settings from the protocol's [calibration] and the config's [tracker] sections."""
    from titta import Titta

    settings = Titta.get_defaults(TITTA_MODEL)
    settings.SAMPLING_RATE = int(tracker.frequency)
    settings.TRACKER_ADDRESS = tracker.address or ""
    settings.N_CAL_TARGETS = protocol.calibration.points
    settings.PACING_INTERVAL = max(protocol.calibration.point_s, 0.8)
    settings.VAL_POS_TOBII = np.array(VAL_POINTS[:protocol.calibration.validation_points])
    settings.DATA_STORAGE_PATH = str(folder)
    settings.FILENAME = f"{participant}_titta"
    return settings


def titta_result(history_row: list[Any], attempt: int, protocol: Any) -> ValidationResult:
    """One row of Titta's `calibration_history()`: [dev L, dev R, rms L, rms R, loss L %, loss R %, sd L,
    sd R, 'used'|'not used'] into a ValidationResult."""
    vals = [float(v) for v in history_row[:8]]
    dl, dr, rl, rr, ll, lr = vals[:6]
    return ValidationResult(
        method="titta", attempt=attempt, calibration_points=protocol.calibration.points,
        validation_points=protocol.calibration.validation_points,
        accuracy_deg=float(np.nanmean([dl, dr])), accuracy_left_deg=dl, accuracy_right_deg=dr,
        precision_deg=float(np.nanmean([rl, rr])), precision_left_deg=rl, precision_right_deg=rr,
        data_loss_pct=float(np.nanmean([ll, lr])),
        accepted=len(history_row) > 8 and history_row[8] == "used")


def titta_calibrate(win: Any, protocol: Any, tracker_config: Any, folder: Any, participant: str, *,
                    connect: Callable[[Any], Any] | None = None) -> list[ValidationResult]:
    """Run Titta's calibration UI on `win`; return every validation (the used one has accepted=True).

    `connect` defaults to `titta.Titta.Connect`. Raises UserError when no tracker is found or the
    operator quits Titta's screens (Titta would otherwise end the process).
    """
    from titta import Titta

    settings = titta_settings(protocol, tracker_config, folder, participant)
    try:
        tracker = (connect or Titta.Connect)(settings)
        tracker.init()
    except Exception as exc:  # noqa: BLE001 - TittaPy raises plain Exceptions
        raise UserError(f"Tobii eye tracker not available through Titta ({exc}); connect the {TITTA_MODEL}, "
                        "set [tracker] address, or use the simulator (--simulate)") from None
    try:
        tracker.calibrate(win)
    except SystemExit:  # Titta's 'quit' action calls psychopy.core.quit()
        raise UserError("calibration quit by the operator; the session was not started") from None
    history = tracker.calibration_history()
    results = [titta_result(row, i + 1, protocol) for i, row in enumerate(history)]
    for r in results:
        r.good = judge(r, protocol.calibration)
    return results
