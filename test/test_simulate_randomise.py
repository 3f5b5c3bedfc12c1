"""Domain randomisation of eventfx generate (simulate/randomise.py): off, nothing changes; on,
every sequence draws its settings inside the configured ranges, deterministically, and the
archives carry the drawn sensor size and noise."""
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from eventfx_core.cli.main import main
from eventfx_core.config import from_dict
from eventfx_core.io.archive import read_archive
from eventfx_core.simulate.dataset import fingerprint
from eventfx_core.simulate.noise import NoiseConfig, noise_events
from eventfx_core.simulate.randomise import randomised
from eventfx_core.simulate.sequence import GenerateConfig, make_sequence, sequence_seed

ON = dict(enabled=True, sensor_sizes=["32x24", "48x36"], noise_hz_min=0.5, noise_hz_max=6.0)


def cfg_of(**over) -> GenerateConfig:
    base = dict(width=40, height=30, duration_ms_min=40.0, duration_ms_max=60.0,
                flare={"probability": 0.5})
    return from_dict(GenerateConfig, {**base, **over}, "generate")


def test_off_changes_nothing():
    cfg = cfg_of()
    same, drawn = randomised(cfg, 3, sequence_seed(cfg.seed, 3, 5))
    assert same is cfg and drawn is None
    ev, labels, meta = make_sequence(cfg, 3)
    assert "randomised" not in meta and ev.sensor_size == (40, 30)
    # the settings added for randomisation are left out of an old dataset's fingerprint
    on = cfg_of(randomise=ON)
    assert fingerprint(cfg) != fingerprint(on)
    assert fingerprint(cfg) == fingerprint(cfg_of(randomise=dict(ON, enabled=False)))


def test_draws_stay_in_their_ranges_and_repeat_for_a_seed():
    cfg = cfg_of(randomise=dict(ON, sparse_probability=0.3, threshold_min=0.1, threshold_max=0.3,
                                threshold_ratio_max=1.5, refractory_us_min=50.0, refractory_us_max=900.0))
    draws = [randomised(cfg, i, sequence_seed(cfg.seed, i, 5)) for i in range(400)]
    assert draws[7][1] == randomised(cfg, 7, sequence_seed(cfg.seed, 7, 5))[1]
    assert draws[7][1] != draws[8][1]
    rates = np.array([d["noise_hz"] for _, d in draws])
    assert rates.min() >= 0.5 and rates.max() <= 6.0
    # log-uniform: about half of the draws below the geometric mean of the range
    assert abs((rates < math.sqrt(0.5 * 6.0)).mean() - 0.5) < 0.1
    assert {tuple(d["sensor"]) for _, d in draws} == {(32, 24), (48, 36)}
    for c, d in draws:
        assert (c.width, c.height) == tuple(d["sensor"])
        n = c.noise
        ba = n.leak_rate_hz + n.shot_rate_hz
        assert ba == pytest.approx(d["noise_hz"] * (1 - d["hot_share"]))
        thr = math.sqrt(c.dvs.threshold_on * c.dvs.threshold_off)
        assert 0.1 - 1e-9 <= thr <= 0.3 + 1e-9
        assert 1 / 1.5 - 1e-9 <= c.dvs.threshold_off / c.dvs.threshold_on <= 1.5 + 1e-9
        assert 50.0 <= c.dvs.refractory_us <= 900.0
        assert c.scene.static_probability == (1.0 if d["sparse"] else cfg.scene.static_probability)
    assert abs(np.mean([d["sparse"] for _, d in draws]) - 0.3) < 0.08


def test_silent_pixels_fire_no_noise_and_the_mean_rate_stays():
    W, H, T = 120, 100, 2.0
    cfg = NoiseConfig(leak_rate_hz=0.5, shot_rate_hz=2.5, rate_spread=0.0, hot_pixels_per_mpx=0.0,
                      silent_fraction=0.4)
    nz = noise_events(cfg, W, H, 0, int(T * 1e6), np.random.default_rng(0))
    counts = np.bincount(nz["pixel"], minlength=W * H)
    # a live pixel fires 3 / 0.6 * 2 = 10 events on average: P(none) = e^-10, so silent = no events
    assert (counts == 0).mean() == pytest.approx(0.4, abs=0.02)
    expected = 3.0 * W * H * T
    assert abs(len(nz["t"]) - expected) < 5 * math.sqrt(expected)


def test_generated_archives_carry_the_drawn_sensor_and_noise(tmp_path: Path):
    over = dict(width=40, height=30, train_sequences=4, val_sequences=0, test_sequences=0,
                duration_ms_min=200.0, duration_ms_max=200.0, flare={"probability": 0.0},
                randomise=dict(ON, sensor_sizes=["64x48", "80x60"], hot_share_max=0.0))
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": over}}))
    assert main(["generate", "--config", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    for f in sorted((tmp_path / "o" / "train").glob("*.h5")):
        a = read_archive(f)
        d = a.meta["randomised"]
        assert a.events.sensor_size == tuple(d["sensor"])
        w, h = d["sensor"]
        got = (a.labels == 1).sum() / (w * h * 0.2)
        want = d["noise_hz"]
        assert abs(got - want) < 5 * math.sqrt(want / (w * h * 0.2)) + 0.05 * want
