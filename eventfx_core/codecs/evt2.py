"""Prophesee EVT 2.0: 32-bit little-endian words, one event per word (decode only, numba).

Format: Prophesee, "EVT 2.0 Format", docs.prophesee.ai/stable/data/encoding_formats/evt2.html.
The top 4 bits of a word are its type:

    0x0 CD_OFF / 0x1 CD_ON  time LSBs (bits 22-27), x (bits 11-21), y (bits 0-10)
    0x8 EVT_TIME_HIGH       time bits 6-33 (bits 0-27)
    0xA EXT_TRIGGER         time LSBs (bits 22-27), channel id (bits 8-12), value (bit 0)
    0xE OTHERS, 0xF CONTINUED: ignored
    any other type: DecodeError naming the byte offset

Time: ``t_us = rollovers * 2**34 + (time_high << 6) + lsb``: the sensor's 34-bit microsecond
counter (wraps every 4.77 h) unwrapped into a monotone int64 clock; a TIME_HIGH smaller than
the previous one counts as a wrap. ``time_base`` is ignored. Events (and triggers) before the
stream's first TIME_HIGH have no time and are dropped (events counted in ``n_before_time``).
The decoder carries the time high and wrap count across packets.
"""
from __future__ import annotations

import numba
import numpy as np

from .base import PropheseeDecoder

WRAP_US = 1 << 34  # the 34-bit time counter wraps every 4.77 hours


@numba.njit(cache=True, error_model="numpy")
def _scan(words):
    """(events at most, trigger words, index of the first undefined word or -1)."""
    n_ev = 0
    n_tr = 0
    for i in range(words.size):
        code = np.int64(words[i]) >> 28
        if code <= 1:
            n_ev += 1
        elif code == 0xA:
            n_tr += 1
        elif code != 0x8 and code != 0xE and code != 0xF:
            return n_ev, n_tr, i
    return n_ev, n_tr, -1


@numba.njit(cache=True, error_model="numpy")
def _decode(words, width, height, state, t, x, y, p, tr_t, tr_id, tr_val):
    """state = [time high in us incl. wraps, valid]; returns (n, n_trig, n_oor, n_before)."""
    high = state[0]
    valid = state[1]
    n = 0
    n_tr = 0
    n_oor = 0
    n_before = 0
    for i in range(words.size):
        w = np.int64(words[i])
        code = w >> 28
        if code == 0x8:
            h = (w & 0x0FFFFFFF) << 6
            if valid and h < (high & (WRAP_US - 1)):
                high += WRAP_US
            high = (high & ~np.int64(WRAP_US - 1)) | h
            valid = 1
        elif code <= 1:
            if not valid:
                n_before += 1
                continue
            ex = (w >> 11) & 0x7FF
            ey = w & 0x7FF
            if ex < width and ey < height:
                t[n] = high | ((w >> 22) & 0x3F)
                x[n] = ex
                y[n] = ey
                p[n] = code
                n += 1
            else:
                n_oor += 1
        elif code == 0xA and valid:
            tr_t[n_tr] = high | ((w >> 22) & 0x3F)
            tr_id[n_tr] = (w >> 8) & 0x1F
            tr_val[n_tr] = w & 1
            n_tr += 1
    state[0] = high
    state[1] = valid
    return n, n_tr, n_oor, n_before


class Evt2Decoder(PropheseeDecoder):
    """Stateful EVT 2.0 decoder (time high and wraps carry across packets)."""

    encoding = "evt2"
    word_bytes = 4  # one 32-bit word per event
    state_slots = 2  # _decode's state: [time high in us incl. wraps, valid]
    _count = staticmethod(_scan)
    _kernel = staticmethod(_decode)
