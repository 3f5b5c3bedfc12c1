"""Spatio-temporal correlation filter (STCF; Guo & Delbruck, "Low Cost and Latency Event Camera
Background Activity Denoising", TPAMI 2022).

An event is kept when at least ``k`` of its 8 neighbours fired less than ``time_window_us``
before it (``t - last_t[q] < time_window_us``); with ``polarity_match`` a neighbour supports
only if its last event had the same polarity. Every event, kept or not, then stores its time
and polarity at its pixel. ``k = 1`` without polarity matching is the BAF.

score = supporting neighbours / 8, in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError
from ._common import NEVER, PixelFilter, padded_index


@dataclass
class SpatioTemporalCorrelationConfig:
    time_window_us: int = 10_000  # support window (TPAMI 2022 uses 1-100 ms; 10 ms middle)
    k: int = 2  # neighbours needed to keep an event (1..8)
    polarity_match: bool = False  # count only neighbours whose last event had the same polarity

    def check(self, where: str = "stcf") -> None:
        if self.time_window_us <= 0:
            raise ConfigError(f"{where}.time_window_us must be > 0, got {self.time_window_us}")
        if not 1 <= self.k <= 8:
            raise ConfigError(f"{where}.k must be in 1..8, got {self.k}")


@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _stcf_kernel(t, x, y, p, width, window, k, polarity_match, last_t, last_p, last_global,
                 keep, score):
    row = width + 2
    resets = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < last_global[0]:
            last_t[:] = NEVER
            last_p[:] = 0
            resets += 1
        last_global[0] = ti
        c = padded_index(x[i], y[i], width)
        pi = p[i]
        support = 0
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                if dy != 0 or dx != 0:
                    q = c + dy * row + dx
                    agrees = (not polarity_match) or last_p[q] == pi
                    support += np.int64(ti - last_t[q] < window and agrees)
        keep[i] = support >= k
        score[i] = support / 8.0
        last_t[c] = ti
        last_p[c] = pi
    return resets


class SpatioTemporalCorrelationFilter(PixelFilter):
    """Keep events with at least ``k`` recently active neighbours."""

    name = "stcf"
    Config = SpatioTemporalCorrelationConfig
    RUNTIME_PARAMS = ("time_window_us", "k")

    def _new_state(self, width, height):
        cells = (width + 2) * (height + 2)
        return {"last_t": np.full(cells, NEVER, np.int64), "last_p": np.zeros(cells, np.uint8)}

    def _run(self, events, keep, score):
        cfg = self.config
        return _stcf_kernel(events.t, events.x, events.y, events.p, self.sensor[0],
                            np.int64(cfg.time_window_us), int(cfg.k), bool(cfg.polarity_match),
                            self.state["last_t"], self.state["last_p"], self.state["last_global"],
                            keep, score)
