"""A DDS peer process for the transport tests: ``pub`` publishes EventPacket messages of a given
payload size best effort, ``sub`` counts what arrives and prints ``{"n": ..., "sizes": [...]}``.

    python test/dds_peer.py pub TOPIC N BYTES     # waits for a subscriber, 5 messages/s
    python test/dds_peer.py sub TOPIC N TIMEOUT_S  # prints "ready" once matched, JSON at the end

Its own process, so that the Fast DDS profile in its environment (or none) is the one it uses:
Fast DDS reads the profile once per process, when the first participant is created.
"""
import json
import sys
import time

import numpy as np
import rclpy
from event_camera_msgs.msg import EventPacket

from eventfx_core.codecs.messages import EVENT_PACKET, TopicCodec, build_message
from eventfx_core.events import Events
from eventfx_ros.qos import event_qos

W, H = 640, 480


def packets(n: int, nbytes: int) -> list[bytes]:
    """``n`` consecutive evt3 packets of 10 ms each, random events, at least ``nbytes`` each."""
    rng = np.random.default_rng(0)
    codec, out, seq, k = TopicCodec(EVENT_PACKET), [], 0, max(100, nbytes // 8)
    while len(out) < n:
        t0 = seq * 10_000
        ev = Events.from_arrays(t0 + np.sort(rng.integers(0, 10_000, k)), rng.integers(0, W, k),
                                rng.integers(0, H, k), rng.integers(0, 2, k), W, H)
        raw = codec.serialize(build_message(EVENT_PACKET, ev, header_stamp_ns=t0 * 1000, seq=seq))
        if len(raw) < nbytes:
            k = int(k * nbytes / len(raw) * 1.02) + 10  # evt3 bytes per event vary a little
            continue
        out.append(raw)
        seq += 1
    return out


def spin_until(node, cond, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and not cond():
        rclpy.spin_once(node, timeout_sec=0.05)
    return cond()


def main(role: str, topic: str, n: int, arg: float) -> int:
    rclpy.init()
    node = rclpy.create_node(f"eventfx_dds_peer_{role}")
    try:
        if role == "pub":
            raws = packets(n, int(arg))
            pub = node.create_publisher(EventPacket, topic, event_qos(False))
            if not spin_until(node, lambda: pub.get_subscription_count() >= 1, 60):
                return 1
            time.sleep(0.5)  # let the match settle on both sides
            for raw in raws:
                pub.publish(raw)
                time.sleep(0.2)
            time.sleep(1.0)
            return 0
        got: list[int] = []
        sub = node.create_subscription(EventPacket, topic, lambda m: got.append(len(m)),
                                       event_qos(False), raw=True)
        spin_until(node, lambda: sub.get_publisher_count() >= 1, 60)
        print("ready", flush=True)
        spin_until(node, lambda: len(got) >= n, arg)
        print(json.dumps({"n": len(got), "sizes": got}), flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
