"""Throughput and per-message latency of every stage, measured in one run.

Each stage runs on the same events cut into the same messages; events/s is events divided
by the total time spent in the stage's calls (the pipeline's closing ``flush`` included, which
decides what it still holds), latency is the wall time of one call (one message); events per CPU second divides by the process's CPU time (all threads) in those calls,
which other jobs on the cores change far less than the wall time. Every stage sees all events
(in the pipeline a later stage sees only what the earlier ones kept, which is why ``pipeline``
can be faster than its slowest stage).
dv-processing's BackgroundActivityNoiseFilter runs on the same messages when it is installed;
its figure excludes the conversion into its ``EventStore`` (done before the clock starts).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..events import Events, concat


@dataclass
class StageTiming:
    events: int
    seconds: float
    latencies_s: list[float]
    cpu_seconds: float = float("nan")  # CPU time of the whole process (all its threads) in the calls

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    def row(self) -> dict:
        lat = np.asarray(self.latencies_s) * 1e3
        return {"events_per_s": self.events_per_s,
                # events per CPU second: what the calls cost, whatever else shares the cores
                "events_per_cpu_s": self.events / self.cpu_seconds if self.cpu_seconds > 0 else float("nan"),
                "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else 0.0,
                "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else 0.0,
                "events": self.events, "messages": len(self.latencies_s)}


def synthetic_stream(seed: int = 0, width: int = 640, height: int = 480, duration_us: int = 500_000,
                     signal_rate: float = 4e6, noise_rate: float = 2e6) -> Events:
    """A fixed benchmark stream: bars sweeping across the sensor (signal) plus uniform
    background activity (noise), ``signal_rate``/``noise_rate`` events per second."""
    rng = np.random.default_rng(seed)
    n_sig = int(signal_rate * duration_us * 1e-6)
    n_noise = int(noise_rate * duration_us * 1e-6)
    t_sig = np.sort(rng.integers(0, duration_us, n_sig))
    bars = 8
    bar = rng.integers(0, bars, n_sig)
    speed = width / (duration_us * 1e-6) * 0.8  # px/s
    x_sig = (bar * width / bars + speed * t_sig * 1e-6 + rng.normal(0, 1.0, n_sig)) % width
    y_sig = rng.integers(0, height, n_sig)
    p_sig = (bar % 2).astype(np.uint8)
    t_n = rng.integers(0, duration_us, n_noise)
    t = np.concatenate([t_sig, t_n])
    order = np.argsort(t, kind="stable")
    x = np.concatenate([x_sig.astype(np.int64), rng.integers(0, width, n_noise)])[order]
    y = np.concatenate([y_sig, rng.integers(0, height, n_noise)])[order]
    p = np.concatenate([p_sig, rng.integers(0, 2, n_noise)])[order]
    return Events.from_arrays(t[order], x, y, p, width, height)


def cut_messages(ev: Events, message_us: int) -> list[Events]:
    """Cut a stream into messages of ``message_us`` microseconds (as drivers do)."""
    if len(ev) == 0:
        return []
    edges = np.arange(ev.t[0], ev.t[-1] + message_us, message_us)
    idx = np.searchsorted(ev.t, edges[1:], side="left")
    bounds = [0, *idx.tolist()]
    return [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def time_calls(messages: list[Events], fn: Callable[[Events], object]) -> StageTiming:
    """Wall time of ``fn`` on each message, and the process's CPU time over all of them
    (callers warm up and reset state beforehand)."""
    lat = []
    total = 0
    cpu0 = time.process_time()
    for m in messages:
        t0 = time.perf_counter()
        fn(m)
        lat.append(time.perf_counter() - t0)
        total += len(m)
    return StageTiming(total, float(np.sum(lat)), lat, time.process_time() - cpu0)


def dv_processing_baf(messages: list[Events], window_us: int) -> StageTiming | None:
    """dv-processing's BackgroundActivityNoiseFilter on the same messages, or None."""
    try:
        import datetime

        import dv_processing as dv
    except ImportError:
        return None
    ev0 = messages[0]
    from ..evaluate.methods import dv_store

    stores = [dv_store(m) for m in messages]  # converted before the clock starts
    filt = dv.noise.BackgroundActivityNoiseFilter((ev0.width, ev0.height),
                                                  datetime.timedelta(microseconds=window_us))
    lat = []
    total = 0
    cpu0 = time.process_time()
    for s in stores:
        t0 = time.perf_counter()
        filt.accept(s)
        filt.generateEvents()
        lat.append(time.perf_counter() - t0)
        total += s.size()
    return StageTiming(total, float(np.sum(lat)), lat, time.process_time() - cpu0)


def run_bench(messages: list[Events], config_path: str | Path | None = None,
              include_dv: bool = True) -> dict[str, dict]:
    """Time features, every registered stage (with the config's settings, else its defaults),
    the config's whole pipeline, and dv-processing's BAF. Returns ``{stage: row}``."""
    from ..pipeline import Pipeline
    from ..pipeline_config import load_denoise_config
    from ..stages import REGISTRY, WindowedStage, stage_class

    events = concat(messages)
    warm = events[: min(len(events), 20_000)]
    sensor = events.sensor_size
    cfg = load_denoise_config(config_path)
    rows: dict[str, dict] = {}

    from ..denoiser.features import FeatureExtractor
    from ..denoiser.checkpoint import load_checkpoint, resolve_checkpoint_path

    # the features the configured denoiser checkpoint was trained on (its Mamba stage computes these)
    mamba_cfg = cfg.pipeline.stage_configs.get("mamba") or stage_class("mamba").Config()
    feature_cfg = load_checkpoint(resolve_checkpoint_path(mamba_cfg.checkpoint, cfg.base_dir)).feature_config
    fx = FeatureExtractor(feature_cfg, *sensor)
    fx.extract(warm)
    fx.reset()
    rows["features"] = time_calls(messages, fx.extract).row()

    skipped: dict[str, str] = {}
    for name in REGISTRY:
        stage_cfg = cfg.pipeline.stage_configs.get(name) or stage_class(name).Config()
        try:
            stage = stage_class(name)(stage_cfg, sensor=sensor, device=cfg.pipeline.device,
                                      base_dir=cfg.base_dir)
        except ConfigError as exc:  # e.g. weights not trained yet: say so, measure the rest
            skipped[name] = str(exc)
            continue
        call = stage.push if isinstance(stage, WindowedStage) else stage.process
        call(warm)
        stage.reset()
        rows[name] = time_calls(messages, call).row()

    if include_dv:
        window = int(getattr(cfg.pipeline.stage_configs.get("baf") or stage_class("baf").Config(),
                             "time_window_us", 2000))
        dv_row = dv_processing_baf(messages, window)
        if dv_row is not None:
            rows["dv_processing_baf"] = dv_row.row()

    pipe = Pipeline(cfg.pipeline, sensor, cfg.base_dir)
    pipe.push(warm)
    pipe.flush()
    pipe.reset()
    timing = time_calls(messages, lambda m: pipe.push(m))
    # the closing flush decides what is still held (the last deflare window; with threads: 2 the
    # messages still on the second thread): its time counts, as part of the last message's
    t0, cpu0 = time.perf_counter(), time.process_time()
    pipe.flush()
    flush_s = time.perf_counter() - t0
    timing.latencies_s[-1] += flush_s
    timing.seconds += flush_s
    timing.cpu_seconds += time.process_time() - cpu0
    pipe.close()
    rows["pipeline"] = timing.row()
    rows["pipeline"]["stages"] = list(cfg.pipeline.stages)
    rows["pipeline"]["kept_fraction"] = pipe.stats.events_kept / max(pipe.stats.events_in, 1)
    for name, reason in skipped.items():
        rows[name] = {"skipped": reason}
    return rows


def format_table(rows: dict[str, dict], reference: str = "baf") -> str:
    """A plain-text table with ratios against ``reference`` (a classic filter)."""
    ref = rows.get(reference, {}).get("events_per_s")
    dv_ref = rows.get("dv_processing_baf", {}).get("events_per_s")
    head = (f"{'stage':<20} {'M events/s':>11} {'M ev/CPU-s':>11} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'x ' + reference:>9}")
    if dv_ref:
        head += f" {'x dv BAF':>9}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        if "skipped" in r:
            lines.append(f"{name:<20} skipped: {r['skipped']}")
            continue
        eps = r["events_per_s"]
        line = (f"{name:<20} {eps / 1e6:>11.2f} {r.get('events_per_cpu_s', float('nan')) / 1e6:>11.2f} "
                f"{r['latency_p50_ms']:>8.3f} {r['latency_p99_ms']:>8.3f} "
                f"{(eps / ref if ref else float('nan')):>9.3f}")
        if dv_ref:
            line += f" {eps / dv_ref:>9.3f}"
        lines.append(line)
    return "\n".join(lines)

