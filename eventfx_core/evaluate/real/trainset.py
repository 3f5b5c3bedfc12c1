"""Labelled training archives from real recordings: the recording's events as signal (label 0),
injected noise as noise (label 1), labelled by construction (DND21's protocol, Guo and Delbruck,
TPAMI 2022, used for training). Only the ``tune`` split may be used: the ``report`` split is
never trained on. Seeds differ from the benchmark's, so no archive repeats a benchmark condition.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import EventfxError
from ...labels import NOISE, SIGNAL
from .noise import NoiseModel, inject, make_noise


def write_train_archives(recordings, out: Path, model: NoiseModel | None, copies: int = 8,
                         rate_range: tuple[float, float] = (0.5, 6.0), seed: int = 1000) -> list[Path]:
    """``copies`` archives per recording, each with noise of a random kind (uniform or
    resampled) at a log-uniform random rate in ``rate_range`` Hz/px; returns their paths."""
    from ...io.archive import write_archive
    if any(r.info.split != "tune" for r in recordings):
        raise EventfxError("training archives come from the tune split only")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for rec in recordings:
        for i in range(copies):
            kind = "resampled" if (model is not None and i % 2) else "uniform"
            rate = float(np.exp(rng.uniform(*np.log(rate_range))))
            ev, is_signal = inject(rec.events, make_noise(kind, rate, rec.events, rng, model))
            labels = np.where(is_signal, SIGNAL, NOISE).astype(np.uint8)
            path = out / f"real_{rec.info.name}_{i:02d}.h5"
            write_archive(path, ev, labels, {"source": rec.info.name, "noise": kind, "rate_hz": rate})
            paths.append(path)
    return paths
