"""Events <-> voxel grid: B signed time bins over a fixed window, bilinear in time,
``cell_px x cell_px`` pixels per spatial cell.

The voxel encoding of E-Deflare (Han et al., arXiv 2512.09016) and of the event-voxel
literature it builds on (Zhu et al., "Unsupervised event-based learning of optical flow",
CVPR 2019): each event adds its polarity (+1 ON, -1 OFF) to the two time bins whose centres
surround it, split linearly by distance, so the grid sum equals the signed event count.

Bin b of a window starting at ``t0`` covers ``[t0 + b*dt, t0 + (b+1)*dt)`` with
``dt = window_us / bins``; its centre is ``t0 + (b + 0.5)*dt``. An event before the first
centre (or after the last) gives all of its weight to the first (last) bin. Events outside
``[t0, t0 + window_us)`` are ignored.

Space: an event at pixel (x, y) adds to cell ``(y // cell_px, x // cell_px)``; the grid is
``bins x ceil(height / cell_px) x ceil(width / cell_px)`` (the last row/column of cells may be
partial). Flare is large and smooth, so 4x4-pixel cells lose little of it and cut the
network's work 16-fold; ``cell_px = 1`` is the per-pixel grid. The grid is float32: per-cell
sums are exact up to 2**24 events, far beyond what 16 pixels can fire in a bin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError
from ..events import Events


@dataclass(frozen=True)
class VoxelSpec:
    window_us: int = 20000  # window length in microseconds (E-Deflare: 20 ms)
    bins: int = 8  # time bins per window (E-Deflare: 8, i.e. 2.5 ms per bin)
    cell_px: int = 4  # side of a square voxel cell in pixels (flare is smooth; 1 = per pixel)

    def check(self, where: str = "voxel") -> None:
        if self.bins < 1:
            raise ConfigError(f"{where}.bins: must be >= 1, got {self.bins}")
        if self.window_us < self.bins:
            raise ConfigError(f"{where}.window_us: must be >= bins ({self.bins}), got {self.window_us}")
        if not 1 <= self.cell_px <= 64:
            raise ConfigError(f"{where}.cell_px: must be in 1..64, got {self.cell_px}")

    def grid_shape(self, width: int, height: int) -> tuple[int, int, int]:
        """(bins, cell rows, cell columns) of the grid of a ``width x height`` sensor."""
        c = self.cell_px
        return self.bins, -(-int(height) // c), -(-int(width) // c)

    @property
    def bin_us(self) -> float:
        return self.window_us / self.bins


# ----------------------------------------------------------------- time weights
def _bin_weights_scalar(t: int, t0: int, window_us: int, bins: int):
    """(b0, b1, w0, w1) for one event: the two bins it splits into and their weights."""
    u = (t - t0) * bins / window_us - 0.5  # position in units of bins, 0 at the first centre
    b0 = int(np.floor(u))
    frac = u - b0
    if b0 < 0:
        return 0, 0, 1.0, 0.0
    if b0 >= bins - 1:
        return bins - 1, bins - 1, 1.0, 0.0
    return b0, b0 + 1, 1.0 - frac, frac


@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _bin_weights(t, t0, window_us, bins, b0_out, b1_out, w0_out, w1_out, inside_out):
    for i in range(t.shape[0]):
        dt = t[i] - t0
        inside_out[i] = (dt >= 0) and (dt < window_us)
        u = (dt * bins) / window_us - 0.5  # same operation order as the reference
        b0 = int(np.floor(u))
        frac = u - b0
        if b0 < 0:
            b0_out[i] = 0; b1_out[i] = 0; w0_out[i] = 1.0; w1_out[i] = 0.0  # noqa: E702
        elif b0 >= bins - 1:
            b0_out[i] = bins - 1; b1_out[i] = bins - 1; w0_out[i] = 1.0; w1_out[i] = 0.0  # noqa: E702
        else:
            b0_out[i] = b0; b1_out[i] = b0 + 1; w0_out[i] = 1.0 - frac; w1_out[i] = frac  # noqa: E702


def bin_weights(t: np.ndarray, t0: int, spec: VoxelSpec):
    """Per event: bins ``b0, b1`` (int64), weights ``w0, w1`` (float32, sum 1), ``inside``."""
    n = len(t)
    b0 = np.empty(n, np.int64); b1 = np.empty(n, np.int64)  # noqa: E702
    w0 = np.empty(n, np.float32); w1 = np.empty(n, np.float32)  # noqa: E702
    inside = np.empty(n, np.bool_)
    _bin_weights(np.asarray(t, np.int64), np.int64(t0), np.int64(spec.window_us),
                 np.int64(spec.bins), b0, b1, w0, w1, inside)
    return b0, b1, w0, w1, inside


# ----------------------------------------------------------------- events -> voxel
@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _accumulate(x, y, p, b0, b1, w0, w1, inside, cell, signed, grid):
    for i in range(x.shape[0]):
        if not inside[i]:
            continue
        s = 1.0 if (p[i] > 0 or not signed) else -1.0
        cy = y[i] // cell
        cx = x[i] // cell
        grid[b0[i], cy, cx] += np.float32(s * w0[i])
        if w1[i] != 0.0:
            grid[b1[i], cy, cx] += np.float32(s * w1[i])


def events_to_voxel(events: Events, t0: int, spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """float32[bins, cell rows, cell columns] signed voxel grid of the window starting at ``t0``."""
    grid = np.zeros(spec.grid_shape(events.width, events.height), np.float32)
    if len(events):
        b0, b1, w0, w1, inside = bin_weights(events.t, t0, spec)
        _accumulate(events.x, events.y, events.p, b0, b1, w0, w1, inside, np.uint16(spec.cell_px), True, grid)
    return grid


def events_to_count_voxel(events: Events, t0: int, spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """float32[bins, cell rows, cell columns] *unsigned* grid: the same bilinear time weights
    as :func:`events_to_voxel`, every event counting +1 whatever its polarity (so ON and OFF
    events of a flickering light add up instead of cancelling)."""
    grid = np.zeros(spec.grid_shape(events.width, events.height), np.float32)
    if len(events):
        b0, b1, w0, w1, inside = bin_weights(events.t, t0, spec)
        _accumulate(events.x, events.y, events.p, b0, b1, w0, w1, inside, np.uint16(spec.cell_px), False, grid)
    return grid


def input_grids(events: Events, t0: int, spec: VoxelSpec, channels: int, clip: float) -> np.ndarray:
    """float32[channels, bins, rows, cols] network input: channel 0 the signed grid, channel 1
    (when ``channels == 2``) the unsigned count grid; clipped to ``+-clip``."""
    grids = [events_to_voxel(events, t0, spec)]
    if channels == 2:
        grids.append(events_to_count_voxel(events, t0, spec))
    return np.clip(np.stack(grids), -clip, clip)


def events_to_voxel_reference(events: Events, t0: int, spec: VoxelSpec = VoxelSpec(),
                              signed: bool = True) -> np.ndarray:
    """Per-event Python reference of :func:`events_to_voxel` (``signed=False``:
    of :func:`events_to_count_voxel`); the test oracle."""
    grid = np.zeros(spec.grid_shape(events.width, events.height), np.float32)
    c = spec.cell_px
    for t, x, y, p in zip(events.t.tolist(), events.x.tolist(), events.y.tolist(), events.p.tolist()):
        if not (0 <= t - t0 < spec.window_us):
            continue
        b0, b1, w0, w1 = _bin_weights_scalar(t, t0, spec.window_us, spec.bins)
        s = 1.0 if (p > 0 or not signed) else -1.0
        grid[b0, y // c, x // c] += np.float32(s * np.float32(w0))
        if w1 != 0.0:
            grid[b1, y // c, x // c] += np.float32(s * np.float32(w1))
    return grid


# ----------------------------------------------------------------- voxel -> events
def voxel_to_events(voxel: np.ndarray, t0: int, spec: VoxelSpec = VoxelSpec(),
                    seed: int = 0, sensor: tuple[int, int] | None = None) -> Events:
    """Draw events from a voxel grid: ``round(|v|)`` events per cell, polarity ``sign(v)``,
    time stamps uniform within the cell's bin, pixels uniform within the cell (clipped to
    ``sensor`` = (width, height), default the grid's extent in pixels); seeded, so the draw
    is reproducible.

    The inverse of :func:`events_to_voxel` in count per bin when the grid came from events
    that did not straddle bin centres; bilinear splitting makes the round trip approximate
    otherwise. Used as the *sampling decode*, for comparison with the keep decode that
    returns a subset of the real input events.
    """
    bins, rows, cols = voxel.shape
    c = spec.cell_px
    width, height = sensor if sensor is not None else (cols * c, rows * c)
    counts = np.rint(np.abs(voxel)).astype(np.int64).reshape(-1)
    cells = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    rng = np.random.default_rng(seed)
    b, rem = np.divmod(cells, rows * cols)
    cy, cx = np.divmod(rem, cols)
    bin_us = spec.window_us / spec.bins
    t = t0 + np.floor((b + rng.random(cells.size)) * bin_us).astype(np.int64)
    # a pixel uniform within the cell's part that lies on the sensor
    x0, y0 = cx * c, cy * c
    x = x0 + np.floor(rng.random(cells.size) * (np.minimum(x0 + c, width) - x0)).astype(np.int64)
    y = y0 + np.floor(rng.random(cells.size) * (np.minimum(y0 + c, height) - y0)).astype(np.int64)
    p = (voxel.reshape(-1)[cells] > 0).astype(np.uint8)
    order = np.argsort(t, kind="stable")
    return Events.from_arrays(t[order], x[order], y[order], p[order], width, height)
