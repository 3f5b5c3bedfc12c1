"""Re-typing and re-cutting event messages for bag outputs (``eventfx convert``).

Rules for messages eventfx builds (as opposed to messages rewritten in place):

- Clock. dvs_msgs/prophesee_event_msgs events carry ROS time in ``ts``; EventPacket and
  eventfx_msgs carry the sensor clock, with ``header.stamp`` the ROS time of the first event.
  The offset sensor -> ROS time is taken once, from the first non-empty input message
  (``header.stamp - t[0]``; 0 for legacy arrays and for files), and then kept fixed, so time
  stays monotone and a round trip (dvs -> EventPacket -> dvs) returns the same stamps.
- ``header.stamp`` of a built message = ROS time of its first event (the input's stamp when it
  is empty; the stamp a DSEC file kept of its message, where it did); ``frame_id`` is the input's.
- ``seq``: one message per input message (no ``packet_us``) keeps the input's sequence number
  (EventPacket/eventfx ``seq`` or ROS 1 ``header.seq``; the message index when there is none);
  re-cut messages are numbered 0, 1, 2, ... in output order.
- Bag receive time: the input message's for one-to-one output; for re-cut output the receive
  time of the input message that completed the window (the event ROS time if there is none).
- EventPacket payloads: ``evt3`` stores ``t - base`` with ``base`` the first event's time
  rounded down to 2**24 µs (what a fresh EVT3 decoder returns), ``time_base = 0``; ``libcaer``
  and ``mono`` use ``time_base`` = first event time of the message in ns. Triggers of EVT3
  inputs go along (shifted likewise) into EVT3 outputs; other outputs cannot carry them.
- ``packet_us``: windows ``[k * packet_us, (k + 1) * packet_us)`` of the events' own clock;
  empty windows produce no message.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..codecs import Triggers, make_encoder
from ..errors import EventfxError
from ..events import Events, concat
from ..codecs.messages import (EVENT_PACKET, LEGACY_ARRAYS, TopicCodec, build_message, canonical_type,
                               header_stamp_ns, message_seq)
from .items import Packet
from ..codecs.typestore import ros1_typestore, ros2_typestore

WRAP_US = 1 << 24  # EVT3 time counter period


def port_message(msg, msgtype: str, ros_version: int, seq: int):
    """The same message for the other ROS version (header with or without ``seq``)."""
    store = ros1_typestore() if ros_version == 1 else ros2_typestore()
    T = store.types
    h = msg.header
    stamp = T["builtin_interfaces/msg/Time"](sec=int(h.stamp.sec), nanosec=int(h.stamp.nanosec))
    if ros_version == 1:
        keep = message_seq(msg)
        header = T["std_msgs/msg/Header"](seq=int(seq if keep is None else keep) & 0xFFFFFFFF,
                                          stamp=stamp, frame_id=h.frame_id)
    else:
        header = T["std_msgs/msg/Header"](stamp=stamp, frame_id=h.frame_id)
    fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg) if f.name != "header"}
    return T[canonical_type(msgtype)](header=header, **fields)


class Recutter:
    """Turns (packet, keep mask) pairs into serialised messages of ``out_type``."""

    def __init__(self, out_type: str, encoding: str | None, packet_us: int | None, ros_version: int,
                 source_type: str | None, emit: Callable[[int, bytes], None]):
        self.out_type = canonical_type(out_type)
        self.encoding = (encoding or "evt3") if self.out_type == EVENT_PACKET else None
        self.packet_us = int(packet_us) if packet_us else None
        if self.packet_us is not None and self.packet_us <= 0:
            raise EventfxError(f"packet_us must be positive, got {packet_us}")
        self.ros_version = ros_version
        self.source_type = source_type
        self.codec = TopicCodec(self.out_type, ros_version=ros_version)
        self.emit = emit
        self.offset_us: int | None = None  # sensor clock -> ROS time, fixed at the first events
        self.evt3_base: int | None = None
        self.encoder = None
        self.frame_id = ""
        self.n_out = 0
        self._buf: list[Events] = []
        self._trig: list[Triggers] = []
        self._last_stamp_ns: int | None = None

    # ------------------------------------------------------------------ input
    def add(self, packet: Packet, keep: np.ndarray) -> None:
        msg = packet.message
        ev = packet.events[keep]
        trig = getattr(packet.decoded, "triggers", None)
        if msg is not None:
            self.frame_id = msg.header.frame_id
        if self.offset_us is None and len(packet.events):
            if msg is None or self.source_type in LEGACY_ARRAYS:
                self.offset_us = 0
            else:
                self.offset_us = header_stamp_ns(msg) // 1000 - int(packet.events.t[0])
        if self.packet_us is None:
            self._write(ev, trig, seq=packet.out_seq(), bag_ns=packet.timestamp_ns,
                        empty_stamp_ns=packet.header_stamp_ns(),
                        header_ns=packet.header_ns if msg is None else None)
            return
        if packet.timestamp_ns is not None:
            self._last_stamp_ns = packet.timestamp_ns
        if len(ev):
            self._buf.append(ev)
        if trig is not None and len(trig):
            self._trig.append(trig)
        if self._buf:
            self._cut(final=False)

    def flush(self) -> None:
        if self.packet_us is not None:
            self._cut(final=True)

    # ------------------------------------------------------------------ cutting
    def _cut(self, final: bool) -> None:
        ev = concat(self._buf) if self._buf else None
        trig = _concat_triggers(self._trig)
        if ev is None or len(ev) == 0:
            return
        P = self.packet_us
        first_win = int(ev.t[0]) // P
        # Windows that are complete: those ending at or before the newest event's window.
        last_win = int(ev.t[-1]) // P + (1 if final else 0)
        if last_win <= first_win:
            self._buf = [ev]
            return
        win = ev.t // P
        bounds = np.searchsorted(win, np.arange(first_win, last_win + 1), side="left")
        tb = trig.t // P if trig is not None else None
        for k in range(len(bounds) - 1):
            a, b = int(bounds[k]), int(bounds[k + 1])
            if a == b:
                continue
            part = ev[a:b]
            ptrig = None
            if trig is not None:
                ptrig = trig[(tb == first_win + k)]
            stamp = self._last_stamp_ns
            if stamp is None:
                stamp = (int(part.t[-1]) + (self.offset_us or 0)) * 1000
            self._write(part, ptrig, seq=self.n_out, bag_ns=stamp, empty_stamp_ns=None)
        rest = int(bounds[-1])
        self._buf = [ev[rest:]] if rest < len(ev) else []
        if trig is not None:
            self._trig = [trig[tb >= last_win]] if len(trig) else []

    # ------------------------------------------------------------------ building
    def _write(self, ev: Events, trig: Triggers | None, *, seq: int, bag_ns: int | None,
               empty_stamp_ns: int | None, header_ns: int | None = None) -> None:
        off = self.offset_us or 0
        if header_ns is not None:  # the stamp a file kept of the message it was made from
            pass
        elif len(ev):
            header_ns = (int(ev.t[0]) + off) * 1000
        else:
            header_ns = empty_stamp_ns if empty_stamp_ns is not None else 0
        if bag_ns is None:
            bag_ns = header_ns
        out = ev
        time_base = 0
        triggers = None
        if self.out_type in LEGACY_ARRAYS and off:
            out = Events(ev.t + off, ev.x, ev.y, ev.p, ev.width, ev.height)
        elif self.out_type == EVENT_PACKET:
            if self.encoder is None:
                self.encoder = make_encoder(self.encoding, ev.width, ev.height)
            if self.encoding == "evt3":
                if self.evt3_base is None and len(ev):
                    self.evt3_base = int(ev.t[0]) // WRAP_US * WRAP_US
                base = self.evt3_base or 0
                if base:
                    out = Events(ev.t - base, ev.x, ev.y, ev.p, ev.width, ev.height)
                if trig is not None and len(trig):
                    triggers = Triggers(trig.t - base, trig.id, trig.value)
            elif len(ev):
                time_base = int(ev.t[0]) * 1000
        msg = build_message(self.out_type, out, header_stamp_ns=header_ns, seq=seq,
                            encoding=self.encoding, frame_id=self.frame_id,
                            ros_version=self.ros_version, time_base=time_base,
                            triggers=triggers, encoder=self.encoder)
        self.emit(bag_ns, self.codec.serialize(msg))
        self.n_out += 1


def _concat_triggers(parts: list[Triggers]) -> Triggers | None:
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    return Triggers(np.concatenate([p.t for p in parts]), np.concatenate([p.id for p in parts]),
                    np.concatenate([p.value for p in parts]))
