"""CLI: `eyemotion infer`, the live inference node (eyemotion_gaze / _face / _audio -> eyemotion_emotion)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "infer", help="run the live inference node (publishes eyemotion_emotion)",
        description="Read whichever of eyemotion_gaze, eyemotion_face and eyemotion_audio are on the network "
                    "(streams may appear late or vanish; eyemotion_markers are read to log a summary per clip), "
                    "build 4-s windows with the same builders as offline reprocessing, run EMERT and the "
                    "crossmodal model (audio-only, visual-only or joint, on what is present) with onnxruntime, "
                    "and publish eyemotion_emotion (7 ER and 7 FER probabilities, valence, arousal, the modalities "
                    "used) at [inference] rate_hz, stamped with the window end. The model ids are in the stream's "
                    "desc. The shipped models are trained on simulated data: for pipeline testing only.")
    p.add_argument("--emert-model", type=Path, help="EMERT .onnx (default: [inference] emert_model or models/emert.onnx)")
    p.add_argument("--crossmodal-model", type=Path,
                   help="crossmodal graphs' stem, e.g. models/crossmodal for models/crossmodal-{visual,audio,joint}.onnx")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=run_infer)


def run_infer(args: argparse.Namespace, config: Any) -> int:
    from eyemotion.inference.live import InferenceNode

    node = InferenceNode(config, emert=args.emert_model, crossmodal=args.crossmodal_model)
    node.run(args.seconds)
    print(f"published {node.published} predictions")
    return 0
