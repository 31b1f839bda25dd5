"""Shared test fixtures: real LSL on this machine only, a unique stream namespace per test, offscreen Qt,
and a real X server (Xvfb) for PsychoPy windows."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from eyemotion.config import Config, LslConfig, config_from_dict
from eyemotion.streams import configure_lsl

configure_lsl("machine")  # streams never leave this machine during tests

HARD_LIMIT_MARGIN_S = 120.0


def uncaptured_stderr(config) -> int:
    """The run's real stderr: pytest's fd capture points fd 2 at a temporary file while a test runs."""
    capman = config.pluginmanager.getplugin("capturemanager")
    err = getattr(getattr(capman, "_global_capturing", None), "err", None)
    return getattr(err, "targetfd_save", None) or sys.__stderr__.fileno()


@contextlib.contextmanager
def hard_limit(item) -> Iterator[None]:
    """A last resort behind pytest-timeout: its SIGALRM cannot interrupt code blocked in C (a modal Qt
    dialog, a native wait), which would hang the whole run. Past the test's timeout plus a margin, dump
    every thread's stack and end the run, so CI fails with the place it hung instead of timing out.
    Armed per phase: pytest cancels faulthandler's timer when a test fails (pytest_exception_interact),
    and the teardown after a failure is where a forgotten dialog waits."""
    marker = item.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else float(item.config.getoption("timeout") or 600)
    faulthandler.dump_traceback_later(limit + HARD_LIMIT_MARGIN_S, exit=True, file=uncaptured_stderr(item.config))
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with hard_limit(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with hard_limit(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with hard_limit(item):
        return (yield)


@pytest.fixture
def namespace() -> str:
    """A namespace unique to this test, so parallel tests and sessions never see each other's streams."""
    return f"t{os.getpid()}x{uuid.uuid4().hex[:8]}"


@pytest.fixture
def config(namespace: str) -> Config:
    """The default config, isolated to this test's namespace."""
    return config_from_dict({}).replace(lsl=LslConfig(namespace=namespace, resolve_timeout_s=5.0))


@pytest.fixture(scope="session")
def xvfb_display() -> str:
    """A real X display: the existing $DISPLAY, or the private Xvfb server headless sessions use."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        pytest.skip("needs an X display: Xvfb is not installed (run setup.sh, which installs xvfb)")
    from eyemotion.session_runner import Xvfb

    server = Xvfb()
    os.environ["DISPLAY"] = server.display
    try:
        yield server.display
    finally:
        server.stop()
        os.environ.pop("DISPLAY", None)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files for a person to look at (screenshots, reports): ./test-artifacts."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
