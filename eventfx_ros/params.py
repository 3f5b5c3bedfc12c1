"""The denoise config as flat ROS 2 parameters, and back (no rclpy here).

A params file nests stage mappings (``mamba: {threshold: 0.5}``); ROS 2 flattens them into
dotted parameter names (``mamba.threshold``). ``flatten`` turns a ``DenoiseConfig`` into those
names and values, ``to_params`` turns declared values back into the nested
``ros__parameters`` mapping that ``eventfx_core.pipeline_config.parse_params`` validates — the
same function the offline CLI uses on the same file.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from eventfx_core.pipeline_config import NODE_KEYS, DenoiseConfig


def flatten(cfg: DenoiseConfig) -> dict[str, Any]:
    """``{"input_topic": ..., "stages": [...], "device": ..., "mamba.threshold": ...}``."""
    out: dict[str, Any] = {k: getattr(cfg.node, k) for k in NODE_KEYS}
    out["stages"] = list(cfg.pipeline.stages)
    out["device"] = cfg.pipeline.device
    for name, stage_cfg in cfg.pipeline.stage_configs.items():
        for key, value in dataclasses.asdict(stage_cfg).items():
            out[f"{name}.{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def to_params(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted names -> the nested ``ros__parameters`` mapping."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        d = nested
        *parents, last = dotted.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = value
    return nested


def from_ros_value(value: Any, default: Any) -> Any:
    """A ROS parameter value in config terms: arrays become lists; an unset value becomes
    ``[]`` where the default is a list. ROS 2 cannot hold an empty array (a params file's
    ``[]`` arrives unset and does not override an earlier file), so ``[""]`` also means
    empty: ``-p 'stages:=[""]'`` runs the node as a pass-through."""
    if value is None and isinstance(default, (list, tuple)):
        return []
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [v for v in value if v != ""]
    return value


def to_overlay_value(value: Any) -> Any:
    """A value for a params file that overrides another one: empty lists as ``[""]``."""
    if isinstance(value, (list, tuple)) and not value:
        return [""]
    return value


def to_ros_value(value: Any) -> Any:
    """A config value that ROS 2 can hold: empty lists and ``None`` are declared unset."""
    if isinstance(value, (list, tuple)):
        return list(value) if value else None
    return value
