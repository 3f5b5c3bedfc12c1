"""Pieces of a resumable, optionally distributed training loop (model-agnostic).

* ``Distributed``: ``torchrun`` environment -> gloo/NCCL process group (or a single process).
* ``save_train_state`` / ``load_train_state``: model, optimizer, step, best metric, RNG states,
  written atomically and read with ``torch.load(weights_only=True)``.
* ``MetricsLog``: one CSV (for a spreadsheet or matplotlib) and one JSONL line per record;
  on resume, records after the resumed step are dropped so the logs read as one clean run.
* ``lr_at``: linear warm-up then cosine decay to 10 %.
* ``read_training_config``: the checked config of one ``kind``, its base folder and output path.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .config import from_dict
from .errors import ConfigError

TRAIN_FORMAT = "eventfx-denoiser-train"


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


def lr_at(step: int, base_lr: float, warmup: int, total: int) -> float:
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def save_train_state(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     step: int, best: float, config_json: str, extra: dict | None = None) -> None:
    blob = {"format": TRAIN_FORMAT, "format_version": 1, "step": int(step), "best": float(best),
            "config": config_json, "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
            "extra": extra or {}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load_train_state(path: Path) -> dict:
    from .denoiser.checkpoint import read_blob  # one-line errors, weights_only

    return read_blob(path, TRAIN_FORMAT)


class MetricsLog:
    """Append records to ``<out>/metrics.csv`` and ``<out>/metrics.jsonl``."""

    COLUMNS = ["step", "split", "loss", "lr", "events_per_s", "keep_accuracy",
               "recall_signal", "recall_noise", "recall_flare", "events"]

    def __init__(self, folder: Path, resume_step: int | None, enabled: bool = True):
        self.enabled = enabled
        self.csv_path, self.jsonl_path = folder / "metrics.csv", folder / "metrics.jsonl"
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
        with open(self.csv_path, "w", newline="") as fh:
            w = csv.DictWriter(fh, self.COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        with open(self.jsonl_path, "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.csv_path, "a", newline="") as fh:
            csv.DictWriter(fh, self.COLUMNS, extrasaction="ignore").writerow(record)
        with open(self.jsonl_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
