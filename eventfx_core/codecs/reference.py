"""Plain per-word Python decoders: the test oracle for the numba decoders.

Written straight from the word tables in each codec's module docstring, one word at a time,
with no shared code with the fast paths beyond ``payload_words`` (byte checks) and the
result types. Slow (about 1 M words/s); use only in tests.
"""
from __future__ import annotations

import numpy as np

from ..errors import DecodeError
from ..events import Events
from .base import Decoded, Triggers, payload_words


class _Ref:
    word_bytes = 2

    def __init__(self, encoding: str, width: int, height: int):
        self.encoding, self.width, self.height = encoding, int(width), int(height)
        self.reset()

    def reset(self) -> None:
        self.s = self.initial_state()

    def decode(self, payload, time_base: int = 0) -> Decoded:
        words = [int(w) for w in payload_words(payload, self.word_bytes, self.encoding)]
        s = dict(self.s)  # commit the state only when the whole payload decodes
        out = {"ev": [], "tr": [], "oor": 0, "before": 0}
        for i, w in enumerate(words):
            self.word(i, w, s, out, int(time_base))
        self.s = s
        ev = out["ev"]
        events = Events.from_arrays([e[0] for e in ev], [e[1] for e in ev], [e[2] for e in ev],
                                    np.array([e[3] for e in ev], np.uint8), self.width, self.height)
        tr = out["tr"]
        trig = Triggers.from_arrays([a[0] for a in tr], [a[1] for a in tr], [a[2] for a in tr])
        return Decoded(events, trig, out["oor"], out["before"])

    def emit(self, out, t, x, y, p):
        if x < self.width and y < self.height:
            out["ev"].append((t, x, y, p))
        else:
            out["oor"] += 1

    def bad(self, i, w, kind):
        raise DecodeError(f"{self.encoding}: undefined word type {kind} (word 0x{w:X}) "
                          f"at byte offset {i * self.word_bytes}")


class Evt3Reference(_Ref):
    word_bytes = 2

    def initial_state(self):
        return dict(high=0, low=0, valid=False, seen_high=False, y=0, base=0, pol=0)

    def word(self, i, w, s, out, time_base):
        code, v = w >> 12, w & 0xFFF
        if code in (0x1, 0x9, 0xB, 0xC, 0xD):
            self.bad(i, w, hex(code))
        if code == 0x8:
            last = (s["high"] >> 12) % 4096
            if v < last and last - v > 10:
                s["high"] += 1 << 24
            s["high"] = (s["high"] >> 24 << 24) + (v << 12)
            s["seen_high"] = True
            return
        if code == 0x6:
            s["low"] = v
            s["valid"] = s["valid"] or s["seen_high"]
            return
        n_bits = {0x2: 1, 0x4: bin(v).count("1"), 0x5: bin(v & 0xFF).count("1")}.get(code, 0)
        if not s["valid"]:
            out["before"] += n_bits
            return
        t = s["high"] + s["low"]
        if code == 0x0:
            s["y"] = v & 0x7FF
        elif code == 0x2:
            self.emit(out, t, v & 0x7FF, s["y"], v >> 11)
        elif code == 0x3:
            s["base"], s["pol"] = v & 0x7FF, v >> 11
        elif code in (0x4, 0x5):
            size = 12 if code == 0x4 else 8
            for k in range(size):
                if v >> k & 1:
                    self.emit(out, t, s["base"] + k, s["y"], s["pol"])
            s["base"] += size
        elif code == 0xA:
            out["tr"].append((t, (v >> 8) & 0xF, v & 1))


class Evt2Reference(_Ref):
    word_bytes = 4

    def initial_state(self):
        return dict(high=0, valid=False)

    def word(self, i, w, s, out, time_base):
        code = w >> 28
        if code not in (0x0, 0x1, 0x8, 0xA, 0xE, 0xF):
            self.bad(i, w, hex(code))
        if code == 0x8:
            h = (w & 0x0FFFFFFF) * 64
            if s["valid"] and h < s["high"] % (1 << 34):
                s["high"] += 1 << 34
            s["high"] = (s["high"] >> 34 << 34) + h
            s["valid"] = True
        elif code in (0x0, 0x1):
            if not s["valid"]:
                out["before"] += 1
            else:
                t = s["high"] + ((w >> 22) & 0x3F)
                self.emit(out, t, (w >> 11) & 0x7FF, w & 0x7FF, code)
        elif code == 0xA and s["valid"]:
            out["tr"].append((s["high"] + ((w >> 22) & 0x3F), (w >> 8) & 0x1F, w & 1))


class LibcaerReference(_Ref):
    word_bytes = 8

    def initial_state(self):
        return {}

    def decode(self, payload, time_base: int = 0):
        self.last, self.offset = 0, 0  # rollover state lives within one packet
        return super().decode(payload, time_base)

    def word(self, i, w, s, out, time_base):
        data, ts = w & 0xFFFFFFFF, w >> 32
        if ts >= 1 << 31:
            raise DecodeError(f"libcaer: negative time stamp {ts - (1 << 32)} in the event at "
                              f"byte offset {8 * i}")
        if ts < self.last:
            self.offset += 1 << 31
        self.last = ts
        self.emit(out, time_base // 1000 + self.offset + ts, (data >> 17) & 0x7FFF,
                  (data >> 2) & 0x7FFF, (data >> 1) & 1)


class LibcaerCmpReference(_Ref):
    word_bytes = 2

    def initial_state(self):
        return dict(x=0, base=0, pol=0)

    def decode(self, payload, time_base: int = 0):
        self.high, self.low = 0, 0  # time restarts in every packet
        return super().decode(payload, time_base)

    def word(self, i, w, s, out, time_base):
        code, v = w >> 12, w & 0xFFF
        t = time_base // 1000 + self.high + self.low
        if code == 0:
            self.high = v << 12
        elif code == 1:
            self.low = v
        elif code == 2:
            s["x"] = v & 0x7FF
        elif code == 3:
            self.emit(out, t, s["x"], v & 0x7FF, v >> 11)
        elif code == 4:
            s["base"], s["pol"] = v & 0x7FF, v >> 11
        elif code == 5:
            for k in range(8):
                if v >> k & 1:
                    self.emit(out, t, s["x"], s["base"] + k, s["pol"])
            s["base"] += 8
        else:
            self.bad(i, w, str(code))


class MonoReference(_Ref):
    word_bytes = 8

    def initial_state(self):
        return {}

    def word(self, i, w, s, out, time_base):
        self.emit(out, (time_base + (w & 0xFFFFFFFF)) // 1000, (w >> 32) & 0xFFFF,
                  (w >> 48) & 0x7FFF, w >> 63)


REFERENCES = {"evt3": Evt3Reference, "evt2": Evt2Reference, "libcaer": LibcaerReference,
              "libcaer_cmp": LibcaerCmpReference, "mono": MonoReference}


def make_reference_decoder(encoding: str, width: int, height: int) -> _Ref:
    """The slow per-word decoder for ``encoding`` (same interface as ``make_decoder``)."""
    return REFERENCES[encoding](encoding, width, height)
