"""Streaming per-event features (numba fast path); definitions in ``features/config.py``.

State is kept per pixel on a grid padded by one pixel on every side (so the 3x3 neighbourhood
of any sensor pixel is read without bounds checks; padding pixels never fire):

    last_t   int64[(h+2)*(w+2)]              time of the pixel's last event (NEVER if none)
    last_p   int8 [(h+2)*(w+2)]              polarity of that event (-1 if none)
    changes  int64[(h+2)*(w+2), max_changes] ring of the pixel's last polarity-change times
    ring_pos uint8[(h+2)*(w+2)]              next slot of that ring
    last_global int64[1]                     time of the stream's previous event

Cutting a stream anywhere gives bit-identical features: the kernel does the same float64
operations per event in the same order whatever the split, and only the state above carries
over. ``reference.py`` is the per-event Python oracle for this kernel.
"""
from __future__ import annotations

import math
import warnings

import numba
import numpy as np

from ..errors import EventfxError
from ..events import Events, first_out_of_range
from .config import FeatureConfig, feature_names

NEVER = -(1 << 61)  # "no event yet": t - NEVER stays positive and far beyond any window


@numba.njit(cache=True, error_model="numpy")
def _extract_kernel(t, x, y, p, width, height, window, taus, dt_cap, global_dt_cap,
                    last_t, last_p, changes, ring_pos, last_global, out):
    """Fill ``out[i]`` for every event, updating the state; returns the number of resets
    caused by time going backwards."""
    row = width + 2
    n_changes = changes.shape[1]
    n_taus = taus.shape[0]
    log_dt_cap = math.log1p(dt_cap)
    log_global_dt_cap = math.log1p(global_dt_cap)
    mf_scale = math.log1p(float(n_changes))
    ma_scale = math.log1p(9.0 * n_changes)
    resets = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < last_global[0]:  # time went backwards: forget everything, start afresh
            last_t[:] = NEVER
            last_p[:] = -1
            changes[:, :] = NEVER
            ring_pos[:] = 0
            last_global[0] = NEVER
            resets += 1
        c = (np.int64(y[i]) + 1) * row + np.int64(x[i]) + 1
        pi = np.int8(p[i])
        # 3x3 neighbourhood: activity, polarity changes, same/opposite support, latest neighbour
        active = 0
        change_sum = 0
        change_here = 0
        same = 0
        opposite = 0
        latest_neigh = NEVER
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                q = c + dy * row + dx
                lq = last_t[q]
                centre = dy == 0 and dx == 0
                if not centre and lq > latest_neigh:
                    latest_neigh = lq
                if ti - lq <= window:
                    active += 1
                    m = 0
                    for k in range(n_changes):
                        if ti - changes[q, k] <= window:
                            m += 1
                    change_sum += m
                    if centre:
                        change_here = m
                    elif last_p[q] == pi:
                        same += 1
                    else:
                        opposite += 1
        lt = last_t[c]
        lp = last_p[c]
        col = 0
        out[i, col] = 2.0 * pi - 1.0
        col += 1
        out[i, col] = 0.0 if lp < 0 else (1.0 if lp == pi else -1.0)
        col += 1
        dt_pixel = float(ti - lt)
        for k in range(n_taus):
            out[i, col] = math.exp(-dt_pixel / taus[k]) if lt != NEVER else 0.0
            col += 1
        dt_neigh = float(ti - latest_neigh)
        for k in range(n_taus):
            out[i, col] = math.exp(-dt_neigh / taus[k]) if latest_neigh != NEVER else 0.0
            col += 1
        out[i, col] = min(1.0, math.log1p(dt_pixel) / log_dt_cap) if lt != NEVER else 1.0
        col += 1
        if last_global[0] != NEVER:
            out[i, col] = min(1.0, math.log1p(float(ti - last_global[0])) / log_global_dt_cap)
        else:
            out[i, col] = 1.0
        col += 1
        out[i, col] = math.log1p(float(change_here)) / mf_scale
        col += 1
        out[i, col] = math.log1p(float(change_sum)) / ma_scale
        col += 1
        out[i, col] = active / 9.0
        col += 1
        out[i, col] = (change_sum / active) / n_changes if active > 0 else 0.0
        col += 1
        out[i, col] = same / 8.0
        col += 1
        out[i, col] = opposite / 8.0
        col += 1
        out[i, col] = (x[i] + 0.5) / width
        col += 1
        out[i, col] = (y[i] + 0.5) / height
        # add the event to the state
        if lp >= 0 and lp != pi:
            changes[c, ring_pos[c]] = ti
            ring_pos[c] = (ring_pos[c] + 1) % n_changes
        last_t[c] = ti
        last_p[c] = pi
        last_global[0] = ti
    return resets


class FeatureExtractor:
    """Causal per-event features from per-pixel state kept across ``extract`` calls."""

    def __init__(self, cfg: FeatureConfig | None = None, width: int = 640, height: int = 480):
        self.cfg = cfg if cfg is not None else FeatureConfig()
        self.cfg.check()
        self.names = feature_names(self.cfg)
        self.num_features = len(self.names)
        self._taus = np.asarray(self.cfg.taus_us, np.float64)
        self._allocate(int(width), int(height))

    def _allocate(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise EventfxError(f"features: invalid sensor size {width}x{height}")
        self.width, self.height = width, height
        cells = (width + 2) * (height + 2)
        self.last_t = np.full(cells, NEVER, np.int64)
        self.last_p = np.full(cells, -1, np.int8)
        self.changes = np.full((cells, self.cfg.max_changes), NEVER, np.int64)
        self.ring_pos = np.zeros(cells, np.uint8)
        self.last_global = np.full(1, NEVER, np.int64)

    def reset(self) -> None:
        """Forget all state (as if no event had been seen)."""
        self._allocate(self.width, self.height)

    def extract(self, events: Events) -> np.ndarray:
        """float32 [n, num_features], C-contiguous; one row per event, in order."""
        if events.sensor_size != (self.width, self.height):
            warnings.warn(f"features: sensor size changed from {self.width}x{self.height} to "
                          f"{events.width}x{events.height}; state reset", RuntimeWarning, stacklevel=2)
            self._allocate(events.width, events.height)
        bad = first_out_of_range(events)
        if bad >= 0:
            raise EventfxError(f"features: event {bad} at (x={events.x[bad]}, y={events.y[bad]}) "
                               f"is outside the {self.width}x{self.height} sensor")
        out = np.empty((len(events), self.num_features), np.float32)
        if len(events) == 0:
            return out
        cfg = self.cfg
        resets = _extract_kernel(events.t, events.x, events.y, events.p, self.width, self.height,
                                 np.int64(cfg.window_us), self._taus, float(cfg.dt_cap_us),
                                 float(cfg.global_dt_cap_us), self.last_t, self.last_p,
                                 self.changes, self.ring_pos, self.last_global, out)
        if resets:
            warnings.warn(f"features: time went backwards {resets} time(s); state reset",
                          RuntimeWarning, stacklevel=2)
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        return {"sensor": np.array([self.width, self.height], np.int64),
                "last_t": self.last_t.copy(), "last_p": self.last_p.copy(),
                "changes": self.changes.copy(), "ring_pos": self.ring_pos.copy(),
                "last_global": self.last_global.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        width, height = (int(v) for v in state["sensor"])
        self._allocate(width, height)
        for name in ("last_t", "last_p", "changes", "ring_pos", "last_global"):
            src = np.asarray(state[name])
            dst = getattr(self, name)
            if src.shape != dst.shape:
                raise EventfxError(f"features: state {name} has shape {src.shape}, expected {dst.shape}")
            dst[...] = src
