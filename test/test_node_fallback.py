"""The node under real overload, over real DDS (loopback): the latency budget and start-up.

The Mamba stage decides about 1 M events/s on this CPU; the test publishes 2 M events/s, so
the node must decide part of the stream with its fallback (STCF) and still publish every
message, in order. The node runs with ``input_type: auto`` and the test's output subscriber
exists before the node does: the test publishes as soon as the node has subscribed, so a
node that subscribed before its publisher matched the waiting subscriber would lose the first
outputs. Then fail fast: a missing checkpoint, config file or CUDA device ends the node with
one line and exit 2 before it subscribes.
"""
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_core.codecs.messages import EVENT_PACKET, TopicCodec, build_message  # noqa: E402
from eventfx_core.events import Events  # noqa: E402
from eventfx_ros.replay import ros_env, start_node, stop_node  # noqa: E402

from test_node import Client, OUT, TOPIC  # noqa: E402

W, H = 346, 260
N_MSGS, PER_MSG, PERIOD_S = 60, 20_000, 0.010  # 2 M events/s for 0.6 s
CONFIG = """/**:
  ros__parameters:
    stages: [mamba]
    fallback: [stcf]
    stcf: {time_window_us: 10000, k: 2}
"""


def _packet(i: int, codec) -> bytes:
    rng = np.random.default_rng(i)
    t = i * 10_000 + np.sort(rng.integers(0, 10_000, PER_MSG))
    ev = Events.from_arrays(t, rng.integers(0, W, PER_MSG), rng.integers(0, H, PER_MSG),
                            rng.integers(0, 2, PER_MSG), W, H)
    return codec.serialize(build_message(EVENT_PACKET, ev, header_stamp_ns=int(t[0]) * 1000,
                                         seq=i, encoding="evt3"))


@pytest.mark.timeout(240)
def test_overload_falls_back_publishes_every_message_in_order_and_misses_no_start(tmp_path):
    cfg = tmp_path / "denoise.yaml"
    cfg.write_text(CONFIG)
    env = ros_env()
    codec = TopicCodec(EVENT_PACKET)
    raws = [_packet(i, codec) for i in range(N_MSGS)]
    client = Client(int(env["ROS_DOMAIN_ID"]))  # its output subscriber waits before the node exists
    params = {"input_topic": TOPIC, "output_topic": OUT, "input_type": "auto", "reliable": True,
              "latency_budget_ms": 300.0, "diagnostics_period_s": 0.2,
              "sensor_size": [W, H]}  # the learned stage is loaded before input: it decides some
    proc = start_node(cfg, params, env, tmp_path / "node.log")
    try:
        assert client.spin_until(lambda: client.pub.get_subscription_count() >= 1
                                 or proc.poll() is not None, 180), (tmp_path / "node.log").read_text()
        assert proc.poll() is None, (tmp_path / "node.log").read_text()
        t0 = time.monotonic()
        for i, raw in enumerate(raws):  # paced: message i at i * PERIOD_S
            client.spin_until(lambda: time.monotonic() >= t0 + i * PERIOD_S, 1.0)
            client.pub.publish(raw)
        done = lambda: client.diags and client.diags[-1].get("messages_in", 0) >= N_MSGS \
            and client.diags[-1].get("messages_out", 0) + client.diags[-1].get("messages_dropped_late", 0) \
            >= N_MSGS and len(client.outputs) >= client.diags[-1]["messages_out"]  # noqa: E731
        assert client.spin_until(done, 60), (client.diags[-1:], (tmp_path / "node.log").read_text())
    finally:
        client.close()
        stop_node(proc)
    d = client.diags[-1]
    seqs = [codec.deserialize(r).seq for r in client.outputs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, once each
    assert len(seqs) + d["messages_dropped_late"] == N_MSGS and seqs[0] == 0  # nothing missed
    assert d["messages_fallback"] > 0 and d["events_fallback"] > 0
    assert d["messages_fallback"] < N_MSGS  # the learned stage decided part of it
    assert d["messages_lost"] == 0 and d["queue_drops"] == 0


def _run_node(args, env, timeout=120):
    cmd = [sys.executable, "-m", "eventfx_ros.denoise_node", "--ros-args", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["checkpoint", "config", "device"])
def test_a_wrong_start_ends_with_one_line_and_exit_2(tmp_path, case):
    cfg = tmp_path / "denoise.yaml"
    cfg.write_text(CONFIG)
    overlay = {"checkpoint": ["-p", f"mamba.checkpoint:={tmp_path / 'missing.pt'}"],
               "config": [], "device": ["-p", "device:=cuda"]}[case]
    params_file = tmp_path / "missing.yaml" if case == "config" else cfg
    try:
        import torch
        if case == "device" and torch.cuda.is_available():
            pytest.skip("this machine has CUDA: device:=cuda is valid here")
    except ImportError:
        pass
    r = _run_node(["--params-file", str(params_file), *overlay], ros_env())
    err = [ln for ln in (r.stderr + r.stdout).splitlines() if "error" in ln.lower()]
    assert r.returncode == 2, r.stderr + r.stdout
    assert "Traceback" not in r.stderr + r.stdout
    assert len(err) == 1 and err[0].startswith("denoise_node: error: "), err
    assert {"checkpoint": "missing.pt", "config": "missing.yaml", "device": "cuda"}[case] in err[0]
    assert "->" not in r.stdout + r.stderr  # it never subscribed (the subscribe line names in -> out)


@pytest.mark.timeout(240)
def test_relative_topics_follow_the_namespace_and_qos_is_overridable(tmp_path):
    """``-r __ns:=/cam0``: the default topics become /cam0/events and /cam0/events_clean; a
    ``qos_overrides`` entry in the params file sets the output's reliability (best effort by
    default, as drivers publish)."""
    cfg = tmp_path / "denoise.yaml"
    cfg.write_text("""/**:
  ros__parameters:
    stages: [baf]
    input_type: event_camera_msgs/msg/EventPacket
    qos_overrides:
      /cam0/events_clean:
        publisher:
          reliability: reliable
          depth: 7
""")
    env = ros_env()
    client = Client(int(env["ROS_DOMAIN_ID"]))  # first: a failure here leaves no node running
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "eventfx_ros.denoise_node", "--ros-args",
                             "--params-file", str(cfg), "-r", "__ns:=/cam0"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def infos():
            return client.node.get_publishers_info_by_topic("/cam0/events_clean")
        assert client.spin_until(lambda: infos() and client.node.get_subscriptions_info_by_topic(
            "/cam0/events") or proc.poll() is not None, 120), (tmp_path / "node.log").read_text()
        assert proc.poll() is None, (tmp_path / "node.log").read_text()
        qos = infos()[0].qos_profile
        assert qos.reliability.name == "RELIABLE"  # the override (the config says best effort)
        sub_qos = client.node.get_subscriptions_info_by_topic("/cam0/events")[0].qos_profile
        assert sub_qos.reliability.name == "BEST_EFFORT"  # not overridden: the driver default
        names = dict(client.node.get_topic_names_and_types())
        assert "/events_clean" not in names and "/events" not in names
    finally:
        client.close()
        stop_node(proc)
        log.close()
