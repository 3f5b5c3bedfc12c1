"""Procedural scenes: a textured canvas with bars, edges and discs under random camera
motion, plus independently moving objects, rendered as linear intensity frames.

The frames go through ``dvs.DvsSimulator``; every event they cause is signal (label 0).
Recorded backgrounds (real event files) are read by ``background.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError


@dataclass
class SceneConfig:
    intensity_min: float = 0.04  # darkest mean scene level (linear units; 1 = bright)
    intensity_max: float = 0.8  # brightest mean scene level (log-uniform in between)
    contrast_min: float = 0.3  # texture contrast: intensities span level * [1-c, 1+c] ...
    contrast_max: float = 0.9  # ... with c uniform in [min, max]
    shapes_min: int = 4  # bars, edges and discs painted per sensor-sized area
    shapes_max: int = 30
    speed_px_s_max: float = 250.0  # camera pan speed is uniform in [0, max] pixels/s
    static_probability: float = 0.15  # share of sequences with a still camera
    rotation_deg_s_max: float = 20.0  # camera roll rate is uniform in [-max, max] deg/s
    objects_max: int = 3  # independently moving objects (0..max)
    object_speed_px_s_max: float = 400.0  # their speed, uniform in [50, max] pixels/s

    def check(self, where: str = "scene") -> None:
        if not 0 < self.intensity_min <= self.intensity_max:
            raise ConfigError(f"{where}: need 0 < intensity_min <= intensity_max")
        if not 0 <= self.contrast_min <= self.contrast_max < 1:
            raise ConfigError(f"{where}: need 0 <= contrast_min <= contrast_max < 1")
        if not 0 <= self.shapes_min <= self.shapes_max:
            raise ConfigError(f"{where}: need 0 <= shapes_min <= shapes_max")
        if not 0 <= self.static_probability <= 1:
            raise ConfigError(f"{where}.static_probability must be in [0, 1]")
        if self.objects_max < 0 or self.speed_px_s_max < 0 or self.object_speed_px_s_max < 50:
            raise ConfigError(f"{where}: objects_max, speed_px_s_max >= 0; object_speed_px_s_max >= 50")


def _smooth_noise(rng, h, w, scale):
    small = rng.random((max(2, h // scale), max(2, w // scale))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _paint_shapes(rng, canvas, n):
    h, w = canvas.shape
    for _ in range(n):
        value = float(rng.random())
        kind = rng.choice(3, p=[0.55, 0.42, 0.03])  # half-planes are rare: each covers half the canvas
        cx, cy = int(rng.integers(w)), int(rng.integers(h))
        if kind == 0:  # a bar (rotated rectangle)
            size = (float(rng.uniform(4, w / 3)), float(rng.uniform(3, h / 6)))
            box = cv2.boxPoints(((cx, cy), size, float(rng.uniform(0, 180))))
            cv2.fillPoly(canvas, [box.astype(np.int32)], value)
        elif kind == 1:  # a disc
            cv2.circle(canvas, (cx, cy), int(rng.integers(3, max(4, h // 6))), value, -1)
        else:  # a half-plane edge through (cx, cy)
            ang = rng.uniform(0, 2 * np.pi)
            d = np.array([np.cos(ang), np.sin(ang)]) * 4 * (w + h)
            n_ = np.array([-d[1], d[0]])
            pts = np.array([[cx, cy] + d, [cx, cy] - d, [cx, cy] - d + n_, [cx, cy] + d + n_])
            cv2.fillPoly(canvas, [pts.astype(np.int32)], value)


def place_patch(patch: np.ndarray, x: float, y: float, width: int, height: int):
    """``patch`` with its top-left corner at sub-pixel (x, y), as (rows, cols, image) of the part
    that falls on a width x height frame (``None`` if none does). Only the patch's neighbourhood
    is resampled, not the whole frame."""
    ix, iy = int(np.floor(x)), int(np.floor(y))
    ph, pw = patch.shape
    M = np.array([[1.0, 0.0, x - ix], [0.0, 1.0, y - iy]])
    img = cv2.warpAffine(patch, M, (pw + 1, ph + 1), flags=cv2.INTER_LINEAR)
    x0, y0 = max(ix, 0), max(iy, 0)
    x1, y1 = min(ix + pw + 1, width), min(iy + ph + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1), img[y0 - iy:y1 - iy, x0 - ix:x1 - ix]


class ProceduralScene:
    """A random scene; ``render(t_us)`` returns the (height, width) float32 intensity frame."""

    def __init__(self, cfg: SceneConfig, width: int, height: int, duration_us: int,
                 rng: np.random.Generator):
        self.width, self.height = width, height
        level = float(np.exp(rng.uniform(np.log(cfg.intensity_min), np.log(cfg.intensity_max))))
        contrast = float(rng.uniform(cfg.contrast_min, cfg.contrast_max))
        static = rng.random() < cfg.static_probability
        speed = 0.0 if static else float(rng.uniform(0, cfg.speed_px_s_max))
        ang = rng.uniform(0, 2 * np.pi)
        self.velocity = speed * np.array([np.cos(ang), np.sin(ang)])  # px/s
        self.rotation = 0.0 if static else float(rng.uniform(-1, 1) * cfg.rotation_deg_s_max)
        travel = speed * duration_us * 1e-6
        margin = int(np.ceil(travel + 0.3 * max(width, height))) + 8
        ch, cw = height + 2 * margin, width + 2 * margin
        canvas = 0.5 * _smooth_noise(rng, ch, cw, int(rng.integers(8, 64))) \
            + 0.5 * _smooth_noise(rng, ch, cw, int(rng.integers(2, 8)))
        lo, hi = np.percentile(canvas, [2, 98])  # stretch: the sum of two noises bunches at 0.5
        canvas = np.clip((canvas - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
        area = ch * cw / (width * height)  # shapes per sensor-sized area of the canvas
        _paint_shapes(rng, canvas, int(rng.integers(cfg.shapes_min, cfg.shapes_max + 1) * area))
        self.canvas = (level * (1 + contrast * (2 * canvas - 1))).astype(np.float32)
        self.margin = margin
        self.level, self.contrast, self.static = level, contrast, static
        self.objects = []
        for _ in range(int(rng.integers(0, cfg.objects_max + 1))):
            r = int(rng.integers(4, max(5, min(width, height) // 5)))
            patch = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
            if rng.random() < 0.5:
                cv2.circle(patch, (r, r), r, 1.0, -1)
            else:
                cv2.rectangle(patch, (0, r // 2), (2 * r, r + r // 2), 1.0, -1)
            value = float(level * rng.uniform(0.1, 2.0))
            pos = rng.uniform([0, 0], [width, height])
            sp = rng.uniform(50, cfg.object_speed_px_s_max)
            a = rng.uniform(0, 2 * np.pi)
            self.objects.append((patch, value, pos, sp * np.array([np.cos(a), np.sin(a)])))

    def render(self, t_us: float) -> np.ndarray:
        s = t_us * 1e-6
        cx = self.margin + self.width / 2 + self.velocity[0] * s
        cy = self.margin + self.height / 2 + self.velocity[1] * s
        # sensor pixel (u, v) looks at canvas point R(theta) (u - w/2, v - h/2) + (cx, cy)
        th = np.deg2rad(self.rotation * s)
        c, si = np.cos(th), np.sin(th)
        M = np.array([[c, -si, cx - c * self.width / 2 + si * self.height / 2],
                      [si, c, cy - si * self.width / 2 - c * self.height / 2]])
        frame = cv2.warpAffine(self.canvas, M, (self.width, self.height),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        for patch, value, pos, vel in self.objects:
            p = pos + vel * s
            r = patch.shape[0] // 2
            placed = place_patch(patch, p[0] - r, p[1] - r, self.width, self.height)
            if placed is not None:
                rows, cols, mask = placed
                frame[rows, cols] = frame[rows, cols] * (1 - mask) + value * mask
        return frame
