"""``eventfx info PATH``: format, topics, sensor size, event count, duration, mean and peak rate.

The peak rate is the largest event count in one 1 ms bin of event time (``t // 1000``),
reported in events per second; the whole file is streamed once (bounded memory).
"""
from __future__ import annotations

import sys

import numpy as np
from tqdm import tqdm

PEAK_BIN_US = 1000  # bin width of the peak rate (1 ms)


def add_parser(subparsers) -> None:
    from .common import add_input_format, add_quiet, add_salvage, first_paragraph

    p = subparsers.add_parser("info", help="describe an event file (bag, h5, raw, aedat4)",
                              description=first_paragraph(__doc__))
    p.add_argument("path", help="input: ROS 1/2 bag, DSEC events.h5, eventfx archive, .raw, .aedat4")
    p.add_argument("--topic", help="event topic of a bag with several")
    add_input_format(p)
    add_salvage(p)
    add_quiet(p)
    p.set_defaults(func=run)


class RateStats:
    """Event count, time span and peak 1 ms bin count over a stream of packets."""

    def __init__(self):
        self.n = 0
        self.t_min: int | None = None
        self.t_max: int | None = None
        self.bins: dict[int, int] = {}

    def add(self, t: np.ndarray) -> None:
        if len(t) == 0:
            return
        self.n += len(t)
        lo, hi = int(t.min()), int(t.max())
        self.t_min = lo if self.t_min is None else min(self.t_min, lo)
        self.t_max = hi if self.t_max is None else max(self.t_max, hi)
        keys, counts = np.unique(t // PEAK_BIN_US, return_counts=True)
        for k, c in zip(keys.tolist(), counts.tolist()):
            self.bins[k] = self.bins.get(k, 0) + c
        # Bins well before this packet are final: keep only their maximum.
        if len(self.bins) > 100_000:
            cut = int(keys[0]) - 1000
            old = [k for k in self.bins if k < cut]
            best = max(self.bins[k] for k in old) if old else 0
            for k in old:
                del self.bins[k]
            self.bins[cut - 1] = max(best, self.bins.get(cut - 1, 0))

    @property
    def duration_us(self) -> int:
        return 0 if self.t_min is None else self.t_max - self.t_min

    @property
    def peak_per_s(self) -> float:
        return max(self.bins.values()) * 1e6 / PEAK_BIN_US if self.bins else 0.0


def run(args) -> int:
    from ..io import Passthrough, open_source

    src = open_source(args.path, topic=args.topic, format=args.input_format, salvage=args.salvage)
    stats = RateStats()
    n_packets = n_bad = n_trig = 0
    try:
        bar = tqdm(total=getattr(src, "num_packets", None), unit="pkt", desc="info",
                   file=sys.stderr, disable=args.quiet)
        for item in src:
            if isinstance(item, Passthrough):
                continue
            bar.update(1)
            n_packets += 1
            if item.error is not None:
                n_bad += 1
                tqdm.write(f"eventfx: warning: {item.error}", file=sys.stderr)
                continue
            stats.add(item.events.t)
            if item.decoded is not None:
                n_trig += len(item.decoded.triggers)
        bar.close()
        lines = [f"file:        {args.path}", f"format:      {src.format}"]
        if hasattr(src, "topics"):
            lines.append("topics:")
            for topic, msgtype, count in src.topics():
                mark = "  <- events" if topic == src.topic else ""
                lines.append(f"  {topic}  {msgtype}  {count} messages{mark}")
    finally:
        src.close()
    w, h = src.sensor_size or (0, 0)
    dur = stats.duration_us
    mean = stats.n / (dur / 1e6) if dur > 0 else 0.0
    lines += [f"sensor:      {w} x {h}",
              f"packets:     {n_packets}" + (f" ({n_bad} undecodable)" if n_bad else ""),
              f"events:      {stats.n:,}" + (f" (+ {n_trig} trigger edges)" if n_trig else ""),
              f"time:        {stats.t_min} .. {stats.t_max} us" if stats.n else "time:        -",
              f"duration:    {dur / 1e6:.6f} s",
              f"mean rate:   {mean / 1e6:.3f} M events/s",
              f"peak rate:   {stats.peak_per_s / 1e6:.3f} M events/s (busiest 1 ms bin)"]
    print("\n".join(lines))
    return 0
