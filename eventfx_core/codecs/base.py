"""What every codec shares: the trigger array, the decode result, payload checks, errors.

Time convention of the whole package: ``Events.t`` is int64 microseconds. Each codec's
module docstring states exactly how its wire time (sensor counter, ``time_base`` in ns,
per-event offsets) maps to that clock, and why re-encoding with the same ``time_base``
returns the same microseconds.

Bad input policy (all decoders): a payload that is not a whole number of words, or a word
of a type the format does not define, raises ``DecodeError`` naming the byte offset.
Events whose coordinates fall outside the ``width`` x ``height`` sensor are dropped and
counted in ``Decoded.n_out_of_range`` (the node reports the count); events that arrive
before the stream's first time reference (EVT2/EVT3) are dropped and counted in
``Decoded.n_before_time``. Decoder state is only updated when a payload decodes fully,
so a payload that raises leaves the decoder as it was.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..errors import DecodeError, EventfxError
from ..events import Events


class EncodeError(EventfxError):
    """Events cannot be written in the requested encoding (range, order, or a field it lacks)."""


@dataclass(frozen=True)
class Triggers:
    """External trigger edges, kept apart from the change-detection events."""

    t: np.ndarray  # int64 microseconds, same clock as Events.t
    id: np.ndarray  # uint8 trigger channel
    value: np.ndarray  # uint8 edge: 1 = rising, 0 = falling

    def __post_init__(self):
        if not (len(self.t) == len(self.id) == len(self.value)):
            raise EventfxError(f"trigger fields differ in length: t={len(self.t)} "
                               f"id={len(self.id)} value={len(self.value)}")

    @classmethod
    def from_arrays(cls, t, id, value) -> "Triggers":
        """Cast array-likes into the canonical dtypes (copies where needed)."""
        def cast(a, dt):
            return np.ascontiguousarray(np.asarray(a).reshape(-1), dtype=dt)
        return cls(cast(t, np.int64), cast(id, np.uint8), cast(value, np.uint8))

    @classmethod
    def empty(cls) -> "Triggers":
        return cls(np.empty(0, np.int64), np.empty(0, np.uint8), np.empty(0, np.uint8))

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, index) -> "Triggers":
        return Triggers(self.t[index], self.id[index], self.value[index])

    def equals(self, other: "Triggers") -> bool:
        return (np.array_equal(self.t, other.t) and np.array_equal(self.id, other.id)
                and np.array_equal(self.value, other.value))

    def __repr__(self) -> str:
        return f"Triggers(n={len(self)})"


@dataclass(frozen=True)
class Decoded:
    """What one payload decodes to."""

    events: Events  # change-detection events inside the sensor, t in microseconds
    triggers: Triggers  # external trigger edges (EVT2/EVT3 only; empty otherwise)
    n_out_of_range: int = 0  # events dropped because x >= width or y >= height
    n_before_time: int = 0  # events dropped because no time reference had been seen yet
    restarted: bool = False  # the message stream restarted here (seq/stamp back; codecs.timeline)


def payload_words(payload, word_bytes: int, encoding: str) -> np.ndarray:
    """The payload as little-endian unsigned words (native dtype, for numba).

    Raises ``DecodeError`` if the byte count is not a multiple of ``word_bytes``.
    """
    if isinstance(payload, np.ndarray):
        if payload.dtype != np.uint8:
            raise DecodeError(f"{encoding}: payload array must be uint8, got {payload.dtype}")
        raw = np.ascontiguousarray(payload.reshape(-1))
    else:
        try:
            raw = np.frombuffer(payload, dtype=np.uint8)
        except TypeError as err:
            raise DecodeError(f"{encoding}: payload must be bytes or a uint8 array, "
                              f"got {type(payload).__name__}") from err
    n = raw.size
    if n % word_bytes:
        whole = n - n % word_bytes
        raise DecodeError(f"{encoding}: payload of {n} bytes is not a whole number of "
                          f"{word_bytes}-byte words (partial word at byte offset {whole})")
    dtype = {2: np.uint16, 4: np.uint32, 8: np.uint64}[word_bytes]
    words = raw.view(dtype)
    if sys.byteorder != "little":
        words = words.byteswap()
    if not words.flags.aligned:
        words = words.copy()
    return words


def check_events_for_encoding(ev: Events, encoding: str, max_x: int, max_y: int) -> None:
    """Raise ``EncodeError`` unless every event is inside the sensor and the format's range."""
    if len(ev) == 0:
        return
    bad = (ev.x >= min(ev.width, max_x + 1)) | (ev.y >= min(ev.height, max_y + 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise EncodeError(f"{encoding}: event {i} at (x={ev.x[i]}, y={ev.y[i]}) is outside the "
                          f"{ev.width}x{ev.height} sensor or the format's range "
                          f"(x <= {max_x}, y <= {max_y})")
    if ev.p.max() > 1:
        i = int(np.argmax(ev.p > 1))
        raise EncodeError(f"{encoding}: event {i} has polarity {ev.p[i]}, expected 0 or 1")


def no_triggers(triggers: Triggers | None, encoding: str) -> None:
    """Raise ``EncodeError`` for triggers handed to a format that cannot carry them."""
    if triggers is not None and len(triggers):
        raise EncodeError(f"{encoding}: this encoding cannot carry trigger events "
                          f"({len(triggers)} given)")


def ns_base_us(time_base: int, error: type = DecodeError) -> tuple[int, int]:
    """Split a ``time_base`` in nanoseconds into (whole microseconds, remaining ns)."""
    tb = int(time_base)
    if tb < 0 or tb >= 1 << 64:
        raise error(f"time_base {tb} is outside uint64")
    return tb // 1000, tb % 1000


class Codec:
    """Constructor and ``reset`` every decoder and encoder shares.

    Stateful formats set ``state_slots``: the state carried across packets is one int64 array
    that the numba kernel updates in place (decoders run it on a copy and keep the copy only
    when the payload decodes fully, see the module docstring).
    """

    encoding = ""  # the event_camera_msgs encoding name; set by every subclass
    state_slots = 0  # int64 values carried across packets (0: the format is stateless)

    def __init__(self, width: int, height: int):
        self.width, self.height = int(width), int(height)
        self.reset()

    def reset(self) -> None:
        """Forget everything carried across packets (nothing, for a stateless format)."""
        self._state = np.zeros(self.state_slots, np.int64)

    def _events(self, t, x, y, p, n: int) -> Events:
        """The first ``n`` entries of decode buffers as events on this sensor."""
        return Events(t[:n], x[:n], y[:n], p[:n], self.width, self.height)


def event_buffers(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Uninitialised (t, x, y, p) arrays for at most ``n`` decoded events."""
    return (np.empty(n, np.int64), np.empty(n, np.uint16), np.empty(n, np.uint16),
            np.empty(n, np.uint8))


def trigger_buffers(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uninitialised (t, id, value) arrays for at most ``n`` decoded triggers."""
    return np.empty(n, np.int64), np.empty(n, np.uint8), np.empty(n, np.uint8)


def undefined_word(encoding: str, words: np.ndarray, index: int,
                   hex_type: bool = True) -> DecodeError:
    """The error for word ``index``, whose type (its top 4 bits) the format does not define."""
    size = words.itemsize
    word = int(words[index])
    code = word >> (8 * size - 4)
    kind = f"0x{code:X}" if hex_type else f"{code}"
    return DecodeError(f"{encoding}: undefined word type {kind} (word 0x{word:0{2 * size}X}) "
                       f"at byte offset {size * index}")


class PropheseeDecoder(Codec):
    """``decode`` shared by the Prophesee word formats (EVT 2.0, EVT 3.0).

    A subclass names its word size and two numba kernels, as static methods:
    ``_count(words) -> (events at most, trigger words, index of an undefined word or -1)`` and
    ``_kernel(words, width, height, state, t, x, y, p, tr_t, tr_id, tr_val)
    -> (n events, n triggers, n out of range, n before the first time reference)``.
    ``time_base`` is ignored: these formats carry the sensor's own clock.
    """

    word_bytes = 0  # bytes per word on the wire; set by every subclass

    def decode(self, payload, time_base: int = 0) -> Decoded:
        words = payload_words(payload, self.word_bytes, self.encoding)
        n_ev, n_tr, bad = self._count(words)
        if bad >= 0:
            raise undefined_word(self.encoding, words, bad)
        ev = event_buffers(n_ev)
        tr = trigger_buffers(n_tr)
        state = self._state.copy()
        n, m, n_oor, n_before = self._kernel(words, self.width, self.height, state, *ev, *tr)
        self._state = state
        return Decoded(self._events(*ev, n), Triggers(*(a[:m] for a in tr)), int(n_oor),
                       int(n_before))
