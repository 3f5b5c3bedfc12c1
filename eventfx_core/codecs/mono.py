"""event_camera_codecs' ``mono`` encoding (deprecated upstream, still in old bags; numba-free).

Semantics as in ros-event-camera/event_camera_codecs ``mono_decoder.h`` / ``mono_encoder.h``.
8 bytes per event, one little-endian uint64: bit 63 = polarity, bits 48-62 = y (15 bit),
bits 32-47 = x (16 bit), bits 0-31 = dt, nanoseconds after the message's ``time_base``
(itself in nanoseconds). Upstream time in ns is ``time_base + dt``; eventfx keeps its floor in
microseconds: ``t_us = (time_base + dt) // 1000``. The encoder writes
``dt = max(0, t_us * 1000 - time_base)``, which decodes back to the same t_us for any
``t_us >= time_base // 1000`` (earlier events, or dt >= 2**32 ns = 4.29 s, raise
``EncodeError``). Upstream writes trigger words in the same layout, indistinguishable from
events, so this encoding carries no triggers. Stateless. The whole decode is one vectorised
numpy expression per field, so no numba loop is needed.
"""
from __future__ import annotations

import numpy as np

from ..events import Events
from .base import (Codec, Decoded, EncodeError, Triggers, check_events_for_encoding, no_triggers,
                   ns_base_us, payload_words)

MAX_X = 0xFFFF  # 16-bit x field
MAX_Y = 0x7FFF  # 15-bit y field
MAX_DT_NS = (1 << 32) - 1  # 32-bit offset field


class MonoDecoder(Codec):
    """``mono`` decoder (stateless)."""

    encoding = "mono"

    def decode(self, payload, time_base: int = 0) -> Decoded:
        words = payload_words(payload, 8, self.encoding)
        tb_us, tb_ns = ns_base_us(time_base)
        x = ((words >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.uint16)
        y = ((words >> np.uint64(48)) & np.uint64(0x7FFF)).astype(np.uint16)
        inside = (x < self.width) & (y < self.height)
        n_oor = int(words.size - np.count_nonzero(inside))
        if n_oor:
            words, x, y = words[inside], x[inside], y[inside]
        dt = (words & np.uint64(0xFFFFFFFF)).astype(np.int64)
        t = tb_us + (tb_ns + dt) // 1000
        p = (words >> np.uint64(63)).astype(np.uint8)
        return Decoded(Events(t, x, y, p, self.width, self.height), Triggers.empty(), n_oor, 0)


class MonoEncoder(Codec):
    """``mono`` encoder (stateless)."""

    encoding = "mono"

    def encode(self, events: Events, triggers: Triggers | None = None, time_base: int = 0) -> bytes:
        no_triggers(triggers, self.encoding)
        check_events_for_encoding(events, self.encoding, MAX_X, MAX_Y)
        if len(events) == 0:
            return b""
        tb_us, _ = ns_base_us(time_base, EncodeError)
        if events.t.min() < tb_us:
            i = int(np.argmin(events.t))
            raise EncodeError(f"mono: event {i} at t={events.t[i]} us is before the time_base "
                              f"({time_base} ns)")
        dt = np.maximum(0, (events.t - tb_us) * 1000 - (int(time_base) % 1000))
        if dt.max() > MAX_DT_NS:
            i = int(np.argmax(dt > MAX_DT_NS))
            raise EncodeError(f"mono: event {i} is {dt[i]} ns after the time_base, more than "
                              f"the 32-bit offset holds ({MAX_DT_NS} ns)")
        word = ((events.p.astype(np.uint64) << np.uint64(63))
                | (events.y.astype(np.uint64) << np.uint64(48))
                | (events.x.astype(np.uint64) << np.uint64(32)) | dt.astype(np.uint64))
        return word.astype("<u8").tobytes()
