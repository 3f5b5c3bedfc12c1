"""The denoise node as its own process on real DDS (loopback): bad input and parameters.

One node process serves the module (start-up costs seconds on a shared machine). The test
process publishes EventPacket messages as raw CDR bytes, reads the node's output and its
``/diagnostics`` counters, and calls its parameter services.
"""
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_core.events import Events  # noqa: E402
from eventfx_ros.replay import ros_env, start_node, stop_node  # noqa: E402
from ros_client import OUT, TOPIC, Client  # noqa: E402

W, H = 64, 48
CONFIG = """/**:
  ros__parameters:
    input_topic: /unused
    stages: [baf]
    baf: {time_window_us: 2000}
"""


def _events(t0: int, n: int = 200, seed: int = 0) -> Events:
    rng = np.random.default_rng(seed)
    return Events.from_arrays(t0 + np.sort(rng.integers(0, 10_000, n)), rng.integers(0, W, n),
                              rng.integers(0, H, n), rng.integers(0, 2, n), W, H)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("node")
    cfg = folder / "denoise.yaml"
    cfg.write_text(CONFIG)
    env = ros_env()  # loopback only; the test run's ROS_DOMAIN_ID, else a random one
    params = {"input_topic": TOPIC, "output_topic": OUT, "input_type": "auto", "reliable": True,
              "max_message_bytes": 100_000, "diagnostics_period_s": 0.2}
    proc = start_node(cfg, params, env, folder / "node.log")
    client = Client(int(env["ROS_DOMAIN_ID"]), TOPIC, OUT)
    try:
        ready = client.spin_until(lambda: client.pub.get_subscription_count() >= 1
                                  and client.sub.get_publisher_count() >= 1
                                  or proc.poll() is not None, 120)
        assert ready and proc.poll() is None, (folder / "node.log").read_text()
        yield proc, client, folder / "node.log"
    finally:
        client.close()
        stop_node(proc)


def _last(client) -> dict:
    return client.diags[-1] if client.diags else {}


def test_bad_input_is_counted_and_the_node_keeps_going(node):
    proc, c, log = node
    good = lambda i: c.packet(_events(i * 10_000, seed=i), seq=i)  # noqa: E731
    c.send(good(0))
    assert c.spin_until(lambda: len(c.outputs) == 1, 30), log.read_text()
    c.send(c.packet(_events(10_000), seq=1, events=np.frombuffer(b"\x01" * 7, np.uint8)))  # garbage
    c.send(c.packet(_events(20_000), seq=2, encoding="no_such_encoding"))  # unknown encoding
    c.send(c.packet(_events(30_000), seq=3, width=0))  # wrong size
    c.send(c.packet(_events(40_000, n=40_000), seq=4))  # over max_message_bytes (100 kB)
    c.send(c.packet(_events(50_000), seq=5, width=32))  # pixels outside a 32-wide sensor
    c.send(good(9))  # seq 6..8 lost
    c.send(c.packet(_events(20_000, seed=2), seq=10))  # time goes backwards: reset
    c.send(c.packet(Events.empty(W, H), seq=11))  # empty: passed on empty
    c.send(good(12))
    sent = 10
    assert c.spin_until(lambda: _last(c).get("messages_in", 0) >= sent
                        and _last(c).get("messages_out", 0) >= 5, 30), (c.diags[-1:], log.read_text())
    d = _last(c)
    assert proc.poll() is None, "the node died"
    assert d["messages_in"] == sent
    assert d["messages_rejected"] == 4  # garbage, unknown encoding, zero width, too big
    assert d["messages_lost"] == 3  # seq 6, 7, 8
    assert d["resets"] >= 1
    assert d["events_out_of_range"] > 0  # the 32-wide packet: events with x >= 32 dropped
    assert d["messages_empty"] == 1
    assert d["messages_out"] == 6  # every accepted message comes out, the empty one too
    # Output: one message per accepted input, same seq, in order.
    seqs = [c.codec.deserialize(r).seq for r in c.outputs]
    assert seqs == [0, 5, 9, 10, 11, 12]
    empty = c.codec.decode(c.codec.deserialize(c.outputs[4])).events
    assert len(empty) == 0
    # Diagnostics say WARN-worthy things happened, and the node still works afterwards.
    c.send(good(13))
    assert c.spin_until(lambda: len(c.outputs) == 7, 30)


def _call(client, srv_type, name, request, timeout_s=30):
    cli = client.node.create_client(srv_type, name)
    try:
        assert client.spin_until(cli.service_is_ready, timeout_s), f"{name} not available"
        fut = cli.call_async(request)
        assert client.spin_until(fut.done, timeout_s)
        return fut.result()
    finally:
        client.node.destroy_client(cli)


def _get(client, name):
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    res = _call(client, GetParameters, "/eventfx_denoise/get_parameters", GetParameters.Request(names=[name]))
    return parameter_value_to_python(res.values[0])


def _set(client, name, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return _call(client, SetParameters, "/eventfx_denoise/set_parameters", req).results[0]


def test_rejected_parameter_keeps_the_old_value(node):
    _, c, _ = node
    assert _get(c, "baf.time_window_us") == 2000
    bad = _set(c, "baf.time_window_us", -5)
    assert not bad.successful and "time_window_us" in bad.reason
    assert _get(c, "baf.time_window_us") == 2000
    wrong_type = _set(c, "baf.time_window_us", "soon")
    assert not wrong_type.successful and "integer" in wrong_type.reason
    fixed = _set(c, "input_topic", "/elsewhere")
    assert not fixed.successful and "run time" in fixed.reason
    assert _get(c, "input_topic") == TOPIC
    ok = _set(c, "baf.time_window_us", 5000)
    assert ok.successful, ok.reason
    assert _get(c, "baf.time_window_us") == 5000
