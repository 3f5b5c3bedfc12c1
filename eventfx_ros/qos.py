"""QoS profiles of the node: the event camera drivers' by default, reliable on request."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def event_qos(reliable: bool = False, depth: int = 1000) -> QoSProfile:
    """QoS of event topics.

    metavision_driver and libcaer_driver publish ``~/events`` with KeepLast(1000), best effort,
    volatile: a reliable subscriber would get nothing from them, so best effort is the default.
    Reliable (for tests and lossless replay) only works against a reliable publisher.
    """
    if depth < 1:
        raise ValueError(f"queue depth must be >= 1, got {depth}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(depth),
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


def diagnostics_qos() -> QoSProfile:
    """``/diagnostics`` as diagnostic_updater publishes it: KeepLast(10), reliable, volatile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
