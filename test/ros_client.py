"""The test side of a denoise node on real DDS (loopback), for the node tests: publishes event
messages (raw CDR bytes) on the node's input topic, records its output topic and the numbers of
its ``/diagnostics`` status, and spins its own context (a node made in ``client.ctx`` and added
to ``client.executor`` spins with it)."""
import dataclasses
import time

import rclpy

from eventfx_core.codecs.messages import EVENT_PACKET, TopicCodec, build_message
from eventfx_core.events import Events
from eventfx_ros.diagnostics import status_values


TOPIC, OUT = "/test_events", "/test_events_clean"  # the node tests' default topics


class Client:
    """Publisher of raw EventPacket bytes on ``topic``, recorder of ``out`` and diagnostics."""

    def __init__(self, domain: int, topic: str = TOPIC, out: str = OUT, depth: int = 100,
                 name: str = "eventfx_test_client"):
        from diagnostic_msgs.msg import DiagnosticArray
        from event_camera_msgs.msg import EventPacket
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from eventfx_ros.qos import diagnostics_qos, event_qos

        self.ctx = Context()
        rclpy.init(args=[], context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.ctx)
        self.pub = self.node.create_publisher(EventPacket, topic, event_qos(True, depth))
        self.outputs, self.diags = [], []
        self.sub = self.node.create_subscription(EventPacket, out, self.outputs.append,
                                                 event_qos(True, depth), raw=True)
        self.dsub = self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag,
                                                  diagnostics_qos())
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.codec = TopicCodec(EVENT_PACKET)

    def _diag(self, arr):
        for st in arr.status:
            if "event denoising" in st.name:
                self.diags.append(status_values(st))

    def spin_until(self, cond, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if cond():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return cond()

    def send(self, msg) -> None:
        self.pub.publish(self.codec.serialize(msg))

    def packet(self, ev: Events, seq: int, **replace):
        """An EventPacket (libcaer) of ``ev``; ``replace`` sets fields afterwards (bad input)."""
        msg = build_message(EVENT_PACKET, ev, header_stamp_ns=int(ev.t[0]) * 1000 if len(ev) else 0,
                            seq=seq, encoding="libcaer")
        return dataclasses.replace(msg, **replace) if replace else msg

    def close(self):
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
