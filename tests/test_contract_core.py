"""The stream contract and config core: real pylsl outlets/inlets, checked against eyemotion.streams."""

from __future__ import annotations

import numpy as np
import pylsl
import pytest

from eyemotion import streams
from eyemotion.config import ConfigError, config_from_dict, load_config


def test_tobii_layout_is_tittalsl():
    spec = streams.GAZE_RAW
    assert spec.channel_count == 37
    assert spec.channel_format == "double64"
    assert spec.labels[0] == "x.position_on_display_area.gaze_point.left_eye"
    assert spec.labels[18] == "x.position_on_display_area.gaze_point.right_eye"
    assert spec.labels[-1] == "device_time_stamp"
    assert sum(c.described for c in spec.channels) == 36  # TittaLSL leaves the timestamp undescribed


def test_every_spec_round_trips_through_a_real_inlet(namespace):
    for spec in streams.ALL:
        rate = 120.0 if spec.nominal_rate == streams.DEVICE_RATE else None
        outlet = pylsl.StreamOutlet(streams.stream_info(spec, namespace=namespace, rate=rate))
        inlet = streams.open_inlet(spec, namespace=namespace, timeout=5)
        full = inlet.info(timeout=5)
        assert streams.check_info(spec, full) == []
        assert full.source_id().endswith("#" + namespace)
        assert streams.described_labels(full) == [c.label for c in spec.channels if c.described]
        del inlet, outlet


def test_a_mismatching_stream_is_refused_with_every_difference(namespace):
    info = pylsl.StreamInfo("eyemotion_audio", "Sound", 2, 8000, pylsl.cf_int32,
                            streams.AUDIO.source_id(namespace))
    outlet = pylsl.StreamOutlet(info)
    with pytest.raises(streams.ContractError) as err:
        streams.resolve(streams.AUDIO, namespace=namespace, timeout=5)
    msg = str(err.value)
    for part in ("type is 'Sound'", "has 2 channels", "int32", "8000"):
        assert part in msg
    del outlet


def test_missing_stream_names_the_filters(namespace):
    with pytest.raises(streams.StreamNotFound, match=namespace):
        streams.resolve(streams.EMOTION, namespace=namespace, timeout=0.3)


def test_namespaces_isolate(namespace):
    other = pylsl.StreamOutlet(streams.stream_info(streams.MARKERS, namespace=namespace + "other"))
    assert streams.find(streams.MARKERS, namespace=namespace, timeout=0.5) == []
    del other


def test_samples_flow_and_keep_their_timestamps(namespace):
    """A stream from this machine shares its LSL clock: by default its stamps come through as pushed (with
    clock synchronisation, liblsl would add its offset estimate, tens of microseconds of jitter here)."""
    outlet = pylsl.StreamOutlet(streams.stream_info(streams.AUDIO, namespace=namespace))
    inlet = streams.open_inlet(streams.AUDIO, namespace=namespace)
    assert streams.clock_processing(inlet.info(timeout=5)) == pylsl.proc_none
    inlet.open_stream(timeout=5)
    inlet.time_correction(timeout=5)  # the offset is estimated first: clock synchronisation would apply it
    t0 = pylsl.local_clock()
    data = np.arange(320, dtype=np.float32).reshape(-1, 1) / 320
    stamps = t0 + np.arange(320) / 16000.0
    outlet.push_chunk(data, stamps)
    got, got_t = [], []
    for _ in range(50):
        chunk, ts = inlet.pull_chunk(timeout=0.1)
        got += chunk
        got_t += ts
        if len(got) >= 320:
            break
    assert np.allclose(np.asarray(got)[:, 0], data[:, 0])
    np.testing.assert_allclose(got_t, stamps, rtol=0, atol=1e-9)


@pytest.mark.parametrize("text, fragment", [
    ("[screen\n", "not valid TOML"),
    ("[nosuch]\n", "unknown section [nosuch]"),
    ("[screen]\nwidth_px = 'wide'\n", "screen.width_px must be an integer"),
    ("[screen]\nbogus = 1\n", "unknown key screen.bogus"),
    ("[screen]\ndistance_mm = 50\n", "screen.distance_mm must be within"),
    ("[lsl]\nscope = 'moon'\n", "lsl.scope"),
])
def test_malformed_config_names_the_problem(tmp_path, text, fragment):
    path = tmp_path / "eyemotion.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
        load_config(path)


def test_defaults_and_missing_file(tmp_path):
    cfg = config_from_dict({"screen": {"width_mm": 600}})
    assert cfg.screen.width_mm == 600.0 and cfg.tracker.frequency == 250.0
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_config_round_trips_through_toml(tmp_path):
    cfg = config_from_dict({"screen": {"width_mm": 600}, "lsl": {"namespace": "x-1"}})
    path = tmp_path / "eyemotion.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg  # session.json's copy reads back too
