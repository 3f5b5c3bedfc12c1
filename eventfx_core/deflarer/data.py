"""Labelled archives for the deflarer: events plus one label per event.

Labels (``eventfx_core.labels``): 0 signal, 1 noise, 2 flare, 3 light source. The
deflarer's target is every event that is not flare (``label != 2``): it removes flare only,
keeps the light source (as E-Deflare's ground truth does) and leaves sensor noise to the
denoiser stages, so it is not taught to remove noise it cannot tell from flare.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..events import Events
from ..io.archive import read_archive


def read_labelled(path: str | Path) -> tuple[Events, np.ndarray]:
    """(events, uint8 labels) of a labelled eventfx archive; FormatError if it has no labels."""
    arc = read_archive(path)
    if arc.labels is None:
        raise FormatError(f"{path}: archive has no labels; the deflarer needs labelled data")
    return arc.events, np.asarray(arc.labels, np.uint8)


def expand(patterns: list[str], base_dir: Path, what: str) -> list[Path]:
    """Files matching ``patterns`` (relative to ``base_dir``), by the one rule of ``io.globs``."""
    from ..io.globs import expand_globs

    return expand_globs(patterns, base_dir, what, hint="create them with `eventfx generate`")
