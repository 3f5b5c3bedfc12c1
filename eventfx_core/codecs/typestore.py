"""rosbags type stores that know the event message types, registered from the ``.msg`` text.

The definitions are read from the repository's ``msg/<pkg>/msg/*.msg`` (a source checkout) or
from ``<prefix>/share/<pkg>/msg/*.msg`` (where ``scripts/install_ros_files.sh`` and colcon put
them), so the bag code and the ROS interface packages can never disagree about a field.

ROS 2 uses the Kilted store (CDR); ROS 1 uses the Noetic store, where ``std_msgs/Header`` has
``uint32 seq`` and a ``builtin_interfaces/Time`` field is the ROS 1 ``time`` primitive.
``event_array_msgs/msg/EventArray`` (the name ``EventPacket`` had before event_camera_msgs,
still found in old bags such as the ``mono`` test recording) is registered with the same
definition as ``event_camera_msgs/msg/EventPacket``.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ..errors import FormatError

# (package, message) pairs, in dependency order (Event before EventArray).
MESSAGES = (
    ("event_camera_msgs", "EventPacket"),
    ("dvs_msgs", "Event"),
    ("dvs_msgs", "EventArray"),
    ("prophesee_event_msgs", "Event"),
    ("prophesee_event_msgs", "EventArray"),
    ("eventfx_msgs", "EventArray"),
)
# Old name of EventPacket (ros-event-camera/event_array_msgs), same fields.
LEGACY_ALIASES = {"event_array_msgs/msg/EventArray": "event_camera_msgs/msg/EventPacket"}

_REPO_MSG = Path(__file__).resolve().parents[2] / "msg"


def msg_dirs() -> list[Path]:
    """Where the ``.msg`` files are looked for, first hit wins: repo ``msg/``, then share/."""
    return [_REPO_MSG, Path(sys.prefix) / "share"]


def msg_text(package: str, name: str) -> str:
    """The ``.msg`` definition of ``package/msg/name``."""
    for root in msg_dirs():
        for path in (root / package / "msg" / f"{name}.msg",):
            if path.is_file():
                return path.read_text()
    raise FormatError(f"message definition {package}/msg/{name}.msg not found in "
                      + ", ".join(str(d) for d in msg_dirs()))


def _types(ros1: bool) -> dict:
    types: dict = {}
    for package, name in MESSAGES:
        text = msg_text(package, name)
        if ros1:
            # ROS 1 spells the time primitive `time` (rosbags maps it to builtin_interfaces/Time).
            text = text.replace("builtin_interfaces/Time", "time")
        types.update(get_types_from_msg(text, f"{package}/msg/{name}"))
    for alias, target in LEGACY_ALIASES.items():
        types[alias] = types[target]
    return types


@lru_cache(maxsize=None)
def ros2_typestore() -> Typestore:
    """Kilted type store plus the event message types (for CDR / ROS 2 bags)."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(_types(ros1=False))
    return store


@lru_cache(maxsize=None)
def ros1_typestore() -> Typestore:
    """Noetic type store plus the event message types (for ROS 1 ``.bag`` files)."""
    store = get_typestore(Stores.ROS1_NOETIC)
    store.register(_types(ros1=True))
    return store
