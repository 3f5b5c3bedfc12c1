"""Codec throughput on one core: ``eventfx bench --codecs`` (one JSON line) or
``python -m eventfx_core.bench.codecs [n_events]`` (a table per encoding).

The stream is synthetic but shaped like sensor output: 1280x720, sorted time stamps at about
20 M events/s, a third of the events in short same-time runs on a row (EVT3 vectors), cut
into packets of 50,000 events as a driver would publish them. Each figure is the best of
``repeats`` runs, after one warm-up run that compiles (or loads from cache) the numba code.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from ..events import Events
from ..codecs import make_decoder, make_encoder

WIDTH, HEIGHT = 1280, 720  # an IMX636-class sensor
RATE_EV_PER_US = 20  # about 20 M events/s
PACKET = 50_000  # events per message


def synthetic_stream(n: int, seed: int = 0) -> Events:
    """Sorted events; a third of them in runs of 2..16 neighbours on a row at one time."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, max(n // RATE_EV_PER_US, 1), n))
    x = rng.integers(0, WIDTH - 20, n)
    y = rng.integers(0, HEIGHT, n)
    p = rng.integers(0, 2, n)
    starts = np.arange(0, n - 16, 48)
    for k in range(1, 16):  # runs at every 48th event
        idx = starts + k
        t[idx], y[idx], p[idx], x[idx] = t[starts], y[starts], p[starts], x[starts] + k
    return Events.from_arrays(t, x, y, p, WIDTH, HEIGHT)


def evt2_words(ev: Events) -> bytes:
    """An EVT 2.0 stream for ``ev`` (TIME_HIGH whenever t >> 6 changes), built with numpy."""
    high = ev.t >> 6
    new_high = np.r_[True, high[1:] != high[:-1]]
    cd = ((ev.p.astype(np.uint32) << 28) | ((ev.t & 0x3F).astype(np.uint32) << 22)
          | (ev.x.astype(np.uint32) << 11) | ev.y.astype(np.uint32))
    th = (0x8 << 28) | (high & 0x0FFFFFFF).astype(np.uint32)
    out = np.empty(len(ev) + int(new_high.sum()), np.uint32)
    pos = np.arange(len(ev)) + np.cumsum(new_high)
    out[pos] = cd
    out[pos[new_high] - 1] = th[new_high]
    return out.astype("<u4").tobytes()


def _best(fn, repeats: int) -> float:
    fn()  # warm-up (numba compile or cache load)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(n_events: int = 5_000_000, repeats: int = 3) -> dict:
    """Decode / encode throughput in M events/s per encoding (one core, packets of 50k)."""
    ev = synthetic_stream(n_events)
    cuts = list(range(0, n_events, PACKET)) + [n_events]
    parts = [ev[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    results: dict = {"n_events": n_events, "packet_events": PACKET}
    for encoding in ("evt3", "libcaer", "mono"):
        # libcaer/mono: time_base per packet at its first event, as their drivers do
        bases = [int(part.t[0]) * 1000 if encoding != "evt3" else 0 for part in parts]
        payloads = []

        def encode():
            enc = make_encoder(encoding, WIDTH, HEIGHT)
            payloads[:] = [enc.encode(part, time_base=b) for part, b in zip(parts, bases)]

        def decode():
            dec = make_decoder(encoding, WIDTH, HEIGHT)
            for payload, b in zip(payloads, bases):
                dec.decode(payload, time_base=b)

        t_enc = _best(encode, repeats)
        t_dec = _best(decode, repeats)
        n_bytes = sum(len(p) for p in payloads)
        results[encoding] = {"decode_Mev_s": n_events / t_dec / 1e6,
                             "encode_Mev_s": n_events / t_enc / 1e6,
                             "bytes_per_event": n_bytes / n_events}
    evt2 = [evt2_words(part) for part in parts]

    def decode_evt2():
        dec = make_decoder("evt2", WIDTH, HEIGHT)
        for payload in evt2:
            dec.decode(payload)

    results["evt2"] = {"decode_Mev_s": n_events / _best(decode_evt2, repeats) / 1e6,
                       "bytes_per_event": sum(len(p) for p in evt2) / n_events}
    return results


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 5_000_000
    res = measure(n)
    print(f"{n} events, {WIDTH}x{HEIGHT}, packets of {PACKET}, one core, best of 3:")
    for name, r in res.items():
        if isinstance(r, dict):
            figures = ", ".join(f"{k} {v:.2f}" for k, v in r.items())
            print(f"  {name:8s} {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
