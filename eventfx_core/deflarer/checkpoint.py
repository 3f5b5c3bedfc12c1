"""Deflarer checkpoints: the model rebuilds from the file alone.

The file is the shared schema of ``eventfx_core/checkpoint.py`` (plain data, read with
``torch.load(weights_only=True)``, sha256) with ``kind: deflarer``; its meta holds the
``UNet3DConfig`` (``model_config``), the ``VoxelSpec`` (``input_config``, all of its fields),
the ``sensor`` [width, height] it was trained on and the training info; ``eventfx train``
adds its resume state. Anything that does not fit (another kind, a voxel spec with missing
fields, weights that do not match the model config, non-finite weights) raises
``ConfigError`` naming the file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import checkpoint as schema
from ..config import from_dict
from ..errors import ConfigError
from .model import ResidualUNet3D, UNet3DConfig
from .voxel import VoxelSpec

KIND = "deflarer"


@dataclass
class LoadedCheckpoint:
    model: ResidualUNet3D  # in eval mode, on the CPU
    voxel: VoxelSpec
    sensor: tuple[int, int]  # (width, height) of the training data
    training: dict  # what produced the weights (free-form: epoch, step, loss)
    path: Path
    resume: dict | None = None  # training state (``train_loop``), when the file carries one


def save_checkpoint(path: str | Path, model: ResidualUNet3D, voxel: VoxelSpec,
                    sensor: tuple[int, int], training: dict | None = None,
                    resume: dict | None = None) -> Path:
    """Write ``model`` with everything needed to rebuild it (atomically: tmp file + rename)."""
    meta = {"model_config": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in dataclasses.asdict(model.config).items()},
            "input_config": dataclasses.asdict(voxel),
            "sensor": [int(sensor[0]), int(sensor[1])],
            "training": training or {}}
    return schema.write(path, KIND, meta, model, resume)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    stored = schema.read(path, KIND, "deflarer checkpoint")
    where, meta = str(stored.path), stored.meta
    model_cfg = from_dict(UNet3DConfig, meta["model_config"], f"{where}: model")
    fields = [f.name for f in dataclasses.fields(VoxelSpec)]
    if not isinstance(meta["input_config"], dict) or set(meta["input_config"]) != set(fields):
        raise ConfigError(f"{where}: voxel spec must give exactly {', '.join(fields)}, "
                          f"got {meta['input_config']!r}")
    voxel = from_dict(VoxelSpec, meta["input_config"], f"{where}: voxel")
    sensor = meta.get("sensor")
    if (not isinstance(sensor, list) or len(sensor) != 2
            or not all(isinstance(s, int) and 0 < s <= 65535 for s in sensor)):
        raise ConfigError(f"{where}: invalid sensor {sensor!r} in deflarer checkpoint")
    model = ResidualUNet3D(model_cfg)
    schema.load_weights(model, stored.tensors, where)
    return LoadedCheckpoint(model, voxel, (sensor[0], sensor[1]), meta.get("training", {}),
                            stored.path, stored.resume)
