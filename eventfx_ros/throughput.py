"""Node throughput: a synthetic bag of big evt3 packets replayed flow-controlled through the node.

    python -m eventfx_ros.throughput [--messages 100] [--events 200000] [-p 'stages=[]']

Writes the bag to a temporary folder, runs ``eventfx replay --rate 0 --reliable`` on it (the
node as its own process, real DDS on loopback) and prints the summary: events/s from the
first publish to the last output, i.e. decode + pipeline + re-encode + DDS both ways.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from eventfx_core.events import Events
from eventfx_core.codecs.typestore import ros2_typestore
from eventfx_core.codecs.messages import EVENT_PACKET, TopicCodec, build_message
from eventfx_core.codecs import make_encoder


def synthetic_bag(path: Path, messages: int, events: int, width: int = 1280, height: int = 720,
                  packet_us: int = 1000, seed: int = 0) -> None:
    """``messages`` EventPacket/evt3 messages of ``events`` uniform random events each."""
    from rosbags.rosbag2 import Writer

    rng = np.random.default_rng(seed)
    codec, enc = TopicCodec(EVENT_PACKET), make_encoder("evt3", width, height)
    with Writer(path, version=8) as writer:
        conn = writer.add_connection("/event_camera/events", EVENT_PACKET, typestore=ros2_typestore())
        for i in range(messages):
            t = i * packet_us + np.sort(rng.integers(0, packet_us, events))
            ev = Events.from_arrays(t, rng.integers(0, width, events), rng.integers(0, height, events),
                                    rng.integers(0, 2, events), width, height)
            msg = build_message(EVENT_PACKET, ev, header_stamp_ns=int(t[0]) * 1000, seq=i,
                                encoding="evt3", encoder=enc)
            writer.write(conn, int(t[0]) * 1000, codec.serialize(msg))


def main(argv: list[str] | None = None) -> int:
    from eventfx_core.cli.main import main as eventfx

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--events", type=int, default=200_000, help="events per message")
    ap.add_argument("--config", help="params file (default: config/denoise.yaml)")
    ap.add_argument("-p", "--param", action="append", default=[], help="node parameter NAME=VALUE")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "synthetic"
        synthetic_bag(bag, args.messages, args.events)
        cmd = ["replay", str(bag), "--out", str(Path(tmp) / "out"), "--rate", "0", "--reliable"]
        cmd += ["--config", args.config] if args.config else []
        for p in args.param:
            cmd += ["-p", p]
        return eventfx(cmd)


if __name__ == "__main__":
    raise SystemExit(main())
