"""CLI: `eyemotion dataset ...`, `eyemotion train {emert,crossmodal} DATASET`, `eyemotion export-onnx CHECKPOINT`.

torch is imported inside the handlers (it lives in the `train` extra).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

from eyemotion import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_dataset(subparsers)
    _register_train(subparsers)
    _register_export(subparsers)


def _register_dataset(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dataset", help="build training datasets (windows.npz + dataset.json)",
        description="Training datasets for `eyemotion train`; the format is documented in "
                    "eyemotion.models.dataset.")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    b = sub.add_parser(
        "build", help="cut recorded sessions' clips into labelled windows (a dataset for `eyemotion train`)",
        description="Cut every clip of the given session folders (trials.csv onset/offset, else the clip markers) "
                    "into windows with the live inference node's window builders, label them with the "
                    "participant's self-reports (felt emotion 7-class, coarse 3-class, valence/arousal in "
                    "[-1, 1]) and the face model's FER (mean eyemotion_face FER probabilities over the window), "
                    "and write a dataset split into participant-wise folds. Sessions without eyemotion_gaze use "
                    "their Tobii_gaze through the eye-signal processor; without eyemotion_face, the face "
                    "pipeline runs on camera.mkv. Recordings are only read. See eyemotion.models.sessions_dataset.")
    b.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="SESSIONS... then OUT (the output directory)")
    b.add_argument("--hop", type=float, default=1.0, help="seconds between window ends within a clip (default 1)")
    b.add_argument("--coarse", choices=("emotion", "valence"), default="emotion",
                   help="3-class labels from the felt emotion (default) or the sign of the valence rating")
    b.add_argument("--folds", type=int, default=5, help="participant-wise folds (default 5, as in 002)")
    b.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_dataset_build)
    i = sub.add_parser(
        "import", help="import a labelled corpus (speech or faces) from a folder + CSV or file-name pattern",
        description="Import labelled recordings that did not come from our sessions. Speech: audio files (any "
                    "sample rate) -> utterance-level eGeMAPS with voiced-frame pooling (input 'audio'). Faces: "
                    "images or videos -> the face model's embeddings (input 'visual_face'; train with --variant "
                    "no-gaze). Labels from --csv (columns file, label, speaker or participant; optional valence, "
                    "arousal in [-1, 1], fold) or --pattern (a regex with the named groups label and speaker, "
                    "optionally fold, matched against each path relative to FOLDER). Folds are grouped by "
                    "speaker and stratified by class unless given; the class x fold table is printed. See "
                    "eyemotion.models.importing.")
    i.add_argument("kind", choices=("speech", "faces"))
    i.add_argument("folder", type=Path, help="folder holding the corpus files")
    i.add_argument("out", type=Path, help="output dataset directory (new)")
    i.add_argument("--csv", type=Path, help="label table: file,label,speaker[,valence,arousal,fold]")
    i.add_argument("--pattern", help=r"file-name regex, e.g. '(?P<speaker>\d+)_\w+_(?P<label>[A-Z]{3})'")
    i.add_argument("--label-map", help="rename labels first: FROM=TO pairs, e.g. 01=neutral,05=anger")
    i.add_argument("--keep", help="keep only these classes (others are skipped), e.g. neutral,happiness,sadness,anger")
    i.add_argument("--folds", type=int, default=5, help="speaker-wise folds when none are given (default 5)")
    i.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    i.add_argument("--audio-window", type=float, default=0.0,
                   help="speech: seconds per window for windowed inputs (default 0: the whole utterance)")
    i.add_argument("--audio-steps", type=int, default=4, help="speech: windows per utterance with --audio-window")
    i.add_argument("--frames", type=int, default=16, help="faces: frames sampled evenly from each video")
    i.add_argument("--allow-one-class-speakers", action="store_true",
                   help="accept speakers who have only one class (refused by default)")
    i.add_argument("--name", default="", help="corpus name for the provenance (default: the folder name)")
    i.add_argument("--licence", default="", help="licence of the corpus, recorded in the dataset and model cards")
    i.add_argument("--quiet", action="store_true", help="no progress bars")
    i.set_defaults(func=_dataset_import)
    s = sub.add_parser(
        "synthetic", help="write a synthetic dataset with a planted class signal (pipeline testing)",
        description="Write a dataset in the training format whose features carry a planted class signal "
                    "(per-class prototypes plus noise and per-participant offsets). For testing the "
                    "training pipeline only: it is not emotion data.")
    s.add_argument("out", type=Path, help="output directory")
    s.add_argument("--participants", type=int, default=10)
    s.add_argument("--windows-per-class", type=int, default=4)
    s.add_argument("--signal", type=float, default=0.5, help="strength of the planted signal (default 0.5)")
    s.add_argument("--folds", type=int, default=5)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_dataset_synthetic)


def _dataset_synthetic(args: argparse.Namespace, config) -> int:
    from eyemotion.models.dataset import make_synthetic_dataset

    if args.participants < 1 or args.windows_per_class < 1:
        raise UserError("--participants and --windows-per-class must be >= 1")
    out = make_synthetic_dataset(args.out, participants=args.participants, windows_per_class=args.windows_per_class,
                                 signal=args.signal, n_folds=args.folds, seed=args.seed)
    print(f"wrote {out}")
    return 0


def _dataset_import(args: argparse.Namespace, config) -> int:
    from eyemotion.models.importing import import_corpus

    summary = import_corpus(args.kind, args.folder, args.out, csv_path=args.csv, pattern=args.pattern,
                            label_map=args.label_map, keep=args.keep, n_folds=args.folds, seed=args.seed,
                            audio_window_s=args.audio_window, audio_steps=args.audio_steps, frames=args.frames,
                            allow_one_class_speakers=args.allow_one_class_speakers, name=args.name,
                            licence=args.licence, progress=not args.quiet)
    print(f"imported {summary.n_rows} {args.kind} rows of {summary.speakers} speakers into {summary.path}")
    if summary.skipped:
        print("skipped: " + ", ".join(f"{n} ({why})" for why, n in summary.skipped.items()))
    if args.kind == "speech":
        print(f"{summary.no_speech} utterance(s) would not pass the live voice-activity gate")
    else:
        print(f"{summary.no_face} file(s) without a detected face (NaN embeddings)")
    print("class x test fold:")
    print(summary.table)
    return 0


def _dataset_build(args: argparse.Namespace, config) -> int:
    from eyemotion.models.sessions_dataset import build_dataset

    if len(args.paths) < 2:
        raise UserError("give one or more session folders and then the output directory: "
                        "eyemotion dataset build SESSIONS... OUT")
    *sessions, out = args.paths
    if (out / "session.json").exists() or (out / "recording.xdf").exists():
        raise UserError(f"the last path {out} is a session folder, not an output directory; "
                        "eyemotion dataset build SESSIONS... OUT")
    if out.exists() and (out / "windows.npz").exists():
        raise UserError(f"{out} already holds a dataset; pass a new output directory")
    path = build_dataset(sessions, out, config, hop_s=args.hop, coarse=args.coarse, folds=args.folds, seed=args.seed,
                         progress=not args.quiet)
    print(f"wrote {path}")
    _print_fold_table(path)
    return 0


def _print_fold_table(path: Path) -> None:
    """The class x test-fold table of a written dataset (stored in its dataset.json)."""
    import json

    table = json.loads((Path(path) / "dataset.json").read_text()).get("fold_table")
    if table:
        print("class x test fold:")
        print("\n".join(table))


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train EMERT or the crossmodal model with participant-wise cross-validation",
        description="Cross-validate a model over the dataset's participant folds (metrics per fold and mean "
                    "+- standard error, and pooled out of fold: weighted F1, macro-F1, WAR, UAR, each beside chance "
                    "and majority-class baselines; MAE/MSE/RMSE of valence and arousal), then train a final model "
                    "on all participants. Crossmodal: trains the modalities the dataset has, early-stops on an "
                    "inner speaker-wise validation split, and runs a logistic-regression baseline on the same "
                    "features and folds (confusion_baseline.png). Writes report.json, confusion.png and model.pt "
                    "into --out; `eyemotion export-onnx OUT/model.pt` makes the ONNX files.")
    p.add_argument("model", choices=("emert", "crossmodal"))
    p.add_argument("dataset", type=Path, help="dataset directory (windows.npz + dataset.json)")
    p.add_argument("--out", type=Path, help="output directory (default: runs/<model>-<time>)")
    p.add_argument("--epochs", type=int, default=0,
                   help="default: EMERT 40 (002); crossmodal at most 300, early-stopped on an inner validation split")
    p.add_argument("--batch-size", type=int, default=0, help="default: EMERT 16 (002), crossmodal 32")
    p.add_argument("--lr", type=float, default=0.0, help="Adam learning rate (default: EMERT 1e-4, crossmodal 1e-3)")
    p.add_argument("--patience", type=int, default=30,
                   help="crossmodal: epochs without a better inner-validation loss before stopping (0: no early stop)")
    p.add_argument("--seeds", type=int, default=1,
                   help="repeat the cross-validation with seeds SEED..SEED+N-1 (OUT/seed-K each; the final model "
                        "from the first) and print each seed's pooled UAR beside the linear baseline's")
    p.add_argument("--members", type=int, default=0,
                   help="crossmodal: ensemble size, models from different initialisations whose probabilities are "
                        "averaged (default 5; 1: a single model)")
    p.add_argument("--no-wide", action="store_true",
                   help="crossmodal: no linear path beside the networks (wide & deep)")
    p.add_argument("--no-baseline", action="store_true",
                   help="crossmodal: skip the logistic-regression baseline on the same features and folds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", help="comma-separated fold numbers to run (default: all)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--variant", default="model-averaged",
                   help="crossmodal: early-windowed, model-windowed, model-averaged (default) or no-gaze")
    p.add_argument("--protocol", default="auto", choices=("auto", "clip", "window"),
                   help="EMERT: clip = 002's per-clip sampling (the dataset's clips/ rows; also reports the live "
                        "4-s windows), window = train and test on sliding windows; auto (default): clip when "
                        "the dataset has per-clip rows")
    p.add_argument("--no-final", action="store_true", help="skip the final model on all participants")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace, config) -> int:
    from eyemotion.models.train import TrainSettings, train

    try:
        folds = None if not args.folds else [int(f) for f in args.folds.split(",")]
    except ValueError:
        raise UserError(f"--folds must be comma-separated integers, not {args.folds!r}") from None
    out = args.out or Path("runs") / f"{args.model}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, folds=folds,
                             device=args.device, threads=args.threads, final_model=not args.no_final,
                             patience=args.patience, baseline=not args.no_baseline, members=args.members,
                             wide=not args.no_wide,
                             progress=not args.quiet, variant=args.variant, protocol=args.protocol)
    if args.seeds < 1:
        raise UserError("--seeds must be >= 1")
    if args.members < 0:
        raise UserError("--members must be >= 1 (or 0 for the default)")
    if args.seeds > 1:
        from dataclasses import replace

        rows = []
        for k in range(args.seeds):
            seed = args.seed + k
            report = train(args.model, args.dataset, out / f"seed-{seed}",
                           replace(settings, seed=seed, final_model=settings.final_model and k == 0))
            evaluation = json.loads(report.path.read_text()).get("evaluation") or {}
            linear = (evaluation.get("linear_baseline") or {}).get("pooled", {})
            rows += [(seed, task, m["uar"], linear.get(task, {}).get("uar"))
                     for task, m in evaluation.get("pooled", {}).items()]
        print(f"{args.model}: pooled out-of-fold UAR per seed (model / linear baseline), reports in {out}/seed-*")
        for seed, task, uar, lin in rows:
            print(f"  seed {seed}  {task:11s} {uar:.3f}" + ("" if lin is None else f" / {lin:.3f}"))
        import numpy as np

        for task in dict.fromkeys(r[1] for r in rows):  # mean +- SE over seeds, and the seeds at or above the baseline
            mine = np.array([r[2] for r in rows if r[1] == task])
            lin = np.array([r[3] for r in rows if r[1] == task and r[3] is not None])
            se = lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            line = f"  mean +- SE over {len(mine)} seeds  {task:11s} {mine.mean():.3f} +- {se(mine):.3f}"
            if len(lin) == len(mine):
                line += (f" / {lin.mean():.3f} +- {se(lin):.3f}; model >= baseline in {int((mine >= lin).sum())} "
                         f"of {len(mine)} seeds")
            print(line)
        return 0
    report = train(args.model, args.dataset, out, settings)
    print(f"{args.model}: mean +- standard error over {len(report.folds)} fold(s)")
    for task, metrics in report.summary.items():
        cells = []
        for name, v in metrics.items():
            se = "" if v["se"] is None else f" +- {v['se']:.3f}"
            cells.append(f"{name} {v['mean']:.3f}{se}")
        print(f"  {task:11s} " + ", ".join(cells))
    _print_evaluation(json.loads(report.path.read_text()).get("evaluation") or {})
    print(f"report: {report.path}")
    if report.checkpoint:
        print(f"model: {report.checkpoint} (export with `eyemotion export-onnx {report.checkpoint}`)")
    return 0


def _print_evaluation(evaluation: dict) -> None:
    """The baselines of every head (and, per clip, the sliding-window figures) under the summary."""
    def line(label: str, metrics: dict) -> str:
        return f"    {label:18s}" + ", ".join(f"{m} {v['mean']:.3f}" for m, v in metrics.items()
                                           if m in ("war", "uar", "weighted_f1"))

    if not evaluation:
        return
    print(f"  protocol: {evaluation['protocol_text']}")
    for task, chance in evaluation["baselines"]["chance"].items():
        print(f"  {task} baselines:\n" + line("chance", chance) + "\n"
              + line("majority class", evaluation["baselines"]["majority"][task]))
    if evaluation.get("windows"):
        w = evaluation["windows"]
        print(f"  the same models on {w['protocol_text']}")
        for task, metrics in w["metrics"].items():
            if "war" in metrics:
                print(line(task, metrics) + f"   (chance UAR {w['baselines']['chance'][task]['uar']['mean']:.3f}, "
                      f"majority WAR {w['baselines']['majority'][task]['war']['mean']:.3f})")
    metric_names = ("war", "uar", "weighted_f1", "macro_f1")
    if evaluation.get("pooled"):
        print("  pooled out-of-fold (all test folds together):")
        for task, m in evaluation["pooled"].items():
            print(f"    {task:18s}" + ", ".join(f"{k} {m[k]:.3f}" for k in metric_names) + f"  (n {m['n']})")
    linear = evaluation.get("linear_baseline")
    if linear:
        print(f"  linear baseline ({linear['text']}):")
        for task, metrics in linear["summary"].items():
            cells = [f"{k} {metrics[k]['mean']:.3f}" + ("" if metrics[k]["se"] is None else f" +- {metrics[k]['se']:.3f}")
                     for k in metric_names]
            print(f"    {task:18s}mean over folds: " + ", ".join(cells))
            pooled = linear["pooled"][task]
            print(f"    {'':18s}pooled: " + ", ".join(f"{k} {pooled[k]:.3f}" for k in metric_names))


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-onnx", help="export a trained model.pt to ONNX with model cards",
        description="Write ONNX graphs (opset 17, dynamic batch and sequence length) and a model card JSON "
                    "beside each: EMERT -> NAME.onnx; crossmodal -> NAME-visual.onnx, NAME-audio.onnx "
                    "(monomodal) and NAME-joint.onnx. Each graph is checked against PyTorch with "
                    "onnxruntime (max abs diff <= 1e-4) before it is kept.")
    p.add_argument("checkpoint", type=Path, help="model.pt written by `eyemotion train`")
    p.add_argument("--out", type=Path, default=Path("."), help="output directory (default: current directory)")
    p.add_argument("--name", help="file stem (default: the model kind, emert or crossmodal)")
    p.add_argument("--licence", help="licence of the weights for the model card")
    p.add_argument("--notes", default="", help="free text for the model card (e.g. intended use)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace, config) -> int:
    from eyemotion.models.export import DEFAULT_LICENCE, export_checkpoint

    paths = export_checkpoint(args.checkpoint, args.out, name=args.name, licence=args.licence or DEFAULT_LICENCE,
                              notes=args.notes)
    for path in paths:
        print(f"wrote {path} and {path.with_suffix('.json').name}")
    return 0
