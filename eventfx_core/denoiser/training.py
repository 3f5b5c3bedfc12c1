"""``eventfx train`` with ``kind: denoiser``: fit the Mamba2 denoiser on labelled archives.

Per-event cross-entropy over three classes (signal, noise, flare; the light source trains as
signal), class-weighted, AdamW, truncated back-propagation through time over long streams
(state carried across chunks and detached, see ``data.LaneSampler``), DDP under ``torchrun``.

The loop is the shared ``train_loop.train``; this module gives it the denoiser's batches,
loss and validation. Outputs in ``output`` (relative to the config file): ``last_train.pt``
(resume state, every ``checkpoint_every`` steps), ``best.pt`` and ``final.pt`` (the end), all
denoiser checkpoints of the one schema (``eventfx_core/checkpoint.py``; best: highest
validation keep accuracy by default, the class-weighted loss can disagree with the keep
decision); ``metrics.csv`` / ``metrics.jsonl``. ``--resume`` continues from ``last_train.pt`` and
gives the same weights as an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .features import FeatureConfig, feature_names
from .checkpoint import save_checkpoint
from .model import DenoiserModel, ModelConfig, keep_class_indices
from .data import (IGNORE, LaneSampler, class_counts, class_of_label, describe_prefilter, expand_paths,
                   load_archive_features)
from ..train_loop import Distributed, LoopSpec, read_training_config, train


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # labelled archives (globs, relative to the config)
    val: list[str] = field(default_factory=list)  # validation archives (may be empty)
    cache_dir: str = ""  # feature cache; "" = <output>/feature_cache
    val_max_events: int = 200_000  # events of each validation archive that are scored
    select_best_by: str = "keep_accuracy"  # best.pt: highest keep_accuracy, or lowest "loss"
    prefilter: list[str] = field(default_factory=list)  # cascade training: classic stages (e.g. [hot_pixel,
    #   stcf]) run over every train and val archive first; the model learns on what they keep
    prefilter_config: str = "../config/denoise.yaml"  # pipeline params file giving those stages' settings

    def check(self, where: str) -> None:
        if self.select_best_by not in ("keep_accuracy", "loss"):
            raise ConfigError(f"{where}.select_best_by must be keep_accuracy or loss, "
                              f"got {self.select_best_by!r}")
        for name in self.prefilter:
            if name in ("mamba", "deflare"):
                raise ConfigError(f"{where}.prefilter: {name!r} is a model stage; only classic filters "
                                  f"(hot_pixel, refractory, baf, stcf) can run before the model")


def prefilter_pipeline(data: DataConfig, base: Path):
    """The ``PipelineConfig`` of ``data.prefilter`` with the settings of ``data.prefilter_config``
    (relative to ``base``, the training config's folder), or None without a prefilter."""
    if not data.prefilter:
        return None
    from ..pipeline_config import load_denoise_config

    path = Path(data.prefilter_config)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(f"denoiser.data.prefilter_config: {path} is not a file")
    return load_denoise_config(path, {"stages": list(data.prefilter), "threads": 1}).pipeline


@dataclass
class OptimConfig:
    steps: int = 2000  # optimiser steps (per process; DDP averages the gradients)
    batch: int = 8  # lanes (independent stream windows) per process
    chunk_len: int = 256  # events per TBPTT chunk (gradients stop at chunk boundaries)
    window_chunks: int = 16  # chunks a lane walks before jumping to a new window (state reset)
    lr: float = 0.002  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay (not on norms, biases, A, D, dt)
    warmup_steps: int = 50  # linear warm-up, then cosine decay to 10 %
    grad_clip: float = 1.0  # max global gradient norm
    class_weights: list[float] | None = None  # per class; None = inverse frequency, clipped to [0.2, 5]
    checkpoint_every: int = 160  # steps between resume states (a multiple of window_chunks)
    val_every: int = 0  # steps between validations; 0 = at checkpoints only
    log_every: int = 10  # steps between training log records
    seed: int = 0  # model init and data order
    threads: int = 2  # torch threads per process

    def check(self, where: str) -> None:
        for name in ("steps", "batch", "chunk_len", "window_chunks", "checkpoint_every", "log_every", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1")
        if self.checkpoint_every % self.window_chunks:
            raise ConfigError(f"{where}.checkpoint_every ({self.checkpoint_every}) must be a multiple "
                              f"of window_chunks ({self.window_chunks}): resume states fall between windows")


@dataclass
class DenoiserTrainConfig:
    kind: str = "denoiser"  # dispatch key of `eventfx train`
    output: str = "../runs/denoiser"  # output folder (relative to the config file)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)  # the stage computes the same
    model: ModelConfig = field(default_factory=ModelConfig)  # n_features is set from `features`
    train: OptimConfig = field(default_factory=OptimConfig)


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        plain = name.endswith(("bias", "A_log", ".D")) or "norm" in name or p.ndim < 2
        (no_decay if plain else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model: DenoiserModel, data, lut, weights, max_events: int, chunk: int = 4096) -> dict:
    """Stream each validation archive from its start (state carried): loss and recalls."""
    model.eval()
    n_cls = model.cfg.n_classes
    keep_idx = keep_class_indices(model.cfg.class_names)
    loss_sum = 0.0
    weight_sum = 0.0
    hits, totals = np.zeros(n_cls), np.zeros(n_cls)
    keep_right = events = 0
    for d in data:
        state = None
        n = min(len(d), max_events)
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            f = torch.from_numpy(np.array(d.features[a:b]))[None]  # copies out of the memory map
            dt = torch.from_numpy(np.array(d.dt_us[a:b]))[None]
            y = torch.from_numpy(lut[np.asarray(d.labels[a:b])])
            logits, state = model(f, dt, state)
            logits = logits[0]
            ok = y >= 0
            loss_sum += float(F.cross_entropy(logits[ok], y[ok], weight=weights, reduction="sum"))
            weight_sum += float(weights[y[ok]].sum())
            pred = logits.argmax(-1)
            for c in range(n_cls):
                m = ok & (y == c)
                totals[c] += int(m.sum())
                hits[c] += int((pred[m] == c).sum())
            p_keep = torch.softmax(logits, -1)[:, keep_idx].sum(-1) >= 0.5
            keep_right += int((p_keep[ok] == torch.isin(y[ok], torch.tensor(keep_idx))).sum())
            events += int(ok.sum())
    model.train()
    rec = {"loss": loss_sum / max(weight_sum, 1e-12), "keep_accuracy": keep_right / max(events, 1),
           "events": events}
    for c, name in enumerate(model.cfg.class_names):
        rec[f"recall_{name}"] = hits[c] / totals[c] if totals[c] else None
    return rec


def run(config: dict, args) -> int:
    """Entry point of ``eventfx train --config training/denoiser.yaml`` (``kind: denoiser``).

    Reads from ``args`` (all optional): ``config`` (its folder resolves relative paths),
    ``resume``, ``output`` (override), ``progress`` (False hides the bar), ``kill_at_step``
    (tests only: SIGKILL this process right after that step, to prove resuming).
    """
    cfg, base, out = read_training_config(DenoiserTrainConfig, config, "denoiser", args)
    o = cfg.train
    cfg.model.n_features = len(feature_names(cfg.features))
    cfg.model.check("denoiser.model")
    if not cfg.data.train:
        raise ConfigError("denoiser.data.train: no training archives given")
    train_files = expand_paths(cfg.data.train, base, "denoiser.data.train")
    val_files = expand_paths(cfg.data.val, base, "denoiser.data.val") if cfg.data.val else []
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else out / "feature_cache"
    cache = cache if cache.is_absolute() else base / cache
    prefilter = prefilter_pipeline(cfg.data, base)

    torch.set_num_threads(o.threads)
    ddp = Distributed.from_env()
    try:
        return _train(cfg, out, cache, train_files, val_files, ddp, args, prefilter)
    finally:
        ddp.close()


LOG_COLUMNS = ["step", "split", "loss", "lr", "events_per_s", "keep_accuracy",
               "recall_signal", "recall_noise", "recall_flare", "events"]


class DenoiserHooks:
    """The denoiser's part of ``train_loop.train``: lane batches with the recurrent state carried
    across the chunks of a window (truncated BPTT), class-weighted cross-entropy, validation."""

    def __init__(self, cfg: DenoiserTrainConfig, model: DenoiserModel, sampler: LaneSampler, lut, weights,
                 val, out: Path, training_info: dict, resume_key: str):
        self.cfg, self.model, self.sampler, self.lut, self.weights = cfg, model, sampler, lut, weights
        self.val, self.out, self.training_info, self.resume_key = val, out, training_info, resume_key
        self.recurrent = None  # recurrent state; resume states fall between windows, where it resets

    def batch(self, step: int):
        return self.sampler.batch_at(step, self.lut)

    def loss(self, net, batch):
        feats, dts, classes, new_window = batch
        if new_window or self.recurrent is None:
            self.recurrent = self.model.initial_state(self.cfg.train.batch)
        logits, state = net(torch.from_numpy(feats), torch.from_numpy(dts), self.recurrent)
        self.recurrent = state.detach()
        y = torch.from_numpy(classes)
        n_cls = self.cfg.model.n_classes
        loss = F.cross_entropy(logits.reshape(-1, n_cls), y.reshape(-1), weight=self.weights, ignore_index=IGNORE)
        if not torch.isfinite(loss):  # a window of padding only: nothing to learn, keep the step
            loss = logits.sum() * 0.0
        return loss, {"events": int((y != IGNORE).sum())}

    def validate(self, model, step: int) -> dict | None:
        if not self.val:
            return None
        return evaluate(model, self.val, self.lut, self.weights, self.cfg.data.val_max_events)

    def describe(self, step: int) -> str:
        return f"step {step}/{self.cfg.train.steps}"

    def format_val(self, rec: dict) -> str:
        return " ".join(f"{k}={v:.4g}" for k, v in rec.items() if isinstance(v, float))

    def save(self, path: Path, info: dict, resume: dict | None) -> None:
        save_checkpoint(path, self.model, self.cfg.features, {**self.training_info, **info}, resume)

    def state(self) -> dict:
        return {}

    def restore(self, state: dict) -> None:
        pass


def _train(cfg: DenoiserTrainConfig, out: Path, cache: Path, train_files, val_files, ddp, args,
           prefilter=None) -> int:
    o = cfg.train
    out.mkdir(parents=True, exist_ok=True)
    # features: rank 0 fills the cache, the others wait and read it
    if ddp.is_main:
        for p in train_files + val_files:
            load_archive_features(p, cfg.features, cache, prefilter=prefilter)
    ddp.barrier()
    train_data = [load_archive_features(p, cfg.features, cache, prefilter=prefilter) for p in train_files]
    val = [load_archive_features(p, cfg.features, cache, prefilter=prefilter) for p in val_files]
    lut = class_of_label(cfg.model.class_names)
    n_cls = cfg.model.n_classes
    counts = class_counts(train_data, lut, n_cls)
    if o.class_weights is not None:
        if len(o.class_weights) != n_cls:
            raise ConfigError(f"denoiser.train.class_weights: need {n_cls} values ({cfg.model.class_names})")
        weights = torch.tensor(o.class_weights, dtype=torch.float32)
    else:
        freq = counts / max(counts.sum(), 1)
        weights = torch.tensor(np.clip(1.0 / (n_cls * np.maximum(freq, 1e-9)), 0.2, 5.0), dtype=torch.float32)

    torch.manual_seed(o.seed)
    model = DenoiserModel(cfg.model)
    with torch.no_grad():  # standardise the features with training-set statistics
        sample = np.concatenate([np.asarray(d.features[: 200_000]) for d in train_data])
        model.feature_mean.copy_(torch.from_numpy(sample.mean(0)))
        model.feature_std.copy_(torch.from_numpy(np.maximum(sample.std(0), 1e-3)))
    optimizer = torch.optim.AdamW(_param_groups(model, o.weight_decay), lr=o.lr)
    config_json = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=list)
    if ddp.is_main and not (getattr(args, "resume", False) and (out / "last_train.pt").is_file()):
        (out / "config.json").write_text(config_json)
    training_info = {"kind": "eventfx train (denoiser)", "train_archives": [p.name for p in train_files],
                     "class_counts": counts.tolist(), "class_weights": weights.tolist(),
                     "prefilter": describe_prefilter(prefilter),
                     "world_size": ddp.world_size}
    sampler = LaneSampler(train_data, o.batch, o.chunk_len, o.window_chunks, o.seed, ddp.rank)
    hooks = DenoiserHooks(cfg, model, sampler, lut, weights, val, out, training_info, config_json)
    spec = LoopSpec(name="denoiser", steps=o.steps, lr=o.lr, warmup_steps=o.warmup_steps, schedule="cosine",
                    grad_clip=o.grad_clip, checkpoint_every=o.checkpoint_every, val_every=o.val_every,
                    val_at_checkpoints=True, log_every=o.log_every,
                    resume_file=out / "last_train.pt", final_file=out / "final.pt", best_file=out / "best.pt",
                    best_by="loss" if cfg.data.select_best_by == "loss" else "keep_accuracy",
                    best_higher=cfg.data.select_best_by != "loss",
                    log_stem=out / "metrics", log_columns=LOG_COLUMNS)
    return train(spec, hooks, model, optimizer, ddp, args)
