"""exp(-r) for time surfaces, written once and run by both the numba kernel and the reference.

PyPI's llvmlite has no vector math library, so ``math.exp`` costs a libm call per value and was
about a third of the extractor's time. ``decay`` uses a table of exp(-m/8) and a degree-5
Taylor polynomial on the remaining g < 1/8 (relative error < 6e-9, far below float32's 6e-8).
The Python reference calls the same plain function, so both perform the same float64
operations and agree bit for bit.
"""
from __future__ import annotations

import math

import numba
import numpy as np

STEPS = 8  # table points per unit of r
MAX_R = 110.0  # exp(-110) ~ 1.7e-48 rounds to 0 in float32: return 0 from here on
EXP_TABLE = np.array([math.exp(-m / STEPS) for m in range(int(MAX_R) * STEPS + 1)], np.float64)
C2, C3, C4, C5 = 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0


def decay(dt: float, tau: float, table: np.ndarray) -> float:
    """exp(-dt / tau) for dt >= 0 (``table`` is ``EXP_TABLE``)."""
    r = dt / tau
    if r >= MAX_R:
        return 0.0
    m = int(r * STEPS)
    g = r - m * (1.0 / STEPS)
    return table[m] * (1.0 - g * (1.0 - g * (C2 - g * (C3 - g * (C4 - g * C5)))))


decay_jit = numba.njit(cache=True, error_model="numpy", inline="always")(decay)


SQRT_HALF = math.sqrt(0.5)
LN2 = math.log(2.0)
L3, L5, L7, L9, L11 = 1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0, 1.0 / 11.0


def log_ratio(dt: float, cap: float, log_cap: float) -> float:
    """min(1, log1p(dt) / log_cap) for whole-microsecond gaps dt >= 0, 1 from ``cap`` on.

    log1p(dt) = e*ln2 + log(m) with 1 + dt = m * 2^e, m in [sqrt(1/2), sqrt(2)), and
    log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, by its series to s^11 (absolute error
    < 2e-11); exact for integer dt because 1 + dt is then exact.
    """
    if dt >= cap:
        return 1.0
    m, e = math.frexp(1.0 + dt)
    if m < SQRT_HALF:
        m = m * 2.0
        e = e - 1
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    log_m = 2.0 * s * (1.0 + z * (L3 + z * (L5 + z * (L7 + z * (L9 + z * L11)))))
    return min(1.0, (e * LN2 + log_m) / log_cap)


log_ratio_jit = numba.njit(cache=True, error_model="numpy", inline="always")(log_ratio)
