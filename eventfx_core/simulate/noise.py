"""Sensor noise as labelled events: leak and shot noise (background activity) and hot pixels.

The noise model of v2e (Hu, Liu & Delbruck, "v2e: From Video Frames to Realistic DVS
Events", CVPRW 2021): leak events are ON events at about 0.1-0.2 Hz per pixel, shot noise
fires either polarity at up to several Hz per pixel; both are Poisson processes whose rate
varies from pixel to pixel. Hot pixels fire far faster, at fixed pixels. ``fit.py`` estimates
these rates from a real noise recording.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass
class NoiseConfig:
    leak_rate_hz: float = 0.1  # mean leak-event rate per pixel (ON events); v2e: 0.1-0.2
    shot_rate_hz: float = 0.4  # mean shot-noise rate per pixel (both polarities)
    shot_on_fraction: float = 0.5  # share of shot-noise events that are ON
    rate_spread: float = 0.5  # per-pixel rate variation: lognormal sigma (0 = all equal)
    rate_scale_min: float = 0.3  # each sequence scales both rates by a log-uniform factor ...
    rate_scale_max: float = 2.5  # ... in [min, max] (darker scenes, warmer sensors)
    hot_pixels_per_mpx: float = 40.0  # mean number of hot pixels per megapixel (Poisson)
    hot_rate_hz_min: float = 5.0  # hot-pixel rates are log-uniform in [min, max]
    hot_rate_hz_max: float = 200.0
    hot_on_fraction: float = 0.5  # mean share of ON events of a hot pixel
    silent_fraction: float = 0.0  # share of pixels without leak and shot noise (real sensors: many)

    def check(self, where: str = "noise") -> None:
        for name in ("leak_rate_hz", "shot_rate_hz", "rate_spread", "hot_pixels_per_mpx"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be >= 0")
        if not 0 <= self.silent_fraction < 1:
            raise ConfigError(f"{where}.silent_fraction must be in [0, 1)")
        for name in ("shot_on_fraction", "hot_on_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{where}.{name} must be in [0, 1]")
        if not 0 < self.rate_scale_min <= self.rate_scale_max:
            raise ConfigError(f"{where}: need 0 < rate_scale_min <= rate_scale_max")
        if not 0 < self.hot_rate_hz_min <= self.hot_rate_hz_max:
            raise ConfigError(f"{where}: need 0 < hot_rate_hz_min <= hot_rate_hz_max")


def _pixel_rates(rng: np.random.Generator, mean_hz: float, spread: float, npix: int) -> np.ndarray:
    if spread <= 0:
        return np.full(npix, mean_hz)
    r = rng.lognormal(0.0, spread, npix)
    return mean_hz * r / np.exp(0.5 * spread * spread)  # lognormal with mean mean_hz


def _poisson_events(rng, rates_hz, t0_us, t1_us, on_prob):
    """Events of independent Poisson processes, one per pixel (index into rates_hz)."""
    counts = rng.poisson(rates_hz * (t1_us - t0_us) * 1e-6)
    pixel = np.repeat(np.arange(len(rates_hz), dtype=np.int64), counts)
    t = rng.integers(t0_us, t1_us, len(pixel), dtype=np.int64) if t1_us > t0_us else np.zeros(0, np.int64)
    on_p = np.repeat(np.broadcast_to(on_prob, rates_hz.shape), counts)
    p = (rng.random(len(pixel)) < on_p).astype(np.uint8)
    return t, pixel, p


def noise_events(cfg: NoiseConfig, width: int, height: int, t0_us: int, t1_us: int,
                 rng: np.random.Generator, rate_scale: float = 1.0) -> dict:
    """Leak, shot and hot-pixel events in [t0_us, t1_us) (unsorted).

    Returns dict(t, pixel, p, hot_pixels, hot_rates_hz) with pixel = y * width + x.
    """
    npix = width * height
    leak = _pixel_rates(rng, cfg.leak_rate_hz * rate_scale, cfg.rate_spread, npix)
    shot = _pixel_rates(rng, cfg.shot_rate_hz * rate_scale, cfg.rate_spread, npix)
    if cfg.silent_fraction > 0:  # silent pixels; the others fire more, so the mean stays
        live = rng.random(npix) >= cfg.silent_fraction
        gain = np.where(live, 1.0 / (1.0 - cfg.silent_fraction), 0.0)
        leak, shot = leak * gain, shot * gain
    lt, lpix, lp = _poisson_events(rng, leak, t0_us, t1_us, 1.0)
    st, spix, sp = _poisson_events(rng, shot, t0_us, t1_us, cfg.shot_on_fraction)
    n_hot = min(int(rng.poisson(cfg.hot_pixels_per_mpx * npix / 1e6)), npix)
    hot = rng.choice(npix, n_hot, replace=False).astype(np.int64)
    hot_rates = np.exp(rng.uniform(np.log(cfg.hot_rate_hz_min), np.log(cfg.hot_rate_hz_max), n_hot))
    f = cfg.hot_on_fraction  # each hot pixel's ON share ~ Beta with mean f
    hot_on = rng.beta(max(5 * f, 1e-3), max(5 * (1 - f), 1e-3), n_hot)
    ht, hidx, hp = _poisson_events(rng, hot_rates, t0_us, t1_us, hot_on)
    return dict(t=np.concatenate([lt, st, ht]), pixel=np.concatenate([lpix, spix, hot[hidx]]),
                p=np.concatenate([lp, sp, hp]), hot_pixels=hot, hot_rates_hz=hot_rates)
