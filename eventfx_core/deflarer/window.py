"""Cutting a stream into fixed windows aligned to absolute time, whatever the message cut.

Window ``k`` covers ``[k*window_us, (k+1)*window_us)`` of the sensor clock. Events are
buffered; window ``k`` is *closed* as soon as an event at or after its end arrives (time is
non-decreasing), when the stream's clock passes its end (``advance``), or at ``flush``. So the same stream cut into different messages yields the
same windows with the same events, and an event waits at most one window (plus compute)
for its decision.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..events import Events, concat


@dataclass(frozen=True)
class Window:
    index: int  # k: the window covers [k*window_us, (k+1)*window_us)
    start_us: int  # k * window_us
    events: Events  # its events, in arrival order


def window_index(t: np.ndarray, window_us: int) -> np.ndarray:
    """int64 window index of each time stamp (floor division, also for negative times)."""
    return np.floor_divide(np.asarray(t, np.int64), np.int64(window_us))


@dataclass
class WindowBuffer:
    """Buffers events (time non-decreasing) and releases every window that has closed."""

    window_us: int
    sensor: tuple[int, int]  # (width, height)
    _parts: list[Events] = field(default_factory=list)
    _pending: int = 0  # buffered events

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def last_t(self) -> int | None:
        """Time stamp of the newest buffered event (None when empty)."""
        for part in reversed(self._parts):
            if len(part):
                return int(part.t[-1])
        return None

    def push(self, events: Events) -> list[Window]:
        """Add ``events`` (sorted, not earlier than what is buffered); return the windows
        that closed, oldest first. Their events leave the buffer."""
        if len(events):
            self._parts.append(events)
            self._pending += len(events)
        newest = int(events.t[-1]) if len(events) else self.last_t
        return [] if newest is None else self.advance(newest)

    def advance(self, t_us: int) -> list[Window]:
        """Close every buffered window that ends at or before ``t_us``: the stream's clock,
        which runs ahead of the buffered events when earlier stages dropped the events in
        between. Later events are never earlier than ``t_us``, so a closed window is complete."""
        if not self._pending:
            return []
        open_index = int(t_us) // self.window_us
        oldest = next(int(part.t[0]) for part in self._parts if len(part))
        if oldest // self.window_us >= open_index:
            return []  # everything buffered is in the open window: no copy until it closes
        buffered = self._take_all()
        idx = window_index(buffered.t, self.window_us)
        n_closed = int(np.searchsorted(idx, open_index, side="left"))
        if n_closed < len(buffered):
            self._parts = [buffered[n_closed:]]
            self._pending = len(buffered) - n_closed
        return self._split(buffered[:n_closed], idx[:n_closed])

    def flush(self) -> list[Window]:
        """Close every buffered window."""
        buffered = self._take_all()
        return self._split(buffered, window_index(buffered.t, self.window_us))

    def reset(self) -> None:
        self._parts = []
        self._pending = 0

    def _take_all(self) -> Events:
        out = concat(self._parts, *self.sensor) if len(self._parts) != 1 else self._parts[0]
        self._parts, self._pending = [], 0
        return out

    def _split(self, events: Events, idx: np.ndarray) -> list[Window]:
        if not len(events):
            return []
        cuts = np.flatnonzero(np.diff(idx)) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(events)]])
        return [Window(int(idx[a]), int(idx[a]) * self.window_us, events[a:b])
                for a, b in zip(starts.tolist(), ends.tolist())]
