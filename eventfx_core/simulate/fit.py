"""Fitting the noise model (``noise.py``) to a real recording that is (almost) pure noise.

Per-pixel event rates split the pixels into hot pixels (rates far above the bulk) and the
rest, whose mean rate is the background-activity (BA) rate. The ON share of the BA events
sets the leak/shot split: leak events are ON (v2e, Hu et al. 2021), shot noise is balanced,
so an ON share f > 1/2 means a leak rate of (2f - 1) * BA.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import EventfxError
from ..events import Events


@dataclass
class NoiseFit:
    width: int
    height: int
    duration_s: float
    events: int
    ba_rate_hz: float  # mean rate per non-hot pixel
    ba_on_fraction: float  # ON share of the non-hot pixels' events
    hot_pixels: int  # pixels firing above hot_threshold_hz
    hot_threshold_hz: float
    hot_rate_hz_min: float  # rates of the hot pixels (0 when there are none)
    hot_rate_hz_median: float
    hot_rate_hz_max: float
    hot_event_fraction: float  # share of all events that come from hot pixels

    def noise_config(self) -> dict:
        """Keys of ``NoiseConfig`` that reproduce this fit (per-sequence scaling aside)."""
        f = self.ba_on_fraction
        leak = max(0.0, 2 * f - 1) * self.ba_rate_hz
        shot = self.ba_rate_hz - leak
        shot_on = 0.5 if f >= 0.5 else f
        mpx = self.width * self.height / 1e6
        out = dict(leak_rate_hz=leak, shot_rate_hz=shot, shot_on_fraction=shot_on,
                   hot_pixels_per_mpx=self.hot_pixels / mpx)
        if self.hot_pixels:
            out.update(hot_rate_hz_min=self.hot_rate_hz_min, hot_rate_hz_max=self.hot_rate_hz_max)
        return out

    def as_dict(self) -> dict:
        return dict(asdict(self), noise_config=self.noise_config())


def fit_noise(ev: Events, hot_factor: float = 20.0, hot_min_hz: float = 5.0) -> NoiseFit:
    """Fit the noise statistics of ``ev``. A pixel is hot if its rate exceeds both
    ``hot_min_hz`` and ``hot_factor`` times the mean rate of the active pixels."""
    if len(ev) < 2:
        raise EventfxError("noise fit: the recording has fewer than 2 events")
    T = (int(ev.t[-1]) - int(ev.t[0])) * 1e-6
    if T <= 0:
        raise EventfxError("noise fit: the recording spans no time")
    npix = ev.width * ev.height
    pix = ev.y.astype(np.int64) * ev.width + ev.x
    counts = np.bincount(pix, minlength=npix)
    on = np.bincount(pix, weights=ev.p.astype(np.float64), minlength=npix)
    rates = counts / T
    active_mean = rates[counts > 0].mean()
    thr = max(hot_min_hz, hot_factor * active_mean)
    hot = rates > thr
    cold = ~hot
    hot_rates = np.sort(rates[hot])
    n_cold_ev = counts[cold].sum()
    return NoiseFit(width=ev.width, height=ev.height, duration_s=T, events=len(ev),
                    ba_rate_hz=float(counts[cold].sum() / T / max(1, cold.sum())),
                    ba_on_fraction=float(on[cold].sum() / max(1, n_cold_ev)),
                    hot_pixels=int(hot.sum()), hot_threshold_hz=float(thr),
                    hot_rate_hz_min=float(hot_rates[0]) if len(hot_rates) else 0.0,
                    hot_rate_hz_median=float(np.median(hot_rates)) if len(hot_rates) else 0.0,
                    hot_rate_hz_max=float(hot_rates[-1]) if len(hot_rates) else 0.0,
                    hot_event_fraction=float(counts[hot].sum() / len(ev)))


def read_events(path: str | Path, max_events: int = 50_000_000) -> Events:
    """All events of a recording via ``eventfx_core.io.open_source``."""
    from .background import read_recording
    return read_recording(path, max_events)
