"""ROS 2 node: event messages in, the same messages with only the kept events out.

    denoise_node --ros-args --params-file config/denoise.yaml [-r events:=/cam0/events]
    python -m eventfx_ros.denoise_node --ros-args --params-file config/denoise.yaml

The node keeps only ROS: its parameters (``params``), its worker thread and queue
(``worker``), publishing and ``/diagnostics``. Every message goes through
``eventfx_core.stream_engine.StreamEngine`` — the code ``eventfx denoise`` runs — so a bag
replayed through the node gives the same events as offline, unless the latency budget sent a
message to the fallback filter (``latency_budget_ms``, ``fallback``; counted as
``messages_fallback`` / ``events_fallback``; see ``eventfx_core.latency_budget``).

Start-up fails fast: parameters, config file, device, stage set and checkpoints are checked
(every stage is built and run once) before the node subscribes; a wrong one ends the node
with one line (exit 2). The output publisher exists, and has matched the subscribers already
waiting on the output topic, before the node subscribes to its input (also with
``input_type: auto``), so a waiting subscriber gets every message.

Bad input (garbage payloads, unknown encodings, wrong sizes, out-of-range pixels, backwards
time, empty or oversized messages) is warned about (throttled per kind), counted in
``/diagnostics`` and skipped; the node keeps going.
"""
from __future__ import annotations

import copy
import importlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions

from eventfx_core.codecs import ENCODERS
from eventfx_core.codecs.messages import (EVENT_PACKET, EVENT_TYPES, TopicCodec, build_message,
                                          canonical_type)
from eventfx_core.errors import ConfigError, EventfxError
from eventfx_core.events import Events
from eventfx_core.latency_budget import LatencyBudget
from eventfx_core.pipeline_config import (DenoiseConfig, NodeConfig, PipelineConfig,
                                          default_config_path, load_denoise_config, parse_params)
from eventfx_core.stream_engine import FALLBACK, LEARNED, StreamEngine

from .dds_profile import use_profile
from .diagnostics import NodeStats, to_diagnostic_array
from .live_view import LiveView
from .params import apply_changes, declare_all, flatten, to_params
from .qos import diagnostics_qos, event_qos
from .worker import Worker

NODE_NAME = "eventfx_denoise"
WARN_EVERY_S = 2.0  # throttle of the bad-input warnings, per kind
FALLBACK_BATCH = 64  # queued messages the fallback takes at once
MATCH_WAIT_S = 3.0  # at most this long for the output to match subscribers already waiting


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


def warm_up_codecs(msgtype: str) -> None:
    """Run a few synthetic events through every codec path of ``msgtype``, so numba compiles
    (or loads its cache) before the first real message arrives."""
    n, w, h = 64, 64, 48
    rng = np.random.default_rng(0)
    ev = Events.from_arrays(np.sort(rng.integers(0, 20_000, n)), rng.integers(0, w, n),
                            rng.integers(0, h, n), rng.integers(0, 2, n), w, h)
    for enc in (ENCODERS if msgtype == EVENT_PACKET else (None,)):
        codec = TopicCodec(msgtype)
        msg = codec.deserialize(codec.serialize(build_message(
            msgtype, ev, header_stamp_ns=0, seq=0, encoding=enc)))
        decoded = codec.decode(msg)
        codec.serialize(codec.rewrite(msg, decoded, np.arange(len(decoded.events)) % 2 == 0))


class DenoiseNode(Node):
    """Subscribes ``input_topic``, publishes the kept events on ``output_topic`` and
    ``/diagnostics``. ``config`` gives the parameter defaults (a params file on the command line
    still overrides them); ``qos`` replaces the QoS built from ``reliable``/``queue_depth``.
    Raises ``EventfxError`` (one line) when anything is wrong, before subscribing."""

    def __init__(self, config: DenoiseConfig | None = None, *, qos: QoSProfile | None = None,
                 node_name: str = NODE_NAME, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        base = config or fallback_config()
        self._base_dir = base.base_dir
        self._defaults = flatten(base)
        self._flat = declare_all(self, self._defaults, self._parameter_overrides)
        node_cfg, pipe_cfg = parse_params(to_params(self._flat), "parameters")  # ConfigError: bad
        self.node_config: NodeConfig = node_cfg
        self.stats = NodeStats()
        self._prev_report: dict = {}
        self._lock = threading.Lock()  # guards the engine (worker) against parameter changes
        fallback = list(node_cfg.fallback) if node_cfg.latency_budget_ms > 0 else None
        self.engine = StreamEngine(pipe_cfg, self._base_dir, fallback=fallback,
                                   max_message_bytes=node_cfg.max_message_bytes)
        t0 = time.monotonic()
        try:
            self.engine.check()  # builds and runs every stage once: bad checkpoints fail here
            if node_cfg.sensor_size:  # known camera: no fallback period while checkpoints load
                self.engine.prepare(tuple(node_cfg.sensor_size))
        except EventfxError:
            raise
        except Exception as exc:  # torch/numba errors while loading: still one line
            raise ConfigError(f"building the stages failed: {type(exc).__name__}: {exc}") from None
        self.get_logger().info(f"stages built and warmed up in {time.monotonic() - t0:.2f} s "
                               f"(device {pipe_cfg.device}, {pipe_cfg.threads} pipeline thread(s))")
        try:
            self.budget = (LatencyBudget(node_cfg.latency_budget_ms * 1e-3, hold_s=pipe_cfg.hold_us() * 1e-6)
                           if fallback else None)
        except ValueError as exc:
            raise ConfigError(f"latency_budget_ms: {exc}") from None
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._qos = qos or event_qos(node_cfg.reliable, node_cfg.queue_depth)
        self._warned: dict[str, float] = {}
        self._builder: threading.Thread | None = None
        self._built: dict = {}
        self._sub = self._pub = self._view_pub = None
        self.input_type: str | None = None
        self._input_topic = self.resolve_topic_name(node_cfg.input_topic)
        self._output_topic = self.resolve_topic_name(node_cfg.output_topic)
        self.worker = Worker(self._handle, node_cfg.worker_queue, on_drop=self._on_queue_drop,
                             on_error=self._on_error, on_busy=self.stats.busy, on_idle=self._collect)
        self.engine.set_on_ready(self.worker.poke)  # threads: 2: messages finished after push
        self._diag_pub = self.create_publisher(self._diag_type(), "/diagnostics", diagnostics_qos())
        self._diag_timer = self.create_timer(node_cfg.diagnostics_period_s, self.publish_diagnostics)
        self.live_view = None
        if node_cfg.live_view_hz > 0:
            from sensor_msgs.msg import Image

            self.live_view = LiveView(pipe_cfg.stages, list(node_cfg.fallback) if fallback else [])
            self._view_pub = self.create_publisher(Image, "events_view", 2)
            self.create_timer(1.0 / node_cfg.live_view_hz, self._publish_view)
            self.get_logger().info(f"live view on {self.resolve_topic_name('events_view')}: input | "
                                   f"kept | removed ({self.live_view.legend()})")
        self._match_timer = self._discover_timer = None
        if node_cfg.input_type == "auto":
            self.get_logger().info(f"waiting for a publisher on {self._input_topic} to learn its type")
            self._discover_timer = self.create_timer(0.1, self._discover_type)
        else:
            self._start(node_cfg.input_type)

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params) -> SetParametersResult:
        """Validate a change with the config check; apply run-time ones to the engine."""
        with self._lock:
            error, new = apply_changes(self._flat, self._defaults, params, self.engine)
            changed = [n for n in new if new[n] != self._flat[n]]
            self._flat = new
        if error:
            return SetParametersResult(successful=False, reason=error)
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
        self.destroy_timer(self._discover_timer)
        self._discover_timer = None
        self._start(usable[0])

    def _start(self, msgtype: str) -> None:
        """Create the output publisher; subscribe once it has matched the subscribers that are
        already waiting on the output topic (at most ``MATCH_WAIT_S``)."""
        msgtype = canonical_type(msgtype)
        self.input_type = msgtype
        warm_up_codecs(msgtype)
        self.engine.codec = TopicCodec(msgtype)
        # A copy each: rclpy writes the overridden policies into the profile it is given.
        self._pub = self.create_publisher(message_class(msgtype), self.node_config.output_topic,
                                          copy.copy(self._qos), qos_overriding_options=self._qos_options())
        waiting = self.count_subscribers(self._output_topic)
        deadline = time.monotonic() + MATCH_WAIT_S

        def subscribe_when_matched():
            if self._pub.get_subscription_count() < waiting and time.monotonic() < deadline:
                return
            self.destroy_timer(self._match_timer)
            self._subscribe(msgtype)

        self._match_timer = self.create_timer(0.02, subscribe_when_matched)

    @staticmethod
    def _qos_options() -> QoSOverridingOptions:
        """``qos_overrides./topic.publisher|subscription.reliability`` etc. in a params file."""
        return QoSOverridingOptions.with_default_policies()

    def _subscribe(self, msgtype: str) -> None:
        self._sub = self.create_subscription(message_class(msgtype), self.node_config.input_topic,
                                             self._on_message, copy.copy(self._qos), raw=True,
                                             qos_overriding_options=self._qos_options())
        rel = self._qos.reliability.name.lower()
        budget = f"{self.node_config.latency_budget_ms:g} ms budget, fallback " \
                 f"{', '.join(self.node_config.fallback)}" if self.budget else "no latency budget"
        self.get_logger().info(
            f"{self._input_topic} ({msgtype}, {rel}, depth {self._qos.depth}) -> {self._output_topic}; "
            f"stages: {', '.join(self.engine.config.stages) or 'none (pass-through)'}; {budget}")

    # ------------------------------------------------------------------ receive (executor)
    def _on_message(self, raw: bytes) -> None:
        self.stats.received()
        self.stats.queue_depth(self.worker.put(raw))

    def _on_queue_drop(self) -> None:
        self.stats.count("queue_drops")
        self.engine.note_unread()  # its seq gap is not a DDS loss
        self._warn("queue", "worker queue full: dropping the oldest message (processing is "
                            "slower than the input)")

    def _on_error(self, exc: Exception) -> None:
        self._warn("error", f"message dropped: {type(exc).__name__}: {exc}")
        with self._lock:
            self.engine.counters.messages_rejected += 1  # the engine's count is the one reported
            self.engine.discard_state()  # its state may be half-updated: rebuild on the next message

    def _warn(self, kind: str, text: str) -> None:
        """A warning, at most one per kind every ``WARN_EVERY_S``."""
        now = time.monotonic()
        if now - self._warned.get(kind, -1e9) >= WARN_EVERY_S:
            self._warned[kind] = now
            self.get_logger().warning(text)

    # ------------------------------------------------------------------ processing (worker)
    def _handle(self, raw: bytes, recv_ns: int) -> None:
        t0 = time.monotonic()
        with self._lock:
            self._install_built()
            route = LEARNED
            if self.budget is not None:
                held = self.engine.oldest_held()
                route = self.budget.route(recv_ns * 1e-9, len(raw),
                                          None if held is None else held * 1e-9,
                                          self.worker.queued_bytes)
                if route == LEARNED and self.engine.pipe is None:
                    route = FALLBACK  # the learned pipeline is still being built (first message)
            n_in, builds = self.engine.counters.events_in, self.engine.builds
            n_bytes = len(raw)
            if route == FALLBACK:  # the backlog goes through the fallback in one call
                batch = [(raw, recv_ns)] + self.worker.take_queued(FALLBACK_BATCH - 1)
                n_bytes = sum(len(r) for r, _ in batch)
                decisions = self.engine.push_fallback_batch(batch)
            else:
                decisions = self.engine.push_message(raw, tag=recv_ns, route=route)
            built = self.engine.builds != builds
            if self.budget is not None and self.engine.pipe is None and self._builder is None:
                self._build_in_background(self.engine.sensor)
            self.stats.decoded(self.engine.counters.events_in - n_in)
            notes = self.engine.take_notes()
        for kind, text in notes:
            self._warn(kind, text)
        self._publish(decisions)
        if self.budget is not None and not built:  # a pipeline build is no cost of the route
            self.budget.observe(route, n_bytes, time.monotonic() - t0)

    def _collect(self) -> None:
        """Publish what the pipeline's second thread finished since (``threads: 2``)."""
        with self._lock:
            decisions = self.engine.collect()
        self._publish(decisions)

    def _build_in_background(self, sensor) -> None:
        """Load the learned pipeline for this sensor in a thread; the fallback decides meanwhile
        (with a latency budget the first messages never wait for checkpoints to load)."""
        result: dict = {}

        def build():
            try:
                result["pipe"] = self.engine.build(sensor)
            except Exception as exc:  # checked at start; a failure here is retried next message
                result["error"] = exc

        self._built = result
        self._builder = threading.Thread(target=build, name="eventfx_build", daemon=True)
        self._builder.start()

    def _install_built(self) -> None:
        if self._builder is None or self._builder.is_alive():
            return
        self._builder = None
        built, self._built = self._built, {}  # install closes a pipeline it does not use
        if "pipe" in built and self.engine.install(built["pipe"]):
            self.get_logger().info(f"learned stages ready for {self.engine.sensor[0]}x"
                                   f"{self.engine.sensor[1]} events")
        elif "error" in built:
            self._warn("build", f"building the stages failed: {built['error']}")

    def _publish(self, decisions, live: bool = True) -> None:
        for d in decisions:
            self._pub.publish(self.engine.encode(d))
            latency = (time.monotonic_ns() - d.tag.tag) * 1e-9 if live else None
            if latency is not None and self.budget is not None and latency > self.budget.budget_s:
                self.stats.count("messages_late")
            self.stats.published(int(np.count_nonzero(d.keep)), latency)
            if self.live_view is not None:
                self.live_view.add(d.events, d.keep, d.removed_by, d.tag.route == FALLBACK)

    def _publish_view(self) -> None:
        img = self.live_view.take()
        if img is None:
            return
        from sensor_msgs.msg import Image

        msg = Image(height=img.shape[0], width=img.shape[1], encoding="rgb8", is_bigendian=0,
                    step=img.shape[1] * 3, data=img.tobytes())
        msg.header.stamp = self.get_clock().now().to_msg()
        self._view_pub.publish(msg)

    # ------------------------------------------------------------------ diagnostics, shutdown
    def publish_diagnostics(self) -> None:
        report = self.stats.report(engine=self.engine.counters.as_dict())
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
        (not counted as live latency) and a last diagnostics message, and wait (bounded) until
        subscribers acknowledged. If the flush fails (e.g. the pipeline's second thread failed
        after the worker stopped), the node does what it does for any failed message: one
        error line, the messages the pipeline still held counted as ``messages_rejected``,
        and no raise; the engine is closed and the last diagnostics published all the same."""
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        self.worker.stop(timeout_s)
        if self._builder is not None:  # a pipeline still loading in the background: never used
            self._builder.join(timeout_s)
            if "pipe" in self._built:
                self._built.pop("pipe").close()
        decisions = []
        try:
            with self._lock:
                decisions = self.engine.flush()
        except Exception as exc:
            with self._lock:
                lost = self.engine.held_messages()
                self.engine.counters.messages_rejected += lost
            self.get_logger().error(f"end of stream: flushing the pipeline failed ({type(exc).__name__}: "
                                    f"{exc}); {lost} held message(s) not published")
        finally:
            with self._lock:
                self.engine.close()
        try:
            if self._pub is not None:
                self._publish(decisions, live=False)
        finally:
            self.publish_diagnostics()
            for pub in (self._pub, self._diag_pub):
                if pub is not None:
                    pub.wait_for_all_acked(Duration(seconds=timeout_s))


def make_executor():
    """rclpy's EventsExecutor where it exists (its C++ loop takes messages several times
    faster than the Python one: it matters at thousands of messages per second), else the
    SingleThreadedExecutor."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return SingleThreadedExecutor()
    return EventsExecutor()


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
    # Our own SIGINT/SIGTERM handling: stop spinning, then flush and publish before shutdown.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node = None
    try:
        pfile = _params_file(args)
        config = load_denoise_config(pfile) if pfile else None  # missing file: one line, exit 2
        use_profile()  # Fast DDS: large best-effort packets need a bigger SHM segment (dds_profile.py)
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = DenoiseNode(config)
        executor = make_executor()
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
