"""The one training loop of both models, and its pieces (model-agnostic).

``train(spec, hooks, model, optimizer, ...)`` runs ``spec.steps`` optimiser steps: learning-rate
schedule, gradient clipping, a progress bar, a JSONL (and CSV) log, validation, the best
checkpoint, resume states every ``checkpoint_every`` steps and a wall-time limit. What differs
per model comes from its hooks (``Hooks``): the batch of a step, the loss, the validation
metrics and how a checkpoint of it is written (``denoiser/training.py``, ``deflarer/training.py``).

Resume states are checkpoints of the one schema (``eventfx_core/checkpoint.py``) with a
``resume`` section: step, best value, the config the resumed run must match, optimizer state,
torch RNG state and the hooks' own state (e.g. a sampler's random state). A resumed run gives
the same weights as an uninterrupted one.

* ``Distributed``: ``torchrun`` environment -> gloo/NCCL process group (or a single process).
* ``MetricsLog``: one JSONL line (and one CSV row) per record; on resume, records after the
  resumed step are dropped so the logs read as one clean run.
* ``lr_at``: linear warm-up then cosine decay to 10 %.
* ``read_training_config``: the checked config of one ``kind``, its base folder and output path.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from tqdm import tqdm

from . import checkpoint as schema
from .config import from_dict
from .errors import ConfigError


def read_training_config(config_type: type, config: dict, kind: str, args):
    """(config, base folder, output path) for the trainer of ``kind`` (what ``run`` starts with).

    ``config`` is read into ``config_type`` (whose ``kind`` must be ``kind``); relative paths
    start at the folder of ``args.config`` (the working directory without one); ``args.output``
    overrides the config's ``output``.
    """
    cfg = from_dict(config_type, config, kind)
    if cfg.kind != kind:
        raise ConfigError(f"{kind}: kind is {cfg.kind!r}, expected {kind!r}")
    base = Path(getattr(args, "config", None) or ".").resolve()
    base = base.parent if base.suffix else base
    out = Path(getattr(args, "output", None) or cfg.output)
    return cfg, base, (out if out.is_absolute() else base / out)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Distributed":
        """Join the process group ``torchrun`` describes (gloo on CPU); single process otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def on_cpu(obj: Any) -> Any:
    """``obj`` (dicts, lists, tuples of tensors and plain data) with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj


def lr_at(step: int, base_lr: float, warmup: int, total: int) -> float:
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


class MetricsLog:
    """Append records to ``<stem>.jsonl`` and, with ``columns``, to ``<stem>.csv`` (those
    columns, for a spreadsheet or matplotlib)."""

    def __init__(self, stem: Path, resume_step: int | None, enabled: bool = True,
                 columns: list[str] | None = None):
        self.enabled, self.columns = enabled, columns
        self.jsonl_path = stem.with_name(stem.name + ".jsonl")
        self.csv_path = stem.with_name(stem.name + ".csv") if columns else None
        if not enabled:
            return
        rows: list[dict] = []
        if resume_step is not None and self.jsonl_path.is_file():
            for line in self.jsonl_path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:  # a line cut by the kill
                    continue
                if rec.get("step", 0) <= resume_step:
                    rows.append(rec)
        self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        if self.csv_path:
            with open(self.csv_path, "w", newline="") as fh:
                w = csv.DictWriter(fh, columns, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        with open(self.jsonl_path, "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.csv_path:
            with open(self.csv_path, "a", newline="") as fh:
                csv.DictWriter(fh, self.columns, extrasaction="ignore").writerow(record)
        with open(self.jsonl_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


@dataclass
class LoopSpec:
    """How ``train`` runs; each model's ``training.py`` fills it from its own config."""
    name: str  # "denoiser" | "deflarer": the checkpoint kind, progress label and messages
    steps: int  # optimiser steps in all (per process)
    lr: float  # peak learning rate
    checkpoint_every: int  # steps between resume states
    resume_file: Path  # where the resume states go
    final_file: Path  # the deployable checkpoint at the end (with the resume state if == resume_file)
    log_stem: Path  # <stem>.jsonl (and .csv with log_columns)
    best_file: Path | None = None  # the best validated checkpoint; None: none is kept
    best_by: str = "loss"  # validation record key that picks best.pt
    best_higher: bool = False  # True: the highest value is best, else the lowest
    warmup_steps: int = 0  # linear warm-up steps
    schedule: str = "cosine"  # "cosine": warm-up then cosine decay to 10 % (lr_at); "constant"
    grad_clip: float = 0.0  # max global gradient norm; 0 = no clipping
    val_every: int = 0  # steps between validations (0: none besides the ones below)
    val_at_checkpoints: bool = True  # validate at every resume state too (always at the end)
    log_every: int = 10  # steps between training log records
    max_minutes: float = 0.0  # stop (and save, validate) after this wall time; 0 = no limit
    log_columns: list[str] | None = None  # CSV columns; None = JSONL only


class Hooks(Protocol):
    """What ``train`` asks of a model (``denoiser/training.py``, ``deflarer/training.py``)."""

    resume_key: str  # JSON of the config a resumed run must share with the run that saved

    def batch(self, step: int) -> Any: ...  # the batch of optimiser step ``step`` (0-based)

    def loss(self, net: torch.nn.Module, batch) -> tuple[torch.Tensor, dict]: ...  # (loss, log fields)

    def validate(self, model: torch.nn.Module, step: int) -> dict | None: ...  # metrics; None: no data

    def describe(self, step: int) -> str: ...  # "step 320/6000", "epoch 3/12": report lines

    def format_val(self, record: dict) -> str: ...  # the metrics of a report line

    def save(self, path: Path, info: dict, resume: dict | None) -> None: ...  # a checkpoint

    def state(self) -> dict: ...  # the hooks' own resume state (plain data)

    def restore(self, state: dict) -> None: ...


def train(spec: LoopSpec, hooks: Hooks, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
          ddp: Distributed, args) -> int:
    """Run the loop. Reads from ``args`` (all optional): ``resume`` (continue from
    ``spec.resume_file``), ``progress`` (False hides the bar), ``kill_at_step`` (tests only:
    SIGKILL this process right after that step, to prove resuming)."""
    step, best = 0, float("inf")  # best: lower is better (minus the value when best_higher)
    if getattr(args, "resume", False) and spec.resume_file.is_file():
        stored = schema.read(spec.resume_file, spec.name)
        r = stored.resume
        if r is None:
            raise ConfigError(f"{spec.resume_file}: holds no training state to resume from")
        if r.get("config") != hooks.resume_key:
            raise ConfigError(f"{spec.resume_file}: cannot resume, it was written with a different config")
        model.load_state_dict(stored.tensors)
        optimizer.load_state_dict(r["optimizer"])
        torch.set_rng_state(r["torch_rng"])
        hooks.restore(r.get("extra") or {})
        step, best = int(r["step"]), float(r["best"])
        if ddp.is_main:
            tqdm.write(f"{spec.name}: resuming from {spec.resume_file} at step {step} ({hooks.describe(step)})")
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp.world_size > 1 else model
    log = MetricsLog(spec.log_stem, step if step else None, enabled=ddp.is_main, columns=spec.log_columns)
    start = time.monotonic()
    losses: list[float] = []  # since the last report line

    def resume_state(at: int) -> dict:  # CPU tensors only, whatever device the model trains on
        return {"step": at, "best": best, "config": hooks.resume_key, "optimizer": on_cpu(optimizer.state_dict()),
                "torch_rng": torch.get_rng_state(), "extra": hooks.state()}

    def validate_and_keep_best(at: int) -> dict | None:
        nonlocal best
        if not ddp.is_main:
            return None
        rec = hooks.validate(model, at)
        model.train()
        if rec is None:
            return None
        log.write({"step": at, "split": "val", **rec})
        if spec.best_file is not None:
            value = -rec[spec.best_by] if spec.best_higher else rec[spec.best_by]
            if value < best:
                best = value
                hooks.save(spec.best_file, {"step": at, "val": rec}, None)
        return rec

    def report(at: int, rec: dict | None) -> None:
        if not ddp.is_main:
            return
        line = f"{spec.name}: {hooks.describe(at)}"
        if losses:
            line += f" loss={sum(losses) / len(losses):.5f}"
        line += f" ({time.monotonic() - start:.0f} s)"
        tqdm.write(line + (" val: " + hooks.format_val(rec) if rec else ""))

    bar = tqdm(total=spec.steps, initial=step, disable=not (ddp.is_main and getattr(args, "progress", True)),
               desc=spec.name, unit="step", dynamic_ncols=True)
    kill_at = getattr(args, "kill_at_step", None)
    t_log, log_fields = time.perf_counter(), {}
    stopped = False
    model.train()
    while step < spec.steps:
        lr = spec.lr if spec.schedule == "constant" else lr_at(step, spec.lr, spec.warmup_steps, spec.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, fields = hooks.loss(net, hooks.batch(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if spec.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        step += 1
        loss_value = float(loss.detach())
        losses.append(loss_value)
        for k, v in fields.items():
            log_fields[k] = log_fields.get(k, 0) + v
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        if step % spec.log_every == 0 or step == spec.steps:
            now = time.perf_counter()
            rec = {"step": step, "split": "train", "loss": loss_value, "lr": lr, **log_fields}
            if "events" in log_fields:
                rec["events_per_s"] = log_fields["events"] * ddp.world_size / max(now - t_log, 1e-9)
            log.write(rec)
            t_log, log_fields = now, {}
        stopped = spec.max_minutes > 0 and time.monotonic() - start > 60 * spec.max_minutes
        if step == spec.steps or stopped:
            break
        at_checkpoint = step % spec.checkpoint_every == 0
        val = None
        if (spec.val_at_checkpoints and at_checkpoint) or (spec.val_every and step % spec.val_every == 0):
            val = validate_and_keep_best(step)
        if at_checkpoint:
            if ddp.is_main:
                hooks.save(spec.resume_file, {"step": step}, resume_state(step))
            ddp.barrier()
        if at_checkpoint or val is not None:
            report(step, val)
            losses = []
        if kill_at is not None and step == kill_at:
            bar.close()
            os.kill(os.getpid(), signal.SIGKILL)
    bar.close()
    if stopped and ddp.is_main:
        tqdm.write(f"{spec.name}: stopped after {spec.max_minutes} min (max_minutes) at step {step}")
    val = validate_and_keep_best(step)
    if ddp.is_main:
        hooks.save(spec.final_file, {"step": step},
                   resume_state(step) if spec.final_file == spec.resume_file else None)
        report(step, val)
        print(f"{spec.name}: {step} steps; wrote {spec.final_file}"
              + (f" and {spec.best_file} (best by {spec.best_by})"
                 if spec.best_file is not None and spec.best_file.is_file() else ""))
    ddp.barrier()
    return 0
