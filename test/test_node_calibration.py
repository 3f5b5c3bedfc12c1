"""eventfx calibrate's overlay loaded by the node as its second --params-file, over real DDS
(loopback): the hot pixels it found in a dark recording are muted from the first event."""
import subprocess
import sys

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from conftest import run_cli  # noqa: E402
from eventfx_core.events import Events  # noqa: E402
from eventfx_core.io.prophesee_raw import write_raw  # noqa: E402
from eventfx_ros.replay import ros_env, stop_node  # noqa: E402

from test_node import OUT, TOPIC, Client, W, H  # noqa: E402

HOT = [(5, 7), (40, 30)]
CONFIG = f"""/**:
  ros__parameters:
    input_topic: {TOPIC}
    output_topic: {OUT}
    input_type: auto
    reliable: true
    diagnostics_period_s: 0.2
    latency_budget_ms: 0.0
    stages: [hot_pixel]
"""


def dark_recording(path, seconds=2.0, seed=0):
    """Background at 2 Hz per pixel, two pixels at 400 Hz."""
    rng = np.random.default_rng(seed)
    rates = np.full(W * H, 2.0)
    for x, y in HOT:
        rates[y * W + x] = 400.0
    counts = rng.poisson(rates * seconds)
    pix = rng.permutation(np.repeat(np.arange(W * H), counts))
    t = 1_000_000 + np.sort(rng.integers(0, int(seconds * 1e6), len(pix)))
    write_raw(path, Events.from_arrays(t, pix % W, pix // W, rng.integers(0, 2, len(pix)), W, H))
    return path


@pytest.mark.timeout(240)
def test_node_mutes_the_calibrated_hot_pixels_from_the_first_event(tmp_path, capsys):
    calib = tmp_path / "cam.yaml"
    rc, _, err = run_cli(capsys, "calibrate", dark_recording(tmp_path / "dark.raw"), "--out", calib, "-q")
    assert rc == 0, err
    muted = yaml.safe_load(calib.read_text())["/**"]["ros__parameters"]["hot_pixel"]["muted_pixels"]
    assert sorted(zip(muted[0::2], muted[1::2])) == HOT
    cfg = tmp_path / "denoise.yaml"
    cfg.write_text(CONFIG)
    env = ros_env()
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "eventfx_ros.denoise_node", "--ros-args",
                             "--params-file", str(cfg), "--params-file", str(calib)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    client = Client(int(env["ROS_DOMAIN_ID"]))
    try:
        assert client.spin_until(lambda: client.pub.get_subscription_count() >= 1
                                 and client.sub.get_publisher_count() >= 1 or proc.poll() is not None,
                                 120), (tmp_path / "node.log").read_text()
        # a scene: every pixel once, the hot ones too, 10 us apart
        n = W * H
        ev = Events.from_arrays(np.arange(n) * 10, np.arange(n) % W, np.arange(n) // W, np.ones(n), W, H)
        client.send(client.packet(ev, seq=0))
        assert client.spin_until(lambda: len(client.outputs) >= 1, 30), (tmp_path / "node.log").read_text()
    finally:
        client.close()
        stop_node(proc)
        log.close()
    out = client.codec.decode(client.codec.deserialize(client.outputs[0])).events
    kept = set(zip(out.x.tolist(), out.y.tolist()))
    assert len(out) == n - len(HOT)  # the muted pixels only (the rate rule needs 100 events first)
    assert not kept & set(HOT)
