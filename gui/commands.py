"""`eyemotion dashboard`: the live monitoring window, and `--replay SESSION` to replay a recording."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="open the live dashboard (or replay a recorded session in it)",
        description=(
            "Open the PyQt6 dashboard. It finds every eyemotion stream on the network (filtered by [lsl] "
            "namespace/hostname) and shows stream health, gaze, eye signals, face and voice, emotion "
            "predictions and the session (recording, trials, annotations, node health). With --replay it "
            "re-publishes a recorded session through LSL, runs the live session's nodes beside it (eye signal, "
            "the face pipeline on camera.mkv, live inference; supervised) and adds play/pause/speed/scrub "
            "controls. "
            "Keys: Ctrl+R record, 1-9 annotations, H heat map, Space play/pause, Left/Right seek 5 s, "
            "Ctrl+O open a session, Ctrl+Shift+L reset layout, F11 full screen, Ctrl+Q quit. "
            "Options: [dashboard] fps, stale_s, history_s, trail_s, voice_threshold_db, annotations."
        ),
    )
    p.add_argument("--replay", metavar="SESSION", help="session folder (or recording.xdf) to replay")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed, 0.25-20 (default 1)")
    p.add_argument(
        "--predictions",
        choices=("recomputed", "recorded"),
        default="recomputed",
        help="replay: re-compute faces and emotion predictions with the installed models (default), or "
        "show the ones recorded during the session; the Emotion panel says which",
    )
    p.add_argument(
        "--no-nodes",
        action="store_true",
        help="replay the raw streams only, without the eye-signal, face and inference nodes",
    )
    p.add_argument("--participant", default="", help="participant pseudonym for recordings (e.g. P001)")
    p.add_argument("--reset-layout", action="store_true", help="forget the remembered window layout")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="close by itself after S seconds (demos, smoke tests)",
    )
    p.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window when it closes")
    p.set_defaults(func=run_dashboard)


def run_dashboard(args: argparse.Namespace, config) -> int:
    import signal
    import sys
    import threading

    from eyemotion.stimuli.runner import limit_malloc_arenas

    from eyemotion.session import check_participant_id

    if args.participant:  # it names the session folder of a recording started here
        check_participant_id(args.participant)
    # first, before Qt, LSL and the reader threads start: the LSL reader thread allocates every chunk in its
    # own malloc arena, freed by the GUI thread; per-thread arenas fragment (the dashboard's ~0.4 MB/min)
    limit_malloc_arenas()
    from eyemotion.gui import theme
    from eyemotion.gui.window import SETTINGS_APP, SETTINGS_ORG, Dashboard
    from PyQt6.QtCore import QSettings, QTimer
    from PyQt6.QtWidgets import QApplication

    # Ctrl-C, or the supervisor ending the session (SIGINT, then SIGTERM): stop a recording started here
    # without asking, and close. Python runs signal handlers only when it has control, hence a timer below.
    signalled: list[int] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: signalled.append(signum))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("eyemotion dashboard")
    theme.apply(app)
    settings = QSettings(SETTINGS_ORG, SETTINGS_APP)
    if args.reset_layout:
        settings.clear()
    window = Dashboard(config, settings=settings, participant=args.participant)
    window.show()
    ok = True
    if args.replay:
        ok = window.open_replay(
            args.replay, speed=args.speed, predictions=args.predictions, pipeline=not args.no_nodes
        )

    def finish() -> None:
        if args.screenshot:
            window.grab().save(args.screenshot)
        window.close()

    if args.duration:
        QTimer.singleShot(int(args.duration * 1000), finish)

    def on_signal() -> None:
        if signalled:
            if window.session_panel.busy:
                window.session_panel.stop_recording()
            finish()

    signal_poll = QTimer()
    signal_poll.timeout.connect(on_signal)
    signal_poll.start(200)
    app.exec()
    window.shutdown()
    return 0 if ok else 2
