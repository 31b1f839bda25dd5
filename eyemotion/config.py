"""The eyemotion configuration: one TOML file (`eyemotion.toml`), read with `tomllib`.

Every option has a default that works in the demo, so an empty file (or no file) is a valid config.
Each `[section]` maps to one frozen dataclass below; unknown sections or keys, wrong types and
out-of-range values are refused with a message that names the key and the fix.

Subsystems add their options as fields of their own section dataclass (with a default) and, if a value
has a range, a check in that dataclass's `validate`.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eyemotion import UserError

DEFAULT_CONFIG_NAME = "eyemotion.toml"


class ConfigError(UserError):
    """A malformed or invalid config file; the message stays on one line (quoted TOML keys may hold newlines)."""

    def __init__(self, message: str) -> None:
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"config: {key} {message}")


@dataclass(frozen=True)
class ScreenConfig:
    """The stimulus screen. Defaults: a 24" 16:9 monitor at a typical Tobii Pro Fusion distance."""

    width_px: int = 1920
    height_px: int = 1080
    width_mm: float = 531.0
    height_mm: float = 299.0
    distance_mm: float = 650.0  # eye-to-screen distance when the tracker gives no gaze origin

    def validate(self) -> None:
        for name in ("width_px", "height_px", "width_mm", "height_mm", "distance_mm"):
            _check(getattr(self, name) > 0, f"screen.{name}", "must be > 0")
        _check(200 <= self.distance_mm <= 2000, "screen.distance_mm", "must be within 200-2000 mm")


@dataclass(frozen=True)
class LslConfig:
    """How eyemotion names and finds its streams on the network.

    `scope` is liblsl's multicast ResolveScope (see `eyemotion.streams.configure_lsl`).
    `namespace` is appended to the `source_id` of every stream eyemotion publishes, and consumers only
    accept streams carrying it; two sessions on one LAN (or parallel tests) thus never mix. `hostname`,
    when set, restricts consumers to streams published by that host (several lab PCs).
    """

    namespace: str = ""
    hostname: str = ""
    resolve_timeout_s: float = 5.0
    # "machine": streams stay on this computer (the demo, tests); "site": several lab PCs on one LAN.
    scope: str = "machine"

    def validate(self) -> None:
        _check(self.scope in ("machine", "link", "site", "organization", "global"), "lsl.scope",
               "must be one of machine, link, site, organization, global")
        _check(self.resolve_timeout_s > 0, "lsl.resolve_timeout_s", "must be > 0")
        _check(all(c.isalnum() or c in "-_." for c in self.namespace), "lsl.namespace",
               "may only contain letters, digits, '-', '_' and '.'")


@dataclass(frozen=True)
class TrackerConfig:
    """The eye tracker: a real Tobii (through TittaPy/TittaLSL) or the simulator.

    Never simulated unless asked (issue 13, Sec. 2): `simulate = true` in the config file, or `--simulate` on
    `run`, `stream`, `node tracker` and `stimuli run`; `demo` always simulates.
    """

    simulate: bool = False
    address: str = ""  # Tobii address (tet-tcp://...) ; empty = the only/first tracker found
    serial: str = ""  # or select by serial number
    frequency: float = 250.0  # Tobii Pro Fusion: 60, 120 or 250 Hz (checked against the device)
    eye_openness: bool = True  # also stream eye openness (Fusion and Spectrum support it)
    reconnect_timeout_s: float = 0.0  # give up reconnecting after this long (0 = keep trying)

    def validate(self) -> None:
        _check(self.frequency > 0, "tracker.frequency", "must be > 0 Hz")
        _check(self.reconnect_timeout_s >= 0, "tracker.reconnect_timeout_s", "must be >= 0 (0 = forever)")


@dataclass(frozen=True)
class SimulatorConfig:
    """The simulated eye tracker (see `eyemotion.acquisition.simulator`)."""

    seed: int = 0
    mode: str = "random"  # "random" (seeded synthetic viewing) or "mouse" (gaze follows the mouse)
    serial: str = "SIM-FUSION-0001"
    chunk_ms: float = 15.0  # push interval
    loss_per_min: float = 0.3  # tracking losses per minute
    pursuit_share: float = 0.1  # share of viewing events following a moving target (0: static images)
    truth_path: str = ""  # write the per-sample ground truth here (.npz or .csv) when the node stops

    def validate(self) -> None:
        _check(self.mode in ("random", "mouse"), "simulator.mode", "must be 'random' or 'mouse'")
        _check(5 <= self.chunk_ms <= 50, "simulator.chunk_ms", "must be within 5-50 ms")
        _check(self.loss_per_min >= 0, "simulator.loss_per_min", "must be >= 0")
        _check(0 <= self.pursuit_share <= 1, "simulator.pursuit_share", "must be within 0-1")
        _check(bool(self.serial) and all(c.isalnum() or c in "-_." for c in self.serial), "simulator.serial",
               "must be a non-empty string of letters, digits, '-', '_' or '.'")


@dataclass(frozen=True)
class CameraConfig:
    """The webcam (see `eyemotion.acquisition.camera`): a device index ("0"), a video file path or a URL.

    `fps`, `width` and `height` are requested from a device (a file plays at its own rate and size).
    """

    source: str = "0"
    fps: float = 30.0
    width: int = 640
    height: int = 480
    loop: bool = False  # loop a file source
    analyze_hz: float = 15.0  # how often per-frame analysers (face pipeline) get the latest frame
    reconnect_max_s: float = 8.0  # longest wait between reopen attempts (backoff doubles from 0.25 s)
    open_timeout_s: float = 5.0  # how long opening a URL may take

    def validate(self) -> None:
        _check(self.fps > 0, "camera.fps", "must be > 0")
        _check(self.width > 0 and self.height > 0, "camera.width/height", "must be > 0")
        _check(self.analyze_hz > 0, "camera.analyze_hz", "must be > 0")
        _check(self.reconnect_max_s >= 0.25, "camera.reconnect_max_s", "must be >= 0.25 s")
        _check(self.open_timeout_s > 0, "camera.open_timeout_s", "must be > 0")


@dataclass(frozen=True)
class MicrophoneConfig:
    """The microphone (see `eyemotion.acquisition.microphone`): a PortAudio input device name (or part
    of it) or index ("" = the system default). `eyemotion_audio` is always 16 kHz mono; `samplerate` is
    the rate the device is opened at, 16000 or a multiple of it (then decimated to 16 kHz), for devices
    that refuse 16 kHz.
    """

    device: str = ""
    samplerate: int = 16000
    block_ms: float = 20.0
    queue_s: float = 2.0  # audio buffered between the device callback and LSL before blocks are dropped

    def validate(self) -> None:
        _check(self.samplerate > 0 and self.samplerate % 16000 == 0, "microphone.samplerate",
               "must be 16000 or a multiple of it (32000, 48000, 96000)")
        _check(10 <= self.block_ms <= 50, "microphone.block_ms", "must be within 10-50 ms")
        _check(self.queue_s >= 0.1, "microphone.queue_s", "must be >= 0.1 s")


@dataclass(frozen=True)
class RecorderConfig:
    """Recording sessions with LabRecorder (see `eyemotion.acquisition.recorder`).

    Every contract stream with `recorded=True` found in `[lsl] namespace` (and on `[lsl] hostname`, if
    set) is recorded; a recording refuses to start while a stream of `required` is missing.
    """

    sessions_dir: str = "sessions"
    min_free_gb: float = 1.0  # refuse to start / stop cleanly with a disk_low marker below this
    stall_s: float = 5.0  # the file not growing for this long is reported as a stall
    required: tuple[str, ...] = ("Tobii_gaze", "eyemotion_camera", "eyemotion_audio")
    discover_s: float = 2.0  # how long to look for streams before starting
    check_interval_s: float = 1.0  # how often the file growth, free disk and LabRecorder are checked
    start_timeout_s: float = 15.0  # how long LabRecorderCLI may take to connect to every stream

    def validate(self) -> None:
        _check(self.min_free_gb >= 0, "recorder.min_free_gb", "must be >= 0")
        _check(self.stall_s > 0, "recorder.stall_s", "must be > 0")
        _check(self.discover_s > 0, "recorder.discover_s", "must be > 0")
        _check(0 < self.check_interval_s <= self.stall_s, "recorder.check_interval_s", "must be > 0 and <= stall_s")
        _check(self.start_timeout_s > 0, "recorder.start_timeout_s", "must be > 0")
        from eyemotion.streams import BY_NAME

        unknown = [n for n in self.required if n not in BY_NAME or not BY_NAME[n].recorded]
        _check(not unknown, "recorder.required", f"has unknown or unrecorded streams {unknown}; "
               f"use names of {', '.join(n for n, s in BY_NAME.items() if s.recorded)}")


@dataclass(frozen=True)
class EyesignalConfig:
    """Online eye-signal processing (see `eyemotion.inference.eyesignal`).

    Defaults: Tobii I-VT filter (Olsen 2012, "The Tobii I-VT fixation filter"): gap fill-in 75 ms,
    20 ms velocity window, 30 deg/s, merge fixations < 75 ms and < 0.5 deg apart, discard fixations
    < 60 ms; blinks 75-425 ms (002_cbeb04dbce786b8c.txt, Sec. III-A-3); pupil range 1.5-9 mm, 50 ms
    padding around blinks and the 16-MAD dilation-speed filter (Kret & Sjak-Shie 2019, Behav Res 51:1336).
    """

    eye_selection: str = "average"  # "average" (falls back to one eye), "left" or "right"
    gap_fill_max_ms: float = 75.0  # invalid runs shorter than this are filled (I-VT gap fill-in)
    blink_max_ms: float = 425.0  # invalid runs from gap_fill_max_ms to this are blinks; longer = loss
    blink_margin_ms: float = 50.0  # samples this close to a blink are interpolated too
    closed_openness_mm: float = 1.5  # eye openness below this (both eyes) counts as closed = invalid
    offscreen_margin: float = 0.5  # gaze beyond [-m, 1 + m] display widths/heights is rejected
    tracker_gap_mm: float = 15.0  # the tracker's origin (UCS) lies this far below the display's bottom edge
    velocity_window_ms: float = 20.0  # Savitzky-Golay differentiation window (Nystrom & Holmqvist 2010)
    velocity_threshold_deg_s: float = 30.0  # the fixed threshold, and the floor of the adaptive one
    adaptive_threshold: bool = True  # Nystrom & Holmqvist 2010's iterative peak threshold (trailing pupil_mad_*)
    saccade_max_ms: float = 80.0  # onset/offset walks from a velocity peak go at most this far
    pso_max_ms: float = 40.0  # a PSO starts within this of the saccade offset and lasts at most this
    pursuit_window_ms: float = 140.0  # smooth pursuit: slow velocity between two halves of this window
    pursuit_velocity_deg_s: float = 4.0  # slow velocity above this (outside saccades) = pursuit
    pursuit_min_ms: float = 80.0  # shorter pursuit runs are fixation (too short to tell from a drift or glide)
    blink_extension_ms: float = 150.0  # eyelid-distorted samples this close to a blink belong to it
    lid_closing_fraction: float = 0.6  # eye openness below this share of the trailing median = lid closing
    merge_max_gap_ms: float = 75.0
    merge_max_angle_deg: float = 0.5  # Tobii I-VT's fixed merge angle, used with merge_noise_sd = 0
    merge_noise_sd: float = 3.0  # merge fixations closer than this many SDs of their samples' spread (0: fixed angle)
    merge_position_ms: float = 60.0  # fixation samples either side of a gap whose mean positions are compared
    min_fixation_ms: float = 60.0
    saccade_correction_max_ms: float = 150.0  # longer saccades are not interpolated in x/y_saccade_corrected
    pupil_min_mm: float = 1.5
    pupil_max_mm: float = 9.0
    pupil_mad_multiplier: float = 16.0
    pupil_mad_window_s: float = 10.0  # trailing window of dilation speeds for the median/MAD
    pupil_mad_update_s: float = 1.0  # the threshold is recomputed every this many seconds
    compute_block_ms: float = 250.0  # computed in blocks this long: more throughput, this much more delay
    map_columns: int = 32
    map_rows: int = 18
    map_sigma_deg: float = 1.0
    map_slices: int = 32  # fixation-map time slices per analysis window (EMERT, 002 Sec. IV)

    def validate(self) -> None:
        key = "eyesignal."
        _check(self.eye_selection in ("average", "left", "right"), key + "eye_selection",
               "must be 'average', 'left' or 'right'")
        for name in ("gap_fill_max_ms", "blink_max_ms", "velocity_window_ms", "velocity_threshold_deg_s",
                     "merge_max_angle_deg", "merge_position_ms", "pupil_min_mm", "pupil_mad_multiplier",
                     "pupil_mad_window_s", "pupil_mad_update_s", "map_sigma_deg"):
            _check(getattr(self, name) > 0, key + name, "must be > 0")
        for name in ("blink_margin_ms", "closed_openness_mm", "offscreen_margin", "merge_max_gap_ms",
                     "min_fixation_ms", "saccade_correction_max_ms", "compute_block_ms", "saccade_max_ms",
                     "merge_noise_sd", "pso_max_ms", "pursuit_window_ms", "pursuit_velocity_deg_s", "pursuit_min_ms",
                     "blink_extension_ms", "lid_closing_fraction"):
            _check(getattr(self, name) >= 0, key + name, "must be >= 0")
        _check(self.blink_max_ms > self.gap_fill_max_ms, key + "blink_max_ms", "must exceed gap_fill_max_ms")
        _check(self.blink_max_ms <= 2000, key + "blink_max_ms", "must be <= 2000 ms (it sets the delay)")
        _check(self.pupil_max_mm > self.pupil_min_mm, key + "pupil_max_mm", "must exceed pupil_min_mm")
        _check(self.pupil_mad_window_s >= self.pupil_mad_update_s, key + "pupil_mad_window_s",
               "must be >= pupil_mad_update_s")
        _check(self.compute_block_ms <= 2000, key + "compute_block_ms", "must be <= 2000 ms")
        _check(self.map_columns > 0 and self.map_rows > 0 and self.map_slices > 0,
               key + "map_columns/map_rows/map_slices", "must be > 0")


@dataclass(frozen=True)
class DashboardConfig:
    """The PyQt6 dashboard (see `eyemotion.gui`)."""

    fps: float = 30.0  # redraw rate
    stale_s: float = 2.0  # a regular stream silent this long is "stale" (irregular ones: 2.5x, markers never)
    history_s: float = 30.0  # how much of each stream the dashboard keeps and plots
    trail_s: float = 1.0  # gaze trail length
    voice_threshold_db: float = -45.0  # audio level (dBFS) above which the voice-activity light is on
    annotations: tuple[str, ...] = ("artifact", "participant_moved", "participant_talking", "note")

    def validate(self) -> None:
        _check(1 <= self.fps <= 120, "dashboard.fps", "must be within 1-120")
        _check(self.stale_s > 0, "dashboard.stale_s", "must be > 0")
        _check(5 <= self.history_s <= 600, "dashboard.history_s", "must be within 5-600 s")
        _check(0 < self.trail_s <= 10, "dashboard.trail_s", "must be within 0-10 s")
        _check(-120 <= self.voice_threshold_db <= 0, "dashboard.voice_threshold_db", "must be within -120-0 dBFS")
        _check(1 <= len(self.annotations) <= 9 and all(self.annotations), "dashboard.annotations",
               "must list 1-9 non-empty labels (hotkeys 1-9)")


@dataclass(frozen=True)
class FeaturesConfig:
    """Feature extraction (see `eyemotion.inference.features`): gaze statistics, eGeMAPS audio, model windows."""

    gaze_window_s: float = 1.0  # 000_e9deb5c9c21c243c.txt, Sec. 3.5.1: 1-s windows
    gaze_hop_s: float = 0.1
    gaze_min_valid_fraction: float = 0.5  # windows with fewer valid samples give NaN + valid = 0
    eye_open_mm: float = 11.0  # eye openness of a fully open eye (blink intensity 0); 0 mm = intensity 5
    pupil_change_threshold_mm_s: float = 1.0  # |delta pupil| (mm/s) above this: dilation / constriction
    # eGeMAPS on the voiced frames of the last 3 s (inference/features/audio.py); 1-8 s allowed
    audio_window_s: float = 3.0
    audio_hop_s: float = 0.5
    # voice-activity gate, measured on real speech (RAVDESS, README): passes 334 of 336 utterances, no noise
    vad_min_voiced_ratio: float = 0.05  # share of voiced time for a window to count as speech
    vad_min_level_dbfs: float = -60.0  # and the RMS level of its active frames must exceed this
    # live EMERT window: 8 face, 32 eye, 32 fixation frames from the last 4 s; 002_cbeb04dbce786b8c.txt
    # Sec. V-A-2 takes them from the whole clip (as training does): a deviation for live use
    emert_window_s: float = 4.0
    crossmodal_window_s: float = 4.0
    crossmodal_frames: int = 16  # visual steps (face embedding + gaze statistics) per crossmodal window
    crossmodal_audio_steps: int = 1  # eGeMAPS sub-windows per crossmodal window (1: the newest, utterance-like)

    def validate(self) -> None:
        _check(0.1 <= self.gaze_window_s <= 10, "features.gaze_window_s", "must be within 0.1-10 s")
        _check(0 < self.gaze_hop_s <= self.gaze_window_s, "features.gaze_hop_s", "must be > 0 and <= gaze_window_s")
        _check(0 <= self.gaze_min_valid_fraction <= 1, "features.gaze_min_valid_fraction", "must be within 0-1")
        _check(self.eye_open_mm > 0, "features.eye_open_mm", "must be > 0")
        _check(self.pupil_change_threshold_mm_s >= 0, "features.pupil_change_threshold_mm_s", "must be >= 0")
        _check(1 <= self.audio_window_s <= 8, "features.audio_window_s", "must be within 1-8 s")
        _check(0 < self.audio_hop_s <= self.audio_window_s, "features.audio_hop_s",
               "must be > 0 and <= audio_window_s")
        _check(0 <= self.vad_min_voiced_ratio <= 1, "features.vad_min_voiced_ratio", "must be within 0-1")
        _check(-120 <= self.vad_min_level_dbfs <= 0, "features.vad_min_level_dbfs", "must be within -120-0 dBFS")
        _check(self.emert_window_s > 0, "features.emert_window_s", "must be > 0")
        _check(self.crossmodal_window_s > 0, "features.crossmodal_window_s", "must be > 0")
        _check(self.crossmodal_frames >= 1, "features.crossmodal_frames", "must be >= 1")
        _check(self.crossmodal_audio_steps >= 1, "features.crossmodal_audio_steps", "must be >= 1")


@dataclass(frozen=True)
class FaceConfig:
    """The face pipeline in the camera node: Haar detection, eye alignment, FER + embedding (ONNX)."""

    rate_hz: float = 12.0  # eyemotion_face rate (analysed frames per second)
    preview_rate_hz: float = 5.0  # eyemotion_preview rate
    preview_width: int = 160
    preview_height: int = 120
    preview_jpeg_quality: int = 70
    model: str = ""  # .onnx with its card beside it; "" = the shipped models/face_fer.onnx
    detect_width: int = 240  # frames are downscaled to this width for detection
    min_face_fraction: float = 0.15  # smallest face side, as a fraction of the frame height
    align: bool = True  # rotate the face upright from the detected eyes

    def validate(self) -> None:
        _check(0 < self.rate_hz <= 60, "face.rate_hz", "must be within 0-60 Hz")
        _check(0 < self.preview_rate_hz <= 30, "face.preview_rate_hz", "must be within 0-30 Hz")
        _check(16 <= self.preview_width <= 640 and 16 <= self.preview_height <= 480, "face.preview_width/height",
               "must be within 16x16-640x480")
        _check(1 <= self.preview_jpeg_quality <= 100, "face.preview_jpeg_quality", "must be within 1-100")
        _check(80 <= self.detect_width <= 1920, "face.detect_width", "must be within 80-1920 px")
        _check(0 < self.min_face_fraction < 1, "face.min_face_fraction", "must be within 0-1")


@dataclass(frozen=True)
class StimuliConfig:
    """The stimulus runner on this lab PC (the study design itself lives in the protocol TOML)."""

    audio: str = "auto"  # clip sound: "auto" (play if an output device exists, else silent), "on", "off"
    audio_device: str = ""  # sounddevice output name or index ("" = default)
    fullscreen: bool = True
    screen_index: int = 0  # which monitor shows the stimuli
    refresh_hz: float = 60.0  # flip pacing when the display has no vsync (Xvfb)
    tracker_timeout_s: float = 3.0  # how long to look for Tobii_gaze at start
    wait_for_recorder_s: float = 0.0  # wait this long for a consumer of eyemotion_markers (LabRecorder)

    def validate(self) -> None:
        _check(self.audio in ("auto", "on", "off"), "stimuli.audio", "must be 'auto', 'on' or 'off'")
        _check(20 <= self.refresh_hz <= 500, "stimuli.refresh_hz", "must be within 20-500 Hz")
        _check(self.screen_index >= 0, "stimuli.screen_index", "must be >= 0")
        _check(self.tracker_timeout_s > 0, "stimuli.tracker_timeout_s", "must be > 0")
        _check(self.wait_for_recorder_s >= 0, "stimuli.wait_for_recorder_s", "must be >= 0")


@dataclass(frozen=True)
class ExportConfig:
    """`eyemotion export --bids`: who made the dataset and under which licence (dataset_description.json), and
    the institution named in every sidecar. Empty values are left out (the BIDS validator then warns)."""

    authors: tuple[str, ...] = ()  # one person per entry, e.g. ["Ada Lovelace", "Alan Turing"]
    license: str = ""  # e.g. "CC0", "CC-BY-4.0", or "custom: see README"
    institution_name: str = ""
    institution_address: str = ""
    institution_department: str = ""

    def validate(self) -> None:
        _check(all(a.strip() for a in self.authors), "export.authors", "must not hold empty names")


@dataclass(frozen=True)
class InferenceConfig:
    """The live inference node (see `eyemotion.inference.live`): EMERT and the crossmodal model on windows of
    eyemotion_gaze / eyemotion_face / eyemotion_audio, published as eyemotion_emotion."""

    rate_hz: float = 2.0  # predictions per second (window ends on a fixed grid)
    emert_model: str = ""  # EMERT .onnx with its card beside it; "" = the shipped models/emert.onnx
    crossmodal_model: str = ""  # crossmodal graphs <stem>-visual/-audio/-joint.onnx; "" = shipped models/crossmodal
    stale_s: float = 1.5  # an input silent this long is not waited for (the window is computed without it)
    max_lag_s: float = 3.0  # input kept beyond a window, in stream seconds: how far one input may lag the others
    threads: int = 1  # onnxruntime CPU threads per model

    def validate(self) -> None:
        _check(1 <= self.rate_hz <= 4, "inference.rate_hz", "must be within 1-4 Hz")
        _check(0.2 <= self.stale_s <= 30, "inference.stale_s", "must be within 0.2-30 s")
        _check(0.5 <= self.max_lag_s <= 600, "inference.max_lag_s", "must be within 0.5-600 s")
        _check(1 <= self.threads <= 16, "inference.threads", "must be within 1-16")


@dataclass(frozen=True)
class Config:
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    lsl: LslConfig = field(default_factory=LslConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    microphone: MicrophoneConfig = field(default_factory=MicrophoneConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    eyesignal: EyesignalConfig = field(default_factory=EyesignalConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    stimuli: StimuliConfig = field(default_factory=StimuliConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def replace(self, **sections: Any) -> Config:
        """A copy with some sections replaced, e.g. `cfg.replace(lsl=LslConfig(namespace="t1"))`."""
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples as lists), as in session.json; `config_from_dict` reads it back."""
        return {section: {key: list(value) if isinstance(value, tuple) else value for key, value in table.items()}
                for section, table in dataclasses.asdict(self).items()}

    def to_toml(self) -> str:
        """This config as TOML text that `load_config` reads back to an equal Config."""
        lines = []
        for section, table in self.to_dict().items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if value is not None]
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # a JSON string is a TOML basic string, but TOML refuses surrogate-pair escapes and a raw DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _show(value: Any) -> str:
    """repr(value) for a message; a huge integer (more than 4300 digits) cannot be repr'd."""
    try:
        return repr(value)
    except ValueError:
        return f"a {type(value).__name__} too large to print"


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check one TOML value against a dataclass field annotation (ints are accepted for floats)."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        allowed = typing.get_args(hint)
        for a in allowed:
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"config: {key} has the wrong type ({type(value).__name__})")
    if hint is type(None):
        _check(value is None, key, "must be empty")
        return value
    if hint is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key,
               f"must be a number, not {_show(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer beyond 1.8e308
            raise ConfigError(f"config: {key} is too large for a number; use a value below 1e308") from None
    if hint is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"must be an integer, not {_show(value)}")
        return value
    if hint is bool:
        _check(isinstance(value, bool), key, f"must be true or false, not {_show(value)}")
        return value
    if hint is str:
        _check(isinstance(value, str), key, f"must be a string, not {_show(value)}")
        return value
    if origin in (list, tuple):
        _check(isinstance(value, list), key, f"must be a list, not {_show(value)}")
        (inner, *_) = typing.get_args(hint) or (Any,)
        items = [v if inner is Any else _coerce(v, inner, f"{key}[]") for v in value]
        return tuple(items) if origin is tuple else items
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a Config from parsed TOML; raise ConfigError naming the first bad key."""
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a table of [sections]")
    hints = typing.get_type_hints(Config)
    sections: dict[str, Any] = {}
    for name, table in data.items():
        if name not in hints:
            raise ConfigError(f"config: unknown section [{name}]; known sections: {', '.join(hints)}")
        if not isinstance(table, dict):
            raise ConfigError(f"config: [{name}] must be a table of key = value")
        cls = hints[name]
        fields = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in table.items():
            if key not in fields:
                raise ConfigError(f"config: unknown key {name}.{key}; known keys: {', '.join(fields)}")
            kwargs[key] = _coerce(value, fields[key], f"{name}.{key}")
        sections[name] = cls(**kwargs)
    cfg = Config(**sections)
    for f in dataclasses.fields(cfg):
        getattr(cfg, f.name).validate()
    return cfg


def config_file(path: str | Path | None = None) -> Path | None:
    """The file `load_config(path)` reads: `path`, or `./eyemotion.toml` when it exists, else None."""
    if path is not None:
        return Path(path)
    return Path(DEFAULT_CONFIG_NAME) if Path(DEFAULT_CONFIG_NAME).exists() else None


def load_config(path: str | Path | None = None) -> Config:
    """Read `path` (or `./eyemotion.toml` when it exists, else the defaults)."""
    if path is None:
        default = Path(DEFAULT_CONFIG_NAME)
        if not default.exists():
            return config_from_dict({})
        path = default
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; pass an existing file or omit --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc}); check the file") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:  # also huge integers, deep nesting
        raise ConfigError(f"config file {path} is not valid TOML ({exc}); fix the syntax") from None
    return config_from_dict(data)
