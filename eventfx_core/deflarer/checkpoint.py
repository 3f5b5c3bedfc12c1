"""Self-describing deflarer checkpoints: the model rebuilds from the file alone.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)`` (no pickled code runs):

    format: "eventfx-deflarer"     version: 2
    model:  UNet3DConfig fields    voxel: VoxelSpec fields (all of them, cell_px included)
    sensor: [width, height] it was trained on
    state_dict: the ResidualUNet3D weights
    train: optional training state (epoch, step, optimizer, best metric) for resume

Anything that does not fit (another format, missing keys, a state dict that does not match
the model config, non-finite weights) raises ``ConfigError`` naming the file. Version 1
(per-pixel grid, transposed-conv U-Net) is refused with a hint to retrain.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import from_dict
from ..errors import ConfigError
from .model import ResidualUNet3D, UNet3DConfig
from .voxel import VoxelSpec

FORMAT = "eventfx-deflarer"
VERSION = 2


@dataclass
class LoadedCheckpoint:
    model: ResidualUNet3D  # in eval mode, on the CPU
    voxel: VoxelSpec
    sensor: tuple[int, int]  # (width, height) of the training data
    train: dict | None  # training state, if saved
    path: Path


def save_checkpoint(path: str | Path, model: ResidualUNet3D, voxel: VoxelSpec,
                    sensor: tuple[int, int], train: dict | None = None) -> Path:
    """Write ``model`` with everything needed to rebuild it (atomically: tmp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT, "version": VERSION,
        "model": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()},
        "voxel": dataclasses.asdict(voxel),
        "sensor": [int(sensor[0]), int(sensor[1])],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if train is not None:
        blob["train"] = train
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: deflarer checkpoint not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a loadable torch checkpoint ({first[:120]})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an eventfx deflarer checkpoint (format "
                          f"{blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r})")
    if blob.get("version") != VERSION:
        raise ConfigError(f"{path}: deflarer checkpoint version {blob.get('version')!r}, "
                          f"this eventfx reads version {VERSION}; retrain it with "
                          f"`eventfx train --config training/deflarer.yaml`")
    for key in ("model", "voxel", "sensor", "state_dict"):
        if key not in blob:
            raise ConfigError(f"{path}: deflarer checkpoint lacks {key!r}")
    model_cfg = from_dict(UNet3DConfig, blob["model"], f"{path}: model")
    if not isinstance(blob["voxel"], dict) or set(blob["voxel"]) != {f.name for f in dataclasses.fields(VoxelSpec)}:
        raise ConfigError(f"{path}: voxel spec must give exactly "
                          f"{', '.join(f.name for f in dataclasses.fields(VoxelSpec))}, got {blob['voxel']!r}")
    voxel = from_dict(VoxelSpec, blob["voxel"], f"{path}: voxel")
    sensor = blob["sensor"]
    if (not isinstance(sensor, (list, tuple)) or len(sensor) != 2
            or not all(isinstance(s, int) and 0 < s <= 65535 for s in sensor)):
        raise ConfigError(f"{path}: invalid sensor {sensor!r} in deflarer checkpoint")
    model = ResidualUNet3D(model_cfg)
    state = blob["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: state_dict is not a mapping of tensors")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{path}: weights do not match the model config ({detail[:200]})") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ConfigError(f"{path}: weight {name} has non-finite values")
    model.eval()
    return LoadedCheckpoint(model, voxel, (int(sensor[0]), int(sensor[1])), blob.get("train"), path)
