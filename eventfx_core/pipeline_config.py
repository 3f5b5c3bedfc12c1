"""The denoise config file: one ROS 2 params file read by both the node and the offline CLI.

    /**:
      ros__parameters:
        input_topic: /events          # node keys (NodeConfig)
        ...
        device: cpu                   # pipeline keys (PipelineConfig)
        stages: [hot_pixel, mamba]    # stage names in order (see eventfx_core.stages.REGISTRY)
        hot_pixel: {...}              # one mapping per stage: that stage's Config fields
        mamba: {threshold: 0.5, checkpoint: default}

A stage mapping may be present for a stage not listed in ``stages`` (it is validated and
then unused), so a user switches stages on and off by editing one list.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import from_dict, load_yaml, ros_parameters, to_dict
from .errors import ConfigError
from .stages import REGISTRY, stage_class

PACKAGE_DIR = Path(__file__).resolve().parent
MESSAGE_TYPES = (
    "event_camera_msgs/msg/EventPacket",
    "dvs_msgs/msg/EventArray",
    "prophesee_event_msgs/msg/EventArray",
    "eventfx_msgs/msg/EventArray",
)


@dataclass
class NodeConfig:
    input_topic: str = "events"  # topic the camera driver publishes (relative: namespaces and remaps work)
    output_topic: str = "events_clean"  # kept events, same type and encoding as the input
    input_type: str = "auto"  # "auto" = read the type from the graph, or one of MESSAGE_TYPES
    reliable: bool = False  # False = best effort, as metavision_driver / libcaer_driver publish
    queue_depth: int = 1000  # KeepLast depth of subscription and publisher (drivers use 1000)
    diagnostics_period_s: float = 1.0  # /diagnostics publishing period
    worker_queue: int = 1000  # messages waiting for the worker thread (1 s at 1 kHz); full: oldest dropped, counted
    max_message_bytes: int = 64 * 1024 * 1024  # larger messages are rejected (counted), not decoded
    latency_budget_ms: float = 220.0  # receive -> publish bound; 0 = none (never fall back)
    fallback: list[str] = field(default_factory=lambda: ["stcf"])  # classic stages for late messages
    live_view_hz: float = 0.0  # sensor_msgs/Image of input | kept | removed on events_view; 0 = off
    sensor_size: list[int] = field(default_factory=list)  # [w, h]: stages loaded for it at start

    def check(self, where: str) -> None:
        if self.input_type != "auto" and self.input_type not in MESSAGE_TYPES:
            raise ConfigError(f"{where}.input_type: {self.input_type!r} is not auto or one of "
                              f"{', '.join(MESSAGE_TYPES)}")
        if self.queue_depth < 1:
            raise ConfigError(f"{where}.queue_depth: must be >= 1, got {self.queue_depth}")
        if self.worker_queue < 1:
            raise ConfigError(f"{where}.worker_queue: must be >= 1, got {self.worker_queue}")
        if self.max_message_bytes < 1:
            raise ConfigError(f"{where}.max_message_bytes: must be >= 1")
        if self.sensor_size and (len(self.sensor_size) != 2 or min(self.sensor_size) < 1):
            raise ConfigError(f"{where}.sensor_size: expected [width, height] or [], got {self.sensor_size}")
        if self.latency_budget_ms < 0 or self.live_view_hz < 0:
            raise ConfigError(f"{where}: latency_budget_ms and live_view_hz must be >= 0")
        if self.latency_budget_ms and not self.fallback:
            raise ConfigError(f"{where}.fallback: a latency budget needs a fallback stage (e.g. [stcf])")
        if self.diagnostics_period_s <= 0:
            raise ConfigError(f"{where}.diagnostics_period_s: must be > 0")
        for name in ("input_topic", "output_topic"):
            if not getattr(self, name):
                raise ConfigError(f"{where}.{name}: must not be empty")


@dataclass
class PipelineConfig:
    stages: list[str] = field(default_factory=list)  # stage names, applied in this order
    device: str = "cpu"  # torch device of the model stages ("cpu", "cuda", "cuda:1")
    stage_configs: dict[str, Any] = field(default_factory=dict)  # name -> that stage's Config
    threads: int = 1  # 2: the later stages of a message on a second thread (pipeline.py)

    def hold_us(self) -> int:
        """Stream time the stages hold an event by design (windowed stages: ``Config.hold_us``),
        before any compute: the part of the latency no pace of the CPU removes."""
        return sum(c.hold_us() for name, c in self.stage_configs.items()
                   if name in self.stages and hasattr(c, "hold_us"))


@dataclass
class DenoiseConfig:
    node: NodeConfig
    pipeline: PipelineConfig
    base_dir: Path  # relative checkpoint paths resolve against this (the config's folder)
    path: Path | None = None  # the file it was read from


NODE_KEYS = tuple(NodeConfig.__dataclass_fields__)
ROS_KEYS = ("qos_overrides", "use_sim_time")  # rclpy's own parameters: the node's business


def default_config_path() -> Path:
    """``config/denoise.yaml`` of the source tree, else of the installed share directory."""
    candidates = [PACKAGE_DIR.parent / "config" / "denoise.yaml"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "eventfx_ros" / "config" / "denoise.yaml")
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError("no default config found (looked for config/denoise.yaml in the source "
                      "tree and share/eventfx_ros/config); pass --config")


def _set_dotted(params: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    d = params
    for k in keys[:-1]:
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override {dotted}: {k} is not a mapping")
    d[keys[-1]] = value


def parse_params(params: dict, where: str = "config") -> tuple[NodeConfig, PipelineConfig]:
    """Validate a ``ros__parameters`` mapping; unknown keys raise ``ConfigError``."""
    node_part = {k: v for k, v in params.items() if k in NODE_KEYS}
    node = from_dict(NodeConfig, node_part, where)
    stages = params.get("stages", [])
    if stages is None:
        stages = []
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise ConfigError(f"{where}.stages: expected a list of stage names, got {stages!r}")
    # ROS 2 params files cannot hold an empty list, so [""] also means "no stages".
    stages = [s for s in stages if s != ""]
    device = params.get("device", "cpu")
    if not isinstance(device, str) or not device:
        raise ConfigError(f"{where}.device: expected a device name such as cpu or cuda")
    threads = params.get("threads", 1)
    if isinstance(threads, bool) or threads not in (1, 2):
        raise ConfigError(f"{where}.threads: expected 1 or 2, got {threads!r}")
    stage_configs: dict[str, Any] = {}
    for key, value in params.items():
        if key in NODE_KEYS or key in ("stages", "device", "threads") or key in ROS_KEYS:
            continue
        if key not in REGISTRY:
            raise ConfigError(f"{where}: unknown key {key!r}; node keys: {', '.join(NODE_KEYS)}; "
                              f"pipeline keys: stages, device, threads, {', '.join(REGISTRY)}")
        if key in stages or value:
            stage_configs[key] = from_dict(stage_class(key).Config, value or {}, f"{where}.{key}")
    for name in stages:
        if name not in REGISTRY:
            raise ConfigError(f"{where}.stages: unknown stage {name!r}; known: {', '.join(REGISTRY)}")
        if name not in stage_configs:
            stage_configs[name] = from_dict(stage_class(name).Config, {}, f"{where}.{name}")
    if len(set(stages)) != len(stages):
        raise ConfigError(f"{where}.stages: a stage is listed twice: {stages}")
    return node, PipelineConfig(stages=list(stages), device=device, stage_configs=stage_configs,
                                threads=int(threads))


def overlay_overrides(path: str | Path) -> dict[str, Any]:
    """A params file laid over the config, as dotted overrides (``{"stcf.time_window_us": ...}``):
    what ``--params-file BASE --params-file OVERLAY`` does for the node. As there, ``[""]`` is an
    empty list (ROS 2 cannot hold ``[]``)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, d: dict) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                out[f"{prefix}{k}"] = [x for x in v if x != ""] if isinstance(v, list) else v

    walk("", ros_parameters(load_yaml(path), path))
    return out


def read_denoise_params(path: str | Path | None = None) -> tuple[dict, Path]:
    """The ``ros__parameters`` of a denoise params file (default: ``default_config_path()``),
    read once; ``denoise_config`` builds and checks configs from them."""
    path = Path(path) if path is not None else default_config_path()
    return dict(ros_parameters(load_yaml(path), path)), path


def denoise_config(params: dict, path: Path, overrides: dict[str, Any] | None = None) -> DenoiseConfig:
    """``params`` (left unchanged) with dotted ``overrides`` such as ``{"mamba.threshold": 0.7}``
    applied, validated."""
    params = copy.deepcopy(params)
    for dotted, value in (overrides or {}).items():
        _set_dotted(params, dotted, value)
    node, pipeline = parse_params(params, str(path))
    return DenoiseConfig(node=node, pipeline=pipeline, base_dir=path.resolve().parent, path=path)


def load_denoise_config(path: str | Path | None = None,
                        overrides: dict[str, Any] | None = None) -> DenoiseConfig:
    """Read a denoise params file (default: ``default_config_path()``), apply dotted
    ``overrides`` such as ``{"mamba.threshold": 0.7}``, and validate everything."""
    return denoise_config(*read_denoise_params(path), overrides)


def runtime_names(config: PipelineConfig) -> set[str]:
    """The parameters of ``config``'s stages that may change while running (``stage.field``)."""
    return {f"{name}.{f}" for name in config.stages for f in getattr(stage_class(name), "RUNTIME_PARAMS", ())}


def set_runtime_param(config: PipelineConfig, dotted: str, value: Any):
    """Set run-time parameter ``dotted`` (e.g. ``mamba.threshold``) in ``config``: the stage's
    config is rebuilt, checked, stored in ``config.stage_configs`` and returned. ``ConfigError``
    with the reason (nothing changed) when the name or the value is invalid."""
    changeable = runtime_names(config)
    if dotted not in changeable:
        raise ConfigError(f"{dotted}: not changeable at run time; changeable: "
                          f"{', '.join(sorted(changeable)) or 'none'}")
    name, _, fld = dotted.partition(".")
    merged = to_dict(config.stage_configs[name])
    merged[fld] = value
    new = from_dict(type(config.stage_configs[name]), merged, name)
    config.stage_configs[name] = new
    return new
