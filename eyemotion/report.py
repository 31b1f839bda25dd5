"""`eyemotion report SESSION`: the session report a PI reads, as `SESSION/report/index.html` + PNG figures.

Per trial: the clip, the intended emotion, the self-report (7-class, valence, arousal, intensity), the
model's ER estimate and the face model's FER estimate aggregated over the clip (mean and standard deviation
over the prediction windows whose centre lies inside the clip), and the gap between ER and FER.
Figures: a confusion matrix of self-report vs ER estimate, valence/arousal self-report vs estimate,
per-trial timelines (baseline-corrected pupil, blink rate, ER probabilities, clip onset/offset) and a
fixation heat map per clip over a frame of the clip. Data quality: tracking loss and blink percentages per
trial, calibration/validation accuracy, gaps and restarts, latency (from `session_summary.json`).

Baseline correction is subtractive over the pre-clip fixation-cross period (Mathot et al. 2018,
"Safe and sensible preprocessing and baseline correction of pupil-size data", Behav. Res. 50:94-106);
the pupil is eyemotion_gaze's blink-interpolated diameter (002_cbeb04dbce786b8c.txt, Sec. III-A-3).
The report says, wherever estimates are shown, when the models were trained on simulated data (their
model cards) and when the session's sources were simulated.

The report is written into a temporary folder and moved into place at the end, so a failure never leaves
a half-written `report/` (an older report stays as it was).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion.config import Config
from eyemotion.streams import CLASSES, EMOTION, EVENT_CODES, FACE, GAZE_CLEAN, GAZE_RAW

log = logging.getLogger(__name__)

REPORT_DIR = "report"
SUMMARY_JSON = "session_summary.json"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"  # the shipped cards (package-dir layout)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write the session report (HTML + PNG figures) into SESSION/report/",
        description="Write the report of a recorded session into SESSION/report/ (index.html and the PNG "
                    "figures beside it): per trial the clip, intended emotion, self-report and the model's "
                    "ER and FER estimates over the clip with their spread and the gap; a confusion matrix, "
                    "valence/arousal self-report vs estimate, per-trial timelines (baseline-corrected pupil, "
                    "blink rate, ER probabilities), a fixation heat map per clip over a frame of the clip, "
                    "and data quality (tracking loss, blinks, calibration, gaps, restarts, latency). "
                    "`eyemotion run` and `demo` write it at the end of every session.")
    p.add_argument("session", help="session folder (sessions/<participant>/<session-id>)")
    p.add_argument("--out", help="output folder (default: SESSION/report)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace, config: Config) -> int:
    out = write_report(args.session, config, out=args.out)
    print(f"report: {out / 'index.html'}")
    return 0


# -- data -----------------------------------------------------------------------------------------------
@dataclass
class Estimate:
    """Probabilities aggregated over the prediction windows of one clip."""

    mean: np.ndarray  # (7,)
    sd: np.ndarray  # (7,)
    n: int
    source: str

    @property
    def top(self) -> str:
        return CLASSES[int(np.argmax(self.mean))]

    def text(self) -> str:
        k = int(np.argmax(self.mean))
        return f"{CLASSES[k]} {self.mean[k]:.2f} ± {self.sd[k]:.2f} (n={self.n})"


@dataclass
class TrialReport:
    trial: int
    clip_id: str
    clip: str
    intended: str
    felt: str
    valence: float
    arousal: float
    intensity: float
    onset: float
    offset: float
    baseline_onset: float
    er: Estimate | None = None
    fer: Estimate | None = None
    valence_est: tuple[float, float] | None = None  # mean, sd
    arousal_est: tuple[float, float] | None = None
    tracking_loss_pct: float = math.nan
    blink_pct: float = math.nan
    gap: str = ""
    figures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _num(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def _aggregate(stamps: np.ndarray, probs: np.ndarray, lo: float, hi: float, source: str) -> Estimate | None:
    inside = (stamps >= lo) & (stamps <= hi) & np.all(np.isfinite(probs), axis=1)
    if not inside.any():
        return None
    p = probs[inside]
    return Estimate(p.mean(axis=0), p.std(axis=0), int(inside.sum()), source)


def model_cards(session: Any) -> dict[str, dict[str, Any]]:
    """The model cards of the models named in the recorded eyemotion_emotion desc (by .onnx file name)."""
    cards: dict[str, dict[str, Any]] = {}
    stream = session.streams.get(EMOTION.name)
    names: list[str] = []
    try:
        own = stream.info["desc"][0]["eyemotion"][0]
        names = [v[0].split()[0] for k, v in own.items() if k.startswith(("emert", "crossmodal")) and v and v[0]]
    except (AttributeError, KeyError, IndexError, TypeError):
        pass
    if stream is not None and not names:
        names = ["emert.onnx"]  # the shipped default
    if FACE.name in session.streams:
        names.append("face_fer.onnx")  # eyemotion_face's pretrained model
    for name in names:
        card = MODELS_DIR / name.replace(".onnx", ".json")
        if card.exists():
            try:
                cards[name] = json.loads(card.read_text(encoding="utf-8"))
            except ValueError:
                continue
    return cards


def simulated_models(cards: dict[str, dict[str, Any]]) -> list[str]:
    """Names of the models whose card says they were trained on simulated data."""
    out = []
    for name, card in cards.items():
        text = json.dumps({k: card.get(k) for k in ("intended_use", "notes", "training_data")}, default=str)
        if "simulated" in text.lower():
            out.append(name)
    return out


def simulated_sources(session: Any) -> list[str]:
    """The sources that were simulated: session.json `simulated_sources`, else the demo flag, else the
    recorded Tobii_gaze desc (`simulated = true`) of sessions written before that key existed."""
    meta = session.meta
    if isinstance(meta.get("simulated_sources"), list):
        return [str(s) for s in meta["simulated_sources"]]
    if meta.get("demo") or meta.get("simulated"):
        return ["tracker", "camera", "microphone"]
    gaze = session.streams.get(GAZE_RAW.name)
    try:
        if gaze is not None and gaze.info["desc"][0]["eyemotion"][0]["simulated"][0] == "true":
            return ["tracker"]
    except (KeyError, IndexError, TypeError):
        pass
    return []


def protocol_name(meta: dict[str, Any]) -> str:
    """The protocol's name as session.json records it (the runner writes a dict, `record` a string)."""
    protocol = meta.get("protocol")
    if isinstance(protocol, dict):
        return str(protocol.get("name") or protocol.get("file") or "")
    return str(protocol or "")


def _clip_paths(meta: dict[str, Any]) -> tuple[dict[str, Path], str]:
    """clip id -> file, from the session's protocol; and why there are none."""
    protocol = meta.get("protocol")
    name = str((protocol.get("file") or "") if isinstance(protocol, dict) else (protocol or ""))
    if not name:
        return {}, "session.json names no protocol file"
    try:
        from eyemotion.stimuli.commands import protocol_path
        from eyemotion.stimuli.protocol import load_protocol

        protocol = load_protocol(protocol_path(name))
    except Exception as exc:  # noqa: BLE001 - any failure means: no clip frames
        return {}, f"protocol {name!r} cannot be read here ({str(exc).splitlines()[0]})"
    return {c.clip_id: c.path for c in protocol.conditions}, ""


def _clip_frame(path: Path | None, at_s: float) -> np.ndarray | None:
    if path is None or not path.exists():
        return None
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_MSEC, at_s * 1000)
        ok, frame = capture.read()
    finally:
        capture.release()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None


# -- the report ---------------------------------------------------------------------------------------
def write_report(folder: str | Path, config: Config, *, out: str | Path | None = None) -> Path:
    """Build the report of a session folder; returns the report folder (written atomically)."""
    from eyemotion.session import Session

    session = Session.load(folder)
    folder = session.path
    target = Path(out) if out else folder / REPORT_DIR
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _build(session, config, tmp)
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _build(session: Any, config: Config, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")

    meta = session.meta
    summary = {}
    if (session.path / SUMMARY_JSON).exists():
        try:
            summary = json.loads((session.path / SUMMARY_JSON).read_text(encoding="utf-8"))
        except ValueError:
            summary = {}
    cards = model_cards(session)
    sim_models = simulated_models(cards)
    sim_sources = simulated_sources(session)
    emotion = session.streams.get(EMOTION.name)
    face = session.streams.get(FACE.name)
    gaze = session.streams.get(GAZE_CLEAN.name)
    raw = session.streams.get(GAZE_RAW.name)
    window_s = config.features.emert_window_s
    try:
        window_s = float(emotion.info["desc"][0]["eyemotion"][0]["window_s"][0])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        pass
    clip_paths, no_clips = _clip_paths(meta)
    notes: list[str] = []
    trials = []
    for row in session.trials:
        onset, offset = _num(row.get("clip_onset_lsl")), _num(row.get("clip_offset_lsl"))
        if not (math.isfinite(onset) and math.isfinite(offset)):
            notes.append(f"trial {row.get('trial')}: no clip onset/offset in trials.csv (not shown)")
            continue
        t = TrialReport(
            trial=int(_num(row.get("trial"))), clip_id=str(row.get("clip_id", "")), clip=str(row.get("clip", "")),
            intended=str(row.get("target_emotion", "")), felt=str(row.get("felt_emotion") or ""),
            valence=_num(row.get("valence")), arousal=_num(row.get("arousal")), intensity=_num(row.get("intensity")),
            onset=onset, offset=offset, baseline_onset=_num(row.get("baseline_onset_lsl")))
        # prediction windows whose centre lies inside the clip: window end in [onset + w/2, offset + w/2]
        lo, hi = onset + window_s / 2, offset + window_s / 2
        if emotion is not None and len(emotion):
            er = np.column_stack([emotion.channel(f"er_{c}") for c in CLASSES]).astype(float)
            t.er = _aggregate(emotion.time_stamps, er, lo, hi, "ER (EMERT + crossmodal)")
            va = np.column_stack([emotion.channel("valence"), emotion.channel("arousal")]).astype(float)
            inside = (emotion.time_stamps >= lo) & (emotion.time_stamps <= hi)
            if inside.any():
                t.valence_est = (float(np.nanmean(va[inside, 0])), float(np.nanstd(va[inside, 0])))
                t.arousal_est = (float(np.nanmean(va[inside, 1])), float(np.nanstd(va[inside, 1])))
        if face is not None and len(face):
            present = face.channel("face_present").astype(float) > 0.5
            fer = np.column_stack([face.channel(f"fer_{c}") for c in CLASSES]).astype(float)
            fer[~present] = np.nan
            t.fer = _aggregate(face.time_stamps, fer, onset, offset, "FER (pretrained face model, eyemotion_face)")
        if t.er is not None and t.fer is not None:
            tv = 0.5 * float(np.abs(t.er.mean - t.fer.mean).sum())
            t.gap = (f"ER {t.er.top} vs FER {t.fer.top}" if t.er.top != t.fer.top else f"both {t.er.top}") \
                + f"; distance {tv:.2f}"
        elif t.er is None:
            t.gap = "no ER estimate in this clip"
        else:
            t.gap = "no face in this clip"
        if raw is not None and len(raw):
            inside = (raw.time_stamps >= onset) & (raw.time_stamps <= offset)
            if inside.any():
                valid = (raw.channel("valid.gaze_point.left_eye")[inside] > 0.5) | \
                        (raw.channel("valid.gaze_point.right_eye")[inside] > 0.5)
                t.tracking_loss_pct = 100.0 * float(1 - valid.mean())
        if gaze is not None and len(gaze):
            inside = (gaze.time_stamps >= onset) & (gaze.time_stamps <= offset)
            if inside.any():
                t.blink_pct = 100.0 * float((gaze.channel("event")[inside] == EVENT_CODES["blink"]).mean())
        trials.append(t)

    from eyemotion import report_figures as fig

    figures: dict[str, str] = {}
    if trials:
        figures["confusion"] = fig.confusion(trials, out / "confusion.png")
        figures["valence_arousal"] = fig.valence_arousal(trials, out / "valence_arousal.png")
        for t in trials:
            t.figures["timeline"] = fig.timeline(t, gaze, emotion, window_s, out / f"timeline_trial{t.trial:02d}.png")
            clip_path = clip_paths.get(t.clip_id)
            frame = _clip_frame(clip_path, 0.5 * (t.offset - t.onset))
            if frame is None:
                t.notes.append(f"heat map over a plain background: clip frame not found ({no_clips or clip_path})")
            t.figures["heatmap"] = fig.heatmap(t, gaze, frame, meta, config, out / f"heatmap_trial{t.trial:02d}.png")
    else:
        notes.append("trials.csv has no trial with a clip onset: no per-trial figures")
        if gaze is not None and len(gaze):  # an imported or trial-less recording: one heat map of all of it
            whole = TrialReport(0, "the whole recording", "", "", "", math.nan, math.nan, math.nan,
                                float(gaze.time_stamps[0]), float(gaze.time_stamps[-1]), math.nan)
            figures["heatmap"] = fig.heatmap(whole, gaze, None, meta, config, out / "heatmap_all.png")
    (out / "index.html").write_text(_html(session, trials, figures, summary, sim_models, sim_sources, cards, notes),
                                    encoding="utf-8")
    (out / "report.json").write_text(json.dumps(_json(session, trials, sim_models, sim_sources), indent=2,
                                                 default=_jsonable), encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [round(float(v), 4) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Estimate):
        return {"mean": value.mean, "sd": value.sd, "n": value.n, "top": value.top, "source": value.source}
    return str(value)


def _json(session: Any, trials: list[TrialReport], sim_models: list[str], sim_sources: list[str]) -> dict:
    return {"session": str(session.path), "participant": session.meta.get("participant"),
            "models_trained_on_simulated_data": sim_models, "simulated_sources": sim_sources,
            "trials": [{k: v for k, v in t.__dict__.items() if k != "figures"} for t in trials]}


# -- HTML -------------------------------------------------------------------------------------------------
def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if value is None or not math.isfinite(value) else fmt.format(value)


def _html(session: Any, trials: list[TrialReport], figures: dict[str, str], summary: dict, sim_models: list[str],
          sim_sources: list[str], cards: dict, notes: list[str]) -> str:
    e = html.escape
    meta = session.meta
    s = summary.get("session") or {}
    banners = []
    if sim_models:
        banners.append(f"The estimates come from models trained on <b>simulated data</b> ({e(', '.join(sim_models))}, "
                       "per their model cards): they are for pipeline testing and are <b>not valid for real "
                       "participants</b>.")
    if sim_sources:
        banners.append(f"Simulated sources in this session: <b>{e(', '.join(sim_sources))}</b>. The data are not "
                       "from a person.")
    if meta.get("imported"):
        banners.append(f"Imported from another lab's recording: {e(str((meta.get('imported') or {}).get('source')))}.")
    runner = meta.get("runner") if isinstance(meta.get("runner"), dict) else {}
    head = [("participant", meta.get("participant")), ("session", meta.get("session_id") or session.path.name),
            ("protocol", protocol_name(meta)), ("started", (meta.get("recording") or {}).get("start")
                                                  or meta.get("created")),
            ("trials", f"{len(trials)} shown" + (f"; {runner.get('trials_done')} of {runner.get('trials_total')} done "
                                                  f"({runner.get('status')})" if runner else "")),
            ("end", meta.get("end_reason"))]
    parts = [
        ("<!doctype html><html><head><meta charset='utf-8'><title>eyemotion report "
        f"{e(str(meta.get('participant')))} {e(session.path.name)}</title><style>"
        "body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #bbb;padding:3px 6px;"
        "text-align:left;vertical-align:top}th{background:#eee}.banner{background:#fff3cd;border:1px solid #e0b000;"
        "padding:8px 12px;margin:6px 0}img{max-width:100%;border:1px solid #ddd}.pair{display:flex;gap:12px}"
        ".pair img{max-width:49%}.mismatch{color:#b00}</style></head><body>"),
        f"<h1>Session report: {e(str(meta.get('participant')))} / {e(session.path.name)}</h1>",
        *[f"<div class='banner'>{b}</div>" for b in banners],
        "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in head) + "</table>"]
    table = [
        ("<h2>Trials</h2><p>ER: the emotion-recognition estimate (EMERT and the crossmodal models) averaged over "
        "the prediction windows whose centre lies in the clip (mean ± SD of the top class, n windows). FER: the "
        "pretrained face model on the camera (eyemotion_face) over the clip's analysed frames with a face. "
        "Gap: where the two estimates disagree, and their total-variation distance (0 = same, 1 = disjoint). "
        "These are estimates; the participant's self-report is what was felt.</p>"),
        ("<table><tr><th>#</th><th>clip</th><th>intended</th><th>self-report</th><th>valence</th><th>arousal</th>"
        "<th>intensity</th><th>ER estimate</th><th>valence / arousal estimate</th><th>FER estimate</th>"
        "<th>gap</th><th>tracking loss %</th><th>blinks %</th></tr>")]
    parts += table if trials else []
    for t in trials:
        felt_cls = "mismatch" if t.er is not None and t.felt and t.er.top != t.felt else ""
        va = (f"{_f(t.valence_est[0])} ± {_f(t.valence_est[1])} / {_f(t.arousal_est[0])} ± {_f(t.arousal_est[1])}"
              if t.valence_est and t.arousal_est else "–")
        parts.append(
            f"<tr><td>{t.trial}</td><td>{e(t.clip_id)}<br><small>{e(t.clip)}</small></td><td>{e(t.intended)}</td>"
            f"<td>{e(t.felt or '–')}</td><td>{_f(t.valence)}</td><td>{_f(t.arousal)}</td>"
            f"<td>{_f(t.intensity, '{:.0f}')}</td><td class='{felt_cls}'>{e(t.er.text() if t.er else '–')}</td>"
            f"<td>{va}</td><td>{e(t.fer.text() if t.fer else '–')}</td><td>{e(t.gap)}</td>"
            f"<td>{_f(t.tracking_loss_pct, '{:.1f}')}</td><td>{_f(t.blink_pct, '{:.1f}')}</td></tr>")
    parts.append("</table>" if trials else "")
    if figures:
        title = "Self-report against the estimate" if trials else "Fixations over the whole recording"
        parts.append(f"<h2>{title}</h2><div class='pair'>"
                     + "".join(f"<img src='{e(v)}' alt='{e(k)}'>" for k, v in figures.items()) + "</div>")
    parts.append("<h2>Per trial</h2>" if trials else "")
    for t in trials:
        parts.append(f"<h3>Trial {t.trial}: {e(t.clip_id)} (intended {e(t.intended)}, reported "
                     f"{e(t.felt or '–')})</h3><div class='pair'>"
                     + "".join(f"<img src='{e(v)}' alt='{e(k)}'>" for k, v in t.figures.items()) + "</div>"
                     + "".join(f"<p><small>{e(n)}</small></p>" for n in t.notes))
    imported = meta.get("imported")
    if isinstance(imported, dict):
        rows = [("source", f"{imported.get('source')} (sha256 {str(imported.get('sha256'))[:12]})"),
                ("stream / mapping", f"{imported.get('stream')} / {imported.get('mapping')}"),
                ("rate", f"{imported.get('rate_hz')} Hz: {imported.get('resampling')}"),
                *[("missing", m) for m in imported.get("missing", [])],
                *[("cannot run", c) for c in imported.get("cannot_run", [])]]
        parts.append("<h2>Import</h2><table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>"
                                                         for k, v in rows) + "</table>")
    parts.append("<h2>Data quality</h2>")
    parts.append(_quality_html(meta, s))
    raw = session.streams.get(GAZE_RAW.name)
    if raw is not None and len(raw):
        valid = (raw.channel("valid.gaze_point.left_eye") > 0.5) | (raw.channel("valid.gaze_point.right_eye") > 0.5)
        parts.append(f"<p>Whole recording: {len(raw)} gaze samples, tracking loss {100 * (1 - valid.mean()):.1f} %.</p>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    models = "".join(f"<tr><td>{e(n)}</td><td>{e(str(c.get('intended_use') or c.get('description') or ''))}"
                     f"</td></tr>" for n, c in cards.items())
    if models:
        parts.append(f"<h2>Models</h2><table><tr><th>model</th><th>card says</th></tr>{models}</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _quality_html(meta: dict[str, Any], s: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    cal = meta.get("calibration") or {}
    acc = cal.get("accepted") if isinstance(cal, dict) else None
    if isinstance(acc, dict):
        rows.append(("calibration / validation", (f"{cal.get('method')}: accuracy {_f(_num(acc.get('accuracy_deg')))}°"
                     f" (L {_f(_num(acc.get('accuracy_left_deg')))}°, R {_f(_num(acc.get('accuracy_right_deg')))}°), "
                     f"precision {_f(_num(acc.get('precision_deg')))}°, data loss "
                     f"{_f(_num(acc.get('data_loss_pct')), '{:.1f}')} %, {len(cal.get('attempts') or [])} attempt(s)")))
    else:
        rows.append(("calibration / validation", str(cal.get("skipped") or "not recorded") if isinstance(cal, dict)
                     else str(cal)))
    if s:
        gaps = s.get("gaps") or []
        rows.append(("gaps", f"{len(gaps)}" + ("" if not gaps else ": " + "; ".join(
            f"{g.get('node') or g.get('device') or g.get('stream') or '?'} "
            f"{_f(_num(g.get('end')) - _num(g.get('start')), '{:.1f}')} s" for g in gaps[:10]))))
        restarts = s.get("restarts") or {}
        rows.append(("restarts", f"{sum(restarts.values())}" + (" (" + ", ".join(
            f"{k} {v}" for k, v in restarts.items() if v) + ")" if any(restarts.values()) else "")))
        lat = s.get("gaze_to_prediction_ms")
        rows.append(("latency gaze sample → prediction", f"p50 {lat['p50']} ms, p95 {lat['p95']} ms, max "
                     f"{lat['max']} ms (n={lat['n']})" if lat else "not reported"))
        lost = (s.get("checks") or {}).get("lost_samples")
        if lost:
            rows.append(("samples lost outside marked gaps", ", ".join(f"{k} {v}" for k, v in lost.items())))
        rows.append(("predictions", str(s.get("predictions"))))
    else:
        rows.append(("session summary", f"no {SUMMARY_JSON}: gaps, restarts and latency unknown"))
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows) + "</table>"


def write_report_safely(folder: Path, config: Config) -> Path | None:
    """For `run`/`demo`: write the report; a failure is logged and never touches the session."""
    try:
        return write_report(folder, config)
    except Exception as exc:  # noqa: BLE001 - the session is more important than its report
        log.warning("the session report could not be written (%s); run `eyemotion report %s` later", exc, folder)
        return None

