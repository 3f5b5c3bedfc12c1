"""Recorded backgrounds: any file eventfx reads (AEDAT4 via open_source, DSEC events.h5)."""
import numpy as np
import pytest

from eventfx_core.errors import ConfigError
from eventfx_core.io.dsec import write_dsec
from eventfx_core.simulate.background import BackgroundConfig, read_recording, recorded_window
from eventfx_core.simulate.flare import FlareConfig
from eventfx_core.labels import NOISE, SIGNAL
from eventfx_core.simulate.sequence import GenerateConfig, make_sequence


def test_dsec_recording_window(tmp_path, make_events):
    ev = make_events(0, 20_000, 80, 60, span_us=1_000_000)
    write_dsec(tmp_path / "events.h5", ev)
    rec = read_recording(tmp_path / "events.h5", 10**6)
    assert rec.equals(ev)
    w = recorded_window(rec, 40, 30, 200_000, np.random.default_rng(1))
    assert w.sensor_size == (40, 30) and len(w) > 0
    assert w.t.min() >= 0 and w.t.max() < 200_000
    with pytest.raises(ConfigError, match="smaller than"):
        recorded_window(rec, 100, 60, 1000, np.random.default_rng(1))
    with pytest.raises(ConfigError, match="not found"):
        read_recording(tmp_path / "nope.h5", 10)


def test_sequence_on_a_real_recording(shared_data):
    path = shared_data / "aedat4" / "emlb_demo-01_davis346.aedat4"
    rec = read_recording(path, 10**7)
    cfg = GenerateConfig(width=160, height=120, duration_ms_min=100.0, duration_ms_max=100.0,
                         background=BackgroundConfig(recordings=[str(path)], recording_probability=1.0),
                         flare=FlareConfig(probability=1.0))
    ev, labels, meta = make_sequence(cfg, 0, None, [rec])
    assert meta["background"] == {"kind": "recording", "path": str(path)}
    n_sig = int((labels == SIGNAL).sum())
    occ = meta["occlusion"]
    assert n_sig == occ["background_kept"] > 0 and occ["background_dropped"] > 0
    assert (labels == NOISE).any() and np.all(np.diff(ev.t) >= 0)


def test_recording_probability_needs_recordings():
    from eventfx_core.config import from_dict
    with pytest.raises(ConfigError, match="no recordings listed"):
        from_dict(BackgroundConfig, {"recording_probability": 0.5}, "background")
