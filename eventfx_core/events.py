"""The one canonical event array of eventfx.

Every reader, decoder, filter, model and writer speaks ``Events``: four contiguous numpy
arrays of equal length (structure of arrays, so numba and torch take them without copies)
plus the sensor size.

    t  int64   time stamp in microseconds (sensor clock), non-decreasing within a stream
    x  uint16  column, 0 <= x < width
    y  uint16  row,    0 <= y < height
    p  uint8   polarity, 1 = ON (brighter), 0 = OFF (darker)

Nothing here mutates the arrays it is given: constructors copy or cast into new arrays
where the dtype or layout differs, and ``validate`` only reads (the codec tests check every
decoder's output with it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .errors import EventfxError

T_DTYPE = np.dtype(np.int64)
XY_DTYPE = np.dtype(np.uint16)
P_DTYPE = np.dtype(np.uint8)


def _as(a, dtype: np.dtype) -> np.ndarray:
    """A contiguous 1-D array of ``dtype``; a new array whenever a cast or copy is needed."""
    return np.ascontiguousarray(np.asarray(a).reshape(-1), dtype=dtype)


@dataclass(frozen=True)
class Events:
    """A sequence of events from one sensor of ``width`` x ``height`` pixels."""

    t: np.ndarray  # int64 microseconds
    x: np.ndarray  # uint16 column
    y: np.ndarray  # uint16 row
    p: np.ndarray  # uint8 polarity 0/1
    width: int  # sensor columns
    height: int  # sensor rows

    def __post_init__(self):
        n = len(self.t)
        if not (len(self.x) == len(self.y) == len(self.p) == n):
            raise EventfxError(
                f"event fields differ in length: t={n} x={len(self.x)} y={len(self.y)} p={len(self.p)}"
            )

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_arrays(cls, t, x, y, p, width: int, height: int) -> "Events":
        """Cast any array-likes into the canonical dtypes (copies where needed; no validation).

        Polarity is normalised to 0/1: any value > 0 is ON (so -1/1 and 0/1 both work).
        """
        p_arr = np.asarray(p).reshape(-1)
        if p_arr.dtype != P_DTYPE or (p_arr.size and p_arr.max() > 1):
            p_arr = (p_arr > 0).astype(P_DTYPE)
        return cls(_as(t, T_DTYPE), _as(x, XY_DTYPE), _as(y, XY_DTYPE), _as(p_arr, P_DTYPE),
                   int(width), int(height))

    @classmethod
    def empty(cls, width: int, height: int) -> "Events":
        return cls(np.empty(0, T_DTYPE), np.empty(0, XY_DTYPE), np.empty(0, XY_DTYPE),
                   np.empty(0, P_DTYPE), int(width), int(height))

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, index) -> "Events":
        """Select by slice, boolean mask or index array; always returns ``Events``."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        return Events(self.t[index], self.x[index], self.y[index], self.p[index],
                      self.width, self.height)

    @property
    def sensor_size(self) -> tuple[int, int]:
        """(width, height)."""
        return (self.width, self.height)

    @property
    def duration_us(self) -> int:
        return int(self.t[-1] - self.t[0]) if len(self) else 0

    def copy(self) -> "Events":
        return Events(self.t.copy(), self.x.copy(), self.y.copy(), self.p.copy(),
                      self.width, self.height)

    def equals(self, other: "Events") -> bool:
        """Same sensor size and the same events in the same order."""
        return (self.sensor_size == other.sensor_size and len(self) == len(other)
                and np.array_equal(self.t, other.t) and np.array_equal(self.x, other.x)
                and np.array_equal(self.y, other.y) and np.array_equal(self.p, other.p))

    def __repr__(self) -> str:
        span = f", t=[{self.t[0]}..{self.t[-1]}] us" if len(self) else ""
        return f"Events(n={len(self)}, sensor={self.width}x{self.height}{span})"


def concat(parts: Sequence[Events] | Iterable[Events], width: int | None = None,
           height: int | None = None) -> Events:
    """Concatenate event arrays of one sensor (sizes must agree; empty input needs a size)."""
    parts = list(parts)
    if not parts:
        if width is None or height is None:
            raise EventfxError("concat of no event arrays needs a sensor size")
        return Events.empty(width, height)
    w, h = parts[0].sensor_size
    for i, e in enumerate(parts):
        if e.sensor_size != (w, h):
            raise EventfxError(f"concat: part {i} is {e.width}x{e.height}, part 0 is {w}x{h}")
    return Events(np.concatenate([e.t for e in parts]), np.concatenate([e.x for e in parts]),
                  np.concatenate([e.y for e in parts]), np.concatenate([e.p for e in parts]), w, h)


# --------------------------------------------------------------------- validation
def first_out_of_range(ev: Events) -> int:
    """Index of the first event outside the sensor, or -1."""
    bad = (ev.x >= ev.width) | (ev.y >= ev.height)
    return int(np.argmax(bad)) if bad.any() else -1


def first_time_decrease(ev: Events, prev_t: int | None = None) -> int:
    """Index of the first event earlier than the one before it (or than ``prev_t``), or -1."""
    if len(ev) == 0:
        return -1
    if prev_t is not None and ev.t[0] < prev_t:
        return 0
    back = np.diff(ev.t) < 0
    return int(np.argmax(back)) + 1 if back.any() else -1


def require_inside(ev: Events, what: str = "events") -> None:
    """Raise ``EventfxError`` naming the first event outside the sensor."""
    i = first_out_of_range(ev)
    if i >= 0:
        raise EventfxError(f"{what}: event {i} at (x={ev.x[i]}, y={ev.y[i]}) is outside the "
                           f"{ev.width}x{ev.height} sensor")


def validate(ev: Events, *, what: str = "events", check_sorted: bool = True,
             prev_t: int | None = None) -> None:
    """Raise ``EventfxError`` naming the first offending event; never modifies ``ev``."""
    if ev.width <= 0 or ev.height <= 0 or ev.width > 65535 or ev.height > 65535:
        raise EventfxError(f"{what}: invalid sensor size {ev.width}x{ev.height}")
    for name, arr, dt in (("t", ev.t, T_DTYPE), ("x", ev.x, XY_DTYPE), ("y", ev.y, XY_DTYPE),
                          ("p", ev.p, P_DTYPE)):
        if arr.dtype != dt or arr.ndim != 1:
            raise EventfxError(f"{what}: field {name} is {arr.dtype}{arr.shape}, expected 1-D {dt}")
    require_inside(ev, what)
    if ev.p.size and ev.p.max() > 1:
        i = int(np.argmax(ev.p > 1))
        raise EventfxError(f"{what}: event {i} has polarity {ev.p[i]}, expected 0 or 1")
    if check_sorted:
        i = first_time_decrease(ev, prev_t)
        if i >= 0:
            before = prev_t if i == 0 else ev.t[i - 1]
            raise EventfxError(f"{what}: time goes backwards at event {i} ({before} -> {ev.t[i]} us)")


def event_frame(ev: Events) -> np.ndarray:
    """A signed count image (height, width): ON events add 1, OFF events subtract 1."""
    img = np.zeros(ev.height * ev.width, np.int32)
    idx = ev.y.astype(np.int64) * ev.width + ev.x
    np.add.at(img, idx, np.where(ev.p > 0, 1, -1).astype(np.int32))
    return img.reshape(ev.height, ev.width)
