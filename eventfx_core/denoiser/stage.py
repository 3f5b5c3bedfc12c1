"""The ``mamba`` pipeline stage: per-event features -> stateful Mamba2 denoiser -> keep mask.

An event stage (see ``eventfx_core/stages.py``): every event is decided on arrival from the
features of the events before it and the model state, both carried across calls, so the way a
stream is cut into messages never changes a decision. On the CPU the numba fast path runs
(``cpu_runner.py``); on CUDA the torch model with mamba_ssm's scan (``gpu_runner.py``); ``device: auto``
takes CUDA where it runs (``device.py``). With ``threads: 2`` a message of at least two chunks
is worked on by two threads: the features of chunk k + 1 beside the model on chunk k (both
release the GIL); the features and the model state still see the events in order, so the
decisions are those of one thread. The pipeline's ``threads: 2`` splits the stage in two instead:
``process_front`` (time gaps and features, on the caller's thread) and ``process_back`` (the model
and the keep rule, on the pipeline's second thread, beside the next message's features).

Keep rule: 1 - P(classes in ``remove``, default noise and flare) >= ``threshold``, i.e. the
summed probability of the other classes (signal, and light source for a model with that class);
the score is 1 - P(noise), by which the noise ROC ranks events. For a model with a flare class
the stage also hands on P(flare | not noise) = P(flare) / (1 - P(noise)), which a deflare stage
after it blends with its own flare share (``deflare.blend``). Time going backwards resets the
features and the model state with a warning (the pipeline does the same for all stages).
"""
from __future__ import annotations

import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EventfxError
from ..events import Events, first_time_decrease
from .features import FeatureExtractor
from ..stages import StageResult
from .checkpoint import load_checkpoint, resolve_checkpoint_path
from ..device import check_device_name, resolve_device
from .cpu_runner import FastDenoiser, decide


@dataclass
class MambaStageConfig:
    checkpoint: str = "default"  # denoiser weights: a path (relative to base_dir) or "default" = shipped
    threshold: float = 0.5  # keep an event when 1 - P(the classes in `remove`) >= threshold
    remove: list[str] = field(default_factory=lambda: ["noise", "flare"])  # classes this stage
    #   removes; ["noise"] leaves flare to a deflare stage after it (its classes: the checkpoint's)
    device: str = ""  # "" = the pipeline's device; else auto (CUDA where it runs), cpu, cuda, cuda:1
    tile: int = 512  # events per fast-path tile (cache fit only: 512 measured 1.6x faster than 4096;
    #                decisions do not depend on it)
    threads: int = 1  # 2: the next chunk's features beside the model, for a free second core;
    #                   1: one after the other (decisions do not depend on it; 1 was faster here
    #                   with other jobs on both cores)
    chunk: int = 1024  # events per chunk of the two-thread overlap (messages under 2 chunks: 1 thread)

    def check(self, where: str = "mamba") -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"{where}.threshold must be in [0, 1], got {self.threshold}")
        if self.tile < 1:
            raise ConfigError(f"{where}.tile must be >= 1, got {self.tile}")
        if not self.remove or "signal" in self.remove or len(set(self.remove)) != len(self.remove):
            raise ConfigError(f"{where}.remove: distinct class names other than signal, got {self.remove}")
        if self.threads not in (1, 2):
            raise ConfigError(f"{where}.threads must be 1 or 2, got {self.threads}")
        if self.chunk < 1:
            raise ConfigError(f"{where}.chunk must be >= 1, got {self.chunk}")
        check_device_name(self.device, f"{where}.device")


class MambaDenoiserStage:
    """Learned per-event denoiser; ``Stage(config, sensor=(w, h), device, base_dir)``."""

    name = "mamba"
    RUNTIME_PARAMS = ("threshold",)  # the pipeline may change these while running
    Config = MambaStageConfig

    def __init__(self, config: MambaStageConfig | None = None, sensor: tuple[int, int] = (640, 480),
                 device: str = "cpu", base_dir: Path | None = None):
        self.config = config = config if config is not None else MambaStageConfig()
        config.check()
        self.checkpoint = load_checkpoint(resolve_checkpoint_path(config.checkpoint, base_dir))
        self.features = FeatureExtractor(self.checkpoint.feature_config, int(sensor[0]), int(sensor[1]))
        self.device = resolve_device(config.device or device or "cpu", "mamba.device", needs_mamba_ssm=True)
        model = self.checkpoint.model
        if self.device.type == "cpu":
            self.runner = FastDenoiser(model, tile=config.tile)
        else:
            from .gpu_runner import TorchDenoiser  # only off the CPU path

            self.runner = TorchDenoiser(model, self.device)
        self._pool: ThreadPoolExecutor | None = None  # threads: 2, started on the first long message
        names = self.checkpoint.model_config.class_names
        unknown = [c for c in config.remove if c not in names]
        if unknown:
            raise ConfigError(f"mamba.remove: {unknown} not among the checkpoint's classes {list(names)}")
        self.keep_classes = [i for i, n in enumerate(names) if n not in config.remove]
        self.noise_class = names.index("noise") if "noise" in names else None
        self.flare_class = names.index("flare") if "flare" in names else None
        self._keep_idx = np.asarray(self.keep_classes, np.int64)
        self._last_t: int | None = None

    def close(self) -> None:
        """End the ``threads: 2`` feature thread (the pipeline's ``close`` calls this); a later
        long message starts a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def reset(self) -> None:
        self.features.reset()
        self.runner.reset()
        self._last_t = None

    def process(self, events: Events) -> StageResult:
        n = len(events)
        keep = np.zeros(n, bool)
        score = np.zeros(n, np.float32)
        flare = np.zeros(n, np.float32) if self.flare_class is not None else None
        dt_us = np.empty(n, np.float32)  # real gaps to the event before (0 for the first ever)
        start = 0
        while start < n:
            prev = int(events.t[start]) if self._last_t is None else self._last_t
            back = first_time_decrease(events[start:] if start else events, prev)
            if back == 0:
                warnings.warn(f"mamba: time went backwards ({self._last_t} -> {int(events.t[start])} us); "
                              "denoiser state reset", RuntimeWarning, stacklevel=2)
                self.reset()
                continue
            stop = start + back if back > 0 else n
            dt_us[start:stop] = np.diff(events.t[start:stop], prepend=prev)  # int64 gaps -> float32
            probs = self._probabilities(events[start:stop] if back > 0 or start else events,
                                        dt_us[start:stop])
            decide(probs, self._keep_idx, -1 if self.noise_class is None else self.noise_class,
                   -1 if flare is None else self.flare_class, np.float32(self.config.threshold),
                   keep[start:stop], score[start:stop],
                   score[start:stop] if flare is None else flare[start:stop])  # (a dummy without flare)
            start = stop
        return StageResult(keep, score, flare)

    def process_front(self, events: Events) -> tuple[np.ndarray, np.ndarray]:
        """First half of ``process``: the gaps to the event before and the features (touches
        only the feature state). Time must not go back: the pipeline resets every stage first."""
        t = events.t
        prev = int(t[0]) if self._last_t is None else self._last_t
        if first_time_decrease(events, prev) >= 0:
            raise EventfxError(f"mamba: time went backwards ({self._last_t} -> {int(t[0])} us) in "
                               "a split call; reset the stage first")
        self._last_t = int(t[-1])
        return self.features.extract(events), np.diff(t, prepend=prev).astype(np.float32)

    def process_back(self, events: Events, front: tuple[np.ndarray, np.ndarray]) -> StageResult:
        """Second half: the model on ``process_front``'s features and the keep rule (touches
        only the model state); ``process_back(ev, process_front(ev))`` decides as ``process(ev)``."""
        feats, dt_us = front
        probs = self.runner.probabilities(feats, dt_us)
        n = len(events)
        keep = np.zeros(n, bool)
        score = np.zeros(n, np.float32)
        flare = np.zeros(n, np.float32) if self.flare_class is not None else None
        decide(probs, self._keep_idx, -1 if self.noise_class is None else self.noise_class,
               -1 if flare is None else self.flare_class, np.float32(self.config.threshold),
               keep, score, score if flare is None else flare)
        return StageResult(keep, score, flare)

    def _probabilities(self, events: Events, dt_us: np.ndarray) -> np.ndarray:
        """float32[n, classes]: the model's class probabilities for time-ordered ``events``
        whose gaps to the event before are ``dt_us``."""
        self._last_t = int(events.t[-1])
        n, step = len(events), self.config.chunk
        if self.config.threads == 1 or n < 2 * step:
            return self.runner.probabilities(self.features.extract(events), dt_us)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="eventfx-features")
            weakref.finalize(self, self._pool.shutdown, False)  # a stage dropped without close()
        # two threads: the features of chunk k + 1 are computed while the model runs on chunk k
        bounds = [*range(0, n, step), n]
        out = np.empty((n, self.checkpoint.model_config.n_classes), np.float32)
        pending = self._pool.submit(self.features.extract, events[0:bounds[1]])
        try:
            for k in range(len(bounds) - 1):
                a, b = bounds[k], bounds[k + 1]
                feats = pending.result()
                pending = None
                if k + 2 < len(bounds):
                    pending = self._pool.submit(self.features.extract, events[b:bounds[k + 2]])
                out[a:b] = self.runner.probabilities(feats, dt_us[a:b])
        finally:
            if pending is not None:  # an error above: let the extractor finish before anything else
                pending.result()
        return out
