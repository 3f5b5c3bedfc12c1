"""`eventfx replay` through a real node process over DDS equals `eventfx denoise` offline.

Each shared bag is replayed flow-controlled with reliable QoS (deterministic), then denoised
offline with the same config; both give the same messages (count, order, seq) carrying the
same events. The replay's outputs follow the one output-path policy (checked before the node
starts; replaced only with --overwrite).
"""
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_core.cli.main import main as eventfx  # noqa: E402
from eventfx_ros.replay import decode_all, read_bag  # noqa: E402

CONFIG = """/**:
  ros__parameters:
    stages: [hot_pixel, baf]
    baf: {time_window_us: 2000}
"""
BAGS = ["test_data_libcaer_rollover", "test_data_evt3_trigger", "test_data_mono_cd"]


def _per_message(bag: Path):
    _, msgtype, msgs = read_bag(bag, None)
    out = []
    for _, raw in msgs:
        ev, seqs = decode_all(msgtype, [raw])
        out.append((seqs[0], ev))
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", BAGS)
def test_replay_equals_offline_denoise(shared_data, tmp_path, name):
    bag = shared_data / "ros2_bags" / name
    cfg = tmp_path / "denoise.yaml"
    cfg.write_text(CONFIG)
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"
    assert eventfx(["denoise", str(bag), str(tmp_path / "offline"), "--config", str(cfg), "--quiet"]) == 0
    (tmp_path / "online").mkdir()  # an earlier run's outputs: replaced, as asked
    (tmp_path / "summary.json").write_text("stale")
    assert eventfx(["replay", str(bag), "--out", str(tmp_path / "online"), "--config", str(cfg),
                    "--reliable", "--rate", "0", "--summary-dir", str(tmp_path), "--overwrite"]) == 0
    assert not list(tmp_path.glob("*.partial*")) and not list((tmp_path / "online").glob("*partial*"))

    offline, online = _per_message(tmp_path / "offline"), _per_message(tmp_path / "online")
    n_in = len(read_bag(bag, None)[2])
    assert len(online) == len(offline) == n_in
    total_in = total_kept = 0
    for i, ((s_off, e_off), (s_on, e_on)) in enumerate(zip(offline, online)):
        assert s_on == s_off, f"message {i}: seq {s_on} online, {s_off} offline"
        assert e_on.equals(e_off), f"message {i}: {e_on} online, {e_off} offline"
        total_kept += len(e_on)
    summary = json.loads((tmp_path / "summary.json").read_text())
    total_in = summary["events_in"]
    assert summary["messages_in"] == summary["messages_out"] == n_in
    assert summary["messages_lost"] == 0
    assert summary["events_out"] == total_kept
    if n_in > 10:  # the filters removed something and kept something
        assert 0 < total_kept < total_in
    assert summary["node"]["messages_in"] == n_in and summary["node"]["messages_rejected"] == 0
    # The figures mean what their labels say: the node's receive -> publish is part of the
    # publish -> output path of the same (live) messages, so its p99 cannot exceed that one
    # (the node's histogram bins are 1.2 % wide); no fallback without a budget (rate 0).
    assert summary["node_latency_p99_ms"] <= 1.02 * summary["latency_p99_ms"] + 0.1
    assert summary["events_fallback"] == summary["messages_fallback"] == 0
    assert (tmp_path / "online.node.log").is_file()


def _refused(capsys, *argv) -> str:
    capsys.readouterr()
    assert eventfx(["replay", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("eventfx: error:")]
    assert len(lines) == 1 and "Traceback" not in err and "node ready" not in err, err
    return lines[0]


def test_replay_checks_every_output_before_the_node_starts(shared_data, tmp_path, capsys):
    bag = shared_data / "ros2_bags" / "test_data_mono_cd"
    (tmp_path / "out").mkdir()
    assert "exists already" in _refused(capsys, bag, "--out", tmp_path / "out")
    assert not (tmp_path / "out.node.log").exists()  # refused before the node started
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "summary.txt").write_text("kept")
    line = _refused(capsys, bag, "--out", tmp_path / "new", "--summary-dir", tmp_path / "s")
    assert "summary.txt" in line and "--overwrite" in line
    assert (tmp_path / "s" / "summary.txt").read_text() == "kept"
    assert ".png" in _refused(capsys, bag, "--out", tmp_path / "new", "--preview", tmp_path / "p.bag")
    assert "input" in _refused(capsys, bag, "--out", bag / "inside")
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.node.log").exists()


@pytest.mark.timeout(300)
def test_replay_with_two_pipeline_threads_equals_offline_denoise(repo_root, tmp_path):
    """The default learned pipeline with ``threads: 2`` in the node (the Mamba model and the
    deflarer on a second thread) gives offline's single-thread events, message for message."""
    bag = repo_root / "data" / "demo" / "emlb_demo_evt3"
    assert eventfx(["denoise", str(bag), str(tmp_path / "offline"), "--quiet"]) == 0
    assert eventfx(["replay", str(bag), "--out", str(tmp_path / "online"), "-p", "threads=2",
                    "--reliable", "--rate", "0", "--summary-dir", str(tmp_path)]) == 0
    assert "2 pipeline thread(s)" in (tmp_path / "online.node.log").read_text()
    offline, online = _per_message(tmp_path / "offline"), _per_message(tmp_path / "online")
    assert len(online) == len(offline) == 400
    for i, ((s_off, e_off), (s_on, e_on)) in enumerate(zip(offline, online)):
        assert s_on == s_off and e_on.equals(e_off), f"message {i} differs"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["messages_out"] == 400 and 0 < summary["events_out"] < summary["events_in"]
