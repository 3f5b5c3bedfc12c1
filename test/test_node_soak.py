"""The soak driver (``eventfx_ros.soak``): a looped bag is one continuous camera stream, and a
short soak over real DDS counts every message and samples the node's memory."""
import numpy as np
import pytest

from eventfx_core.codecs.messages import TopicCodec

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_ros.replay import read_bag  # noqa: E402
from eventfx_ros.soak import LoopedStream, soak  # noqa: E402

DEMO = "data/demo/emlb_demo_evt3"


def test_a_looped_bag_is_one_continuous_stream_through_evt3_rollovers(repo_root):
    _, msgtype, msgs = read_bag(repo_root / DEMO, None)
    stream = LoopedStream(msgtype, msgs)
    codec, orig = TopicCodec(msgtype), TopicCodec(msgtype)
    bag_events = [orig.decode(orig.deserialize(raw)).events for _, raw in msgs]
    n = len(msgs)
    loops = int(np.ceil((1 << 24) / stream.period_us)) + 1  # past one 24-bit clock rollover
    last_t, last_due = -1, -1.0
    for j in range(0, loops * n, 7 if loops > 2 else 1):  # every 7th message: a decoder sees gaps too
        due, raw, n_ev = stream.message(j)
        msg = codec.deserialize(raw)
        d = codec.decode(msg)
        k, i = divmod(j, n)
        assert not d.restarted and msg.seq == j and due > last_due
        assert np.array_equal(d.events.t, bag_events[i].t + k * stream.period_us)
        assert np.array_equal(d.events.x, bag_events[i].x) and len(d.events) == n_ev
        if len(d.events):
            assert d.events.t[0] > last_t
            last_t = int(d.events.t[-1])
        last_due = due
    assert last_t > bag_events[0].t[0] + (1 << 24)


@pytest.mark.timeout(300)
def test_a_short_soak_counts_every_message_and_samples_memory(repo_root, tmp_path):
    cfg = tmp_path / "denoise.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    stages: [hot_pixel, baf]\n    reliable: true\n")
    res = soak(repo_root / DEMO, seconds=3.0, config=cfg, rss_every_s=0.5, log_dir=tmp_path)
    assert res.loops >= 7 and res.messages_in > 2000
    assert res.messages_out == res.messages_in and res.messages_lost == 0
    assert res.node["messages_in"] == res.messages_in and res.node["resets"] == 0
    assert res.node["events_in"] == res.events_in
    assert len(res.rss_kb) >= 4 and res.rss_start_kb > 10_000 and res.rss_max_kb >= res.rss_end_kb
