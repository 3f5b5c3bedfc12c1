"""Flare images, Flare7K folders (errors name the path, never a silent fallback) and whole
sequences: labels agree with what caused each event."""
import cv2
import numpy as np
import pytest

from eventfx_core.errors import ConfigError
from eventfx_core.simulate.flare import FlareConfig, find_flare7k, find_flare7k_pairs, procedural_flare, radial_shimmer
from eventfx_core.labels import FLARE, LIGHT_SOURCE, NOISE, SIGNAL
from eventfx_core.simulate.noise import NoiseConfig
from eventfx_core.simulate.sequence import GenerateConfig, make_sequence


def tiny(**kw) -> GenerateConfig:
    base = dict(width=48, height=36, duration_ms_min=60.0, duration_ms_max=60.0)
    base.update(kw)
    return GenerateConfig(**base)


def make_flare7k(root, names=("000001", "000002")):
    comp = root / "Flare7K" / "Scattering_Flare" / "Compound_Flare"
    light = root / "Flare7K" / "Scattering_Flare" / "Light_Source"
    comp.mkdir(parents=True)
    light.mkdir(parents=True)
    yy, xx = np.mgrid[0:64, 0:64]
    r = np.hypot(xx - 32, yy - 32)
    for n in names:
        ls = (255 * (r < 4)).astype(np.uint8)
        cv2.imwrite(str(light / f"{n}.png"), ls)
        cv2.imwrite(str(comp / f"{n}.png"), np.maximum(ls, (200 * np.exp(-r / 10)).astype(np.uint8)))
    return root


def test_flare7k_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path / "nope")):
        find_flare7k_pairs(tmp_path / "nope")


def test_flare7k_malformed_folder_is_a_config_error(tmp_path):
    (tmp_path / "Flare7K" / "something_else").mkdir(parents=True)
    with pytest.raises(ConfigError, match="Compound_Flare"):
        find_flare7k_pairs(tmp_path)
    comp = tmp_path / "Flare-R" / "Compound_Flare"
    comp.mkdir(parents=True)
    with pytest.raises(ConfigError, match="Light_Source"):
        find_flare7k_pairs(tmp_path)
    (tmp_path / "Flare-R" / "Light_source").mkdir()  # Flare7K++ spelling
    cv2.imwrite(str(comp / "a.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ConfigError, match="no compound flare image has a light-source"):
        find_flare7k_pairs(tmp_path)


def test_flare7k_unreadable_image_is_a_config_error(tmp_path):
    root = make_flare7k(tmp_path)
    (root / "Flare7K" / "Scattering_Flare" / "Compound_Flare" / "000001.png").write_bytes(b"junk")
    cfg = tiny(flare=FlareConfig(probability=1.0, flare7k_path=str(root)))
    lib = find_flare7k(root)
    with pytest.raises(ConfigError, match="000001.png"):
        for i in range(6):  # some sequence picks the broken pair
            make_sequence(cfg, i, lib)


def test_sequence_uses_flare7k_images(tmp_path):
    root = make_flare7k(tmp_path)
    pairs = find_flare7k_pairs(root)
    assert [p[0].name for p in pairs] == ["000001.png", "000002.png"]
    cfg = tiny(flare=FlareConfig(probability=1.0, flare7k_path=str(root), reflective_probability=1.0))
    lib = find_flare7k(root)
    assert lib.reflective == []
    ev, labels, meta = make_sequence(cfg, 0, lib)
    assert meta["flare"]["source"].startswith("flare7k:") and "+" not in meta["flare"]["source"]
    assert (labels == FLARE).any() and (labels == LIGHT_SOURCE).any()
    refl = root / "Flare7K" / "Reflective_Flare"
    refl.mkdir()
    cv2.imwrite(str(refl / "r1.png"), np.full((64, 64), 90, np.uint8))
    lib = find_flare7k(root)
    assert [p.name for p in lib.reflective] == ["r1.png"]
    ev2, labels2, meta2 = make_sequence(cfg, 0, lib)
    assert meta2["flare"]["source"].endswith("+r1.png") and (labels2 == FLARE).any()
    # the reflection is added to the flare image, linearised with the gamma, in core-peak units
    from eventfx_core.simulate.flare import AnimatedFlare
    with_r = AnimatedFlare(cfg.flare, 48, 36, 0.2, np.random.default_rng(4), lib)
    no_r = AnimatedFlare(FlareConfig(probability=1.0, reflective_probability=0.0), 48, 36, 0.2,
                         np.random.default_rng(4), lib)
    diff = with_r.flare_img - no_r.flare_img
    assert with_r.peak > 0.2 and np.allclose(diff, (90 / 255) ** 2.2 * with_r.peak, rtol=5e-3)
    assert np.array_equal(with_r.core_img, no_r.core_img)


def test_light_source_events_sit_on_the_moving_core():
    cfg = tiny(flare=FlareConfig(probability=1.0, core_radius_px_min=2.0, core_radius_px_max=2.0,
                                 mains_probability=1.0, pwm_probability=0.0, flicker_depth_min=0.3),
               noise=NoiseConfig(leak_rate_hz=0.0, shot_rate_hz=0.0, hot_pixels_per_mpx=0.0))
    for index in range(3):
        ev, labels, meta = make_sequence(cfg, index)
        fl = meta["flare"]
        ls = labels == LIGHT_SOURCE
        assert ls.sum() > 10
        pos = np.array(fl["pos0"])[None, :] + np.array(fl["velocity_px_s"])[None, :] * ev.t[ls, None] * 1e-6
        d = np.hypot(ev.x[ls] - pos[:, 0], ev.y[ls] - pos[:, 1])
        scale = 1 + abs(fl["scale_rate"]) * meta["duration_us"] * 1e-6
        assert d.max() <= 1.5 * 2.0 * scale + 2  # core radius (x1.5 soft edge) + interpolation
        fd = labels == FLARE
        assert fd.sum() > 0
        pos_f = np.array(fl["pos0"])[None, :] + np.array(fl["velocity_px_s"])[None, :] * ev.t[fd, None] * 1e-6
        assert np.hypot(ev.x[fd] - pos_f[:, 0], ev.y[fd] - pos_f[:, 1]).mean() > d.mean()


def test_noise_events_are_labelled_noise_and_scene_events_signal():
    cfg = tiny(flare=FlareConfig(probability=0.0),
               noise=NoiseConfig(leak_rate_hz=0.0, shot_rate_hz=0.0, hot_pixels_per_mpx=3000.0,
                                 hot_rate_hz_min=500.0, hot_rate_hz_max=500.0))
    for index in range(3):
        ev, labels, meta = make_sequence(cfg, index)
        assert set(np.unique(labels)) <= {SIGNAL, NOISE}
        assert meta["flare"] is None
        n_hot = meta["noise"]["hot_pixels"]
        noise_pix = np.unique(ev.y[labels == NOISE].astype(int) * cfg.width + ev.x[labels == NOISE])
        assert len(noise_pix) == n_hot  # every noise event is on one of the hot pixels
        assert meta["counts"]["noise"] == (labels == NOISE).sum()


def test_static_scene_without_noise_or_flare_is_silent():
    from eventfx_core.simulate.scenes import SceneConfig
    cfg = tiny(scene=SceneConfig(static_probability=1.0, objects_max=0),
               flare=FlareConfig(probability=0.0),
               noise=NoiseConfig(leak_rate_hz=0.0, shot_rate_hz=0.0, hot_pixels_per_mpx=0.0))
    ev, labels, meta = make_sequence(cfg, 0)
    assert len(ev) < 0.01 * cfg.width * cfg.height  # only rare diffusion-driven crossings


def test_sequence_is_a_function_of_seed_and_index():
    cfg = tiny()
    a = make_sequence(cfg, 3)
    b = make_sequence(cfg, 3)
    c = make_sequence(cfg, 4)
    assert a[0].equals(b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not (len(a[0]) == len(c[0]) and a[0].equals(c[0]))
    assert np.all(np.diff(a[0].t) >= 0)


@pytest.mark.parametrize("kind,freq", [("mains", 100.0), ("pwm", 170.0)])
def test_flare_events_follow_the_flicker(kind, freq):
    cfg = tiny(duration_ms_min=80.0, duration_ms_max=80.0,
               flare=FlareConfig(probability=1.0, mains_probability=float(kind == "mains"),
                                 pwm_probability=float(kind == "pwm"), pwm_hz_min=freq, pwm_hz_max=freq,
                                 speed_px_s_max=1.0, scale_rate_max=0.01, flicker_depth_min=0.3,
                                 core_intensity_min=8.0),
               noise=NoiseConfig(leak_rate_hz=0.0, shot_rate_hz=0.0, hot_pixels_per_mpx=0.0))
    for index in range(2):
        ev, labels, meta = make_sequence(cfg, index)
        fl = meta["flare"]
        if kind == "mains":
            freq = fl["flicker_hz"]  # 100 or 120
        assert fl["flicker"] == kind and fl["flicker_hz"] == pytest.approx(freq)
        assert meta["flare_substeps"] == int(np.ceil(freq * cfg.flare.samples_per_period / cfg.frame_rate_hz))
        is_fl = (labels == FLARE) | (labels == LIGHT_SOURCE)
        on = is_fl & (ev.p == 1)
        assert on.sum() > 50 and (is_fl & (ev.p == 0)).sum() > 50

        def locking(f):  # how strongly ON-event times lock to a frequency (0 none .. 1 full)
            return abs(np.exp(2j * np.pi * f * ev.t[on] * 1e-6).mean())
        assert locking(freq) > 0.5 and locking(freq * 0.731) < 0.3


def test_shimmer_is_radial_around_the_light():
    """Flare7K's shimmer: a gain that depends only on the angle around the source, one value
    per ray, linear between rays, periodic."""
    gains = np.random.default_rng(1).uniform(0.9, 1.1, 200)
    angles = np.linspace(-np.pi, np.pi, 1001)
    g = radial_shimmer(gains, angles)
    assert g.min() >= gains.min() - 1e-6 and g.max() <= gains.max() + 1e-6
    assert g[0] == pytest.approx(gains[0], abs=1e-6) and g[-1] == pytest.approx(gains[0], abs=1e-6)  # -pi, pi: one ray
    assert radial_shimmer(gains, np.array([-np.pi + np.pi / 200]))[0] == pytest.approx(
        (gains[0] + gains[1]) / 2, abs=1e-6)  # half way between rays 0 and 1
    # halo, streaks and shimmer are all radial: along any ray from the light the flare only fades
    # (the old shimmer, a gain per image column, broke this)
    for seed in range(5):
        flare, _ = procedural_flare(np.random.default_rng(seed), 101, 2.0, 0.3)
        for ray in (flare[50, 51:], flare[50, 49::-1], flare[51:, 50], flare[49::-1, 50]):
            assert (np.diff(ray) <= 1e-6 * ray[:-1]).all()
