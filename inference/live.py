"""The live inference node: eyemotion_gaze / eyemotion_face / eyemotion_audio (+ markers) in, eyemotion_emotion out.

Windows
-------
`WindowInputs` is the one streaming object that turns the three input streams into model inputs; the
node, `predict_offline` and the session dataset builder (`eyemotion.models.sessions_dataset`) all use it,
so a window holds the same numbers live and offline. Per window `[end - 4 s, end)` it builds
- EMERT (002_cbeb04dbce786b8c.txt, Sec. IV and V-A-2): 8 face embeddings, 32 eyemotion_gaze samples and
  32 fixation-map slices (`EmertWindowBuilder`); the slices come from `eyesignal.maps.FixationMapper` on an
  absolute time grid of `emert_window_s / map_slices` (0.125 s), each slice normalised to sum 1 (all 0
  without fixations), as `models.shapes` documents. 002 samples these counts from each whole clip (as
  training and evaluation do, `models.sessions_dataset`); live they come from the last 4 s, a deviation;
- the crossmodal model (000_e9deb5c9c21c243c.txt, Sec. 3.5): per face frame the embedding and the 103
  gaze statistics of the 1-s window ending there, and 4 eGeMAPS sub-windows (`CrossmodalWindowBuilder`).
  Audio sub-windows without speech make the audio modality absent (NaN).
Window ends lie on a fixed grid, multiples of a period close to 1 / `[inference] rate_hz` that is a whole
number of fixation slices (2 Hz: every 0.5 s), so the last slice of a window is always complete.

When is a window computed (live)? Once every *active* input (one that delivered data in the last
`[inference] stale_s`, or connected less than that ago) has a sample at or after the window end: its
content is then final, and identical to offline reprocessing of the same samples. An input that went
silent is not waited for; the window is computed without it (and then may differ from offline).

Models and the published prediction
-----------------------------------
`Predictor` runs, through `inference.runtime.OnnxModel`,
- EMERT (`emert.onnx`) whenever the face or the gaze is present (a missing one is NaN = the training mean
  inside the graph): 7-class ER, FER, valence and arousal;
- the crossmodal model as designed (000 Sec. 3: monomodal test time; 001_8cd198317e00f0b1.txt Sec. 3.4:
  joint prediction): `<stem>-joint.onnx` when face and speech are both present, else `<stem>-visual.onnx`
  (a face is present) or `<stem>-audio.onnx` (speech is present). The joint graph holds its own audio
  branch, so it runs only when its card's training data is the audio graph's; otherwise (the shipped
  audio graph is trained on real speech, RAVDESS, the shipped joint graph on simulated sessions) face and
  speech give the visual and the audio graph, both entering the mean.
eyemotion_emotion carries: ER = mean of the ER distributions of the models that ran; FER = EMERT's FER
head when a face is present (NaN otherwise); valence / arousal = EMERT's (NaN when EMERT did not run);
uses_face / uses_gaze / uses_audio = which inputs entered the prediction. A window with none of them
is not published. The sample is stamped with the window end; `desc/eyemotion` names the models.
The delay from the window end (the newest input sample it covers: a gaze sample's own time) to the push
is kept in `InferenceNode.delays_s`, logged every 10 s and pushed every 10 s as an `inference_latency`
marker (`delays_ms`: each prediction's delay since the last one), so the recording holds it: the session
summary and bench/ read it from there.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from eyemotion.acquisition.markers import MarkerOutlet
from eyemotion.inference.features.builders import CrossmodalWindowBuilder, EmertWindowBuilder
from eyemotion.inference.runtime import ModelError, OnnxModel
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeout

from eyemotion.config import Config
from eyemotion.nodes import Node
from eyemotion.streams import AUDIO, CLASSES, EMOTION, FACE, GAZE_CLEAN, MARKERS, StreamSpec

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SHIPPED_EMERT = MODELS_DIR / "emert.onnx"
SHIPPED_CROSSMODAL = MODELS_DIR / "crossmodal"
CROSSMODAL_PARTS = ("visual", "audio", "joint")
_X = GAZE_CLEAN.index("x")
_PUPIL = GAZE_CLEAN.index("pupil")
LOG_EVERY_S = 10.0


# --- window timing ---------------------------------------------------------------------------------

def slice_s(config: Config) -> float:
    """Length of one EMERT fixation-map slice (s): the window over the slices per window."""
    return config.features.emert_window_s / config.eyesignal.map_slices


def window_period_s(config: Config) -> float:
    """The period of window ends: 1 / rate_hz rounded to a whole number (>= 1) of fixation slices."""
    s = slice_s(config)
    return s * max(1, round(1.0 / config.inference.rate_hz / s))


def grid_end_at_or_before(t: float, period: float) -> float:
    """The latest window end on the grid k * period that is <= t."""
    return math.floor(t / period + 1e-9) * period


# --- inputs --------------------------------------------------------------------------------------

@dataclass
class WindowFeeds:
    """Model inputs of one window (no batch axis) and which inputs are present."""

    end: float
    emert: dict[str, np.ndarray]  # face (8, 128), eye (32, 14), fixation (32, 18, 32)
    crossmodal: dict[str, np.ndarray]  # visual_face (T, 128), visual_gaze (T, 103), audio (S, 88)
    face: bool  # a face in the window
    gaze: bool  # tracked gaze in the window
    audio: bool  # speech in the window


class WindowInputs:
    """Streaming: push eyemotion_gaze / _face / _audio chunks, ask for the model inputs of a window end.

    The same object runs live (`InferenceNode`) and offline (`predict_offline`, the dataset builder); what
    a window holds depends only on the samples, never on the chunking. `keep_s` = how far behind the
    newest sample a window may be asked for (offline: `math.inf`).
    """

    def __init__(self, config: Config, keep_s: float | None = None) -> None:
        from eyemotion.inference.eyesignal.maps import MapGrid

        f = config.features
        self.config = config
        self.keep_s = keep_s if keep_s is not None else \
            max(f.emert_window_s, f.crossmodal_window_s) + config.inference.max_lag_s
        self.slice_s = slice_s(config)
        self.grid = MapGrid.of(config.eyesignal, config.screen)
        self.emert = EmertWindowBuilder(f.emert_window_s, GAZE_CLEAN.channel_count,
                                        (self.grid.rows, self.grid.columns), keep_s=self.keep_s)
        self.cross = CrossmodalWindowBuilder(f.crossmodal_window_s, f.crossmodal_frames, f.crossmodal_audio_steps,
                                             keep_s=self.keep_s + 1.0)
        self.gaze_rate: float | None = None
        self._gaze_stats = None
        self._mapper = None
        self._egemaps = None

    def push_gaze(self, timestamps: np.ndarray, samples: np.ndarray, rate: float) -> None:
        """eyemotion_gaze samples at the stream's nominal `rate` (a new rate restarts the gaze extractors)."""
        from eyemotion.inference.eyesignal.maps import FixationMapper
        from eyemotion.inference.features.gaze_stats import GazeStatistics, GazeStatsSettings

        if not len(timestamps):
            return
        if rate != self.gaze_rate:
            self.gaze_rate = rate
            self._gaze_stats = GazeStatistics(GazeStatsSettings.from_config(self.config.features, rate))
            self._mapper = FixationMapper(rate, self.slice_s, self.grid, origin=0.0)
        timestamps = np.asarray(timestamps, float)
        samples = np.asarray(samples, float)
        self.emert.push_gaze(timestamps, samples)
        self.cross.push_gaze_stats(self._gaze_stats.push(timestamps, samples))
        done = self._mapper.push(timestamps, samples)
        if done:
            maps = np.stack([d.map for d in done])
            total = maps.sum(axis=(1, 2), keepdims=True)
            maps = np.divide(maps, total, out=np.zeros_like(maps), where=total > 0)
            # stamped at the slice centre: a window [end - W, end) on the slice grid takes exactly its slices
            self.emert.push_fixation(np.array([d.start + self.slice_s / 2 for d in done]), maps)

    def push_face(self, timestamps: np.ndarray, samples: np.ndarray) -> None:
        """eyemotion_face samples (frames without a face are kept out of the windows)."""
        if not len(timestamps):
            return
        self.emert.push_face(timestamps, samples)
        self.cross.push_face(timestamps, samples)

    def push_audio(self, timestamps: np.ndarray, samples: np.ndarray) -> None:
        """16 kHz eyemotion_audio samples -> eGeMAPS sub-windows (with voice activity)."""
        from eyemotion.inference.features.audio import AudioSettings, EgemapsFeatures

        if not len(timestamps):
            return
        if self._egemaps is None:
            self._egemaps = EgemapsFeatures(AudioSettings.from_config(self.config.features))
        windows = self._egemaps.push(np.asarray(timestamps, float), np.asarray(samples, float))
        if len(windows):
            self.cross.push_audio(windows)

    def inputs(self, end: float) -> WindowFeeds:
        e = self.emert.window(end)
        c = self.cross.window(end)
        gaze = bool(e.gaze_present and np.isfinite(e.gaze[:, [_X, _PUPIL]]).any())
        audio = c.audio if c.audio_present else np.full_like(c.audio, np.nan)
        return WindowFeeds(
            end,
            {"face": e.face, "eye": e.gaze, "fixation": e.fixation},
            {"visual_face": c.face, "visual_gaze": c.gaze, "audio": audio},
            face=bool(e.face_present), gaze=gaze, audio=bool(c.audio_present),
        )


# --- models --------------------------------------------------------------------------------------

@dataclass
class Prediction:
    """One eyemotion_emotion sample and the outputs behind it."""

    end: float
    er7: np.ndarray
    fer7: np.ndarray
    valence: float
    arousal: float
    uses_face: bool
    uses_gaze: bool
    uses_audio: bool
    parts: dict[str, np.ndarray] = field(default_factory=dict)  # "emert", "crossmodal-joint", ... -> ER probs

    def sample(self) -> list[float]:
        """The channels of eyemotion_emotion in contract order."""
        return [*map(float, self.er7), *map(float, self.fer7), float(self.valence), float(self.arousal),
                float(self.uses_face), float(self.uses_gaze), float(self.uses_audio)]


def crossmodal_paths(stem: str | Path) -> dict[str, Path]:
    """The three crossmodal graphs of a stem (`models/crossmodal`, or one of its .onnx files)."""
    stem = Path(stem)
    name = stem.name[:-5] if stem.suffix == ".onnx" else stem.name
    for part in CROSSMODAL_PARTS:
        if name.endswith(f"-{part}"):
            name = name[: -len(part) - 1]
    return {part: stem.with_name(f"{name}-{part}.onnx") for part in CROSSMODAL_PARTS}


def model_id(model: OnnxModel) -> str:
    card = model.card
    source = card.get("training_data", {}).get("provenance", {}).get("source", "")
    sha = str(card.get("sha256", ""))[:12]
    return f"{model.path.name} sha256:{sha}" + (f" trained on {source}" if source else "")


class Predictor:
    """EMERT and the three crossmodal graphs, run on `WindowFeeds` (see the module docstring)."""

    def __init__(self, config: Config, *, emert: str | Path | None = None, crossmodal: str | Path | None = None
                 ) -> None:
        inf = config.inference
        emert_path = Path(emert or inf.emert_model or SHIPPED_EMERT)
        paths = crossmodal_paths(crossmodal or inf.crossmodal_model or SHIPPED_CROSSMODAL)
        self.emert = OnnxModel(emert_path, threads=inf.threads)
        self.crossmodal = {part: OnnxModel(p, threads=inf.threads) for part, p in paths.items()}
        for part, model in self.crossmodal.items():
            if model.card.get("part") not in (None, part):
                raise ModelError(f"{model.path.name} is the crossmodal {model.card.get('part')!r} graph, not "
                                 f"{part!r}; pass the stem of -visual/-audio/-joint.onnx files")
        # the joint graph carries its own audio branch: use it only beside the audio graph it was exported with
        # (the shipped audio graph is trained on real speech, the shipped joint one on simulated sessions)
        cards = {p: m.card.get("training_data") for p, m in self.crossmodal.items()}
        self.joint_ok = cards.get("joint") == cards.get("audio")
        self.ids = {"emert": model_id(self.emert),
                    **{f"crossmodal_{p}": model_id(m) for p, m in self.crossmodal.items()}}

    @staticmethod
    def _run(model: OnnxModel, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = {spec.name: feeds[spec.name][None].astype(np.float32) for spec in model.inputs}
        return [out[0] for out in model.run(batch)]

    def predict(self, w: WindowFeeds) -> Prediction | None:
        ers: dict[str, np.ndarray] = {}
        fer = np.full(len(CLASSES), np.nan)
        valence = arousal = math.nan
        if w.face or w.gaze:
            er7, _er3, va, fer7 = self._run(self.emert, w.emert)
            ers["emert"] = er7
            valence, arousal = float(va[0]), float(va[1])
            if w.face:
                fer = fer7
        if w.face and w.audio and self.joint_ok:
            ers["crossmodal-joint"] = self._run(self.crossmodal["joint"], w.crossmodal)[0]
        elif w.face and w.audio:  # late fusion of the two monomodal graphs
            ers["crossmodal-visual"] = self._run(self.crossmodal["visual"], w.crossmodal)[0]
            ers["crossmodal-audio"] = self._run(self.crossmodal["audio"], w.crossmodal)[0]
        elif w.face:
            ers["crossmodal-visual"] = self._run(self.crossmodal["visual"], w.crossmodal)[0]
        elif w.audio:
            ers["crossmodal-audio"] = self._run(self.crossmodal["audio"], w.crossmodal)[0]
        if not ers:
            return None
        er = np.mean(np.stack(list(ers.values())), axis=0)
        return Prediction(w.end, er, fer, valence, arousal, w.face, w.gaze, w.audio, ers)


def predict_offline(config: Config, ends: np.ndarray, *, gaze: tuple[np.ndarray, np.ndarray, float] | None = None,
                    face: tuple[np.ndarray, np.ndarray] | None = None, audio: tuple[np.ndarray, np.ndarray] | None = None,
                    predictor: Predictor | None = None) -> list[Prediction | None]:
    """Offline reprocessing: the node's objects on whole arrays, predictions at the window `ends`.

    gaze = (timestamps, eyemotion_gaze samples, nominal rate); face = (timestamps, eyemotion_face samples);
    audio = (timestamps, 16 kHz samples).
    """
    predictor = predictor or Predictor(config)
    inputs = WindowInputs(config, keep_s=math.inf)
    if gaze is not None:
        inputs.push_gaze(gaze[0], gaze[1], gaze[2])
    if face is not None:
        inputs.push_face(*face)
    if audio is not None:
        inputs.push_audio(*audio)
    return [predictor.predict(inputs.inputs(float(end))) for end in ends]


# --- the node ------------------------------------------------------------------------------------

@dataclass
class _Source:
    spec: StreamSpec
    inlet: object
    source_id: str
    rate: float
    connected_at: float
    last_arrival: float | None = None
    newest: float | None = None  # newest sample timestamp
    first_arrival: float | None = None


class InferenceNode(Node):
    """Reads the input streams present (they may appear late or vanish), publishes eyemotion_emotion."""

    name = "inference"
    INPUTS: tuple[StreamSpec, ...] = (GAZE_CLEAN, FACE, AUDIO)
    DISCOVER_EVERY_S = 0.5

    def __init__(self, config: Config, *, emert: str | Path | None = None,
                 crossmodal: str | Path | None = None) -> None:
        super().__init__(config)
        self._model_paths = (emert, crossmodal)
        self.predictor: Predictor | None = None
        self.outlet = None
        self.inputs = WindowInputs(config)
        self.period = window_period_s(config)
        self.sources: dict[str, _Source] = {}
        self.marker_inlets: dict[str, object] = {}
        self._resolvers: dict[str, object] = {}
        self._rejected: set[str] = set()
        self._next_discovery = 0.0
        self.last_end: float | None = None
        self.published = 0
        self.delays_s: deque[float] = deque(maxlen=2000)
        self.compute_s: deque[float] = deque(maxlen=2000)
        self._unreported_ms: list[float] = []
        self.markers: MarkerOutlet | None = None
        self._next_log = 0.0
        self.clip: dict | None = None
        self._clip_er: list[np.ndarray] = []
        self.clip_summaries: list[dict] = []

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        import pylsl

        from eyemotion.streams import stream_info

        emert, crossmodal = self._model_paths
        self.predictor = Predictor(self.config, emert=emert, crossmodal=crossmodal)
        extra = {**self.predictor.ids, "rate_hz": f"{1 / self.period:.4g}",
                 "window_s": str(self.config.features.emert_window_s),
                 "combination": "ER: mean of the models that ran; FER and valence/arousal: EMERT"}
        self.outlet = pylsl.StreamOutlet(stream_info(EMOTION, namespace=self.config.lsl.namespace, extra=extra))
        self.markers = MarkerOutlet("inference", namespace=self.config.lsl.namespace)
        self._rejected.add(self.markers.outlet.get_info().source_id())  # never read our own markers
        for spec in (*self.INPUTS, MARKERS):
            self._resolvers[spec.key] = pylsl.ContinuousResolver(pred=f"name='{spec.name}'", forget_after=3.0)
        log.info("inference: %s; windows every %.3f s", ", ".join(self.predictor.ids.values()), self.period)

    def close(self) -> None:
        self._log_stats(force=True)
        self.sources.clear()
        self.marker_inlets.clear()
        self._resolvers.clear()
        self.outlet = self.markers = None

    @property
    def connected(self) -> set[str]:
        """Names of the input streams with an open inlet."""
        return {s.spec.name for s in self.sources.values()} | ({MARKERS.name} if self.marker_inlets else set())

    # -- discovery --------------------------------------------------------------------------------
    def _accept(self, info) -> bool:
        ns, host = self.config.lsl.namespace, self.config.lsl.hostname
        sid = info.source_id()
        return (sid.endswith(f"#{ns}") if ns else True) and (not host or info.hostname() == host)

    def _open_inlet(self, spec: StreamSpec, info):
        import pylsl

        from eyemotion.streams import ContractError, check_or_raise, clock_processing

        sid = info.source_id()
        try:
            inlet = pylsl.StreamInlet(info, max_buflen=30, processing_flags=clock_processing(info), recover=False)
            check_or_raise(spec, inlet.info(timeout=1.0))
            inlet.open_stream(timeout=1.0)
        except ContractError as exc:
            self._rejected.add(sid)
            log.error("inference: ignoring %s: %s", sid, exc)
            return None
        except (LostError, LslTimeout, TimeoutError) as exc:
            log.debug("inference: %s not reachable yet (%s)", sid, exc)
            return None
        return inlet

    def _discover(self, now: float) -> None:
        import pylsl

        for spec in (*self.INPUTS, MARKERS):
            if spec.key in self.sources:
                continue
            for info in self._resolvers[spec.key].results():
                sid = info.source_id()
                if sid in self._rejected or not self._accept(info) or sid in self.marker_inlets:
                    continue
                inlet = self._open_inlet(spec, info)
                if inlet is None:
                    continue
                if spec is MARKERS:
                    self.marker_inlets[sid] = inlet
                    log.info("inference: reading markers from %s", sid)
                    continue
                self.sources[spec.key] = _Source(spec, inlet, sid, info.nominal_srate(), pylsl.local_clock())
                log.info("inference: reading %s from %s", spec.name, sid)
                break

    # -- the loop ---------------------------------------------------------------------------------
    def step(self) -> None:
        import pylsl

        now = pylsl.local_clock()
        if now >= self._next_discovery:
            self._next_discovery = now + self.DISCOVER_EVERY_S
            self._discover(now)
        got = self._pull(now)
        self._pull_markers()
        self._emit(pylsl.local_clock())
        self._log_stats()
        if not got:
            time.sleep(0.01)

    def _pull(self, now: float) -> bool:

        got = False
        for key, src in list(self.sources.items()):
            try:
                data, stamps = src.inlet.pull_chunk(timeout=0.0, max_samples=16000)
            except LostError:
                log.warning("inference: %s (%s) vanished; continuing without it", src.spec.name, src.source_id)
                del self.sources[key]
                continue
            if not stamps:
                continue
            got = True
            stamps = np.asarray(stamps, float)
            values = np.asarray(data, float).reshape(len(stamps), -1)
            src.last_arrival, src.newest = now, float(stamps[-1])
            if src.first_arrival is None:
                src.first_arrival = now
            if src.spec is GAZE_CLEAN:
                self.inputs.push_gaze(stamps, values, src.rate)
            elif src.spec is FACE:
                self.inputs.push_face(stamps, values)
            else:
                self.inputs.push_audio(stamps, values)
        return got

    def _pull_markers(self) -> None:
        import json


        for sid, inlet in list(self.marker_inlets.items()):
            try:
                data, stamps = inlet.pull_chunk(timeout=0.0)
            except LostError:
                del self.marker_inlets[sid]
                continue
            for (text,), t in zip(data, stamps):
                try:
                    marker = json.loads(text)
                except ValueError:
                    continue
                if isinstance(marker, dict):
                    self._on_marker(marker, t)

    def _on_marker(self, marker: dict, t: float) -> None:
        event = marker.get("event")
        if event == "clip_onset":
            self.clip, self._clip_er = {"clip": marker.get("clip"), "emotion": marker.get("emotion"), "onset": t}, []
        elif event == "clip_offset" and self.clip is not None:
            summary = dict(self.clip, offset=t, predictions=len(self._clip_er))
            if self._clip_er:
                mean = np.mean(self._clip_er, axis=0)
                summary.update(predicted=CLASSES[int(np.argmax(mean))], probability=round(float(mean.max()), 3))
            self.clip_summaries.append(summary)
            log.info("inference: clip %s (%s): %s", summary["clip"], summary["emotion"],
                     f"predicted {summary['predicted']} (p {summary['probability']})" if self._clip_er
                     else "no prediction")
            self.clip = None

    def ready_until(self, now: float) -> float | None:
        """The newest time every active input has reached (None: no active input has data)."""
        stale = self.config.inference.stale_s
        # an input that never delivered counts from when data began to flow on any input (not from its
        # connection): nodes waiting for a replay to start must not write off the face stream, whose
        # first frame comes a little after the first gaze samples
        flowing = min((s.first_arrival for s in self.sources.values() if s.first_arrival is not None),
                      default=None)
        active = [s for s in self.sources.values()
                  if now - (s.last_arrival or max(s.connected_at, flowing or s.connected_at)) < stale]
        if not active or any(s.newest is None for s in active):
            return None
        return min(s.newest for s in active)

    def _emit(self, now: float) -> None:
        until = self.ready_until(now)
        if until is None:
            return
        newest_end = grid_end_at_or_before(until, self.period)
        if self.last_end is None:
            ends = [newest_end]
        else:
            k0 = round(self.last_end / self.period) + 1
            k1 = round(newest_end / self.period)
            k0 = max(k0, k1 - int(2.0 / self.period))  # never more than ~2 s behind
            ends = [k * self.period for k in range(k0, k1 + 1)]
        for end in ends:
            t0 = time.perf_counter()
            prediction = self.predictor.predict(self.inputs.inputs(end))
            self.last_end = end
            if prediction is None:
                continue
            self.outlet.push_sample(prediction.sample(), end)
            import pylsl

            self.compute_s.append(time.perf_counter() - t0)
            self.delays_s.append(pylsl.local_clock() - end)
            self._unreported_ms.append(round(self.delays_s[-1] * 1000, 1))
            self.published += 1
            if self.clip is not None:
                self._clip_er.append(prediction.er7)

    def _log_stats(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_log:
            return
        self._next_log = now + LOG_EVERY_S
        if self._unreported_ms and self.markers is not None:
            self.markers.push("inference_latency", delays_ms=self._unreported_ms)
            self._unreported_ms = []
        if not self.delays_s:
            return
        d = np.array(self.delays_s) * 1000
        c = np.array(self.compute_s) * 1000
        log.info("inference: %d predictions; delay window end -> push p50 %.0f ms, p95 %.0f ms; "
                 "models %.1f ms p50; inputs: %s", self.published, np.percentile(d, 50), np.percentile(d, 95),
                 np.percentile(c, 50), ", ".join(sorted(self.connected)) or "none")
