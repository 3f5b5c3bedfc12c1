"""Domain randomisation: per-sequence draws of sensor, pixel, noise and scene parameters.

Domain randomisation (Tobin et al., "Domain Randomization for Transferring Deep Neural
Networks from Simulation to the Real World", IROS 2017), applied to the DVS simulator as in
ESIM/v2e-trained denoisers: each sequence gets its own noise rate (0.5-6 Hz per pixel, the
range of DND21's benchmark, Guo & Delbruck 2022), per-pixel noise-rate maps with silent and
hot pixels (like the real noise bag: 43 % silent pixels, the busiest 0.1 % carrying a fifth of
its events), contrast thresholds with ON/OFF imbalance and per-pixel spread, a refractory
period, a sensor size, and a scene that fires from sparse (a few moving objects on a still,
flat background) to dense (fast motion over strong texture at low thresholds).

``randomised(cfg, index)`` returns the sequence's own ``GenerateConfig`` and what was drawn.
Its random numbers come from their own stream (purpose 5 of ``sequence_seed``), so with
``randomise.enabled: false`` nothing is drawn and every sequence is what it was before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError


@dataclass
class RandomiseConfig:
    enabled: bool = False  # false: the fixed settings of the other sections (the old datasets)
    sensor_sizes: list[str] = field(default_factory=lambda: ["346x260"])  # "WxH", one drawn uniformly
    # noise: mean background-activity rate (leak + shot) per pixel, log-uniform
    noise_hz_min: float = 0.5
    noise_hz_max: float = 6.0
    leak_share_max: float = 0.5  # share of it that is leak (ON) noise, uniform [0, max]
    shot_on_min: float = 0.35  # ON share of the shot noise, uniform [min, max]
    shot_on_max: float = 0.65
    rate_spread_min: float = 0.3  # per-pixel lognormal sigma of the rates, uniform [min, max]
    rate_spread_max: float = 1.5
    silent_max: float = 0.5  # share of pixels without leak/shot noise, uniform [0, max]
    hot_share_max: float = 0.3  # share of the noise events from hot pixels, uniform [0, max]
    hot_pixels_per_mpx_min: float = 100.0  # hot-pixel density, log-uniform [min, max]
    hot_pixels_per_mpx_max: float = 2000.0
    # pixels: mean contrast threshold log-uniform; OFF/ON ratio log-uniform in [1/r, r]
    threshold_min: float = 0.08
    threshold_max: float = 0.35
    threshold_ratio_max: float = 1.5
    threshold_sigma_min: float = 0.01  # per-pixel threshold spread, uniform [min, max]
    threshold_sigma_max: float = 0.08
    refractory_us_min: float = 20.0  # refractory period, log-uniform [min, max]
    refractory_us_max: float = 2000.0
    # scenes: camera pan speed limit log-uniform; a share of sparse scenes
    speed_px_s_min: float = 100.0
    speed_px_s_max: float = 1500.0
    contrast_max: float = 0.95  # texture contrast uniform [scene.contrast_min, max]
    sparse_probability: float = 0.25  # still camera, flat background, only moving objects

    def check(self, where: str = "randomise") -> None:
        if not self.sensor_sizes:
            raise ConfigError(f"{where}.sensor_sizes: list at least one WxH")
        for s in self.sensor_sizes:
            parse_size(s, f"{where}.sensor_sizes")
        for name in ("noise_hz", "hot_pixels_per_mpx", "threshold", "refractory_us", "speed_px_s"):
            if not 0 < getattr(self, name + "_min") <= getattr(self, name + "_max"):
                raise ConfigError(f"{where}: need 0 < {name}_min <= {name}_max")
        for name in ("rate_spread", "threshold_sigma", "shot_on"):
            if not 0 <= getattr(self, name + "_min") <= getattr(self, name + "_max"):
                raise ConfigError(f"{where}: need 0 <= {name}_min <= {name}_max")
        for name in ("leak_share_max", "shot_on_max", "silent_max", "hot_share_max", "sparse_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{where}.{name} must be in [0, 1]")
        if self.silent_max >= 1 or self.hot_share_max >= 1:
            raise ConfigError(f"{where}: silent_max and hot_share_max must be < 1")
        if self.threshold_ratio_max < 1:
            raise ConfigError(f"{where}.threshold_ratio_max must be >= 1")
        if not 0 < self.contrast_max < 1:
            raise ConfigError(f"{where}.contrast_max must be in (0, 1)")


def parse_size(text: str, where: str = "sensor size") -> tuple[int, int]:
    """"346x260" -> (346, 260)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not WxH (e.g. 346x260)") from None
    if not (1 <= w <= 4096 and 1 <= h <= 4096):
        raise ConfigError(f"{where}: {text!r} out of range")
    return w, h


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def randomised(cfg, index: int, seed: int):
    """(the sequence's GenerateConfig, dict of the drawn values); ``cfg`` unchanged when
    ``cfg.randomise.enabled`` is false (then nothing is drawn). ``seed`` from
    ``sequence_seed(cfg.seed, index, 5)``."""
    r = cfg.randomise
    if not r.enabled:
        return cfg, None
    rng = np.random.default_rng(seed)
    W, H = parse_size(r.sensor_sizes[int(rng.integers(len(r.sensor_sizes)))])
    # noise: leak + shot at the drawn mean; hot pixels carry hot_share of all noise events
    rate = _log_uniform(rng, r.noise_hz_min, r.noise_hz_max)
    leak_share = float(rng.uniform(0.0, r.leak_share_max))
    hot_share = float(rng.uniform(0.0, r.hot_share_max))
    density = _log_uniform(rng, r.hot_pixels_per_mpx_min, r.hot_pixels_per_mpx_max)
    hot_mean = hot_share * rate * 1e6 / density  # Hz per hot pixel for that share
    ba = rate * (1.0 - hot_share)
    noise = replace(cfg.noise, leak_rate_hz=ba * leak_share, shot_rate_hz=ba * (1.0 - leak_share),
                    shot_on_fraction=float(rng.uniform(r.shot_on_min, r.shot_on_max)),
                    rate_spread=float(rng.uniform(r.rate_spread_min, r.rate_spread_max)),
                    silent_fraction=float(rng.uniform(0.0, r.silent_max)),
                    rate_scale_min=1.0, rate_scale_max=1.0,
                    hot_pixels_per_mpx=density if hot_share > 0 else 0.0,
                    hot_rate_hz_min=max(hot_mean / 3.0, 1e-3), hot_rate_hz_max=max(hot_mean * 3.0, 1e-3))
    # pixels
    thr = _log_uniform(rng, r.threshold_min, r.threshold_max)
    ratio = _log_uniform(rng, 1.0 / r.threshold_ratio_max, r.threshold_ratio_max)  # OFF / ON
    dvs = replace(cfg.dvs, threshold_on=thr / math.sqrt(ratio), threshold_off=thr * math.sqrt(ratio),
                  threshold_sigma=float(rng.uniform(r.threshold_sigma_min, r.threshold_sigma_max)),
                  threshold_min=min(cfg.dvs.threshold_min, 0.5 * thr / math.sqrt(r.threshold_ratio_max)),
                  refractory_us=_log_uniform(rng, r.refractory_us_min, r.refractory_us_max))
    # scene
    sparse = bool(rng.random() < r.sparse_probability)
    speed = _log_uniform(rng, r.speed_px_s_min, r.speed_px_s_max)
    if sparse:
        scene = replace(cfg.scene, contrast_min=0.0, contrast_max=0.01, shapes_min=0, shapes_max=0,
                        static_probability=1.0, objects_max=max(cfg.scene.objects_max, 1),
                        object_speed_px_s_max=max(50.0, speed))
    else:
        cmax = max(r.contrast_max, cfg.scene.contrast_min)
        scene = replace(cfg.scene, contrast_max=cmax, speed_px_s_max=speed,
                        object_speed_px_s_max=max(50.0, speed))
    out = replace(cfg, width=W, height=H, noise=noise, dvs=dvs, scene=scene)
    drawn = dict(sensor=[W, H], noise_hz=rate, leak_share=leak_share, hot_share=hot_share,
                 hot_pixels_per_mpx=density, shot_on_fraction=noise.shot_on_fraction,
                 rate_spread=noise.rate_spread, silent_fraction=noise.silent_fraction,
                 threshold_on=dvs.threshold_on, threshold_off=dvs.threshold_off,
                 threshold_sigma=dvs.threshold_sigma, refractory_us=dvs.refractory_us,
                 sparse=sparse, speed_px_s_max=speed)
    return out, drawn
