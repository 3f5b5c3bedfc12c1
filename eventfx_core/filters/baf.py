"""Background-activity filter (BAF; Delbruck, "Frame-free dynamic digital vision", 2008; as
jAER's BackgroundActivityFilter and dv-processing's ``dv::noise::BackgroundActivityNoiseFilter``).

An event is kept when at least one of its 8 neighbours (and, with ``include_self``, its own
pixel) fired less than ``time_window_us`` before it: ``t - last_t[q] < time_window_us``.
Every event, kept or not, then stores its time at its pixel. Pixels that never fired support
nothing (dv-processing starts its time surface at 0 instead, so it also keeps events with
``t < time_window_us``; see ``test/test_filters_dv.py``).

score = supporting pixels / candidate pixels (8, or 9 with ``include_self``), in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError
from ._common import NEVER, PixelFilter, padded_index


@dataclass
class BackgroundActivityConfig:
    time_window_us: int = 2000  # support window (dv-processing's default 2 ms)
    include_self: bool = False  # also count the event's own pixel as support (jAER option)

    def check(self, where: str = "baf") -> None:
        if self.time_window_us <= 0:
            raise ConfigError(f"{where}.time_window_us must be > 0, got {self.time_window_us}")


@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _baf_kernel(t, x, y, width, window, include_self, last_t, last_global, keep, score):
    row = width + 2
    candidates = 9.0 if include_self else 8.0
    resets = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < last_global[0]:
            last_t[:] = NEVER
            resets += 1
        last_global[0] = ti
        c = padded_index(x[i], y[i], width)
        support = (np.int64(ti - last_t[c - row - 1] < window) + np.int64(ti - last_t[c - row] < window)
                   + np.int64(ti - last_t[c - row + 1] < window) + np.int64(ti - last_t[c - 1] < window)
                   + np.int64(ti - last_t[c + 1] < window) + np.int64(ti - last_t[c + row - 1] < window)
                   + np.int64(ti - last_t[c + row] < window) + np.int64(ti - last_t[c + row + 1] < window))
        if include_self:
            support += np.int64(ti - last_t[c] < window)
        keep[i] = support > 0
        score[i] = support / candidates
        last_t[c] = ti
    return resets


class BackgroundActivityFilter(PixelFilter):
    """Keep events supported by a recent event at a neighbouring pixel."""

    name = "baf"
    Config = BackgroundActivityConfig
    RUNTIME_PARAMS = ("time_window_us",)

    def _new_state(self, width, height):
        return {"last_t": np.full((width + 2) * (height + 2), NEVER, np.int64)}

    def _run(self, events, keep, score):
        cfg = self.config
        return _baf_kernel(events.t, events.x, events.y, self.sensor[0], np.int64(cfg.time_window_us),
                           bool(cfg.include_self), self.state["last_t"], self.state["last_global"],
                           keep, score)
