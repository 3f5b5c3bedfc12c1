"""Refractory filter (as dv-processing's ``RefractoryPeriodFilter`` and v2e's refractory period,
Hu, Liu & Delbruck, CVPRW 2021): at most one event per pixel per refractory period.

An event is dropped when its pixel's last *kept* event is less than ``refractory_us`` earlier
(``t - last_kept[q] < refractory_us``); kept events store their time. score = keep (0 or 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError
from ._common import NEVER, PixelFilter


@dataclass
class RefractoryConfig:
    refractory_us: int = 500  # minimum gap between kept events of one pixel (v2e default 0.5 ms)

    def check(self, where: str = "refractory") -> None:
        if self.refractory_us < 0:
            raise ConfigError(f"{where}.refractory_us must be >= 0, got {self.refractory_us}")


@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _refractory_kernel(t, x, y, width, refractory, last_kept, last_global, keep, score):
    resets = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < last_global[0]:
            last_kept[:] = NEVER
            resets += 1
        last_global[0] = ti
        q = np.int64(y[i]) * width + np.int64(x[i])
        ok = ti - last_kept[q] >= refractory
        keep[i] = ok
        score[i] = 1.0 if ok else 0.0
        if ok:
            last_kept[q] = ti
    return resets


class RefractoryFilter(PixelFilter):
    """Drop events that follow a kept event of the same pixel within the refractory period."""

    name = "refractory"
    Config = RefractoryConfig
    RUNTIME_PARAMS = ("refractory_us",)

    def _new_state(self, width, height):
        return {"last_kept": np.full(width * height, NEVER, np.int64)}

    def _run(self, events, keep, score):
        return _refractory_kernel(events.t, events.x, events.y, self.sensor[0],
                                  np.int64(self.config.refractory_us), self.state["last_kept"],
                                  self.state["last_global"], keep, score)
