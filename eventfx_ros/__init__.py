"""eventfx_ros: the thin ROS 2 adapter around ``eventfx_core`` (node, diagnostics, replay).

Messages go through the same ``eventfx_core.stream_engine.StreamEngine`` (``TopicCodec`` +
``Pipeline``) as the offline CLI, so a bag replayed through the node and the same bag denoised
offline give the same events (unless the node's latency budget routed a message to its fallback).
"""
