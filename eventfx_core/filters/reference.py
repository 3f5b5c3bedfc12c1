"""Per-event Python references of the four classic filters: the test oracles of the numba kernels.

Plain loops over events with per-pixel dictionaries, the rules of each filter's docstring
written out directly. Each ``run(events) -> (keep bool[n], score float32[n])`` keeps its state
across calls, and forgets it when an event is earlier than the previous one.
"""
from __future__ import annotations

import numpy as np

from ..events import Events

NEIGHBOURS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)]


class _Reference:
    def __init__(self, config):
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.pixels: dict[tuple[int, int], object] = {}
        self.last_global: int | None = None

    def run(self, events: Events) -> tuple[np.ndarray, np.ndarray]:
        keep = np.zeros(len(events), bool)
        score = np.zeros(len(events), np.float32)
        for i in range(len(events)):
            t, x, y, p = int(events.t[i]), int(events.x[i]), int(events.y[i]), int(events.p[i])
            if self.last_global is not None and t < self.last_global:
                self.reset()
            self.last_global = t
            keep[i], score[i] = self.decide(t, x, y, p)
        return keep, score


class ReferenceBAF(_Reference):
    def decide(self, t, x, y, p):
        window = self.config.time_window_us
        around = NEIGHBOURS + ([(0, 0)] if self.config.include_self else [])
        support = sum(1 for dx, dy in around
                      if (x + dx, y + dy) in self.pixels and t - self.pixels[(x + dx, y + dy)] < window)
        self.pixels[(x, y)] = t
        return support > 0, support / len(around)


class ReferenceSTCF(_Reference):
    def decide(self, t, x, y, p):
        cfg = self.config
        support = 0
        for dx, dy in NEIGHBOURS:
            last = self.pixels.get((x + dx, y + dy))
            if last is not None and t - last[0] < cfg.time_window_us and (
                    not cfg.polarity_match or last[1] == p):
                support += 1
        self.pixels[(x, y)] = (t, p)
        return support >= cfg.k, support / 8


class ReferenceRefractory(_Reference):
    def decide(self, t, x, y, p):
        last_kept = self.pixels.get((x, y))
        ok = last_kept is None or t - last_kept >= self.config.refractory_us
        if ok:
            self.pixels[(x, y)] = t
        return ok, float(ok)


class ReferenceHotPixel(_Reference):
    def reset(self) -> None:
        super().reset()
        self.origin: int | None = None  # windows start at the first event (after a reset)

    def decide(self, t, x, y, p):
        limit, busy = self.config.limit(), self.config.busy()
        if self.origin is None:
            self.origin = t
        w = (t - self.origin) // self.config.window_us
        window, count, hot, prev = self.pixels.get((x, y), (None, 0, False, 0))
        if window != w:
            hot = window == w - 1 and count > limit
            prev = count if window == w - 1 else 0
            window, count = w, 0
        count = min(count + 1, limit + 1)
        self.pixels[(x, y)] = (window, count, hot, prev)
        ok = not hot and count <= limit
        if not ok and busy:
            for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
                nw, nc, _, np_ = self.pixels.get((x + dx, y + dy), (None, 0, False, 0))
                if (nw == w and max(nc, np_) >= busy) or (nw == w - 1 and nc >= busy):
                    ok = True
        if (x, y) in self.config.muted():
            ok = False
        return ok, float(ok)


REFERENCES = {"baf": ReferenceBAF, "stcf": ReferenceSTCF, "refractory": ReferenceRefractory,
              "hot_pixel": ReferenceHotPixel}
