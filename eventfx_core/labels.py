"""Per-event ground-truth labels: the one place that defines them.

The data factory (``eventfx generate``) writes them, the archive stores them as
``/events/label`` (uint8), training and evaluation read them.

    0 SIGNAL        an event caused by the scene (kept)
    1 NOISE         leak / shot noise and hot pixels (removed)
    2 FLARE         lens flare: glare, streaks, ghost reflections (removed)
    3 LIGHT_SOURCE  the bright core of the light that causes the flare (kept)

Like E-Deflare (Han et al., arXiv 2512.09016), the ground truth keeps the light source and
removes only the flare.
"""
from __future__ import annotations

import numpy as np

SIGNAL = 0
NOISE = 1
FLARE = 2
LIGHT_SOURCE = 3
LABEL_NAMES = ("signal", "noise", "flare", "light_source")


def label_counts(labels: np.ndarray) -> dict[str, int]:
    """How many events carry each label, by name."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(LABEL_NAMES))
    return {name: int(c) for name, c in zip(LABEL_NAMES, counts[:len(LABEL_NAMES)])}
