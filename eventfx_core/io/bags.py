"""ROS bags through rosbags: ROS 2 (sqlite3, mcap) and ROS 1 ``.bag``, streamed message by message.

``BagSource`` yields a ``Packet`` per message of the event topic (decoded with the shared
``messages.TopicCodec``) and a ``Passthrough`` (raw bytes) per message of any other topic.
``BagWriter`` writes event messages to one topic and copies other topics through rosbags'
own converter (``rosbags.convert.converter.create_connections_converters``): raw bytes
unchanged between bags of the same ROS version, ROS 1 <-> CDR otherwise.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from rosbags.highlevel import AnyReader
from rosbags.interfaces import ConnectionExtRosbag2
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer as Writer2

from ..errors import DecodeError, EventfxError, FormatError, warn
from ..codecs.messages import TopicCodec, canonical_type, is_event_type
from .items import Packet, Passthrough
from ..codecs.typestore import ros1_typestore, ros2_typestore

# Everything rosbags and its storage back ends raise on a damaged bag.
BAG_ERRORS = (Exception,)


def bag_root(path: Path) -> Path:
    """The path rosbags opens: a ROS 2 bag directory (also given as its .db3/.mcap) or a .bag."""
    path = Path(path)
    if path.is_file() and path.suffix in (".db3", ".mcap") and (path.parent / "metadata.yaml").exists():
        return path.parent
    return path


STORAGE_BY_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}


@contextlib.contextmanager
def _tolerant_definitions():
    """While a bag opens: a message definition rosbags cannot parse (an mcap schema holding one
    ``.idl`` with ``#include`` lines, as some recorders write) falls back to eventfx's own type
    store, which knows every event message type, instead of refusing the whole bag."""
    import rosbags.highlevel.anyreader as anyreader
    from rosbags.typesys.base import TypesysError

    original = anyreader.get_types_from_idl

    def tolerant(text, *args, **kw):
        try:
            return original(text, *args, **kw)
        except TypesysError:
            return dict(ros2_typestore().fielddefs)

    anyreader.get_types_from_idl = tolerant
    try:
        yield
    finally:
        anyreader.get_types_from_idl = original


def repaired_metadata(root: Path):
    """A ROS 2 bag whose ``metadata.yaml`` is incomplete, as people have them: a temporary folder
    with links to its storage files and a completed copy of the metadata; None when the bag
    needs none (or is not a ROS 2 bag folder). The bag itself is never changed.

    Repaired, with a warning: an empty or unknown ``storage_identifier`` (inferred from the
    storage files present: ``.mcap`` or ``.db3``) and an empty or stale ``relative_file_paths``
    (the storage files present, in name order). The per-file ``files`` list is optional.
    """
    import tempfile

    import yaml

    meta_path = root / "metadata.yaml"
    if not root.is_dir() or not meta_path.is_file():
        return None
    try:
        doc = yaml.safe_load(meta_path.read_text())
        info = doc["rosbag2_bagfile_information"]
    except Exception:  # rosbags names what is wrong with unreadable metadata itself
        return None
    if not isinstance(info, dict):
        return None
    files = sorted(p for p in root.iterdir() if p.suffix in STORAGE_BY_SUFFIX and p.is_file())
    kinds = sorted({STORAGE_BY_SUFFIX[p.suffix] for p in files})
    storage = info.get("storage_identifier")
    listed = [root / Path(str(x)).name for x in info.get("relative_file_paths") or []]
    changes = []
    if storage not in ("sqlite3", "mcap"):
        if len(kinds) != 1:
            raise FormatError(f"{root}: metadata.yaml has storage_identifier {storage!r} and the folder holds "
                              f"{'no' if not kinds else 'both .mcap and .db3'} storage files; cannot tell the storage")
        info["storage_identifier"] = kinds[0]
        changes.append(f"storage_identifier {storage!r} -> {kinds[0]!r} (from the files present)")
    want = info["storage_identifier"]
    present = [p for p in files if STORAGE_BY_SUFFIX[p.suffix] == want]
    if not listed or any(not p.exists() for p in listed):
        if not present:
            raise FormatError(f"{root}: metadata.yaml lists no storage file that exists, and the folder holds "
                              f"no {want} file")
        info["relative_file_paths"] = [p.name for p in present]
        changes.append(f"relative_file_paths -> {[p.name for p in present]}")
    if not changes:
        return None
    info.setdefault("files", [])
    warn(f"{root}: incomplete metadata.yaml read as repaired: {'; '.join(changes)}")
    tmp = tempfile.TemporaryDirectory(prefix="eventfx-bag-")
    for p in present:
        (Path(tmp.name) / p.name).symlink_to(p.resolve())
    (Path(tmp.name) / "metadata.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp


def _bag_error(path, where: str, exc: BaseException) -> FormatError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return FormatError(f"{path}: corrupt or unreadable bag{where} ({type(exc).__name__}: {text})")


class BagSource:
    """One event topic of a bag, plus everything else as pass-through."""

    def __init__(self, path: Path | str, topic: str | None = None):
        self.path = Path(path)
        root = bag_root(self.path)
        self._repaired = None
        try:
            fixed = repaired_metadata(root)
            if fixed is not None:
                self._repaired = fixed
                root = Path(fixed.name)
            self.reader = AnyReader([root], default_typestore=ros2_typestore())
            with _tolerant_definitions():
                self.reader.open()
        except BAG_ERRORS as exc:
            if self._repaired is not None:
                self._repaired.cleanup()
            raise _bag_error(self.path, "", exc) from None
        self.is2 = self.reader.is2
        self.format = "rosbag2" if self.is2 else "rosbag1"
        if self.is2 and any(p.suffix == ".mcap" for p in root.glob("*.mcap")):
            self.format = "mcap"
        conns = [c for c in self.reader.connections if is_event_type(c.msgtype)]
        if topic is not None:
            conns = [c for c in conns if c.topic == topic]
            if not conns:
                have = sorted({c.topic for c in self.reader.connections if is_event_type(c.msgtype)})
                self.close()
                raise FormatError(f"{self.path}: no event topic {topic!r} (event topics: "
                                  f"{', '.join(have) or 'none'})")
        topics = sorted({c.topic for c in conns})
        if not topics:
            self.close()
            raise FormatError(f"{self.path}: no topic with an event message type")
        if len(topics) > 1:
            self.close()
            raise FormatError(f"{self.path}: several event topics ({', '.join(topics)}); choose one with --topic")
        self.topic = topics[0]
        self.event_connections = conns
        self.wire_msgtype = conns[0].msgtype
        self.msgtype = canonical_type(self.wire_msgtype)
        self.ros_version = 2 if self.is2 else 1
        self.codec = TopicCodec(self.wire_msgtype, ros_version=self.ros_version)
        self.num_packets = sum(c.msgcount for c in conns)
        self.other_connections = [c for c in self.reader.connections if c not in conns]
        self.first_encoding: str | None = None  # EventPacket encoding of the first message
        self.sensor_size = self._peek_sensor_size()

    def _peek_sensor_size(self) -> tuple[int, int] | None:
        try:
            for _, _, raw in self.reader.messages(connections=self.event_connections):
                msg = TopicCodec(self.wire_msgtype, ros_version=self.ros_version).deserialize(raw)
                self.first_encoding = getattr(msg, "encoding", None)
                return (int(msg.width), int(msg.height))
        except DecodeError as exc:
            raise FormatError(f"{self.path}: message 0 on {self.topic}: {exc}") from None
        except BAG_ERRORS as exc:
            raise _bag_error(self.path, "", exc) from None
        return None

    def topics(self) -> list[tuple[str, str, int]]:
        """(topic, message type, message count) of every topic in the bag."""
        out: dict = {}
        for c in self.reader.connections:
            t, n = out.get(c.topic, (c.msgtype, 0))
            out[c.topic] = (t, n + c.msgcount)
        return [(topic, t, n) for topic, (t, n) in sorted(out.items())]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.reader.stack:
            self.reader.close()
        if self._repaired is not None:
            self._repaired.cleanup()
            self._repaired = None

    def __iter__(self) -> Iterator[Packet | Passthrough]:
        index = 0
        it = self.reader.messages()
        while True:
            try:
                conn, timestamp, raw = next(it)
            except StopIteration:
                return
            except BAG_ERRORS as exc:
                raise _bag_error(self.path, f" after event message {index}", exc) from None
            if conn not in self.event_connections:
                yield Passthrough(conn.topic, conn.msgtype, timestamp, raw, conn)
                continue
            try:
                msg = self.codec.deserialize(raw)
                decoded = self.codec.decode(msg)
            except DecodeError as exc:
                err = DecodeError(f"{self.path}: message {index} on {self.topic}: {exc}")
                yield Packet(_empty(self.sensor_size), index, timestamp, None, None, error=err)
            else:
                yield Packet(decoded.events, index, timestamp, msg, decoded)
            index += 1


def _empty(size):
    from ..events import Events
    w, h = size or (1, 1)
    return Events.empty(w, h)


class BagWriter:
    """A new bag: event messages on one topic, other topics copied from a source bag."""

    def __init__(self, path: Path | str, fmt: str, source: BagSource | None = None):
        self.path = Path(path)
        self.fmt = fmt
        self.ros_version = 1 if fmt == "rosbag1" else 2
        if fmt == "rosbag1":
            self.writer = Writer1(self.path)
        else:
            plugin = StoragePlugin.MCAP if fmt == "mcap" else StoragePlugin.SQLITE3
            self.writer = Writer2(self.path, version=Writer2.VERSION_LATEST, storage_plugin=plugin)
        self.writer.open()
        self.source = source
        self._event_conn = None
        self._connmap: dict = {}
        self._convmap: dict = {}
        if source is not None and source.other_connections:
            from rosbags.convert.converter import create_connections_converters
            self._connmap, self._convmap = create_connections_converters(
                source.other_connections, None, source.reader, self.writer)

    def add_event_topic(self, topic: str, msgtype: str, qos_from=None) -> None:
        store = ros1_typestore() if self.ros_version == 1 else ros2_typestore()
        if self.ros_version == 1:
            self._event_conn = self.writer.add_connection(topic, msgtype, typestore=store)
        else:
            qos = []
            if qos_from is not None and isinstance(qos_from.ext, ConnectionExtRosbag2):
                qos = qos_from.ext.offered_qos_profiles
            self._event_conn = self.writer.add_connection(topic, msgtype, typestore=store,
                                                          offered_qos_profiles=qos)

    def write_event(self, timestamp_ns: int, raw: bytes) -> None:
        self.writer.write(self._event_conn, int(timestamp_ns), raw)

    def write_passthrough(self, item: Passthrough) -> None:
        conn = self._connmap.get((item.connection.id, item.connection.owner))
        if conn is None:
            raise EventfxError(f"{self.path}: topic {item.topic} does not come from the source bag")
        self.writer.write(conn, item.timestamp_ns, self._convmap[item.connection.msgtype](item.raw))

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # already failing: the partial output is removed by the caller
            pass
