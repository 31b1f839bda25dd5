"""The one `eyemotion` command. Each subsystem registers its own subcommands.

A command module defines `register(subparsers)`, which adds its subparsers and sets `func` on each
(`parser.set_defaults(func=handler)`); a handler takes `(args, config)` and returns an exit code (or
None for 0). Command modules import heavy libraries (Qt, PsychoPy, onnxruntime, torch) inside their
handlers, so that `eyemotion --help` stays fast.

Errors a user can fix (`eyemotion.UserError`) print one line and exit non-zero; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from eyemotion import UserError, __version__
from eyemotion.config import load_config
from eyemotion.outputs import OutputError, os_error_message
from eyemotion.streams import configure_lsl

COMMAND_MODULES = (
    "eyemotion.acquisition.commands",  # devices, stream, markers
    "eyemotion.acquisition.session_commands",  # record, replay, export
    "eyemotion.inference.eyesignal.commands",  # eyesignal
    "eyemotion.inference.features.commands",  # features
    "eyemotion.stimuli.commands",  # stimuli
    "eyemotion.models.commands",  # dataset, train, export-onnx
    "eyemotion.inference.commands",  # infer
    "eyemotion.gui.commands",  # dashboard
    "eyemotion.node_commands",  # run, demo, bench
    "eyemotion.report",  # report
    "eyemotion.sessions_commands",  # sessions
    "eyemotion.acquisition.foreign",  # import-foreign
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eyemotion",
        description="Real-time emotion-elicitation sessions: eye tracking, camera and microphone over LSL.",
    )
    parser.add_argument("--version", action="version", version=f"eyemotion {__version__}")
    parser.add_argument("--config", metavar="TOML", help="config file (default: ./eyemotion.toml if present)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subsystem not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        config = load_config(args.config)
        configure_lsl(config.lsl.scope)
        return int(args.func(args, config) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"eyemotion: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # full disk, read-only, permissions, a file in the way: one line (eyemotion.outputs)
        if args.debug:
            raise
        print(f"eyemotion: error: {os_error_message(exc)}", file=sys.stderr)
        return OutputError.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
