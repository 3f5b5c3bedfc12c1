"""One labelled synthetic sequence: background (procedural scene or recording) + optional
animated flare, each pushed through the DVS simulator, mixed with occlusion weights, plus
sensor noise. Everything is a pure function of (config, seed, sequence index).

The recipe follows E-Deflare (Han et al., arXiv 2512.09016): background and flare are
simulated separately and mixed (``mix.py``); labels per ``labels.py``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..events import Events
from .background import BackgroundConfig, recorded_window
from .dvs import DvsConfig, DvsSimulator, sort_events
from .flare import AnimatedFlare, FlareConfig
from ..labels import NOISE, SIGNAL, label_counts
from .mix import flare_cause_map, occlusion_keep
from .noise import NoiseConfig, noise_events
from .randomise import RandomiseConfig, randomised
from .scenes import ProceduralScene, SceneConfig


@dataclass
class GenerateConfig:
    width: int = 346  # sensor columns (DAVIS346-like)
    height: int = 260  # sensor rows
    seed: int = 0  # master seed; sequence i uses a seed derived from (seed, i)
    train_sequences: int = 48  # sequence indices [0, train) go to train/
    val_sequences: int = 6  # the next ones to val/
    test_sequences: int = 6  # the last ones to test/
    duration_ms_min: float = 500.0  # sequence length, uniform in [min, max] milliseconds
    duration_ms_max: float = 800.0
    frame_rate_hz: float = 1000.0  # scene frames per second (flicker may raise the flare's)
    flare_pedestal: float = 1.0  # flare layer rides on this multiple of the scene level
    dvs: DvsConfig = field(default_factory=DvsConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    flare: FlareConfig = field(default_factory=FlareConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    randomise: RandomiseConfig = field(default_factory=RandomiseConfig)  # per-sequence draws (off: the above)

    def check(self, where: str = "generate") -> None:
        if not (1 <= self.width <= 4096 and 1 <= self.height <= 4096):
            raise ConfigError(f"{where}: sensor {self.width}x{self.height} out of range")
        if min(self.train_sequences, self.val_sequences, self.test_sequences) < 0:
            raise ConfigError(f"{where}: sequence counts must be >= 0")
        if not 0 < self.duration_ms_min <= self.duration_ms_max:
            raise ConfigError(f"{where}: need 0 < duration_ms_min <= duration_ms_max")
        if self.frame_rate_hz <= 0 or self.flare_pedestal < 0:
            raise ConfigError(f"{where}: frame_rate_hz > 0 and flare_pedestal >= 0")

    @property
    def n_sequences(self) -> int:
        return self.train_sequences + self.val_sequences + self.test_sequences

    def split_of(self, index: int) -> str:
        """test first, then val, then train: growing ``train_sequences`` never moves a
        sequence between splits (the test set stays the same)."""
        if index < self.test_sequences:
            return "test"
        return "val" if index < self.test_sequences + self.val_sequences else "train"


def sequence_seed(seed: int, index: int, purpose: int = 0) -> int:
    """A 63-bit seed from (master seed, sequence index, purpose): independent of workers/shards."""
    return int(np.random.SeedSequence([int(seed) & (2**63 - 1), int(index), int(purpose)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def make_sequence(cfg: GenerateConfig, index: int, flare7k=None,
                  recordings: list[Events] | None = None) -> tuple[Events, np.ndarray, dict]:
    """(events, labels, meta) of sequence ``index``. ``flare7k`` from ``flare.find_flare7k``
    (None: procedural flares); ``recordings`` the loaded ``cfg.background.recordings``.
    With ``randomise.enabled`` the sequence's settings are drawn first (``randomise.py``)."""
    cfg, drawn = randomised(cfg, index, sequence_seed(cfg.seed, index, 5))
    W, H = cfg.width, cfg.height
    rng = np.random.default_rng(sequence_seed(cfg.seed, index, 0))
    duration_us = int(round(rng.uniform(cfg.duration_ms_min, cfg.duration_ms_max) * 1000))
    use_rec = bool(recordings) and rng.random() < cfg.background.recording_probability
    has_flare = rng.random() < cfg.flare.probability
    meta: dict = dict(index=index, seed=cfg.seed, duration_us=duration_us, width=W, height=H)
    if drawn is not None:
        meta["randomised"] = drawn

    scene = None
    if use_rec:
        k = int(rng.integers(len(recordings)))
        bg_events = recorded_window(recordings[k], W, H, duration_us, rng)
        level = cfg.background.recorded_intensity
        meta["background"] = dict(kind="recording", path=cfg.background.recordings[k])
    else:
        scene = ProceduralScene(cfg.scene, W, H, duration_us, rng)
        level = scene.level
        meta["background"] = dict(kind="procedural", level=scene.level, contrast=scene.contrast,
                                  static=bool(scene.static), objects=len(scene.objects),
                                  speed_px_s=float(np.hypot(*scene.velocity)))
    flare = AnimatedFlare(cfg.flare, W, H, level, rng, flare7k) if has_flare else None
    meta["flare"] = flare.describe() if flare else None

    # Fine frames at the flare's rate; the scene is stepped every `sub`-th of them.
    sub = 1 if flare is None else math.ceil(flare.frame_rate_hz(cfg.flare, cfg.frame_rate_hz) / cfg.frame_rate_hz)
    n_coarse = max(1, math.ceil(duration_us * 1e-6 * cfg.frame_rate_hz))
    times = np.linspace(0.0, duration_us, n_coarse * sub + 1)
    parts = []  # (t_us, pixel, p, label)
    bg_sim = DvsSimulator(cfg.dvs, W, H, sequence_seed(cfg.seed, index, 1)) if scene else None
    fl_sim = DvsSimulator(cfg.dvs, W, H, sequence_seed(cfg.seed, index, 2)) if flare else None
    mix_rng = np.random.default_rng(sequence_seed(cfg.seed, index, 3))
    pedestal = cfg.flare_pedestal * level
    total = core = None
    kept_bg = dropped_bg = 0
    if use_rec:  # recorded events of fine-frame interval j are bg_events[rec_at[j-1]:rec_at[j]]
        rec_at = np.searchsorted(bg_events.t, times, side="right")
        rec_at[-1] = len(bg_events)
        rec_keep = np.ones(len(bg_events), bool)
        rec_pix = bg_events.y.astype(np.int64) * W + bg_events.x
    for j, t in enumerate(times):
        if flare is not None:
            tot_now, core_now = flare.render(t)
            if j == 0:
                fl_sim.start(pedestal + tot_now, t)
            else:
                cause = flare_cause_map(core, core_now, total, tot_now)
                parts.append(fl_sim.step(pedestal + tot_now, t, cause))
                if use_rec:  # recordings have no intensity: assume the level, flare at frame end
                    a, b = (0 if j == 1 else rec_at[j - 1]), rec_at[j]
                    rec_keep[a:b] = occlusion_keep(np.full(b - a, level), tot_now.reshape(-1)[rec_pix[a:b]], mix_rng)
            total, core = tot_now, core_now
        if scene is not None and j % sub == 0:
            frame = scene.render(t)
            if j == 0:
                bg_sim.start(frame, t)
                continue
            bt, bpix, bp, bc = bg_sim.step(frame, t, SIGNAL)
            if flare is not None and len(bt):
                keep = occlusion_keep(frame.reshape(-1)[bpix], total.reshape(-1)[bpix], mix_rng)
                kept_bg += int(keep.sum())
                dropped_bg += int((~keep).sum())
                bt, bpix, bp, bc = bt[keep], bpix[keep], bp[keep], bc[keep]
            parts.append((bt, bpix, bp, bc))
    if use_rec:
        if flare is not None:
            kept_bg, dropped_bg = int(rec_keep.sum()), int((~rec_keep).sum())
        bg_events, pix = bg_events[rec_keep], rec_pix[rec_keep]
        parts.append((bg_events.t, pix, bg_events.p, np.full(len(pix), SIGNAL, np.uint8)))

    noise_rng = np.random.default_rng(sequence_seed(cfg.seed, index, 4))
    nc = cfg.noise
    scale = float(np.exp(noise_rng.uniform(np.log(nc.rate_scale_min), np.log(nc.rate_scale_max))))
    nz = noise_events(nc, W, H, 0, duration_us, noise_rng, scale)
    parts.append((nz["t"], nz["pixel"], nz["p"], np.full(len(nz["t"]), NOISE, np.uint8)))
    cat = [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(4)]
    events, labels = sort_events(cat[0].astype(np.int64), cat[1].astype(np.int64),
                                 cat[2].astype(np.uint8), cat[3].astype(np.uint8), W, H)
    meta.update(noise=dict(rate_scale=scale, leak_rate_hz=nc.leak_rate_hz * scale,
                           shot_rate_hz=nc.shot_rate_hz * scale, hot_pixels=len(nz["hot_pixels"])),
                occlusion=dict(background_kept=kept_bg, background_dropped=dropped_bg),
                frames=len(times), flare_substeps=sub, counts=label_counts(labels), events=len(events))
    return events, labels, meta
