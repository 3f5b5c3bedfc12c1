"""Event messages <-> ``Events``, shared by the ROS node and the offline CLI (offline == online).

Four message types carry events (``EVENT_TYPES``):

- ``event_camera_msgs/msg/EventPacket``: an encoded byte payload (evt3, evt2, libcaer, mono);
  decoded and re-encoded through ``eventfx_core.codecs`` with the message's own encoding,
  ``time_base`` and sensor size. The old name ``event_array_msgs/msg/EventArray`` is read too.
- ``dvs_msgs/msg/EventArray`` and ``prophesee_event_msgs/msg/EventArray``: one struct per
  event with a ``builtin_interfaces/Time ts``; ``t`` is ``sec * 1e6 + nanosec // 1000`` µs.
  ``TopicCodec.deserialize`` parses these with numpy (``codecs.legacy_wire``), so ``msg.events``
  is then a structured array; lists of event objects (rosbags, rclpy) are accepted as well.
- ``eventfx_msgs/msg/EventArray``: the four arrays as they are.

``TopicCodec.decode`` also watches the stream's position (seq, header stamp): when it goes back
the stream restarted, and the payload decoder starts afresh (``codecs.timeline`` states the
whole time-goes-backwards policy). ``is_bigendian`` is honoured: such a payload's words (2, 4 or
8 bytes, per encoding) are byte-swapped before decoding; rewritten messages are little endian.

Messages are rosbags message objects (``codecs.typestore``); ``decode`` also reads rclpy messages
(duck typing on field names).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import DecodeError, EventfxError
from ..events import Events
from . import WORD_BYTES, Decoded, Triggers, legacy_wire, make_decoder, make_encoder
from .timeline import StreamPosition
from .typestore import LEGACY_ALIASES, ros1_typestore, ros2_typestore

EVENT_PACKET = "event_camera_msgs/msg/EventPacket"
DVS_ARRAY = "dvs_msgs/msg/EventArray"
PROPHESEE_ARRAY = "prophesee_event_msgs/msg/EventArray"
EVENTFX_ARRAY = "eventfx_msgs/msg/EventArray"
EVENT_TYPES = (EVENT_PACKET, DVS_ARRAY, PROPHESEE_ARRAY, EVENTFX_ARRAY)
LEGACY_ARRAYS = (DVS_ARRAY, PROPHESEE_ARRAY)
DEFAULT_ENCODING = "evt3"  # encoding of EventPacket messages built without one


def canonical_type(msgtype: str) -> str:
    """``pkg/msg/Name`` for ``pkg/Name`` (ROS 1 spelling) and the legacy EventPacket alias."""
    if msgtype.count("/") == 1:
        pkg, name = msgtype.split("/")
        msgtype = f"{pkg}/msg/{name}"
    return LEGACY_ALIASES.get(msgtype, msgtype)


def is_event_type(msgtype: str) -> bool:
    return canonical_type(msgtype) in EVENT_TYPES


def _decoded(events: Events) -> Decoded:
    """A ``Decoded`` for message types that carry no trigger events."""
    return Decoded(events=events, triggers=Triggers.empty())


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def little_endian_payload(payload: bytes, encoding: str) -> bytes:
    """A big-endian payload of ``encoding``'s words, byte-swapped to the little-endian wire form
    the decoders read (a partial last word is left for the decoder to reject)."""
    k = WORD_BYTES.get(encoding, 1)
    whole = len(payload) - len(payload) % k
    if k == 1 or whole == 0:
        return payload
    words = np.frombuffer(payload, f">u{k}", whole // k)
    return words.astype(f"<u{k}").tobytes() + payload[whole:]


def legacy_to_events(events, width: int, height: int) -> Events:
    """Per-event structs (structured array or list of objects) -> ``Events``."""
    if isinstance(events, np.ndarray):
        t = events["sec"].astype(np.int64) * 1_000_000 + events["nanosec"].astype(np.int64) // 1000
        return Events.from_arrays(t, events["x"], events["y"], events["polarity"].astype(np.uint8),
                                  width, height)
    n = len(events)
    arr = np.empty(n, legacy_wire.EVENT_DTYPE)
    # Plain path (list of message objects): also the oracle for the structured-array path.
    for i, e in enumerate(events):
        arr[i] = (e.x, e.y, e.ts.sec, e.ts.nanosec, bool(e.polarity))
    return legacy_to_events(arr, width, height)


def events_to_legacy(ev: Events) -> np.ndarray:
    """``Events`` -> structured array of ``legacy_wire.EVENT_DTYPE`` (t µs -> sec, nanosec)."""
    out = np.empty(len(ev), legacy_wire.EVENT_DTYPE)
    out["x"], out["y"], out["polarity"] = ev.x, ev.y, ev.p
    out["sec"] = ev.t // 1_000_000
    out["nanosec"] = (ev.t % 1_000_000) * 1000
    return out


class TopicCodec:
    """Decodes and rewrites the messages of one event topic; keeps decoder state across them.

    ``ros_version`` selects the wire format of ``deserialize``/``serialize``: 2 = CDR, 1 = ROS 1.
    """

    def __init__(self, msgtype: str, typestore=None, *, ros_version: int = 2):
        self.msgtype = canonical_type(msgtype)
        if self.msgtype not in EVENT_TYPES:
            raise EventfxError(f"{msgtype} is not an event message type (one of {', '.join(EVENT_TYPES)})")
        self.ros_version = int(ros_version)
        self.typestore = typestore or (ros1_typestore() if self.ros_version == 1 else ros2_typestore())
        self.wire_type = msgtype if "/msg/" in msgtype else self.msgtype  # name for (de)serialise
        self._decoder = None
        self._decoder_key = None
        self._encoders: dict = {}
        self.position = StreamPosition()  # seq / stamp going back: the stream restarted

    # ------------------------------------------------------------------ decode
    def decode(self, msg) -> Decoded:
        """Events (t in µs) and triggers of one message, in stream order; ``DecodeError`` on a
        bad payload. A message whose seq or stamp goes back starts a fresh payload decoder and
        comes back with ``restarted`` set (see ``codecs.timeline``)."""
        restarted = self.position.observe(message_seq(msg), header_stamp_ns(msg))
        w, h = int(msg.width), int(msg.height)
        if self.msgtype == EVENT_PACKET:
            key = (str(msg.encoding), w, h)
            if key != self._decoder_key or restarted:
                self._decoder = make_decoder(*key)
                self._decoder_key = key
            payload = np.asarray(msg.events, dtype=np.uint8)  # deserialised: a view, no copy
            if getattr(msg, "is_bigendian", False):
                payload = little_endian_payload(payload.tobytes(), key[0])
            elif payload.ctypes.data % 8:  # the decoders view it as words: aligned memory
                payload = payload.copy()
            decoded = self._decoder.decode(payload, time_base=int(msg.time_base))
        elif self.msgtype in LEGACY_ARRAYS:
            decoded = _decoded(legacy_to_events(msg.events, w, h))
        else:
            decoded = _decoded(Events.from_arrays(msg.t, msg.x, msg.y, msg.p, w, h))
        return dataclasses.replace(decoded, restarted=True) if restarted else decoded

    # ------------------------------------------------------------------ rewrite
    def rewrite(self, msg, decoded: Decoded, keep: np.ndarray) -> Any:
        """The same message with only the kept events (triggers pass through unchanged)."""
        keep = np.asarray(keep, dtype=bool)
        if len(keep) != len(decoded.events):
            raise EventfxError(f"keep mask has {len(keep)} entries for {len(decoded.events)} events")
        kept = decoded.events[keep]
        if self.msgtype == EVENT_PACKET:
            payload = self._encoder(msg.encoding, kept.width, kept.height).encode(
                kept, triggers=decoded.triggers, time_base=int(msg.time_base))
            return dataclasses.replace(msg, events=np.frombuffer(payload, np.uint8), is_bigendian=False)
        if self.msgtype in LEGACY_ARRAYS:
            if isinstance(msg.events, np.ndarray):
                return dataclasses.replace(msg, events=msg.events[keep])
            return dataclasses.replace(msg, events=[e for e, k in zip(msg.events, keep) if k])
        return dataclasses.replace(msg, t=kept.t, x=kept.x, y=kept.y, p=kept.p)

    def _encoder(self, encoding: str, width: int, height: int):
        key = (str(encoding), int(width), int(height))
        if key not in self._encoders:
            self._encoders[key] = make_encoder(*key)
        return self._encoders[key]

    # ------------------------------------------------------------------ wire format
    def deserialize(self, raw: bytes | memoryview) -> Any:
        """Message object from CDR (ROS 2) or ROS 1 bytes; legacy arrays via numpy."""
        try:
            if self.msgtype in LEGACY_ARRAYS:
                return self._deserialize_legacy(raw)
            if self.ros_version == 1:
                return self.typestore.deserialize_ros1(raw, self.wire_type)
            return self.typestore.deserialize_cdr(raw, self.wire_type)
        except DecodeError:
            raise
        except Exception as exc:  # rosbags raises assorted errors on truncated bytes
            raise DecodeError(f"cannot deserialise {self.msgtype}: {type(exc).__name__}: {exc}") from None

    def serialize(self, msg) -> bytes:
        """CDR (ROS 2) or ROS 1 bytes of a message."""
        if self.msgtype in LEGACY_ARRAYS and isinstance(msg.events, np.ndarray):
            stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
            if self.ros_version == 1:
                return legacy_wire.build_ros1(int(msg.header.seq), stamp, msg.header.frame_id,
                                              int(msg.height), int(msg.width), msg.events)
            return legacy_wire.build_cdr(stamp, msg.header.frame_id, int(msg.height),
                                         int(msg.width), msg.events)
        if self.ros_version == 1:
            return bytes(self.typestore.serialize_ros1(msg, self.wire_type))
        return bytes(self.typestore.serialize_cdr(msg, self.wire_type))

    def _deserialize_legacy(self, raw):
        T = self.typestore.types
        if self.ros_version == 1:
            (seq, sec, nsec, frame_id), height, width, ev = legacy_wire.parse_ros1(raw)
            header = T["std_msgs/msg/Header"](seq=seq, stamp=T["builtin_interfaces/msg/Time"](
                sec=sec, nanosec=nsec), frame_id=frame_id)
        else:
            (sec, nsec, frame_id), height, width, ev = legacy_wire.parse_cdr(raw)
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](
                sec=sec, nanosec=nsec), frame_id=frame_id)
        return T[self.msgtype](header=header, height=height, width=width, events=ev)


def message_seq(msg) -> int | None:
    """The sequence number a message carries (EventPacket/eventfx ``seq``, ROS 1 header seq)."""
    if hasattr(msg, "seq"):
        return int(msg.seq)
    return int(msg.header.seq) if hasattr(msg.header, "seq") else None


def header_stamp_ns(msg) -> int | None:
    """The header stamp in ns (None for a message without a header)."""
    header = getattr(msg, "header", None)
    return None if header is None else _stamp_ns(header.stamp)


def build_message(msgtype: str, events: Events, *, header_stamp_ns: int, seq: int,
                  encoding: str | None = None, frame_id: str = "", ros_version: int = 2,
                  time_base: int = 0, triggers=None, encoder=None) -> Any:
    """A new message of ``msgtype`` carrying ``events`` (for convert and packet re-cutting).

    ``seq`` goes to the ``seq`` field (EventPacket, eventfx) or to the ROS 1 header;
    EventPacket payloads are encoded with ``encoding`` (default evt3) relative to ``time_base``.
    Pass ``encoder`` (from ``make_encoder``) to reuse one across messages.
    """
    msgtype = canonical_type(msgtype)
    store = ros1_typestore() if ros_version == 1 else ros2_typestore()
    T = store.types
    stamp = T["builtin_interfaces/msg/Time"](sec=int(header_stamp_ns // 1_000_000_000),
                                             nanosec=int(header_stamp_ns % 1_000_000_000))
    if ros_version == 1:
        header = T["std_msgs/msg/Header"](seq=int(seq) & 0xFFFFFFFF, stamp=stamp, frame_id=frame_id)
    else:
        header = T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)
    w, h = int(events.width), int(events.height)
    if msgtype == EVENT_PACKET:
        encoding = encoding or DEFAULT_ENCODING
        enc = encoder or make_encoder(encoding, w, h)
        payload = enc.encode(events, triggers=triggers, time_base=int(time_base))
        return T[msgtype](header=header, height=h, width=w, seq=int(seq), time_base=int(time_base),
                          encoding=encoding, is_bigendian=False,
                          events=np.frombuffer(payload, np.uint8))
    if msgtype in LEGACY_ARRAYS:
        return T[msgtype](header=header, height=h, width=w, events=events_to_legacy(events))
    if msgtype == EVENTFX_ARRAY:
        return T[msgtype](header=header, height=h, width=w, seq=int(seq), x=events.x.copy(),
                          y=events.y.copy(), t=events.t.copy(), p=events.p.copy())
    raise EventfxError(f"{msgtype} is not an event message type")
