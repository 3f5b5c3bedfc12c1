"""Compile every numba kernel the node and the CLI use, once, into numba's on-disk cache.

    python -m eventfx_core.warmup        # `make setup` runs it; colcon users run it once

The kernels are ``@numba.njit(cache=True)``: compiled on first use (seconds each, 11-15 s in
all for the default stages on a 2-core machine), then loaded from ``__pycache__`` (or
``NUMBA_CACHE_DIR``) by every later process. Run ahead of time, a fresh install's node starts
on loaded kernels. The cache is specific to the machine and to each source file's time stamp,
so it is built where the package is installed, not shipped. torch keeps no cache to build:
the models run eagerly, without ``torch.compile``.

It pushes a dense synthetic stream through every registered stage (the learned stages with
their shipped weights) as EVT 3.0 messages, then decodes and encodes one packet in every
encoding: what a node meets at start-up and on its first messages.
"""
from __future__ import annotations

import sys
import time

import numpy as np

W, H = 64, 48


def _stream(n_msgs: int = 40, per: int = 300, seed: int = 0):
    """``n_msgs`` 1 ms messages of ``per`` events, half in a moving blob (correlated)."""
    from .events import Events

    rng = np.random.default_rng(seed)
    for i in range(n_msgs):
        t = i * 1000 + np.sort(rng.integers(0, 1000, per))
        blob = np.arange(per) % 2 == 0
        x = np.where(blob, (i + rng.integers(0, 4, per)) % W, rng.integers(0, W, per))
        y = np.where(blob, 20 + rng.integers(0, 4, per), rng.integers(0, H, per))
        yield Events.from_arrays(t, x, y, rng.integers(0, 2, per), W, H)


def warm_stages() -> None:
    """Every registered stage, in one pipeline on the default config, through the engine."""
    from .codecs.messages import EVENT_PACKET, TopicCodec, build_message
    from .pipeline_config import load_denoise_config
    from .stages import REGISTRY
    from .stream_engine import StreamEngine

    cfg = load_denoise_config(overrides={"stages": list(REGISTRY)})
    engine = StreamEngine(cfg.pipeline, cfg.base_dir, msgtype=EVENT_PACKET,
                          fallback=list(cfg.node.fallback) or None)
    engine.check()
    codec = TopicCodec(EVENT_PACKET)
    for seq, ev in enumerate(_stream()):
        raw = codec.serialize(build_message(EVENT_PACKET, ev, header_stamp_ns=int(ev.t[0]) * 1000,
                                            seq=seq, encoding="evt3"))
        for d in engine.push_message(raw):
            engine.encode(d)
    for d in engine.flush():
        engine.encode(d)


def warm_codecs() -> None:
    """Decode (and, where the format has an encoder, encode) one packet in every encoding."""
    from .codecs import DECODERS, ENCODERS, make_decoder, make_encoder

    ev = next(_stream(1, 200))
    for encoding in DECODERS:
        payload = b""
        if encoding in ENCODERS:
            payload = make_encoder(encoding, W, H).encode(ev, time_base=0)
        make_decoder(encoding, W, H).decode(payload, time_base=0)


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    warm_codecs()
    warm_stages()
    print(f"eventfx: numba kernels compiled and cached in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
