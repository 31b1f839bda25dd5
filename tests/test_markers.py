"""The markers API and `key=value` parsing: JSON objects with an event and a source over a real LSL outlet."""

from __future__ import annotations

import json

import numpy as np
import pylsl
import pytest
from eyemotion.acquisition.commands import parse_fields
from eyemotion.acquisition.markers import MarkerError, MarkerOutlet, encode_marker, parse_marker

from eyemotion import UserError, streams


def test_encode_and_parse_round_trip():
    text = encode_marker("clip_onset", "runner", clip="c1", emotion="fear", n=np.int64(3), x=np.float32(0.5))
    assert json.loads(text) == {"event": "clip_onset", "source": "runner", "clip": "c1", "emotion": "fear",
                                "n": 3, "x": 0.5}
    assert parse_marker(text)["emotion"] == "fear"


@pytest.mark.parametrize("bad", ["not json", "[1, 2]", '{"source": "x"}', '{"event": ""}'])
def test_parse_refuses_non_markers(bad):
    with pytest.raises(MarkerError):
        parse_marker(bad)


def test_encode_refuses_nan_and_objects():
    with pytest.raises(MarkerError, match="cannot be encoded"):
        encode_marker("x", "cli", value=float("nan"))
    with pytest.raises(MarkerError, match="cannot be encoded"):
        encode_marker("x", "cli", value=object())
    with pytest.raises(MarkerError, match="non-empty"):
        encode_marker("", "cli")


def test_fields_are_json_when_they_parse():
    assert parse_fields(["seconds=1.5", "ok=true", "none=null", "emotion=fear", 'text="a b"', "empty="]) == {
        "seconds": 1.5, "ok": True, "none": None, "emotion": "fear", "text": "a b", "empty": ""}
    for bad in ("novalue", "=x", "two words=x", "event=x", "source=y"):
        with pytest.raises(UserError):
            parse_fields([bad])


def test_markers_reach_a_real_inlet_with_their_timestamps(namespace):
    outlet = MarkerOutlet("runner", namespace=namespace)
    inlet = streams.open_inlet(streams.MARKERS, namespace=namespace, processing=pylsl.proc_none)
    info = inlet.info()
    assert streams.check_info(streams.MARKERS, info) == []
    assert streams.desc_value(info, "eyemotion", "sender") == "runner"
    inlet.open_stream(timeout=5)
    t0 = pylsl.local_clock()
    stamps = [outlet.push("trial_start", timestamp=t0 + i, trial=i) for i in range(3)]
    got = []
    for _ in range(30):
        texts, ts = inlet.pull_chunk(timeout=0.1)
        got += [(parse_marker(t[0]), s) for t, s in zip(texts, ts)]
        if len(got) == 3:
            break
    assert [m["trial"] for m, _ in got] == [0, 1, 2]
    assert all(m["source"] == "runner" and m["event"] == "trial_start" for m, _ in got)
    np.testing.assert_allclose([s for _, s in got], stamps, rtol=0, atol=1e-9)
