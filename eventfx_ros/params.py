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

from eventfx_core.pipeline_config import NODE_KEYS, ROS_KEYS, DenoiseConfig


def flatten(cfg: DenoiseConfig) -> dict[str, Any]:
    """``{"input_topic": ..., "stages": [...], "device": ..., "mamba.threshold": ...}``."""
    out: dict[str, Any] = {k: getattr(cfg.node, k) for k in NODE_KEYS}
    out["stages"] = list(cfg.pipeline.stages)
    out["device"] = cfg.pipeline.device
    out["threads"] = cfg.pipeline.threads
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


def describe(name: str) -> str:
    """The description a declared parameter carries (``ros2 param describe``)."""
    if name in NODE_KEYS:
        return f"node: {name} (fixed at start)"
    return f"pipeline: {name}"


def is_ros_key(name: str) -> bool:
    """rclpy's own parameters (``qos_overrides.*``, ``use_sim_time``): not the config's."""
    return name.split(".")[0] in ROS_KEYS


def declare_all(node, defaults: dict[str, Any], overrides) -> dict[str, Any]:
    """Declare every config key on ``node`` (defaults, plus any key a params file brings, so an
    unknown key is rejected by the config check instead of silently ignored); returns the
    values in config terms."""
    from rcl_interfaces.msg import ParameterDescriptor

    names = list(defaults) + [n for n in overrides if n not in defaults and not is_ros_key(n)]
    flat = {}
    for name in names:
        default = defaults.get(name)
        desc = ParameterDescriptor(dynamic_typing=True, read_only=False, description=describe(name))
        value = node.declare_parameter(name, to_ros_value(default), desc).value
        flat[name] = from_ros_value(value, default)
    return flat


def apply_changes(flat: dict[str, Any], defaults: dict[str, Any], params, engine) -> tuple[str, dict]:
    """Validate a ``set_parameters`` request with the config check and apply the run-time ones
    to ``engine`` (all or nothing). Returns ``(error or "", the new flat values)``."""
    from eventfx_core.errors import ConfigError
    from eventfx_core.pipeline_config import parse_params

    new = dict(flat)
    for p in params:
        if is_ros_key(p.name):
            continue  # rclpy's own (QoS overrides are read-only after start)
        if p.name not in new:
            return f"{p.name}: unknown parameter", flat
        new[p.name] = from_ros_value(p.value, defaults.get(p.name))
    changed = [n for n in new if new[n] != flat[n]]
    if not changed:
        return "", flat
    try:
        parse_params(to_params(new), "parameters")
    except ConfigError as exc:
        return str(exc), flat
    runtime = engine.runtime_names()
    fixed = [n for n in changed if n not in runtime]
    if fixed:
        return (f"{', '.join(fixed)}: not changeable at run time (restart the node); "
                f"changeable: {', '.join(sorted(runtime)) or 'none'}"), flat
    done = []
    for n in changed:
        try:
            engine.set_param(n, new[n])
            done.append(n)
        except ConfigError as exc:
            for m in done:
                engine.set_param(m, flat[m])
            return str(exc), flat
    return "", new
