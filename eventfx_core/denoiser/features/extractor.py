"""Streaming per-event features (numba fast path); definitions in ``config.py``.

State is kept per pixel on a grid padded by one pixel on every side (so the 3x3 neighbourhood
of any sensor pixel is read without bounds checks; padding pixels never fire):

    last_tp  int64[(h+2)*(w+2)]              (time << 1) | polarity of the pixel's last event,
                                             NEVER << 1 if none (one load gives both)
    changes  int64[(h+2)*(w+2), max_changes] ring of the pixel's last polarity-change times
    ring_pos uint8[(h+2)*(w+2)]              next slot of that ring
    last_global int64[1]                     time of the stream's previous event
    cell_last   int64[cells]                 (cell_px given) time of the cell's last event; the
                                             cells of every scale, one after the other
    cell_v      float64[cells, 2, n_cell_taus] decayed event counts per cell, polarity, tau
    global_v    float64[2, n_cell_taus]      decayed event counts of the whole sensor
    block_last  int64[(ch+2)*(cw+2)]         (context_px > 0) time of the last event of each
                                             context cell, on a grid of cells padded by one
    block_s9    float64[(ch+2)*(cw+2), 2, 2] per context cell, polarity and (short, long) tau:
                                             the sum over its 3x3 cells of their events'
                                             weights 1 / decay(t_event - epoch start, tau)
    block_epoch int64[1]                     the epoch those weights are relative to

The block burst ratio needs, per event, the 9 cells' decayed counts at its time. Decaying each
cell on every read costs 18 exponentials; instead every event adds its weight
``1 / decay(t - E, tau)`` to the running 3x3 sums of the 9 cells around it, and a read is one
sum times ``decay(t - E, tau)``: the same decayed counts (up to rounding). ``E`` is the start
of the event's epoch, ``t // R * R`` with ``R = 64 * min(tau)``, on absolute time, so weights
stay below e^64 and any split of the stream gives the same sums; when an epoch begins, every
sum is brought to it (multiplied by ``decay(new E - old E, tau)``).

Cutting a stream anywhere gives bit-identical features: the kernel does the same float64
operations per event in the same order whatever the split, and only the state above carries
over. ``reference.py`` is the per-event Python oracle for this kernel.
"""
from __future__ import annotations

import math
import warnings

import numba
import numpy as np

from ...errors import EventfxError
from ...events import Events, require_inside
from .config import FeatureConfig, feature_names
from .mathfn import EXP_TABLE, decay_jit, log_ratio, log_ratio_jit

NEVER = -(1 << 61)  # "no event yet": t - NEVER stays positive and far beyond any window


@numba.njit(cache=True, error_model="numpy", inline="always")
def _recent_changes(changes, q, t, window):
    """Mf: how many of pixel q's stored polarity-change times lie within the window."""
    m = 0
    for k in range(changes.shape[1]):
        m += np.int64(t - changes[q, k] <= window)
    return m


@numba.njit(cache=True, error_model="numpy", nogil=True)  # nogil: runs beside the model
def _extract_kernel(t, x, y, p, width, height, window, taus, dt_cap, global_dt_cap,
                    exp_table, mf_table, ma_table, global_table,
                    last_tp, changes, ring_pos, last_global,
                    cell_px, cell_taus, cell_last, cell_v, global_v,
                    ctx_px, local_dt, ctx_epoch_us, block_last, block_s9, block_epoch, out):
    """Fill ``out[i]`` for every event, updating the state; returns the number of resets
    caused by time going backwards."""
    row = width + 2
    n_changes = changes.shape[1]
    n_taus = taus.shape[0]
    log_dt_cap = math.log1p(dt_cap)
    log_global_dt_cap = math.log1p(global_dt_cap)
    n_ct = cell_taus.shape[0]
    n_scales = cell_px.shape[0]
    cells_w = np.empty(n_scales, np.int64)  # cell columns and first cell of each scale
    cell_first = np.empty(n_scales, np.int64)
    first = 0
    for s in range(n_scales):
        cells_w[s] = (width + cell_px[s] - 1) // cell_px[s]
        cell_first[s] = first
        first += cells_w[s] * ((height + cell_px[s] - 1) // cell_px[s])
    ctx_row = (width + ctx_px - 1) // ctx_px + 2 if ctx_px > 0 else 0
    resets = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti < last_global[0]:  # time went backwards: forget everything, start afresh
            last_tp[:] = NEVER << 1
            changes[:, :] = NEVER
            ring_pos[:] = 0
            last_global[0] = NEVER
            cell_last[:] = NEVER
            cell_v[:, :, :] = 0.0
            global_v[:, :] = 0.0
            block_last[:] = NEVER
            block_s9[:, :, :] = 0.0
            block_epoch[0] = NEVER
            resets += 1
        c = (np.int64(y[i]) + 1) * row + np.int64(x[i]) + 1
        pi = np.int8(p[i])
        # the pixel itself: activity and polarity changes within the window
        lt = last_tp[c] >> 1
        here_active = ti - lt <= window
        change_here = _recent_changes(changes, c, ti, window) if here_active else 0
        active = np.int64(here_active)
        change_sum = change_here
        # its 8 neighbours: activity, changes, same/opposite polarity support, latest event
        same = 0
        opposite = 0
        latest_neigh = NEVER
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                if dy == 0 and dx == 0:
                    continue
                q = c + dy * row + dx
                tp = last_tp[q]
                lq = tp >> 1
                if lq > latest_neigh:
                    latest_neigh = lq
                if ti - lq <= window:
                    active += 1
                    change_sum += _recent_changes(changes, q, ti, window)
                    if (tp & 1) == pi:
                        same += 1
                    else:
                        opposite += 1
        lp = np.int8(last_tp[c] & 1) if lt != NEVER else np.int8(-1)
        col = 0
        out[i, col] = 2.0 * pi - 1.0
        col += 1
        out[i, col] = 0.0 if lp < 0 else (1.0 if lp == pi else -1.0)
        col += 1
        dt_pixel = float(ti - lt)
        for k in range(n_taus):
            out[i, col] = decay_jit(dt_pixel, taus[k], exp_table) if lt != NEVER else 0.0
            col += 1
        dt_neigh = float(ti - latest_neigh)
        for k in range(n_taus):
            out[i, col] = decay_jit(dt_neigh, taus[k], exp_table) if latest_neigh != NEVER else 0.0
            col += 1
        out[i, col] = log_ratio_jit(dt_pixel, dt_cap, log_dt_cap) if lt != NEVER else 1.0
        col += 1
        last_ctx = last_global[0]
        bc = 0
        if ctx_px > 0:
            bc = (np.int64(y[i]) // ctx_px + 1) * ctx_row + np.int64(x[i]) // ctx_px + 1
        if ctx_px > 0 and local_dt:  # local context: the latest event of the 3x3 block of cells
            last_ctx = NEVER
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    lq = block_last[bc + dy * ctx_row + dx]
                    if lq > last_ctx:
                        last_ctx = lq
        if last_ctx != NEVER:
            gap = ti - last_ctx
            if gap < global_table.shape[0]:
                out[i, col] = global_table[gap]
            else:
                out[i, col] = log_ratio_jit(float(gap), global_dt_cap, log_global_dt_cap)
        else:
            out[i, col] = 1.0
        col += 1
        out[i, col] = mf_table[change_here]
        col += 1
        out[i, col] = ma_table[change_sum]
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
        if n_scales > 0:  # flicker features: decayed counts of the cells and of the sensor
            for s in range(n_scales):
                cp = cell_px[s]
                cell_k = cp * cp / 8.0
                cc = cell_first[s] + (np.int64(y[i]) // cp) * cells_w[s] + np.int64(x[i]) // cp
                dtc = float(ti - cell_last[cc])
                for k in range(n_ct):
                    d = decay_jit(dtc, cell_taus[k], exp_table)
                    vs = cell_v[cc, pi, k] * d
                    vo = cell_v[cc, 1 - pi, k] * d
                    col += 1
                    out[i, col] = vs / (vs + cell_k)
                    col += 1
                    out[i, col] = vo / (vo + cell_k)
                    cell_v[cc, pi, k] = vs + 1.0
                    cell_v[cc, 1 - pi, k] = vo
                cell_last[cc] = ti
            tau_s = cell_taus[0]
            tau_l = cell_taus[n_ct - 1]
            d_s = 1.0
            d_l = 1.0
            if ctx_px > 0:  # burst ratio of the 3x3 block of context cells (running sums)
                epoch = (ti // ctx_epoch_us) * ctx_epoch_us
                if epoch != block_epoch[0]:
                    if block_epoch[0] != NEVER:  # bring every sum to the new epoch
                        gap = float(epoch - block_epoch[0])
                        f_s = decay_jit(gap, tau_s, exp_table)
                        f_l = decay_jit(gap, tau_l, exp_table)
                        for q in range(block_s9.shape[0]):
                            for pq in range(2):
                                block_s9[q, pq, 0] = block_s9[q, pq, 0] * f_s
                                block_s9[q, pq, 1] = block_s9[q, pq, 1] * f_l
                    block_epoch[0] = epoch
                into = float(ti - epoch)
                d_s = decay_jit(into, tau_s, exp_table)
                d_l = decay_jit(into, tau_l, exp_table)
                short = block_s9[bc, pi, 0] * d_s / tau_s
                long = block_s9[bc, pi, 1] * d_l / tau_l
            else:  # burst ratio of the whole sensor
                dtg = float(ti - last_global[0])
                for k in range(n_ct):
                    d = decay_jit(dtg, cell_taus[k], exp_table)
                    global_v[0, k] = global_v[0, k] * d
                    global_v[1, k] = global_v[1, k] * d
                short = global_v[pi, 0] / tau_s
                long = global_v[pi, n_ct - 1] / tau_l
                for k in range(n_ct):
                    global_v[pi, k] = global_v[pi, k] + 1.0
            col += 1
            out[i, col] = short / (short + long) if short + long > 0.0 else 0.0
            if ctx_px > 0:  # count the event in the sums of the 9 cells around its own
                w_s = 1.0 / d_s
                w_l = 1.0 / d_l
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        q = bc + dy * ctx_row + dx
                        block_s9[q, pi, 0] = block_s9[q, pi, 0] + w_s
                        block_s9[q, pi, 1] = block_s9[q, pi, 1] + w_l
        if ctx_px > 0:
            block_last[bc] = ti
        # add the event to the state
        if lp >= 0 and lp != pi:
            changes[c, ring_pos[c]] = ti
            ring_pos[c] = (ring_pos[c] + 1) % n_changes
        last_tp[c] = (ti << 1) | np.int64(pi)
        last_global[0] = ti
    return resets


def _lookup_tables(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-count and per-gap feature values, computed with the very formulas of
    ``reference.py`` (so looking them up changes no bit): pfd_mf for Mf = 0..max_changes,
    pfd_ma for Ma = 0..9*max_changes, log_dt_global for gaps 0..min(cap, 65536) us."""
    k = cfg.max_changes
    mf = np.array([math.log1p(float(m)) / math.log1p(float(k)) for m in range(k + 1)], np.float64)
    ma = np.array([math.log1p(float(m)) / math.log1p(9.0 * k) for m in range(9 * k + 1)], np.float64)
    log_cap = math.log1p(cfg.global_dt_cap_us)
    gaps = range(int(min(cfg.global_dt_cap_us, 65536)) + 1)
    glob = np.array([log_ratio(float(d), cfg.global_dt_cap_us, log_cap) for d in gaps], np.float64)
    return mf, ma, glob


class FeatureExtractor:
    """Causal per-event features from per-pixel state kept across ``extract`` calls."""

    def __init__(self, cfg: FeatureConfig | None = None, width: int = 640, height: int = 480):
        self.cfg = cfg if cfg is not None else FeatureConfig()
        self.cfg.check()
        self.names = feature_names(self.cfg)
        self.num_features = len(self.names)
        self._taus = np.asarray(self.cfg.taus_us, np.float64)
        self._cell_taus = np.asarray(self.cfg.cell_taus_us if self.cfg.cell_px else (), np.float64)
        self._cell_px = np.asarray(self.cfg.cell_px, np.int64)
        self._tables = _lookup_tables(self.cfg)
        self._allocate(int(width), int(height))

    def _allocate(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise EventfxError(f"features: invalid sensor size {width}x{height}")
        self.width, self.height = width, height
        cells = (width + 2) * (height + 2)
        self.last_tp = np.full(cells, NEVER << 1, np.int64)
        self.changes = np.full((cells, self.cfg.max_changes), NEVER, np.int64)
        self.ring_pos = np.zeros(cells, np.uint8)
        self.last_global = np.full(1, NEVER, np.int64)
        n_cells = sum(-(-width // c) * -(-height // c) for c in self.cfg.cell_px)
        self.cell_last = np.full(n_cells, NEVER, np.int64)
        self.cell_v = np.zeros((n_cells, 2, len(self.cfg.cell_taus_us) if self.cfg.cell_px else 0), np.float64)
        self.global_v = np.zeros((2, self.cell_v.shape[2]), np.float64)
        b = self.cfg.context_px
        n_blocks = (-(-width // b) + 2) * (-(-height // b) + 2) if b > 0 else 1
        self.block_last = np.full(n_blocks, NEVER, np.int64)
        self.block_s9 = np.zeros((n_blocks, 2, 2), np.float64)
        self.block_epoch = np.full(1, NEVER, np.int64)
        taus = self.cfg.cell_taus_us if self.cfg.cell_px else (1.0,)
        self._ctx_epoch_us = np.int64(max(1, int(64 * min(taus))))  # weights stay below e^64

    def reset(self) -> None:
        """Forget all state (as if no event had been seen)."""
        self._allocate(self.width, self.height)

    def extract(self, events: Events) -> np.ndarray:
        """float32 [n, num_features], C-contiguous; one row per event, in order."""
        if events.sensor_size != (self.width, self.height):
            warnings.warn(f"features: sensor size changed from {self.width}x{self.height} to "
                          f"{events.width}x{events.height}; state reset", RuntimeWarning, stacklevel=2)
            self._allocate(events.width, events.height)
        require_inside(events, "features")
        out = np.empty((len(events), self.num_features), np.float32)
        if len(events) == 0:
            return out
        cfg = self.cfg
        resets = _extract_kernel(events.t, events.x, events.y, events.p, self.width, self.height,
                                 np.int64(cfg.window_us), self._taus, float(cfg.dt_cap_us),
                                 float(cfg.global_dt_cap_us), EXP_TABLE, *self._tables, self.last_tp, self.changes, self.ring_pos, self.last_global,
                                 self._cell_px, self._cell_taus, self.cell_last, self.cell_v, self.global_v,
                                 np.int64(cfg.context_px), bool(cfg.local_dt), self._ctx_epoch_us, self.block_last,
                                 self.block_s9, self.block_epoch, out)
        if resets:
            warnings.warn(f"features: time went backwards {resets} time(s); state reset",
                          RuntimeWarning, stacklevel=2)
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        return {"sensor": np.array([self.width, self.height], np.int64),
                "last_tp": self.last_tp.copy(),
                "changes": self.changes.copy(), "ring_pos": self.ring_pos.copy(),
                "last_global": self.last_global.copy(), "cell_last": self.cell_last.copy(),
                "cell_v": self.cell_v.copy(), "global_v": self.global_v.copy(),
                "block_last": self.block_last.copy(), "block_s9": self.block_s9.copy(),
                "block_epoch": self.block_epoch.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        width, height = (int(v) for v in state["sensor"])
        self._allocate(width, height)
        for name in ("last_tp", "changes", "ring_pos", "last_global", "cell_last", "cell_v", "global_v",
                     "block_last", "block_s9", "block_epoch"):
            if name not in state:
                raise EventfxError(f"features: state has no {name}")
            src = np.asarray(state[name])
            dst = getattr(self, name)
            if src.shape != dst.shape:
                raise EventfxError(f"features: state {name} has shape {src.shape}, expected {dst.shape}")
            dst[...] = src
