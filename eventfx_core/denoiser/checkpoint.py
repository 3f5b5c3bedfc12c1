"""Denoiser checkpoints: one file rebuilds the model and its feature extractor.

The file is the shared schema of ``eventfx_core/checkpoint.py`` (plain data, read with
``torch.load(weights_only=True)``, sha256) with ``kind: denoiser``; its meta holds the
``ModelConfig`` (``model_config``), the ``FeatureConfig`` (``input_config``), the feature and
class names, and the training info. A feature set this version of eventfx computes differently
from the one the model was trained on is refused with one ``ConfigError`` line, like every
other fault of the file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import checkpoint as schema
from ..config import WEIGHTS_DIR, from_dict, resolve_weights
from ..errors import ConfigError, EventfxError
from .features import FeatureConfig, feature_names
from .model import DenoiserModel, ModelConfig

KIND = "denoiser"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "denoiser.pt"


@dataclass
class Checkpoint:
    model: DenoiserModel  # in eval mode, on the CPU
    model_config: ModelConfig
    feature_config: FeatureConfig
    training: dict  # what produced the weights (free-form: steps, data, metrics, or "random init")
    path: Path | None = None
    resume: dict | None = None  # training state (``train_loop``), when the file carries one


def save_checkpoint(path: str | Path, model: DenoiserModel, feature_config: FeatureConfig,
                    training: dict | None = None, resume: dict | None = None) -> Path:
    """Write ``model`` (its config and weights) with its feature spec; atomic (tmp + rename)."""
    names = feature_names(feature_config)
    if len(names) != model.cfg.n_features:
        raise ConfigError(f"model takes {model.cfg.n_features} features, the feature config "
                          f"gives {len(names)}")
    meta = {"model_config": dataclasses.asdict(model.cfg),
            "input_config": dataclasses.asdict(feature_config),
            "feature_names": names,
            "class_names": list(model.cfg.class_names),
            "training": training or {}}
    return schema.write(path, KIND, meta, model, resume)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a denoiser checkpoint written by ``save_checkpoint`` (CPU, eval mode)."""
    stored = schema.read(path, KIND)
    where, meta = str(stored.path), stored.meta
    try:
        model_cfg = from_dict(ModelConfig, meta["model_config"], f"{where}: model_config")
        feature_cfg = from_dict(FeatureConfig, meta["input_config"], f"{where}: input_config")
        stored_names = list(meta["feature_names"])
    except (KeyError, TypeError) as exc:
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
    schema.load_weights(model, stored.tensors, where)
    return Checkpoint(model, model_cfg, feature_cfg, meta.get("training", {}), stored.path, stored.resume)


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
