"""`eyemotion features SESSION`: write the feature tables of a recorded session (CSV, one row per window).

Reads the session with `eyemotion.session.Session.load` and runs the same streaming extractors as the
live pipeline, chunk by chunk, into `SESSION/features/`:

    gaze_statistics.csv   time, valid, the 103 gaze statistics (from eyemotion_gaze)
    audio_egemaps.csv     time, valid, speech, voiced_ratio, level_dbfs, the 88 eGeMAPS functionals
    face.csv              time, the eyemotion_face channels (recorded, or computed from camera.mkv)
    features.json         what was written, from which streams, with which settings
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion import UserError, __version__
from eyemotion.config import Config

log = logging.getLogger(__name__)

CHUNK_S = 10.0  # recordings are fed to the streaming extractors in chunks of this length


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "features", help="write the feature tables of a recorded session",
        description="Compute the feature tables of a recorded session with the live pipeline's extractors: "
                    "the 103 windowed gaze statistics (from eyemotion_gaze), eGeMAPS audio functionals with "
                    "voice activity (from eyemotion_audio), and the face table (the recorded eyemotion_face, "
                    "or the face pipeline run on camera.mkv). Tables go to SESSION/features/ as CSV; the "
                    "recording itself is never changed. Window lengths come from the [features] config.",
    )
    p.add_argument("session", type=Path, metavar="SESSION", help="session folder (sessions/<participant>/<id>/)")
    p.add_argument("--out", type=Path, help="output folder (default: SESSION/features)")
    p.add_argument("--no-video", action="store_true",
                   help="do not run the face pipeline on camera.mkv when no eyemotion_face was recorded")
    p.set_defaults(func=run_features)


def _chunks(n: int, rate: float) -> Iterator[slice]:
    step = max(1, int(CHUNK_S * rate))
    for i in range(0, n, step):
        yield slice(i, min(n, i + step))


def write_table(path: Path, columns: list[str], data: np.ndarray) -> None:
    """A CSV with a header row; NaN written as `nan`."""
    tmp = path.with_suffix(".tmp")
    np.savetxt(tmp, data, delimiter=",", header=",".join(columns), comments="", fmt="%.9g")
    tmp.replace(path)


def gaze_table(stream: Any, config: Config, progress: Any) -> tuple[list[str], np.ndarray]:
    from eyemotion.streams import GAZE_CLEAN

    from .gaze_stats import FEATURE_NAMES, GazeStatistics, GazeStatsSettings
    from .windows import FeatureWindows

    rate = stream.nominal_srate or stream.effective_srate
    labels = stream.labels or GAZE_CLEAN.labels
    extractor = GazeStatistics(GazeStatsSettings.from_config(config.features, rate), labels=list(labels))
    parts = []
    for s in progress(list(_chunks(len(stream), rate)), desc="gaze statistics", unit="chunk"):
        parts.append(extractor.push(stream.time_stamps[s], np.asarray(stream.data[s], float)))
    return FeatureWindows.concat(parts, FEATURE_NAMES).table()


def audio_table(stream: Any, config: Config, progress: Any) -> tuple[list[str], np.ndarray]:
    from .audio import SIDE_COLUMNS, AudioSettings, EgemapsFeatures
    from .windows import FeatureWindows

    rate = stream.nominal_srate or stream.effective_srate
    if abs(rate - 16000) > 1:
        raise UserError(f"eyemotion_audio was recorded at {rate:g} Hz, but eGeMAPS here expects 16 kHz; "
                        "record with [microphone] samplerate = 16000")
    extractor = EgemapsFeatures(AudioSettings.from_config(config.features))
    parts = []
    for s in progress(list(_chunks(len(stream), rate)), desc="eGeMAPS", unit="chunk"):
        parts.append(extractor.push(stream.time_stamps[s], np.asarray(stream.data[s], float)))
    return FeatureWindows.concat(parts, extractor.names, SIDE_COLUMNS).table()


def face_table_from_video(segments: list, config: Config, progress: Any) -> tuple[list[str], np.ndarray]:
    """Run the face pipeline on the camera video segments at `[face] rate_hz`, on the frames that were
    recorded (frame i of a segment is at the stamp of its eyemotion_camera sample with value i)."""
    import cv2

    from eyemotion.streams import FACE

    from .face import FacePipeline, RateGate

    pipeline, gate = FacePipeline(config.face), RateGate(config.face.rate_hz)
    rows = []
    for segment in segments:
        capture = cv2.VideoCapture(str(segment.path))
        if not capture.isOpened():
            raise UserError(f"{segment.path} cannot be opened by OpenCV; check the file or pass --no-video")
        stamp_of = dict(zip(segment.frame_index.tolist(), segment.stamps.tolist()))
        try:
            for index in progress(range(int(segment.frame_index.max()) + 1), desc=segment.path.name, unit="frame"):
                t = stamp_of.get(index)
                if t is None or not gate(t):
                    if not capture.grab():
                        break
                    continue
                ok, frame = capture.read()
                if not ok:  # a segment cut short by a killed camera node ends early
                    break
                rows.append([t, *pipeline(frame).sample()])
        finally:
            capture.release()
    return ["time", *FACE.labels], np.array(rows).reshape(-1, 1 + FACE.channel_count)


def run_features(args: argparse.Namespace, config: Config) -> int:
    from tqdm import tqdm

    from eyemotion.outputs import check_output_folder, staged_output
    from eyemotion.session import Session
    from eyemotion.streams import AUDIO, FACE, GAZE_CLEAN

    session = Session.load(args.session)
    out = check_output_folder(args.out or session.path / "features")
    with staged_output(out) as stage:  # atomic: the tables appear complete, or not at all
        progress = lambda items, **kw: tqdm(items, leave=False, **kw)
        written: dict[str, dict[str, Any]] = {}

        def save(name: str, source: str, table: tuple[list[str], np.ndarray]) -> None:
            columns, data = table
            write_table(stage / name, columns, data)
            written[name] = {"source": source, "rows": len(data), "columns": len(columns)}
            log.info("wrote %s (%d rows)", out / name, len(data))

        if GAZE_CLEAN.name in session.streams:
            save("gaze_statistics.csv", GAZE_CLEAN.name, gaze_table(session.streams[GAZE_CLEAN.name], config, progress))
        else:
            log.warning("%s has no %s stream: no gaze statistics (run the eye-signal node when recording)",
                        session.path, GAZE_CLEAN.name)
        if AUDIO.name in session.streams:
            save("audio_egemaps.csv", AUDIO.name, audio_table(session.streams[AUDIO.name], config, progress))
        if FACE.name in session.streams:
            face = session.streams[FACE.name]
            save("face.csv", FACE.name, (["time", *FACE.labels], np.column_stack([face.time_stamps, face.data])))
        elif not args.no_video and (segments := session.camera_segments):
            save("face.csv", ", ".join(s.path.name for s in segments), face_table_from_video(segments, config, progress))
        if not written:
            raise UserError(f"{session.path} has none of {GAZE_CLEAN.name}, {AUDIO.name}, {FACE.name} or camera.mkv "
                            "with eyemotion_camera: nothing to compute; record those streams")
        summary = {"eyemotion_version": __version__, "session": str(session.path), "tables": written,
                   "settings": {"features": dataclasses.asdict(config.features), "face": dataclasses.asdict(config.face)}}
        (stage / "features.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {', '.join(written)} to {out}")
    return 0
