"""Replay a bag through the denoise node over real DDS and record what comes out.

``replay(options)`` starts ``denoise_node`` as its own process (loopback-only discovery, a
fresh ``ROS_DOMAIN_ID`` unless one is set), waits until publisher and subscribers have matched,
publishes the bag's event messages as raw CDR bytes at ``rate`` x the recorded speed (rate 0:
flow-controlled, as fast as the node returns messages; no time pressure, so the node runs
without a latency budget and its output equals ``eventfx denoise``), records the node's output and
``/diagnostics`` (raw bytes) into a rosbags bag, stops the node with SIGINT (it flushes and
publishes what its windowed stages still hold) and returns a ``ReplaySummary``.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from eventfx_core.errors import EventfxError
from eventfx_core.events import Events, concat
from eventfx_core.codecs.typestore import ros1_typestore, ros2_typestore
from eventfx_core.codecs.messages import canonical_type, message_seq
from eventfx_core.pipeline_config import PipelineConfig, default_config_path, load_denoise_config
from eventfx_core.stream_engine import StreamEngine
from eventfx_core.stages import stage_class

from .params import to_overlay_value, to_params

DIAG_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
FLOW_WINDOW = 64  # rate 0: messages in flight (published, not yet returned) before waiting
IDLE_S = 3.0  # end of bag: stop waiting for outputs after this long without progress
LAG_BUDGET_S = 0.25  # rate > 0: kept up = lossless and p99 latency under this (+ window bound)


@dataclass
class ReplayOptions:
    bag: Path  # input bag (any rosbags-readable ROS 2 bag)
    out: Path  # output bag to create (an existing one is replaced only with overwrite)
    rate: float = 1.0  # x recorded speed; 0 = flow-controlled, as fast as the node keeps up
    config: Path | None = None  # denoise params file (default: the packaged config/denoise.yaml)
    topic: str | None = None  # event topic of the bag (default: the only event topic)
    output_topic: str | None = None  # default: the config's output_topic
    reliable: bool = False  # reliable QoS for the node (lossless; drivers use best effort)
    params: dict = field(default_factory=dict)  # extra node parameters (name -> value)
    startup_timeout_s: float = 120.0  # node start + discovery (imports torch on a busy machine)
    node_log: Path | None = None  # where the node's stdout/stderr go (default: OUT.node.log)
    overwrite: bool = False  # replace existing outputs (io.output_paths policy)


@dataclass
class ReplaySummary:
    bag: str
    out: str
    topic: str
    msgtype: str
    rate: float
    stages: list
    messages_in: int  # published to the node
    messages_out: int  # received from the node
    events_in: int
    events_out: int
    kept_fraction: float
    messages_lost: int  # published but never returned (node["messages_lost"]: seq gaps it saw)
    node: dict  # the node's last /diagnostics totals
    latency_p50_ms: float  # publish -> output received (DDS both ways + node)
    latency_p99_ms: float
    node_latency_p50_ms: float  # inside the node (receive -> publish), every live message
    node_latency_p99_ms: float  # (not the end-of-stream flush), from the node's whole-run histogram
    wall_s: float  # first publish -> last live output (before the node was stopped)
    bag_duration_s: float
    events_per_s: float  # events_in / wall_s: the replay's pace (rate > 0), the throughput (rate 0)
    messages_fallback: int  # messages the node decided with its fallback filter (latency budget)
    events_fallback: int  # their events
    node_events_per_busy_s: float  # events_in / time the node's busier thread (the worker, or with
    #                                threads: 2 the pipeline's second thread) worked: its compute rate
    kept_up: bool
    kept_up_reason: str
    node_cpu_s: float = float("nan")  # CPU time of the node process (all its threads) from the
    #                                   first publish to the last output (Linux /proc; else NaN)

    def to_text(self) -> str:
        lines = [
            f"replay {self.bag} -> {self.out}",
            f"  topic {self.topic} ({self.msgtype}), rate {self.rate:g}x, "
            f"stages: {', '.join(self.stages) or 'none (pass-through)'}",
            f"  messages in/out: {self.messages_in} / {self.messages_out}, not returned: "
            f"{self.messages_lost} (lost before the node: {self.node.get('messages_lost', 0)}, "
            f"rejected: {self.node.get('messages_rejected', 0)}, queue drops: "
            f"{self.node.get('queue_drops', 0)}), resets: {self.node.get('resets', 0)}",
            f"  events in/out: {self.events_in:,} / {self.events_out:,} "
            f"(kept {100 * self.kept_fraction:.1f} %)",
            f"  fallback (latency budget): {self.messages_fallback} messages, "
            f"{self.events_fallback:,} events; published over the budget: {self.node.get('messages_late', 0)}; "
            f"dropped (fallback could not keep up): {self.node.get('messages_dropped_late', 0)}",
            f"  latency publish->output p50/p99: {self.latency_p50_ms:.2f} / {self.latency_p99_ms:.2f} ms;"
            f" receive->publish inside the node p50/p99: {self.node_latency_p50_ms:.2f} / "
            f"{self.node_latency_p99_ms:.2f} ms (both: live messages, not the final flush)",
            f"  {self.wall_s:.2f} s from first publish to last live output for {self.bag_duration_s:.2f} s "
            f"of recording: {self.events_per_s / 1e6:.2f} M events/s "
            f"{'(flow-controlled: throughput)' if self.rate == 0 else '(paced by the rate)'}; node worker busy "
            f"{self.node.get('worker_busy_us', 0) / 1e6:.2f} s"
            + (f", pipeline's second thread {self.node['second_thread_busy_us'] / 1e6:.2f} s"
               if self.node.get("second_thread_busy_us") else "")
            + f" = {self.node_events_per_busy_s / 1e6:.2f} M events/s of node compute; node CPU "
            f"{self.node_cpu_s:.2f} s = "
            f"{self.events_in / self.node_cpu_s / 1e6 if self.node_cpu_s > 0 else float('nan'):.2f}"
            f" M events per CPU-second",
            f"  kept up: {'yes' if self.kept_up else 'no'} ({self.kept_up_reason})",
        ]
        return "\n".join(lines)

    def write(self, folder: Path) -> None:
        """summary.json and summary.txt in ``folder`` (each written whole, then renamed)."""
        from eventfx_core.io.output_paths import atomic_output, make_parent

        for name, text in (("summary.json", json.dumps(asdict(self), indent=2) + "\n"),
                           ("summary.txt", self.to_text() + "\n")):
            path = Path(folder) / name
            make_parent(path, "--summary-dir")
            with atomic_output(path, keep_suffix=True) as tmp:
                tmp.write_text(text)


# ---------------------------------------------------------------------------- bag input
def read_bag(path: Path, topic: str | None) -> tuple[str, str, list[tuple[int, bytes]]]:
    """(topic, msgtype, [(timestamp_ns, raw CDR)]) of the bag's event topic, read with the io
    layer's ``BagSource`` (the same topic choice, repairs and errors as every other command);
    ROS 1 messages are converted to CDR, the bytes the node receives over DDS."""
    from eventfx_core.io.bags import BAG_ERRORS, BagSource, _bag_error

    if not Path(path).exists():
        raise EventfxError(f"{path}: no such bag")
    with BagSource(path, topic) as src:
        store = None if src.is2 else ros1_typestore()
        try:
            msgs = [(ts, bytes(raw) if store is None else bytes(store.ros1_to_cdr(raw, src.wire_msgtype)))
                    for _, ts, raw in src.reader.messages(connections=src.event_connections)]
        except BAG_ERRORS as exc:
            raise _bag_error(path, "", exc) from None
        return src.topic, src.wire_msgtype, msgs


def decode_all(msgtype: str, raws: list[bytes]) -> tuple[Events | None, list[int | None]]:
    """All events of a list of raw messages (None if none decode) and each message's seq, read
    with the stream engine's codec path (a pass-through engine: no stages)."""
    engine = StreamEngine(PipelineConfig(), msgtype=msgtype)
    parts, seqs = [], []
    for raw in raws:
        for d in engine.push_message(raw):
            seqs.append(message_seq(d.tag.msg))
            parts.append(d.events)
    if not parts:
        return None, seqs
    sizes = {p.sensor_size for p in parts}
    if len(sizes) > 1:  # a sensor-size change mid-bag: keep the last size's events
        parts = [p for p in parts if p.sensor_size == parts[-1].sensor_size]
    return concat(parts), seqs


# ---------------------------------------------------------------------------- node process
def close_session(proc, ctx, spin_stop: threading.Event) -> None:
    """End a replay or soak: stop the spinning thread, the node (if still running) and the
    client's DDS context."""
    import rclpy

    spin_stop.set()
    if proc.poll() is None:
        stop_node(proc)
    rclpy.try_shutdown(context=ctx)


def node_log_path(out: Path) -> Path:
    """Where the node's log goes by default: beside the output bag, ``OUT.node.log``."""
    out = Path(out)
    return out.parent / (out.name + ".node.log")


def params_path(log_path: Path) -> Path:
    """The node's parameter overlay, written beside its log."""
    return log_path.with_name(log_path.name + ".params.yaml")


def ros_env() -> dict[str, str]:
    """Environment for the node: loopback-only discovery, a fresh domain unless one is set."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or "LOCALHOST"
    if not env.get("ROS_DOMAIN_ID"):
        env["ROS_DOMAIN_ID"] = str(random.randint(1, 101))  # 0..101: safe port range on Linux
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_node(config: Path, params: dict, env: dict, log_path: Path) -> subprocess.Popen:
    """``denoise_node --ros-args --params-file CONFIG --params-file OVERLAY``: the overrides go
    in a second params file (typed by YAML; an empty list is written ``[""]``, see
    ``params.from_ros_value``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    overlay = params_path(log_path)
    overlay.write_text(yaml.safe_dump({"/**": {"ros__parameters": to_params(
        {k: to_overlay_value(v) for k, v in params.items()})}}))
    cmd = [sys.executable, "-m", "eventfx_ros.denoise_node", "--ros-args",
           "--params-file", str(config), "--params-file", str(overlay)]
    log = open(log_path, "w")
    try:
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def stop_node(proc: subprocess.Popen, timeout_s: float = 60.0) -> int:
    """SIGINT (the node flushes and publishes the rest), then SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _log_tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------- the replay
class _Recorder:
    """Raw output and diagnostics messages with their arrival times (executor thread)."""

    def __init__(self):
        self.outputs: list[tuple[int, int, bytes]] = []  # (monotonic ns, wall ns, raw)
        self.diags: list[tuple[int, bytes]] = []  # (wall ns, raw)
        self.last_progress = time.monotonic()
        self.node_in = 0  # messages_in the node reported last

    def on_output(self, raw: bytes) -> None:
        self.outputs.append((time.monotonic_ns(), time.time_ns(), raw))
        self.last_progress = time.monotonic()

    def on_diag(self, raw: bytes) -> None:
        self.diags.append((time.time_ns(), raw))

    def node_matched(self) -> bool:
        """The node's last report says its input and output are both connected."""
        reports = _diag_reports(self.diags[-1:])
        return bool(reports) and reports[-1].get("input_publishers", 0) >= 1 \
            and reports[-1].get("output_subscribers", 0) >= 1


def _diag_reports(diags: list[tuple[int, bytes]]) -> list[dict]:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import deserialize_message

    from .diagnostics import status_values

    out = []
    for _, raw in diags:
        arr = deserialize_message(raw, DiagnosticArray)
        for st in arr.status:
            if "event denoising" in st.name:
                out.append(status_values(st))
    return out


def replay(opt: ReplayOptions, log=print) -> ReplaySummary:
    """Run the replay; raises ``EventfxError`` with one line on user errors."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from .denoise_node import message_class
    from .qos import diagnostics_qos, event_qos

    from eventfx_core.io.output_paths import atomic_output, check_outputs
    from eventfx_core.io.stream import _rename_bag_files

    bag, out = Path(opt.bag), Path(opt.out)
    node_log = Path(opt.node_log) if opt.node_log else node_log_path(out)
    check_outputs({"--out": out, "node log": node_log, "node params": params_path(node_log)},
                  inputs=[bag, opt.config], overwrite=opt.overwrite)
    if opt.rate < 0:
        raise EventfxError(f"--rate must be >= 0, got {opt.rate}")
    config = Path(opt.config) if opt.config else default_config_path()
    cfg = load_denoise_config(config, opt.params)
    topic, msgtype, msgs = read_bag(bag, opt.topic)
    if not msgs:
        raise EventfxError(f"{bag}: {topic} has no messages")
    pub_type = canonical_type(msgtype)  # old event_array_msgs name: same fields, same bytes
    out_topic = opt.output_topic or cfg.node.output_topic
    if out_topic == topic:
        raise EventfxError(f"the output topic {out_topic} equals the input topic; pass --output-topic")
    params = {"input_topic": topic, "output_topic": out_topic, "input_type": pub_type,
              "reliable": opt.reliable}
    if opt.rate == 0:  # flow-controlled: no time pressure, decisions exactly as offline
        params["latency_budget_ms"] = 0.0
    first, _ = decode_all(msgtype, [msgs[0][1]])
    if first is not None:  # the bag's camera, as a user sets it: the stages load before input
        params["sensor_size"] = [first.width, first.height]
    params.update(opt.params)
    env = ros_env()
    proc = start_node(config, params, env, node_log)
    ctx = Context()
    rclpy.init(args=[], context=ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
    rec = _Recorder()
    spin_stop = threading.Event()
    try:
        node = Node("eventfx_replay", context=ctx)
        cls = message_class(pub_type)
        pub = node.create_publisher(cls, topic, event_qos(True, max(1000, FLOW_WINDOW)))
        sub_out = node.create_subscription(cls, out_topic, rec.on_output,
                                           event_qos(opt.reliable, 1000), raw=True)
        from diagnostic_msgs.msg import DiagnosticArray
        sub_diag = node.create_subscription(DiagnosticArray, "/diagnostics", rec.on_diag,
                                            diagnostics_qos(), raw=True)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        spinner = threading.Thread(target=lambda: _spin(executor, spin_stop), daemon=True)
        spinner.start()

        # Discovery: wait for the matches, not for a fixed time. Our side: our publisher has
        # the node's subscription, our subscriptions have the node's publishers. The node's
        # side (its output writer must know our reader, or best-effort data goes nowhere):
        # the match counts it reports in /diagnostics.
        t_end = time.monotonic() + opt.startup_timeout_s
        while not (pub.get_subscription_count() >= 1 and sub_out.get_publisher_count() >= 1
                   and sub_diag.get_publisher_count() >= 1 and rec.node_matched()):
            if proc.poll() is not None:
                raise EventfxError(f"the node exited with status {proc.returncode} before it was "
                                   f"ready:\n{_log_tail(node_log)}")
            if time.monotonic() > t_end:
                raise EventfxError(f"the node did not appear within {opt.startup_timeout_s:.0f} s "
                                   f"(log: {node_log})")
            time.sleep(0.02)
        log(f"node ready (domain {env['ROS_DOMAIN_ID']}); publishing {len(msgs)} messages of {topic} "
            f"at {'flow-controlled' if opt.rate == 0 else f'{opt.rate:g}x'} speed")

        rec.last_progress = time.monotonic()
        cpu0 = process_cpu_s(proc.pid)
        pub_ns = _publish_all(pub, msgs, opt.rate, rec, proc)
        rec.last_progress = max(rec.last_progress, time.monotonic() - 0.5 * IDLE_S)
        # Wait for the node to return everything (or stop making progress), then stop it.
        while len(rec.outputs) < len(msgs) and time.monotonic() - rec.last_progress < IDLE_S \
                and proc.poll() is None:
            time.sleep(0.01)
        n_before_stop = len(rec.outputs)
        node_cpu_s = process_cpu_s(proc.pid) - cpu0
        code = stop_node(proc)
        time.sleep(0.3)  # the node waited for our acks; let the executor hand over the last ones
        if code not in (0, None):
            log(f"warning: the node exited with status {code}; log: {node_log}")
    finally:
        close_session(proc, ctx, spin_stop)

    with atomic_output(out) as tmp:
        _write_bag(tmp, out_topic, pub_type, rec)
        _rename_bag_files(tmp, out.name)  # storage files named after OUT, not OUT.partial
    summary = _summarise(opt, cfg, bag, out, topic, msgtype, pub_type, msgs, pub_ns, rec, n_before_stop)
    summary.node_cpu_s = node_cpu_s
    return summary


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (all threads), from /proc; NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _spin(executor, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            executor.spin_once(timeout_sec=0.05)
        except Exception:  # context shut down under us: done
            return


def _publish_all(pub, msgs, rate: float, rec: _Recorder, proc) -> list[int]:
    """Publish every message; returns the monotonic publish time of each."""
    pub_ns = []
    ts0 = msgs[0][0]
    t0 = time.monotonic()
    window = FLOW_WINDOW
    for i, (ts, raw) in enumerate(msgs):
        if rate > 0:
            delay = t0 + (ts - ts0) * 1e-9 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        else:
            while i - len(rec.outputs) >= window and proc.poll() is None:
                # Windowed stages hold messages back: widen the window when nothing comes.
                if time.monotonic() - rec.last_progress > 0.5:
                    window *= 2
                    break
                time.sleep(0.0002)
        pub_ns.append(time.monotonic_ns())
        pub.publish(raw)
    return pub_ns


def _write_bag(out: Path, out_topic: str, msgtype: str, rec: _Recorder) -> None:
    from rosbags.rosbag2 import Writer

    out.parent.mkdir(parents=True, exist_ok=True)
    store = ros2_typestore()
    with Writer(out, version=8) as writer:
        c_out = writer.add_connection(out_topic, msgtype, typestore=store)
        c_diag = writer.add_connection("/diagnostics", DIAG_TYPE, typestore=store)
        for _, wall, raw in rec.outputs:
            writer.write(c_out, wall, raw)
        for wall, raw in rec.diags:
            writer.write(c_diag, wall, raw)


def _summarise(opt, cfg, bag, out, topic, msgtype, pub_type, msgs, pub_ns, rec, n_before_stop
               ) -> ReplaySummary:
    ev_in, seq_in = decode_all(msgtype, [raw for _, raw in msgs])
    ev_out, seq_out = decode_all(pub_type, [raw for _, _, raw in rec.outputs])
    n_in, n_out = len(ev_in) if ev_in is not None else 0, len(ev_out) if ev_out is not None else 0
    # Latency: match outputs to inputs by seq where messages carry one, else by order.
    if all(s is not None for s in seq_in) and len(set(seq_in)) == len(seq_in):
        index = {s: i for i, s in enumerate(seq_in)}
        pairs = [(index[s], k) for k, s in enumerate(seq_out) if s in index]
    else:
        pairs = [(k, k) for k in range(min(len(msgs), len(rec.outputs)))]
    live = [(i, k) for i, k in pairs if k < n_before_stop]  # not released by the final flush
    lat = np.array([(rec.outputs[k][0] - pub_ns[i]) * 1e-6 for i, k in live]) if live else np.array([])
    p50, p99 = (float(np.percentile(lat, 50)), float(np.percentile(lat, 99))) if lat.size else (
        float("nan"), float("nan"))
    reports = _diag_reports(rec.diags)
    totals = {k: int(v) for k, v in (reports[-1] if reports else {}).items()
              if k in ("messages_in", "messages_out", "events_in", "events_out", "messages_lost",
                       "messages_rejected", "queue_drops", "resets", "events_out_of_range",
                       "events_before_time", "messages_empty", "queue_max", "worker_busy_us",
                       "messages_fallback", "events_fallback", "messages_dropped_late", "messages_late",
                       "sensor_changes", "second_thread_busy_us")}
    last = reports[-1] if reports else {}
    lost = len(msgs) - len(rec.outputs)  # never came back: lost in DDS (the node's seq gaps),
    #                                      dropped from its queue, rejected, or lost on the way back
    n_live = min(n_before_stop, len(rec.outputs))
    wall = ((rec.outputs[n_live - 1][0] - pub_ns[0]) * 1e-9) if n_live else float("nan")
    window_s = sum(getattr(cfg.pipeline.stage_configs[s], "window_us", 0)  # windowed stages hold
                   for s in cfg.pipeline.stages if hasattr(stage_class(s), "flush")) * 1e-6  # events back
    drops = totals.get("queue_drops", 0) + totals.get("messages_dropped_late", 0)
    # the node's compute: its busier thread (the worker, or the pipeline's second one: threads: 2)
    busy_us = max(totals.get("worker_busy_us", 0), totals.get("second_thread_busy_us", 0))
    if lost or drops:
        kept_up, why = False, (f"{lost} message(s) not returned, {drops} of them dropped in the node "
                               "(worker queue full or too late even for the fallback)")
    elif opt.rate == 0:
        kept_up, why = True, "flow-controlled run: lossless"
    elif lat.size and p99 > 1e3 * (LAG_BUDGET_S + window_s):
        kept_up, why = False, f"p99 latency {p99:.0f} ms over the {1e3 * (LAG_BUDGET_S + window_s):.0f} ms budget"
    else:
        kept_up, why = True, f"lossless, p99 latency within {1e3 * (LAG_BUDGET_S + window_s):.0f} ms"
    return ReplaySummary(
        bag=str(bag), out=str(out), topic=topic, msgtype=msgtype, rate=opt.rate,
        stages=list(cfg.pipeline.stages), messages_in=len(msgs), messages_out=len(rec.outputs),
        events_in=n_in, events_out=n_out, kept_fraction=(n_out / n_in) if n_in else float("nan"),
        messages_lost=lost, node=totals, latency_p50_ms=p50, latency_p99_ms=p99,
        node_latency_p50_ms=float(last.get("run_latency_p50_ms", float("nan"))),
        node_latency_p99_ms=float(last.get("run_latency_p99_ms", float("nan"))),
        wall_s=wall, bag_duration_s=(msgs[-1][0] - msgs[0][0]) * 1e-9,
        events_per_s=(n_in / wall) if rec.outputs and wall > 0 else float("nan"),
        node_events_per_busy_s=(n_in / (busy_us * 1e-6)) if busy_us else float("nan"),
        messages_fallback=totals.get("messages_fallback", 0),
        events_fallback=totals.get("events_fallback", 0),
        kept_up=kept_up, kept_up_reason=why)
