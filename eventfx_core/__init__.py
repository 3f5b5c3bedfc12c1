"""eventfx core: event arrays, codecs, file I/O, features, filters, models and the pipeline.

Plain Python + numpy + torch; never imports rclpy (``eventfx_ros`` is the ROS adapter).
Where an event goes, in folder order: ``codecs`` / ``io`` (bytes and files -> ``Events``),
``features`` (per-event streaming features), ``filters`` (classic baselines), ``model``
(stateful Mamba denoiser), ``deflare`` (voxel 3D U-Net), ``pipeline`` (stages -> keep mask),
``codecs.messages`` (ROS message <-> ``Events``, shared by the node and the offline CLI).
"""
from .errors import ConfigError, DecodeError, EventfxError, FormatError
from .events import Events, concat

__all__ = ["Events", "concat", "EventfxError", "DecodeError", "FormatError", "ConfigError"]
__version__ = "0.1.0"
