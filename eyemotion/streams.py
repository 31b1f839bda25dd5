"""The stream contract: the only place where an eyemotion LSL stream is defined.

Producers build their `pylsl.StreamInfo` with `stream_info(SPEC, ...)`. Consumers find streams with
`resolve(SPEC, lsl_config)` / `open_inlet(...)`, which check the stream against the contract and refuse
one that differs, naming every difference.

`Tobii_gaze` copies TittaLSL's gaze stream exactly (Titta, LSL_streamer/src/TittaLSL.cpp,
`Sender::create` and `Sender::pushSample`): 37 double64 channels, 18 per eye (left, then right) plus the
device timestamp in seconds. TittaLSL describes only the first 36 channels in `desc/channels` and stamps
each sample with the Tobii system timestamp, which is `pylsl.local_clock()` on the same machine.

Source ids: eyemotion streams use `eyemotion:<name>@<host>`; the simulated tracker uses TittaLSL's own
`TittaLSL:Tobii_gaze@<serial>`. With `[lsl] namespace = "X"` every id ends in `#X`, and consumers only
accept streams with that ending (parallel sessions or tests on one network never mix).
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pylsl

from eyemotion import UserError

#: The canonical class order, used by every stream, model and plot.
CLASSES: tuple[str, ...] = ("neutral", "happiness", "sadness", "anger", "disgust", "fear", "surprise")

IRREGULAR = 0.0  # nominal_rate of an event stream
DEVICE_RATE = -1.0  # regular stream whose rate the device sets (checked > 0)

_FORMATS = {
    "double64": pylsl.cf_double64,
    "float32": pylsl.cf_float32,
    "int32": pylsl.cf_int32,
    "string": pylsl.cf_string,
}
_FORMAT_NAMES = {v: k for k, v in _FORMATS.items()}


class ContractError(UserError):
    """A stream that does not match the contract (wrong layout, rate, format ...)."""


class StreamNotFound(UserError):
    """No stream matching the contract was found on the network."""


@dataclass(frozen=True)
class Channel:
    label: str
    unit: str = ""
    type: str = ""
    eye: str = ""  # only for Tobii_gaze
    described: bool = True  # listed in desc/channels (TittaLSL leaves its device timestamp undescribed)


@dataclass(frozen=True)
class StreamSpec:
    key: str
    name: str
    type: str
    channels: tuple[Channel, ...]
    channel_format: str
    nominal_rate: float
    doc: str
    recorded: bool = True
    source_prefix: str = "eyemotion"
    allowed_rates: tuple[float, ...] = field(default=())  # for DEVICE_RATE streams, if restricted
    can_drop_samples: bool = False  # desc/synchronization/can_drop_samples: readers must not regularise stamps

    @property
    def channel_count(self) -> int:
        return len(self.channels)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.channels]

    def index(self, label: str) -> int:
        """Channel index of `label` (KeyError naming the stream if absent)."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(f"{self.name} has no channel {label!r}") from None

    def source_id(self, namespace: str = "", device: str = "") -> str:
        """`eyemotion:<name>@<host>` (or `TittaLSL:Tobii_gaze@<serial>`), plus `#<namespace>`."""
        where = device or socket.gethostname()
        sid = f"{self.source_prefix}:{self.name}@{where}"
        return f"{sid}#{namespace}" if namespace else sid


def _tobii_channels() -> tuple[Channel, ...]:
    chans: list[Channel] = []
    for eye in ("left", "right"):
        e = f"{eye}_eye"
        chans += [
            Channel(f"x.position_on_display_area.gaze_point.{e}", "normalized", "ScreenX", eye),
            Channel(f"y.position_on_display_area.gaze_point.{e}", "normalized", "ScreenY", eye),
            Channel(f"x.position_in_user_coordinates.gaze_point.{e}", "mm", "IntersectionX", eye),
            Channel(f"y.position_in_user_coordinates.gaze_point.{e}", "mm", "IntersectionY", eye),
            Channel(f"z.position_in_user_coordinates.gaze_point.{e}", "mm", "IntersectionZ", eye),
            Channel(f"valid.gaze_point.{e}", "bool", "ValidFlag", eye),
            Channel(f"available.gaze_point.{e}", "bool", "AvailableFlag", eye),
            Channel(f"diameter.pupil.{e}", "mm", "Diameter", eye),
            Channel(f"valid.pupil.{e}", "bool", "ValidFlag", eye),
            Channel(f"available.pupil.{e}", "bool", "AvailableFlag", eye),
            Channel(f"x.position_in_user_coordinates.gaze_origin.{e}", "mm", "PupilX", eye),
            Channel(f"y.position_in_user_coordinates.gaze_origin.{e}", "mm", "PupilY", eye),
            Channel(f"z.position_in_user_coordinates.gaze_origin.{e}", "mm", "PupilZ", eye),
            Channel(f"valid.gaze_origin.{e}", "bool", "ValidFlag", eye),
            Channel(f"available.gaze_origin.{e}", "bool", "AvailableFlag", eye),
            Channel(f"diameter.eye_openness.{e}", "mm", "EyeLidDistance", eye),
            Channel(f"valid.eye_openness.{e}", "bool", "ValidFlag", eye),
            Channel(f"available.eye_openness.{e}", "bool", "AvailableFlag", eye),
        ]
    chans.append(Channel("device_time_stamp", "s", "TimeStamp", described=False))
    return tuple(chans)


def _probs(prefix: str) -> list[Channel]:
    return [Channel(f"{prefix}_{c}", "probability", "Probability") for c in CLASSES]


GAZE_RAW = StreamSpec(
    key="gaze_raw",
    name="Tobii_gaze",
    type="Gaze",
    channels=_tobii_channels(),
    channel_format="double64",
    nominal_rate=DEVICE_RATE,
    source_prefix="TittaLSL",
    doc="TittaLSL gaze stream (Tobii Pro SDK gaze + eye openness), real or simulated.",
)

#: Event codes of the `event` channel of eyemotion_gaze.
#: Stream contract: these codes go out in eyemotion_gaze's `event` channel and are recorded in XDF files;
#: a code never changes meaning, new classes get new codes (5, 6 added by issue 14: post-saccadic
#: oscillation, smooth pursuit). The simulator's ground truth uses the same codes.
EVENT_CODES = {"fixation": 1, "saccade": 2, "blink": 3, "loss": 4, "unclassified": 0, "pso": 5, "pursuit": 6}

#: Bits of the `validity` channel of eyemotion_gaze (a sample is tracked when `validity & 3`).
GAZE_VALIDITY_BITS = {
    "left_gaze": 1,  # the left eye's gaze point went into x/y
    "right_gaze": 2,  # the right eye's gaze point went into x/y
    "left_pupil": 4,  # the left eye's pupil went into pupil_raw
    "right_pupil": 8,  # the right eye's pupil went into pupil_raw
    "gaze_interpolated": 16,  # x/y/angles filled by linear interpolation (short gap or blink)
    "pupil_interpolated": 32,  # pupil filled by linear interpolation (gap, blink or outlier)
    "bad_input": 64,  # a value flagged valid was NaN/inf, off the display or a negative pupil: rejected
    "distance_default": 128,  # no gaze origin seen yet: eye at screen.distance_mm in front of the centre
    "eyes_closed": 256,  # eye openness below eyesignal.closed_openness_mm: treated as invalid
    "time_irregular": 512,  # interval to the previous sample outside 0.5-1.5 sample periods
    "pupil_outlier": 1024,  # pupil rejected by the dilation-speed (MAD) filter
    "segment_start": 2048,  # first sample after the stream start, a rate change or a time gap
}

#: eyemotion_gaze, one sample per accepted Tobii_gaze sample, stamped with that sample's timestamp, after
#: the fixed delay in `desc/eyemotion/delay_samples` and `delay_s` (see `eyemotion.inference.eyesignal`).
#:   x, y                  binocular gaze on the display, normalised, (0, 0) = top-left; short gaps and
#:                         blinks interpolated; NaN during tracking loss
#:   angle_x, angle_y      gaze direction in degrees from the eye, relative to the display normal through
#:                         the eye; x positive to the right, y positive upwards
#:   pupil                 pupil diameter, outliers removed, gaps/blinks interpolated (002, Sec. III-A-3)
#:   pupil_raw             binocular pupil diameter as measured (NaN when invalid)
#:   pupil_fluctuation     pupil[i] - pupil[i-1] (002, footnote 3), NaN where either is missing
#:   velocity              angular gaze velocity over a ~20 ms window (Tobii I-VT)
#:   event                 EVENT_CODES: 1 fixation, 2 saccade, 3 blink, 4 tracking loss, 0 unclassified,
#:                         5 post-saccadic oscillation (PSO), 6 smooth pursuit
#:   eye_openness          mean eyelid opening of the valid eyes (NaN when not given)
#:   eye_distance          distance eye-display plane used for the angles (gaze origin z, else config)
#:   validity              bitmask, GAZE_VALIDITY_BITS
#:   x/y_saccade_corrected x, y linearly interpolated across saccades (002's "sweep correction")
GAZE_CLEAN = StreamSpec(
    key="gaze_clean",
    name="eyemotion_gaze",
    type="GazeClean",
    channels=(
        Channel("x", "normalized", "ScreenX"),
        Channel("y", "normalized", "ScreenY"),
        Channel("angle_x", "deg", "GazeAngleX"),
        Channel("angle_y", "deg", "GazeAngleY"),
        Channel("pupil", "mm", "Diameter"),
        Channel("pupil_raw", "mm", "Diameter"),
        Channel("pupil_fluctuation", "mm", "Diameter"),
        Channel("velocity", "deg/s", "AngularVelocity"),
        Channel("event", "code", "EventCode"),
        Channel("eye_openness", "mm", "EyeLidDistance"),
        Channel("eye_distance", "mm", "EyeDistance"),
        Channel("validity", "bitmask", "Validity"),
        Channel("x_saccade_corrected", "normalized", "ScreenX"),
        Channel("y_saccade_corrected", "normalized", "ScreenY"),
    ),
    channel_format="double64",
    nominal_rate=DEVICE_RATE,
    doc="Cleaned binocular gaze: blinks interpolated, events classified, pupil corrected.",
)

EYE_EVENTS = StreamSpec(
    key="eye_events",
    name="eyemotion_eye_events",
    type="EyeEvents",
    channels=(Channel("event", "json", "Event"),),
    channel_format="string",
    nominal_rate=IRREGULAR,
    doc="Eye events (fixation/saccade/pso/pursuit/blink/loss onsets, offsets and summaries), one JSON object "
        "each: {'event': 'fixation'|'saccade'|'pso'|'pursuit'|'blink'|'loss'|'discontinuity', 'phase': "
        "'onset'|'offset', 'onset': t, 'offset': t, 'duration_ms', 'x', 'y' (mean; fixation, saccade, pursuit), "
        "'amplitude_deg' (saccade), 'peak_velocity_deg_s', 'samples'}; stamped with the onset (phase onset) or "
        "offset (phase offset) sample's timestamp.",
)

CAMERA = StreamSpec(
    key="camera",
    name="eyemotion_camera",
    type="VideoFrames",
    channels=(Channel("frame_index", "index", "FrameIndex"),),
    channel_format="double64",
    nominal_rate=DEVICE_RATE,
    doc="One sample per captured webcam frame; frame i of camera.mkv (camera-N.mkv after a restart) is value i.",
    can_drop_samples=True,  # a webcam drops frames; each sample's stamp is its own frame's arrival
)

FACE_EMBEDDING_DIM = 128
FACE = StreamSpec(
    key="face",
    name="eyemotion_face",
    type="Face",
    channels=tuple(
        [Channel("face_present", "bool", "Flag")]
        + [Channel(f"box_{k}", "normalized", "Box") for k in ("x", "y", "w", "h")]
        + _probs("fer")
        + [Channel(f"embedding_{i:03d}", "", "Embedding") for i in range(FACE_EMBEDDING_DIM)]
    ),
    channel_format="float32",
    nominal_rate=IRREGULAR,
    doc="Per analysed camera frame (about 10-15 Hz): face box, 7 FER probabilities, face embedding.",
)

AUDIO = StreamSpec(
    key="audio",
    name="eyemotion_audio",
    type="Audio",
    channels=(Channel("audio", "normalized", "Audio"),),
    channel_format="float32",
    nominal_rate=16000.0,
    doc="Microphone, 16 kHz mono, pushed in chunks of 10-50 ms.",
)

MARKERS = StreamSpec(
    key="markers",
    name="eyemotion_markers",
    type="Markers",
    channels=(Channel("event", "json", "Marker"),),
    channel_format="string",
    nominal_rate=IRREGULAR,
    doc="Session events, one JSON object each (see eyemotion.acquisition.markers).",
)

EMOTION = StreamSpec(
    key="emotion",
    name="eyemotion_emotion",
    type="Emotion",
    channels=tuple(
        _probs("er")
        + _probs("fer")
        + [Channel("valence", "", "Valence"), Channel("arousal", "", "Arousal")]
        + [Channel(f"uses_{m}", "bool", "Modality") for m in ("face", "gaze", "audio")]
    ),
    channel_format="float32",
    nominal_rate=IRREGULAR,
    doc="Live predictions at 1-4 Hz: ER and FER probabilities, valence, arousal, modalities used.",
)

PREVIEW = StreamSpec(
    key="preview",
    name="eyemotion_preview",
    type="VideoPreview",
    channels=(Channel("jpeg_base64", "jpeg", "Image"),),
    channel_format="string",
    nominal_rate=IRREGULAR,
    recorded=False,
    doc="Small unrecorded camera preview for the dashboard (about 160x120 at 5 Hz), base64 JPEG.",
)

ALL: tuple[StreamSpec, ...] = (GAZE_RAW, GAZE_CLEAN, EYE_EVENTS, CAMERA, FACE, AUDIO, MARKERS, EMOTION, PREVIEW)
BY_NAME: dict[str, StreamSpec] = {s.name: s for s in ALL}


LSLAPICFG_ENV = "LSLAPICFG"


def configure_lsl(scope: str = "machine") -> Path | None:
    """Point liblsl (ours, LabRecorderCLI's and TittaLSL's, via `LSLAPICFG`) at a config with `scope`.

    Must run before the first LSL call of the process; child processes inherit it. A user's own
    `LSLAPICFG` is left alone. Returns the config file used (None when the user's own is kept).
    """
    if os.environ.get(LSLAPICFG_ENV):
        return None
    path = Path(tempfile.gettempdir()) / f"eyemotion-lsl-{scope}.cfg"
    # [log] level -2: liblsl prints only errors (its INFO lines would fill every node's log)
    text = f"[multicast]\nResolveScope = {scope}\n\n[log]\nlevel = -2\n"
    if scope == "machine":
        # liblsl's machine scope sends its queries to 127.0.0.1:16571, which Linux delivers to only one of
        # the sockets bound there (one outlet of one process): resolving then misses most local streams.
        # The loopback broadcast address reaches every socket bound to that port and answers within
        # milliseconds. LabRecorderCLI's older liblsl (1.17) does not resolve through it, so every outlet
        # port on 127.0.0.1 is also asked directly (KnownPeers; about 1 s per query). Neither leaves the
        # machine. Each outlet takes a port; one demo session and a few tests beside it filled 200 ports, and an
        # outlet beyond the range (liblsl then picks a random port) is invisible to that unicast scan:
        # LabRecorderCLI could not start, or never re-found a restarted node's stream. Hence 1000 ports,
        # IPv4 only (IPv6 sockets doubled the ports taken and 127.0.0.1 is all the machine scope uses).
        text = text.replace("\n", "\nMachineAddresses = {127.255.255.255}\n", 1)
        text += "\n[lab]\nKnownPeers = {127.0.0.1}\n\n[ports]\nPortRange = 1000\nIPv6 = disable\n"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    os.environ[LSLAPICFG_ENV] = str(path)
    return path


def stream_info(
    spec: StreamSpec,
    *,
    namespace: str = "",
    rate: float | None = None,
    device: str = "",
    acquisition: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> pylsl.StreamInfo:
    """Build the StreamInfo of `spec` with its `desc` (channels, and TittaLSL's `acquisition` block).

    `rate` is required for DEVICE_RATE streams and must match the contract's rate otherwise.
    `extra` adds `desc/eyemotion/<key>` values (e.g. the model ids, a processing delay, `replay`).
    """
    if spec.nominal_rate == DEVICE_RATE:
        if rate is None or not 0 < rate < math.inf:  # NaN fails too
            raise ContractError(f"{spec.name}: a positive, finite device rate is required, not {rate}")
        if spec.allowed_rates and rate not in spec.allowed_rates:
            raise ContractError(f"{spec.name}: rate {rate} Hz not in {spec.allowed_rates}")
        srate = float(rate)
    else:
        if rate is not None and rate != spec.nominal_rate:
            raise ContractError(f"{spec.name}: rate must be {spec.nominal_rate} Hz, not {rate}")
        srate = spec.nominal_rate
    info = pylsl.StreamInfo(
        spec.name, spec.type, spec.channel_count, srate, _FORMATS[spec.channel_format],
        spec.source_id(namespace, device),
    )
    desc = info.desc()
    if acquisition is not None:
        acq = desc.append_child("acquisition")
        for k, v in acquisition.items():
            acq.append_child_value(k, str(v))
    if spec.can_drop_samples:
        desc.append_child("synchronization").append_child_value("can_drop_samples", "true")
    chans = desc.append_child("channels")
    for c in spec.channels:
        if not c.described:
            continue
        ch = chans.append_child("channel")
        ch.append_child_value("label", c.label)
        if c.eye:
            ch.append_child_value("eye", c.eye)
        ch.append_child_value("type", c.type)
        ch.append_child_value("unit", c.unit)
    if extra:
        em = desc.append_child("eyemotion")
        for k, v in extra.items():
            em.append_child_value(k, str(v))
    return info


def described_labels(info: pylsl.StreamInfo) -> list[str]:
    """The channel labels in an info's `desc/channels` (empty when the info carries no desc)."""
    labels = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling("channel")
    return labels


def desc_value(info: pylsl.StreamInfo, *path: str) -> str:
    """The text of `desc/<path...>` ('' if absent), e.g. `desc_value(info, "eyemotion", "replay")`."""
    node = info.desc()
    for p in path[:-1]:
        node = node.child(p)
    return node.child_value(path[-1])


def check_info(spec: StreamSpec, info: pylsl.StreamInfo, *, check_desc: bool = True) -> list[str]:
    """Every difference between a stream's info and the contract (empty list = matches).

    `check_desc` compares channel labels when the info carries a desc (infos from `resolve` carry none;
    `StreamInlet.info()` does).
    """
    diffs = []
    if info.name() != spec.name:
        diffs.append(f"name is {info.name()!r}, expected {spec.name!r}")
    if info.type() != spec.type:
        diffs.append(f"type is {info.type()!r}, expected {spec.type!r}")
    if info.channel_count() != spec.channel_count:
        diffs.append(f"has {info.channel_count()} channels, expected {spec.channel_count}")
    fmt = _FORMAT_NAMES.get(info.channel_format(), f"format #{info.channel_format()}")
    if fmt != spec.channel_format:
        diffs.append(f"channel format is {fmt}, expected {spec.channel_format}")
    rate = info.nominal_srate()
    if spec.nominal_rate == DEVICE_RATE:
        if not 0 < rate < math.inf:  # NaN fails too
            diffs.append(f"nominal rate is {rate}, expected a positive, finite device rate")
        elif spec.allowed_rates and rate not in spec.allowed_rates:
            diffs.append(f"nominal rate is {rate} Hz, expected one of {spec.allowed_rates}")
    elif rate != spec.nominal_rate:
        diffs.append(f"nominal rate is {rate} Hz, expected {spec.nominal_rate} Hz")
    if check_desc:
        labels = described_labels(info)
        expected = [c.label for c in spec.channels if c.described]
        if labels and labels != expected:
            wrong = [f"#{i}: {a!r} != {b!r}" for i, (a, b) in enumerate(zip(labels, expected)) if a != b]
            if len(labels) != len(expected):
                wrong.insert(0, f"{len(labels)} described channels, expected {len(expected)}")
            diffs.append("channel labels differ (" + "; ".join(wrong[:5]) + ("; ..." if len(wrong) > 5 else "") + ")")
    return diffs


def check_or_raise(spec: StreamSpec, info: pylsl.StreamInfo, *, check_desc: bool = True) -> None:
    diffs = check_info(spec, info, check_desc=check_desc)
    if diffs:
        raise ContractError(
            f"stream {info.name()!r} from {info.source_id()!r} does not match the contract: " + "; ".join(diffs)
            + f". Fix the producer, or publish it as {spec.name!r} with eyemotion's layout"
        )


def _predicate(spec: StreamSpec, namespace: str, hostname: str, source_id: str = "") -> str:
    pred = f"name='{spec.name}'"
    if namespace:
        pred += f" and contains(source_id,'#{namespace}')"
    if hostname:
        pred += f" and hostname='{hostname}'"
    if source_id:
        pred += f" and source_id='{source_id}'"
    return pred


def _accept(info: pylsl.StreamInfo, namespace: str) -> bool:
    sid = info.source_id()
    return sid.endswith(f"#{namespace}") if namespace else True


def find(spec: StreamSpec, *, namespace: str = "", hostname: str = "", source_id: str = "",
         timeout: float = 2.0, minimum: int = 1) -> list[pylsl.StreamInfo]:
    """All streams on the network with the spec's name that pass the namespace/host filters."""
    infos = pylsl.resolve_bypred(_predicate(spec, namespace, hostname, source_id), minimum, timeout)
    return [i for i in infos if _accept(i, namespace)]


def resolve(spec: StreamSpec, *, namespace: str = "", hostname: str = "", source_id: str = "",
            timeout: float = 5.0) -> pylsl.StreamInfo:
    """Find exactly one stream of `spec` and check its basic layout against the contract.

    Raises StreamNotFound (naming the filters) or ContractError (naming every difference).
    """
    infos = find(spec, namespace=namespace, hostname=hostname, source_id=source_id, timeout=timeout)
    if not infos:
        where = "".join([f" in namespace {namespace!r}" if namespace else "",
                         f" on host {hostname!r}" if hostname else "",
                         f" with source_id {source_id!r}" if source_id else ""])
        raise StreamNotFound(f"no {spec.name} stream found{where} within {timeout:g} s; "
                             f"start its producer (e.g. `eyemotion stream --simulate`) or check [lsl] settings")
    if len(infos) > 1:
        ids = ", ".join(sorted(f"{i.source_id()}@{i.hostname()}" for i in infos))
        raise StreamNotFound(f"{len(infos)} {spec.name} streams found ({ids}); "
                             f"select one with [lsl] hostname or namespace")
    check_or_raise(spec, infos[0], check_desc=False)
    return infos[0]


def clock_processing(info: pylsl.StreamInfo) -> int:
    """The inlet's processing flags for a stream: none from this machine, whose outlets share its LSL clock
    (liblsl's clock-offset estimate there is not 0 but 20-35 us of measurement jitter, renewed every few
    seconds, which would move the samples' stamps), else clock synchronisation to this machine's clock."""
    return pylsl.proc_none if info.hostname() == socket.gethostname() else pylsl.proc_clocksync


def open_inlet(spec: StreamSpec, *, namespace: str = "", hostname: str = "", source_id: str = "",
               timeout: float = 5.0, max_buflen: int = 360, processing: int | None = None) -> pylsl.StreamInlet:
    """Resolve one stream of `spec`, open an inlet, check its full info (desc included) and subscribe.
    `processing`: pylsl's processing flags; by default `clock_processing`'s."""
    info = resolve(spec, namespace=namespace, hostname=hostname, source_id=source_id, timeout=timeout)
    flags = clock_processing(info) if processing is None else processing
    inlet = pylsl.StreamInlet(info, max_buflen=max_buflen, processing_flags=flags)
    full = inlet.info(timeout=timeout)
    check_or_raise(spec, full)
    inlet.open_stream(timeout=timeout)  # subscribed from here on: no sample pushed after this is missed
    return inlet
