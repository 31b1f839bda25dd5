"""Input shapes of the eyemotion models: the one place where they are fixed.

Every model, the dataset format (`eyemotion.models.dataset`), the ONNX export and its model cards read
these constants; the feature builders (issue 6) produce arrays of these shapes.

EMERT (002_cbeb04dbce786b8c.txt, Sec. V-A-2): one sample holds, evenly taken from a span
- 8 face embeddings, each the face model's embedding
  (`eyemotion.streams.FACE_EMBEDDING_DIM`, the `embedding_*` channels of `eyemotion_face`);
- 32 eye-movement samples with the channels of `eyemotion_gaze` (read from the stream contract; the
  model encodes the categorical ones itself, `models.emert.EyeEncoding`);
- 32 fixation-map slices of 18 x 32 (rows x cols) cells over the screen.
The span is a whole clip in 002 and in our training and evaluation (per-clip rows of a dataset); live it
is the 4-s sliding window `[features] emert_window_s`, a stated deviation (`models.train` reports both).

Crossmodal embeddings (000_e9deb5c9c21c243c.txt, Sec. 3.5): sequences of dynamic length
- visual: per analysed frame, the face embedding (128) and the 103 windowed gaze statistics (Table 1);
- audio: per sub-window, the 88 eGeMAPS functionals (Sec. 3.5.3, openSMILE's eGeMAPSv02).
"""

from __future__ import annotations

from dataclasses import dataclass

from eyemotion.streams import CLASSES, FACE_EMBEDDING_DIM, GAZE_CLEAN

#: Class order of every 7-class output (`eyemotion.streams.CLASSES`).
N_CLASSES = len(CLASSES)
#: Coarse 3-class ER (002, Sec. V-C-1): negative / neutral / positive.
CLASSES_3: tuple[str, ...] = ("negative", "neutral", "positive")
#: 7-class -> 3-class mapping (happiness and surprise positive; sadness, anger, disgust, fear negative).
CLASS7_TO_3: tuple[int, ...] = tuple(
    {"neutral": 1, "happiness": 2, "surprise": 2}.get(c, 0) for c in CLASSES
)

# --- EMERT sample counts (002, Sec. V-A-2: per clip; live: per sliding window) ---
EMERT_FACE_FRAMES = 8
EMERT_EYE_SAMPLES = 32
EMERT_FIXATION_SLICES = 32
FIXATION_ROWS = 18
FIXATION_COLS = 32
FACE_DIM = FACE_EMBEDDING_DIM  # 128
GAZE_CHANNELS: tuple[str, ...] = tuple(GAZE_CLEAN.labels)
EYE_DIM = len(GAZE_CHANNELS)

# --- crossmodal embeddings (000, Sec. 3.5 and 4.1) ---
GAZE_STATS_DIM = 103  # 000, Table 1
AUDIO_DIM = 88  # eGeMAPS functionals, 000 Sec. 3.5.3
CROSSMODAL_UNITS = 120  # GRU units of encoders and shared classifier, 000 Sec. 4.1


@dataclass(frozen=True)
class InputSpec:
    """One named model input: its shape per window (None = dynamic length) and what it holds."""

    name: str
    shape: tuple[int | None, ...]  # without the batch axis
    doc: str

    @property
    def feature_dim(self) -> int:
        return int(self.shape[-1])


EMERT_INPUTS: tuple[InputSpec, ...] = (
    InputSpec("face", (EMERT_FACE_FRAMES, FACE_DIM), "face embeddings of 8 frames evenly spread over the clip (live: the window)"),
    InputSpec("eye", (EMERT_EYE_SAMPLES, EYE_DIM),
              "32 eyemotion_gaze samples evenly spread over the clip (live: the window), channels " + ", ".join(GAZE_CHANNELS)),
    InputSpec("fixation", (EMERT_FIXATION_SLICES, FIXATION_ROWS, FIXATION_COLS),
              "32 fixation-map slices (rows x cols over the screen), each summing to 1 or all 0"),
)

VISUAL_FACE = InputSpec("visual_face", (None, FACE_DIM), "per analysed frame: the face embedding")
VISUAL_GAZE = InputSpec("visual_gaze", (None, GAZE_STATS_DIM), "per analysed frame: the 103 gaze statistics of "
                        "the 1 s window ending there (000, Table 1)")
AUDIO = InputSpec("audio", (None, AUDIO_DIM), "per audio sub-window: the 88 eGeMAPS functionals")
CROSSMODAL_INPUTS: tuple[InputSpec, ...] = (VISUAL_FACE, VISUAL_GAZE, AUDIO)

ALL_INPUTS: dict[str, InputSpec] = {s.name: s for s in EMERT_INPUTS + CROSSMODAL_INPUTS}
