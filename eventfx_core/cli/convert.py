"""``eventfx convert IN OUT``: between ROS 1/2 bags (any of the 4 event message types), DSEC
``events.h5``, the eventfx archive, Prophesee ``.raw`` (and from AEDAT4).

Bag -> bag keeps every other topic byte for byte (same ROS version) and rewrites event
messages in place unless ``--to-type``, ``--to-encoding`` or ``--packet-us`` ask for new ones
(rules in ``eventfx_core/io/recut.py``). The output is written to ``OUT.partial`` and renamed
to ``OUT`` when complete; on any error the partial output is removed and one line names the
file and message index or byte offset. An existing OUT is replaced only with ``--overwrite``.
"""
from __future__ import annotations

import time


def add_parser(subparsers) -> None:
    from .common import add_input_format, add_output_format, add_overwrite, add_quiet, add_salvage, first_paragraph

    p = subparsers.add_parser("convert", help="convert between event file formats and message types",
                              description=first_paragraph(__doc__))
    p.add_argument("input", help="input file or bag")
    p.add_argument("output", help="output (format from --output-format or the name: .bag, .mcap, .h5, "
                   ".raw, else a rosbag2 directory)")
    p.add_argument("--topic", help="event topic of an input bag with several")
    add_output_format(p)
    add_input_format(p, old_spelling=False)
    p.add_argument("--to-type", help="output event message type, e.g. event_camera_msgs/msg/EventPacket")
    p.add_argument("--to-encoding", help="EventPacket encoding of the output: evt3, libcaer, mono "
                   "(default: the input's)")
    p.add_argument("--packet-us", type=int, help="re-cut the events into messages of this many µs "
                   "(default: the input's messages)")
    add_overwrite(p)
    add_salvage(p)
    add_quiet(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import EventfxError
    from ..io import Passthrough, open_sink, open_source
    from ..io.output_paths import check_outputs
    from .common import progress

    if args.packet_us is not None and args.packet_us <= 0:
        raise EventfxError(f"--packet-us must be positive, got {args.packet_us}")
    check_outputs({"output": args.output}, inputs=[args.input], overwrite=args.overwrite)
    t0 = time.perf_counter()
    src = open_source(args.input, topic=args.topic, format=args.input_format, salvage=args.salvage)
    n_in = 0
    try:
        with open_sink(args.output, source=src, format=args.output_format, to_type=args.to_type,
                       to_encoding=args.to_encoding, packet_us=args.packet_us,
                       overwrite=args.overwrite) as sink, \
                progress(total=getattr(src, "num_packets", None), unit="pkt", desc="convert",
                         disable=args.quiet) as bar:
            for item in src:
                if isinstance(item, Passthrough):
                    sink.write_passthrough(item)
                    continue
                if item.error is not None:
                    raise item.error
                n_in += len(item.events)
                sink.write(item)
                bar.update(1)
    finally:
        src.close()
    dt = time.perf_counter() - t0
    print(f"{n_in:,} events, {src.format} -> {sink.format} {args.output} "
          f"({n_in / dt / 1e6 if dt > 0 else 0:.2f} M events/s)")
    return 0
