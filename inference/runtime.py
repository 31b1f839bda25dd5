"""onnxruntime sessions for eyemotion's shipped models (ARCHITECTURE.md, principle 5).

`OnnxModel(path)` opens `path` (a `.onnx`) together with its model card (the `.json` beside it), uses the
CUDA provider when onnxruntime offers it and it really loads, else the CPU provider, and logs once per
process which provider runs. The model's input names and shapes must match the card's `inputs`; `None`
(JSON null) or a string in a card shape is a free (dynamic) dimension. A missing, unreadable or corrupt
model or card is a `ModelError` (a `UserError`) naming the file and the fix.

    model = OnnxModel(Path("models/face_fer.onnx"))
    probs, emb = model.run({"image": batch})          # outputs in the card's / model's order
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eyemotion import UserError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_announced: set[str] = set()


class ModelError(UserError):
    """A model file or model card that is missing, corrupt, or does not match."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"

    @classmethod
    def from_card(cls, item: dict[str, Any]) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else None for d in item["shape"])
        return cls(str(item["name"]), shape, str(item.get("dtype", "float32")))


def card_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def read_card(model_path: Path) -> dict[str, Any]:
    """The model card beside `model_path` (ModelError if missing or not a JSON object with `inputs`)."""
    path = card_path(model_path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model card {path} not found; every .onnx needs its card beside it "
                         "(re-export the model)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model card {path} is not valid JSON ({exc}); re-export the model") from None
    if not isinstance(card, dict) or not isinstance(card.get("inputs"), list):
        raise ModelError(f"model card {path} has no 'inputs' list; re-export the model")
    return card


def choose_providers(prefer_cuda: bool = True) -> list[str]:
    """CUDA then CPU when onnxruntime offers CUDA, else CPU only."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [CUDA, CPU] if prefer_cuda and CUDA in available else [CPU]


def _shape_matches(actual: list[Any], expected: tuple[int | None, ...]) -> bool:
    if len(actual) != len(expected):
        return False
    return all(e is None or a == e for a, e in zip(actual, expected))


class OnnxModel:
    """One ONNX model + its card, checked against each other, ready to run."""

    def __init__(self, path: str | Path, *, prefer_cuda: bool = True, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found; export it (see the model's module) "
                             "or point the config at an existing .onnx")
        self.card = read_card(self.path)
        self.inputs = [TensorSpec.from_card(i) for i in self.card["inputs"]]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        ort.set_default_logger_severity(4)  # a CUDA provider that cannot load falls back to CPU: logged below
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=choose_providers(prefer_cuda))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(f"model file {self.path} cannot be loaded ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); re-export or re-download it") from None
        finally:
            ort.set_default_logger_severity(2)
        self.provider = self.session.get_providers()[0]
        if self.provider not in _announced:
            _announced.add(self.provider)
            log.info("onnxruntime runs on %s", "CUDA" if self.provider == CUDA else "the CPU")
        self._check_inputs()
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _check_inputs(self) -> None:
        actual = {i.name: i for i in self.session.get_inputs()}
        names = [i.name for i in self.inputs]
        if sorted(actual) != sorted(names):
            raise ModelError(f"model {self.path.name} has inputs {sorted(actual)} but its card lists {names}; "
                             "re-export the model so that card and file agree")
        for spec in self.inputs:
            shape = [d if isinstance(d, int) else None for d in actual[spec.name].shape]
            if not _shape_matches(shape, spec.shape):
                raise ModelError(f"model {self.path.name} input {spec.name!r} has shape {shape} but its card "
                                 f"says {list(spec.shape)}; re-export the model")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; inputs are checked against the card (name, rank, fixed dimensions)."""
        for spec in self.inputs:
            if spec.name not in feeds:
                raise ModelError(f"model {self.path.name} needs input {spec.name!r}; got {sorted(feeds)}")
            if not _shape_matches(list(np.shape(feeds[spec.name])), spec.shape):
                raise ModelError(f"model {self.path.name} input {spec.name!r} must have shape "
                                 f"{list(spec.shape)}, not {list(np.shape(feeds[spec.name]))}")
        ready = {s.name: np.ascontiguousarray(feeds[s.name], dtype=np.dtype(s.dtype)) for s in self.inputs}
        return self.session.run(self.output_names, ready)
