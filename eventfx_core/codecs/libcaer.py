"""iniVation ``libcaer`` and ``libcaer_cmp`` encodings of event_camera_msgs (numba fast path).

Semantics as in ros-event-camera/event_camera_codecs (``libcaer_decoder.h``,
``libcaer_cmp_decoder.h``) and libcaer's ``polarity.h``; ``time_base`` is the message's
``time_base`` field in nanoseconds (host time the driver assigns to sensor time 0 plus the
sensor's overflow counts).

``libcaer``: 8 bytes per event, little-endian ``uint32 data, int32 timestamp``:
data bit 0 = valid mark (ignored, as upstream; the encoder sets it), bit 1 = polarity,
bits 2-16 = y, bits 17-31 = x; timestamp = sensor microseconds (31 bit). Within one packet a
timestamp smaller than the one before it is a 2**31 us rollover. Upstream time in ns is
``time_base + (rollovers * 2**31 + timestamp) * 1000``; eventfx keeps the floor of that in
microseconds: ``t_us = time_base // 1000 + rollovers * 2**31 + timestamp``. The encoder writes
``timestamp = (t_us - time_base // 1000) mod 2**31``, so re-encoding with the same time_base
gives the same t_us (and the same ns as upstream: ``t_ns = t_us * 1000 + time_base % 1000``).
A negative timestamp raises ``DecodeError``. The decoder is stateless.

``libcaer_cmp`` (decode only): 16-bit little-endian words, type in the top 4 bits:
0 TIME_HIGH (time bits 12-23), 1 TIME_LOW (bits 0-11), 2 ADDR_X (x, bits 0-10; sets the
column), 3 ADDR_Y (y bits 0-10, polarity bit 11; one event at the current column),
4 VECT_BASE_Y (y, polarity), 5 VECT_8 (8 valid bits: rows base+i; base += 8). Time high and
low restart at 0 in every packet; ``t_us = time_base // 1000 + (time_high << 12 | time_low)``
(the ns definition ``time_base + offset * 1000`` of the Dec 2023 upstream decoder that
recorded the test data; upstream HEAD multiplies ``time_base`` by 1000 once more, which
overflows for ns time bases). Column, vector base and polarity carry across packets. Types
6-15 (VECT_12 is named upstream but never decoded) raise ``DecodeError``.
"""
from __future__ import annotations

import numba
import numpy as np

from ..errors import DecodeError
from ..events import Events
from .base import (Codec, Decoded, EncodeError, Triggers, check_events_for_encoding,
                   event_buffers, no_triggers, ns_base_us, payload_words, undefined_word)

ROLLOVER_US = 1 << 31  # libcaer's 31-bit microsecond timestamp rolls over every 35.8 min
MAX_COORD = 0x7FFF  # 15-bit x and y fields


@numba.njit(cache=True, error_model="numpy")
def _decode_libcaer(words, width, height, tb_us, t, x, y, p):
    """words: uint32 pairs (data, timestamp). Returns (n, n_oor, index of a negative ts or -1)."""
    n = 0
    n_oor = 0
    offset = np.int64(0)
    last = np.int64(0)
    for i in range(words.size // 2):
        data = np.int64(words[2 * i])
        ts = np.int64(words[2 * i + 1])
        if ts >= ROLLOVER_US:  # int32 sign bit set: negative time stamp
            return n, n_oor, i
        if ts < last:
            offset += ROLLOVER_US
        last = ts
        ex = (data >> 17) & 0x7FFF
        ey = (data >> 2) & 0x7FFF
        if ex < width and ey < height:
            t[n] = tb_us + offset + ts
            x[n] = ex
            y[n] = ey
            p[n] = (data >> 1) & 1
            n += 1
        else:
            n_oor += 1
    return n, n_oor, -1


class LibcaerDecoder(Codec):
    """``libcaer`` decoder (stateless: each packet stands alone, as upstream)."""

    encoding = "libcaer"

    def decode(self, payload, time_base: int = 0) -> Decoded:
        words = payload_words(payload, 8, self.encoding).view(np.uint32)
        tb_us, _ = ns_base_us(time_base)
        ev = event_buffers(words.size // 2)
        n, n_oor, bad = _decode_libcaer(words, self.width, self.height, tb_us, *ev)
        if bad >= 0:
            ts = int(words[2 * bad + 1].astype(np.int32))
            raise DecodeError(f"libcaer: negative time stamp {ts} in the event at byte "
                              f"offset {8 * bad}")
        return Decoded(self._events(*ev, n), Triggers.empty(), int(n_oor), 0)


class LibcaerEncoder(Codec):
    """``libcaer`` encoder (stateless)."""

    encoding = "libcaer"

    def encode(self, events: Events, triggers: Triggers | None = None, time_base: int = 0) -> bytes:
        no_triggers(triggers, self.encoding)
        check_events_for_encoding(events, self.encoding, MAX_COORD, MAX_COORD)
        if len(events) == 0:
            return b""
        tb_us, _ = ns_base_us(time_base, EncodeError)
        rel = events.t - tb_us
        # the decoder adds 2**31 at each decrease of the 31-bit stamp: check that this
        # reproduces rel exactly (first stamp in range, time never decreasing)
        epoch = rel >> 31
        ts = rel & (ROLLOVER_US - 1)
        step = np.diff(epoch)
        ok_first = rel[0] >= 0 and epoch[0] == 0
        ok_steps = np.array_equal(step, (np.diff(ts) < 0).astype(np.int64))
        if not (ok_first and ok_steps) or rel.min() < 0:
            raise EncodeError(f"libcaer: event times must be non-decreasing, start within 2**31 us "
                              f"after time_base ({time_base} ns) and step by less than 2**31 us")
        out = np.empty(2 * len(events), "<u4")
        out[0::2] = ((events.x.astype(np.uint32) << 17) | (events.y.astype(np.uint32) << 2)
                     | (events.p.astype(np.uint32) << 1) | 1)
        out[1::2] = ts.astype(np.uint32)
        return out.tobytes()


@numba.njit(cache=True, error_model="numpy")
def _scan_cmp(words):
    """(events at most, index of the first undefined word or -1)."""
    n_ev = 0
    for i in range(words.size):
        w = np.int64(words[i])
        code = w >> 12
        if code == 3:
            n_ev += 1
        elif code == 5:
            for k in range(8):
                n_ev += (w >> k) & 1
        elif code > 5:
            return n_ev, i
    return n_ev, -1


@numba.njit(cache=True, error_model="numpy")
def _decode_cmp(words, width, height, tb_us, state, t, x, y, p):
    """state = [column, vector base row, vector polarity]; returns (n, n_oor)."""
    ex = state[0]
    base_y = state[1]
    pol = state[2]
    high = np.int64(0)
    low = np.int64(0)
    n = 0
    n_oor = 0
    for i in range(words.size):
        w = np.int64(words[i])
        code = w >> 12
        if code == 0:
            high = (w & 0xFFF) << 12
        elif code == 1:
            low = w & 0xFFF
        elif code == 2:
            ex = w & 0x7FF
        elif code == 3:
            ey = w & 0x7FF
            if ex < width and ey < height:
                t[n] = tb_us + (high | low)
                x[n] = ex
                y[n] = ey
                p[n] = (w >> 11) & 1
                n += 1
            else:
                n_oor += 1
        elif code == 4:
            base_y = w & 0x7FF
            pol = (w >> 11) & 1
        elif code == 5:
            for k in range(8):
                if (w >> k) & 1:
                    ey = base_y + k
                    if ex < width and ey < height:
                        t[n] = tb_us + (high | low)
                        x[n] = ex
                        y[n] = ey
                        p[n] = pol
                        n += 1
                    else:
                        n_oor += 1
            base_y += 8
    state[0] = ex
    state[1] = base_y
    state[2] = pol
    return n, n_oor


class LibcaerCmpDecoder(Codec):
    """``libcaer_cmp`` decoder (column and vector base carry across packets, as upstream)."""

    encoding = "libcaer_cmp"
    state_slots = 3  # _decode_cmp's state: [column, vector base row, vector polarity]

    def decode(self, payload, time_base: int = 0) -> Decoded:
        words = payload_words(payload, 2, self.encoding)
        n_ev, bad = _scan_cmp(words)
        if bad >= 0:
            raise undefined_word(self.encoding, words, bad, hex_type=False)
        tb_us, _ = ns_base_us(time_base)
        ev = event_buffers(n_ev)
        state = self._state.copy()
        n, n_oor = _decode_cmp(words, self.width, self.height, tb_us, state, *ev)
        self._state = state
        return Decoded(self._events(*ev, n), Triggers.empty(), int(n_oor), 0)
