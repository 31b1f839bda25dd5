"""Export a recorded session: BIDS eye tracking (BEP020, part of BIDS 1.11) or plain per-stream CSV.

BIDS layout (one session; run it again with the same OUT to add sessions to the dataset):

    OUT/dataset_description.json, README, participants.tsv (+ .json)
    OUT/sub-<P>/ses-<S>/beh/
        sub-<P>_ses-<S>_task-<T>_recording-eye1_physio.tsv.gz + .json      left eye
        sub-<P>_ses-<S>_task-<T>_recording-eye2_physio.tsv.gz + .json      right eye
        ..._recording-eye<k>_physioevents.tsv.gz + .json                   fixations, saccades, blinks, messages
        sub-<P>_ses-<S>_task-<T>_events.tsv + .json                        trials / session events (onset from 0)
        sub-<P>_ses-<S>_task-<T>_beh.tsv + .json                           the trials' self-reports
    OUT/derivatives/eyemotion/sub-<P>/ses-<S>/beh/
        sub-<P>_ses-<S>_task-<T>_desc-predictions_beh.tsv + .json          the live eyemotion_emotion predictions

Physio files have no header line (their columns are in the sidecar's `Columns`): `timestamp` (LSL
seconds of the recording PC), `x_coordinate`/`y_coordinate` in screen pixels from the top-left corner
(`SampleCoordinateSystem: gaze-on-screen`), `pupil_size` (diameter, mm) and the validity flags. Time
zero of the events files is the first gaze sample (`StartTime` 0). Eye events are detected with
`eyemotion.inference.eyesignal.process_recording` (binocular, so both eyes get the same events);
markers are exported as `message` rows; a clip's `clip_onset` event lasts until its `clip_offset`.
Participant and session labels keep only letters and digits, as BIDS labels must.

Every export is atomic (`eyemotion.outputs.staged_output`): written to a staging folder and moved into place
when complete, so a failure (full disk, read-only target) leaves nothing behind and a retry succeeds. An
existing dataset is merged into: `participants.tsv`/`.json` keep their columns and rows (a new participant
gets `n/a` in the lab's columns), `dataset_description.json` and `README` are kept. Gzip files are
reproducible (no time stamp, no file name). A session with simulated sources (`session.json`
`simulated_sources`) says so in `Manufacturer`/`ManufacturersModelName`/`DeviceSerialNumber`, and a CSV
export in `NOTES.txt`. The dataset passes the official `bids-validator-deno` without errors (tests/test_export.py).
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
from eyemotion.outputs import check_output_folder, staged_output
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
    """A TSV; `.gz` ones reproducible (gzip header without time stamp and file name, as BIDS asks)."""
    lines = ([("\t".join(header) + "\n")] if header else []) + ["\t".join(_fmt(v) for v in row) + "\n" for row in rows]
    data = "".join(lines).encode("utf-8")
    with open(path, "wb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                f.write(data)
        else:
            raw.write(data)
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
    """Write one session into the BIDS dataset `out` (atomically, merging into an existing dataset); return
    the files written, as their final paths. `participant`/`session_id` name a bare .xdf that has no
    session.json beside it (and override the folder's own)."""
    from eyemotion.report import simulated_sources

    root = check_output_folder(out)
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
    rel = Path(f"sub-{sub}") / f"ses-{ses}" / "beh"
    prefix = f"sub-{sub}_ses-{ses}_task-{task}"
    if (root / rel).is_dir() and any((root / rel).glob(f"{prefix}_*")) and not overwrite:
        raise ExportError(f"{root / rel} already holds this session's export; pass --overwrite or another OUT")
    simulated = simulated_sources(session)
    with staged_output(root) as stage:
        beh = stage / rel
        beh.mkdir(parents=True)
        written = _dataset_files(stage, root, sub, meta, config, simulated)
        written += _physio(beh, prefix, session, config, task, simulated)
        gaze = session.stream("Tobii_gaze")
        t0 = float(gaze.time_stamps[0]) if len(gaze) else 0.0
        screen = {**config.screen.__dict__, **(meta.get("screen") or {})}
        written += _events_and_beh(beh, prefix, session, t0, screen, _task_fields(task, meta, config))
        written += _predictions(stage, rel, prefix, session, t0, task)
        final = [root / p.relative_to(stage) for p in written]
    log.info("BIDS export of %s: %d files in %s", session.path, len(final), root)
    note_export(session, "bids", root)
    return final


def note_export(session: Session, kind: str, out: Path) -> None:
    """Record in session.json where and when the session was exported (`eyemotion sessions` lists it); a
    read-only session folder only gets a warning (the export itself is complete)."""
    if (session.path / "session.json").exists():
        from datetime import UTC, datetime

        from eyemotion.session import update_session_json

        try:
            update_session_json(session.path, exports={kind: {"to": str(Path(out).resolve()),
                                                              "at": datetime.now(UTC).isoformat()}})
        except OSError as exc:
            log.warning("the export is complete, but %s could not note it (%s)", session.path / "session.json",
                        exc.strerror or exc)


def _task_fields(task: str, meta: dict[str, Any], config: Config) -> dict[str, Any]:
    """TaskName (RECOMMENDED in every task sidecar), the protocol's instructions and the institution."""
    protocol = meta.get("protocol") if isinstance(meta.get("protocol"), dict) else {}
    settings = (protocol.get("settings") or {}).get("protocol") or {}
    fields: dict[str, Any] = {
        "TaskName": task,
        "TaskDescription": f"Emotion elicitation: film clips, then self-reports (SAM valence/arousal, felt emotion); "
                           f"protocol {protocol.get('name') or meta.get('protocol') or 'unknown'}",
    }
    if settings.get("instructions"):
        fields["Instructions"] = settings["instructions"]
    for key, value in (("InstitutionName", config.export.institution_name),
                       ("InstitutionAddress", config.export.institution_address),
                       ("InstitutionalDepartmentName", config.export.institution_department)):
        if value:
            fields[key] = value
    return fields


def _calibration_fields(meta: dict[str, Any], eye: str) -> dict[str, Any]:
    """session.json's calibration/validation results as the optional BEP020 sidecar fields."""
    calibration = meta.get("calibration") or {}
    accepted = calibration.get("accepted") or {}
    out: dict[str, Any] = {}
    if calibration.get("attempts"):
        out["CalibrationCount"] = len(calibration["attempts"])
    if accepted.get("calibration_points"):
        out["CalibrationType"] = f"{accepted['calibration_points']}-point ({accepted.get('method', 'unknown')})"
    accuracy = accepted.get(f"accuracy_{eye}_deg", accepted.get("accuracy_deg"))
    if isinstance(accuracy, (int, float)) and np.isfinite(accuracy):
        out["AverageCalibrationError"] = float(accuracy)  # validation accuracy of the accepted calibration
    return out


def _device_fields(meta: dict[str, Any], simulated: list[str]) -> dict[str, Any]:
    device = next((d for d in meta.get("devices", []) if d.get("stream") == "Tobii_gaze"), {})
    acquisition = device.get("acquisition", {})
    manufacturer = acquisition.get("manufacturer", "Tobii")
    model = acquisition.get("model", "")
    serial = acquisition.get("serial_number", device.get("source_id", ""))
    if "tracker" in simulated:
        return {"Manufacturer": f"simulated ({manufacturer} model, eyemotion simulator)",
                "ManufacturersModelName": f"simulated {model}".strip(),
                "DeviceSerialNumber": f"simulated {serial}".strip()}
    return {"Manufacturer": manufacturer, "ManufacturersModelName": model, "DeviceSerialNumber": serial}


def _physio(beh: Path, prefix: str, session: Session, config: Config, task: str,
            simulated: list[str]) -> list[Path]:
    """Both eyes' physio and physioevents files with their sidecars."""
    meta = session.meta
    gaze = session.stream("Tobii_gaze")
    screen = {**config.screen.__dict__, **(meta.get("screen") or {})}
    rate = gaze.nominal_srate or round(gaze.effective_srate, 3)
    eye_events, how = _eye_events(session, config)
    messages = [(m.time, m.event, json.dumps({"event": m.event, "source": m.source, **m.fields}, sort_keys=True))
                for m in session.markers.markers]
    written = []
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
            "TaskName": task,
            "SamplingFrequency": rate,
            "StartTime": 0.0,  # the events files count from the first gaze sample
            "Columns": ["timestamp", "x_coordinate", "y_coordinate", "pupil_size", "gaze_valid", "pupil_valid"],
            "PhysioType": "eyetrack",
            "RecordedEye": eye,
            "SampleCoordinateSystem": "gaze-on-screen",
            **_device_fields(meta, simulated),
            "SoftwareVersions": f"eyemotion {__version__}; " + "; ".join(
                f"{k} {v}" for k, v in (meta.get("software") or {}).items() if k != "platform"),
            "EyeTrackingMethod": ("simulated (eyemotion simulator)" if "tracker" in simulated
                                  else "P-CR (Tobii Pro SDK through TittaLSL)"),
            "ScreenSize": [screen["width_mm"] / 1000, screen["height_mm"] / 1000],
            "ScreenResolution": [screen["width_px"], screen["height_px"]],
            "ScreenDistance": screen["distance_mm"] / 1000,
            **_calibration_fields(meta, eye),
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
            "TaskName": task,
            "Columns": ["onset", "duration", "trial_type", "message"],
            "OnsetSource": "timestamp",
            "Description": f"Eye events ({how}) and eyemotion markers as messages",
            "onset": {"Description": "LSL time of the event (same clock as the physio timestamp)", "Units": "s"},
            "duration": {"Description": "Duration of the eye event", "Units": "s"},
            "trial_type": {"Description": "Eye event type", "Levels": {v: v for v in EVENT_NAMES.values()}},
            "message": {"Description": "An eyemotion marker (JSON) from the eyemotion_markers stream"},
        }))
    return written


def _readme(simulated: list[str]) -> str:
    note = (f"\nSIMULATED DATA: in at least one session the {', '.join(simulated)} "
            "was simulated (see the sidecars' Manufacturer and each session's session.json).\n" if simulated else "")
    return f"""# eyemotion emotion-elicitation sessions (BIDS eye tracking, BEP020)

Participants watched short film clips meant to elicit one of seven emotions (neutral, happiness, sadness,
anger, disgust, fear, surprise) and rated each clip on the Self-Assessment Manikin (valence, arousal) and by
the emotion they felt. Gaze and pupil were recorded with a Tobii Pro eye tracker through TittaLSL and Lab
Streaming Layer (LabRecorder, XDF), together with a webcam and a microphone (not part of this export).
{note}
## Layout

- `sub-<P>/ses-<S>/beh/*_recording-eye1_physio.tsv.gz` / `eye2`: left / right eye samples (columns in the
  JSON sidecar: LSL time stamp, gaze x/y in screen pixels from the top-left corner, pupil diameter in mm,
  validity flags); `*_physioevents.tsv.gz`: fixations, saccades and blinks (eyemotion's I-VT with blink
  detection) and the session's markers as messages.
- `*_events.tsv`: the session's markers (clip onsets with the clip's real duration, ratings, calibration),
  onsets in seconds from the first gaze sample.
- `*_beh.tsv`: the trial table with the self-reports.
- `derivatives/eyemotion/`: the emotion predictions made live during the session (eyemotion_emotion stream).

Exported by eyemotion {__version__} (`eyemotion export SESSION --bids OUT`); running it again with the same
OUT adds further sessions to this dataset.
"""


def _dataset_files(stage: Path, root: Path, sub: str, meta: dict[str, Any], config: Config,
                   simulated: list[str]) -> list[Path]:
    """dataset_description.json and README (kept when the dataset has them), participants.tsv/.json (merged)."""
    files = []
    desc = root / "dataset_description.json"
    if desc.exists():
        try:
            json.loads(desc.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            if desc.stat().st_size:
                raise ExportError(f"{desc} is not valid JSON; fix or remove it, then export again") from None
            desc = None  # an empty file (left by an older, non-atomic export): rewrite it
    if desc is None or not desc.exists():
        description: dict[str, Any] = {
            "Name": "eyemotion emotion-elicitation sessions", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw"}
        if config.export.authors:
            description["Authors"] = list(config.export.authors)
        if config.export.license:
            description["License"] = config.export.license
        description["GeneratedBy"] = [{"Name": "eyemotion", "Version": __version__,
                                       "Description": "eyemotion export --bids (from LabRecorder XDF)"}]
        files.append(_write_json(stage / "dataset_description.json", description))
    if not (root / "README").exists() or not (root / "README").stat().st_size:
        (stage / "README").write_text(_readme(simulated), encoding="utf-8")
        files.append(stage / "README")
    files += _merge_participants(stage, root, f"sub-{sub}")
    return files


def _merge_participants(stage: Path, root: Path, participant: str) -> list[Path]:
    """participants.tsv/.json with the lab's columns and rows kept; a new participant gets n/a in them."""
    header, rows = ["participant_id"], []
    existing = root / "participants.tsv"
    if existing.exists() and existing.stat().st_size:
        with open(existing, newline="", encoding="utf-8-sig") as f:
            table = [line for line in csv.reader(f, delimiter="\t") if line]
        header, rows = table[0], table[1:]
        if "participant_id" not in header:
            raise ExportError(f"{existing} has no participant_id column; add it (BIDS requires it) or remove the file")
    files = []
    key = header.index("participant_id")
    if participant not in [r[key] if key < len(r) else "" for r in rows]:
        rows.append(["n/a"] * len(header))
        rows[-1][key] = participant
        files.append(_write_tsv(stage / "participants.tsv", rows, header=header))
    sidecar_path = root / "participants.json"
    sidecar = json.loads(sidecar_path.read_text(encoding="utf-8")) if sidecar_path.exists() and \
        sidecar_path.stat().st_size else {}
    if "participant_id" not in sidecar:
        sidecar = {"participant_id": {"Description": "pseudonymous participant id (no real names are ever "
                                                     "recorded)"}, **sidecar}
        files.append(_write_json(stage / "participants.json", sidecar))
    return files


def _clip_durations(session: Session) -> dict[int, float]:
    """Marker index of each clip_onset -> seconds until its clip_offset (same trial), as played."""
    markers = session.markers.markers
    out = {}
    for i, m in enumerate(markers):
        if m.event != "clip_onset":
            continue
        end = next((n for n in markers[i + 1:] if n.event == "clip_offset"
                    and n.fields.get("trial") == m.fields.get("trial")), None)
        if end is not None:
            out[i] = end.time - m.time
    return out


def _events_and_beh(beh: Path, prefix: str, session: Session, t0: float, screen: dict[str, Any],
                    task_fields: dict[str, Any]) -> list[Path]:
    """Session events (markers, onset from the first gaze sample; a clip lasts until its clip_offset) and the
    trials' self-reports."""
    durations = _clip_durations(session)
    rows = [(m.time - t0, durations.get(i, 0.0), m.event, json.dumps(m.fields, sort_keys=True))
            for i, m in enumerate(session.markers.markers)]
    files = [_write_tsv(beh / f"{prefix}_events.tsv", rows, header=["onset", "duration", "trial_type", "value"]),
             _write_json(beh / f"{prefix}_events.json", {
                 **task_fields,
                 "onset": {"Description": "seconds from the first gaze sample", "Units": "s"},
                 "duration": {"Description": "clip_onset: seconds until the clip's clip_offset (as played); "
                              "other markers: 0", "Units": "s"},
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
        files.append(_write_json(beh / f"{prefix}_beh.json", {**task_fields, **{
            c: {"Description": f"trials.csv column {c!r} of the eyemotion runner (self-reports: SAM ratings "
                "and the chosen emotion)"} for c in columns}}))
    return files


def _predictions(stage: Path, rel: Path, prefix: str, session: Session, t0: float, task: str) -> list[Path]:
    """The live predictions (eyemotion_emotion) as a derivative dataset: derivatives/eyemotion/."""
    from eyemotion.streams import EMOTION

    stream = session.streams.get(EMOTION.name)
    if stream is None or not len(stream):
        return []
    root = stage / "derivatives" / "eyemotion"
    folder = root / rel
    folder.mkdir(parents=True)
    files = [_write_json(root / "dataset_description.json", {
        "Name": "eyemotion live emotion predictions", "BIDSVersion": BIDS_VERSION, "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "eyemotion", "Version": __version__,
                         "Description": "the live inference node's eyemotion_emotion stream, as recorded"}]})]
    columns = ["onset", *stream.labels]
    rows = ([t - t0, *row] for t, row in zip(stream.time_stamps, stream.data.astype(np.float64)))
    name = f"{prefix}_desc-predictions_beh"
    files.append(_write_tsv(folder / f"{name}.tsv", rows, header=columns))
    models = {k: v for k, v in (stream.info.get("desc") or [{}])[0].items() if k != "channels"} \
        if isinstance((stream.info.get("desc") or [None])[0], dict) else {}
    files.append(_write_json(folder / f"{name}.json", {
        "TaskName": task,
        "Description": "Emotion predicted live (EMERT and the crossmodal model, see the model cards); ER = emotion "
                       "recognition, FER = facial expression recognition. Models trained on simulated data say so "
                       "in their cards.",
        "onset": {"Description": "end of the prediction window, seconds from the first gaze sample", "Units": "s"},
        **{label: {"Description": f"eyemotion_emotion channel {label}"} for label in stream.labels},
        "StreamDescription": models,
    }))
    return files


def export_csv(source: str | Path, out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Plain CSV, one file per stream (`timestamp` + channel labels), markers decoded, trials copied; written
    atomically; `NOTES.txt` says which sources were simulated."""
    from tqdm import tqdm

    from eyemotion.report import simulated_sources

    root = check_output_folder(out)
    session = Session.load(source)
    check_exportable(session.path, session.meta)
    if root.exists() and any(root.glob("*.csv")) and not overwrite:
        raise ExportError(f"{root} already holds CSV files; pass --overwrite or another OUT")
    names = []
    with staged_output(root) as stage:
        for key, stream in tqdm(session.streams.items(), desc="export csv", unit="stream"):
            path = stage / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".csv")
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
            names.append(path.name)
        if not names:
            raise SessionError(f"{session.path} has no stream to export")
        if session.trials:
            columns = list(dict.fromkeys(c for t in session.trials for c in t))
            with open(stage / "trials.csv", "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                w.writerows(session.trials)
            names.append("trials.csv")
        simulated = simulated_sources(session)
        (stage / "NOTES.txt").write_text(
            f"Exported by eyemotion {__version__} from {session.path}.\n"
            + (f"SIMULATED SOURCES: {', '.join(simulated)} (not recorded from a real device).\n" if simulated
               else "Simulated sources: none (every source was a real device).\n"), encoding="utf-8")
        names.append("NOTES.txt")
    note_export(session, "csv", root)
    return [root / n for n in names]
