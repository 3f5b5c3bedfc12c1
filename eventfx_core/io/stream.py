"""The one streaming interface: ``open_source`` (any event file -> packets) and ``open_sink``.

    src = open_source(path, topic=None, format=None)    # .format .sensor_size .topic .msgtype
    with open_sink(out, source=src) as sink:
        for item in src:
            if isinstance(item, Passthrough): sink.write_passthrough(item)
            else: sink.write(item, keep_mask)

Formats: ``rosbag2`` (sqlite3 bag directory), ``mcap`` (rosbag2 directory with mcap storage),
``rosbag1`` (``.bag``), ``dsec`` (DSEC ``events.h5``), ``archive`` (eventfx HDF5), ``raw``
(Prophesee), ``aedat4`` (read only). Input formats are recognised by content first (magic
bytes, HDF5 attributes), then by name. Output formats come from ``format`` or the name:
``.bag`` rosbag1, ``.mcap`` mcap, ``.raw`` raw, ``.h5``/``.hdf5`` archive when the source is
an archive and DSEC otherwise, anything else a rosbag2 (sqlite3) directory.

Output is written to ``OUT.partial`` and renamed to ``OUT`` only when the sink closes without
error; on an error the partial output is removed. The output path follows ``output_paths``:
never the input or a file of it, an existing ``OUT`` only with ``overwrite``, parents created.

Sink modes (see ``recut.py`` for the time and sequence-number rules of re-typed messages):
bag -> bag with the same message type and encoding and no ``packet_us`` rewrites each message
in place (same header, seq, time_base, encoding; only kept events); anything else re-cuts
the kept events into new messages (bags) or appends them (files).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..codecs.evt3 import WRAP_US
from ..errors import EventfxError, FormatError, warn
from .items import Packet, Passthrough
from .output_paths import check_output, finish, partial_path, remove

FORMATS = ("rosbag2", "mcap", "rosbag1", "dsec", "archive", "raw", "aedat4")
BAG_FORMATS = ("rosbag2", "mcap", "rosbag1")
FILE_CHUNK_EVENTS = 200_000  # events per Packet for formats without messages
DEFAULT_TOPIC = "/event_camera/events"  # event topic of bags made from files
DEFAULT_PACKET_US = 1000  # message length when files become bags (1 ms, like the drivers)


# ---------------------------------------------------------------------------- detection
def detect_format(path: Path | str) -> str:
    """The format of an existing input (by content first, then by name); ``FormatError`` if unknown."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "metadata.yaml").exists():
            return "mcap" if any(path.glob("*.mcap")) else "rosbag2"
        raise FormatError(f"{path}: directory without metadata.yaml is not a ROS 2 bag")
    if path.suffix in (".db3", ".mcap") and (path.parent / "metadata.yaml").exists():
        return "mcap" if path.suffix == ".mcap" else "rosbag2"
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"#ROSBAG V2.0"):
        return "rosbag1"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        from .archive import is_archive
        from .dsec import open_h5
        with open_h5(path) as f:
            return "archive" if is_archive(f) else "dsec"
    if head.startswith(b"#!AER-DAT4"):
        return "aedat4"
    if head.startswith(b"%"):
        return "raw"
    by_suffix = {".bag": "rosbag1", ".h5": "dsec", ".hdf5": "dsec", ".raw": "raw", ".aedat4": "aedat4"}
    if path.suffix.lower() in by_suffix:
        fmt = by_suffix[path.suffix.lower()]
        raise FormatError(f"{path}: named like {fmt} but its content is not (starts {head[:8].hex()})")
    raise FormatError(f"{path}: unknown event file format (starts {head[:8].hex()})")


def output_format(path: Path | str, source=None) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".bag":
        return "rosbag1"
    if suffix == ".mcap":
        return "mcap"
    if suffix == ".raw":
        return "raw"
    if suffix in (".h5", ".hdf5"):
        return "archive" if getattr(source, "format", None) == "archive" else "dsec"
    if suffix == ".aedat4":
        raise FormatError(f"{path}: writing AEDAT4 is not supported (read only)")
    return "rosbag2"


# ---------------------------------------------------------------------------- sources
class FileSource:
    """Packets of at most ``chunk_events`` events from a file without messages."""

    topic = None
    msgtype = None

    def __init__(self, path: Path, fmt: str, chunk_events: int = FILE_CHUNK_EVENTS, salvage: bool = False):
        self.path, self.format = Path(path), fmt
        self.chunk_events = chunk_events
        self.encoding = None  # the encoding of the recording this file was made from, where it says
        if fmt == "dsec":
            from .dsec import DsecReader
            self._reader = DsecReader(path)
            self.sensor_size = (self._reader.width, self._reader.height)
            self.num_packets = -(-self._reader.n // chunk_events)
            self.encoding = self._reader.source_encoding
            if self._reader.msg_first is not None:  # made from messages: yield them again
                self.num_packets = len(self._reader.msg_first)
                self.has_messages = True
        elif fmt == "archive":
            from .archive import ArchiveReader
            self._reader = ArchiveReader(path)
            self.sensor_size = (self._reader.width, self._reader.height)
            self.num_packets = -(-self._reader.n // chunk_events)
        elif fmt == "raw":
            from .prophesee_raw import RawSource
            self._reader = RawSource(path, salvage=salvage)
            self.sensor_size = self._reader.sensor_size
            self.num_packets = None
        elif fmt == "aedat4":
            from .aedat4 import AedatSource
            self._reader = AedatSource(path, salvage=salvage)
            self.sensor_size = self._reader.sensor_size
            self.num_packets = None
        else:
            raise FormatError(f"{path}: {fmt} is not a file format")

    def _chunks(self):
        r = self._reader
        if self.format == "dsec":
            yield from r.chunks(self.chunk_events)
        elif self.format == "archive":
            for start in range(0, r.n, self.chunk_events):
                yield r.read(start, start + self.chunk_events)[0]
        else:
            # raw and aedat4 come in their own packet sizes; regroup into chunk_events.
            yield from _regroup(r.chunks(), self.chunk_events)

    has_messages = False  # True where the file keeps the message cut it was made from

    def __iter__(self):
        if self.has_messages:
            r = self._reader
            bounds = np.append(r.msg_first, r.n)
            for i, stamp in enumerate(r.msg_stamp_ns.tolist()):
                yield Packet(r.read(int(bounds[i]), int(bounds[i + 1])), i, timestamp_ns=int(stamp),
                             seq=None if r.msg_seq is None else int(r.msg_seq[i]),
                             header_ns=None if r.msg_header_ns is None else int(r.msg_header_ns[i]))
            return
        for i, ev in enumerate(self._chunks()):
            yield Packet(ev, i)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._reader.close()


def _regroup(chunks, n: int):
    from ..events import concat
    buf, size = [], 0
    for ev in chunks:
        if len(ev) == 0:
            continue
        buf.append(ev)
        size += len(ev)
        if size >= n:
            yield concat(buf)
            buf, size = [], 0
    if buf:
        yield concat(buf)


def open_source(path: Path | str, topic: str | None = None, format: str | None = None,
                salvage: bool = False):
    """Open any supported event file for streaming (see the module docstring).

    Truncated recordings, one rule for every reader: refused with a ``FormatError`` that names
    the byte offset (or message/packet index) where the data ends; with ``salvage`` the events
    up to the last complete packet are read and a warning says what was lost. (A bag's
    undecodable message is a per-message ``Packet.error``; its storage is read by rosbags,
    which either opens a damaged bag or refuses it.)
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt in BAG_FORMATS:
        from .bags import BagSource
        return BagSource(path, topic)
    if topic is not None:
        raise EventfxError(f"{path}: --topic applies to bags only ({fmt} has one event stream)")
    return FileSource(path, fmt, salvage=salvage)


# ---------------------------------------------------------------------------- sinks
class Sink:
    """Writes packets' kept events to a new output (see the module docstring)."""

    def __init__(self, path: Path | str, source=None, format: str | None = None,
                 to_type: str | None = None, to_encoding: str | None = None,
                 packet_us: int | None = None, overwrite: bool = False):
        from ..codecs.messages import EVENT_PACKET, EVENT_TYPES, canonical_type
        self.path = Path(path)
        self.format = format or output_format(self.path, source)
        if self.format not in FORMATS or self.format == "aedat4":
            raise FormatError(f"cannot write format {self.format!r} (writable: "
                              f"{', '.join(f for f in FORMATS if f != 'aedat4')})")
        check_output(self.path, inputs=[getattr(source, "path", None)], overwrite=overwrite)
        self.partial = partial_path(self.path)
        remove(self.partial)  # a leftover of an interrupted earlier run
        self.source = source
        self.n_events = 0
        self.n_messages = 0
        src_is_bag = getattr(source, "format", None) in BAG_FORMATS
        w, h = getattr(source, "sensor_size", None) or (None, None)
        if self.format in BAG_FORMATS:
            from .bags import BagWriter
            from .recut import Recutter
            if to_encoding is not None and to_encoding not in WRITABLE_ENCODINGS:
                raise EventfxError(f"--to-encoding {to_encoding}: not one of {', '.join(WRITABLE_ENCODINGS)}")
            to_type = canonical_type(to_type) if to_type else None
            if to_type and to_type not in EVENT_TYPES:
                raise EventfxError(f"--to-type {to_type}: not one of {', '.join(EVENT_TYPES)}")
            src_type = source.msgtype if src_is_bag else None
            out_type = to_type or src_type or EVENT_PACKET
            src_enc = None
            if src_is_bag and src_type == EVENT_PACKET:
                src_enc = _first_encoding(source)
            elif not src_is_bag:
                src_enc = getattr(source, "encoding", None)  # where the file says what it was made from
            self.in_place = (src_is_bag and out_type == src_type and packet_us is None
                             and (to_encoding is None or to_encoding == src_enc))
            if not src_is_bag and packet_us is None and not getattr(source, "has_messages", False):
                packet_us = DEFAULT_PACKET_US
                warn(f"{getattr(source, 'path', 'the input')}: a {getattr(source, 'format', 'file')} file has no "
                     f"messages: the events are cut into messages of {packet_us} us (--packet-us to choose)")
            self.bag = BagWriter(self.partial, self.format, source if src_is_bag else None)
            wire_type = source.wire_msgtype if (self.in_place and self.format != "rosbag1") else out_type
            self.bag.add_event_topic(getattr(source, "topic", None) or DEFAULT_TOPIC, wire_type,
                                     qos_from=source.event_connections[0] if src_is_bag else None)
            self.ros_version = self.bag.ros_version
            if self.in_place:
                from ..codecs.messages import TopicCodec
                self.out_codec = TopicCodec(source.wire_msgtype, ros_version=self.ros_version)
            else:
                enc = to_encoding or (src_enc if out_type == EVENT_PACKET and src_enc in WRITABLE_ENCODINGS else None)
                if out_type == EVENT_PACKET:
                    _warn_encoding(source, src_enc, enc or "evt3", asked=to_encoding is not None)
                self.recut = Recutter(out_type, enc, packet_us, self.ros_version,
                                      source_type=src_type, emit=self._emit)
            self.writer = None
        else:
            if to_type or to_encoding:
                raise EventfxError(f"--to-type/--to-encoding apply to bag outputs, not {self.format}")
            if w is None:
                raise EventfxError(f"{self.path}: the source has no sensor size")
            self.bag = None
            if src_is_bag and self.format == "dsec":
                warn(f"{source.path}: a dsec file holds events, not messages: the cut, receive times, "
                     f"header stamps and sequence numbers of the {source.num_packets} messages are kept "
                     f"(eventfx extension), frame ids and other topics are not")
            elif src_is_bag:
                warn(f"{source.path}: a {self.format} file holds events, not messages: the "
                     f"{source.num_packets} messages' cut, headers and other topics are not kept")
            if self.format == "dsec":
                from .dsec import DsecWriter
                enc = _first_encoding(source) if src_is_bag else getattr(source, "encoding", None)
                self.writer = DsecWriter(self.partial, w, h, source_encoding=enc)
            elif self.format == "archive":
                from .archive import ArchiveWriter
                self.writer = ArchiveWriter(self.partial, w, h, meta={"source": str(getattr(source, "path", ""))})
            else:
                from .prophesee_raw import RawWriter
                self.writer = RawWriter(self.partial, w, h)

    # ------------------------------------------------------------------ writing
    def write(self, packet: Packet, kept: np.ndarray | None = None) -> None:
        """Write the kept events of ``packet`` (all when ``kept`` is None)."""
        if packet.error is not None:
            return
        kept = np.ones(len(packet.events), bool) if kept is None else np.asarray(kept, bool)
        if len(kept) != len(packet.events):
            raise EventfxError(f"keep mask of {len(kept)} for packet {packet.index} of {len(packet.events)} events")
        self.n_events += int(np.count_nonzero(kept))
        if self.bag is None and self.format == "dsec" and packet.timestamp_ns is not None:
            self._start_message(packet)  # DSEC keeps the message cut
        if self.bag is None:
            self.writer.append(packet.events[kept] if not kept.all() else packet.events)
            return
        if self.in_place:
            src = self.source
            msg = src.codec.rewrite(packet.message, packet.decoded, kept)
            if self.ros_version != src.ros_version:
                from .recut import port_message
                msg = port_message(msg, src.msgtype, self.ros_version, seq=packet.index)
            self._emit(packet.timestamp_ns, self.out_codec.serialize(msg))
        else:
            self.recut.add(packet, kept)

    def _start_message(self, packet: Packet) -> None:
        header = packet.header_stamp_ns()
        self.writer.start_message(packet.timestamp_ns, packet.timestamp_ns if header is None else header,
                                  packet.out_seq())

    def _emit(self, timestamp_ns: int, raw: bytes) -> None:
        self.bag.write_event(timestamp_ns, raw)
        self.n_messages += 1

    def write_passthrough(self, item: Passthrough) -> None:
        """Copy a message of another topic (bag outputs only; other formats drop it)."""
        if self.bag is not None and self.source is not None and getattr(self.source, "format", None) in BAG_FORMATS:
            self.bag.write_passthrough(item)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        if self.bag is not None:
            if not self.in_place:
                self.recut.flush()
            self.bag.close()
            if self.partial.is_dir():
                _rename_bag_files(self.partial, self.path.name)
        else:
            self.writer.close()
        finish(self.partial, self.path)

    def abort(self) -> None:
        try:
            if self.bag is not None:
                self.bag.abort()
            else:
                self.writer.close()
        finally:
            remove(self.partial)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


def _rename_bag_files(bag_dir: Path, final_name: str) -> None:
    """Name a ROS 2 bag's storage files after the final directory, not ``*.partial``."""
    old = bag_dir.name
    meta = bag_dir / "metadata.yaml"
    for f in sorted(bag_dir.iterdir()):
        if f.name.startswith(old + "."):
            f.rename(bag_dir / (final_name + f.name[len(old):]))
        elif f.name.startswith(old + "_"):
            f.rename(bag_dir / (final_name + f.name[len(old):]))
    text = meta.read_text()
    meta.write_text(text.replace(f" {old}.", f" {final_name}.").replace(f" {old}_", f" {final_name}_"))


WRITABLE_ENCODINGS = ("evt3", "libcaer", "mono")


def _warn_encoding(source, src_enc: str | None, out_enc: str, asked: bool) -> None:
    """Say what an EventPacket output cannot keep of its input."""
    where = getattr(source, "path", "the input")
    if src_enc and src_enc != out_enc and not asked:
        warn(f"{where}: encoding {src_enc} cannot be written; the output uses {out_enc}")
    if out_enc == "evt3" and src_enc != "evt3":
        warn(f"{where}: evt3 holds a 24-bit us clock: event times inside the output messages restart "
             f"every {WRAP_US} us (header.stamp keeps absolute time; --to-encoding libcaer keeps "
             f"it in the events)")


def _first_encoding(source) -> str | None:
    """Encoding of the first EventPacket of a bag source (its sensor size was peeked too)."""
    return getattr(source, "first_encoding", None)


def open_sink(path: Path | str, source=None, format: str | None = None, to_type: str | None = None,
              to_encoding: str | None = None, packet_us: int | None = None,
              overwrite: bool = False) -> Sink:
    try:
        return Sink(path, source, format, to_type, to_encoding, packet_us, overwrite)
    except OSError as exc:  # e.g. a folder that turned read-only: one line, nothing left behind
        remove(partial_path(path))
        raise EventfxError(f"{path}: cannot write ({exc.strerror or exc})") from None
