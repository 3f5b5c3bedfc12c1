"""Self-describing denoiser checkpoints: one file rebuilds the model and its feature extractor.

A checkpoint is ``torch.save`` of plain data only (str, int, dict, tensors), read back with
``torch.load(weights_only=True)``, so loading never runs pickled code:

    {"format": "eventfx-denoiser", "format_version": 1,
     "meta": JSON text {model_config, feature_config, feature_names, class_names, training},
     "tensors": {parameter name: tensor},         # DenoiserModel.state_dict()
     "sha256": hex digest of meta and every tensor's name, dtype, shape and bytes}

Anything wrong -- a missing, truncated or edited file, a checkpoint of another model, a feature
set this version of eventfx computes differently -- raises ``ConfigError`` with one line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import WEIGHTS_DIR, from_dict, resolve_weights
from ..errors import ConfigError, EventfxError
from .features import FeatureConfig, feature_names
from .model import DenoiserModel, ModelConfig

FORMAT = "eventfx-denoiser"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = WEIGHTS_DIR / "denoiser.pt"


@dataclass
class Checkpoint:
    model: DenoiserModel  # in eval mode, on the CPU
    model_config: ModelConfig
    feature_config: FeatureConfig
    training: dict  # what produced the weights (free-form: steps, data, metrics, or "random init")
    path: Path | None = None


def _digest(meta: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: DenoiserModel, feature_config: FeatureConfig,
                    training: dict | None = None) -> Path:
    """Write ``model`` (its config and weights) with its feature spec; atomic (tmp + rename)."""
    path = Path(path)
    names = feature_names(feature_config)
    if len(names) != model.cfg.n_features:
        raise ConfigError(f"model takes {model.cfg.n_features} features, the feature config "
                          f"gives {len(names)}")
    meta = json.dumps({
        "model_config": dataclasses.asdict(model.cfg),
        "feature_config": dataclasses.asdict(feature_config),
        "feature_names": names,
        "class_names": list(model.cfg.class_names),
        "training": training or {},
    }, sort_keys=True)
    tensors = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta,
            "tensors": tensors, "sha256": _digest(meta, tensors)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def read_blob(path: str | Path, expected_format: str) -> dict:
    """``torch.load(weights_only=True)`` with one-line errors; checks the format tag."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not one
        raise ConfigError(f"{path}: not a checkpoint (not the zip archive torch.save writes; "
                          f"truncated, or another kind of file)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(f"{path}: refused to load: the file holds more than plain tensors and data "
                          f"(checkpoints are loaded with weights_only=True and never run code)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a readable checkpoint (truncated or corrupt: {reason})") from None
    if not isinstance(blob, dict) or "format" not in blob:
        raise ConfigError(f"{path}: not an eventfx checkpoint (no format tag)")
    if blob["format"] != expected_format:
        raise ConfigError(f"{path}: is a {blob['format']!r} checkpoint, expected {expected_format!r}")
    version = blob.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ConfigError(f"{path}: checkpoint format version {version!r} is not supported "
                          f"(this eventfx reads up to {FORMAT_VERSION})")
    return blob


def model_from_blob(blob: dict, where: str) -> tuple[DenoiserModel, ModelConfig, FeatureConfig, dict]:
    """Verify the digest, rebuild the configs and the model, and load the weights."""
    meta_text, tensors = blob.get("meta"), blob.get("tensors")
    if not isinstance(meta_text, str) or not isinstance(tensors, dict):
        raise ConfigError(f"{where}: checkpoint lacks its meta or tensors")
    if blob.get("sha256") != _digest(meta_text, tensors):
        raise ConfigError(f"{where}: checkpoint contents do not match their checksum (edited or damaged)")
    try:
        meta = json.loads(meta_text)
        model_cfg = from_dict(ModelConfig, meta["model_config"], f"{where}: model_config")
        feature_cfg = from_dict(FeatureConfig, meta["feature_config"], f"{where}: feature_config")
        stored_names = list(meta["feature_names"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: malformed checkpoint meta ({exc})") from None
    current = feature_names(feature_cfg)
    if stored_names != current:
        raise ConfigError(f"{where}: trained on features {stored_names}, but this eventfx computes "
                          f"{current} for that feature config; retrain or use a matching version")
    if len(current) != model_cfg.n_features:
        raise ConfigError(f"{where}: model takes {model_cfg.n_features} features, the feature "
                          f"config gives {len(current)}")
    try:
        model = DenoiserModel(model_cfg)
    except EventfxError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ConfigError(f"{where}: weights do not fit the model (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    for name, t in expected.items():
        if tuple(tensors[name].shape) != tuple(t.shape):
            raise ConfigError(f"{where}: weight {name} has shape {tuple(tensors[name].shape)}, "
                              f"the model needs {tuple(t.shape)}")
    model.load_state_dict(tensors)
    model.eval()
    return model, model_cfg, feature_cfg, meta.get("training", {})


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a denoiser checkpoint written by ``save_checkpoint`` (CPU, eval mode)."""
    path = Path(path)
    blob = read_blob(path, FORMAT)
    model, model_cfg, feature_cfg, training = model_from_blob(blob, str(path))
    return Checkpoint(model, model_cfg, feature_cfg, training, path)


def resolve_checkpoint_path(value: str, base_dir: Path | None) -> Path:
    """``default`` -> the shipped weights; a relative path is relative to ``base_dir``."""
    return resolve_weights(value, base_dir, DEFAULT_WEIGHTS.name)


def write_initial_checkpoint(path: str | Path, seed: int = 0,
                             model_config: ModelConfig | None = None,
                             feature_config: FeatureConfig | None = None) -> Path:
    """A seeded, randomly initialised model: proves the plumbing before trained weights exist."""
    feature_config = feature_config or FeatureConfig()
    model_config = model_config or ModelConfig(n_features=len(feature_names(feature_config)))
    torch.manual_seed(seed)
    model = DenoiserModel(model_config)
    return save_checkpoint(path, model, feature_config,
                           {"kind": "random initialisation (untrained)", "seed": seed})
