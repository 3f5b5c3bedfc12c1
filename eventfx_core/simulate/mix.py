"""Mixing background and flare events through occlusion weights.

E-Deflare (Han et al., arXiv 2512.09016): where a flare adds light I_f to a pixel whose scene
light is I_bg, a background event there survives with probability w_bg = I_bg / (I_bg + I_f):
the flare washes out the scene's contrast. Flare and light-source events are all kept.
"""
from __future__ import annotations

import numpy as np

from ..labels import FLARE, LIGHT_SOURCE


def occlusion_weight(bg_intensity: np.ndarray, flare_intensity: np.ndarray) -> np.ndarray:
    """w_bg = I_bg / (I_bg + I_f), elementwise (1 where both are 0)."""
    bg = np.asarray(bg_intensity, np.float64)
    tot = bg + np.asarray(flare_intensity, np.float64)
    return np.divide(bg, tot, out=np.ones_like(tot), where=tot > 0)


def occlusion_keep(bg_intensity_at_events: np.ndarray, flare_intensity_at_events: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """bool[n]: which background events survive the flare (each with probability w_bg)."""
    w = occlusion_weight(bg_intensity_at_events, flare_intensity_at_events)
    return rng.random(len(w)) < w


def flare_cause_map(core_prev: np.ndarray, core_now: np.ndarray, total_prev: np.ndarray,
                    total_now: np.ndarray, core_fraction: float = 0.5) -> np.ndarray:
    """uint8 (H, W) cause of flare-layer events in one frame interval: LIGHT_SOURCE where the
    core gives at least ``core_fraction`` of the added light at either end of the interval
    (so a moving source's trailing edge stays light source), FLARE elsewhere."""
    src = (core_prev >= core_fraction * total_prev) & (core_prev > 0)
    src |= (core_now >= core_fraction * total_now) & (core_now > 0)
    return np.where(src, np.uint8(LIGHT_SOURCE), np.uint8(FLARE))
