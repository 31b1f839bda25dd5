"""Export a recorded session: BIDS eye tracking (BEP020, part of BIDS 1.11) or plain per-stream CSV.

BIDS layout (one session; run it again with the same OUT to add sessions to the dataset):

    OUT/dataset_description.json, README, participants.tsv (+ .json)
    OUT/sub-<P>/ses-<S>/beh/
        sub-<P>_ses-<S>_task-<T>_recording-eye1_physio.tsv.gz + .json      left eye
        sub-<P>_ses-<S>_task-<T>_recording-eye2_physio.tsv.gz + .json      right eye
        ..._recording-eye<k>_physioevents.tsv.gz + .json                   fixations, saccades, blinks, messages
        sub-<P>_ses-<S>_task-<T>_events.tsv + .json                        trials / session events (onset from 0)
        sub-<P>_ses-<S>_task-<T>_beh.tsv + .json                           the trials' self-reports

Physio files have no header line (their columns are in the sidecar's `Columns`): `timestamp` (LSL
seconds of the recording PC), `x_coordinate`/`y_coordinate` in screen pixels from the top-left corner
(`SampleCoordinateSystem: gaze-on-screen`), `pupil_size` (diameter, mm) and the validity flags. Time
zero of the events files is the first gaze sample (`StartTime` 0). Eye events are detected with
`eyemotion.inference.eyesignal.process_recording` (binocular, so both eyes get the same events);
markers are exported as `message` rows. Participant and session labels keep only letters and digits,
as BIDS labels must.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion import UserError, __version__
from eyemotion.config import Config
from eyemotion.consent import check_exportable
from eyemotion.session import Session, SessionError

log = logging.getLogger(__name__)

BIDS_VERSION = "1.11.0"
EYES = (("eye1", "left"), ("eye2", "right"))
EVENT_NAMES = {1: "fixation", 2: "saccade", 3: "blink"}


class ExportError(UserError):
    """An export that cannot be written."""


def bids_label(text: str) -> str:
    label = re.sub(r"[^A-Za-z0-9]", "", str(text))
    if not label:
        raise ExportError(f"{text!r} gives an empty BIDS label; use letters or digits in the participant/session id")
    return label


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return "n/a" if not np.isfinite(value) else repr(float(value))
    return str(value).replace("\t", " ").replace("\n", " ")


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _write_tsv(path: Path, rows: Iterable[Iterable[Any]], header: list[str] | None = None) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:  # type: ignore[operator]
        if header:
            f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(_fmt(v) for v in row) + "\n")
    return path


def _eye_events(session: Session, config: Config) -> tuple[list[tuple[float, float, str]], str]:
    """(onset, duration, kind) of fixations/saccades/blinks, and how they were found."""
    gaze = session.stream("Tobii_gaze")
    try:
        from eyemotion.inference.eyesignal.processor import process_recording

        from eyemotion.streams import GAZE_CLEAN
    except ImportError:
        return [], "eye events not available (eyemotion.inference.eyesignal missing): messages only"
    rate = gaze.nominal_srate or gaze.effective_srate
    out = process_recording(gaze.time_stamps, gaze.data, rate, config.eyesignal, config.screen)
    codes = out.samples[:, GAZE_CLEAN.index("event")].astype(int)
    if not len(codes):
        return [], "no gaze samples"
    cuts = np.flatnonzero(np.diff(codes)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(codes)]
    t = out.timestamps
    period = 1.0 / rate
    events = [(float(t[a]), float(t[b - 1] - t[a] + period), EVENT_NAMES[int(codes[a])])
              for a, b in zip(starts, ends) if int(codes[a]) in EVENT_NAMES]
    return events, "eyemotion.inference.eyesignal (I-VT with blink detection), binocular"


def export_bids(source: str | Path, out: str | Path, config: Config, *, task: str = "emotion",
                overwrite: bool = False, participant: str | None = None, session_id: str | None = None) -> list[Path]:
    """Write one session into the BIDS dataset `out`; return the files written. `participant`/`session_id` name
    a bare .xdf that has no session.json beside it (and override the folder's own)."""
    session = Session.load(source)
    check_exportable(session.path, session.meta)  # a participant who withdrew consent is not exported
    if "Tobii_gaze" not in session.streams:
        raise ExportError(f"{source} has no Tobii_gaze stream (it has: {', '.join(session.streams) or 'none'}): "
                          "nothing to export as BIDS eye tracking")
    meta = session.meta
    if not (participant or meta.get("participant")) or not (session_id or meta.get("session_id")):
        raise ExportError(f"{source} has no session.json to name its participant and session; pass "
                          "--participant P001 --session S01")
    sub = bids_label(participant or meta["participant"])
    ses = bids_label(session_id or meta["session_id"])
    task = bids_label(task)
    root = Path(out)
    beh = root / f"sub-{sub}" / f"ses-{ses}" / "beh"
    prefix = f"sub-{sub}_ses-{ses}_task-{task}"
    if beh.exists() and any(beh.glob(f"{prefix}_*")) and not overwrite:
        raise ExportError(f"{beh} already holds this session's export; pass --overwrite or another OUT")
    beh.mkdir(parents=True, exist_ok=True)
    written = _dataset_files(root, sub, meta)
    gaze = session.stream("Tobii_gaze")
    screen = {**config.screen.__dict__, **(meta.get("screen") or {})}
    t0 = float(gaze.time_stamps[0]) if len(gaze) else 0.0
    rate = gaze.nominal_srate or round(gaze.effective_srate, 3)
    device = next((d for d in meta.get("devices", []) if d.get("stream") == "Tobii_gaze"), {})
    acquisition = device.get("acquisition", {})
    eye_events, how = _eye_events(session, config)
    messages = [(m.time, m.event, json.dumps({"event": m.event, "source": m.source, **m.fields}, sort_keys=True))
                for m in session.markers.markers]
    for label, eye in EYES:
        cols = [f"{a}.position_on_display_area.gaze_point.{eye}_eye" for a in ("x", "y")]
        x = gaze.channel(cols[0]) * screen["width_px"]
        y = gaze.channel(cols[1]) * screen["height_px"]
        pupil = gaze.channel(f"diameter.pupil.{eye}_eye")
        valid = gaze.channel(f"valid.gaze_point.{eye}_eye")
        pvalid = gaze.channel(f"valid.pupil.{eye}_eye")
        rows = zip(gaze.time_stamps, x, y, pupil, valid.astype(int), pvalid.astype(int))
        base = beh / f"{prefix}_recording-{label}_physio"
        written.append(_write_tsv(base.with_suffix(".tsv.gz"), rows))
        written.append(_write_json(base.with_suffix(".json"), {
            "SamplingFrequency": rate,
            "StartTime": 0.0,  # the events files count from the first gaze sample
            "Columns": ["timestamp", "x_coordinate", "y_coordinate", "pupil_size", "gaze_valid", "pupil_valid"],
            "PhysioType": "eyetrack",
            "RecordedEye": eye,
            "SampleCoordinateSystem": "gaze-on-screen",
            "SampleCoordinateUnits": "pixel",
            "EnvironmentCoordinates": ["top", "left"],
            "Manufacturer": acquisition.get("manufacturer", "Tobii"),
            "ManufacturersModelName": acquisition.get("model", ""),
            "DeviceSerialNumber": acquisition.get("serial_number", device.get("source_id", "")),
            "SoftwareVersions": f"eyemotion {__version__}; " + "; ".join(
                f"{k} {v}" for k, v in (meta.get("software") or {}).items() if k != "platform"),
            "EyeTrackingMethod": "P-CR (Tobii Pro SDK through TittaLSL, or the eyemotion simulator)",
            "ScreenSize": [screen["width_mm"] / 1000, screen["height_mm"] / 1000],
            "ScreenResolution": [screen["width_px"], screen["height_px"]],
            "ScreenDistance": screen["distance_mm"] / 1000,
            "timestamp": {"Description": "LSL time of the sample (pylsl.local_clock of the recording PC)",
                          "Units": "s"},
            "x_coordinate": {"LongName": "Gaze position (x)", "Description": f"{eye} eye gaze on the screen, "
                             "from the left edge", "Units": "pixel"},
            "y_coordinate": {"LongName": "Gaze position (y)", "Description": f"{eye} eye gaze on the screen, "
                             "from the top edge", "Units": "pixel"},
            "pupil_size": {"Description": f"{eye} pupil diameter measured by the eye tracker", "Units": "mm"},
            "gaze_valid": {"Description": "1 if the gaze point is valid", "Levels": {"0": "invalid", "1": "valid"}},
            "pupil_valid": {"Description": "1 if the pupil diameter is valid", "Levels": {"0": "invalid", "1": "valid"}},
        }))
        rows_ev = sorted([(on, dur, kind, None) for on, dur, kind in eye_events]
                         + [(t, None, None, text) for t, _, text in messages], key=lambda r: r[0])
        ev = beh / f"{prefix}_recording-{label}_physioevents"
        written.append(_write_tsv(ev.with_suffix(".tsv.gz"), rows_ev))
        written.append(_write_json(ev.with_suffix(".json"), {
            "Columns": ["onset", "duration", "trial_type", "message"],
            "OnsetSource": "timestamp",
            "Description": f"Eye events ({how}) and eyemotion markers as messages",
            "onset": {"Description": "LSL time of the event (same clock as the physio timestamp)", "Units": "s"},
            "duration": {"Description": "Duration of the eye event", "Units": "s"},
            "trial_type": {"Description": "Eye event type", "Levels": {v: v for v in EVENT_NAMES.values()}},
            "message": {"Description": "An eyemotion marker (JSON) from the eyemotion_markers stream"},
        }))
    written += _events_and_beh(beh, prefix, session, t0, screen)
    log.info("BIDS export of %s: %d files in %s", session.path, len(written), root)
    note_export(session, "bids", root)
    return written


def note_export(session: Session, kind: str, out: Path) -> None:
    """Record in session.json where and when the session was exported (`eyemotion sessions` lists it)."""
    if (session.path / "session.json").exists():
        from datetime import UTC, datetime

        from eyemotion.session import update_session_json

        update_session_json(session.path, exports={kind: {"to": str(Path(out).resolve()),
                                                          "at": datetime.now(UTC).isoformat()}})


def _dataset_files(root: Path, sub: str, meta: dict[str, Any]) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = []
    desc = root / "dataset_description.json"
    if not desc.exists():
        files.append(_write_json(desc, {
            "Name": "eyemotion emotion-elicitation sessions", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw",
            "GeneratedBy": [{"Name": "eyemotion", "Version": __version__,
                             "Description": "eyemotion export --bids (from LabRecorder XDF)"}]}))
    readme = root / "README"
    if not readme.exists():
        readme.write_text("Emotion-elicitation sessions recorded with eyemotion (LSL + LabRecorder) and exported "
                          "to BIDS eye tracking (BEP020).\n", encoding="utf-8")
        files.append(readme)
    participants = root / "participants.tsv"
    known = []
    if participants.exists():
        known = [line.split("\t")[0] for line in participants.read_text(encoding="utf-8").splitlines()[1:]]
    if f"sub-{sub}" not in known:
        known.append(f"sub-{sub}")
        _write_tsv(participants, [[p] for p in sorted(known)], header=["participant_id"])
        files.append(participants)
        files.append(_write_json(root / "participants.json", {
            "participant_id": {"Description": "pseudonymous participant id (no real names are ever recorded)"}}))
    return files


def _events_and_beh(beh: Path, prefix: str, session: Session, t0: float, screen: dict[str, Any]) -> list[Path]:
    """Session events (markers, onset from the first gaze sample) and the trials' self-reports."""
    rows = [(m.time - t0, 0.0, m.event, json.dumps(m.fields, sort_keys=True)) for m in session.markers.markers]
    files = [_write_tsv(beh / f"{prefix}_events.tsv", rows, header=["onset", "duration", "trial_type", "value"]),
             _write_json(beh / f"{prefix}_events.json", {
                 "onset": {"Description": "seconds from the first gaze sample", "Units": "s"},
                 "trial_type": {"Description": "eyemotion marker event (clip_onset, rating_response, ...)"},
                 "value": {"Description": "the marker's other fields (JSON)"},
                 "StimulusPresentation": {
                     "ScreenDistance": screen["distance_mm"] / 1000, "ScreenOrigin": ["top", "left"],
                     "ScreenResolution": [screen["width_px"], screen["height_px"]],
                     "ScreenSize": [screen["width_mm"] / 1000, screen["height_mm"] / 1000],
                     "SoftwareName": "PsychoPy"}})]
    if session.trials:
        columns = list(session.trials[0])
        files.append(_write_tsv(beh / f"{prefix}_beh.tsv", ([t.get(c) for c in columns] for t in session.trials),
                                header=columns))
        files.append(_write_json(beh / f"{prefix}_beh.json", {
            c: {"Description": f"trials.csv column {c!r} of the eyemotion runner (self-reports: SAM ratings "
                "and the chosen emotion)"} for c in columns}))
    return files


def export_csv(source: str | Path, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Plain CSV, one file per stream (`timestamp` + channel labels), markers decoded, trials copied."""
    from tqdm import tqdm

    session = Session.load(source)
    check_exportable(session.path, session.meta)
    root = Path(out)
    if root.exists() and any(root.glob("*.csv")) and not overwrite:
        raise ExportError(f"{root} already holds CSV files; pass --overwrite or another OUT")
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for key, stream in tqdm(session.streams.items(), desc="export csv", unit="stream"):
        path = root / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".csv")
        if key == "eyemotion_markers":
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["timestamp", "event", "source", "fields"])
                for m in session.markers.markers:
                    w.writerow([repr(m.time), m.event, m.source, json.dumps(m.fields, sort_keys=True)])
        elif stream.channel_format == "string":
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["timestamp", *stream.labels])
                w.writerows([repr(float(t)), *row] for t, row in zip(stream.time_stamps, stream.data))
        else:
            table = np.column_stack([stream.time_stamps, stream.data.astype(np.float64)])
            np.savetxt(path, table, delimiter=",", header=",".join(["timestamp", *stream.labels]), comments="",
                       fmt=["%.6f"] + ["%.9g"] * stream.data.shape[1])
        written.append(path)
    if session.trials:
        path = root / "trials.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(session.trials[0]))
            w.writeheader()
            w.writerows(session.trials)
        written.append(path)
    if not written:
        raise SessionError(f"{session.path} has no stream to export")
    note_export(session, "csv", root)
    return written
