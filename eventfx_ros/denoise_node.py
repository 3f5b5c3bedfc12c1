"""ROS 2 node: event messages in, the same messages with only the kept events out.

    denoise_node --ros-args --params-file config/denoise.yaml [-p input_topic:=/cam/events]
    python -m eventfx_ros.denoise_node --ros-args --params-file config/denoise.yaml

The node is a thin adapter: raw CDR bytes from the subscription go through
``eventfx_core.codecs.messages.TopicCodec`` (decode) and ``eventfx_core.pipeline.Pipeline`` (keep
mask), and the rewritten message (same type, encoding, header and seq) is published as raw
bytes, one output message per input message — the very code and bytes that the offline
``eventfx denoise`` runs, so a bag replayed through the node gives the same events.

Threads: the executor thread only takes the bytes and appends them to a bounded queue (full:
the oldest message is dropped and counted); one worker thread decodes, runs the pipeline and
publishes. Bad input (garbage payloads, unknown encodings, wrong sizes, out-of-range pixels,
backwards time, empty or oversized messages) is warned about (throttled), counted in
``/diagnostics`` and skipped; the node keeps going.
"""
from __future__ import annotations

import collections
import importlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions

import numpy as np

from eventfx_core.codecs import ENCODERS
from eventfx_core.errors import ConfigError, EventfxError
from eventfx_core.events import Events
from eventfx_core.codecs.messages import (EVENT_PACKET, EVENT_TYPES, TopicCodec, build_message,
                                          canonical_type, message_seq)
from eventfx_core.pipeline import Pipeline
from eventfx_core.pipeline_config import (NODE_KEYS, DenoiseConfig, NodeConfig, PipelineConfig,
                                          default_config_path, load_denoise_config, parse_params)
from eventfx_core.stages import stage_class

from .dds_profile import use_profile
from .diagnostics import NodeStats, to_diagnostic_array
from .params import flatten, from_ros_value, to_params, to_ros_value
from .qos import diagnostics_qos, event_qos

NODE_NAME = "eventfx_denoise"
WARN_EVERY_S = 2.0  # throttle of the bad-input warnings


def message_class(msgtype: str):
    """The rclpy message class of ``pkg/msg/Name`` (rosidl_runtime_py is not available here)."""
    pkg, _, name = canonical_type(msgtype).split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def fallback_config() -> DenoiseConfig:
    """The packaged config/denoise.yaml, or the dataclass defaults when it cannot be found."""
    try:
        return load_denoise_config(default_config_path())
    except ConfigError:
        return DenoiseConfig(node=NodeConfig(), pipeline=PipelineConfig(), base_dir=Path.cwd())


def warm_up(msgtype: str, pipe_cfg: PipelineConfig, base_dir: Path | None) -> None:
    """Run a few synthetic events through every codec path and a throwaway pipeline, so numba
    compiles (or loads its cache, ~0.5 s per codec) before the first real message arrives."""
    n, w, h = 64, 64, 48
    rng = np.random.default_rng(0)
    ev = Events.from_arrays(np.sort(rng.integers(0, 20_000, n)), rng.integers(0, w, n),
                            rng.integers(0, h, n), rng.integers(0, 2, n), w, h)
    encodings = ENCODERS if msgtype == EVENT_PACKET else (None,)
    for enc in encodings:
        codec = TopicCodec(msgtype)
        msg = codec.deserialize(codec.serialize(build_message(
            msgtype, ev, header_stamp_ns=0, seq=0, encoding=enc)))
        decoded = codec.decode(msg)
        codec.serialize(codec.rewrite(msg, decoded, np.arange(len(decoded.events)) % 2 == 0))
    pipe = Pipeline(pipe_cfg, sensor=(w, h), base_dir=base_dir)
    pipe.push(ev)
    pipe.flush()


class DenoiseNode(Node):
    """Subscribes ``input_topic``, publishes the kept events on ``output_topic`` and
    ``/diagnostics``. ``config`` gives the parameter defaults (a params file on the command line
    still overrides them); ``qos`` replaces the QoS built from ``reliable``/``queue_depth``."""

    def __init__(self, config: DenoiseConfig | None = None, *, qos: QoSProfile | None = None,
                 node_name: str = NODE_NAME, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        base = config or fallback_config()
        self._base_dir = base.base_dir
        self._defaults = flatten(base)
        self._flat = self._declare_parameters(self._defaults)
        node_cfg, pipe_cfg = parse_params(to_params(self._flat), "parameters")  # ConfigError: bad
        self.node_config: NodeConfig = node_cfg
        self._pipe_cfg: PipelineConfig = pipe_cfg
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._qos = qos or event_qos(node_cfg.reliable, node_cfg.queue_depth)
        self.stats = NodeStats()
        self._prev_report: dict = {}
        self._lock = threading.Lock()  # guards the pipeline (worker) against parameter changes
        self._pipe: Pipeline | None = None
        self._codec: TopicCodec | None = None
        self._last_seq: int | None = None
        self._unsequenced_rejects = 0  # rejected before their seq could be read
        self._sub = self._pub = None
        self.input_type: str | None = None

        self._queue: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="eventfx_worker", daemon=True)

        self._diag_pub = self.create_publisher(
            self._diag_type(), "/diagnostics", diagnostics_qos())
        self._diag_timer = self.create_timer(node_cfg.diagnostics_period_s, self.publish_diagnostics)
        self._input_topic = self.resolve_topic_name(node_cfg.input_topic)
        self._discover_timer = None
        self._worker.start()
        if node_cfg.input_type == "auto":
            self.get_logger().info(f"waiting for a publisher on {self._input_topic} to learn its type")
            self._discover_timer = self.create_timer(0.1, self._discover_type)
        else:
            self._start(node_cfg.input_type)

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """Declare every config key (defaults, plus any key a params file brings, so an
        unknown key is rejected by the config check instead of silently ignored)."""
        names = list(defaults) + [n for n in self._parameter_overrides if n not in defaults
                                  and not n.startswith("qos_overrides.") and n != "use_sim_time"]
        flat = {}
        for name in names:
            default = defaults.get(name)
            desc = ParameterDescriptor(dynamic_typing=True,
                                       read_only=False, description=self._describe(name))
            value = self.declare_parameter(name, to_ros_value(default), desc).value
            flat[name] = from_ros_value(value, default)
        return flat

    @staticmethod
    def _describe(name: str) -> str:
        if name in NODE_KEYS:
            return f"node: {name} (fixed at start)"
        return f"pipeline: {name}"

    def _runtime_names(self, pipe_cfg: PipelineConfig) -> set[str]:
        if self._pipe is not None:
            return set(self._pipe.runtime_params())
        return {f"{name}.{f}" for name in pipe_cfg.stage_configs
                for f in getattr(stage_class(name), "RUNTIME_PARAMS", ())}

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate a change with the config check; apply run-time ones to the pipeline."""
        new = dict(self._flat)
        for p in params:
            if p.name not in new:
                return SetParametersResult(successful=False, reason=f"{p.name}: unknown parameter")
            new[p.name] = from_ros_value(p.value, self._defaults.get(p.name))
        changed = [n for n in new if new[n] != self._flat[n]]
        if not changed:
            return SetParametersResult(successful=True)
        try:
            _, pipe_cfg = parse_params(to_params(new), "parameters")
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        with self._lock:
            runtime = self._runtime_names(self._pipe_cfg)
            fixed = [n for n in changed if n not in runtime]
            if fixed:
                return SetParametersResult(successful=False, reason=(
                    f"{', '.join(fixed)}: not changeable at run time (restart the node); "
                    f"changeable: {', '.join(sorted(runtime)) or 'none'}"))
            if self._pipe is not None:
                done = []
                for n in changed:
                    try:
                        self._pipe.set_param(n, new[n])
                        done.append(n)
                    except ConfigError as exc:
                        for m in done:  # all or nothing
                            self._pipe.set_param(m, self._flat[m])
                        return SetParametersResult(successful=False, reason=str(exc))
            self._flat, self._pipe_cfg = new, pipe_cfg
        for n in changed:
            self.get_logger().info(f"parameter {n} = {new[n]!r}")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ input type, topics
    @staticmethod
    def _diag_type():
        from diagnostic_msgs.msg import DiagnosticArray
        return DiagnosticArray

    def _discover_type(self) -> None:
        """``input_type: auto``: take the type of the first publisher on the input topic."""
        types = dict(self.get_topic_names_and_types()).get(self._input_topic, [])
        if not types:
            return
        usable = [t for t in types if canonical_type(t) in EVENT_TYPES]
        if not usable:
            self.get_logger().error(f"{self._input_topic} has type {', '.join(types)}, not one of "
                                    f"{', '.join(EVENT_TYPES)}; still waiting",
                                    throttle_duration_sec=10.0)
            return
        if len(types) > 1:
            self.get_logger().warning(f"{self._input_topic} has several types {types}; using {usable[0]}")
        self._discover_timer.cancel()
        self.destroy_timer(self._discover_timer)
        self._discover_timer = None
        self._start(usable[0])

    def _start(self, msgtype: str) -> None:
        msgtype = canonical_type(msgtype)
        cls = message_class(msgtype)
        self.input_type = msgtype
        t0 = time.monotonic()
        warm_up(msgtype, self._pipe_cfg_copy(), self._base_dir)
        self.get_logger().info(f"warmed up codecs and stages in {time.monotonic() - t0:.2f} s")
        self._codec = TopicCodec(msgtype)
        self._pub = self.create_publisher(cls, self.node_config.output_topic, self._qos)
        self._sub = self.create_subscription(cls, self.node_config.input_topic, self._on_message,
                                             self._qos, raw=True)
        rel = self._qos.reliability.name.lower()
        self.get_logger().info(f"{self._input_topic} ({msgtype}, {rel}, depth {self._qos.depth}) -> "
                               f"{self.resolve_topic_name(self.node_config.output_topic)}; "
                               f"stages: {', '.join(self._pipe_cfg.stages) or 'none (pass-through)'}")

    # ------------------------------------------------------------------ receive (executor)
    def _on_message(self, raw: bytes) -> None:
        now = time.monotonic_ns()
        self.stats.received()
        with self._cv:
            if len(self._queue) >= self.node_config.worker_queue:
                self._queue.popleft()
                self.stats.count("queue_drops")
                self._unsequenced_rejects += 1  # its seq gap is not a DDS loss
                self.get_logger().warning("worker queue full: dropping the oldest message "
                                          "(processing is slower than the input)",
                                          throttle_duration_sec=WARN_EVERY_S)
            self._queue.append((raw, now))
            self.stats.queue_depth(len(self._queue))
            self._cv.notify()

    # ------------------------------------------------------------------ processing (worker)
    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait()
                if not self._queue:
                    return
                raw, recv_ns = self._queue.popleft()
            t0 = time.perf_counter()
            try:
                self._process(raw, recv_ns)
            except Exception as exc:  # never let one message stop the node
                self.stats.count("messages_rejected")
                self.get_logger().error(f"message dropped: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=WARN_EVERY_S)
                with self._lock:
                    self._pipe = None  # its state may be half-updated: rebuild on the next message
            finally:
                self.stats.busy(time.perf_counter() - t0)

    def _reject(self, why: str) -> None:
        self.stats.count("messages_rejected")
        self.get_logger().warning(f"message rejected: {why}", throttle_duration_sec=WARN_EVERY_S)

    def _process(self, raw: bytes, recv_ns: int) -> None:
        if len(raw) > self.node_config.max_message_bytes:
            self._note_unread()
            return self._reject(f"{len(raw)} bytes is over max_message_bytes "
                                f"({self.node_config.max_message_bytes})")
        codec = self._codec
        try:
            msg = codec.deserialize(raw)
        except EventfxError as exc:
            self._note_unread()
            return self._reject(str(exc))
        self._track_seq(message_seq(msg))
        try:
            decoded = codec.decode(msg)
        except EventfxError as exc:
            return self._reject(str(exc))
        ev = decoded.events
        if decoded.n_out_of_range:
            self.stats.count("events_out_of_range", decoded.n_out_of_range)
            self.get_logger().warning(f"{decoded.n_out_of_range} events outside the {ev.width}x"
                                      f"{ev.height} sensor dropped", throttle_duration_sec=WARN_EVERY_S)
        if decoded.n_before_time:
            self.stats.count("events_before_time", decoded.n_before_time)
        if ev.width <= 0 or ev.height <= 0 or ev.width > 65535 or ev.height > 65535:
            return self._reject(f"invalid sensor size {ev.width}x{ev.height}")
        if len(ev) == 0:
            self.stats.count("messages_empty")
        self.stats.decoded(len(ev))
        with self._lock:
            decisions = []
            if self._pipe is not None and self._pipe.sensor != ev.sensor_size:
                self.get_logger().warning(f"sensor size changed {self._pipe.sensor} -> "
                                          f"{ev.sensor_size}: new pipeline state")
                decisions += self._pipe.flush()
                self._pipe = None
            if self._pipe is None:
                self._pipe = Pipeline(self._pipe_cfg_copy(), sensor=ev.sensor_size,
                                      base_dir=self._base_dir)
            pipe = self._pipe
            oor, resets = pipe.stats.out_of_range, pipe.stats.resets
            decisions += pipe.push(ev, tag=(msg, decoded, recv_ns, raw))
            self._count_hygiene(pipe, oor, resets)
        self._publish(decisions)

    def _pipe_cfg_copy(self) -> PipelineConfig:
        return parse_params(to_params(self._flat), "parameters")[1]

    def _count_hygiene(self, pipe: Pipeline, oor: int, resets: int) -> None:
        if pipe.stats.out_of_range > oor:
            n = pipe.stats.out_of_range - oor
            self.stats.count("events_out_of_range", n)
            self.get_logger().warning(f"{n} events outside the {pipe.sensor[0]}x{pipe.sensor[1]} "
                                      "sensor dropped", throttle_duration_sec=WARN_EVERY_S)
        if pipe.stats.resets > resets:
            self.stats.count("resets", pipe.stats.resets - resets)
            self.get_logger().warning("time went backwards: pipeline state reset",
                                      throttle_duration_sec=WARN_EVERY_S)

    def _note_unread(self) -> None:
        with self._cv:
            self._unsequenced_rejects += 1

    def _track_seq(self, seq: int | None) -> None:
        if seq is None:
            return
        last, self._last_seq = self._last_seq, seq
        # A gap is a loss unless the missing messages arrived and were rejected or dropped unread.
        with self._cv:
            unread, self._unsequenced_rejects = self._unsequenced_rejects, 0
        if last is not None and seq > last + 1 + unread:
            lost = seq - last - 1 - unread
            self.stats.count("messages_lost", lost)
            self.get_logger().warning(f"{lost} message(s) lost (seq {last} -> {seq})",
                                      throttle_duration_sec=WARN_EVERY_S)

    def _publish(self, decisions) -> None:
        for d in decisions:
            msg, decoded, recv_ns, raw = d.tag
            n_kept = int(np.count_nonzero(d.keep))
            if n_kept == len(d.keep) and not decoded.n_out_of_range and not decoded.n_before_time:
                self._pub.publish(raw)  # nothing removed: the input bytes are the output message
            else:
                self._pub.publish(self._codec.serialize(self._codec.rewrite(msg, decoded, d.keep)))
            self.stats.published(n_kept, (time.monotonic_ns() - recv_ns) * 1e-9)

    # ------------------------------------------------------------------ diagnostics, shutdown
    def publish_diagnostics(self) -> None:
        report = self.stats.report()
        # Match counts: a replay (or an operator) sees that both sides of the node are connected.
        report["input_publishers"] = self._sub.get_publisher_count() if self._sub is not None else 0
        report["output_subscribers"] = self._pub.get_subscription_count() if self._pub is not None else 0
        arr = to_diagnostic_array(report, self.get_clock().now().to_msg(),
                                  name=f"{self.get_name()}: event denoising",
                                  hardware_id=self._input_topic, previous=self._prev_report)
        self._prev_report = report
        self._diag_pub.publish(arr)

    def finish(self, timeout_s: float = 5.0) -> None:
        """End of stream: process what is queued, flush the windowed stages, publish the rest
        and a last diagnostics message, and wait (bounded) until subscribers acknowledged."""
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._worker.join(timeout_s)
        with self._lock:
            decisions = self._pipe.flush() if self._pipe is not None else []
        self._publish(decisions)
        self.publish_diagnostics()
        for pub in (self._pub, self._diag_pub):
            if pub is not None:
                pub.wait_for_all_acked(Duration(seconds=timeout_s))


def _params_file(args: list[str]) -> Path | None:
    """The first ``--params-file`` of the ROS arguments: the config whose keys the node declares
    and whose folder resolves relative checkpoints (later files and ``-p`` override values)."""
    for i, a in enumerate(args[:-1]):
        if a == "--params-file":
            return Path(args[i + 1])
    return None


def main(args: list[str] | None = None) -> int:
    args = list(sys.argv if args is None else args)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    use_profile()  # Fast DDS: large best-effort packets need a bigger SHM segment (dds_profile.py)
    # Our own SIGINT/SIGTERM handling: stop spinning, then flush and publish before shutdown.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = None
    try:
        pfile = _params_file(args)
        config = load_denoise_config(pfile) if pfile else None
        node = DenoiseNode(config)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
        node.finish()
        return 0
    except EventfxError as exc:
        print(f"denoise_node: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
