"""A looped real EVT 3.0 bag through denoise_node over DDS (loopback): every loop resets the
pipeline once and /diagnostics counts it (issue 17 item 6; before, each loop was unwrapped as a
24-bit clock rollover, +16.78 s, and no reset was counted).
"""
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_core.io.bags import BagSource  # noqa: E402
from eventfx_ros.replay import ros_env, start_node, stop_node  # noqa: E402
from ros_client import Client  # noqa: E402

TOPIC, OUT = "/loop_events", "/loop_events_clean"
LOOPS = 3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_looped_evt3_bag_resets_once_per_loop(shared_data, tmp_path):
    with BagSource(shared_data / "ros2_bags" / "test_data_evt3_trigger") as src:
        raws = [src.codec.serialize(p.message) for p in src]
    cfg = tmp_path / "node.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    stages: [hot_pixel]\n")
    env = ros_env()
    params = {"input_topic": TOPIC, "output_topic": OUT, "reliable": True,
              "input_type": "event_camera_msgs/msg/EventPacket", "latency_budget_ms": 0,
              "diagnostics_period_s": 0.2}
    node = start_node(cfg, params, env, tmp_path / "node.log")
    client = Client(int(env["ROS_DOMAIN_ID"]), TOPIC, OUT, depth=1000, name="loop_client")
    outputs, diags, spin_until = client.outputs, client.diags, client.spin_until
    try:
        assert spin_until(lambda: client.pub.get_subscription_count() >= 1 or node.poll() is not None, 120)
        for _ in range(LOOPS):  # as `ros2 bag play --loop`: the same messages, seq and stamps
            for raw in raws:
                client.pub.publish(raw)
                client.executor.spin_once(timeout_sec=0.002)
        n = LOOPS * len(raws)
        assert spin_until(lambda: len(outputs) >= n, 120), (tmp_path / "node.log").read_text()
        # a diagnostics period may close between the worker's count of a message in and out:
        # wait for one that has counted every message out
        assert spin_until(lambda: diags and diags[-1].get("messages_out", 0) >= n, 30)
    finally:
        client.close()
        stop_node(node)
    last = diags[-1]
    assert last["resets"] == LOOPS - 1, last
    assert last["messages_out"] == n and last["messages_rejected"] == 0, last
