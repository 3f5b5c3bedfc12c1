"""``eventfx train`` with ``kind: deflarer``: fit the residual 3D U-Net on labelled archives.

After E-Deflare (Han et al., arXiv 2512.09016): input = voxel grid of all events of a
window, target = voxel grid of the events that are not flare (label != 2; see ``data.py``).
Both are clipped to ``+-model.input_clip``. Loss: squared error per cell, cells that hold
input events weighted ``event_cell_weight`` times more (the keep decode reads only those
cells; empty cells just need to stay near zero). With ``model.mask_head`` the loss adds
``mask_loss_weight`` x a binary cross-entropy of the flare logits against the per-cell-bin
flare share of the labels (|flare events| / |all events| in the cell-bin, with the voxel
encoding's bilinear time weights, light-source events counted ``light_target_weight`` times
in the denominator; cells without events are left out), each cell-bin weighted
``count ** mask_count_power * (1 + light_cell_weight * light-source share)``: the keep decode
thresholds exactly this share, and the light terms keep the light source, whose 1.5-5 px
core shares its 4x4-px cells with the halo (with the plain share, a threshold of 0.5 on the
labels themselves keeps only 76 % of the light-source events of the validation split; with
light events counted 4 times, 98.8 % at 98.0 % of the flare removed). Training runs on random spatial crops (the network is
fully convolutional), half of them centred on a flare event, Adam with a global gradient-norm
clip (``grad_clip``), for ``epochs`` x ``steps``
optimiser steps or until ``max_minutes``. The loop is the shared ``train_loop.train``; this
module gives it the deflarer's batches, loss and validation: the checkpoint at ``output`` (one
schema, ``eventfx_core/checkpoint.py``, with the resume state for ``--resume``) is written after
every epoch, the validation metrics of ``metrics.evaluate_deflarer`` are printed, and the log
goes to ``<output without .pt>.metrics.jsonl``.

Batches: the crops of a step are drawn in this process, in step order (:func:`draw_crops`), and
built from the crop's own events (:func:`build_batch`; the whole sensor's grids cropped are the
reference), here or in ``train.workers`` processes: the same batches either way. ``train.device``
puts the model and the optimiser step on a GPU; checkpoints hold CPU tensors and validation runs
the CPU stage.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..device import cuda_error
from ..errors import ConfigError
from ..events import Events
from ..train_loop import Distributed, LoopSpec, read_training_config, train
from .checkpoint import save_checkpoint
from ..labels import FLARE, LIGHT_SOURCE, NOISE
from .data import expand, read_labelled
from .metrics import evaluate_deflarer
from .stage import DeflareConfig, DeflareStage
from .model import ResidualUNet3D, UNet3DConfig
from .voxel import VoxelSpec, events_to_count_voxel, events_to_voxel, input_grids
from .window import window_index


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)  # archive globs, relative to the config file
    val: list[str] = field(default_factory=list)  # archive globs for the per-epoch metrics
    min_window_events: int = 50  # windows with fewer events are not used for training


@dataclass
class OptimConfig:
    epochs: int = 10  # checkpoint + validation after each
    steps: int = 100  # optimiser steps per epoch
    batch: int = 4  # crops per step
    crop: int = 128  # crop side in pixels (rounded down to whole voxel cells, clamped to the sensor)
    flare_crop_prob: float = 0.5  # share of crops centred on a flare event
    lr: float = 1e-3  # Adam learning rate
    grad_clip: float = 1.0  # clip the gradient's global norm to this (0 = off); without it runs diverged
    event_cell_weight: float = 10.0  # loss weight of cells holding input events (empty cells: 1)
    mask_loss_weight: float = 1.0  # weight of the flare-mask BCE next to the MSE (mask head only)
    mask_count_power: float = 0.5  # BCE weight of a cell-bin ~ its event count ** this (0: every cell-bin alike, 1: per event)
    light_cell_weight: float = 0.0  # extra BCE weight of a cell-bin per unit of its light-source share
    light_target_weight: float = 1.0  # a light-source event counts this many times in the target share's
    #                                   denominator (1: the plain flare share; >1: a cell mixing light and flare
    #                                   is flagged only when its flare outweighs the light by this factor)
    thin_prob: float = 0.0  # share of crops whose noise and flare events are thinned first (each kept
    #                         with one probability drawn from U(thin_min_keep, 1)), as a denoiser
    #                         stage before the deflarer thins them; 0 = raw windows only
    thin_min_keep: float = 0.2  # lowest keep probability of that thinning
    max_minutes: float = 12.0  # stop (and save) after this wall time
    seed: int = 0  # crops, sampling and initialisation
    threads: int = 2  # torch intra-op threads
    val_threshold: float = 0.5  # validation keeps an event when 1 - flare share >= this (whole sensor)
    val_every: int = 1  # validate every n epochs; 0 = only after the last
    log_every: int = 10  # steps between training log records
    device: str = "cpu"  # torch device of the model and the optimiser step: cpu, cuda or cuda:N
    #                      (validation and checkpoints stay on the CPU)
    workers: int = 0  # processes that build the batches (0: in this process); the crops are drawn
    #                   here in step order either way, so the batches do not depend on it

    def check(self, where: str) -> None:
        if min(self.epochs, self.steps, self.batch, self.crop, self.log_every) < 1:
            raise ConfigError(f"{where}: epochs, steps, batch, crop and log_every must be >= 1")
        if not self.lr > 0 or self.max_minutes <= 0 or self.grad_clip < 0:
            raise ConfigError(f"{where}: lr and max_minutes must be > 0, grad_clip >= 0")
        if min(self.mask_loss_weight, self.mask_count_power, self.light_cell_weight) < 0:
            raise ConfigError(f"{where}: mask_loss_weight, mask_count_power and light_cell_weight must be >= 0")
        if self.light_target_weight < 1:
            raise ConfigError(f"{where}.light_target_weight: must be >= 1, got {self.light_target_weight}")
        if not (0 <= self.thin_prob <= 1 and 0 <= self.thin_min_keep <= 1):
            raise ConfigError(f"{where}: thin_prob and thin_min_keep must be in [0, 1]")
        if self.workers < 0:
            raise ConfigError(f"{where}.workers: must be >= 0, got {self.workers}")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"{where}.device: {self.device!r} is no torch device ({e})") from None
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"{where}.device: cpu or cuda, got {self.device!r}")


@dataclass
class DeflarerTrainConfig:
    kind: str = "deflarer"  # dispatch key of `eventfx train`
    data: DataConfig = field(default_factory=DataConfig)
    model: UNet3DConfig = field(default_factory=UNet3DConfig)
    voxel: VoxelSpec = field(default_factory=VoxelSpec)
    train: OptimConfig = field(default_factory=OptimConfig)
    output: str = "../eventfx_core/weights/deflarer.pt"  # checkpoint path, relative to the config file


@dataclass
class WindowSample:
    events: Events
    labels: np.ndarray
    start_us: int


def windows_of(events: Events, labels: np.ndarray, spec: VoxelSpec, min_events: int) -> list[WindowSample]:
    idx = window_index(events.t, spec.window_us)
    cuts = np.flatnonzero(np.diff(idx)) + 1
    out = []
    for a, b in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(events)]]).tolist()):
        if b - a >= min_events:
            out.append(WindowSample(events[a:b], labels[a:b], int(idx[a]) * spec.window_us))
    return out


@dataclass
class Batch:
    """Tensors (batch, channels, bins, crop cells, crop cells) of one training step."""
    x: torch.Tensor  # network input (model.in_channels channels), clipped
    y: torch.Tensor  # 1 channel: flare-free signed grid, clipped
    weight: torch.Tensor  # 1 channel: MSE weight per cell
    share: torch.Tensor  # 1 channel: flare share of the labels per cell-bin (0 where empty)
    share_weight: torch.Tensor  # 1 channel: BCE weight per cell-bin (0 where empty)


def crop_targets_reference(s: WindowSample, spec: VoxelSpec, in_channels: int, clip: float,
                           window: tuple[slice, slice]):
    """:func:`crop_targets` by way of the whole sensor's grids (the test oracle)."""
    ys, xs = window
    flare, light = s.labels == FLARE, s.labels == LIGHT_SOURCE
    vin = input_grids(s.events, s.start_us, spec, in_channels, clip)[:, :, ys, xs]
    vgt = np.clip(events_to_voxel(s.events[~flare], s.start_us, spec)[:, ys, xs], -clip, clip)
    count = events_to_count_voxel(s.events, s.start_us, spec)[:, ys, xs]
    n_flare = events_to_count_voxel(s.events[flare], s.start_us, spec)[:, ys, xs]
    n_light = events_to_count_voxel(s.events[light], s.start_us, spec)[:, ys, xs]
    return vin, vgt, count, n_flare, n_light


def crop_targets(s: WindowSample, spec: VoxelSpec, in_channels: int, clip: float,
                 window: tuple[slice, slice]):
    """(input, clean grid, event count, flare count, light count) of one crop, numpy: the grids
    of the crop's own events only (cells are whole, so each crop cell sums the same events in
    the same order as the whole sensor's grid does: equal to :func:`crop_targets_reference`)."""
    ys, xs = window
    c = spec.cell_px
    xa, xb, ya, yb = xs.start * c, xs.stop * c, ys.start * c, ys.stop * c
    e = s.events
    inside = (e.x >= xa) & (e.x < xb) & (e.y >= ya) & (e.y < yb)
    sub = Events(e.t[inside], e.x[inside] - np.uint16(xa), e.y[inside] - np.uint16(ya), e.p[inside],
                 xb - xa, yb - ya)
    crop = WindowSample(sub, s.labels[inside], s.start_us)
    full = (slice(0, ys.stop - ys.start), slice(0, xs.stop - xs.start))
    return crop_targets_reference(crop, spec, in_channels, clip, full)


def thin_mask(s: WindowSample, keep_prob: float, rng: np.random.Generator) -> np.ndarray:
    """Each noise and flare event kept with probability ``keep_prob`` (signal and light source
    all kept): what a denoiser in front of the deflarer leaves."""
    removable = (s.labels == NOISE) | (s.labels == FLARE)
    return ~removable | (rng.random(len(s.labels)) < keep_prob)


def thinned(s: WindowSample, keep_prob: float, rng: np.random.Generator) -> WindowSample:
    """The window after :func:`thin_mask`."""
    keep = thin_mask(s, keep_prob, rng)
    return WindowSample(s.events[keep], s.labels[keep], s.start_us)


@dataclass
class CropPlan:
    """One crop of a batch, as drawn from the random generator: which window, which of its
    events (``keep``: the thinning's mask, None = all) and which cells."""
    sample: int
    keep: np.ndarray | None
    window: tuple[slice, slice]  # cell rows, cell columns


def draw_crops(samples: list[WindowSample], cfg: DeflarerTrainConfig, rng: np.random.Generator) -> list[CropPlan]:
    """The ``train.batch`` random crops of one step (crop side ``train.crop // voxel.cell_px``
    cells): every draw from ``rng`` that a batch makes, in a fixed order."""
    spec, o = cfg.voxel, cfg.train
    c = spec.cell_px
    plans = []
    for _ in range(o.batch):
        k = int(rng.integers(len(samples)))
        s, keep = samples[k], None
        if o.thin_prob > 0 and rng.random() < o.thin_prob:
            keep = thin_mask(s, float(rng.uniform(o.thin_min_keep, 1.0)), rng)
            s = WindowSample(s.events[keep], s.labels[keep], s.start_us)
        _, h, w = spec.grid_shape(s.events.width, s.events.height)  # in cells
        cw, ch = min(max(1, o.crop // c), w), min(max(1, o.crop // c), h)
        flare = np.flatnonzero(s.labels == FLARE)
        if len(flare) and rng.random() < o.flare_crop_prob:
            i = flare[rng.integers(len(flare))]
            x0 = int(np.clip(int(s.events.x[i]) // c - cw // 2, 0, w - cw))
            y0 = int(np.clip(int(s.events.y[i]) // c - ch // 2, 0, h - ch))
        else:
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        plans.append(CropPlan(k, keep, (slice(y0, y0 + ch), slice(x0, x0 + cw))))
    return plans


def build_batch(samples: list[WindowSample], plans: list[CropPlan], cfg: DeflarerTrainConfig) -> Batch:
    """The :class:`Batch` of ``plans`` (no random draw: a worker process can build it)."""
    spec, clip, o = cfg.voxel, cfg.model.input_clip, cfg.train
    ins, tgts, shares, share_ws = [], [], [], []
    for plan in plans:
        s = samples[plan.sample]
        if plan.keep is not None:
            s = WindowSample(s.events[plan.keep], s.labels[plan.keep], s.start_us)
        vin, vgt, count, n_flare, n_light = crop_targets(s, spec, cfg.model.in_channels, clip, plan.window)
        occupied = count > 0
        safe = np.where(occupied, count, 1)
        ins.append(vin)
        tgts.append(vgt)
        denom = safe + (o.light_target_weight - 1) * n_light
        shares.append(np.where(occupied, np.clip(n_flare / denom, 0, 1), 0))
        share_ws.append(np.where(occupied, safe ** o.mask_count_power * (1 + o.light_cell_weight * n_light / safe), 0))
    x = torch.from_numpy(np.stack(ins))
    y = torch.from_numpy(np.stack(tgts))[:, None]
    weight = torch.where(x[:, :1] != 0, o.event_cell_weight, 1.0)
    share = torch.from_numpy(np.stack(shares).astype(np.float32))[:, None]
    share_weight = torch.from_numpy(np.stack(share_ws).astype(np.float32))[:, None]
    return Batch(x, y, weight, share, share_weight)


def make_batch(samples: list[WindowSample], cfg: DeflarerTrainConfig, rng: np.random.Generator) -> Batch:
    """A :class:`Batch` of random crops of the voxel grids (:func:`draw_crops`, :func:`build_batch`)."""
    return build_batch(samples, draw_crops(samples, cfg, rng), cfg)


class _BatchBuilder(torch.utils.data.Dataset):
    """What a batch worker runs: ``self[(plans, rng state)]`` = (batch, that rng state)."""

    def __init__(self, samples: list[WindowSample], cfg: DeflarerTrainConfig):
        self.samples, self.cfg = samples, cfg

    def __getitem__(self, item):
        plans, rng_state = item
        return build_batch(self.samples, plans, self.cfg), rng_state


class _StepPlans(torch.utils.data.Sampler):
    """The crops of step after step, drawn from the hooks' generator in this process, each with
    the generator's state after it (the resume state of the step that uses it)."""

    def __init__(self, hooks: "DeflarerHooks"):
        self.hooks = hooks

    def __iter__(self):
        while True:
            plans = draw_crops(self.hooks.samples, self.hooks.cfg, self.hooks.rng)
            yield plans, self.hooks.rng.bit_generator.state


def _no_collate(items):  # each item is a whole batch already
    return items


def weighted_mse(pred, target, weight) -> torch.Tensor:
    return (weight * (pred - target) ** 2).sum() / weight.sum()


def deflarer_loss(out: torch.Tensor, batch: Batch, o: OptimConfig) -> torch.Tensor:
    """Weighted MSE of the clean grid (+ ``mask_loss_weight`` x weighted BCE of the flare
    logits when ``out`` has the mask channel)."""
    loss = weighted_mse(out[:, :1], batch.y, batch.weight)
    if out.shape[1] > 1 and o.mask_loss_weight > 0:
        bce = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 1:2], batch.share, reduction="none")
        loss = loss + o.mask_loss_weight * (batch.share_weight * bce).sum() / batch.share_weight.sum().clamp_min(1e-6)
    return loss


def load_samples(files: list[Path], spec: VoxelSpec, min_events: int):
    samples, sensor = [], None
    for f in files:
        ev, lab = read_labelled(f)
        if sensor is None:
            sensor = ev.sensor_size
        samples += windows_of(ev, lab, spec, min_events)
    return samples, sensor


def validate(ckpt: Path, val_files: list[Path], cfg: DeflarerTrainConfig, sensor) -> dict:
    """Metrics of the checkpoint on the validation archives (voxel grids take each
    archive's own size, so archives of another sensor size are fine)."""
    stage_cfg = DeflareConfig(checkpoint=str(ckpt), keep_threshold=cfg.train.val_threshold, gate=False,
                              window_us=cfg.voxel.window_us, bins=cfg.voxel.bins,
                              cell_px=cfg.voxel.cell_px, allow_other_sensor=True)
    return evaluate_deflarer(val_files, DeflareStage(stage_cfg, sensor=sensor))


def format_metrics(m: dict) -> str:
    keys = ("chamfer", "voxel_mse", "removal_f1", "retention_f1", "flare_removed_pct",
            "signal_kept_pct", "noise_kept_pct", "light_kept_pct")
    return " ".join(f"{k}={m[k]:.4g}" for k in keys)


class DeflarerHooks:
    """The deflarer's part of ``train_loop.train``: random crops (one numpy generator, saved in
    the resume state), the MSE + mask BCE loss, validation of the model as a stage."""

    def __init__(self, cfg: DeflarerTrainConfig, model: ResidualUNet3D, samples, sensor, val_files, out: Path):
        self.cfg, self.model, self.samples, self.sensor, self.val_files = cfg, model, samples, sensor, val_files
        self.out = out
        self.rng = np.random.default_rng(cfg.train.seed)
        self.device = torch.device(cfg.train.device)
        self.rng_state = self.rng.bit_generator.state  # after the last batch handed out
        self.loader = None  # batch workers' iterator (train.workers > 0), started at the first batch
        # what a resumed run must share (epochs, steps and max_minutes may grow)
        self.resume_key = json.dumps({"model": dataclasses.asdict(cfg.model), "voxel": dataclasses.asdict(cfg.voxel)},
                                     sort_keys=True, default=list)

    def batch(self, step: int) -> Batch:
        if self.cfg.train.workers == 0:
            b = make_batch(self.samples, self.cfg, self.rng)
            self.rng_state = self.rng.bit_generator.state
        else:
            if self.loader is None:
                self.loader = iter(torch.utils.data.DataLoader(
                    _BatchBuilder(self.samples, self.cfg), batch_size=None, sampler=_StepPlans(self),
                    num_workers=self.cfg.train.workers, collate_fn=_no_collate, prefetch_factor=4,
                    multiprocessing_context="fork"))
            b, self.rng_state = next(self.loader)
        if self.device.type == "cpu":
            return b
        return Batch(*(getattr(b, f.name).to(self.device, non_blocking=True) for f in dataclasses.fields(Batch)))

    def loss(self, net, batch: Batch):
        return deflarer_loss(net(batch.x), batch, self.cfg.train), {}

    def validate(self, model, step: int) -> dict | None:
        if not self.val_files:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = self._write(Path(tmp) / "val.pt", {"step": step}, None)
            return validate(ckpt, self.val_files, self.cfg, self.sensor)

    def epoch(self, step: int) -> int:
        return -(-step // self.cfg.train.steps)

    def describe(self, step: int) -> str:
        return f"epoch {self.epoch(step)}/{self.cfg.train.epochs}"

    def format_val(self, rec: dict) -> str:
        return format_metrics(rec)

    def _write(self, path: Path, info: dict, resume: dict | None) -> Path:
        training = {"kind": "eventfx train (deflarer)", "epoch": self.epoch(info["step"]), **info}
        return save_checkpoint(path, self.model, self.cfg.voxel, self.sensor, training, resume)

    def save(self, path: Path, info: dict, resume: dict | None) -> None:
        self._write(path, info, resume)

    def state(self) -> dict:
        return {"numpy_rng": self.rng_state}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = self.rng_state = state["numpy_rng"]


def run(config: dict, args) -> int:
    """Entry point of ``eventfx train --config training/deflarer.yaml``.

    Reads from ``args`` (all optional): ``config`` (its folder resolves relative paths),
    ``resume`` (continue from the output checkpoint's training state), ``output`` (override),
    ``max_minutes`` (override), ``progress`` (False hides the bar).
    """
    cfg, base, out = read_training_config(DeflarerTrainConfig, config, "deflarer", args)
    max_minutes = getattr(args, "max_minutes", None) or cfg.train.max_minutes
    o = cfg.train
    torch.set_num_threads(o.threads)
    torch.manual_seed(o.seed)

    train_files = expand(cfg.data.train, base, "deflarer.data.train")
    val_files = expand(cfg.data.val, base, "deflarer.data.val") if cfg.data.val else []
    samples, sensor = load_samples(train_files, cfg.voxel, cfg.data.min_window_events)
    if not samples:
        raise ConfigError(f"deflarer: no window with >= {cfg.data.min_window_events} events in the training archives")
    print(f"deflarer: {len(samples)} training windows from {len(train_files)} archives, "
          f"sensor {sensor[0]}x{sensor[1]}, {len(val_files)} validation archives")

    model = ResidualUNet3D(cfg.model)  # initialised on the CPU: the same weights on every device
    if o.device != "cpu":
        reason = cuda_error(torch.device(o.device))  # the stages' probe (device.py): no CUDA, no such GPU
        if reason is not None:
            raise ConfigError(f"deflarer: train.device is {o.device!r}, but torch finds no CUDA device ({reason})")
        model.to(o.device)
        torch.backends.cudnn.benchmark = True  # fixed crop shapes: let cuDNN pick its fastest kernels
    opt = torch.optim.Adam(model.parameters(), lr=o.lr)
    hooks = DeflarerHooks(cfg, model, samples, sensor, val_files, out)
    stem = out.with_suffix("") if out.suffix == ".pt" else out
    spec = LoopSpec(name="deflarer", steps=o.epochs * o.steps, lr=o.lr, schedule="constant", grad_clip=o.grad_clip,
                    checkpoint_every=o.steps, val_every=o.val_every * o.steps, val_at_checkpoints=False,
                    log_every=o.log_every, max_minutes=max_minutes, resume_file=out, final_file=out,
                    log_stem=stem.with_name(stem.name + ".metrics"))
    return train(spec, hooks, model, opt, Distributed(), args)
