"""A long run of the denoise node, as a camera drives it: messages lost and memory over time.

    python -m eventfx_ros.soak data/demo/emlb_demo_evt3 --minutes 30 --json out/soak/soak.json

The bag's events are looped into one continuous stream: loop ``k`` is the bag with its event
times, header stamps and ``seq`` moved on by ``k`` loop periods (the bag's span plus one
message period) and re-encoded in the bag's encoding, so the node sees a camera that never
restarts (its ``resets`` counter must stay 0; time passes 24-bit evt3 rollovers as a real
camera's does). Messages are published at ``rate`` x the recorded pace over real DDS
(loopback) to the node started as ``eventfx replay`` starts it (the packaged
``config/denoise.yaml`` by default, the bag's camera size set). The node's RSS is read from
``/proc/<pid>/status`` every ``rss_every_s``; the outputs are counted, not stored, so a soak
holds no more memory at its end than at its start. Lost = published - received.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from eventfx_core.codecs import make_encoder
from eventfx_core.codecs.messages import EVENT_PACKET, TopicCodec, build_message, canonical_type
from eventfx_core.cli.common import add_overwrite
from eventfx_core.errors import EventfxError
from eventfx_core.events import Events
from eventfx_core.pipeline_config import default_config_path, load_denoise_config

from .replay import (_diag_reports, _spin, close_session, params_path, read_bag, ros_env, start_node,
                     stop_node)

NODE_COUNTERS = ("messages_in", "messages_out", "messages_lost", "messages_rejected", "queue_drops",
                 "messages_fallback", "events_fallback", "messages_dropped_late", "messages_late",
                 "resets", "events_in", "events_out")


@dataclass
class SoakResult:
    bag: str
    config: str
    rate: float
    seconds: float  # publishing time asked
    loops: int  # times the bag went round
    messages_in: int  # published to the node
    messages_out: int  # received from the node
    messages_lost: int  # published - received
    events_in: int
    rss_kb: list = field(default_factory=list)  # [(seconds since the first publish, node VmRSS kB)]
    rss_start_kb: int = 0  # first sample (at the first publish)
    rss_end_kb: int = 0  # last sample before the node was stopped
    rss_max_kb: int = 0
    rss_change: float = 0.0  # end / start - 1
    node: dict = field(default_factory=dict)  # the node's last /diagnostics totals
    node_latency_p99_ms: float = float("nan")  # receive -> publish, whole run (node histogram)
    command: str = ""

    def to_text(self) -> str:
        n = self.node
        return "\n".join([
            f"soak {self.bag} at {self.rate:g}x for {self.seconds / 60:.1f} min ({self.loops} loops), "
            f"config {self.config}",
            f"  messages in/out: {self.messages_in} / {self.messages_out}, lost: {self.messages_lost} "
            f"(node: seq gaps {n.get('messages_lost', 0)}, queue drops {n.get('queue_drops', 0)}, "
            f"dropped late {n.get('messages_dropped_late', 0)}, rejected {n.get('messages_rejected', 0)}, "
            f"resets {n.get('resets', 0)})",
            f"  events in: {self.events_in:,}; fallback: {n.get('messages_fallback', 0)} messages, "
            f"{n.get('events_fallback', 0):,} events; node p99 receive->publish {self.node_latency_p99_ms:.1f} ms",
            f"  node RSS start/end/max: {self.rss_start_kb / 1024:.0f} / {self.rss_end_kb / 1024:.0f} / "
            f"{self.rss_max_kb / 1024:.0f} MB ({100 * self.rss_change:+.1f} %), "
            f"{len(self.rss_kb)} samples",
        ])


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in kB (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class LoopedStream:
    """The bag's messages as one endless stream: ``message(j)`` -> (due seconds, raw CDR, n events);
    ``j`` must increase from call to call (one encoder per stream, as a camera driver has)."""

    def __init__(self, msgtype: str, msgs: list[tuple[int, bytes]]):
        self.msgtype = canonical_type(msgtype)
        codec = TopicCodec(msgtype)
        self.codec = TopicCodec(self.msgtype)
        self.items = []  # (offset ns from the first message, header stamp ns, encoding, events)
        for ts, raw in msgs:
            msg = codec.deserialize(raw)
            stamp = int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)
            self.items.append((ts - msgs[0][0], stamp, getattr(msg, "encoding", None),
                               codec.decode(msg).events))
        span = msgs[-1][0] - msgs[0][0]
        step = int(np.median(np.diff([ts for ts, _ in msgs]))) if len(msgs) > 1 else 1_000_000
        self.period_ns = span + max(step, 1)
        ev_times = [e.t for *_, e in self.items if len(e)]
        ev_span_us = int(ev_times[-1][-1] - ev_times[0][0]) if ev_times else 0
        self.period_us = max(self.period_ns // 1000, ev_span_us + 1)  # events of loops never overlap
        self.period_ns = max(self.period_ns, self.period_us * 1000)
        self._encoders: dict = {}  # stateful (evt3 crosses each 24-bit wrap as the sensor does)

    def _encoder(self, enc: str, ev: Events):
        key = (enc, ev.width, ev.height)
        if key not in self._encoders:
            self._encoders[key] = make_encoder(*key)
        return self._encoders[key]

    def __len__(self) -> int:
        return len(self.items)

    def message(self, j: int) -> tuple[float, bytes, int]:
        k, i = divmod(j, len(self.items))
        off, stamp, enc, ev = self.items[i]
        shifted = Events.from_arrays(ev.t + k * self.period_us, ev.x, ev.y, ev.p, ev.width, ev.height)
        msg = build_message(self.msgtype, shifted, header_stamp_ns=stamp + k * self.period_ns, seq=j,
                            **({"encoding": enc, "encoder": self._encoder(enc, ev)}
                               if self.msgtype == EVENT_PACKET else {}))
        return (k * self.period_ns + off) * 1e-9, self.codec.serialize(msg), len(ev)


def soak(bag: Path, seconds: float, rate: float = 1.0, config: Path | None = None,
         params: dict | None = None, rss_every_s: float = 10.0, log_dir: Path | None = None,
         log=print) -> SoakResult:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from .denoise_node import message_class
    from .qos import diagnostics_qos, event_qos

    if rate <= 0:
        raise EventfxError(f"--rate must be > 0, got {rate}")
    config = Path(config) if config else default_config_path()
    cfg = load_denoise_config(config, params or {})
    topic, msgtype, msgs = read_bag(Path(bag), None)
    stream = LoopedStream(msgtype, msgs)
    pub_type = stream.msgtype
    out_topic = cfg.node.output_topic
    first = next((e for *_, e in stream.items if len(e)), None)
    node_params = {"input_topic": topic, "output_topic": out_topic, "input_type": pub_type,
                   **({"sensor_size": [first.width, first.height]} if first is not None else {}),
                   **(params or {})}
    env = ros_env()
    log_dir = Path(log_dir) if log_dir else Path("out/soak")
    proc = start_node(config, node_params, env, log_dir / "node.log")
    ctx = Context()
    rclpy.init(args=[], context=ctx, domain_id=int(env["ROS_DOMAIN_ID"]))
    got = {"out": 0, "diag": None, "last": time.monotonic()}
    spin_stop, rss_stop = threading.Event(), threading.Event()
    samples: list[tuple[float, int]] = []
    n_pub = n_events = 0
    try:
        node = Node("eventfx_soak", context=ctx)
        cls = message_class(pub_type)
        pub = node.create_publisher(cls, topic, event_qos(True, 1000))

        def on_out(_raw):
            got["out"] += 1
            got["last"] = time.monotonic()

        def on_diag(raw):
            got["diag"] = raw

        sub_out = node.create_subscription(cls, out_topic, on_out, event_qos(False, 1000), raw=True)
        sub_diag = node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, diagnostics_qos(), raw=True)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        threading.Thread(target=lambda: _spin(executor, spin_stop), daemon=True).start()

        t_end = time.monotonic() + 180.0
        while True:  # both sides matched (the node reports its side in /diagnostics)
            rep = _diag_reports([(0, got["diag"])]) if got["diag"] is not None else []
            if pub.get_subscription_count() >= 1 and sub_out.get_publisher_count() >= 1 \
                    and sub_diag.get_publisher_count() >= 1 and rep and rep[-1].get("input_publishers", 0) >= 1 \
                    and rep[-1].get("output_subscribers", 0) >= 1:
                break
            if proc.poll() is not None or time.monotonic() > t_end:
                raise EventfxError(f"the node did not become ready (log: {log_dir / 'node.log'})")
            time.sleep(0.05)
        log(f"node ready (pid {proc.pid}, domain {env['ROS_DOMAIN_ID']}); soaking for {seconds:.0f} s "
            f"at {rate:g}x")

        t0 = time.monotonic()

        def sample_rss():
            while True:
                r = rss_kb(proc.pid)
                if r is not None:
                    samples.append((round(time.monotonic() - t0, 1), r))
                if rss_stop.wait(rss_every_s):
                    return

        rss_thread = threading.Thread(target=sample_rss, daemon=True)
        rss_thread.start()
        j = 0
        while proc.poll() is None:
            due, raw, n = stream.message(j)
            if due / rate >= seconds:
                break
            delay = t0 + due / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pub.publish(raw)
            n_pub, n_events, j = n_pub + 1, n_events + n, j + 1
        while got["out"] < n_pub and time.monotonic() - got["last"] < 3.0 and proc.poll() is None:
            time.sleep(0.05)
        rss_stop.set()
        rss_thread.join()
        time.sleep(1.5)  # one more /diagnostics report with the final counters
        code = stop_node(proc)
        if code not in (0, None):
            log(f"warning: the node exited with status {code}")
    finally:
        close_session(proc, ctx, spin_stop)
    rep = _diag_reports([(0, got["diag"])]) if got["diag"] is not None else [{}]
    last = rep[-1] if rep else {}
    rss = [r for _, r in samples]
    return SoakResult(
        bag=str(bag), config=str(config), rate=rate, seconds=seconds, loops=-(-n_pub // len(stream)),
        messages_in=n_pub, messages_out=got["out"], messages_lost=n_pub - got["out"], events_in=n_events,
        rss_kb=samples, rss_start_kb=rss[0] if rss else 0, rss_end_kb=rss[-1] if rss else 0,
        rss_max_kb=max(rss) if rss else 0, rss_change=(rss[-1] / rss[0] - 1) if rss else float("nan"),
        node={k: int(last[k]) for k in NODE_COUNTERS if k in last},
        node_latency_p99_ms=float(last.get("run_latency_p99_ms", float("nan"))),
        command=" ".join(sys.argv))


def main(argv=None) -> int:
    from eventfx_core.io.output_paths import atomic_output, check_outputs

    p = argparse.ArgumentParser(prog="python -m eventfx_ros.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("bag", type=Path)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=1.0, help="x recorded speed (default 1)")
    p.add_argument("--config", type=Path, help="denoise params file (default: config/denoise.yaml)")
    p.add_argument("--rss-every", type=float, default=10.0, help="seconds between RSS samples")
    p.add_argument("--json", type=Path, required=True, help="result file (.json); the node log goes beside it")
    add_overwrite(p)
    args = p.parse_args(argv)
    try:
        log = args.json.parent / "node.log"
        check_outputs({"--json": args.json, "node log": log, "node params": params_path(log)},
                      inputs=[args.bag, args.config], overwrite=args.overwrite, suffixes={"--json": (".json",)})
        res = soak(args.bag, args.minutes * 60, args.rate, args.config, rss_every_s=args.rss_every,
                   log_dir=args.json.parent)
    except EventfxError as exc:
        print(f"eventfx: error: {exc}", file=sys.stderr)
        return 2
    with atomic_output(args.json, keep_suffix=True) as tmp:
        tmp.write_text(json.dumps(asdict(res), indent=1) + "\n")
    print(res.to_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
