"""Fit the noise model of one camera from its own dark or static recording, as a params overlay.

A dark (lens capped) or static (nothing moves, steady light) recording holds only the sensor's
noise: background activity and hot pixels (Guo and Delbruck, "Low Cost and Latency Event Camera
Background Activity Denoising", TPAMI 2022, section III; libcaer's ``hotPixelLearn`` mutes the
pixels that fire more than a count in a learning time). From it:

  * the per-pixel rate map (events per second of each pixel);
  * hot pixels: pixels firing more than ``hot_factor`` times the background rate, with a count
    that a Poisson pixel at the background rate reaches with probability below ``significance``
    / pixels (Bonferroni: a short recording of pure uniform noise calls no pixel hot, except with
    probability about ``significance``); the background rate is the mean rate of the other
    pixels, so the two are found together (iterated to a fixed point);
  * the mean background rate r (Hz per pixel, hot pixels excluded).

The overlay it writes sets ``hot_pixel.muted_pixels`` to the hot pixels (muted from the first
event, where the streaming rate rule needs a learning window) and ``stcf.time_window_us`` so
that a noise event finds as many noise neighbours in the window as with the base config at the
rate it was chosen for: ``window = base window x reference_rate_hz / r`` (the expected number
of noise neighbours, 8 r window, is then the same; k stays), clipped to 5-100 ms, the range
that TPAMI 2022 sweeps. The shipped 50 ms was chosen on ``eventfx realbench``'s tune split,
whose injected noise is 1-5 Hz per pixel: ``reference_rate_hz`` = 3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import EventfxError
from .events import Events

WINDOW_RANGE_US = (5_000, 100_000)


@dataclass
class CalibrateConfig:
    hot_factor: float = 10.0  # hot: rate above this many times the background rate
    significance: float = 0.01  # ...and a count that chance reaches less often than this (whole sensor)
    reference_rate_hz: float = 3.0  # noise rate the base stcf window was chosen for (realbench tune
    #                                 split: 1-5 Hz/px injected)


@dataclass
class NoiseCalibration:
    width: int
    height: int
    seconds: float  # span of the recording fitted
    events: int
    rate_map: np.ndarray  # float32[height, width], Hz
    hot: np.ndarray  # bool[height, width]
    background_hz: float  # mean rate of the pixels that are not hot

    @property
    def hot_pixels(self) -> list[tuple[int, int]]:
        ys, xs = np.nonzero(self.hot)
        return list(zip(xs.tolist(), ys.tolist()))

    @property
    def hot_event_share(self) -> float:
        total = float(self.rate_map.sum())
        return float(self.rate_map[self.hot].sum() / total) if total > 0 else 0.0

    def stcf_window_us(self, base_window_us: int, cfg: CalibrateConfig) -> int:
        if self.background_hz <= 0:
            return WINDOW_RANGE_US[1]
        w = base_window_us * cfg.reference_rate_hz / self.background_hz
        return int(round(min(max(w, WINDOW_RANGE_US[0]), WINDOW_RANGE_US[1])))

    def overlay(self, base_window_us: int, cfg: CalibrateConfig) -> dict:
        """The ``ros__parameters`` this calibration sets (nested, as in a params file)."""
        flat = [v for xy in self.hot_pixels for v in xy]
        return {"hot_pixel": {"muted_pixels": flat if flat else [""]},  # [""]: ROS 2's empty list
                "stcf": {"time_window_us": self.stcf_window_us(base_window_us, cfg)}}


def poisson_count_above(mean: float, p: float) -> int:
    """The least count n with P(N >= n) < p for N ~ Poisson(mean) (log-space terms: no underflow)."""
    below = 0.0  # P(N < n)
    n = 0
    while 1.0 - below >= p and n < mean + 60 * math.sqrt(mean) + 100:
        below += math.exp(-mean + n * math.log(mean) - math.lgamma(n + 1)) if mean > 0 else float(n == 0)
        n += 1
    return n


def fit(events: Events, cfg: CalibrateConfig | None = None) -> NoiseCalibration:
    """The noise model of a dark or static recording. ``EventfxError`` when it cannot be fitted."""
    cfg = cfg or CalibrateConfig()
    if len(events) < 2 or events.duration_us <= 0:
        raise EventfxError("calibrate: the recording has fewer than 2 events or spans no time")
    seconds = events.duration_us * 1e-6
    w, h = events.width, events.height
    counts = np.bincount(events.y.astype(np.int64) * w + events.x, minlength=w * h)
    rate = counts / seconds
    hot = np.zeros(w * h, bool)
    for _ in range(20):  # hot pixels raise the mean: iterate to the fixed point
        background = float(rate[~hot].mean()) if (~hot).any() else 0.0
        least = poisson_count_above(background * seconds, cfg.significance / (w * h))
        new = (rate > cfg.hot_factor * background) & (counts >= least)
        if np.array_equal(new, hot):
            break
        hot = new
    return NoiseCalibration(w, h, seconds, len(events), rate.reshape(h, w).astype(np.float32),
                            hot.reshape(h, w), background)


def overlay_yaml(calib: NoiseCalibration, params: dict, source: str) -> str:
    """The overlay as a ROS 2 params file, with what was fitted in its header comments."""
    import yaml
    head = [f"# eventfx calibrate {source}",
            f"# fitted on {calib.events} events over {calib.seconds:.3f} s, {calib.width}x{calib.height}",
            f"# background rate {calib.background_hz:.4f} Hz/px (hot pixels excluded); "
            f"{int(calib.hot.sum())} hot pixels carry {100 * calib.hot_event_share:.1f} % of the events",
            "# load after the base config: denoise_node --ros-args --params-file config/denoise.yaml "
            "--params-file THIS, or eventfx denoise --params-file THIS"]
    body = yaml.safe_dump({"/**": {"ros__parameters": params}}, default_flow_style=None, width=100,
                          sort_keys=False)
    return "\n".join(head) + "\n" + body
