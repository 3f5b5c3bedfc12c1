"""From a predicted clean voxel grid back to events.

Two decodes, side by side:

* :func:`keep_mask` (the one the stage uses) keeps a subset of the *real* input events: for
  every cell the network's predicted flare share is
  ``share = clamp((in - pred) * sign(in) / |in|, 0, 1)`` (= ``(|in| - |pred|) / |in|`` while
  ``pred`` keeps the sign of ``in``; a sign flip counts as all flare; an empty or cancelled
  cell, ``|in| < eps``, counts as no flare). An event reads the share of its two time bins,
  weighted as in the encoding, at its cell ``(y // cell_px, x // cell_px)``, and survives
  when that share is below ``threshold``. Every
  surviving event keeps its exact time stamp, position and polarity.
* :func:`keep_mask_from_share` (checkpoints with a flare-mask head) does the same per-event
  read and threshold on a share the network predicts directly, ``sigmoid(flare logit)`` per
  cell-bin (:func:`mask_share`), instead of deriving it from the two grids.
* :func:`sample_decode` draws new events from the predicted grid (E-Deflare's output is a
  voxel grid; this is how such a grid becomes events): counts are right per bin, time stamps
  are made up. Kept for comparison in the metrics.
"""
from __future__ import annotations

import numba
import numpy as np

from ..events import Events
from .voxel import VoxelSpec, bin_weights, _bin_weights_scalar, voxel_to_events

CANCELLED_EPS = 1e-3  # |in| below this: ON and OFF cancelled in the cell, no flare evidence


def flare_share(vin: np.ndarray, vpred: np.ndarray, eps: float = CANCELLED_EPS) -> np.ndarray:
    """Per-cell predicted flare share in [0, 1] (float32, same shape as the grids)."""
    vin = np.asarray(vin, np.float32)
    mag = np.abs(vin)
    safe = np.where(mag < eps, np.float32(1), mag)
    share = (vin - np.asarray(vpred, np.float32)) * np.sign(vin) / safe
    return np.where(mag < eps, np.float32(0), np.clip(share, 0, 1)).astype(np.float32)


@numba.njit(cache=True, error_model="numpy", nogil=True)  # runs beside the other pipeline thread
def _event_share(x, y, b0, b1, w0, w1, cell, share, out):
    for i in range(x.shape[0]):
        cy = y[i] // cell
        cx = x[i] // cell
        out[i] = w0[i] * share[b0[i], cy, cx] + w1[i] * share[b1[i], cy, cx]


def event_flare_share(events: Events, t0: int, share: np.ndarray,
                      spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """float32 flare share of every event (bilinear across its two bins, as encoded).
    Events outside the window read the nearest end bin."""
    out = np.empty(len(events), np.float32)
    if len(events):
        b0, b1, w0, w1, _ = bin_weights(events.t, t0, spec)
        _event_share(events.x, events.y, b0, b1, w0, w1, np.uint16(spec.cell_px), share, out)
    return out


def keep_mask(events: Events, t0: int, vin: np.ndarray, vpred: np.ndarray, threshold: float,
              spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """bool[n]: True where the event's predicted flare share is below ``threshold``."""
    return event_flare_share(events, t0, flare_share(vin, vpred), spec) < threshold


def keep_mask_reference(events: Events, t0: int, vin: np.ndarray, vpred: np.ndarray,
                        threshold: float, spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """Per-event Python reference of :func:`keep_mask` (the test oracle)."""
    out = np.empty(len(events), bool)
    c = spec.cell_px
    for i, (t, x, y) in enumerate(zip(events.t.tolist(), events.x.tolist(), events.y.tolist())):
        b0, b1, w0, w1 = _bin_weights_scalar(t, t0, spec.window_us, spec.bins)
        s = []
        for b in (b0, b1):
            a, q = float(vin[b, y // c, x // c]), float(vpred[b, y // c, x // c])
            s.append(0.0 if abs(a) < CANCELLED_EPS else min(max((a - q) * np.sign(a) / abs(a), 0.0), 1.0))
        share = np.float32(w0) * np.float32(s[0]) + np.float32(w1) * np.float32(s[1])
        out[i] = share < threshold
    return out


def mask_share(logits: np.ndarray) -> np.ndarray:
    """Per-cell-bin flare share in [0, 1] (float32) from the mask head's logits."""
    z = np.asarray(logits, np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # = sigmoid(z), no overflow warning


def keep_mask_from_share(events: Events, t0: int, share: np.ndarray, threshold: float,
                         spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """bool[n]: True where the event's flare share (bilinear across its two bins, read at
    its cell) is below ``threshold``; ``share`` float32[bins, rows, cols] in [0, 1]."""
    return event_flare_share(events, t0, np.ascontiguousarray(share, np.float32), spec) < threshold


def event_flare_share_reference(events: Events, t0: int, share: np.ndarray,
                                spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """Per-event Python reference of :func:`event_flare_share` (the test oracle)."""
    out = np.empty(len(events), np.float32)
    c = spec.cell_px
    for i, (t, x, y) in enumerate(zip(events.t.tolist(), events.x.tolist(), events.y.tolist())):
        b0, b1, w0, w1 = _bin_weights_scalar(t, t0, spec.window_us, spec.bins)
        s0, s1 = np.float32(share[b0, y // c, x // c]), np.float32(share[b1, y // c, x // c])
        out[i] = np.float32(w0) * s0 + np.float32(w1) * s1
    return out


def keep_mask_from_share_reference(events: Events, t0: int, share: np.ndarray, threshold: float,
                                   spec: VoxelSpec = VoxelSpec()) -> np.ndarray:
    """Per-event Python reference of :func:`keep_mask_from_share` (the test oracle)."""
    return event_flare_share_reference(events, t0, share, spec) < threshold


def sample_decode(vpred: np.ndarray, t0: int, spec: VoxelSpec = VoxelSpec(), seed: int = 0,
                  sensor: tuple[int, int] | None = None) -> Events:
    """New events drawn from the predicted grid (see :func:`voxel.voxel_to_events`)."""
    return voxel_to_events(vpred, t0, spec, seed, sensor)
