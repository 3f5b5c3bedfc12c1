"""Peak resident memory of ``eventfx convert`` on a multi-GB bag (streaming must stay < 1 GB).

Makes a ROS 2 sqlite3 bag of ``--size-gb`` GB: EventPacket (evt3) messages of ``--msg-kb`` KB
(random events, 1 ms per message, time increasing) plus a small
std_msgs/String topic, then runs ``eventfx convert`` into a bag (decode + re-encode every
message, pass-through for the other topic) and into a DSEC h5 in child processes and reports
their ru_maxrss and throughput. Not part of the test suite (it writes GBs).

    eventfx bench --convert-memory --size-gb 2 --dir /tmp/eventfx_bench
"""
from __future__ import annotations

import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import EventfxError


def make_bag(path: Path, size_gb: float, msg_kb: int) -> tuple[int, int]:
    from rosbags.rosbag2 import Writer

    from ..codecs import make_encoder
    from ..codecs.messages import EVENT_PACKET, TopicCodec, build_message
    from ..codecs.typestore import ros2_typestore
    from ..events import Events

    store = ros2_typestore()
    rng = np.random.default_rng(0)
    n = msg_kb * 1024 // 4  # about 2 EVT3 words per random event
    t = np.sort(rng.integers(0, 1000, n))
    ev = Events.from_arrays(t, rng.integers(0, 1280, n), rng.integers(0, 720, n), rng.integers(0, 2, n), 1280, 720)
    codec = TopicCodec(EVENT_PACKET)
    enc = make_encoder("evt3", 1280, 720)
    def packet(i: int) -> bytes:  # message i holds the events of [i, i + 1) ms
        shifted = Events(ev.t + i * 1000, ev.x, ev.y, ev.p, ev.width, ev.height)
        return codec.serialize(build_message(EVENT_PACKET, shifted, header_stamp_ns=i * 10**6, seq=i,
                                             encoding="evt3", encoder=enc))

    n_msgs = max(1, int(size_gb * 2**30 // len(packet(0))))
    enc = make_encoder("evt3", 1280, 720)
    with Writer(path, version=9) as w:
        ce = w.add_connection("/event_camera/events", EVENT_PACKET, typestore=store)
        cs = w.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        note = bytes(store.serialize_cdr(store.types["std_msgs/msg/String"](data="hello"), "std_msgs/msg/String"))
        for i in range(n_msgs):
            w.write(ce, 10**18 + i * 1_000_000, packet(i))
            if i % 100 == 0:
                w.write(cs, 10**18 + i * 1_000_000 + 1, note)
    return n_msgs, n_msgs * n


def add_arguments(p) -> None:
    """The options of ``eventfx bench --convert-memory``."""
    g = p.add_argument_group("--convert-memory (peak memory of eventfx convert on a big bag)")
    g.add_argument("--size-gb", type=float, default=2.0, help="bag size to generate (GB)")
    g.add_argument("--msg-kb", type=int, default=512, help="payload per EventPacket (KB)")
    g.add_argument("--dir", type=Path, default=Path("/tmp/eventfx_bench"), help="scratch directory: new, empty, or one this benchmark wrote (emptied first)")
    g.add_argument("--keep", action="store_true", help="keep the generated files")


OWN_FILES = {"big", "big_out", "big_out.h5"}  # what a run leaves in --dir (with --keep)


def run(args) -> int:
    if not (0 < args.size_gb < math.inf):
        raise EventfxError(f"--size-gb must be a finite number > 0, got {args.size_gb}")
    if args.msg_kb < 1:
        raise EventfxError(f"--msg-kb must be >= 1, got {args.msg_kb}")
    if args.dir.is_dir() and set(p.name for p in args.dir.iterdir()) - OWN_FILES:
        raise EventfxError(f"--dir {args.dir}: holds files this benchmark did not write; give an empty "
                           f"or new scratch folder (it is emptied first)")
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    t0 = time.perf_counter()
    n_msgs, n_events = make_bag(args.dir / "big", args.size_gb, args.msg_kb)
    size = sum(f.stat().st_size for f in (args.dir / "big").iterdir())
    print(f"made {size / 2**30:.2f} GB bag: {n_msgs} messages, {n_events:,} events "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    # One child per run so each peak is that run's own (RUSAGE_CHILDREN is a running max).
    for out in ("big_out", "big_out.h5"):
        cmd = [sys.executable, "-c", "import sys, resource; from eventfx_core.cli.main import main; "
               "rc = main(sys.argv[1:]); print(f'ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB'); "
               "sys.exit(rc)", "convert", "-q", str(args.dir / "big"), str(args.dir / out)]
        t1 = time.perf_counter()
        rc = subprocess.run(cmd).returncode
        if rc:
            raise EventfxError(f"eventfx convert {args.dir / 'big'} {args.dir / out} failed (exit {rc})")
        dt = time.perf_counter() - t1
        print(f"convert -> {out}: {dt:.0f} s, {n_events / dt / 1e6:.1f} M events/s", flush=True)
    if not args.keep:
        shutil.rmtree(args.dir)
    return 0
