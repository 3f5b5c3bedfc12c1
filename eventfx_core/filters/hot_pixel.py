"""Hot-pixel filter: mute pixels whose event rate exceeds ``max_rate_hz``; a streaming form of
libcaer's learned hot-pixel list (``hotPixelLearn``: count events per pixel over
``hotPixelTime``, pixels above ``hotPixelCount`` are hot) that keeps learning as it runs.

Time is cut into fixed windows of ``window_us`` aligned to the stream's first event ``t0``
(window index ``(t - t0) // window_us``; ``t0`` is taken again after a time reset), so the
windows do not depend on where a stream is split, nor on a constant shift of its clock (the
same events decide the same way whether they carry sensor or absolute time). Each pixel
counts its events in the current window; ``limit = floor(max_rate_hz * window_us / 1e6)``.

  * An event is dropped when its pixel was *hot* in the previous window (more than ``limit``
    events there), or when it is beyond the ``limit``-th event of its pixel in this window.
  * So a pixel that fires too fast is muted after ``limit`` events of its first window (the
    learning period) and stays muted as long as it keeps firing that fast; a pixel that slows
    down is released one window later.
  * Except in a busy neighbourhood: a hot pixel is a defect of one pixel, its neighbours quiet;
    the core of a flickering lamp or headlight fires just as fast, but with its neighbours. With
    ``busy_share`` > 0, such an event is kept when one of the pixel's 8 neighbours has fired at
    least ``busy = max(1, ceil(busy_share * limit))`` events in this window or in the previous
    one (0: the plain rate rule).

A fixed list of pixels can also be muted from the first event on (``muted_pixels``: flat
``[x0, y0, x1, y1, ...]``; ``eventfx calibrate`` fits it from a dark or static recording of the
camera, like libcaer's learned hot-pixel list): their events are always dropped.

The state is four numbers per pixel (window index, count saturating at limit + 1, hot flag,
count of the window before, also saturating), updated lazily when the pixel fires;
``(t - t0) // window_us`` is computed only when the stream enters a new window. score = keep (0 or 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from ..errors import ConfigError, EventfxError
from ._common import NEVER, PixelFilter


@dataclass
class HotPixelConfig:
    window_us: int = 1_000_000  # rate measurement window, also the learning period (1 s)
    max_rate_hz: float = 100.0  # pixels firing faster than this are hot (noise is ~0.1-5 Hz)
    busy_share: float = 0.25  # ...unless a neighbour fired this share of the limit too (a lamp's
    #                           flickering core, not a defect); 0 = mute every fast pixel (also
    #                           defects in clusters or columns)
    muted_pixels: list[int] = field(default_factory=list)  # always drop these pixels: flat
    #                           [x0, y0, x1, y1, ...] (eventfx calibrate writes it); [] = none

    def check(self, where: str = "hot_pixel") -> None:
        if self.window_us <= 0:
            raise ConfigError(f"{where}.window_us must be > 0, got {self.window_us}")
        if self.max_rate_hz < 0:
            raise ConfigError(f"{where}.max_rate_hz must be >= 0, got {self.max_rate_hz}")
        if not 0 <= self.busy_share <= 1:
            raise ConfigError(f"{where}.busy_share must be in [0, 1], got {self.busy_share}")
        if len(self.muted_pixels) % 2 or any(v < 0 for v in self.muted_pixels):
            raise ConfigError(f"{where}.muted_pixels: expected flat non-negative x, y pairs, got "
                              f"{len(self.muted_pixels)} values")

    def muted(self) -> list[tuple[int, int]]:
        """The always-muted pixels as (x, y)."""
        v = [int(a) for a in self.muted_pixels]
        return list(zip(v[0::2], v[1::2]))

    def limit(self) -> int:
        """Events a pixel may fire in one window before it counts as hot."""
        return int(self.max_rate_hz * self.window_us // 1_000_000)

    def busy(self) -> int:
        """Events a neighbour must fire (this window or the last) to make a fast pixel 'busy
        region' rather than hot; 0 = off."""
        if self.busy_share <= 0:
            return 0
        return max(1, math.ceil(self.busy_share * self.limit()))


WINDOW, COUNT, HOT, PREV = 0, 1, 2, 3  # columns of the per-pixel state (one row per pixel)


@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _neighbour_busy(pixels, q, x, y, width, height, w, busy):
    """True when one of the 8 neighbours of pixel q fired >= busy events in window w or w - 1."""
    for dy in range(-1, 2):
        yy = y + dy
        if yy < 0 or yy >= height:
            continue
        for dx in range(-1, 2):
            xx = x + dx
            if (dx == 0 and dy == 0) or xx < 0 or xx >= width:
                continue
            n = q + dy * width + dx
            nw = pixels[n, WINDOW]
            if nw == w and (pixels[n, COUNT] >= busy or pixels[n, PREV] >= busy):
                return True
            if nw == w - 1 and pixels[n, COUNT] >= busy:
                return True
    return False


@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _hot_pixel_kernel(t, x, y, width, height, window, limit, busy, pixels, last_global, origin, keep, score):
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
            pixels[:, PREV] = 0
            origin[0] = NEVER
            resets += 1
        last_global[0] = ti
        if origin[0] == NEVER:
            origin[0] = ti
            end = start  # force the window below to be recomputed
        if ti >= end or ti < start:
            w = (ti - origin[0]) // window
            start = origin[0] + w * window
            end = start + window
        q = np.int64(y[i]) * width + np.int64(x[i])
        if pixels[q, WINDOW] != w:  # first event of this pixel in a new window
            was_last = pixels[q, WINDOW] == w - 1
            pixels[q, HOT] = np.int64(was_last and pixels[q, COUNT] > limit)
            pixels[q, PREV] = pixels[q, COUNT] if was_last else 0
            pixels[q, WINDOW] = w
            pixels[q, COUNT] = 0
        if pixels[q, COUNT] <= limit:
            pixels[q, COUNT] += 1
        ok = pixels[q, HOT] == 0 and pixels[q, COUNT] <= limit
        if not ok and busy > 0:
            ok = _neighbour_busy(pixels, q, np.int64(x[i]), np.int64(y[i]), width, height, w, busy)
        keep[i] = ok
        score[i] = 1.0 if ok else 0.0
    return resets


class HotPixelFilter(PixelFilter):
    """Drop the events of pixels that fire faster than ``max_rate_hz``."""

    name = "hot_pixel"
    Config = HotPixelConfig
    RUNTIME_PARAMS = ("max_rate_hz",)

    def _new_state(self, width, height):
        pixels = np.zeros((width * height, 4), np.int64)
        pixels[:, WINDOW] = NEVER
        muted = np.zeros(width * height, np.bool_)
        for x, y in self.config.muted():
            if x >= width or y >= height:
                raise EventfxError(f"hot_pixel.muted_pixels: pixel ({x}, {y}) is outside the "
                                   f"{width}x{height} sensor (calibrated on another camera?)")
            muted[y * width + x] = True
        # origin: t0 of the windows; muted: the fixed list, as a per-pixel mask
        return {"pixels": pixels, "origin": np.full(1, NEVER, np.int64), "muted": muted}

    def _run(self, events, keep, score):
        s = self.state
        cfg = self.config
        resets = _hot_pixel_kernel(events.t, events.x, events.y, self.sensor[0], self.sensor[1],
                                   np.int64(cfg.window_us), np.int64(cfg.limit()), np.int64(cfg.busy()),
                                   s["pixels"], s["last_global"], s["origin"], keep, score)
        if cfg.muted_pixels:
            muted = s["muted"][events.y.astype(np.int64) * self.sensor[0] + events.x]
            keep[muted] = False
            score[muted] = 0.0
        return resets
