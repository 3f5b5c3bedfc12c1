"""A counter-based random number generator shared by the numba kernels and their references.

Every random number is a pure function of (seed, pixel, interval, draw): the same event comes
out whatever order pixels are processed in, however output buffers are grown, and the plain
Python reference reproduces the fast path bit for bit. The mixer is splitmix64's finaliser
(Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014).
"""
from __future__ import annotations

import math

import numba
import numpy as np

MASK64 = (1 << 64) - 1
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15
_PIXEL = 0xD1B54A32D192ED03
_INTERVAL = 0xABC98388FB8FAC03
_INV_2_53 = 1.0 / 9007199254740992.0


def seed64(seed: int) -> int:
    """Any Python int -> a well-mixed 64-bit key."""
    return mix_py((int(seed) * _GOLDEN) & MASK64)


# ------------------------------------------------------------------ plain Python reference
def mix_py(z: int) -> int:
    z &= MASK64
    z = ((z ^ (z >> 30)) * _M1) & MASK64
    z = ((z ^ (z >> 27)) * _M2) & MASK64
    return z ^ (z >> 31)


def uniform_py(key: int, pixel: int, interval: int, draw: int) -> float:
    """A uniform number in the open interval (0, 1)."""
    z = (key + pixel * _PIXEL + interval * _INTERVAL + draw * _GOLDEN) & MASK64
    return ((mix_py(z) >> 11) + 0.5) * _INV_2_53


def normal_py(key: int, pixel: int, interval: int, draw: int) -> float:
    """A standard normal number from draws ``draw`` and ``draw + 1`` (Box-Muller)."""
    u1 = uniform_py(key, pixel, interval, draw)
    u2 = uniform_py(key, pixel, interval, draw + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def wald_py(mean: float, shape: float, u_normal: float, u_select: float) -> float:
    """Inverse-Gaussian sample (Michael, Schucany & Haas 1976), written without cancellation."""
    y = u_normal * u_normal
    r = mean * y / (2.0 * shape)
    x = mean / (1.0 + r + math.sqrt(r * r + 2.0 * r))
    return x if u_select <= mean / (mean + x) else mean * mean / x


# ------------------------------------------------------------------ numba fast path
@numba.njit(cache=True, error_model="numpy", inline="always")
def mix_nb(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, error_model="numpy", inline="always")
def uniform_nb(key, pixel, interval, draw):
    z = (np.uint64(key) + np.uint64(pixel) * np.uint64(_PIXEL)
         + np.uint64(interval) * np.uint64(_INTERVAL) + np.uint64(draw) * np.uint64(_GOLDEN))
    return (np.float64(mix_nb(z) >> np.uint64(11)) + 0.5) * _INV_2_53


@numba.njit(cache=True, error_model="numpy", inline="always")
def normal_nb(key, pixel, interval, draw):
    u1 = uniform_nb(key, pixel, interval, draw)
    u2 = uniform_nb(key, pixel, interval, draw + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@numba.njit(cache=True, error_model="numpy", inline="always")
def wald_nb(mean, shape, u_normal, u_select):
    y = u_normal * u_normal
    r = mean * y / (2.0 * shape)
    x = mean / (1.0 + r + math.sqrt(r * r + 2.0 * r))
    return x if u_select <= mean / (mean + x) else mean * mean / x
