"""Hot-pixel filter: mute pixels whose event rate exceeds ``max_rate_hz``; a streaming form of
libcaer's learned hot-pixel list (``hotPixelLearn``: count events per pixel over
``hotPixelTime``, pixels above ``hotPixelCount`` are hot) that keeps learning as it runs.

Time is cut into fixed windows of ``window_us`` aligned to t = 0 (window index
``t // window_us``, so the windows do not depend on where a stream is split). Each pixel
counts its events in the current window; ``limit = floor(max_rate_hz * window_us / 1e6)``.

  * An event is dropped when its pixel was *hot* in the previous window (more than ``limit``
    events there), or when it is beyond the ``limit``-th event of its pixel in this window.
  * So a pixel that fires too fast is muted after ``limit`` events of its first window (the
    learning period) and stays muted as long as it keeps firing that fast; a pixel that slows
    down is released one window later.

The state is three numbers per pixel (window index, count saturating at limit + 1, hot flag),
updated lazily when the pixel fires; ``t // window_us`` is computed only when the stream
enters a new window. score = keep (0 or 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError
from ._common import NEVER, PixelFilter


@dataclass
class HotPixelConfig:
    window_us: int = 1_000_000  # rate measurement window, also the learning period (1 s)
    max_rate_hz: float = 100.0  # pixels firing faster than this are hot (noise is ~0.1-5 Hz)

    def check(self, where: str = "hot_pixel") -> None:
        if self.window_us <= 0:
            raise ConfigError(f"{where}.window_us must be > 0, got {self.window_us}")
        if self.max_rate_hz < 0:
            raise ConfigError(f"{where}.max_rate_hz must be >= 0, got {self.max_rate_hz}")

    def limit(self) -> int:
        """Events a pixel may fire in one window before it counts as hot."""
        return int(self.max_rate_hz * self.window_us // 1_000_000)


WINDOW, COUNT, HOT = 0, 1, 2  # columns of the per-pixel state (one row per pixel, adjacent in memory)


@numba.njit(cache=True, error_model="numpy")
def _hot_pixel_kernel(t, x, y, width, window, limit, pixels, last_global, keep, score):
    resets = 0
    w = NEVER  # current window index, with its bounds [start, end): t // window only on a change
    start = 0
    end = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < last_global[0]:
            pixels[:, WINDOW] = NEVER
            pixels[:, COUNT] = 0
            pixels[:, HOT] = 0
            resets += 1
        last_global[0] = ti
        if ti >= end or ti < start:
            w = ti // window
            start = w * window
            end = start + window
        q = np.int64(y[i]) * width + np.int64(x[i])
        if pixels[q, WINDOW] != w:  # first event of this pixel in a new window
            pixels[q, HOT] = np.int64(pixels[q, WINDOW] == w - 1 and pixels[q, COUNT] > limit)
            pixels[q, WINDOW] = w
            pixels[q, COUNT] = 0
        if pixels[q, COUNT] <= limit:
            pixels[q, COUNT] += 1
        ok = pixels[q, HOT] == 0 and pixels[q, COUNT] <= limit
        keep[i] = ok
        score[i] = 1.0 if ok else 0.0
    return resets


class HotPixelFilter(PixelFilter):
    """Drop the events of pixels that fire faster than ``max_rate_hz``."""

    name = "hot_pixel"
    Config = HotPixelConfig
    RUNTIME_PARAMS = ("max_rate_hz",)

    def _new_state(self, width, height):
        pixels = np.zeros((width * height, 3), np.int64)
        pixels[:, WINDOW] = NEVER
        return {"pixels": pixels}

    def _run(self, events, keep, score):
        s = self.state
        return _hot_pixel_kernel(events.t, events.x, events.y, self.sensor[0],
                                 np.int64(self.config.window_us), np.int64(self.config.limit()),
                                 s["pixels"], s["last_global"], keep, score)
