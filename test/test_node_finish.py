"""The node's end of stream when the pipeline's second thread fails after the worker stopped.

A real ``DenoiseNode`` in this process (its stage set holds a test stage, which a node in
another process could not load) on real DDS (loopback), fed by a client node: ``threads: 2``
runs the stage's back half on the pipeline's second thread, where it fails on the last message
only once the worker has stopped, so the failure reaches ``finish``'s flush. ``finish`` must
still close the engine (no thread left) and publish the last diagnostics, with the messages it
could not publish counted and one error line; the messages decided before are published.
"""
import threading
from dataclasses import dataclass

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_core import pipeline_score, stages as stages_mod  # noqa: E402
from eventfx_core.codecs.messages import EVENT_PACKET  # noqa: E402
from eventfx_core.events import Events  # noqa: E402
from eventfx_core.pipeline_config import DenoiseConfig, NodeConfig, parse_params  # noqa: E402
from eventfx_core.stages import StageResult  # noqa: E402
from eventfx_ros.replay import ros_env  # noqa: E402
from ros_client import Client  # noqa: E402

W, H = 32, 24
TOPIC, OUT = "/finish_events", "/finish_events_clean"
FAIL_AT_US = 1_000_000  # events from here on fail (the start-up check runs earlier times)
RELEASE = threading.Event()  # the failing call waits for it: set once the worker has stopped


class FailingBack:
    """Event stage with two halves (so ``threads: 2`` puts the back half on the second thread):
    keeps events of even x; the back half fails on events at or after ``FAIL_AT_US``."""

    name = "failing_back"

    @dataclass
    class Config:
        pass

    def __init__(self, config, sensor, device="cpu", base_dir=None):
        self.config = config

    def process_front(self, ev):
        return ev.x % 2 == 0

    def process_back(self, ev, even):
        if len(ev) and ev.t[-1] >= FAIL_AT_US:
            RELEASE.wait(30)
            raise RuntimeError("failing_back failed on purpose")
        return StageResult(even, even.astype(np.float32))

    def process(self, ev):
        return self.process_back(ev, self.process_front(ev))

    def reset(self):
        pass


def _events(t0, n=300, seed=0):
    rng = np.random.default_rng(seed)
    return Events.from_arrays(t0 + np.sort(rng.integers(0, 10_000, n)), rng.integers(0, W, n),
                              rng.integers(0, H, n), rng.integers(0, 2, n), W, H)


@pytest.mark.timeout(120)
def test_finish_closes_and_reports_when_the_second_thread_fails(monkeypatch, capfd):
    from eventfx_ros.denoise_node import DenoiseNode

    monkeypatch.setitem(stages_mod.REGISTRY, "failing_back", f"{__name__}:FailingBack")
    composed = []
    real_compose = pipeline_score.compose
    monkeypatch.setattr(pipeline_score, "compose", lambda *a: composed.append(1) or real_compose(*a))
    RELEASE.clear()
    env = ros_env()
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", env["ROS_AUTOMATIC_DISCOVERY_RANGE"])
    _, pipe_cfg = parse_params({"stages": ["failing_back"], "threads": 2})
    cfg = DenoiseConfig(node=NodeConfig(input_topic=TOPIC, output_topic=OUT, input_type=EVENT_PACKET,
                                        reliable=True, latency_budget_ms=0, diagnostics_period_s=60.0),
                        pipeline=pipe_cfg, base_dir=None)
    client = Client(int(env["ROS_DOMAIN_ID"]), TOPIC, OUT, name="finish_client")
    node = None
    try:
        node = DenoiseNode(cfg, context=client.ctx)  # spins with the client
        client.executor.add_node(node)
        outputs, diags, spin_until = client.outputs, client.diags, client.spin_until
        assert spin_until(lambda: client.pub.get_subscription_count() >= 1
                          and client.sub.get_publisher_count() >= 1, 60)
        starts = [0, 20_000, FAIL_AT_US, FAIL_AT_US + 20_000]  # the last two are never decided
        for seq, t0 in enumerate(starts):
            client.send(client.packet(_events(t0, seed=seq), seq))
            if seq == 1:  # published before the failing one holds the second thread
                assert spin_until(lambda: len(outputs) == 2, 20)
        assert spin_until(lambda: node.engine.counters.events_in == 4 * 300, 20)
        thread = node.engine.pipe._steps._thread
        assert thread.is_alive() and node.engine.held_messages() == 2

        stop = node.worker.stop

        def stop_then_fail(timeout_s):  # the second thread fails only after the worker ended
            stop(timeout_s)
            RELEASE.set()

        monkeypatch.setattr(node.worker, "stop", stop_then_fail)
        capfd.readouterr()
        node.finish(timeout_s=5.0)  # reports, does not raise (the node's policy for failures)
        assert node.engine.pipe is None and not thread.is_alive()  # closed all the same
        err_lines = [ln for ln in capfd.readouterr().err.splitlines() if "end of stream" in ln]
        assert len(err_lines) == 1 and "failed on purpose" in err_lines[0]
        assert "2 held message(s) not published" in err_lines[0]
        assert spin_until(lambda: any(d.get("messages_rejected") == 2 for d in diags), 10), diags
        assert len(outputs) == 2  # the two decided messages, nothing after the failure
        assert composed == []  # the node never computes the pipeline score it does not read
    finally:
        RELEASE.set()
        if node is not None:
            node.destroy_node()
        client.close()
