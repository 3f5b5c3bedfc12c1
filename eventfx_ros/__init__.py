"""eventfx_ros: the thin ROS 2 adapter around ``eventfx_core`` (node, diagnostics, replay).

Messages go through the same ``eventfx_core.codecs.messages.TopicCodec`` and the same
``eventfx_core.pipeline.Pipeline`` as the offline CLI, so a bag replayed through the node and
the same bag denoised offline give the same events.
"""
