"""A stochastic DVS pixel model: intensity frames with time stamps -> events with their cause.

After DVS-Voltmeter (Lin, Ma, Guo & Wen, "DVS-Voltmeter: Stochastic Process-based Event
Simulator for Dynamic Vision Sensors", ECCV 2022): each pixel's voltage change since its last
event is a Brownian motion with drift

    mu      = k1 * (dL/dt) / (L + k2) + k4 + k5 * L
    sigma^2 = k3 * sqrt(L) / (L + k2) + k6

and an event fires when the voltage first reaches the ON threshold (or minus the OFF
threshold); the crossing time is drawn from the inverse-Gaussian first-passage distribution.
Between two frames L changes linearly, so the photocurrent term integrates exactly to
k1 * (ln(L1 + k2) - ln(L0 + k2)) / dt. From v2e (Hu, Liu & Delbruck, "v2e: From Video Frames
to Realistic DVS Events", CVPRW 2021): Gaussian per-pixel threshold mismatch and a
refractory period during which the pixel is held in reset.

Each event carries the cause given for its pixel and frame interval (``labels``), so the
simulator's output is labelled without any guesswork. Leak and shot noise are not drawn from
k4/k5 (default 0) but added by ``noise.py`` as labelled noise events at rates in Hz per pixel.

Between frames the voltage advances by its drift only; diffusion enters through the crossing
times (pixels more than 6 standard deviations from a threshold skip the draw). The random
numbers are counter-based (``rng.py``): the output depends only on the seed, never on buffer
sizes, and the numba kernel matches the Python reference ``simulate_interval_reference``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from ..errors import ConfigError
from ..events import Events
from .rng import normal_nb, normal_py, seed64, uniform_nb, uniform_py, wald_nb, wald_py


@dataclass
class DvsConfig:
    k1: float = 1.0  # photocurrent gain: 1 -> the voltage is the change of ln(L + k2)
    k2: float = 0.02  # dark offset in scene intensity units (scenes span about 0.02..1)
    k3: float = 2e-3  # photon-noise diffusion (1/s); jitters crossing times of moving edges
    k4: float = 0.0  # constant drift (1/s); 0: leak events come labelled from noise.py
    k5: float = 0.0  # intensity-proportional drift (1/s); 0 for the same reason
    k6: float = 1e-4  # intensity-independent diffusion (1/s)
    threshold_on: float = 0.25  # mean ON contrast threshold (log-intensity units)
    threshold_off: float = 0.25  # mean OFF contrast threshold
    threshold_sigma: float = 0.03  # per-pixel threshold mismatch, Gaussian std (v2e: 0.03)
    threshold_min: float = 0.05  # mismatched thresholds are clipped to at least this
    refractory_us: float = 500.0  # pixel held in reset after an event (v2e default 0.5 ms)
    max_events_per_interval: int = 64  # per pixel and frame interval; bounds a burst

    def check(self, where: str = "dvs") -> None:
        for name in ("k2", "threshold_on", "threshold_off", "threshold_min"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}.{name} must be > 0")
        for name in ("k3", "k6", "threshold_sigma", "refractory_us"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be >= 0")
        if self.max_events_per_interval < 1:
            raise ConfigError(f"{where}.max_events_per_interval must be >= 1")


# ------------------------------------------------------------------ one pixel, one interval
# The kernel and its reference share this contract: pixels [start, npix) of one frame interval
# [t0, t1) (seconds); v and t_ready (per-pixel state) are updated in place; events are written
# to out_* from index n. The kernel stops before a pixel whose worst case would overflow the
# buffers and returns (next pixel, n); the caller grows the buffers and calls again.
@numba.njit(cache=True, error_model="numpy")
def simulate_interval_kernel(L0, L1, lnL0, lnL1, t0, t1, v, t_ready, c_on, c_off, cause,
                             k1, k2, k3, k4, k5, k6, refractory, max_ev, key, interval,
                             start, n, out_t, out_i, out_p, out_c):
    dt = t1 - t0
    inv_dt = 1.0 / dt
    cap = out_t.shape[0]
    npix = L0.shape[0]
    # sqrt(L)/(L + k2) peaks at 1/(2 sqrt(k2)): a bound on the diffusion of every pixel, so a
    # pixel that is far from both thresholds is skipped before any sqrt or division.
    far = 6.0 * math.sqrt((k3 * 0.5 / math.sqrt(k2) + k6) * dt)
    for i in range(start, npix):
        if n + max_ev > cap:
            return i, n
        mu = k1 * (lnL1[i] - lnL0[i]) * inv_dt + k4
        lm = 0.5 * (L0[i] + L1[i])
        if k5 != 0.0:
            mu += k5 * lm
        if t_ready[i] <= t0:
            gap = c_on[i] - v[i] if mu >= 0.0 else c_off[i] + v[i]
            if gap - abs(mu) * dt > far:
                v[i] += mu * dt
                continue
        var = k3 * math.sqrt(lm) / (lm + k2) + k6
        t = t0
        if t_ready[i] > t:
            t = t_ready[i]
            if t >= t1:
                v[i] = 0.0
                continue
            v[i] = 0.0  # held in reset until t_ready
        vi = v[i]
        m = abs(mu)
        draw = 0
        ne = 0
        while ne < max_ev:
            rem = t1 - t
            a = c_on[i] - vi if mu >= 0.0 else c_off[i] + vi
            if a - m * rem > 6.0 * math.sqrt(var * rem):
                vi += mu * rem
                break
            if a <= 0.0:
                tau = 0.0  # parked exactly on the threshold: fires now
            elif var <= 0.0:
                tau = a / m
            else:
                mean = a / max(m, 1e-12)
                z = normal_nb(key, i, interval, draw)
                u = uniform_nb(key, i, interval, draw + 2)
                draw += 3
                tau = wald_nb(mean, a * a / var, z, u)
            if tau >= rem:
                vi += mu * rem
                break
            t += tau
            out_t[n] = t
            out_i[n] = i
            out_p[n] = 1 if mu >= 0.0 else 0
            out_c[n] = cause[i]
            n += 1
            ne += 1
            vi = 0.0
            t_ready[i] = t + refractory
            t += refractory
            if t >= t1:
                break
        if vi > c_on[i]:
            vi = c_on[i]
        elif vi < -c_off[i]:
            vi = -c_off[i]
        v[i] = vi
    return npix, n


def simulate_interval_reference(L0, L1, lnL0, lnL1, t0, t1, v, t_ready, c_on, c_off, cause,
                                k1, k2, k3, k4, k5, k6, refractory, max_ev, key, interval):
    """Plain per-pixel Python version of ``simulate_interval_kernel`` (the test oracle).

    Returns lists (t seconds, pixel, polarity, cause); updates ``v`` and ``t_ready`` in place.
    """
    out = ([], [], [], [])
    dt = t1 - t0
    inv_dt = 1.0 / dt
    far = 6.0 * math.sqrt((k3 * 0.5 / math.sqrt(k2) + k6) * dt)
    for i in range(len(L0)):
        lm = 0.5 * (float(L0[i]) + float(L1[i]))
        mu = k1 * (float(lnL1[i]) - float(lnL0[i])) * inv_dt + k4 + k5 * lm
        if t_ready[i] <= t0:
            gap = c_on[i] - v[i] if mu >= 0.0 else c_off[i] + v[i]
            if gap - abs(mu) * dt > far:
                v[i] += mu * dt
                continue
        var = k3 * math.sqrt(lm) / (lm + k2) + k6
        t = t0
        if t_ready[i] > t:
            t = float(t_ready[i])
            v[i] = 0.0
            if t >= t1:
                continue
        vi = float(v[i])
        m = abs(mu)
        draw = ne = 0
        while ne < max_ev:
            rem = t1 - t
            a = c_on[i] - vi if mu >= 0.0 else c_off[i] + vi
            if a - m * rem > 6.0 * math.sqrt(var * rem):
                vi += mu * rem
                break
            if a <= 0.0:
                tau = 0.0
            elif var <= 0.0:
                tau = a / m
            else:
                z = normal_py(key, i, interval, draw)
                u = uniform_py(key, i, interval, draw + 2)
                draw += 3
                tau = wald_py(a / max(m, 1e-12), a * a / var, z, u)
            if tau >= rem:
                vi += mu * rem
                break
            t += tau
            for lst, val in zip(out, (t, i, 1 if mu >= 0.0 else 0, int(cause[i]))):
                lst.append(val)
            ne += 1
            vi = 0.0
            t_ready[i] = t + refractory
            t += refractory
            if t >= t1:
                break
        v[i] = min(max(vi, -float(c_off[i])), float(c_on[i]))
    return out


# ------------------------------------------------------------------ the simulator
class DvsSimulator:
    """Feed frames in time order with ``start`` then ``step``; each step returns the events
    of the interval since the previous frame as (t_us int64, pixel int64, p uint8, cause uint8),
    in kernel order (sort with ``sort_events``)."""

    def __init__(self, cfg: DvsConfig, width: int, height: int, seed: int):
        self.cfg, self.width, self.height = cfg, int(width), int(height)
        npix = self.width * self.height
        rng = np.random.default_rng([int(seed), 0xD5])
        self.c_on = np.maximum(rng.normal(cfg.threshold_on, cfg.threshold_sigma, npix),
                               cfg.threshold_min)
        self.c_off = np.maximum(rng.normal(cfg.threshold_off, cfg.threshold_sigma, npix),
                                cfg.threshold_min)
        self.key = np.uint64(seed64(seed))
        self.v = np.zeros(npix)
        self.t_ready = np.full(npix, -np.inf)
        self.interval = 0
        self._L = self._lnL = None
        self._t = 0.0
        self._uniform_cause: dict[int, np.ndarray] = {}
        cap = max(4096, npix // 4)
        self._buf = (np.empty(cap), np.empty(cap, np.int64), np.empty(cap, np.uint8),
                     np.empty(cap, np.uint8))

    def _prepare(self, frame):
        L = np.ascontiguousarray(frame, dtype=np.float32).reshape(-1)
        if L.size != self.width * self.height:
            raise ValueError(f"frame has {L.size} pixels, sensor has {self.width}x{self.height}")
        L = np.maximum(L, np.float32(0.0))
        return L, np.log(L + np.float32(self.cfg.k2))

    def start(self, frame: np.ndarray, t_us: float) -> None:
        """The first frame: sets the pixels' reference level; no events."""
        self._L, self._lnL = self._prepare(frame)
        self._t = float(t_us) * 1e-6

    def step(self, frame: np.ndarray, t_us: float, cause) -> tuple[np.ndarray, ...]:
        """Events between the previous frame and ``frame`` (at ``t_us``), each labelled with
        ``cause`` (a scalar or an (height, width) array for the pixels' causes)."""
        if self._L is None:
            raise RuntimeError("DvsSimulator.step before start")
        L1, lnL1 = self._prepare(frame)
        t1 = float(t_us) * 1e-6
        if t1 <= self._t:
            raise ValueError(f"frame time {t_us} us does not increase")
        if np.isscalar(cause):  # one label for every pixel: reuse one array per label
            cause_arr = self._uniform_cause.get(int(cause))
            if cause_arr is None:
                cause_arr = self._uniform_cause[int(cause)] = np.full(L1.size, cause, np.uint8)
        else:
            cause_arr = np.ascontiguousarray(np.broadcast_to(np.asarray(cause, np.uint8),
                                                             (self.height, self.width))).reshape(-1)
        c = self.cfg
        start, n = 0, 0
        while True:
            bt, bi, bp, bc = self._buf
            start, n = simulate_interval_kernel(
                self._L, L1, self._lnL, lnL1, self._t, t1, self.v, self.t_ready, self.c_on,
                self.c_off, cause_arr, c.k1, c.k2, c.k3, c.k4, c.k5, c.k6, c.refractory_us * 1e-6,
                c.max_events_per_interval, self.key, self.interval, start, n, bt, bi, bp, bc)
            if start >= L1.size:
                break
            grow = 2 * len(bt) + c.max_events_per_interval
            self._buf = tuple(np.concatenate([b[:n], np.empty(grow - n, b.dtype)]) for b in self._buf)
        self._L, self._lnL, self._t = L1, lnL1, t1
        self.interval += 1
        bt, bi, bp, bc = self._buf
        return (np.rint(bt[:n] * 1e6).astype(np.int64), bi[:n].copy(), bp[:n].copy(), bc[:n].copy())


def sort_events(t, pixel, p, label, width: int, height: int) -> tuple[Events, np.ndarray]:
    """Time-ordered ``Events`` plus labels; ties broken by pixel index (deterministic)."""
    order = np.lexsort((pixel, t))
    pix = pixel[order]
    ev = Events.from_arrays(t[order], pix % width, pix // width, p[order], width, height)
    return ev, np.ascontiguousarray(label[order], dtype=np.uint8)


def simulate_frames(frames, times_us, cfg: DvsConfig, seed: int, causes=None) -> tuple[Events, np.ndarray]:
    """Convenience: a (T, H, W) stack of intensity frames at ``times_us`` -> (Events, labels).

    ``causes`` is None (all events label 0), a scalar, or a per-frame sequence of scalars or
    (H, W) label images; the label of an interval is taken from its end frame.
    """
    frames = np.asarray(frames)
    T, H, W = frames.shape
    sim = DvsSimulator(cfg, W, H, seed)
    sim.start(frames[0], times_us[0])
    parts = []
    for k in range(1, T):
        cause = 0 if causes is None else (causes if np.isscalar(causes) else causes[k])
        parts.append(sim.step(frames[k], times_us[k], cause))
    cat = [np.concatenate([p[j] for p in parts]) if parts else np.empty(0) for j in range(4)]
    return sort_events(cat[0].astype(np.int64), cat[1].astype(np.int64), cat[2], cat[3], W, H)
