"""``eventfx bench [--file PATH] [--json]``: events/s and per-message latency of every stage.

Runs on a fixed synthetic stream (640x480, bars plus background activity, 1 ms messages) and,
with ``--file``, on a recording cut into its own messages. A classic filter (BAF) and, when
installed, dv-processing's BackgroundActivityNoiseFilter run in the same process on the same
messages; the ratio columns compare every stage with them.

Every other benchmark is reached from here too (``eventfx_core/bench/``): ``--codecs`` adds
the codecs' throughput; ``--deflare`` times the deflare stage per 20 ms window instead, and
``--convert-memory`` the peak memory of ``eventfx convert`` on a generated multi-GB bag. The
node's end-to-end throughput over DDS needs rclpy: ``python -m eventfx_ros.throughput``.
"""
from __future__ import annotations

import json
import os
import platform
import sys

from ..errors import EventfxError


def add_parser(sub) -> None:
    import argparse

    from ..bench import convert_memory, deflare

    p = sub.add_parser("bench", help="measure events/s and latency of each stage",
                       description="\n\n".join(__doc__.split("\n\n")[:3]),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", help="also measure on this recording (any format eventfx reads)")
    p.add_argument("--topic", help="event topic of a bag")
    p.add_argument("--config", help="denoise params file (default: config/denoise.yaml)")
    p.add_argument("--duration-ms", type=int, default=500, help="synthetic stream length (default 500)")
    p.add_argument("--message-us", type=int, default=1000, help="synthetic message length (default 1000)")
    p.add_argument("--max-events", type=int, default=5_000_000, help="cap on events read from --file")
    p.add_argument("--no-dv", action="store_true", help="skip dv-processing even when installed")
    p.add_argument("--codecs", action="store_true", help="also measure EVT3 and the other codecs")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--deflare", action="store_true",
                      help="instead: the deflare stage's compute per window (options below)")
    mode.add_argument("--convert-memory", action="store_true", dest="convert_memory",
                      help="instead: peak memory of eventfx convert on a generated bag (options below; writes GBs)")
    deflare.add_arguments(p)
    convert_memory.add_arguments(p)
    p.set_defaults(func=run)


def machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def read_messages(path: str, topic: str | None, max_events: int):
    from ..io import Packet, open_source

    out, n = [], 0
    for item in open_source(path, topic=topic):
        if isinstance(item, Packet) and getattr(item, "error", None) is None and len(item.events):
            out.append(item.events)
            n += len(item.events)
            if n >= max_events:
                break
    if not out:
        raise EventfxError(f"{path}: no events to benchmark")
    return out


def run(args) -> int:
    if args.deflare:
        from ..bench import deflare

        return deflare.run(args)
    if args.convert_memory:
        from ..bench import convert_memory

        return convert_memory.run(args)
    from ..bench.stages import cut_messages, format_table, run_bench, synthetic_stream

    for name, value in (("--duration-ms", args.duration_ms), ("--message-us", args.message_us),
                        ("--max-events", args.max_events)):
        if value <= 0:
            raise EventfxError(f"{name} must be positive, got {value}")
    result = {"machine": machine()}
    stream = synthetic_stream(duration_us=args.duration_ms * 1000)
    msgs = cut_messages(stream, args.message_us)
    result["synthetic"] = {"events": len(stream), "messages": len(msgs), "message_us": args.message_us,
                           "sensor": list(stream.sensor_size)}
    result["stages"] = run_bench(msgs, args.config, include_dv=not args.no_dv)
    if args.file:
        fmsgs = read_messages(args.file, args.topic, args.max_events)
        result["recording"] = {"path": args.file, "events": sum(map(len, fmsgs)), "messages": len(fmsgs),
                               "stages": run_bench(fmsgs, args.config, include_dv=not args.no_dv)}
    if args.codecs:
        from ..bench.codecs import measure

        result["codecs"] = measure()
    if args.json:
        json.dump(result, sys.stdout, indent=1, default=float)
        print()
        return 0
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, python {m['python']}, torch {m['torch']} "
          f"({m['torch_threads']} threads), GPU: {m['gpu'] or 'none'}")
    s = result["synthetic"]
    print(f"\nsynthetic stream: {s['events']:,} events, {s['messages']} messages of {s['message_us']} us, "
          f"{s['sensor'][0]}x{s['sensor'][1]}")
    print(format_table(result["stages"]))
    if "recording" in result:
        r = result["recording"]
        print(f"\n{r['path']}: {r['events']:,} events in {r['messages']} messages")
        print(format_table(r["stages"]))
    if "codecs" in result:
        print("\ncodecs:", json.dumps(result["codecs"], default=float))
    return 0
