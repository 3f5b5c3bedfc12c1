"""Training data for the denoiser: labelled archives -> cached per-event features -> TBPTT lanes.

Features are computed once per archive (streaming, in file order, exactly as the ``mamba`` stage
computes them) and cached as .npy files keyed by the archive's path, size, mtime and the
feature config, so training is not feature-bound and a second run starts at once.

Cascade training (Viola and Jones, "Rapid object detection using a boosted cascade of simple
features", CVPR 2001: each stage is trained on what the stages before it pass): with a
``prefilter`` (a ``PipelineConfig`` of classic stages, e.g. hot_pixel -> stcf as in
config/denoise.yaml) each archive is first run through those stages by the ``Pipeline`` itself,
and features, gaps and labels are those of the surviving events only: the stream the model sees
behind them in the pipeline.

Batches are *lanes*: each of ``batch`` lanes walks through a window of ``window_chunks`` x
``chunk_len`` consecutive events of one archive, one chunk per step, carrying the model state
(truncated back-propagation through time). Windows are drawn from
``np.random.default_rng([seed, window index, rank])``, so the data of any step is a pure
function of (seed, step, rank): resuming needs no sampler state, and ranks see different data.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .features import FeatureConfig, FeatureExtractor
from ..io.archive import ArchiveReader, iter_archive
from ..labels import LABEL_NAMES, LIGHT_SOURCE, SIGNAL

IGNORE = -100  # label of padding (cross-entropy ignore_index)


def class_of_label(class_names) -> np.ndarray:
    """Archive label (``eventfx_core.labels``) -> class index of the model.
    The light source is a 'keep' event: its own class if the model has one, else signal."""
    names = list(class_names)
    lut = np.full(256, IGNORE, np.int64)
    for label, name in enumerate(LABEL_NAMES):
        if name in names:
            lut[label] = names.index(name)
        elif label == LIGHT_SOURCE:
            lut[label] = names.index(LABEL_NAMES[SIGNAL])
    return lut


@dataclass
class ArchiveData:
    path: Path
    features: np.ndarray  # float32 [n, F] (memory-mapped from the cache)
    dt_us: np.ndarray  # float32 [n]: gap to the previous event (0 for the first, never < 0)
    labels: np.ndarray  # uint8 [n]: archive labels

    def __len__(self) -> int:
        return len(self.dt_us)


def expand_paths(patterns: list[str], base: Path, where: str) -> list[Path]:
    """Globs relative to ``base`` -> files, by the one rule of ``io.globs.expand_globs``."""
    from ..io.globs import expand_globs

    return expand_globs(patterns, base, where, hint="create them with `eventfx generate`")


def describe_prefilter(prefilter) -> list | None:
    """The stages and settings of a prefilter ``PipelineConfig`` (None: no prefilter), as JSON data."""
    if prefilter is None or not prefilter.stages:
        return None
    return [[name, dataclasses.asdict(prefilter.stage_configs[name])] for name in prefilter.stages]


def _cache_key(path: Path, feature_cfg: FeatureConfig, prefilter=None) -> str:
    st = path.stat()
    ident = [str(path.resolve()), st.st_size, st.st_mtime_ns, dataclasses.asdict(feature_cfg)]
    if describe_prefilter(prefilter) is not None:  # without one the key is the old one: caches stay valid
        ident.append(describe_prefilter(prefilter))
    return hashlib.sha1(json.dumps(ident, sort_keys=True, default=list).encode()).hexdigest()[:16]


def prefilter_keep(pipe, events) -> np.ndarray:
    """Keep mask of ``events`` (one chunk of a stream, in order) through the event stages of
    ``pipe`` (a ``Pipeline``, state carried from the previous chunk): the pipeline's own decisions."""
    decided = pipe.push(events) + pipe.flush()
    keep = np.concatenate([d.keep for d in decided]) if decided else np.zeros(0, bool)
    if len(keep) != len(events):
        raise ConfigError("denoiser.data.prefilter: its stages must decide every event at once "
                          "(event stages such as hot_pixel, stcf, baf; not deflare)")
    return keep


def load_archive_features(path: Path, feature_cfg: FeatureConfig, cache_dir: Path,
                          chunk_events: int = 1_000_000, prefilter=None) -> ArchiveData:
    """Features, gaps and labels of one labelled archive, computed once and cached; with a
    ``prefilter`` (a ``PipelineConfig``), of the events its stages keep."""
    path = Path(path)
    folder = Path(cache_dir) / f"{path.stem}-{_cache_key(path, feature_cfg, prefilter)}"
    files = {k: folder / f"{k}.npy" for k in ("features", "dt_us", "labels")}
    if not all(f.is_file() for f in files.values()):
        with ArchiveReader(path) as r:
            if not r.has_labels:
                raise ConfigError(f"{path}: archive has no per-event labels (/events/label)")
            width, height = r.width, r.height
        fx = FeatureExtractor(feature_cfg, width, height)
        pipe = None
        if describe_prefilter(prefilter) is not None:
            from ..pipeline import Pipeline

            pipe = Pipeline(prefilter, (width, height), threads=1)
        feats, gaps, labels = [], [], []
        prev = None
        for events, lab in iter_archive(path, chunk_events):
            if pipe is not None and len(events):
                keep = prefilter_keep(pipe, events)
                events, lab = events[keep], np.asarray(lab)[keep]
            if len(events) == 0:
                continue
            feats.append(fx.extract(events))
            d = np.diff(events.t, prepend=events.t[0] if prev is None else prev)
            gaps.append(np.maximum(d, 0).astype(np.float32))
            labels.append(lab)
            prev = int(events.t[-1])
        folder.mkdir(parents=True, exist_ok=True)
        F = len(fx.names)
        arrays = {"features": np.concatenate(feats) if feats else np.zeros((0, F), np.float32),
                  "dt_us": np.concatenate(gaps) if gaps else np.zeros(0, np.float32),
                  "labels": np.concatenate(labels) if labels else np.zeros(0, np.uint8)}
        for k, a in arrays.items():  # write to tmp then rename: a killed run leaves no half cache
            tmp = folder / f"{k}.tmp.npy"
            np.save(tmp, a)
            tmp.replace(files[k])
    return ArchiveData(path, *(np.load(files[k], mmap_mode="r")
                               for k in ("features", "dt_us", "labels")))


class LaneSampler:
    """Windows of consecutive events for each lane; a pure function of (seed, window, rank)."""

    def __init__(self, data: list[ArchiveData], batch: int, chunk_len: int, window_chunks: int,
                 seed: int, rank: int = 0):
        self.data, self.batch, self.chunk_len = data, batch, chunk_len
        self.window_len = chunk_len * window_chunks
        self.window_chunks, self.seed, self.rank = window_chunks, seed, rank
        sizes = np.array([len(d) for d in data], np.float64)
        if sizes.sum() == 0:
            raise ConfigError("training archives hold no events")
        self.prob = sizes / sizes.sum()  # archives drawn in proportion to their size

    def windows(self, window_index: int) -> list[tuple[int, int]]:
        """(archive index, first event) of every lane for this window."""
        rng = np.random.default_rng([self.seed, window_index, self.rank])
        out = []
        for _ in range(self.batch):
            a = int(rng.choice(len(self.data), p=self.prob))
            last_start = max(0, len(self.data[a]) - self.window_len)
            out.append((a, int(rng.integers(0, last_start + 1))))
        return out

    def batch_at(self, step: int, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """features [B, L, F], dt_us [B, L], classes [B, L] (IGNORE where padded) for ``step``,
        and whether the step starts a new window (the lanes' state must be reset)."""
        window, pos = divmod(step, self.window_chunks)
        F = self.data[0].features.shape[1]
        L = self.chunk_len
        feats = np.zeros((self.batch, L, F), np.float32)
        dts = np.zeros((self.batch, L), np.float32)
        classes = np.full((self.batch, L), IGNORE, np.int64)
        for lane, (a, start) in enumerate(self.windows(window)):
            d = self.data[a]
            lo = min(len(d), start + pos * L)
            hi = min(len(d), lo + L)
            k = hi - lo
            feats[lane, :k] = d.features[lo:hi]
            dts[lane, :k] = d.dt_us[lo:hi]
            classes[lane, :k] = lut[np.asarray(d.labels[lo:hi])]
        return feats, dts, classes, pos == 0


def class_counts(data: list[ArchiveData], lut: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.zeros(n_classes, np.int64)
    for d in data:
        c = lut[np.asarray(d.labels)]
        counts += np.bincount(c[c >= 0], minlength=n_classes)[:n_classes]
    return counts
