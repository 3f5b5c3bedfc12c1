"""Large best-effort event packets over real DDS on loopback (issue 17 item 5).

Fast DDS carries data between two processes on one host through the publisher's shared-memory
segment (512 KB by default); a best-effort sample that does not fit is dropped without a word.
``config/fastdds.xml`` (loaded by denoise_node, documented for drivers) enlarges the segment.
Every peer is its own process: Fast DDS reads its profile once per process.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_ros.dds_profile import ENV_VARS, profile_path, use_profile  # noqa: E402
from eventfx_ros.replay import ros_env, start_node, stop_node  # noqa: E402

PEER = str(Path(__file__).with_name("dds_peer.py"))
MB = 1_000_000


def _env(profile: bool) -> dict:
    env = ros_env()
    for var in ENV_VARS:
        env.pop(var, None)
    if profile:
        assert use_profile(env) == str(profile_path())
    return env


def _peers(topic: str, n: int, nbytes: int, pub_env: dict, sub_env: dict, extra=None,
           wait_s: float = 20) -> dict:
    """Start a subscriber, then a publisher of ``n`` packets of ``nbytes`` (to ``extra`` if
    given, else ``topic``); what the subscriber got within ``wait_s`` of matching."""
    sub = subprocess.Popen([sys.executable, PEER, "sub", topic, str(n), str(wait_s)], env=sub_env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pub = subprocess.Popen([sys.executable, PEER, "pub", extra or topic, str(n), str(nbytes)],
                           env=pub_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pub_out, _ = pub.communicate(timeout=120)
        sub_out, _ = sub.communicate(timeout=120)
    finally:
        for p in (pub, sub):
            if p.poll() is None:
                p.kill()
    assert pub.returncode == 0 and sub.returncode == 0, pub_out + sub_out
    return json.loads(sub_out.strip().splitlines()[-1])


def test_profile_is_shipped_and_respects_the_users_choice():
    path = profile_path()
    assert path is not None and path.name == "fastdds.xml"
    assert "<segment_size>" in path.read_text()
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}
    assert use_profile(env) == "/mine.xml" and env == {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert use_profile(env) is None and "FASTDDS_DEFAULT_PROFILES_FILE" not in env
    env = {}
    assert use_profile(env) == str(path) == env["FASTDDS_DEFAULT_PROFILES_FILE"]


@pytest.mark.slow
def test_without_the_profile_a_1mb_best_effort_packet_is_lost():
    """Why the profile is shipped: Fast DDS's default segment drops these (a change in Fast DDS
    that fixes it shows here)."""
    got = _peers("/eventfx_big_default", 5, 1 * MB, _env(False), _env(False), wait_s=6)
    assert got["n"] < 5


@pytest.mark.slow
@pytest.mark.parametrize("nbytes", [1 * MB, 3 * MB])
def test_with_the_profile_large_best_effort_packets_arrive(nbytes):
    got = _peers(f"/eventfx_big_{nbytes}", 10, nbytes, _env(True), _env(True))
    assert got["n"] == 10 and min(got["sizes"]) >= nbytes


@pytest.mark.slow
def test_the_node_publishes_large_best_effort_packets(tmp_path):
    """A driver publishing 1 MB packets with the profile -> denoise_node (it loads the profile
    itself) -> a best-effort subscriber: every packet comes out, still over 0.8 MB."""
    cfg = tmp_path / "node.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    stages: [hot_pixel]\n")
    env = _env(False)  # the node finds the profile on its own
    params = {"input_topic": "/eventfx_big_in", "output_topic": "/eventfx_big_out",
              "input_type": "event_camera_msgs/msg/EventPacket", "reliable": False,
              "latency_budget_ms": 0}  # every message through hot_pixel (no fallback filter)
    node = start_node(cfg, params, env, tmp_path / "node.log")
    try:
        got = _peers("/eventfx_big_out", 10, 1 * MB, _env(True), _env(False), extra="/eventfx_big_in",
                     wait_s=90)  # from the node's start: its start-up and the driver's
    finally:
        stop_node(node)
    assert got["n"] == 10, (tmp_path / "node.log").read_text()
    assert min(got["sizes"]) >= 0.8 * MB
