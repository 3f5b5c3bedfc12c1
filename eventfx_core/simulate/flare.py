"""Lens flare around a bright light source: images (procedural or Flare7K/Flare7K++),
animated with random motion, scale and flicker.

After E-Deflare (Han et al., arXiv 2512.09016), which animates Flare7K++ images (Dai et al.,
"Flare7K: A Phenomenological Nighttime Flare Removal Dataset", NeurIPS 2022; "Flare7K++",
arXiv 2306.04236) and pushes them through a DVS simulator. The procedural flare has the same
parts: a bright core (the light source, label 3), a glare halo with a faint radial shimmer,
radial streaks and ghost reflections mirrored through the optical centre (all flare, label 2).
Lights flicker at twice the mains frequency (100/120 Hz) or at a PWM rate (LEDs), or not at all.

A configured Flare7K folder that is missing or malformed raises ``ConfigError`` naming the
path; there is never a silent fallback to procedural flare.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError
from .scenes import place_patch


@dataclass
class FlareConfig:
    probability: float = 0.6  # share of sequences with a flare (the rest have none)
    flare7k_path: str = ""  # Flare7K or Flare7K++ root (or a folder with Compound_Flare and
    #                         Light_Source); "" = procedural flares only
    flare7k_probability: float = 1.0  # with a folder: share of flares taken from it
    reflective_probability: float = 0.5  # with a Reflective_Flare folder: share of Flare7K
    #                                      flares that also get a reflective flare image added
    flare7k_gamma: float = 2.2  # Flare7K images are gamma-encoded: linear = (value/255)^gamma
    core_intensity_min: float = 2.0  # light-source peak, in units of the scene level ...
    core_intensity_max: float = 15.0  # ... log-uniform in [min, max]
    core_radius_px_min: float = 1.5  # light-source radius
    core_radius_px_max: float = 5.0
    glare_strength_min: float = 0.1  # glare/streak peak relative to the core peak
    glare_strength_max: float = 0.5
    size_fraction_min: float = 0.3  # flare extent relative to the sensor diagonal
    size_fraction_max: float = 0.9
    ghosts_max: int = 4  # ghost reflections (0..max)
    speed_px_s_max: float = 150.0  # light-source motion across the sensor
    scale_rate_max: float = 0.5  # relative size change per second, uniform in [-max, max]
    mains_probability: float = 0.5  # flicker at 2x mains (100 or 120 Hz) ...
    pwm_probability: float = 0.3  # ... or PWM (rest: steady light)
    pwm_hz_min: float = 80.0  # PWM rates, uniform in [min, max]
    pwm_hz_max: float = 200.0
    flicker_depth_min: float = 0.05  # share of the light that flickers
    flicker_depth_max: float = 0.4
    samples_per_period: int = 6  # frames per flicker period (sets the flare's frame rate)

    def check(self, where: str = "flare") -> None:
        if self.flare7k_gamma <= 0:
            raise ConfigError(f"{where}.flare7k_gamma must be > 0")
        for name in ("probability", "flare7k_probability", "reflective_probability",
                     "mains_probability", "pwm_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{where}.{name} must be in [0, 1]")
        if self.mains_probability + self.pwm_probability > 1:
            raise ConfigError(f"{where}: mains_probability + pwm_probability must be <= 1")
        for lo, hi in (("core_intensity_min", "core_intensity_max"),
                       ("core_radius_px_min", "core_radius_px_max"),
                       ("glare_strength_min", "glare_strength_max"),
                       ("size_fraction_min", "size_fraction_max"), ("pwm_hz_min", "pwm_hz_max"),
                       ("flicker_depth_min", "flicker_depth_max")):
            if not 0 < getattr(self, lo) <= getattr(self, hi):
                raise ConfigError(f"{where}: need 0 < {lo} <= {hi}")
        if self.flicker_depth_max > 1:
            raise ConfigError(f"{where}.flicker_depth_max must be <= 1")
        if self.samples_per_period < 2 or self.ghosts_max < 0:
            raise ConfigError(f"{where}: samples_per_period >= 2 and ghosts_max >= 0")


# ------------------------------------------------------------------ flare images
def procedural_flare(rng, size: int, core_radius: float, glare: float) -> tuple[np.ndarray, np.ndarray]:
    """A (flare, core) pair of size x size float32 images, light source at the centre, core
    peak 1. The flare holds the halo and streaks, not the core."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - c, yy - c
    r = np.sqrt(dx * dx + dy * dy)
    core = np.clip(1.5 - r / core_radius, 0, 1).astype(np.float32) ** 0.5
    halo_w = size * rng.uniform(0.05, 0.2)
    flare = glare * (0.6 * np.exp(-r / halo_w) + 0.4 / (1 + (r / (2 * core_radius)) ** 2))
    ang = np.arctan2(dy, dx)
    for _ in range(int(rng.integers(0, 9))):  # radial streaks
        a0 = rng.uniform(0, np.pi)
        dang = np.abs(np.angle(np.exp(1j * 2 * (ang - a0)))) / 2  # distance to the line, rad
        width = rng.uniform(0.005, 0.03)
        flare += glare * rng.uniform(0.2, 0.8) * np.exp(-(dang / width) ** 2) \
            * np.exp(-r / (size * rng.uniform(0.1, 0.5)))
    flare *= radial_shimmer(rng.uniform(0.9, 1.1, size), ang)
    return flare.astype(np.float32), core.astype(np.float32)


def radial_shimmer(gains: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Flare7K's *shimmer*: faint thin rays radiating from the light (light scattered by dust
    and scratches on the lens), as a gain that depends only on the angle around the source,
    ``gains[k]`` along ray k of ``len(gains)`` evenly spaced rays, linear between them; so the
    texture moves and turns with the light."""
    n = len(gains)
    pos = (np.asarray(angle, np.float64) + np.pi) / (2 * np.pi) * n  # in [0, n]
    return np.interp(pos, np.arange(n + 1), np.r_[gains, gains[0]]).astype(np.float32)


def ghost_patch(rng, radius: int) -> np.ndarray:
    """A ghost reflection: a soft disc or ring, peak 1."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(np.float32)
    r = np.sqrt(xx * xx + yy * yy) / radius
    if rng.random() < 0.5:
        g = np.clip((1 - r) * 4, 0, 1)
    else:
        g = np.exp(-((r - 0.8) / 0.12) ** 2) * (r < 1.1)
    return g.astype(np.float32)


_FLARE_DIRS = (("Scattering_Flare", "Compound_Flare"), ("Flare-R", "Compound_Flare"), ("Compound_Flare",))
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _child(folder: Path, name: str) -> Path | None:
    """A sub-folder by case-insensitive name (Flare7K++ spells both Light_Source and Light_source)."""
    for p in folder.iterdir() if folder.is_dir() else ():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def find_flare7k_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(compound flare, light source) image pairs, matched by file name, under a Flare7K,
    Flare7K++ or Flare-R folder. Raises ``ConfigError`` naming the path if there are none."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"flare.flare7k_path {root}: folder not found")
    bases = [root, root / "Flare7K", root / "Flare7k"]
    pairs: list[tuple[Path, Path]] = []
    seen = []
    for base in bases:
        for parts in _FLARE_DIRS:
            folder = base
            for name in parts:
                folder = _child(folder, name) if folder else None
            if folder is None:
                continue
            light = _child(folder.parent, "Light_Source")
            seen.append(str(folder))
            if light is None:
                raise ConfigError(f"flare.flare7k_path: {folder} has no sibling Light_Source folder")
            lights = {p.stem: p for p in light.iterdir() if p.suffix.lower() in _IMAGE_EXT}
            for img in sorted(folder.iterdir()):
                if img.suffix.lower() in _IMAGE_EXT and img.stem in lights:
                    pairs.append((img, lights[img.stem]))
    if not seen:
        raise ConfigError(f"flare.flare7k_path {root}: no Scattering_Flare/Compound_Flare or "
                          "Flare-R/Compound_Flare folder (expected the Flare7K / Flare7K++ layout)")
    if not pairs:
        raise ConfigError(f"flare.flare7k_path {root}: no compound flare image has a light-source "
                          f"image of the same name in {', '.join(seen)}")
    return sorted(set(pairs))


def _read_grey(path: Path, size: int, gamma: float) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ConfigError(f"flare.flare7k_path: cannot read image {path}")
    side = min(img.shape)  # centre square: Flare7K puts the light source at the centre
    y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    img = (img[y0:y0 + side, x0:x0 + side].astype(np.float32) / 255.0) ** gamma
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def load_flare7k_pair(pair: tuple[Path, Path], size: int, gamma: float = 2.2) -> tuple[np.ndarray, np.ndarray]:
    """(flare, core) linear grey float32 images of size x size, core peak 1 (flare = compound
    minus light source)."""
    compound, light = (_read_grey(p, size, gamma) for p in pair)
    peak = max(float(light.max()), 1e-3)
    return np.clip(compound - light, 0, None) / peak, light / peak


@dataclass
class Flare7kLibrary:
    """The usable images of a Flare7K / Flare7K++ folder."""
    pairs: list  # (compound flare, light source) paths
    reflective: list  # Flare7K/Reflective_Flare images (may be empty)


def find_flare7k(root: str | Path) -> Flare7kLibrary:
    """Pairs (``find_flare7k_pairs``) plus any reflective-flare images; errors name the path."""
    pairs = find_flare7k_pairs(root)
    root = Path(root).expanduser()
    reflective = []
    for base in (root, root / "Flare7K", root / "Flare7k"):
        folder = _child(base, "Reflective_Flare") if base.is_dir() else None
        if folder is not None:
            reflective += sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_EXT)
    return Flare7kLibrary(pairs, sorted(set(reflective)))


# ------------------------------------------------------------------ animation
@dataclass
class Flicker:
    kind: str  # "steady", "mains" or "pwm"
    freq_hz: float
    depth: float
    phase: float
    duty: float = 0.5

    def __call__(self, t_s: np.ndarray | float):
        if self.kind == "mains":  # intensity ~ sin^2 of the line voltage: 2x mains frequency
            return 1 - self.depth * 0.5 * (1 + np.cos(2 * np.pi * self.freq_hz * t_s + self.phase))
        if self.kind == "pwm":
            frac = np.mod(self.freq_hz * t_s + self.phase / (2 * np.pi), 1.0)
            return np.where(frac < self.duty, 1.0, 1.0 - self.depth)
        return np.ones_like(np.asarray(t_s, dtype=float))


class AnimatedFlare:
    """One light source and its flare moving over the sensor. ``render(t_us)`` returns
    (total added light, core light) as (height, width) float32 frames."""

    def __init__(self, cfg: FlareConfig, width: int, height: int, scene_level: float,
                 rng: np.random.Generator, flare7k: Flare7kLibrary | None = None):
        self.width, self.height = width, height
        diag = float(np.hypot(width, height))
        size_frac = rng.uniform(cfg.size_fraction_min, cfg.size_fraction_max)
        self.size = int(2 * round(diag * size_frac / 2) + 1)
        peak = scene_level * float(np.exp(rng.uniform(np.log(cfg.core_intensity_min), np.log(cfg.core_intensity_max))))
        core_r = float(rng.uniform(cfg.core_radius_px_min, cfg.core_radius_px_max))
        use_f7k = flare7k is not None and bool(flare7k.pairs) and rng.random() < cfg.flare7k_probability
        if use_f7k:
            pair = flare7k.pairs[int(rng.integers(len(flare7k.pairs)))]
            flare, core = load_flare7k_pair(pair, self.size, cfg.flare7k_gamma)
            self.source = f"flare7k:{pair[0].name}"
            if flare7k.reflective and rng.random() < cfg.reflective_probability:
                ref = flare7k.reflective[int(rng.integers(len(flare7k.reflective)))]
                core_peak = max(float(core.max()), 1e-3)  # 1: the pair is in core-peak units
                flare = flare + _read_grey(ref, self.size, cfg.flare7k_gamma) / core_peak
                self.source += f"+{ref.name}"
        else:
            glare = float(rng.uniform(cfg.glare_strength_min, cfg.glare_strength_max))
            flare, core = procedural_flare(rng, self.size, core_r, glare)
            self.source = "procedural"
        self.flare_img, self.core_img = flare * peak, core * peak
        self.ghosts = []
        for _ in range(int(rng.integers(0, cfg.ghosts_max + 1))):
            g = ghost_patch(rng, int(rng.integers(3, max(4, int(diag * 0.06)))))
            self.ghosts.append((g * peak * float(rng.uniform(0.02, 0.15)), float(rng.uniform(-1.2, 0.8))))
        self.pos0 = rng.uniform([0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height])
        ang = rng.uniform(0, 2 * np.pi)
        self.velocity = rng.uniform(0, cfg.speed_px_s_max) * np.array([np.cos(ang), np.sin(ang)])
        self.scale_rate = float(rng.uniform(-1, 1) * cfg.scale_rate_max)
        self.rotation_deg_s = float(rng.uniform(-30, 30))
        u = rng.random()
        depth = float(rng.uniform(cfg.flicker_depth_min, cfg.flicker_depth_max))
        phase = float(rng.uniform(0, 2 * np.pi))
        if u < cfg.mains_probability:
            self.flicker = Flicker("mains", float(rng.choice([100.0, 120.0])), depth, phase)
        elif u < cfg.mains_probability + cfg.pwm_probability:
            self.flicker = Flicker("pwm", float(rng.uniform(cfg.pwm_hz_min, cfg.pwm_hz_max)), depth,
                                   phase, float(rng.uniform(0.2, 0.8)))
        else:
            self.flicker = Flicker("steady", 0.0, 0.0, 0.0)
        self.peak = peak

    def frame_rate_hz(self, cfg: FlareConfig, base_hz: float) -> float:
        return max(base_hz, self.flicker.freq_hz * cfg.samples_per_period)

    def render(self, t_us: float) -> tuple[np.ndarray, np.ndarray]:
        s = t_us * 1e-6
        pos = self.pos0 + self.velocity * s
        scale = max(0.2, 1 + self.scale_rate * s)
        c = (self.size - 1) / 2
        M = cv2.getRotationMatrix2D((c, c), self.rotation_deg_s * s, scale)
        M[:, 2] += pos - c
        wh = (self.width, self.height)
        flare = cv2.warpAffine(self.flare_img, M, wh, flags=cv2.INTER_LINEAR)
        core = cv2.warpAffine(self.core_img, M, wh, flags=cv2.INTER_LINEAR)
        centre = np.array([self.width / 2, self.height / 2])
        for g, k in self.ghosts:  # ghosts sit on the line through the source and the centre
            gp = centre + k * (pos - centre)
            r = g.shape[0] // 2
            placed = place_patch(g, gp[0] - r, gp[1] - r, self.width, self.height)
            if placed is not None:
                rows, cols, img = placed
                flare[rows, cols] += img
        f = float(self.flicker(s))
        return (flare + core) * f, core * f

    def describe(self) -> dict:
        return dict(source=self.source, flicker=self.flicker.kind, flicker_hz=self.flicker.freq_hz,
                    flicker_depth=self.flicker.depth, peak=self.peak, size_px=self.size,
                    ghosts=len(self.ghosts), speed_px_s=float(np.hypot(*self.velocity)),
                    pos0=self.pos0.tolist(), velocity_px_s=self.velocity.tolist(),
                    scale_rate=self.scale_rate)
