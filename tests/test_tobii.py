"""The Tobii adapter, with TittaPy/TittaLSLPy faked one level below it (tests/fake_titta.py): discovery,
selection, frequency validation, the clock check, notifications, reconnection and markers all run for real,
and the fake Sender publishes real LSL samples."""

from __future__ import annotations

import threading
import time

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.markers import parse_marker
from eyemotion.acquisition.tobii import (
    TobiiTracker,
    TrackerError,
    check_clocks,
    check_frequency,
    clock_offset,
    find_trackers,
    select_tracker,
)
from fake_titta import FakeTobii, fusion

from eyemotion import streams
from eyemotion.config import TrackerConfig


def tracker_config(config, **kw):
    return config.replace(tracker=TrackerConfig(simulate=False, **kw))


def test_select_by_address_and_serial():
    world = FakeTobii([fusion("TPFC2-A"), fusion("TPFC2-B", address="tet-tcp://169.254.1.2")])
    found = find_trackers(world.TittaPy)
    assert [t.serial for t in found] == ["TPFC2-A", "TPFC2-B"]
    assert select_tracker(found, serial="TPFC2-B").address == "tet-tcp://169.254.1.2"
    assert select_tracker(found, address="tobii-prp://TPFC2-A").serial == "TPFC2-A"
    assert select_tracker(found).serial == "TPFC2-A"


def test_unknown_address_or_serial_lists_what_was_found():
    found = find_trackers(FakeTobii([fusion("TPFC2-A")]).TittaPy)
    with pytest.raises(TrackerError, match=r"no Tobii eye tracker with serial 'X1'; found: .*TPFC2-A at tobii-prp"):
        select_tracker(found, serial="X1")
    with pytest.raises(TrackerError, match=r"address 'tet-tcp://1.2.3.4'.*TPFC2-A"):
        select_tracker(found, address="tet-tcp://1.2.3.4")
    with pytest.raises(TrackerError, match="no Tobii eye tracker found"):
        select_tracker([])


def test_frequency_is_checked_against_the_device():
    assert check_frequency(120, [60.0, 120.0, 250.0], "Fusion") == 120.0
    with pytest.raises(TrackerError, match="does not support 100 Hz; supported: 60, 120, 250"):
        check_frequency(100, [60.0, 120.0, 250.0], "Fusion")


def test_clock_check_accepts_the_same_clock_and_refuses_an_offset_one():
    same = FakeTobii()
    assert abs(check_clocks(same.TittaPy.get_system_timestamp, pylsl.local_clock)) < 0.001
    for offset in (0.0015, -0.25):
        shifted = FakeTobii(clock_offset_s=offset)
        assert clock_offset(shifted.TittaPy.get_system_timestamp, pylsl.local_clock) == pytest.approx(offset, abs=3e-4)
        with pytest.raises(TrackerError, match="clock and the LSL clock differ by"):
            check_clocks(shifted.TittaPy.get_system_timestamp, pylsl.local_clock)


def test_open_refuses_bad_setups_before_streaming(config, namespace):
    world = FakeTobii([fusion("TPFC2-A")], namespace=namespace)
    node = TobiiTracker(tracker_config(config, frequency=100.0), titta=world.TittaPy, titta_lsl=world.TittaLSLPy)
    with pytest.raises(TrackerError, match="supported: 60, 120, 250"):
        node.open()
    node = TobiiTracker(tracker_config(config, serial="NOPE"), titta=world.TittaPy, titta_lsl=world.TittaLSLPy)
    with pytest.raises(TrackerError, match="found: Tobii Pro Fusion TPFC2-A"):
        node.open()
    skewed = FakeTobii([fusion("TPFC2-A")], namespace=namespace, clock_offset_s=0.01)
    node = TobiiTracker(tracker_config(config), titta=skewed.TittaPy, titta_lsl=skewed.TittaLSLPy)
    with pytest.raises(TrackerError, match="differ by 10"):
        node.open()
    assert world.senders == [] and skewed.senders == []  # nothing was streamed


def test_streams_the_contract_sets_frequency_and_reconnects(config, namespace):
    world = FakeTobii([fusion("TPFC2-A", frequencies=(60.0, 120.0, 250.0))], namespace=namespace)
    node = TobiiTracker(tracker_config(config, frequency=120.0), titta=world.TittaPy, titta_lsl=world.TittaLSLPy)
    thread = threading.Thread(target=node.run, kwargs={"duration": 7.0, "handle_signals": False})
    thread.start()
    gaze = streams.open_inlet(streams.GAZE_RAW, namespace=namespace, processing=pylsl.proc_none)
    info = gaze.info()
    assert streams.check_info(streams.GAZE_RAW, info) == []
    assert info.nominal_srate() == 120.0 and world.trackers["tobii-prp://TPFC2-A"]["frequency"] == 120.0
    assert info.source_id() == f"TittaLSL:Tobii_gaze@TPFC2-A#{namespace}"
    assert streams.desc_value(info, "acquisition", "model") == "Tobii Pro Fusion"
    markers = streams.open_inlet(streams.MARKERS, namespace=namespace, processing=pylsl.proc_none)
    gaze.open_stream(timeout=5)
    markers.open_stream(timeout=5)
    stamps = []
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        stamps += gaze.pull_chunk(timeout=0.1)[1]
    world.disconnect(1.5)
    events = []
    while thread.is_alive():
        stamps += gaze.pull_chunk(timeout=0.1)[1]
        texts, ts = markers.pull_chunk(timeout=0.0)
        events += [(parse_marker(t[0]), s) for t, s in zip(texts, ts)]
    thread.join()
    stamps = np.asarray(stamps)
    gaps = np.diff(stamps)
    assert np.all(gaps > 0)
    assert gaps.max() > 1.3, "no gap while the tracker was disconnected"
    g = int(np.argmax(gaps))
    assert stamps[-1] - stamps[g + 1] > 1.0, "gaze did not resume after connection_restored"
    assert [e["event"] for e, _ in events] == ["device_lost", "device_restored"]
    (lost, t_lost), (restored, t_restored) = events
    assert lost["serial"] == "TPFC2-A" and restored["gap_s"] == pytest.approx(1.5, abs=0.3)
    assert t_lost <= stamps[g + 1] and t_restored >= stamps[g]
    assert node.gaps and node.sender is None  # closed


def test_reconnects_to_a_tracker_that_comes_back_on_a_new_address(config, namespace, monkeypatch):
    from eyemotion.acquisition import tobii

    monkeypatch.setattr(tobii, "RESCAN_S", 0.1)
    world = FakeTobii([fusion("TPFC2-A", address="tet-tcp://10.0.0.5")], namespace=namespace)
    node = TobiiTracker(tracker_config(config), titta=world.TittaPy, titta_lsl=world.TittaLSLPy)
    node.open()
    try:
        world.connected = False
        world.notify(world.TittaPy.notification_type.connection_lost)
        node.step()
        assert node.lost_since is not None
        world.trackers = {"tet-tcp://10.0.0.9": fusion("TPFC2-A", address="tet-tcp://10.0.0.9")}
        world.connected = True
        deadline = time.monotonic() + 3
        while node.lost_since is not None and time.monotonic() < deadline:
            node.step()
        assert node.lost_since is None and node.info.address == "tet-tcp://10.0.0.9"
        assert node.sender.is_streaming("gaze")
    finally:
        node.close()


def test_gives_up_after_the_reconnect_timeout(config, namespace):
    world = FakeTobii([fusion("TPFC2-A")], namespace=namespace)
    node = TobiiTracker(tracker_config(config, reconnect_timeout_s=0.2), titta=world.TittaPy,
                        titta_lsl=world.TittaLSLPy)
    node.open()
    try:
        world.disconnect(60)
        with pytest.raises(TrackerError, match="lost for more than 0.2 s"):
            for _ in range(40):
                node.step()
    finally:
        node.close()
