"""`eyemotion import-foreign`: gaze recorded by other labs' tools -> a normal eyemotion session folder.

A foreign recording (an XDF file from another LSL app, or a CSV/TSV table exported by another tool) is
mapped channel by channel onto the `Tobii_gaze` contract with a mapping declared in TOML
(`acquisition/foreign_mappings.toml` holds the ready-made ones: Tobii consumer x/y streams, Tobii Pro SDK
relays, TittaLSL-labelled layouts, the Pupil Labs LSL relay and exports, Tobii Pro Lab TSV). Irregular
streams are resampled to a regular grid by linear interpolation between neighbouring samples that are at
most `MAX_GAP_S` apart (longer holes stay invalid: the eye-signal processor then classifies them as loss or
blink, 002_cbeb04dbce786b8c.txt Sec. III-A-3). The import writes

    <sessions>/<participant>/<session-id>/
        session.json   imported = {source, sha256, format, stream, mapping, rate_hz, resampled_from, missing,
                       cannot_run, skipped}; simulated_sources = []
        recording.xdf  Tobii_gaze (the mapped, regular samples), eyemotion_gaze + eyemotion_eye_events
                       (the eye-signal processor run offline, as the live node would have), eyemotion_markers
                       (the foreign string streams' samples as `foreign_marker` markers, when there are any)

so that `eyesignal process`, `features`, `export`, `report`, `replay` and `dashboard --replay` read it like
any session. Fields the foreign stream lacks are NaN with their validity 0, and the import states which
processing steps therefore cannot run.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion import UserError
from eyemotion.config import Config

log = logging.getLogger(__name__)

READY_MADE = Path(__file__).resolve().parent / "foreign_mappings.toml"
MAX_GAP_S = 0.075  # holes longer than this are not interpolated (the eye-signal gap-fill limit)
FIELDS = ("x", "y", "left_x", "left_y", "right_x", "right_y", "pupil", "left_pupil", "right_pupil", "valid",
          "left_valid", "right_valid", "confidence", "left_openness", "right_openness", "left_origin_z",
          "right_origin_z", "time")
KEYS = {"description", "format", "match_name", "match_type", "channel_count", "require", "channels", "xy_units",
        "flip_y", "time_scale", "valid_values", "min_confidence", "note"}


class ForeignError(UserError):
    """A foreign recording or mapping that cannot be imported."""


# -- mappings -----------------------------------------------------------------------------------------------
@dataclass
class Mapping:
    name: str
    description: str = ""
    format: str = "xdf"
    match_name: str = ""
    match_type: str = ""
    channel_count: int | None = None
    require: list[str] = field(default_factory=list)
    channels: dict[str, str | int] = field(default_factory=dict)
    xy_units: str = "normalized"
    flip_y: bool = False
    time_scale: float = 1.0
    valid_values: list[str] = field(default_factory=list)
    min_confidence: float = 0.6
    note: str = ""
    file: str = ""

    def matches(self, name: str, type_: str, labels: list[str]) -> bool:
        if self.match_name and not re.search(self.match_name, name):
            return False
        if self.match_type and not re.search(self.match_type, type_):
            return False
        if self.channel_count is not None and self.channel_count != len(labels):
            return False
        return all(_column(labels, r) is not None for r in self.require)


def load_mappings(path: str | Path = READY_MADE) -> dict[str, Mapping]:
    """The mappings of a TOML file (one table per mapping), checked; ForeignError naming the problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ForeignError(f"mapping file {path} not found; pass a .toml file or a ready-made name "
                           "(eyemotion import-foreign --list-mappings)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ForeignError(f"mapping file {path} is not valid TOML ({exc}); fix its syntax") from None
    out = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ForeignError(f"{path}: {name!r} must be a table ([{name}]) holding one mapping")
        unknown = set(table) - KEYS
        if unknown:
            raise ForeignError(f"{path}: [{name}] has unknown keys {sorted(unknown)}; known: {sorted(KEYS)}")
        channels = table.get("channels") or {}
        bad = set(channels) - set(FIELDS)
        if bad:
            raise ForeignError(f"{path}: [{name}.channels] has unknown fields {sorted(bad)}; fields: {', '.join(FIELDS)}")
        m = Mapping(name=name, file=str(path), **{k: v for k, v in table.items()})
        if m.format not in ("xdf", "csv"):
            raise ForeignError(f"{path}: [{name}] format must be \"xdf\" or \"csv\", not {m.format!r}")
        if m.xy_units not in ("normalized", "pixels"):
            raise ForeignError(f"{path}: [{name}] xy_units must be \"normalized\" or \"pixels\"")
        has_xy = {"x", "y"} <= set(channels) or {"left_x", "left_y"} <= set(channels) \
            or {"right_x", "right_y"} <= set(channels)
        if not has_xy:
            raise ForeignError(f"{path}: [{name}.channels] maps no gaze point: give x and y (or left_x/left_y, "
                               "right_x/right_y)")
        if m.format == "csv" and "time" not in channels:
            raise ForeignError(f"{path}: [{name}.channels] needs `time` (the timestamp column) for a CSV mapping")
        out[name] = m
    return out


def _column(labels: list[str], wanted: str | int) -> int | None:
    """Index of a channel named `wanted` (exactly, or with a unit suffix such as 'Gaze point X [px]'), or an
    index given as a number."""
    if isinstance(wanted, int):
        return wanted if 0 <= wanted < len(labels) else None
    for i, label in enumerate(labels):
        if label == wanted or label.startswith(wanted + " ["):
            return i
    return None


# -- reading ------------------------------------------------------------------------------------------------
@dataclass
class ForeignStream:
    name: str
    type: str
    labels: list[str]
    stamps: np.ndarray
    columns: list[np.ndarray]  # raw values per channel (float, or str arrays for text columns)
    nominal_rate: float
    source_id: str = ""


def read_xdf(path: Path) -> tuple[list[ForeignStream], list[tuple[str, np.ndarray, list[str]]], list[str]]:
    """(numeric streams, string streams as (name, stamps, texts), warnings) of a foreign XDF file; pyxdf does
    the clock synchronisation and handles clock resets."""
    import pyxdf

    from eyemotion.session import check_xdf_file

    check_xdf_file(path)
    try:
        raw, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=False)
    except Exception as exc:  # noqa: BLE001 - pyxdf raises plain Exceptions
        raise ForeignError(f"{path} cannot be read as XDF ({exc})") from None
    numeric, strings, warnings = [], [], []
    for s in raw:
        info = s["info"]
        name, type_ = info["name"][0], info.get("type", [""])[0]
        count = int(info["channel_count"][0])
        stamps = np.asarray(s["time_stamps"], float)
        labels = []
        try:
            labels = [ch["label"][0] for ch in info["desc"][0]["channels"][0]["channel"]]
        except (KeyError, IndexError, TypeError):
            pass
        labels = labels + [f"ch{i}" for i in range(len(labels), count)]
        if not len(stamps):
            warnings.append(f"stream {name!r} ({type_}) is empty: skipped")
            continue
        if info["channel_format"][0] == "string":
            strings.append((name, stamps, [str(v[0]) for v in s["time_series"]]))
            continue
        data = np.asarray(s["time_series"], float).reshape(len(stamps), count)
        numeric.append(ForeignStream(name, type_, labels, stamps, [data[:, i] for i in range(count)],
                                     float(info["nominal_srate"][0]), info.get("source_id", [""])[0]))
    return numeric, strings, warnings


def read_table(path: Path) -> ForeignStream:
    """A CSV or TSV gaze export (delimiter sniffed; a header row required)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ForeignError(f"{path} cannot be read as text ({exc}); pass a CSV/TSV export") from None
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ("," if "," in first else ";")
    rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    if len(rows) < 2:
        raise ForeignError(f"{path} has no data rows under its header")
    header, body = rows[0], [r for r in rows[1:] if r]
    columns = []
    for i in range(len(header)):
        values = [r[i] if i < len(r) else "" for r in body]
        try:
            columns.append(np.array([float(v) if v.strip() else math.nan for v in values]))
        except ValueError:
            columns.append(np.array(values, dtype=object))
    return ForeignStream(path.stem, "table", header, np.zeros(0), columns, 0.0)


# -- mapping onto Tobii_gaze --------------------------------------------------------------------------------
@dataclass
class Mapped:
    stamps: np.ndarray  # regular grid
    samples: np.ndarray  # (n, 37) Tobii_gaze
    rate: float
    resampled_from: str
    missing: list[str]
    cannot_run: list[str]


def _values(stream: ForeignStream, mapping: Mapping, fld: str) -> np.ndarray | None:
    spec = mapping.channels.get(fld)
    if spec is None:
        return None
    i = _column(stream.labels, spec)
    if i is None:
        raise ForeignError(f"mapping {mapping.name!r}: {fld} = {spec!r} is not a channel of {stream.name!r} "
                           f"(channels: {', '.join(stream.labels[:12])}); fix the mapping")
    return stream.columns[i]


def _numeric(values: np.ndarray, what: str) -> np.ndarray:
    if values.dtype == object:
        raise ForeignError(f"{what} holds text, not numbers; map a numeric column")
    return values.astype(float)


def _validity(values: np.ndarray, mapping: Mapping) -> np.ndarray:
    if values.dtype == object or mapping.valid_values:
        ok = {v.lower() for v in mapping.valid_values} or {"valid", "true", "1"}
        return np.array([str(v).strip().lower() in ok for v in values])
    return np.nan_to_num(values.astype(float)) != 0


def map_stream(stream: ForeignStream, mapping: Mapping, config: Config, *, rate: float | None = None) -> Mapped:
    """Map one foreign stream onto regular Tobii_gaze samples (see the module docstring)."""
    from eyemotion.streams import GAZE_RAW

    screen = config.screen
    stamps = stream.stamps
    if mapping.format == "csv":
        t = _numeric(_values(stream, mapping, "time"), "the time column")
        col = stream.labels[_column(stream.labels, mapping.channels["time"])]
        scale = mapping.time_scale
        unit = re.search(r"\[(ms|μs|us|s)\]", col)
        if unit:
            scale = {"ms": 1e-3, "μs": 1e-6, "us": 1e-6, "s": 1.0}[unit.group(1)]
        stamps = t * scale
    keep = np.isfinite(stamps)
    order = np.argsort(stamps[keep], kind="stable")
    stamps = stamps[keep][order]
    if len(stamps) < 2:
        raise ForeignError(f"{stream.name!r} has fewer than 2 timestamped samples: nothing to import")

    def get(fld: str) -> np.ndarray | None:
        v = _values(stream, mapping, fld)
        return None if v is None else v[keep][order]

    eyes: dict[str, dict[str, np.ndarray]] = {"left": {}, "right": {}}
    for eye in ("left", "right"):
        for key in ("x", "y", "pupil", "openness", "origin_z"):
            v = get(f"{eye}_{key}")
            if v is None and key in ("x", "y", "pupil"):
                v = get(key)  # one value for both eyes
            if v is not None:
                eyes[eye][key] = _numeric(v, f"{eye}_{key}")
        if "x" in eyes[eye]:
            x, y = eyes[eye]["x"], eyes[eye]["y"]
            if mapping.xy_units == "pixels":
                x, y = x / screen.width_px, y / screen.height_px
            if mapping.flip_y:
                y = 1.0 - y
            eyes[eye]["x"], eyes[eye]["y"] = x, y
        valid = get(f"{eye}_valid")
        if valid is None:
            valid = get("valid")
        if valid is not None:
            good = _validity(valid, mapping)
        elif (conf := get("confidence")) is not None:
            good = np.nan_to_num(_numeric(conf, "confidence")) >= mapping.min_confidence
        else:
            good = None
        if "x" in eyes[eye]:
            finite = np.isfinite(eyes[eye]["x"]) & np.isfinite(eyes[eye]["y"])
            eyes[eye]["valid"] = finite if good is None else finite & good
    have = {e: sorted(eyes[e]) for e in eyes}
    # one regular grid: the stream's own rate when regular, else the median interval's rate
    intervals = np.diff(stamps)
    median = float(np.median(intervals[intervals > 0])) if np.any(intervals > 0) else 0.0
    if median <= 0:
        raise ForeignError(f"{stream.name!r}: every sample has the same timestamp; cannot find its rate")
    own = stream.nominal_rate if stream.nominal_rate > 0 else 1.0 / median
    target = float(rate or (round(own) if own >= 20 else round(own, 3)))
    jitter = float(np.percentile(np.abs(intervals - 1.0 / own), 95)) if len(intervals) else 0.0
    regular = stream.nominal_rate > 0 and rate is None and jitter < 0.25 / own
    if regular:
        grid = stamps
        how = f"kept: regular {stream.nominal_rate:g} Hz"
    else:
        grid = stamps[0] + np.arange(math.floor((stamps[-1] - stamps[0]) * target) + 1) / target
        how = (f"resampled from {'irregular' if stream.nominal_rate <= 0 else f'{stream.nominal_rate:g} Hz'} "
               f"(median interval {median * 1e3:.2f} ms, 95th-percentile jitter {jitter * 1e3:.2f} ms) to "
               f"{target:g} Hz by linear interpolation; holes over {MAX_GAP_S * 1e3:.0f} ms left invalid")
    n = len(grid)
    out = np.full((n, GAZE_RAW.channel_count), np.nan)
    col = GAZE_RAW.index
    after = np.clip(np.searchsorted(stamps, grid, side="left"), 0, len(stamps) - 1)
    before = np.clip(after - 1, 0, len(stamps) - 1)
    exact = stamps[after] == grid
    before = np.where(exact, after, before)
    span = stamps[after] - stamps[before]
    w = np.where(span > 0, (grid - stamps[before]) / np.where(span > 0, span, 1), 0.0)
    near = (span <= MAX_GAP_S) & (grid >= stamps[0]) & (grid <= stamps[-1])

    def resample(v: np.ndarray) -> np.ndarray:
        r = v[before] * (1 - w) + v[after] * w
        return np.where(near, r, np.nan)

    for eye in ("left", "right"):
        e = eyes[eye]
        suffix = f"{eye}_eye"
        if "x" in e:
            ok = e["valid"][before] & e["valid"][after] & near
            x, y = resample(np.where(e["valid"], e["x"], np.nan)), resample(np.where(e["valid"], e["y"], np.nan))
            ok &= np.isfinite(x) & np.isfinite(y)
            out[:, col(f"x.position_on_display_area.gaze_point.{suffix}")] = np.where(ok, x, np.nan)
            out[:, col(f"y.position_on_display_area.gaze_point.{suffix}")] = np.where(ok, y, np.nan)
            out[:, col(f"valid.gaze_point.{suffix}")] = ok
            out[:, col(f"available.gaze_point.{suffix}")] = 1.0
            # the point on the screen in user coordinates (mm; origin: the screen centre, y up)
            out[:, col(f"x.position_in_user_coordinates.gaze_point.{suffix}")] = (x - 0.5) * screen.width_mm
            out[:, col(f"y.position_in_user_coordinates.gaze_point.{suffix}")] = (0.5 - y) * screen.height_mm
            out[:, col(f"z.position_in_user_coordinates.gaze_point.{suffix}")] = 0.0
        else:
            out[:, col(f"valid.gaze_point.{suffix}")] = 0.0
            out[:, col(f"available.gaze_point.{suffix}")] = 0.0
        for key, label, valid_label, avail_label in (
                ("pupil", f"diameter.pupil.{suffix}", f"valid.pupil.{suffix}", f"available.pupil.{suffix}"),
                ("openness", f"diameter.eye_openness.{suffix}", f"valid.eye_openness.{suffix}",
                 f"available.eye_openness.{suffix}"),
                ("origin_z", f"z.position_in_user_coordinates.gaze_origin.{suffix}", f"valid.gaze_origin.{suffix}",
                 f"available.gaze_origin.{suffix}")):
            if key in e and "valid" in e:
                v = resample(np.where(e["valid"], e[key], np.nan))
                good = np.isfinite(v) & (v > 0)
                out[:, col(label)] = np.where(good, v, np.nan)
                out[:, col(valid_label)] = good
                out[:, col(avail_label)] = 1.0
            else:
                out[:, col(valid_label)] = 0.0
                out[:, col(avail_label)] = 0.0
        if "origin_z" in e:  # an eye straight in front of its side of the screen centre
            out[:, col(f"x.position_in_user_coordinates.gaze_origin.{suffix}")] = -32.0 if eye == "left" else 32.0
            out[:, col(f"y.position_in_user_coordinates.gaze_origin.{suffix}")] = 0.0
    out[:, col("device_time_stamp")] = grid
    missing, cannot = _missing(have, mapping)
    return Mapped(grid, out, float(target if not regular else stream.nominal_rate), how, missing, cannot)


def _missing(have: dict[str, list[str]], mapping: Mapping) -> tuple[list[str], list[str]]:
    missing, cannot = [], []
    both = set(have["left"]) & set(have["right"])
    one = set(have["left"]) | set(have["right"])
    if "pupil" not in one:
        missing.append("pupil diameter")
        cannot += ["pupil features (diameter statistics, pupil fluctuation) are NaN",
                   "the report's baseline-corrected pupil timeline is empty",
                   "EMERT's eye-feature input is incomplete (pupil channels NaN): predictions rest on gaze only"]
    if not any(k in mapping.channels for k in ("valid", "left_valid", "right_valid", "confidence")):
        missing.append("validity (derived from finite x/y instead)")
    if "openness" not in one:
        missing.append("eye openness")
        cannot.append("the eyes-closed rule (eye openness below [eyesignal] closed_openness_mm) cannot run: "
                      "blinks come from tracking loss of 75-425 ms only")
    if "origin_z" not in one:
        missing.append("gaze origin (eye position)")
        cannot.append("gaze angles and velocities assume the eye at [screen] distance_mm in front of the centre")
    if "x" in one and ("x" not in both or not {"left_x", "right_x"} <= set(mapping.channels)):
        missing.append("per-eye gaze (one gaze point copied to both eyes)" if "x" in both else "one eye's gaze")
        cannot.append("binocular measures (vergence, left/right accuracy) reflect one gaze point")
    if mapping.note:
        cannot.append(mapping.note)
    return missing, cannot


# -- writing the session ------------------------------------------------------------------------------------
def choose(streams: list[ForeignStream], mappings: dict[str, Mapping], wanted_mapping: str | None,
           wanted_stream: str | None, fmt: str) -> tuple[ForeignStream, Mapping]:
    candidates = [s for s in streams if wanted_stream is None or s.name == wanted_stream]
    if wanted_stream is not None and not candidates:
        raise ForeignError(f"no stream named {wanted_stream!r}; streams: {_describe(streams)}")
    pool = [m for m in mappings.values() if m.format == fmt]
    if wanted_mapping:
        pool = [m for m in pool if m.name == wanted_mapping]
        if not pool:
            raise ForeignError(f"mapping {wanted_mapping!r} is not a {fmt} mapping of "
                               f"{', '.join(mappings)}; see --list-mappings")
    for s in candidates:
        for m in pool:
            if m.matches(s.name, s.type, s.labels):
                return s, m
    raise ForeignError(f"no {'mapping ' + repr(wanted_mapping) if wanted_mapping else 'ready-made mapping'} "
                       f"matches the streams found ({_describe(candidates) or 'none with samples'}); write a "
                       "mapping TOML (see acquisition/foreign_mappings.toml) and pass --mapping FILE.toml")


def _describe(streams: list[ForeignStream]) -> str:
    return "; ".join(f"{s.name!r} ({s.type}, {len(s.labels)} ch: {', '.join(s.labels[:4])}"
                     f"{', ...' if len(s.labels) > 4 else ''})" for s in streams)


def eye_signal_summary(samples: np.ndarray, rate: float) -> dict[str, Any]:
    """What the eye-signal processing made of the imported gaze: share of samples per event class, valid share,
    number of fixations and their median duration."""
    from itertools import groupby

    from eyemotion.streams import EVENT_CODES, GAZE_CLEAN

    events = samples[:, GAZE_CLEAN.index("event")].astype(int)
    valid = (samples[:, GAZE_CLEAN.index("validity")].astype(int) & 3) > 0
    runs = [(k, len(list(g))) for k, g in groupby(events.tolist())]
    fixations = [n / rate * 1000 for k, n in runs if k == EVENT_CODES["fixation"]]
    share = {f"{name}_pct": round(100 * float((events == code).mean()), 1) for name, code in EVENT_CODES.items()
             if len(events) and (events == code).any()}
    return {"samples": len(events), "valid_pct": round(100 * float(valid.mean()), 1) if len(events) else 0.0,
            **share, "fixations": len(fixations),
            "median_fixation_ms": round(float(np.median(fixations)), 1) if fixations else None}


def import_foreign(source: str | Path, config: Config, *, participant: str, session_id: str | None = None,
                   sessions_dir: str | Path | None = None, mapping: str | None = None, stream: str | None = None,
                   rate: float | None = None) -> tuple[Path, dict[str, Any]]:
    """Import one foreign recording as a session folder; returns (folder, the `imported` record)."""
    from eyemotion.acquisition.markers import encode_marker
    from eyemotion.acquisition.replay import XdfWriter
    from eyemotion.inference.eyesignal.processor import process_recording

    from eyemotion.session import (
        RECORDING_XDF,
        SessionError,
        check_participant_id,
        create_session_folder,
        update_session_json,
    )
    from eyemotion.streams import EYE_EVENTS, GAZE_CLEAN, GAZE_RAW, MARKERS, stream_info

    source = Path(source)
    if not source.is_file():
        raise ForeignError(f"{source} not found; pass a foreign .xdf, .csv or .tsv file")
    check_participant_id(participant)
    if rate is not None and not 1 <= rate <= 2000:
        raise ForeignError(f"--rate {rate} is outside 1-2000 Hz")
    mappings = load_mappings(READY_MADE)
    if mapping and mapping.endswith(".toml"):
        own = load_mappings(mapping)
        mappings, mapping = {**mappings, **own}, (next(iter(own)) if len(own) == 1 else None)
    fmt = "xdf" if source.suffix.lower() == ".xdf" else "csv"
    strings: list[tuple[str, np.ndarray, list[str]]] = []
    warnings: list[str] = []
    if fmt == "xdf":
        numeric, strings, warnings = read_xdf(source)
    else:
        numeric = [read_table(source)]
    try:
        chosen, m = choose(numeric, mappings, mapping, stream, fmt)
    except ForeignError as exc:
        others = [w.split(":")[0] for w in warnings] + [f"string stream {name!r}" for name, _, _ in strings]
        raise ForeignError(f"{exc}" + (f" (also in the file: {'; '.join(others)})" if others else "")) from None
    mapped = map_stream(chosen, m, config, rate=rate)
    skipped = [f"{s.name} ({s.type}, {len(s.labels)} channels): not gaze" for s in numeric if s is not chosen]
    skipped += warnings
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    record = {"source": str(source.resolve()), "sha256": digest, "format": fmt, "stream": chosen.name,
              "mapping": m.name, "mapping_file": m.file, "rate_hz": mapped.rate, "resampling": mapped.resampled_from,
              "samples": len(mapped.stamps), "missing": mapped.missing, "cannot_run": mapped.cannot_run,
              "skipped": skipped, "markers": sum(len(s[1]) for s in strings)}
    root = Path(sessions_dir or config.recorder.sessions_dir)
    sid = session_id or f"import-{digest[:10]}"
    try:
        folder = create_session_folder(root, participant, sid, imported=record, simulated_sources=[],
                                       recording={"file": RECORDING_XDF, "lsl_start": float(mapped.stamps[0]),
                                                  "lsl_end": float(mapped.stamps[-1])},
                                       protocol=f"imported ({m.name})", screen=config.screen.__dict__,
                                       consent={"given": None, "method": "imported",
                                                "note": "consent was obtained by the lab that recorded the data"})
    except SessionError as exc:
        raise ForeignError(str(exc)) from None
    try:
        out = process_recording(mapped.stamps, mapped.samples, mapped.rate, config.eyesignal, config.screen)
        tmp = folder / f".{RECORDING_XDF}.tmp"
        with XdfWriter(tmp) as w:
            w.add_stream(1, stream_info(GAZE_RAW, rate=mapped.rate, device=f"import-{digest[:8]}",
                                        extra={"imported": "1", "mapping": m.name}).as_xml())
            w.write_samples(1, mapped.stamps, mapped.samples)
            w.add_stream(2, stream_info(GAZE_CLEAN, rate=mapped.rate, extra={"imported": "1"}).as_xml())
            w.write_samples(2, out.timestamps, out.samples)
            w.add_stream(3, stream_info(EYE_EVENTS, extra={"imported": "1"}).as_xml())
            if out.events:
                w.write_samples(3, np.array([t for t, _ in out.events]),
                                [[json.dumps(ev, default=float)] for _, ev in out.events])
            stamps, texts = [], []
            for name, ts, values in strings:
                for t, v in zip(ts, values):
                    stamps.append(float(t))
                    texts.append([encode_marker("foreign_marker", "import", stream=name, text=v)])
            stamps.append(float(mapped.stamps[0]))
            texts.append([encode_marker("session_start", "import", file=source.name, mapping=m.name)])
            order = np.argsort(stamps, kind="stable")
            w.add_stream(4, stream_info(MARKERS, device="import").as_xml())
            w.write_samples(4, np.asarray(stamps)[order], [texts[i] for i in order])
        tmp.replace(folder / RECORDING_XDF)
        record["eye_signal"] = eye_signal_summary(out.samples, mapped.rate)
        update_session_json(folder, imported={"eye_signal": record["eye_signal"]})
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)  # no half-imported session
        raise
    return folder, record


# -- CLI ----------------------------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-foreign", help="import another lab's gaze recording (XDF, CSV/TSV) as an eyemotion session",
        description="Import a gaze recording made with other tools: an XDF file from another LSL app, or a "
                    "CSV/TSV export. A mapping (TOML) names which foreign channel fills which field of the "
                    "Tobii_gaze contract; ready-made mappings cover Tobii consumer x/y streams, Tobii Pro SDK "
                    "relays, TittaLSL-labelled layouts, the Pupil Labs LSL relay and CSV export, and Tobii Pro "
                    "Lab TSV (--list-mappings). Irregular streams are resampled to a regular rate. The import "
                    "writes a session folder (session.json marks it imported, with the source and the mapping) "
                    "with Tobii_gaze, eyemotion_gaze and the eye events, and says which fields are missing and "
                    "which processing steps therefore cannot run. `eyemotion dataset import` is for labelled "
                    "corpora; this command is for gaze recordings.")
    p.add_argument("source", nargs="?", help="the foreign .xdf, .csv or .tsv file")
    p.add_argument("--participant", help="pseudonym for the imported session (e.g. EXT01)")
    p.add_argument("--session-id", help="session folder name (default: import-<first 10 hex of the file's sha256>)")
    p.add_argument("--sessions-dir", help="root of the session folders (default: [recorder] sessions_dir)")
    p.add_argument("--mapping", help="a ready-made mapping name or your own FILE.toml (default: the first that matches)")
    p.add_argument("--stream", help="the XDF stream to import (default: the first a mapping matches)")
    p.add_argument("--rate", type=float, help="resample to this rate in Hz (default: the stream's own)")
    p.add_argument("--list-mappings", action="store_true", help="list the ready-made mappings and exit")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    if args.list_mappings:
        for name, m in load_mappings().items():
            print(f"{name:20s} [{m.format}] {m.description}")
        return 0
    if not args.source or not args.participant:
        raise ForeignError("pass the foreign file and --participant ID, e.g. eyemotion import-foreign rec.xdf "
                           "--participant EXT01")
    folder, record = import_foreign(args.source, config, participant=args.participant, session_id=args.session_id,
                                    sessions_dir=args.sessions_dir, mapping=args.mapping, stream=args.stream,
                                    rate=args.rate)
    print(f"imported {record['stream']!r} with mapping {record['mapping']!r}: {record['samples']} samples at "
          f"{record['rate_hz']:g} Hz -> {folder}")
    print(f"  {record['resampling']}")
    e = record["eye_signal"]
    print(f"  eye signal: {e['valid_pct']} % valid, " + ", ".join(
        f"{k[:-4]} {v} %" for k, v in e.items() if k.endswith("_pct") and k != "valid_pct")
          + f"; {e['fixations']} fixations, median {e['median_fixation_ms']} ms")
    for item in record["missing"]:
        print(f"  missing: {item}")
    for item in record["cannot_run"]:
        print(f"  cannot run: {item}")
    for item in record["skipped"]:
        print(f"  skipped: {item}")
    return 0
