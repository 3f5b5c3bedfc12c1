"""The methods of the real-data benchmark and their parameter sweeps.

Every method maps (events, is_signal) to a ``MethodResult``: the operating points of its sweep
(share of real events kept, share of injected noise removed, settings), its ROC (from a
per-event score where it has one, else the upper hull of its points) and the operating point
of its default settings. Methods:

    pipeline, mamba  an eventfx params file (config/denoise.yaml, config/mamba.yaml) run whole;
                     ROC over its per-event score, default = its keep decisions
    stcf, baf        eventfx's filters (Guo and Delbruck, TPAMI 2022) over a window sweep (STCF:
                     and k = 1..8 via its score, the count of supporting neighbours)
    dv_ba, dv_knoise, dv_fastdecay
                     dv-processing's BackgroundActivityNoiseFilter, KNoiseFilter (Khodamoradi and
                     Kastner, IEEE TETC 2018) and FastDecayNoiseFilter over their parameters
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np

from ...events import Events
from ..methods import PipelineMethod, StageMethod, dv_keep_mask, dv_store
from ..metrics import roc_curve
from .curves import hull, point

WINDOWS_US = (300, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)  # BA / STCF / KNoise sweep
FASTDECAY_HALF_LIFE_US = (1000, 3000, 10_000, 30_000, 100_000)
FASTDECAY_THRESHOLD = (1.0, 2.0, 4.0, 6.0, 10.0, 16.0)
DV_METHODS = ("dv_ba", "dv_knoise", "dv_fastdecay")


@dataclass
class MethodResult:
    name: str
    points: list[dict] = field(default_factory=list)  # {"kept", "removed", "settings"}
    default: dict | None = None  # the operating point of the method's default settings
    roc: tuple[np.ndarray, np.ndarray] | None = None  # (fpr, tpr); fpr = 1 - removed, tpr = kept
    scored: bool = False  # roc from a per-event score (else: hull of the points)

    def finish(self) -> "MethodResult":
        if self.roc is None:
            self.roc = hull(self.points)
        return self


# ---------------------------------------------------------------------------- eventfx
def run_config(name: str, cfg, ev: Events, is_signal: np.ndarray) -> MethodResult:
    """A whole eventfx params file: its keep decisions and its per-event score."""
    keep, score = PipelineMethod(cfg, ev.sensor_size).run(ev)
    fpr, tpr, _ = roc_curve(score, is_signal)
    pt = point(keep, is_signal, {"config": str(cfg.path)})
    return MethodResult(name, [pt], pt, (fpr, tpr), True)


def run_stcf(ev: Events, is_signal: np.ndarray, default_cfg=None) -> MethodResult:
    from ...filters.stcf import SpatioTemporalCorrelationFilter as F
    res = MethodResult("stcf")
    for w in WINDOWS_US:
        _, score = StageMethod("stcf", ev.sensor_size, F.Config(time_window_us=w, k=1)).run(ev)
        support = np.rint(score * 8).astype(np.int64)
        for k in range(1, 9):
            res.points.append(point(support >= k, is_signal, {"time_window_us": w, "k": k}))
    d = default_cfg or F.Config()
    keep, _ = StageMethod("stcf", ev.sensor_size, d).run(ev)
    res.default = point(keep, is_signal, {"time_window_us": d.time_window_us, "k": d.k})
    return res.finish()


def run_baf(ev: Events, is_signal: np.ndarray, default_cfg=None) -> MethodResult:
    from ...filters.baf import BackgroundActivityFilter as F
    res = MethodResult("baf")
    for w in WINDOWS_US:
        keep, _ = StageMethod("baf", ev.sensor_size, F.Config(time_window_us=w)).run(ev)
        res.points.append(point(keep, is_signal, {"time_window_us": w}))
    d = default_cfg or F.Config()
    keep, _ = StageMethod("baf", ev.sensor_size, d).run(ev)
    res.default = point(keep, is_signal, {"time_window_us": d.time_window_us})
    return res.finish()


# ---------------------------------------------------------------------------- dv-processing
class DvRunner:
    """One dv-processing EventStore of a stream, run through many filter settings."""

    def __init__(self, ev: Events):
        import dv_processing as dv
        self.dv, self.ev = dv, ev
        self.store = dv_store(ev)

    def keep(self, make) -> np.ndarray:
        f = make(self.dv.noise, (self.ev.width, self.ev.height))
        f.accept(self.store)
        return dv_keep_mask(self.ev, f.generateEvents().numpy(), "realbench")


def _us(v: int) -> datetime.timedelta:
    return datetime.timedelta(microseconds=int(v))


def run_dv(ev: Events, is_signal: np.ndarray, runner: DvRunner | None = None) -> dict[str, MethodResult]:
    """dv-processing's three noise filters over their parameter ranges (defaults: theirs)."""
    runner = runner or DvRunner(ev)
    out = {}
    ba = MethodResult("dv_ba")
    for w in WINDOWS_US:
        ba.points.append(point(runner.keep(lambda n, r: n.BackgroundActivityNoiseFilter(
            r, backgroundActivityDuration=_us(w))), is_signal, {"duration_us": w}))
    ba.default = next(p for p in ba.points if p["settings"]["duration_us"] == 2000)
    out["dv_ba"] = ba.finish()
    kn = MethodResult("dv_knoise")
    for w in WINDOWS_US:
        kn.points.append(point(runner.keep(lambda n, r: n.KNoiseFilter(r, timeDelta=_us(w))),
                               is_signal, {"time_delta_us": w}))
    kn.default = next(p for p in kn.points if p["settings"]["time_delta_us"] == 1000)
    out["dv_knoise"] = kn.finish()
    fd = MethodResult("dv_fastdecay")
    for h in FASTDECAY_HALF_LIFE_US:
        for th in FASTDECAY_THRESHOLD:
            fd.points.append(point(runner.keep(lambda n, r: n.FastDecayNoiseFilter(
                r, halfLife=_us(h), subdivisionFactor=4, noiseThreshold=th)), is_signal,
                {"half_life_us": h, "noise_threshold": th}))
    theirs = {"half_life_us": 10_000, "noise_threshold": 6.0}  # dv-processing's defaults
    fd.default = next(p for p in fd.points if p["settings"] == theirs)
    out["dv_fastdecay"] = fd.finish()
    allp = [dict(p, settings=dict(p["settings"], filter=m)) for m in out.values() for p in m.points]
    out["dv_hull"] = MethodResult("dv_hull", allp).finish()
    return out
