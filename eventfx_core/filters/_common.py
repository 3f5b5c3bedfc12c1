"""What the four classic filters share: the stage shell around a numba kernel.

Every filter keeps per-pixel state across ``process`` calls, so any split of a stream gives
the same decisions. The state arrays are owned here and handed to the filter's kernel; a
kernel resets them itself when an event is earlier than the previous one (time went
backwards), so a reset happens at the same event whatever the split, and returns how many
resets it made. Grids that look at neighbours are padded by one pixel on every side
(index ``(y + 1) * (width + 2) + x + 1``), so the 3x3 block needs no bounds checks.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numba
import numpy as np

from ..config import from_dict
from ..errors import EventfxError
from ..events import Events, require_inside
from ..stages import StageResult

NEVER = -(1 << 61)  # "no event yet": t - NEVER is positive and beyond any window


@numba.njit(cache=True, error_model="numpy")
def padded_index(x, y, width):
    return (np.int64(y) + 1) * (width + 2) + np.int64(x) + 1


class PixelFilter:
    """Stage shell: config, sensor, state allocation, input checks, reset warnings.

    Subclasses set ``name``, ``Config``, ``RUNTIME_PARAMS`` and implement ``_new_state(w, h)``
    (a dict of numpy arrays) and ``_run(events, keep, score) -> resets``.
    """

    name = ""
    Config: type = object
    RUNTIME_PARAMS: tuple[str, ...] = ()

    def __init__(self, config=None, sensor: tuple[int, int] = (640, 480), device: str = "cpu",
                 base_dir: Path | None = None):
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = from_dict(self.Config, config, self.name)
        config.check(self.name)
        self.config = config
        self.device = device  # numba on the CPU whatever is asked: these filters need no GPU
        self._allocate(int(sensor[0]), int(sensor[1]))

    def _allocate(self, width: int, height: int) -> None:
        if not (0 < width <= 65535 and 0 < height <= 65535):
            raise EventfxError(f"{self.name}: invalid sensor size {width}x{height}")
        self.sensor = (width, height)
        self.state = self._new_state(width, height)
        self.state["last_global"] = np.full(1, NEVER, np.int64)

    def reset(self) -> None:
        """Forget all state (as if no event had been seen)."""
        self._allocate(*self.sensor)

    def process(self, events: Events) -> StageResult:
        if events.sensor_size != self.sensor:
            warnings.warn(f"{self.name}: sensor size changed from {self.sensor[0]}x{self.sensor[1]} "
                          f"to {events.width}x{events.height}; state reset", RuntimeWarning, stacklevel=2)
            self._allocate(events.width, events.height)
        require_inside(events, self.name)
        n = len(events)
        keep = np.empty(n, np.bool_)
        score = np.empty(n, np.float32)
        if n:
            resets = self._run(events, keep, score)
            if resets:
                warnings.warn(f"{self.name}: time went backwards {resets} time(s); state reset",
                              RuntimeWarning, stacklevel=2)
        return StageResult(keep, score)

    # subclasses -----------------------------------------------------------------
    def _new_state(self, width: int, height: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _run(self, events: Events, keep: np.ndarray, score: np.ndarray) -> int:
        raise NotImplementedError
