"""The node's live view (sensor_msgs/Image) and its throttled warnings, over real DDS.

Input | kept | removed panels: every kept pixel is an input pixel, removed pixels carry the
colour of the stage that removed them (here the only stage, baf: PALETTE[0]). Five backwards
time jumps in a row are five counted resets but one warning line (throttled per kind).
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_ros.live_view import PALETTE  # noqa: E402
from eventfx_ros.replay import ros_env, start_node, stop_node  # noqa: E402

from test_node import OUT, TOPIC, Client, W, H, _events  # noqa: E402

CONFIG = """/**:
  ros__parameters:
    stages: [baf]
    baf: {time_window_us: 2000}
"""


@pytest.mark.timeout(180)
def test_live_view_panels_and_throttled_reset_warnings(tmp_path):
    from sensor_msgs.msg import Image

    cfg = tmp_path / "denoise.yaml"
    cfg.write_text(CONFIG)
    env = ros_env()
    params = {"input_topic": TOPIC, "output_topic": OUT, "reliable": True, "live_view_hz": 5.0,
              "input_type": "event_camera_msgs/msg/EventPacket", "diagnostics_period_s": 0.2,
              "latency_budget_ms": 0.0}  # no fallback: every removal is baf's
    proc = start_node(cfg, params, env, tmp_path / "node.log")
    c = Client(int(env["ROS_DOMAIN_ID"]))
    images = []
    c.node.create_subscription(Image, "/events_view", images.append, 5)
    try:
        assert c.spin_until(lambda: c.pub.get_subscription_count() >= 1 and c.sub.get_publisher_count() >= 1
                            or proc.poll() is not None, 120), (tmp_path / "node.log").read_text()
        sent = []
        for i in range(6):  # every message starts before the previous one: 5 resets
            ev = _events(100_000 - i * 10_000, n=400, seed=i)
            sent.append(ev)
            c.send(c.packet(ev, seq=i))
        assert c.spin_until(lambda: len(c.outputs) == 6 and images, 30), (tmp_path / "node.log").read_text()
        time.sleep(0.5)
        c.spin_until(lambda: False, 0.5)
    finally:
        c.close()
        stop_node(proc)
    img = np.frombuffer(bytes(images[0].data), np.uint8).reshape(images[0].height, images[0].width, 3)
    assert images[0].encoding == "rgb8" and img.shape == (H, 3 * W, 3)
    inp, kept, removed = img[:, :W], img[:, W:2 * W], img[:, 2 * W:]
    assert (inp == 255).all(axis=2).any()
    assert not ((kept == 255).all(axis=2) & ~(inp == 255).all(axis=2)).any()  # kept within input
    coloured = removed.any(axis=2)
    assert coloured.any() and (removed[coloured] == PALETTE[0]).all()  # all removed by baf
    log = (tmp_path / "node.log").read_text()
    assert log.count("time went backwards") == 1, log  # 5 resets, one warning (throttled)
    assert c.diags and c.diags[-1]["resets"] == 5
