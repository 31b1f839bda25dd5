"""The GazeCom smooth-pursuit validation (inference/eyesignal/gazecom.py): the ARFF reader, the scores and the
command. No GazeCom data is committed (GPL-3.0), so these tests write a GazeCom file from a SIMULATED recording
with pursuit, with GazeCom's jittered timestamps and dropped samples; the real recording's figures are in the
README (`eyemotion eyesignal validate --gazecom example_data/input.arff`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eyemotion.inference.eyesignal import gazecom
from eyemotion.inference.eyesignal.validate import pso_as_next

from eyemotion import UserError
from eyemotion.config import ScreenConfig
from eyemotion.streams import EVENT_CODES, GAZE_RAW

SCREEN = ScreenConfig(width_px=1280, height_px=720, width_mm=400.0, height_mm=225.0, distance_mm=450.0)
GAZECOM_LABEL = {"fixation": 1, "pso": 1, "saccade": 2, "pursuit": 3, "blink": 4, "loss": 4}  # no PSO class
DROPPED = np.arange(500, 14000, 997)  # one sample in ~1000 missing, as in GazeCom


def write_arff(path: Path, duration_s: float = 60.0, header: str | None = None) -> dict:
    """A GazeCom ARFF of a simulated 250 Hz recording; returns what was written."""
    from eyemotion.acquisition.simulator import simulate_recording

    t, raw, truth = simulate_recording(duration_s, rate=250.0, seed=4, screen=SCREEN)
    lx, ly = GAZE_RAW.index("x.position_on_display_area.gaze_point.left_eye"), \
        GAZE_RAW.index("y.position_on_display_area.gaze_point.left_eye")
    x = np.where(np.isnan(raw[:, lx]), raw[:, lx + 18], raw[:, lx]) * SCREEN.width_px  # the left eye, else the right
    y = np.where(np.isnan(raw[:, ly]), raw[:, ly + 18], raw[:, ly]) * SCREEN.height_px
    ok = np.isfinite(x) & np.isfinite(y)
    names = {v: k for k, v in EVENT_CODES.items()}
    final = np.array([GAZECOM_LABEL.get(names[int(e)], 0) for e in truth.event])
    second = np.where(final == 3, 1, final)  # expert 2 calls every pursuit a fixation
    rng = np.random.default_rng(0)
    us = np.rint(t * 1e6 / 1000 + rng.integers(-1, 2, len(t))).astype(int) * 1000 + 2000  # 1 ms jitter
    keep = np.ones(len(t), bool)
    keep[DROPPED[DROPPED < len(t)]] = False
    lines = [header if header is not None else
             "%@METADATA width_px 1280.0\n%@METADATA height_px 720.0\n%@METADATA width_mm 400.0\n"
             "%@METADATA height_mm 225.0\n%@METADATA distance_mm 450.0",
             "@RELATION gaze_labels", ""] + [f"@ATTRIBUTE {a} {'INTEGER' if a != 'x' and a != 'y' else 'NUMERIC'}"
                                              for a in ("time", "x", "y", "confidence", "handlabeller1",
                                                        "handlabeller2", "handlabeller_final")] + ["", "@DATA"]
    lines += [f"{us[i]},{x[i] if ok[i] else 0.0:.1f},{y[i] if ok[i] else 0.0:.1f},{float(ok[i])},{final[i]},"
              f"{second[i]},{final[i]}" for i in np.flatnonzero(keep)]
    path.write_text("\n".join(lines) + "\n")
    return {"n": len(t), "final": final, "ok": ok}


@pytest.fixture(scope="module")
def arff(tmp_path_factory):
    path = tmp_path_factory.mktemp("gazecom") / "GGM_simulated.arff"
    return path, write_arff(path)


def test_arff_goes_onto_the_nominal_grid(arff):
    path, written = arff
    (rec,) = gazecom.load(path)
    assert rec.screen == SCREEN and rec.name == "GGM_simulated"
    assert len(rec.t_s) == written["n"]  # the dropped samples are back as empty slots
    assert np.allclose(np.diff(rec.t_s), 0.004)
    assert np.isnan(rec.x_px[DROPPED]).all() and (rec.final[DROPPED] == -1).all()
    kept = np.setdiff1d(np.arange(written["n"]), DROPPED)
    assert np.array_equal(np.isfinite(rec.x_px[kept]), written["ok"][kept])  # confidence 0 -> invalid
    pursuit = written["final"][kept] == 3
    assert pursuit.sum() > 500 and (rec.final[kept][pursuit] == EVENT_CODES["pursuit"]).all()
    assert (rec.final[kept][written["final"][kept] == 4] == -1).all()  # noise is not scored
    assert set(rec.experts) == {"handlabeller1", "handlabeller2"}


def test_pursuit_scores_on_a_written_recording(arff):
    f = gazecom.validate(gazecom.load(arff[0]))
    ours, ivt = f.detectors["eyemotion +PSO"], f.detectors["pymovements I-VT"]
    # SIMULATED pursuit (the simulator's truth), read back through the GazeCom path: 250 Hz figure .89
    assert ours.kappa["pursuit"] >= 0.75 and f.pursuit_as_fixation["eyemotion"] < 0.2
    assert f.pursuit_as_fixation["pymovements I-VT"] > 0.8  # I-VT has no pursuit: it calls it fixation
    assert np.isnan(ivt.kappa["pursuit"]) and ours.kappa["saccade"] > 0.7
    assert f.reference.kappa["pursuit"] == pytest.approx(1.0)
    # expert 2 calls all pursuit fixation: no pursuit agreement, and all of expert 1's pursuit is "fixation"
    assert f.experts.kappa["pursuit"] == pytest.approx(0.0) and f.pursuit_as_fixation["expert 1 vs 2"] == 1.0
    table = gazecom.format_table(f)
    assert "kappa pursuit" in table and "pursuit called fixation" in table and "expert 1 vs 2" in table


def test_pso_counts_as_the_class_that_follows_it():
    fix, sac, pso, pur = (EVENT_CODES[k] for k in ("fixation", "saccade", "pso", "pursuit"))
    codes = np.array([sac, pso, pso, pur, sac, pso, fix, sac, pso])
    assert pso_as_next(codes).tolist() == [sac, pur, pur, pur, sac, fix, fix, sac, fix]


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no GazeCom data"):
        gazecom.load(None)
    with pytest.raises(UserError, match="not an .arff file"):
        gazecom.load(tmp_path)
    bad = tmp_path / "no_meta.arff"
    write_arff(bad, duration_s=2.0, header="")
    with pytest.raises(UserError, match="lacks width_px"):
        gazecom.load(bad)
    text = tmp_path / "row.arff"
    write_arff(text, duration_s=2.0)
    text.write_text(text.read_text() + "12,abc,3\n")
    with pytest.raises(UserError, match="line .* is not a row of numbers"):
        gazecom.load(text)
    cut = tmp_path / "cut.arff"
    write_arff(cut, duration_s=2.0)
    cut.write_text(cut.read_text() + "12,3.0\n")  # a row cut short
    with pytest.raises(UserError, match="line .* has 2 values but the header names 7"):
        gazecom.load(cut)
    far = tmp_path / "far.arff"
    write_arff(far, duration_s=2.0)
    far.write_text(far.read_text().replace("distance_mm 450.0", "distance_mm 45000.0"))
    with pytest.raises(UserError, match="screen is implausible .*distance_mm"):
        gazecom.load(far)
    back = tmp_path / "back.arff"
    write_arff(back, duration_s=2.0)
    lines = back.read_text().splitlines()
    back.write_text("\n".join(lines + [lines[-1]]) + "\n")  # the last sample twice
    with pytest.raises(UserError, match="not increasing"):
        gazecom.load(back)
    good = tmp_path / "ok.arff"
    write_arff(good, duration_s=2.0)
    with pytest.raises(UserError, match="not a multiple of 300 Hz"):
        gazecom.load(good, rate=300.0)


def test_the_validate_command_runs_the_gazecom_table(tmp_path, arff):
    eyemotion = Path(sys.executable).with_name("eyemotion")
    bad = subprocess.run([str(eyemotion), "eyesignal", "validate", "--gazecom", str(tmp_path / "missing.arff")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "not an .arff file" in bad.stderr and "Traceback" not in bad.stderr
    out = tmp_path / "figures.json"
    result = subprocess.run([str(eyemotion), "eyesignal", "validate", "--rates", "250", "--duration", "10",
                             "--gazecom", str(arff[0]), "--json", str(out)], check=False, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "GazeCom (videos of natural scenes)" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["gazecom"]["detectors"]["eyemotion"]["kappa"]["pursuit"] > 0.5
