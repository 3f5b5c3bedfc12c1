"""Injected noise with known labels, after DND21 (Guo and Delbruck, TPAMI 2022): a real
recording is the signal; noise events are added at a mean rate per pixel.

    uniform    every pixel a Poisson process at the same rate, polarity ON or OFF at random
    resampled  every pixel a Poisson process at a rate drawn from a real noise recording's
               per-pixel rates (with its spread and its hot pixels), all scaled so that the
               mean is the asked rate; each pixel's ON share is the drawn pixel's own
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import EventfxError
from ...events import Events


@dataclass(frozen=True)
class NoiseModel:
    """Per-pixel rates (Hz) and ON shares of a real noise recording."""

    rates_hz: np.ndarray  # float64[pixels]
    on_share: np.ndarray  # float64[pixels], 0.5 where a pixel never fired

    @classmethod
    def fit(cls, noise: Events) -> "NoiseModel":
        T = noise.duration_us * 1e-6
        if len(noise) < 2 or T <= 0:
            raise EventfxError("noise model: the noise recording spans no time")
        pix = noise.y.astype(np.int64) * noise.width + noise.x
        n = noise.width * noise.height
        counts = np.bincount(pix, minlength=n).astype(np.float64)
        on = np.bincount(pix, weights=noise.p.astype(np.float64), minlength=n)
        share = np.where(counts > 0, on / np.maximum(counts, 1), 0.5)
        return cls(counts / T, share)

    def describe(self) -> dict:
        r = self.rates_hz
        top = np.sort(r)[::-1]
        hot = top[: max(1, len(r) // 1000)]  # the busiest 0.1 % of pixels
        return dict(pixels=len(r), mean_rate_hz=float(r.mean()), silent_pixel_share=float((r == 0).mean()),
                    busiest_0p1pct_event_share=float(hot.sum() / max(r.sum(), 1e-12)),
                    max_rate_hz=float(top[0]))


def _poisson_pixels(rates_hz: np.ndarray, on_share: np.ndarray, t0: int, t1: int, width: int,
                    height: int, rng: np.random.Generator) -> Events:
    T = (t1 - t0) * 1e-6
    counts = rng.poisson(rates_hz * T)
    pix = np.repeat(np.arange(len(rates_hz)), counts)
    t = rng.integers(t0, t1 + 1, len(pix))
    p = rng.random(len(pix)) < on_share[pix]
    order = np.argsort(t, kind="stable")
    return Events.from_arrays(t[order], (pix % width)[order], (pix // width)[order], p[order], width, height)


def make_noise(kind: str, rate_hz: float, like: Events, rng: np.random.Generator,
               model: NoiseModel | None = None) -> Events:
    """Noise events over ``like``'s sensor and time span at a mean ``rate_hz`` per pixel."""
    return noise_process(kind, rate_hz, like, rng, model)[0]


def noise_process(kind: str, rate_hz: float, like: Events, rng: np.random.Generator,
                  model: NoiseModel | None = None) -> tuple[Events, np.ndarray, np.ndarray]:
    """``make_noise``'s events and the process behind them: per-pixel rates (Hz) and ON shares,
    from which more of the same camera's noise can be drawn (``dark``)."""
    n = like.width * like.height
    t0, t1 = int(like.t[0]), int(like.t[-1])
    if kind == "uniform":
        rates, share = np.full(n, float(rate_hz)), np.full(n, 0.5)
    elif kind == "resampled":
        if model is None:
            raise EventfxError("resampled noise needs a noise model (a real noise recording)")
        pick = rng.integers(0, len(model.rates_hz), n)
        rates, share = model.rates_hz[pick], model.on_share[pick]
        rates = rates * (rate_hz / max(rates.mean(), 1e-12))
    else:
        raise EventfxError(f"unknown noise kind {kind!r} (uniform, resampled)")
    return _poisson_pixels(rates, share, t0, t1, like.width, like.height, rng), rates, share


def dark(rates_hz: np.ndarray, on_share: np.ndarray, seconds: float, width: int, height: int,
         rng: np.random.Generator) -> Events:
    """A noise-only recording of ``seconds`` from the same per-pixel process (a new draw): what the
    camera's owner would record with the lens capped, for ``eventfx calibrate``."""
    return _poisson_pixels(rates_hz, on_share, 0, int(seconds * 1e6), width, height, rng)


def inject(signal: Events, noise: Events) -> tuple[Events, np.ndarray]:
    """Signal and noise merged in time order (signal first at equal times); returns the events
    and ``is_signal`` (bool per event)."""
    t = np.concatenate([signal.t, noise.t])
    order = np.argsort(t, kind="stable")
    is_signal = np.r_[np.ones(len(signal), bool), np.zeros(len(noise), bool)][order]
    ev = Events.from_arrays(t[order], np.concatenate([signal.x, noise.x])[order],
                            np.concatenate([signal.y, noise.y])[order],
                            np.concatenate([signal.p, noise.p])[order], signal.width, signal.height)
    return ev, is_signal
