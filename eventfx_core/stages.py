"""The two kinds of pipeline stage, and the registry that maps config names to them.

An *event stage* decides every event as it arrives (filters, the Mamba denoiser):

    stage.process(events) -> StageResult(keep, score[, flare])  # one decision per event, now
    stage.reset()                                         # forget all state

A *windowed stage* decides events only when the window they fall in has closed (the voxel
deflarer). It buffers events and hands back decisions for the oldest buffered ones:

    stage.push(events, flare=None) -> np.ndarray[bool]
                                             # keep decisions for the next k buffered events
                                             # (k >= 0, in arrival order); ``flare``: an earlier
                                             # stage's per-event P(flare), or None
    stage.advance(t_us) -> np.ndarray[bool]  # the stream's clock reached t_us (earlier stages
                                             # may have dropped every event since): decide the
                                             # windows that ended by then
    stage.flush() -> np.ndarray[bool]        # decisions for everything still buffered
    stage.reset()

Both keep state across calls so that cutting a stream into messages differently never changes
a decision. Every stage class has a ``Config`` dataclass (commented defaults, built with
``eventfx_core.config.from_dict``) and is constructed as ``Stage(config, sensor=(w, h),
device="cpu", base_dir=Path)``; ``base_dir`` resolves relative checkpoint paths.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError
from .events import Events


@dataclass(frozen=True)
class StageResult:
    keep: np.ndarray  # bool[n]: True = the event survives this stage
    score: np.ndarray | None = None  # float32[n]: the stage's confidence that the event is not
    #                                  noise (the noise ROC ranks events by it)
    flare: np.ndarray | None = None  # float32[n]: the stage's probability that the event is flare
    #                                  (given it is not noise), for a later deflare stage to blend


@runtime_checkable
class EventStage(Protocol):
    name: str

    def process(self, events: Events) -> StageResult: ...

    def reset(self) -> None: ...


@runtime_checkable
class WindowedStage(Protocol):
    name: str

    def push(self, events: Events, flare: np.ndarray | None = None) -> np.ndarray: ...

    def advance(self, t_us: int) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...

    def reset(self) -> None: ...


# Config name -> "module:Class". Imported lazily so a config that does not use the model
# never imports torch.
REGISTRY: dict[str, str] = {
    "hot_pixel": "eventfx_core.filters.hot_pixel:HotPixelFilter",
    "refractory": "eventfx_core.filters.refractory:RefractoryFilter",
    "baf": "eventfx_core.filters.baf:BackgroundActivityFilter",
    "stcf": "eventfx_core.filters.stcf:SpatioTemporalCorrelationFilter",
    "mamba": "eventfx_core.denoiser.stage:MambaDenoiserStage",
    "deflare": "eventfx_core.deflarer.stage:DeflareStage",
}


def stage_class(name: str):
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown stage {name!r}; known: {', '.join(REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
