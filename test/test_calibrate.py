"""eventfx calibrate: the noise model of a dark recording (hot pixels, background rate), the params
overlay it writes, and that overlay laid over a config (eventfx denoise --params-file, the node's
second --params-file)."""
import argparse

import numpy as np
import yaml

from conftest import random_raw, run_cli
from eventfx_core.calibrate import CalibrateConfig, fit
from eventfx_core.cli.denoise import load_config
from eventfx_core.events import Events
from eventfx_core.pipeline import Pipeline
from eventfx_core.pipeline_config import load_denoise_config, overlay_overrides

CLASSIC = """/**:
  ros__parameters:
    stages: [hot_pixel, stcf]
    stcf: {time_window_us: 20000, k: 2}
"""


def noise(rates_hz: np.ndarray, seconds: float, seed: int) -> Events:
    rng = np.random.default_rng(seed)
    h, w = rates_hz.shape
    counts = rng.poisson(rates_hz.ravel() * seconds)
    pix = np.repeat(np.arange(w * h), counts)
    t = np.sort(rng.integers(0, int(seconds * 1e6), len(pix)))
    order = rng.permutation(len(pix))  # pixels in random time order
    return Events.from_arrays(t, pix[order] % w, pix[order] // w, rng.integers(0, 2, len(pix)), w, h)


def test_fit_finds_the_hot_pixels_and_the_background_rate():
    rates = np.full((60, 80), 2.0)
    hot = [(3, 4), (70, 50), (40, 30)]
    for x, y in hot:
        rates[y, x] = 300.0
    calib = fit(noise(rates, 2.0, 0))
    assert sorted(calib.hot_pixels) == sorted(hot)
    assert abs(calib.background_hz - 2.0) < 0.1
    assert abs(calib.rate_map[4, 3] - 300.0) < 30
    cfg = CalibrateConfig()
    # 8 r window held at the base config's: 2 Hz -> 50 ms x 3 / 2 = 75 ms; clipped to 5-100 ms
    assert abs(calib.stcf_window_us(50_000, cfg) - 75_000) < 4000
    assert fit(noise(np.full((60, 80), 100.0), 0.5, 1)).stcf_window_us(50_000, cfg) == 5000


def test_calibrate_on_a_real_dark_recording_writes_an_overlay_the_pipeline_loads(
        shared_data, tmp_path, capsys):
    rollover = shared_data / "ros2_bags" / "test_data_libcaer_rollover"
    config = tmp_path / "classic.yaml"
    config.write_text(CLASSIC)
    out = tmp_path / "calib" / "cam.yaml"
    rc, stdout, err = run_cli(capsys, "calibrate", rollover, "--seconds", "0.5", "--out", out,
                              "--config", config, "--rate-map", tmp_path / "rates.npy", "-q")
    assert rc == 0, err
    assert "hot pixels" in stdout and "held out" in stdout
    assert err == ""  # -q: no progress bar
    params = yaml.safe_load(out.read_text())["/**"]["ros__parameters"]
    muted = params["hot_pixel"]["muted_pixels"]
    assert len(muted) >= 2 and len(muted) % 2 == 0
    rates = np.load(tmp_path / "rates.npy")
    assert rates.shape == (480, 640)
    busiest = np.unravel_index(np.argmax(rates), rates.shape)  # (y, x)
    pairs = list(zip(muted[0::2], muted[1::2]))
    assert (busiest[1], busiest[0]) in pairs
    # laid over the base config, as eventfx denoise --params-file does; --set still wins
    args = argparse.Namespace(config=str(config), params_file=[str(out)], set=["stcf.k=3"])
    cfg = load_config(args)
    assert cfg.pipeline.stage_configs["stcf"].time_window_us == params["stcf"]["time_window_us"]
    assert cfg.pipeline.stage_configs["stcf"].k == 3
    assert cfg.pipeline.stage_configs["hot_pixel"].muted() == pairs
    # the muted pixel's events are dropped from its first event on
    x, y = pairs[0]
    ev = Events.from_arrays(np.arange(0, 50_000, 1000), np.full(50, x), np.full(50, y), np.ones(50), 640, 480)
    d = Pipeline(cfg.pipeline, (640, 480)).push(ev)
    assert not np.concatenate([k.keep for k in d]).any()
    assert load_denoise_config(config, overlay_overrides(out)).pipeline.stages == ["hot_pixel", "stcf"]


def test_bad_input_is_one_line_and_nothing_is_overwritten(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "calibrate", tmp_path / "missing.raw", "--out", tmp_path / "c.yaml")
    assert rc == 2 and err.startswith("eventfx: error:") and len(err.strip().splitlines()) == 1
    mine = tmp_path / "mine.yaml"
    mine.write_text("a file the user had")
    rec = tmp_path / "rec.h5"
    rec.write_bytes(b"")
    rc, _, err = run_cli(capsys, "calibrate", rec, "--out", mine)
    assert rc == 2 and "exists already" in err and mine.read_text() == "a file the user had"
    rc, _, err = run_cli(capsys, "calibrate", rec, "--out", tmp_path / "c.yaml", "--seconds", "0")
    assert rc == 2 and err.startswith("eventfx: error:")


def test_non_finite_numbers_are_one_line(tmp_path, capsys):
    rec = tmp_path / "rec.raw"
    random_raw(rec, seed=3, n=2000, t0=0, max_gap=500)
    for opt, value in (("--seconds", "nan"), ("--seconds", "inf"), ("--hot-factor", "nan"),
                       ("--hot-factor", "inf")):
        out = tmp_path / f"c{opt}{value}.yaml"
        rc, _, err = run_cli(capsys, "calibrate", rec, "--out", out, opt, value, "-q")
        assert rc == 2 and err.startswith("eventfx: error:") and opt in err, (opt, value, err)
        assert not out.exists()
