"""Simulated emotion-elicitation sessions, generated offline (no real-time LSL), for the default weights.

A simulated participant watches one clip per emotion (times `clips_per_emotion`) in a seeded random
order; each clip is followed by a short pause. The participant *feels* the clip's target emotion 85 % of
the time (another one otherwise) and every simulated signal follows the felt emotion, which is also what
the self-report says (trials.csv: felt emotion, valence / arousal on a 9-point SAM scale mapped to
[-1, 1], intensity 1-5).

- Gaze: `acquisition.simulator.simulate_recording` conditioned on the felt emotion during each clip
  (per-emotion blink rate, fixation duration, saccade amplitude, fixational jitter, arousal pupil
  dilation: see that module), then the eye-signal processor (the live node's object) offline:
  eyemotion_gaze.
- Face (a stand-in, documented in the model cards): running the camera pipeline on a generated video would
  cost about 40 ms per frame here (bench_features), too slow for hundreds of simulated clips. Instead each
  participant gets one real face, a 25x25 crop of scikit-image's LFW subset (`skimage.data.lfw_subset`,
  faces 0-99) upscaled to the face model's 64x64 input, and each frame of a clip is that face with an
  emotion-dependent expression warp (mouth corners, brows, eyelids, jaw; a smooth displacement field
  scaled by the clip's intensity) plus per-frame head jitter, lighting and sensor noise. The real face
  model (`models/face_fer.onnx`, the camera node's) turns the crops into the FER probabilities and the
  embedding of eyemotion_face, at `[face] rate_hz`; 3 % of frames have no face. Face detection and
  alignment are skipped (they are tested on real photos elsewhere).
- Audio: speech-like sound generated per clip (the participant narrates): a glottal pulse train through
  three formant resonators, syllables with vowel targets, phrases and pauses. Prosody depends on the
  felt emotion, in the directions reported for vocal affect (Juslin & Laukka 2003, Psychol. Bull.
  129:770: anger, fear and happiness raise pitch, pitch range, rate and loudness; sadness lowers them),
  with magnitudes of our own choosing, around a per-participant voice (base pitch, loudness). The
  pauses between clips are near-silent. eGeMAPS is then computed by the live extractor.
These magnitudes are a synthetic design with overlap between classes, not measurements: models trained on
them are for pipeline testing, not for scientific inference.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eyemotion.models.dataset import PLANTED_VA
from eyemotion.models.sessions_dataset import ClipLabel, SessionStreams

from eyemotion.config import Config
from eyemotion.streams import CLASSES, FACE, FACE_EMBEDDING_DIM

SAMPLE_RATE = 16000
FELT_IS_TARGET = 0.85
NO_FACE_SHARE = 0.03
T0 = 1000.0  # LSL time of a simulated session's first sample


@dataclass(frozen=True)
class SimulationSettings:
    participants: int = 15
    clips_per_emotion: int = 1
    clip_s: float = 16.0
    pause_s: float = 3.0
    gaze_rate: float = 250.0
    seed: int = 0
    emotions: tuple[str, ...] = CLASSES  # the clip targets (each `clips_per_emotion` times)


# --- voice ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prosody:
    pitch: float  # factor on the speaker's base F0
    range_st: float  # pitch movement, semitones (SD of the intonation contour)
    syllables_per_s: float
    level_db: float  # loudness relative to the speaker's neutral voice
    jitter: float  # relative period-to-period F0 perturbation


#: Per felt emotion (synthetic magnitudes; directions after Juslin & Laukka 2003, see the module docstring).
PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 1.5, 4.0, 0.0, 0.004),
    "happiness": Prosody(1.22, 4.5, 4.7, 3.0, 0.006),
    "sadness": Prosody(0.88, 0.8, 2.9, -7.0, 0.008),
    "anger": Prosody(1.15, 3.5, 5.2, 7.0, 0.010),
    "disgust": Prosody(0.95, 2.5, 3.4, 1.0, 0.007),
    "fear": Prosody(1.32, 2.5, 5.6, -2.0, 0.016),
    "surprise": Prosody(1.38, 6.0, 4.3, 3.0, 0.006),
}
#: Vowel formants F1, F2, F3 (Hz), a generic adult set.
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [300, 870, 2240], [570, 840, 2410],
                   [640, 1190, 2390], [490, 1350, 1690]], float)


def _resonator(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bandwidth / SAMPLE_RATE)
    a = [1.0, -2 * r * math.cos(2 * math.pi * freq / SAMPLE_RATE), r * r]
    return lfilter([1 - r], a, x)


def speech_like(duration_s: float, prosody: Prosody, base_f0: float, level_dbfs: float,
                rng: np.random.Generator) -> np.ndarray:
    """Seeded speech-like audio (16 kHz, float32): phrases of voiced syllables with the given prosody."""
    n = int(duration_s * SAMPLE_RATE)
    out = np.zeros(n)
    t = 0.15
    while t < duration_s - 0.3:
        phrase_s = min(rng.uniform(1.2, 2.8), duration_s - t - 0.1)
        start, stop = int(t * SAMPLE_RATE), int((t + phrase_s) * SAMPLE_RATE)
        m = stop - start
        k = np.arange(m) / SAMPLE_RATE
        # intonation: declination plus smooth random movement of `range_st` semitones
        knots = rng.normal(0, prosody.range_st, size=int(phrase_s * 3) + 2)
        contour = np.interp(k, np.linspace(0, phrase_s, len(knots)), knots) - 1.5 * k / phrase_s
        f0 = base_f0 * prosody.pitch * 2 ** (contour / 12) * (1 + prosody.jitter * rng.normal(size=m))
        phase = np.cumsum(f0) / SAMPLE_RATE
        source = 2 * (phase % 1.0) - 1  # sawtooth pulse train (-6 dB per octave)
        signal = np.zeros(m)
        bounds = np.cumsum(rng.uniform(0.6, 1.4, size=int(phrase_s * prosody.syllables_per_s * 2) + 2)
                           / prosody.syllables_per_s)
        edges = np.concatenate([[0], (bounds[bounds < phrase_s] * SAMPLE_RATE).astype(int), [m]])
        for a, b in itertools.pairwise(edges):
            if b - a < 80:
                continue
            vowel = VOWELS[rng.integers(len(VOWELS))]
            seg = source[a:b] + 0.05 * rng.normal(size=b - a)
            voiced = sum(_resonator(seg, f, 60 + 0.06 * f) for f in vowel)
            env = np.sin(np.linspace(0, np.pi, b - a)) ** 0.6
            onset = min(b - a, int(0.025 * SAMPLE_RATE))  # a consonant-like noise burst
            voiced[:onset] += 0.3 * rng.normal(size=onset) * np.std(voiced)
            signal[a:b] = voiced * env
        out[start:stop] = signal
        t += phrase_s + rng.uniform(0.2, 0.7)
    voiced_rms = np.sqrt(np.mean(out[out != 0] ** 2)) if np.any(out) else 1.0
    out *= 10 ** (level_dbfs / 20) / max(voiced_rms, 1e-9)
    return np.clip(out, -1, 1).astype(np.float32)


# --- face ----------------------------------------------------------------------------------------

#: Expression warps at full intensity on the 64x64 crop: (x, y, sigma, dx, dy) pixels, a feature moves by
#: (dx, dy). Centres: eyes (20|44, 24), brows (21|43, 17), mouth corners (24|40, 47), jaw (32, 56).
EXPRESSIONS: dict[str, tuple[tuple[float, float, float, float, float], ...]] = {
    "neutral": (),
    "happiness": ((24, 47, 5, -2, -4), (40, 47, 5, 2, -4), (20, 38, 6, 0, -2), (44, 38, 6, 0, -2)),
    "sadness": ((24, 47, 5, -1, 4), (40, 47, 5, 1, 4), (27, 17, 4, 0, -3), (37, 17, 4, 0, -3)),
    "anger": ((21, 17, 5, 2, 3), (43, 17, 5, -2, 3), (32, 47, 6, 0, -1.5), (20, 25, 3, 0, 1.5), (44, 25, 3, 0, 1.5)),
    "disgust": ((32, 43, 5, 0, -3), (32, 34, 5, 0, -2), (21, 17, 5, 0, 2), (43, 17, 5, 0, 2)),
    "fear": ((21, 16, 5, 0, -3), (43, 16, 5, 0, -3), (24, 47, 5, -3, 1), (40, 47, 5, 3, 1), (20, 22, 3, 0, -2),
             (44, 22, 3, 0, -2)),
    "surprise": ((21, 16, 6, 0, -5), (43, 16, 6, 0, -5), (20, 22, 3, 0, -2), (44, 22, 3, 0, -2), (32, 55, 7, 0, 4)),
}
OPEN_MOUTH = {"surprise": 1.0, "fear": 0.5}


def _warp_field(emotion: str, intensity: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    dx, dy = np.zeros_like(xx), np.zeros_like(yy)
    for x, y, sigma, vx, vy in EXPRESSIONS[emotion]:
        g = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)) * intensity
        dx += vx * g
        dy += vy * g
    return xx - dx, yy - dy  # remap samples the source where each output pixel comes from


def face_frames(identity: np.ndarray, emotion: str, intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 crops (n, 64, 64): `identity` (64x64 grey) with the emotion's expression at each intensity."""
    import cv2

    out = np.empty((len(intensity), 64, 64), np.uint8)
    for i, level in enumerate(intensity):
        map_x, map_y = _warp_field(emotion, float(level))
        face = cv2.remap(identity, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mouth = OPEN_MOUTH.get(emotion, 0.0) * level
        if mouth > 0:
            shade = np.zeros_like(face)
            cv2.ellipse(shade, (32, 50), (5, max(1, round(4 * mouth))), 0, 0, 360, 255, -1)
            face = np.where(shade > 0, face * (1 - 0.6 * mouth), face)
        m = cv2.getRotationMatrix2D((32 + rng.normal(0, 0.7), 32 + rng.normal(0, 0.7)), rng.normal(0, 3),
                                    1 + rng.normal(0, 0.02))
        face = cv2.warpAffine(face.astype(np.float32), m, (64, 64), borderMode=cv2.BORDER_REPLICATE)
        face = face * rng.uniform(0.85, 1.15) + rng.normal(0, 4, size=face.shape)
        out[i] = np.clip(face, 0, 255).astype(np.uint8)
    return out


def identities() -> np.ndarray:
    """The 100 LFW faces of scikit-image, as 64x64 uint8 crops."""
    import cv2
    import skimage.data

    faces = skimage.data.lfw_subset()[:100]
    return np.stack([cv2.resize((f * 255 if f.max() <= 1 else f).astype(np.uint8), (64, 64),
                                interpolation=cv2.INTER_CUBIC) for f in faces])


class FaceModel:
    """The camera node's face model on ready crops: eyemotion_face samples (present, box, FER, embedding)."""

    def __init__(self) -> None:
        from eyemotion.inference.features.face import SHIPPED_MODEL
        from eyemotion.inference.runtime import OnnxModel

        self.model = OnnxModel(SHIPPED_MODEL, threads=1)

    def samples(self, crops: np.ndarray, present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from eyemotion.inference.features.face import FacePipeline

        out = np.full((len(crops), FACE.channel_count), np.nan)
        out[:, 0] = present
        idx = np.flatnonzero(present)
        for s in range(0, len(idx), 256):
            part = idx[s:s + 256]
            probs, emb = self.model.run({"image": FacePipeline.normalise(crops[part])})
            out[part, 1:5] = np.array([0.36, 0.22, 0.28, 0.37]) + rng.normal(0, 0.005, size=(len(part), 4))
            out[part, 5:5 + len(CLASSES)] = probs
            out[part, 5 + len(CLASSES):5 + len(CLASSES) + FACE_EMBEDDING_DIM] = emb
        return out


# --- a session -----------------------------------------------------------------------------------

@dataclass
class SimulatedTrial:
    trial: int
    clip_id: str
    target: str
    felt: str
    onset: float
    offset: float
    valence_sam: int
    arousal_sam: int
    intensity: int

    @property
    def valence(self) -> float:
        return (self.valence_sam - 5) / 4

    @property
    def arousal(self) -> float:
        return (self.arousal_sam - 5) / 4


def simulate_session(index: int, settings: SimulationSettings, config: Config, face_model: FaceModel | None = None,
                     faces: np.ndarray | None = None) -> tuple[SessionStreams, list[SimulatedTrial]]:
    """One simulated participant: their streams (eyemotion_gaze, _face, _audio) and trials."""
    from eyemotion.acquisition.simulator import simulate_recording
    from eyemotion.inference.eyesignal.processor import process_recording

    rng = np.random.default_rng([settings.seed, index])
    participant = f"SIM{index:03d}"
    targets = [e for e in settings.emotions for _ in range(settings.clips_per_emotion)]
    order = rng.permutation(len(targets))
    trials, t = [], settings.pause_s
    for n, i in enumerate(order):
        target = targets[i]
        felt = target if rng.uniform() < FELT_IS_TARGET else settings.emotions[rng.integers(len(settings.emotions))]
        va = np.clip(PLANTED_VA[CLASSES.index(felt)] + rng.normal(0, 0.15, 2), -1, 1)
        sam = np.clip(np.rint(va * 4 + 5), 1, 9).astype(int)
        trials.append(SimulatedTrial(n + 1, f"{target}_{i:02d}", target, felt, T0 + t, T0 + t + settings.clip_s,
                                     int(sam[0]), int(sam[1]), int(rng.integers(2, 6) if felt != "neutral" else 1)))
        t += settings.clip_s + settings.pause_s
    duration = t
    # gaze: the simulator conditioned on the felt emotion, then the eye-signal processor offline
    conditions = [c for tr in trials for c in ((tr.onset - T0, tr.felt), (tr.offset - T0, None))]
    ts, raw, _ = simulate_recording(duration, settings.gaze_rate, seed=int(rng.integers(2 ** 31)),
                                    screen=config.screen, conditions=conditions)
    clean = process_recording(T0 + ts, raw, settings.gaze_rate, config.eyesignal, config.screen)
    gaze = (clean.timestamps, clean.samples, settings.gaze_rate)
    # voice: per-participant base pitch and loudness, speech during the clips
    base_f0, level = rng.uniform(95, 230), rng.uniform(-30, -24)
    audio = (rng.normal(0, 10 ** (-68 / 20), int(duration * SAMPLE_RATE))).astype(np.float32)
    for tr in trials:
        p = PROSODY[tr.felt]
        scale = 1 + rng.normal(0, 0.04, 3)
        jittered = Prosody(p.pitch * scale[0], p.range_st * scale[1], p.syllables_per_s * scale[2],
                           p.level_db + rng.normal(0, 1.0), p.jitter)
        a = int((tr.onset - T0) * SAMPLE_RATE)
        speech = speech_like(tr.offset - tr.onset, jittered, base_f0, level + jittered.level_db, rng)
        audio[a:a + len(speech)] += speech
    audio_ts = T0 + np.arange(len(audio)) / SAMPLE_RATE
    # face: expression frames at [face] rate_hz during the clips (and a second before)
    face_model = face_model or FaceModel()
    faces = identities() if faces is None else faces
    identity = faces[index % len(faces)]
    face_ts, face_rows = [], []
    period = 1.0 / config.face.rate_hz
    for tr in trials:
        times = np.arange(tr.onset - 1.0, tr.offset + 0.5, period) + rng.uniform(0, 0.01)
        level = np.clip((0.4 + 0.12 * tr.intensity) * rng.uniform(0.75, 1.0, len(times)), 0, 1)
        level[times < tr.onset] = 0.0
        crops = face_frames(identity, tr.felt, level, rng)
        present = rng.uniform(size=len(times)) > NO_FACE_SHARE
        face_ts.append(times)
        face_rows.append(face_model.samples(crops, present, rng))
    face = (np.concatenate(face_ts), np.concatenate(face_rows))
    clips = [ClipLabel(tr.trial, tr.clip_id, tr.onset, tr.offset, CLASSES.index(tr.felt), tr.valence, tr.arousal)
             for tr in trials]
    return SessionStreams(participant, f"simulated:{participant}", clips, gaze, face, (audio_ts, audio)), trials


def write_session_folder(root: str | Path, streams: SessionStreams, trials: list[SimulatedTrial],
                         config: Config) -> Path:
    """Write a simulated session as a real session folder: recording.xdf (eyemotion_gaze, _face, _audio,
    _markers, written like LabRecorder), trials.csv (the runner's format) and session.json."""
    import json

    from eyemotion.acquisition.markers import encode_marker
    from eyemotion.acquisition.replay import XdfWriter
    from eyemotion.stimuli.trials import TrialRecord, write_trials

    from eyemotion.session import RECORDING_XDF, create_session_folder
    from eyemotion.streams import AUDIO, GAZE_CLEAN, MARKERS, stream_info

    folder = create_session_folder(root, streams.participant, "20260101T000000", protocol="simulated",
                                   simulated=True, screen=config.screen.__dict__)
    with XdfWriter(folder / RECORDING_XDF) as w:
        ts, samples, rate = streams.gaze
        w.add_stream(1, stream_info(GAZE_CLEAN, rate=rate).as_xml())
        w.write_samples(1, ts, samples)
        w.add_stream(2, stream_info(FACE).as_xml())
        w.write_samples(2, streams.face[0], streams.face[1].astype(np.float32))
        w.add_stream(3, stream_info(AUDIO).as_xml())
        w.write_samples(3, streams.audio[0], streams.audio[1][:, None])
        w.add_stream(4, stream_info(MARKERS).as_xml())
        stamps, texts = [], []
        for tr in trials:
            ids = {"trial": tr.trial, "clip": tr.clip_id, "emotion": tr.target}
            stamps += [tr.onset, tr.offset]
            texts += [[encode_marker("clip_onset", "runner", **ids)], [encode_marker("clip_offset", "runner", **ids)]]
        w.write_samples(4, np.array(stamps), texts)
    records = [TrialRecord(participant=streams.participant, trial=tr.trial, block="main", block_index=0,
                           clip_id=tr.clip_id, clip=f"{tr.clip_id}.mp4", target_emotion=tr.target,
                           clip_duration_s=tr.offset - tr.onset, clip_fps=30.0,
                           clip_frames=int(30 * (tr.offset - tr.onset)), clip_onset_lsl=tr.onset,
                           clip_offset_lsl=tr.offset, valence_sam=tr.valence_sam, valence=tr.valence,
                           arousal_sam=tr.arousal_sam, arousal=tr.arousal, felt_emotion=tr.felt,
                           intensity=tr.intensity, auto_responded=True, notes="simulated")
               for tr in trials]
    write_trials(folder, records)
    (folder / "simulation.json").write_text(json.dumps({"generator": "eyemotion.models.simulate_sessions"}))
    return folder
