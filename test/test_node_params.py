"""Pure pieces of the node: config <-> flat ROS parameters, diagnostics counters (no DDS)."""
import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")

from eventfx_core.errors import ConfigError  # noqa: E402
from eventfx_core.pipeline_config import parse_params  # noqa: E402
from eventfx_ros.diagnostics import NodeStats, status_values, to_diagnostic_array  # noqa: E402
from eventfx_ros.params import flatten, from_ros_value, to_overlay_value, to_params  # noqa: E402

PARAMS = {"input_topic": "/cam/events", "reliable": True, "stages": ["hot_pixel", "baf"],
          "device": "cpu", "baf": {"time_window_us": 3000}, "hot_pixel": {"max_rate_hz": 50.0}}


def test_flat_parameters_round_trip_through_the_config_check():
    from eventfx_core.pipeline_config import DenoiseConfig

    node, pipe = parse_params(PARAMS)
    flat = flatten(DenoiseConfig(node=node, pipeline=pipe, base_dir=None))
    assert flat["baf.time_window_us"] == 3000 and flat["input_topic"] == "/cam/events"
    assert flat["stages"] == ["hot_pixel", "baf"]
    node2, pipe2 = parse_params(to_params(flat))
    assert node2 == node and pipe2 == pipe
    flat["baf.time_window_us"] = -1
    with pytest.raises(ConfigError, match="time_window_us"):
        parse_params(to_params(flat))


def test_ros_values_in_config_terms():
    assert from_ros_value(None, ["baf"]) == []  # `stages: []` in a params file arrives unset
    assert from_ros_value([""], ["baf"]) == []  # the overlay spelling of an empty list
    assert from_ros_value(np.array([1, 2]), [0]) == [1, 2]
    assert from_ros_value(None, None) is None and from_ros_value(0.5, 0.1) == 0.5
    assert to_overlay_value([]) == [""] and to_overlay_value(["baf"]) == ["baf"]


def test_stats_report_rates_latency_and_warn_on_trouble():
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from eventfx_core.stream_engine import StreamCounters

    s, counters = NodeStats(), StreamCounters()  # the node reports both, as here
    s._period_start = 0.0
    for i in range(100):
        s.received()
        s.decoded(1000)
        s.published(250, latency_s=(i + 1) * 1e-3)  # 1..100 ms
    r = s.report(now=2.0, engine=counters.as_dict())
    assert r["input_event_rate_ev_s"] == pytest.approx(50_000)
    assert r["output_event_rate_ev_s"] == pytest.approx(12_500)
    assert r["kept_fraction"] == pytest.approx(0.25)
    assert r["latency_p50_ms"] == pytest.approx(50.5)
    assert r["latency_p99_ms"] == pytest.approx(99.01)
    assert r["messages_in"] == r["messages_out"] == 100
    ok = to_diagnostic_array(r, Time(), "n: event denoising", "/events", previous={})
    assert ok.status[0].level == DiagnosticStatus.OK
    counters.messages_rejected += 1
    r2 = s.report(now=3.0, engine=counters.as_dict())
    assert r2["input_event_rate_ev_s"] == 0 and np.isnan(r2["latency_p50_ms"])  # new period
    warn = to_diagnostic_array(r2, Time(), "n: event denoising", "/events", previous=r)
    assert warn.status[0].level == DiagnosticStatus.WARN and "messages_rejected" in warn.status[0].message
    assert status_values(warn.status[0])["messages_rejected"] == 1
