"""ONNX export of trained eyemotion models, with a model card beside each graph and a parity check.

`export_checkpoint(model.pt, out_dir)` writes
- EMERT: ``<name>.onnx``, inputs face / eye / fixation, outputs er7_probs, er3_probs, valence_arousal,
  fer7_probs;
- crossmodal: ``<name>-visual.onnx`` and ``<name>-audio.onnx`` (monomodal test time, 000 Sec. 3) and
  ``<name>-joint.onnx`` (both modalities, 001 Sec. 3.4);

each with a model card ``<same stem>.json`` (`eyemotion.inference.runtime.card_path`; the runtime
checks inputs against it): inputs and shapes, outputs, class order (`eyemotion.streams.CLASSES`),
normalisation statistics (applied inside the graph: feed raw features), training data,
cross-validated metrics and the licence of the weights.

Batch and sequence axes are dynamic (opset 17, TorchScript exporter; the models avoid
`nn.TransformerEncoder` and fused attention, whose traced export can freeze shapes). Every export is
checked: onnxruntime (CPU) must match PyTorch within `PARITY_TOL` at batch sizes 1 and 4 and at
several sequence lengths, otherwise the export fails.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from eyemotion.inference.runtime import card_path
from eyemotion.models import shapes
from eyemotion.models.emert import EYE_CONTINUOUS

from eyemotion import UserError, __version__
from eyemotion.streams import CLASSES

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOL = 1e-4
CARD_FORMAT = "eyemotion-model-card"
DEFAULT_LICENCE = ("MIT (the weights are a product of the user's own training data and carry the data's "
                   "terms as well; see training_data)")
REFERENCES = {
    "emert": ["002_cbeb04dbce786b8c.txt Sec. IV (EMERT)"],
    "crossmodal": ["000_e9deb5c9c21c243c.txt Sec. 3, 4.1 (gaze-enhanced crossmodal embeddings)",
                   "001_8cd198317e00f0b1.txt Sec. 3.4-3.5 (triplet weight, joint prediction)"],
}
#: Names of the dynamic axes in the graphs and cards.
AXIS_NAMES = {"face": "face_frames", "eye": "eye_samples", "fixation": "fixation_slices",
              "visual_face": "visual_frames", "visual_gaze": "visual_frames", "audio": "audio_steps"}
OUTPUT_DOCS = {
    "er7_probs": (shapes.N_CLASSES, "emotion (ER) probabilities in the order of `class_order`"),
    "er3_probs": (len(shapes.CLASSES_3), "coarse emotion probabilities in the order of `class_order_3`"),
    "valence_arousal": (2, "valence and arousal in [-1, 1]"),
    "fer7_probs": (shapes.N_CLASSES, "facial-expression (FER) probabilities in the order of `class_order`"),
    "embedding": (shapes.CROSSMODAL_UNITS, "the pooled crossmodal embedding (shared space of audio and visual)"),
    "visual_er7_probs": (shapes.N_CLASSES, "visual-only ER probabilities"),
    "audio_er7_probs": (shapes.N_CLASSES, "audio-only ER probabilities"),
}


@dataclass
class Graph:
    """One exportable graph of a trained model."""

    name: str  # file stem
    part: str  # emert | visual | audio | joint
    module: object  # torch.nn.Module wrapper taking the inputs in `inputs` order
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def graphs_of(kind: str, model, name: str) -> list[Graph]:
    from eyemotion.models.crossmodal import CrossmodalAudio, CrossmodalJoint, CrossmodalVisual
    from eyemotion.models.emert import EmertInference

    if kind == "emert":
        w = EmertInference(model)
        return [Graph(name, "emert", w, w.input_names, w.output_names)]
    out = []
    for part, cls in (("visual", CrossmodalVisual), ("audio", CrossmodalAudio), ("joint", CrossmodalJoint)):
        w = cls(model)
        out.append(Graph(f"{name}-{part}", part, w, tuple(w.input_names), w.output_names))
    return out


def example_inputs(names: tuple[str, ...], batch: int, lengths: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 inputs; `lengths` maps a dynamic axis name to its length."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in names:
        spec = shapes.ALL_INPUTS[n]
        dims = [lengths.get(AXIS_NAMES[n], spec.shape[0]), *spec.shape[1:]]
        out[n] = rng.normal(size=(batch, *dims)).astype(np.float32)
    return out


def trained_lengths(meta: dict) -> dict[str, int]:
    """Sequence length of each input in the training data (the window the model was trained on)."""
    got = {AXIS_NAMES[n]: int(s[0]) for n, s in meta.get("training_data", {}).get("input_shapes", {}).items()
           if n in AXIS_NAMES}
    defaults = {"face_frames": shapes.EMERT_FACE_FRAMES, "eye_samples": shapes.EMERT_EYE_SAMPLES,
                "fixation_slices": shapes.EMERT_FIXATION_SLICES, "visual_frames": 10, "audio_steps": 6}
    return {**defaults, **got}


def export_graph(graph: Graph, path: Path, lengths: dict[str, int]) -> None:
    """torch -> ONNX with dynamic batch and sequence axes."""
    import torch

    # trace with batch 2 and lengths that differ between axes, so no size is mistaken for a constant
    trace_lengths = {k: v + 1 + i for i, (k, v) in enumerate(sorted(lengths.items()))}
    x = example_inputs(graph.inputs, 2, trace_lengths)
    args = tuple(torch.from_numpy(x[n]) for n in graph.inputs)
    dynamic = {n: {0: "batch", 1: AXIS_NAMES[n]} for n in graph.inputs}
    dynamic.update({n: {0: "batch"} for n in graph.outputs})
    graph.module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # the RNNs start from zero states built from the batch size; parity() checks batch 1 and 4
        # (and the RNN size checks traced as constants are about the feature width, which is fixed); the
        # legacy exporter is used on purpose (no onnxscript needed), so its deprecation notice is noise here
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(graph.module, args, str(path), input_names=list(graph.inputs),
                          output_names=list(graph.outputs), dynamic_axes=dynamic, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
    import onnx

    onnx.checker.check_model(str(path))


def parity(graph: Graph, path: Path, lengths: dict[str, int], batches=(1, 4)) -> float:
    """Max abs difference between PyTorch and onnxruntime (CPU) over batch sizes and sequence lengths.

    Lengths tried: the trained ones, shorter and longer ones, and 1.
    """
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    variants = [lengths, {k: max(1, v // 2) for k, v in lengths.items()},
                {k: v * 2 + 3 for k, v in lengths.items()}, {k: 1 for k in lengths}]
    worst = 0.0
    for batch in batches:
        for i, lens in enumerate(variants):
            x = example_inputs(graph.inputs, batch, lens, seed=batch * 10 + i)
            with torch.no_grad():
                want = graph.module(*(torch.from_numpy(x[n]) for n in graph.inputs))
            got = sess.run(list(graph.outputs), x)
            for w, g in zip(want, got):
                if tuple(w.shape) != g.shape:
                    raise UserError(f"{path.name}: onnxruntime output shape {g.shape} != PyTorch {tuple(w.shape)} "
                                    f"at batch {batch}, lengths {lens}; the export froze a shape")
                worst = max(worst, float(np.max(np.abs(w.numpy() - g))))
    return worst


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_card(graph: Graph, path: Path, kind: str, model, meta: dict, lengths: dict[str, int], max_diff: float,
              licence: str, notes: str) -> dict:
    import torch

    norm = model.normalisation()
    inputs = []
    for n in graph.inputs:
        spec = shapes.ALL_INPUTS[n]
        inputs.append({"name": n, "dtype": "float32", "shape": ["batch", AXIS_NAMES[n], *spec.shape[1:]],
                       "trained_length": lengths[AXIS_NAMES[n]], "description": spec.doc})
    outputs = [{"name": o, "dtype": "float32", "shape": ["batch", OUTPUT_DOCS[o][0]], "description": OUTPUT_DOCS[o][1]}
               for o in graph.outputs]
    card = {
        "format": CARD_FORMAT, "version": 1, "name": path.stem, "model": kind, "part": graph.part,
        "onnx": path.name, "sha256": _sha256(path), "opset": OPSET,
        "inputs": inputs, "outputs": outputs, "class_order": list(CLASSES),
        "normalisation": {"applied_in_graph": True,
                          "description": "inputs are standardised inside the graph with these training-set "
                                         "statistics (per feature; fixation: one scalar); NaN counts as the mean",
                          "statistics": {n: norm[n] for n in graph.inputs if n in norm}},
        "config": model.config.to_dict(), "training_data": meta.get("training_data", {}),
        "training_settings": meta.get("settings", {}), "metrics": meta.get("metrics", {}),
        "evaluation": meta.get("evaluation", {}),  # protocol, chance / majority baselines, sliding-window figures
        "parity": {"max_abs_diff": max_diff, "tolerance": PARITY_TOL, "batches": [1, 4],
                   "lengths": "trained, half, double+3, 1"},
        "licence": licence, "notes": notes, "references": REFERENCES[kind],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "eyemotion": __version__, "torch": str(torch.__version__), "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
    }
    if kind == "emert":
        card["class_order_3"] = list(shapes.CLASSES_3)
        card["gaze_channels"] = list(shapes.GAZE_CHANNELS)
        card["eye_encoding"] = ("inside the graph: z-scored " + ", ".join(EYE_CONTINUOUS) + "; event one-hot over "
                                f"{model.config.event_codes} codes; validity as its {model.config.validity_bits} bits; "
                                "pupil and pupil_raw unused (002 Sec. III-A-3: pupil fluctuation instead)")
    else:
        card["variant"] = model.config.variant
    return card


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, name: str | None = None,
                      licence: str = DEFAULT_LICENCE, notes: str = "") -> list[Path]:
    """Export every graph of a `model.pt` into `out_dir`; returns the ONNX paths (cards are beside them)."""
    from eyemotion.models.train import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    kind = meta["kind"]
    from eyemotion.outputs import staged_output

    out_dir = Path(out_dir)
    with staged_output(out_dir) as stage:  # atomic: every graph and card appears, or none
        written = _export_graphs(model, meta, kind, name, stage, licence, notes)
    return [out_dir / p.name for p in written]


def _export_graphs(model, meta: dict, kind: str, name: str | None, out_dir: Path, licence: str,
                   notes: str) -> list[Path]:
    lengths = trained_lengths(meta)
    written = []
    trained = set(meta.get("training_data", {}).get("input_shapes", {}))
    for graph in graphs_of(kind, model, name or kind):
        needed = {"visual": {"visual_face"}, "audio": {"audio"}, "joint": {"audio", "visual_face"}}.get(graph.part, set())
        if trained and not needed <= trained:
            log.info("skipping %s: the training data had no %s", graph.name, graph.part)
            continue  # a monomodal corpus trains (and exports) only its own branch
        path = out_dir / f"{graph.name}.onnx"
        export_graph(graph, path, lengths)
        diff = parity(graph, path, {AXIS_NAMES[n]: lengths[AXIS_NAMES[n]] for n in graph.inputs})
        if diff > PARITY_TOL:
            raise UserError(f"{path.name}: onnxruntime differs from PyTorch by {diff:.2e} > {PARITY_TOL}; "
                            f"the export is not trustworthy (report this)")
        card = make_card(graph, path, kind, model, meta, lengths, diff, licence, notes)
        card_path(path).write_text(json.dumps(card, indent=1))
        log.info("wrote %s (+ %s), parity max abs diff %.2e", path, card_path(path).name, diff)
        written.append(path)
    return written
