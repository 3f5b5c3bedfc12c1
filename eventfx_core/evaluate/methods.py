"""The cleaners ``eventfx evaluate`` compares, behind one interface: ``run(events) ->
(keep, score)`` over one whole sequence, fed in messages, state reset between sequences.

    registry stage names (hot_pixel, refractory, baf, stcf, mamba, deflare): one stage,
        settings from --config's section for it when present, else its defaults
    pipeline: the whole pipeline of --config (``eventfx_core.pipeline.Pipeline``)
    dv_baf: dv-processing's BackgroundActivityNoiseFilter (when ``dv_processing`` imports)
"""
from __future__ import annotations

import datetime
from pathlib import Path

import numba
import numpy as np

from ..errors import ConfigError, EventfxError
from ..events import Events

MESSAGE_US = 10_000  # evaluation feeds sequences in 10 ms messages, like a driver would


def message_bounds(ev: Events, message_us: int = MESSAGE_US) -> list[tuple[int, int]]:
    """(start, stop) index pairs of consecutive ``message_us`` slices of ``ev`` (non-empty)."""
    if len(ev) == 0:
        return []
    t0 = int(ev.t[0])
    n_msgs = (int(ev.t[-1]) - t0) // message_us + 1
    idx = np.r_[0, np.searchsorted(ev.t, t0 + message_us * np.arange(1, n_msgs + 1))]
    return [(int(a), int(b)) for a, b in zip(idx[:-1], idx[1:]) if b > a]


class StageMethod:
    """One registry stage (event or windowed)."""

    def __init__(self, name: str, sensor, config=None, base_dir: Path | None = None):
        from ..stages import stage_class
        cls = stage_class(name)
        self.name = name
        self.config = config if config is not None else cls.Config()
        self.stage = cls(self.config, sensor=sensor, base_dir=base_dir)

    def describe(self) -> dict:
        """The stage's settings (for the report: which checkpoint, which windows)."""
        import dataclasses
        return {k: str(v) for k, v in dataclasses.asdict(self.config).items()}

    def run(self, ev: Events) -> tuple[np.ndarray, np.ndarray]:
        self.stage.reset()
        keep, score = [], []
        if hasattr(self.stage, "process"):
            for a, b in message_bounds(ev):
                r = self.stage.process(ev[a:b])
                keep.append(np.asarray(r.keep, bool))
                score.append(r.keep.astype(np.float32) if r.score is None else np.asarray(r.score, np.float32))
        else:
            for a, b in message_bounds(ev):
                keep.append(np.asarray(self.stage.push(ev[a:b]), bool))
            keep.append(np.asarray(self.stage.flush(), bool))
            k = np.concatenate(keep) if keep else np.zeros(0, bool)
            return k, k.astype(np.float32)
        k = np.concatenate(keep) if keep else np.zeros(0, bool)
        s = np.concatenate(score) if score else np.zeros(0, np.float32)
        return k, s


class PipelineMethod:
    """The whole configured pipeline."""

    def __init__(self, cfg, sensor):
        from ..pipeline import Pipeline
        self.name = "pipeline"
        self.pipe = Pipeline(cfg.pipeline, sensor=sensor, base_dir=cfg.base_dir)

    def decisions(self, ev: Events) -> list:
        """The pipeline's ``Decision`` of each message of ``ev``, in order (state reset first)."""
        self.pipe.reset()
        decisions = []
        for a, b in message_bounds(ev):
            decisions += self.pipe.push(ev[a:b], tag=a)
        decisions += self.pipe.flush()
        decisions.sort(key=lambda d: d.tag)
        return decisions

    def run(self, ev: Events) -> tuple[np.ndarray, np.ndarray]:
        decisions = self.decisions(ev)
        if not decisions:
            return np.zeros(0, bool), np.zeros(0, np.float32)
        return (np.concatenate([d.keep for d in decisions]).astype(bool),
                np.concatenate([d.score for d in decisions]).astype(np.float32))


def dv_store(ev: Events):
    """A dv-processing ``EventStore`` of ``ev`` (dv_processing imported by the caller)."""
    import dv_processing as dv
    store = dv.EventStore()
    for t, x, y, p in zip(ev.t.tolist(), ev.x.tolist(), ev.y.tolist(), ev.p.tolist()):
        store.push_back(t, x, y, bool(p))
    return store


@numba.njit(cache=True)
def _walk(t, x, y, kt, kx, ky, keep):
    """Mark the events that a filter kept (it returns them in input order): greedy walk."""
    j = 0
    for i in range(t.shape[0]):
        if j < kt.shape[0] and kt[j] == t[i] and kx[j] == x[i] and ky[j] == y[i]:
            keep[i] = True
            j += 1
    return j


def dv_keep_mask(ev: Events, kept, what: str) -> np.ndarray:
    """bool[len(ev)]: which events of ``ev`` a dv-processing filter kept (``kept``: the numpy
    view of its output, which holds the kept events in input order)."""
    keep = np.zeros(len(ev), bool)
    j = _walk(ev.t, ev.x.astype(np.int64), ev.y.astype(np.int64), kept["timestamp"].astype(np.int64),
              kept["x"].astype(np.int64), kept["y"].astype(np.int64), keep)
    if j != len(kept):
        raise EventfxError(f"{what}: dv-processing returned events out of input order")
    return keep


class DvBafMethod:
    """dv-processing's BackgroundActivityNoiseFilter; keep mask recovered by an in-order walk
    (it returns the kept events in input order)."""

    def __init__(self, sensor, window_us: int = 2000):
        import dv_processing  # noqa: F401  (ImportError -> method unavailable)
        self.name = "dv_baf"
        self.sensor, self.window_us = sensor, window_us

    def run(self, ev: Events) -> tuple[np.ndarray, np.ndarray]:
        import dv_processing as dv
        f = dv.noise.BackgroundActivityNoiseFilter(
            tuple(self.sensor), backgroundActivityDuration=datetime.timedelta(microseconds=self.window_us))
        keep = np.zeros(len(ev), bool)
        for a, b in message_bounds(ev):
            f.accept(dv_store(ev[a:b]))
            keep[a:b] = dv_keep_mask(ev[a:b], f.generateEvents().numpy(), "dv_baf")
        return keep, keep.astype(np.float32)


def build_method(name: str, sensor, denoise_cfg=None):
    """A method by name; ``denoise_cfg`` (``pipeline_config.DenoiseConfig``) supplies stage
    settings and the pipeline. Raises ``EventfxError`` if it cannot be built."""
    from ..stages import REGISTRY
    if name == "dv_baf":
        try:
            window = 2000
            if denoise_cfg is not None and "baf" in denoise_cfg.pipeline.stage_configs:
                window = int(denoise_cfg.pipeline.stage_configs["baf"].time_window_us)
            return DvBafMethod(sensor, window)
        except ImportError:
            raise EventfxError("dv_baf: dv_processing is not installed") from None
    if name == "pipeline":
        if denoise_cfg is None:
            raise ConfigError("method 'pipeline' needs --config")
        return PipelineMethod(denoise_cfg, sensor)
    if name not in REGISTRY:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(REGISTRY)}, pipeline, dv_baf")
    cfg = base = None
    if denoise_cfg is not None:
        cfg = denoise_cfg.pipeline.stage_configs.get(name)
        base = denoise_cfg.base_dir
    return StageMethod(name, sensor, cfg, base)
