"""Prophesee EVT 3.0: 16-bit little-endian words, vectorised, stateful (numba fast path).

Format: Prophesee, "EVT 3.0 Format", docs.prophesee.ai/stable/data/encoding_formats/evt3.html;
decoder semantics as in ros-event-camera/event_camera_codecs ``evt3_decoder.h``.
The top 4 bits of a word are its type:

    0x0 EVT_ADDR_Y   y (bits 0-10), system type (bit 11); sets the current row
    0x2 EVT_ADDR_X   x (bits 0-10), polarity (bit 11); one event at (x, current row)
    0x3 VECT_BASE_X  x (bits 0-10), polarity (bit 11); base column for vectors
    0x4 VECT_12      12 valid bits: events at base+i; base += 12
    0x5 VECT_8       8 valid bits: events at base+i; base += 8
    0x6 TIME_LOW     bits 0-11 of the 24-bit time (microseconds)
    0x8 TIME_HIGH    bits 12-23 of the 24-bit time
    0xA EXT_TRIGGER  value (bit 0), channel id (bits 8-11)
    0xE OTHERS, 0x7 CONTINUED_4, 0xF CONTINUED_12: ignored
    0x1, 0x9, 0xB, 0xC, 0xD: not defined -> DecodeError naming the byte offset

Time: ``t_us = rollovers * 2**24 + (time_high << 12) + time_low``, the sensor's microsecond
counter unwrapped into a monotone int64 clock (``time_base`` is ignored, as upstream). The
24-bit counter wraps every 16.777216 s; a TIME_HIGH smaller than the previous one by more
than 10 ticks (41 ms) counts as a wrap, a smaller step is a small backward jump of the sensor
(upstream rule); a restarted stream (seq or stamp back: ``codecs.timeline``) gets a fresh
decoder instead, so a looped bag is not read as a wrap. The clock starts at the decoder's first
TIME_HIGH (fresh decoder: 0 wraps), and words before the first TIME_HIGH + TIME_LOW pair of a
stream are skipped (events counted in ``n_before_time``). The decoder carries time, row and
vector base across packets.

Encoder: each non-empty packet starts with TIME_HIGH, TIME_LOW and ADDR_Y, so it decodes on
its own (absolute time then modulo 2**24); runs of same-time, same-row, same-polarity events
with increasing x use VECT_BASE_X + VECT_12/VECT_8 where that takes fewer words; triggers are
merged in by time (a trigger goes before events of the same time). The encoder remembers the
last TIME_HIGH it wrote and crosses every wrap as TIME_HIGH 0xFFF then 0x000 (a real sensor's
sequence; decoders such as faery only recognise a wrap in that form), so a decoder that reads
every packet of the stream from the start recovers the exact microseconds across any number
of wraps and any gap: ``decode(encode(x)) == x``.
Within a packet, time may go back by at most 10 high ticks (what the decoder accepts as a
backward jump); more raises ``EncodeError``. A packet that starts further back than that starts
a new stream: the encoder forgets its state, as a fresh one (a looped or restarted input, whose
messages' seq or stamp go back, so the reading decoder restarts too: ``codecs.timeline``).
"""
from __future__ import annotations

import numba
import numpy as np

from ..events import Events
from .base import Codec, EncodeError, PropheseeDecoder, Triggers, check_events_for_encoding

MAX_COORD = 2047  # 11-bit x and y fields
WRAP_US = 1 << 24  # the 24-bit time counter wraps every 16.777216 s
BACKJUMP_TICKS = 10  # a TIME_HIGH this much smaller than the last is not a wrap (upstream)

POPCOUNT12 = np.array([bin(i).count("1") for i in range(4096)], dtype=np.int64)

# decoder state slots (int64 array, so numba updates it in place)
S_HIGH, S_LOW, S_VALID, S_SEEN_HIGH, S_Y, S_BASE_X, S_POL = range(7)


@numba.njit(cache=True, error_model="numpy")
def _upper_bounds(words, popcount):
    """Events (at most) and trigger words in a payload; index of the first undefined word."""
    n_ev = 0
    n_tr = 0
    for i in range(words.size):
        w = np.int64(words[i])
        code = w >> 12
        if code == 0x2:
            n_ev += 1
        elif code == 0x4:
            n_ev += popcount[w & 0xFFF]
        elif code == 0x5:
            n_ev += popcount[w & 0xFF]
        elif code == 0xA:
            n_tr += 1
        elif code == 0x1 or code == 0x9 or code == 0xB or code == 0xC or code == 0xD:
            return n_ev, n_tr, i
    return n_ev, n_tr, -1


@numba.njit(cache=True, error_model="numpy")
def _decode(words, width, height, state, t, x, y, p, tr_t, tr_id, tr_val):
    """Decode ``words`` into the preallocated arrays; returns (n, n_trig, n_oor, n_before)."""
    high = state[S_HIGH]
    low = state[S_LOW]
    valid = state[S_VALID]
    seen_high = state[S_SEEN_HIGH]
    ey = state[S_Y]
    base_x = state[S_BASE_X]
    pol = state[S_POL]
    n = 0
    n_tr = 0
    n_oor = 0
    n_before = 0
    for i in range(words.size):
        w = np.int64(words[i])
        code = w >> 12
        if code == 0x8:  # TIME_HIGH
            h = w & 0xFFF
            last = (high >> 12) & 0xFFF
            if h < last and last - h > BACKJUMP_TICKS:
                high += WRAP_US
            high = (high & ~np.int64(0xFFFFFF)) | (h << 12)
            seen_high = 1
        elif code == 0x6:  # TIME_LOW
            low = w & 0xFFF
            if seen_high:
                valid = 1
        elif not valid:  # before the first time reference: skip (count the events)
            if code == 0x2:
                n_before += 1
            elif code == 0x4:
                n_before += POPCOUNT12[w & 0xFFF]
            elif code == 0x5:
                n_before += POPCOUNT12[w & 0xFF]
        elif code == 0x2:  # ADDR_X
            ex = w & 0x7FF
            if ex < width and ey < height:
                t[n] = high | low
                x[n] = ex
                y[n] = ey
                p[n] = (w >> 11) & 1
                n += 1
            else:
                n_oor += 1
        elif code == 0x0:  # ADDR_Y
            ey = w & 0x7FF
        elif code == 0x3:  # VECT_BASE_X
            base_x = w & 0x7FF
            pol = (w >> 11) & 1
        elif code == 0x4 or code == 0x5:  # VECT_12 / VECT_8
            nbits = 12 if code == 0x4 else 8
            bits = w & ((1 << nbits) - 1)
            tt = high | low
            for k in range(nbits):
                if (bits >> k) & 1:
                    ex = base_x + k
                    if ex < width and ey < height:
                        t[n] = tt
                        x[n] = ex
                        y[n] = ey
                        p[n] = pol
                        n += 1
                    else:
                        n_oor += 1
            base_x += nbits
        elif code == 0xA:  # EXT_TRIGGER
            tr_t[n_tr] = high | low
            tr_id[n_tr] = (w >> 8) & 0xF
            tr_val[n_tr] = w & 1
            n_tr += 1
        # 0x7, 0xE, 0xF (CONTINUED_4, OTHERS, CONTINUED_12): nothing to decode
    state[S_HIGH] = high
    state[S_LOW] = low
    state[S_VALID] = valid
    state[S_SEEN_HIGH] = seen_high
    state[S_Y] = ey
    state[S_BASE_X] = base_x
    state[S_POL] = pol
    return n, n_tr, n_oor, n_before


def _count_words(words):
    """``_upper_bounds`` with the popcount table (what ``PropheseeDecoder`` calls)."""
    return _upper_bounds(words, POPCOUNT12)


class Evt3Decoder(PropheseeDecoder):
    """Stateful EVT 3.0 decoder (time wrap, row and vector base carry across packets)."""

    encoding = "evt3"
    word_bytes = 2  # 16-bit words
    state_slots = 7  # _decode's state, slots S_HIGH .. S_POL
    _count = staticmethod(_count_words)
    _kernel = staticmethod(_decode)


@numba.njit(cache=True, error_model="numpy")
def _encode(t, x, y, p, tr_t, tr_id, tr_val, state, out):
    """Write words into ``out``; returns (n_words, error item index or -1).

    ``state[0]`` is the unwrapped high tick (t >> 12) of the last TIME_HIGH written.
    """
    hcur = state[0]
    ne = t.size
    nt = tr_t.size
    n = 0
    i = 0
    j = 0
    first = True
    cur_low = np.int64(-1)
    cur_y = np.int64(-1)
    while i < ne or j < nt:
        is_trig = j < nt and (i >= ne or tr_t[j] <= t[i])
        ti = tr_t[j] if is_trig else t[i]
        h = ti >> 12
        if first or h != hcur:
            d = h - hcur
            if d < 0 and (d < -BACKJUMP_TICKS or (h >> 12) != (hcur >> 12)):
                return n, (ne + j) if is_trig else i
            wrote = False
            while (h >> 12) > (hcur >> 12):  # cross each wrap as 0xFFF -> 0x000
                if (hcur & 0xFFF) != 0xFFF:
                    out[n] = 0x8FFF
                    n += 1
                hcur = ((hcur >> 12) + 1) << 12
                out[n] = 0x8000
                n += 1
                wrote = True
            if h != hcur or not wrote:
                out[n] = 0x8000 | (h & 0xFFF)
                n += 1
            hcur = h
            cur_low = -1
            first = False
        lo = ti & 0xFFF
        if lo != cur_low:
            out[n] = 0x6000 | lo
            n += 1
            cur_low = lo
        if is_trig:
            out[n] = 0xA000 | ((np.int64(tr_id[j]) & 0xF) << 8) | (np.int64(tr_val[j]) & 1)
            n += 1
            j += 1
            continue
        yi = np.int64(y[i])
        if yi != cur_y:
            out[n] = yi
            n += 1
            cur_y = yi
        pi = np.int64(p[i])
        # run: same time, row and polarity, strictly increasing x (decodes in this order)
        r = i + 1
        while r < ne and t[r] == ti and y[r] == y[i] and p[r] == p[i] and x[r] > x[r - 1]:
            r += 1
        m = i
        while m < r:
            base = np.int64(x[m])
            k = m
            while k < r and np.int64(x[k]) < base + 12:
                k += 1
            if k - m < 3:  # a vector would not be shorter than single ADDR_X words
                out[n] = 0x2000 | (pi << 11) | base
                n += 1
                m += 1
                continue
            out[n] = 0x3000 | (pi << 11) | base
            n += 1
            while m < r and np.int64(x[m]) < base + 12:
                bits = np.int64(0)
                while m < r and np.int64(x[m]) < base + 12:
                    bits |= np.int64(1) << (np.int64(x[m]) - base)
                    m += 1
                if bits < 256:
                    out[n] = 0x5000 | bits
                    base += 8
                else:
                    out[n] = 0x4000 | bits
                    base += 12
                n += 1
        i = r
    state[0] = hcur
    return n, -1


class Evt3Encoder(Codec):
    """Stateful EVT 3.0 encoder (remembers the last TIME_HIGH to keep wraps decodable)."""

    encoding = "evt3"
    state_slots = 1  # _encode's state: the unwrapped high tick of the last TIME_HIGH written

    def encode(self, events: Events, triggers: Triggers | None = None, time_base: int = 0) -> bytes:
        check_events_for_encoding(events, self.encoding, MAX_COORD, MAX_COORD)
        trig = triggers if triggers is not None else Triggers.empty()
        if len(trig) and (trig.id.max() > 15 or trig.value.max() > 1):
            raise EncodeError("evt3: trigger id must be 0..15 and value 0 or 1")
        n_items = len(events) + len(trig)
        if n_items == 0:
            return b""
        times = np.concatenate([events.t, trig.t])
        if times.min() < 0 or times.max() >= 1 << 60:
            raise EncodeError(f"evt3: time stamps must be in [0, 2**60) us, got "
                              f"[{times.min()}, {times.max()}]")
        state = self._state.copy()
        if int(times.min() >> 12) < int(state[0]) - BACKJUMP_TICKS:
            state[:] = 0  # the packet starts further back than a jump: a new stream (a restart)
        hcur = int(state[0])
        wraps = int(times.max() >> 24) - (min(hcur, int(times.min() >> 12)) >> 12)
        cap = 5 * n_items + 2 * wraps + 4
        out = np.empty(cap, np.uint16)
        n, bad = _encode(events.t, events.x, events.y, events.p, trig.t, trig.id, trig.value,
                         state, out)
        if bad >= 0:
            what = (f"event {bad}" if bad < len(events) else f"trigger {bad - len(events)}")
            raise EncodeError(f"evt3: {what} at t={times[bad]} us goes back in time further than "
                              f"EVT 3.0 can express ({BACKJUMP_TICKS} x 4096 us within one "
                              f"16.77 s wrap period)")
        self._state = state
        return out[:n].astype("<u2").tobytes()
