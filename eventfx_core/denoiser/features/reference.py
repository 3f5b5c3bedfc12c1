"""Per-event Python reference of the feature extractor: the test oracle for ``extractor.py``.

Deliberately plain: dictionaries keyed by pixel, one event at a time, the definitions of
``config.py`` written out directly. It performs the same float64 operations in the same
order as the numba kernel, so the two agree bit for bit (the time-surface exp and the
log of gaps are the shared functions ``mathfn.decay`` and ``mathfn.log_ratio``, plain Python
here, compiled there).
"""
from __future__ import annotations

import math

import numpy as np

from ...events import Events
from .config import FeatureConfig, feature_names
from .mathfn import EXP_TABLE, decay, log_ratio


class ReferenceFeatureExtractor:
    def __init__(self, cfg: FeatureConfig, width: int, height: int):
        self.cfg, self.width, self.height = cfg, width, height
        self.num_features = len(feature_names(cfg))
        self.reset()

    def reset(self) -> None:
        self.last_t: dict[tuple[int, int], int] = {}
        self.last_p: dict[tuple[int, int], int] = {}
        self.changes: dict[tuple[int, int], list[int]] = {}  # newest last, at most max_changes
        self.last_global: int | None = None
        n = len(self.cfg.cell_taus_us)
        self.cell_last: dict[tuple[int, int, int], int] = {}  # (size, column, row) -> time
        self.cell_counts: dict[tuple[int, int, int], list[list[float]]] = {}  # [polarity][tau]
        self.global_counts = [[0.0] * n, [0.0] * n]
        self.block_last: dict[tuple[int, int], int] = {}  # context cell -> time of its last event
        self.block_s9: dict[tuple[int, int], list[list[float]]] = {}  # [polarity][short, long] 3x3 sums
        self.block_epoch: int | None = None  # the epoch the sums' weights are relative to
        self.block_into = (1.0, 1.0)  # decay(t - epoch, tau) of the event being processed

    def _mf(self, pixel, t: int) -> int:
        return sum(1 for c in self.changes.get(pixel, []) if t - c <= self.cfg.window_us)

    def extract(self, events: Events) -> np.ndarray:
        cfg = self.cfg
        out = np.zeros((len(events), self.num_features), np.float32)
        for i in range(len(events)):
            t, x, y, p = int(events.t[i]), int(events.x[i]), int(events.y[i]), int(events.p[i])
            if self.last_global is not None and t < self.last_global:
                self.reset()
            here = (x, y)
            neighbours = [(x + dx, y + dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                          if (dx, dy) != (0, 0)]
            active = [q for q in [here] + neighbours
                      if q in self.last_t and t - self.last_t[q] <= cfg.window_us]
            mf = self._mf(here, t) if here in active else 0
            ma = sum(self._mf(q, t) for q in active)
            ne = len(active)
            same = sum(1 for q in active if q != here and self.last_p[q] == p)
            opposite = sum(1 for q in active if q != here and self.last_p[q] != p)
            seen_neigh = [self.last_t[q] for q in neighbours if q in self.last_t]
            row = [2.0 * p - 1.0]
            if here in self.last_p:
                row.append(1.0 if self.last_p[here] == p else -1.0)
            else:
                row.append(0.0)
            dt_pixel = float(t - self.last_t[here]) if here in self.last_t else None
            for tau in cfg.taus_us:
                row.append(decay(dt_pixel, tau, EXP_TABLE) if dt_pixel is not None else 0.0)
            dt_neigh = float(t - max(seen_neigh)) if seen_neigh else None
            for tau in cfg.taus_us:
                row.append(decay(dt_neigh, tau, EXP_TABLE) if dt_neigh is not None else 0.0)
            row.append(log_ratio(dt_pixel, cfg.dt_cap_us, math.log1p(cfg.dt_cap_us))
                       if dt_pixel is not None else 1.0)
            last = self._block_latest(x, y) if cfg.context_px > 0 and cfg.local_dt else self.last_global
            row.append(log_ratio(float(t - last), cfg.global_dt_cap_us,
                                 math.log1p(cfg.global_dt_cap_us))
                       if last is not None else 1.0)
            k = cfg.max_changes
            row.append(math.log1p(float(mf)) / math.log1p(float(k)))
            row.append(math.log1p(float(ma)) / math.log1p(9.0 * k))
            row.append(ne / 9.0)
            row.append((ma / ne) / k if ne > 0 else 0.0)
            row.append(same / 8.0)
            row.append(opposite / 8.0)
            row.append((x + 0.5) / self.width)
            row.append((y + 0.5) / self.height)
            if cfg.cell_px:
                row += self._flicker_features(x, y, p, t)
            if cfg.context_px > 0:
                self._count_in_block(x, y, p, t)
            out[i] = np.array(row, np.float64).astype(np.float32)
            # add the event
            if here in self.last_p and self.last_p[here] != p:
                self.changes[here] = (self.changes.get(here, []) + [t])[-k:]
            self.last_t[here] = t
            self.last_p[here] = p
            self.last_global = t
        return out

    def _flicker_features(self, x: int, y: int, p: int, t: int) -> list[float]:
        """The cell and global decayed-count features of one event; then counts it."""
        cfg, row = self.cfg, []
        for c in cfg.cell_px:
            cell = (c, x // c, y // c)
            k_norm = c * c / 8.0
            counts = self.cell_counts.setdefault(cell, [[0.0] * len(cfg.cell_taus_us) for _ in range(2)])
            for k, tau in enumerate(cfg.cell_taus_us):
                d = decay(float(t - self.cell_last[cell]), tau, EXP_TABLE) if cell in self.cell_last else 0.0
                same, opposite = counts[p][k] * d, counts[1 - p][k] * d
                row += [same / (same + k_norm), opposite / (opposite + k_norm)]
                counts[p][k], counts[1 - p][k] = same + 1.0, opposite
            self.cell_last[cell] = t
        if cfg.context_px > 0:
            row.append(self._block_burst(x, y, p, t))
            return row
        g = self.global_counts
        for k, tau in enumerate(cfg.cell_taus_us):
            d = decay(float(t - self.last_global), tau, EXP_TABLE) if self.last_global is not None else 0.0
            g[0][k], g[1][k] = g[0][k] * d, g[1][k] * d
        short = g[p][0] / cfg.cell_taus_us[0]
        long = g[p][-1] / cfg.cell_taus_us[-1]
        row.append(short / (short + long) if short + long > 0.0 else 0.0)
        for k in range(len(cfg.cell_taus_us)):
            g[p][k] += 1.0
        return row

    # ------------------------------------------------------------ local context (context_px > 0)
    def _block(self, x: int, y: int) -> list[tuple[int, int]]:
        """The 3x3 context cells around the event's cell, in row order (some may lie outside)."""
        b = self.cfg.context_px
        return [(x // b + dx, y // b + dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]

    def _block_latest(self, x: int, y: int) -> int | None:
        seen = [self.block_last[q] for q in self._block(x, y) if q in self.block_last]
        return max(seen) if seen else None

    def _block_burst(self, x: int, y: int, p: int, t: int) -> float:
        """The burst ratio of the 3x3 context cells: their same-polarity counts decayed to ``t``,
        read from the running sum of the event's cell (extractor.py explains the epochs)."""
        taus = (self.cfg.cell_taus_us[0], self.cfg.cell_taus_us[-1])
        every = max(1, int(64 * min(self.cfg.cell_taus_us)))
        epoch = (t // every) * every
        if epoch != self.block_epoch:
            if self.block_epoch is not None:
                gap = float(epoch - self.block_epoch)
                f = (decay(gap, taus[0], EXP_TABLE), decay(gap, taus[1], EXP_TABLE))
                for sums in self.block_s9.values():
                    for pq in range(2):
                        sums[pq][0], sums[pq][1] = sums[pq][0] * f[0], sums[pq][1] * f[1]
            self.block_epoch = epoch
        into = float(t - epoch)
        self.block_into = (decay(into, taus[0], EXP_TABLE), decay(into, taus[1], EXP_TABLE))
        b = self.cfg.context_px
        sums = self.block_s9.get((x // b, y // b), [[0.0, 0.0], [0.0, 0.0]])
        short = sums[p][0] * self.block_into[0] / taus[0]
        long = sums[p][1] * self.block_into[1] / taus[1]
        return short / (short + long) if short + long > 0.0 else 0.0

    def _count_in_block(self, x: int, y: int, p: int, t: int) -> None:
        """Add the event's weights to the running sums of the 9 cells around its own."""
        if self.cfg.cell_px:
            w = (1.0 / self.block_into[0], 1.0 / self.block_into[1])
            for q in self._block(x, y):
                sums = self.block_s9.setdefault(q, [[0.0, 0.0], [0.0, 0.0]])
                sums[p][0], sums[p][1] = sums[p][0] + w[0], sums[p][1] + w[1]
        b = self.cfg.context_px
        self.block_last[(x // b, y // b)] = t
