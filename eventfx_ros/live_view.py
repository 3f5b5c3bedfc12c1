"""Live view: an RGB picture of the last period's events, three panels side by side.

    input (white) | kept (white) | removed, coloured by the stage that removed it

The worker adds every decided message (``add``); a timer takes the picture (``take``) at a few
Hz and the node publishes it as ``sensor_msgs/Image`` (rgb8) for rqt_image_view, rviz or
Foxglove. Colours: ``PALETTE`` in ``stages`` order, then the fallback stages; gray: outside the
sensor. No rclpy here.
"""
from __future__ import annotations

import threading

import numpy as np

from eventfx_core.pipeline import REMOVED_RANGE
from eventfx_core.viz import GRAY, PALETTE

MAX_PIXELS = 4096 * 4096  # larger sensors are not drawn


class LiveView:
    def __init__(self, stages: list[str], fallback: list[str]):
        self.names = list(stages) + [f"fallback {s}" for s in fallback]
        self.n_learned = len(stages)
        self._lock = threading.Lock()
        self._img: np.ndarray | None = None

    def legend(self) -> str:
        return ", ".join(f"{n} rgb{tuple(int(c) for c in PALETTE[i % len(PALETTE)])}"
                         for i, n in enumerate(self.names)) + ", outside the sensor gray"

    def add(self, events, keep: np.ndarray, removed_by: np.ndarray | None, fallback: bool) -> None:
        w, h = events.width, events.height
        if w * h > MAX_PIXELS or len(events) == 0:
            return
        with self._lock:
            if self._img is None or self._img.shape[:2] != (h, 3 * w):
                self._img = np.zeros((h, 3 * w, 3), np.uint8)
            img = self._img
            inside = (events.x < w) & (events.y < h)
            x, y = events.x[inside].astype(np.int64), events.y[inside].astype(np.int64)
            k = keep[inside]
            img[y, x] = 255
            img[y[k], w + x[k]] = 255
            if removed_by is None:
                return
            r = removed_by[inside][~k].astype(np.int64)
            xr, yr = x[~k], y[~k]
            colour = PALETTE[(r + (self.n_learned if fallback else 0)) % len(PALETTE)]
            colour[r == REMOVED_RANGE] = GRAY
            img[yr, 2 * w + xr] = colour

    def take(self) -> np.ndarray | None:
        """The picture since the last call (None when no events came), and start a new one."""
        with self._lock:
            img, self._img = self._img, None
        return img
