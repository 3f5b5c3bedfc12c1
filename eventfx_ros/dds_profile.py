"""The Fast DDS transport profile shipped with eventfx (``config/fastdds.xml``): where it is, and
putting it in the environment of a process before rclpy creates its DDS participant.

Fast DDS drops best-effort samples that do not fit in the publishing process's shared-memory
segment (512 KB by default): event packets of 0.8 MB and more never arrive on one host. The
profile raises the segment to 32 MB (see the comment in the XML). Plain Python, no rclpy, so it
runs before ``rclpy.init``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PROFILE_NAME = "fastdds.xml"
ENV_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def profile_path() -> Path | None:
    """The shipped profile: installed share/ (colcon, pip, ``make setup``) or the source checkout."""
    candidates = [Path(p) / "share" / "eventfx_ros" / "config" / PROFILE_NAME
                  for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    candidates += [Path(sys.prefix) / "share" / "eventfx_ros" / "config" / PROFILE_NAME,
                   Path(__file__).resolve().parents[1] / "config" / PROFILE_NAME]
    return next((c for c in candidates if c.is_file()), None)


def use_profile(environ=os.environ) -> str | None:
    """Point Fast DDS at the shipped profile unless the user chose one or another RMW.

    Returns the profile now in effect (the user's or ours), or None when Fast DDS is not the RMW
    or the file is missing. Call before ``rclpy.init``.
    """
    rmw = environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp"
    if not rmw.startswith("rmw_fastrtps"):
        return None
    for var in ENV_VARS:
        if environ.get(var):
            return environ[var]
    path = profile_path()
    if path is None:
        return None
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    return str(path)
