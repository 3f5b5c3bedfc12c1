"""Recorded backgrounds: a random time window of a real recording, cropped to the sensor.

Any file ``eventfx_core.io.open_source`` reads (bags, AEDAT4, raw, DSEC ``events.h5``). All
recorded events are labelled signal, including the recording's own sensor noise: use clean
recordings (e.g. DSEC daytime) or accept that label noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EventfxError
from ..events import Events, concat


@dataclass
class BackgroundConfig:
    recordings: list[str] = field(default_factory=list)  # event files to draw backgrounds from
    recording_probability: float = 0.0  # share of sequences on a recording (rest procedural)
    recorded_intensity: float = 0.3  # assumed scene level of a recording (for flare occlusion)
    max_events_read: int = 20_000_000  # read at most this many events of one recording

    def check(self, where: str = "background") -> None:
        if not 0 <= self.recording_probability <= 1:
            raise ConfigError(f"{where}.recording_probability must be in [0, 1]")
        if self.recording_probability > 0 and not self.recordings:
            raise ConfigError(f"{where}: recording_probability > 0 but no recordings listed")
        if self.recorded_intensity <= 0:
            raise ConfigError(f"{where}.recorded_intensity must be > 0")


def read_recording(path: str | Path, max_events: int) -> Events:
    """All events of a recording (up to ``max_events``), via ``eventfx_core.io``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"background.recordings: {path} not found")
    if path.suffix == ".h5":
        from ..io.dsec import DsecReader, open_h5, is_dsec
        with open_h5(path) as f:
            dsec = is_dsec(f)
        if dsec:
            with DsecReader(path) as r:
                return r.read(0, max_events)
    from ..io import open_source
    parts, n = [], 0
    with open_source(path) as src:
        for pkt in src:
            ev = getattr(pkt, "events", None)
            if ev is None or len(ev) == 0:
                continue
            parts.append(ev)
            n += len(ev)
            if n >= max_events:
                break
    if not parts:
        raise EventfxError(f"background.recordings: {path} has no events")
    return concat(parts)


def recorded_window(ev: Events, width: int, height: int, duration_us: int,
                    rng: np.random.Generator) -> Events:
    """A random ``duration_us`` window, cropped at a random offset to width x height, times
    shifted to start at 0."""
    if ev.width < width or ev.height < height:
        raise ConfigError(f"background recording is {ev.width}x{ev.height}, smaller than the "
                          f"{width}x{height} sensor being generated")
    t0 = int(ev.t[0])
    span = int(ev.t[-1]) - t0
    start = t0 + int(rng.integers(0, max(1, span - duration_us + 1)))
    i0, i1 = np.searchsorted(ev.t, [start, start + duration_us])
    w = ev[i0:i1]
    x0 = int(rng.integers(0, ev.width - width + 1))
    y0 = int(rng.integers(0, ev.height - height + 1))
    inside = (w.x >= x0) & (w.x < x0 + width) & (w.y >= y0) & (w.y < y0 + height)
    w = w[inside]
    return Events.from_arrays(w.t - start, w.x - x0, w.y - y0, w.p, width, height)
