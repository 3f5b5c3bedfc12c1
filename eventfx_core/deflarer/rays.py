"""Rays of a flickering lamp: the sectors around its centre that flicker in step with it.

A lamp's glare is not only a halo: the optics spread its light into rays (diffraction at the
aperture's blades) and streaks, narrow lines through the lamp's centre whose angles stay fixed
as the lamp moves (the phenomenology of Flare7K: Dai et al., NeurIPS 2022). Their events fire in
step with the lamp (phase.py) far from its core, where a 16-px block holds mostly scene and the
block lock (``phase.lock_sums``) falls short, or, when the lamp moves, starts afresh where the
lamp arrives. Seen from the lamp's centre, a ray is one angle that keeps firing in step.

Per closed window and lamp centre (``phase.lamp_centres``): the events within ``reach_px`` of the
centre and at least ``inner_px`` from every centre (a lamp and its near glare are no ray, also
where the gate finds a second centre in a lamp's wide glare) that have a lamp phase to compare
with (agreement != 0) are binned by angle into ``sectors`` (a diamond angle, ``dy / (|dx| +
|dy|)`` by quadrant: exact float arithmetic, so :func:`ray_glare_reference` decides alike). A
sector is a ray when it holds at least ``peak`` times the median sector's events (at least one)
and its events' agreements pass the sign test ``S >= z sqrt(max(Q, 1))`` (as the block lock's);
its events agreeing by more than ``min_phase`` are glare. Everything depends on the window's
events alone (split-invariant).
"""
from __future__ import annotations

import math

import numpy as np


def diamond(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """A monotone stand-in for the angle of (dx, dy), in [0, 4) (one per quadrant), exact in float."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dy >= 0, np.where(dx >= 0, dy / (dx + dy), 1 - dx / (-dx + dy)),
                        np.where(dx < 0, 2 - dy / (-dx - dy), 3 + dx / (dx - dy)))


def _diamond_one(dx: float, dy: float) -> float:
    if dy >= 0:
        return dy / (dx + dy) if dx >= 0 else 1 - dx / (-dx + dy)
    return 2 - dy / (-dx - dy) if dx < 0 else 3 + dx / (dx - dy)


def ray_glare(centres: list[tuple[float, float]], x: np.ndarray, y: np.ndarray, phase: np.ndarray,
              inner_px: float, reach_px: float, sectors: int, peak: float, z: float,
              min_phase: float) -> np.ndarray:
    """bool per event: in a ray sector of some lamp centre and agreeing with its phase by more
    than ``min_phase`` (see the module text)."""
    out = np.zeros(len(x), bool)
    if sectors <= 0 or not centres:
        return out
    a = np.asarray(phase, np.float64)
    timed = np.flatnonzero(a != 0)  # the rest has no lamp in reach: cost follows the lamps' events
    fx, fy, fa = x[timed].astype(np.float64), y[timed].astype(np.float64), a[timed]
    near = np.zeros(len(timed), bool)  # within inner_px of some centre: no ray's (a lamp and its near glare)
    for cx, cy in centres:
        near |= (fx - cx) * (fx - cx) + (fy - cy) * (fy - cy) < inner_px * inner_px
    for cx, cy in centres:
        dx, dy = fx - cx, fy - cy
        d2 = dx * dx + dy * dy
        ring = np.flatnonzero(~near & (d2 < reach_px * reach_px))
        if not len(ring):
            continue
        sec = np.minimum((diamond(dx[ring], dy[ring]) * (sectors / 4.0)).astype(np.int64), sectors - 1)
        n = np.bincount(sec, minlength=sectors)
        s = np.bincount(sec, weights=fa[ring], minlength=sectors)  # summed in event order
        q = np.bincount(sec, weights=fa[ring] * fa[ring], minlength=sectors)
        ray = (n >= peak * max(float(np.median(n)), 1.0)) & (s >= z * np.sqrt(np.maximum(q, 1.0)))
        out[timed[ring[ray[sec] & (fa[ring] > min_phase)]]] = True
    return out


def ray_glare_reference(centres: list[tuple[float, float]], events: list[tuple], phase, inner_px: float,
                        reach_px: float, sectors: int, peak: float, z: float, min_phase: float) -> np.ndarray:
    """Plain per-event version of :func:`ray_glare`; ``events`` [(x, y, ...), ...]."""
    out = np.zeros(len(events), bool)
    if sectors <= 0:
        return out
    far = [all((float(x) - cx) * (float(x) - cx) + (float(y) - cy) * (float(y) - cy) >= inner_px * inner_px
               for cx, cy in centres) for x, y, *_ in events]
    for cx, cy in centres:
        members: dict = {}
        for j, ((x, y, *_), a) in enumerate(zip(events, phase)):
            a = float(a)
            dx, dy = float(x) - cx, float(y) - cy
            if a != 0 and far[j] and dx * dx + dy * dy < reach_px * reach_px:
                k = min(int(_diamond_one(dx, dy) * (sectors / 4.0)), sectors - 1)
                members.setdefault(k, []).append((j, a))
        counts = [len(members.get(k, [])) for k in range(sectors)]
        level = peak * max(float(np.median(counts)), 1.0)
        for k, mem in members.items():
            s = q = 0.0
            for _, a in mem:
                s += a
                q += a * a
            if len(mem) >= level and s >= z * math.sqrt(max(q, 1.0)):
                for j, a in mem:
                    if a > min_phase:
                        out[j] = True
    return out
