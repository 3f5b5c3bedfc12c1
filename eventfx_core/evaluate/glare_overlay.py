"""Glare overlays on real recordings: lamps whose glare events are added to a real scene.

Written for the real-scene flare benchmark and independent of the training generator
(``simulate/flare.py`` renders frames through a DVS simulator; this module emits events per
pixel from a closed-form intensity). The glare shapes follow the phenomenology of Flare7K
(Dai et al., "Flare7K: A Phenomenological Nighttime Flare Removal Dataset", NeurIPS 2022): a
point lamp with a glare halo, radial rays, a horizontal streak, and ghost reflections on the
line through the lamp and the optical centre (the sensor centre). The lamp flickers (a raised
cosine at 50, 60, 100 or 120 Hz, or a PWM square wave) or is steady, and is static or moves.

Each pixel of the lamp's reach sees ``log(1 + gain * g(pixel - lamp(t)) * f(t))`` on top of a
unit background (the scene's own light is what the real events already show); an event is
emitted each time that log intensity moves by ``contrast`` from the pixel's last event level
(the DVS model of Lichtsteiner et al., IEEE JSSC 2008), with times interpolated inside the
``step_us`` sampling step. Labels: 1 = lamp core (the light source, to be kept), 2 = glare.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events import Events

CORE, GLARE = 1, 2


@dataclass(frozen=True)
class Lamp:
    x: float  # lamp position at t0 (pixels)
    y: float
    flicker: str = "mains"  # "mains" (raised cosine), "pwm" (square wave) or "steady"
    hz: float = 100.0  # flicker frequency
    depth: float = 0.6  # share of the light that flickers
    duty: float = 0.5  # PWM on share
    vx: float = 0.0  # motion (pixels per second)
    vy: float = 0.0
    gain: float = 8.0  # lamp core brightness over the background
    core_px: float = 2.0  # core radius
    halo_px: float = 12.0  # glare halo scale (e-folding radius)
    halo: float = 0.5  # halo peak relative to the core
    rays: int = 6  # radial rays (0: none)
    ray_px: float = 40.0  # ray length scale
    ray: float = 0.25  # ray strength relative to the core
    streak_px: float = 60.0  # horizontal streak half-length (0: none)
    streak: float = 0.15  # streak strength
    ghosts: tuple[tuple[float, float, float], ...] = ((-0.6, 6.0, 0.04), (0.45, 4.0, 0.05))
    #          (k, radius px, strength): a disc at centre + k (lamp - centre)


TERMS = ("halo", "rays", "streak", "ghosts")  # the glare's parts (the core is the light source)


def light_terms(lamp: Lamp, x: np.ndarray, y: np.ndarray, lx: float, ly: float, cx: float,
                cy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list[np.ndarray]]:
    """(core, halo, rays, streak, [each ghost]): each part's light relative to the core peak at
    pixels (x, y) for a lamp at (lx, ly) and the optical centre (cx, cy); None: the lamp has no
    such part."""
    dx, dy = x - lx, y - ly
    r = np.hypot(dx, dy)
    core = np.clip(1.5 - r / lamp.core_px, 0, 1)
    rays = (lamp.ray * np.abs(np.cos(0.5 * lamp.rays * np.arctan2(dy, dx))) ** 40 * np.exp(-r / lamp.ray_px)
            if lamp.rays else None)
    streak = (lamp.streak * np.exp(-np.abs(dy) / 0.8) * np.exp(-np.abs(dx) / lamp.streak_px)
              if lamp.streak_px > 0 else None)
    ghosts = [strength * np.clip(1.5 - np.hypot(x - (cx + k * (lx - cx)), y - (cy + k * (ly - cy))) / rad, 0, 1)
              for k, rad, strength in lamp.ghosts]
    return core, lamp.halo * np.exp(-r / lamp.halo_px), rays, streak, ghosts


def glare_part(lamp: Lamp, ev: Events, t0: int) -> np.ndarray:
    """int8 per event: the index in ``TERMS`` of the part that gives most of the glare light at its
    pixel at its time (the lamp switched on at ``t0``; the optical centre is the sensor's)."""
    s = (ev.t - t0) * 1e-6
    _, halo, rays, streak, ghosts = light_terms(lamp, ev.x.astype(np.float64), ev.y.astype(np.float64),
                                                lamp.x + lamp.vx * s, lamp.y + lamp.vy * s,
                                                ev.width / 2.0, ev.height / 2.0)
    none = np.full(len(ev), -np.inf)
    parts = [halo, none if rays is None else rays, none if streak is None else streak,
             sum(ghosts) if ghosts else none]
    return np.argmax(np.stack(parts), axis=0).astype(np.int8)


def lamp_gain(lamp: Lamp, x: np.ndarray, y: np.ndarray, lx: float, ly: float, cx: float,
              cy: float) -> tuple[np.ndarray, np.ndarray]:
    """(total light, core light) relative to the core peak at pixels (x, y) for a lamp at
    (lx, ly) and the optical centre (cx, cy): core, halo, rays, streak and ghosts."""
    core, g, rays, streak, ghosts = light_terms(lamp, x, y, lx, ly, cx, cy)
    if rays is not None:
        g = g + rays
    if streak is not None:
        g = g + streak
    for ghost in ghosts:
        g = g + ghost
    return g + core, core


def render_overlay(lamp: Lamp, width: int, height: int, t0: int, t1: int, step_us: int = 200,
                   contrast: float = 0.25, seed: int = 0) -> tuple[Events, np.ndarray]:
    """Glare events of ``lamp`` over ``[t0, t1)`` on a ``width`` x ``height`` sensor, and
    their labels (1 core, 2 glare). Deterministic for a seed (per-pixel threshold jitter)."""
    rng = np.random.default_rng(seed)
    cx, cy = width / 2.0, height / 2.0
    # pixels of interest: those whose glare gain can reach the smallest threshold somewhere
    # on the lamp's path (log1p(gain * g) < 0.05 never fires); the rest cannot fire
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    mask = np.zeros((height, width), bool)
    for s in np.linspace(0.0, (t1 - t0) * 1e-6, 9):
        g = lamp_gain(lamp, xx, yy, lamp.x + lamp.vx * s, lamp.y + lamp.vy * s, cx, cy)[0]
        mask |= lamp.gain * g >= 0.05
    py, px = np.nonzero(mask)
    thr = contrast * (1 + 0.1 * rng.standard_normal(len(px)))  # per-pixel threshold mismatch
    thr = np.maximum(thr, 0.05)
    ts = np.arange(t0, t1 + step_us, step_us, dtype=np.int64)
    out_t, out_i, out_p, out_core = [], [], [], []
    level = None
    prev_l = None
    for t in ts:
        s = (t - t0) * 1e-6
        g, core = lamp_gain(lamp, px, py, lamp.x + lamp.vx * s, lamp.y + lamp.vy * s, cx, cy)
        f = flicker_value(lamp, t * 1e-6)
        log_i = np.log1p(lamp.gain * g * f)
        if level is None:
            level, prev_l = log_i.copy(), log_i
            continue
        n = np.trunc((log_i - level) / thr).astype(np.int64)
        hit = np.flatnonzero(n)
        if len(hit):
            cnt = np.abs(n[hit])
            idx = np.repeat(hit, cnt)
            # times: where the straight line from the previous sample crosses each level
            j = np.concatenate([np.arange(1, c + 1) for c in cnt])
            frac = np.clip(j * thr[idx] / np.maximum(np.abs(log_i[idx] - prev_l[idx]), 1e-9), 0, 1)
            out_t.append((t - step_us + frac * step_us).astype(np.int64))
            out_i.append(idx)
            out_p.append((n[idx] > 0).astype(np.uint8))
            out_core.append(core[idx] > 0.05)
            level[hit] += n[hit] * thr[hit]
        prev_l = log_i
    if not out_t:
        return Events.empty(width, height), np.zeros(0, np.uint8)
    t = np.concatenate(out_t)
    i = np.concatenate(out_i)
    order = np.lexsort((i, t))
    t, i = t[order], i[order]
    p = np.concatenate(out_p)[order]
    lab = np.where(np.concatenate(out_core)[order], CORE, GLARE).astype(np.uint8)
    keep = (t >= t0) & (t < t1)
    ev = Events.from_arrays(t[keep], px[i[keep]], py[i[keep]], p[keep], width, height)
    return ev, lab[keep]


def flicker_value(lamp: Lamp, t_s: float) -> float:
    """The lamp's relative brightness at time ``t_s`` (1 = full)."""
    if lamp.flicker == "steady":
        return 1.0
    phase = (t_s * lamp.hz) % 1.0
    if lamp.flicker == "pwm":
        return 1.0 if phase < lamp.duty else 1.0 - lamp.depth
    return 1.0 - lamp.depth * 0.5 * (1 - np.cos(2 * np.pi * phase))


def overlay(scene: Events, glare: Events, glare_labels: np.ndarray) -> tuple[Events, np.ndarray]:
    """Merge a real scene with overlay events in time order (ties: scene first); labels:
    0 scene, else the overlay's."""
    t = np.concatenate([scene.t, glare.t])
    src = np.concatenate([np.zeros(len(scene), np.uint8), glare_labels.astype(np.uint8)])
    order = np.argsort(t, kind="stable")
    ev = Events.from_arrays(t[order], np.concatenate([scene.x, glare.x])[order],
                            np.concatenate([scene.y, glare.y])[order],
                            np.concatenate([scene.p, glare.p])[order], scene.width, scene.height)
    return ev, src[order]


def standard_lamps(width: int, height: int) -> dict[str, Lamp]:
    """The benchmark's lamps for one sensor: one per flicker kind, static and moving, placed
    off-centre (a quarter of the sensor from a corner) and sized with the sensor."""
    s = np.hypot(width, height) / np.hypot(346, 260)  # sizes scale with the sensor diagonal
    x, y = 0.78 * width, 0.25 * height
    base = dict(halo_px=12.0 * s, ray_px=40.0 * s, streak_px=60.0 * s, core_px=2.0 * s,
                ghosts=((-0.6, 6.0 * s, 0.04), (0.45, 4.0 * s, 0.05)))
    move = dict(vx=-60.0 * s, vy=30.0 * s)
    return {
        "mains_100hz": Lamp(x, y, "mains", 100.0, **base),
        "mains_120hz": Lamp(x, y, "mains", 120.0, **base),
        "mains_50hz": Lamp(x, y, "mains", 50.0, **base),
        "mains_60hz_moving": Lamp(x, y, "mains", 60.0, **base, **move),
        "pwm_150hz": Lamp(x, y, "pwm", 150.0, duty=0.4, **base),
        "pwm_100hz_moving": Lamp(x, y, "pwm", 100.0, duty=0.6, **base, **move),
        "steady_moving": Lamp(x, y, "steady", **base, **move),
    }
