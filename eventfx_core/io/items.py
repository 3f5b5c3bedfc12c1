"""What a source yields: ``Packet`` (events of the event topic) and ``Passthrough`` (any other
bag message, kept as raw bytes so a bag -> bag run copies it untouched)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import EventfxError
from ..events import Events


@dataclass
class Packet:
    events: Events  # decoded events, t in µs (empty when ``error`` is set)
    index: int  # 0-based position among the source's packets (message index for bags)
    timestamp_ns: int | None = None  # bag receive time; None for files without one
    message: Any = None  # the original message object (bags), else None
    decoded: Any = None  # codecs.Decoded (events + triggers) for bag messages, else None
    error: EventfxError | None = None  # set instead of raising when one message cannot be decoded
    seq: int | None = None  # files that keep a message cut (DSEC made from a bag): its sequence number
    header_ns: int | None = None  # ...and its header stamp (bags: read them from ``message``)

    def header_stamp_ns(self) -> int | None:
        """The header stamp of the message this packet came from: its message's (bags), the
        one a file kept (``header_ns``), else None."""
        from ..codecs.messages import header_stamp_ns

        return header_stamp_ns(self.message) if self.message is not None else self.header_ns

    def out_seq(self) -> int:
        """The sequence number a message made from this packet carries: its message's
        (EventPacket/eventfx ``seq``, ROS 1 ``header.seq``) or the one a file kept, else its index."""
        from ..codecs.messages import message_seq

        seq = message_seq(self.message) if self.message is not None else self.seq
        return self.index if seq is None else seq


@dataclass
class Passthrough:
    topic: str
    msgtype: str
    timestamp_ns: int
    raw: bytes | memoryview  # serialised message, in the source bag's wire format
    connection: Any  # rosbags Connection of the source bag


class OpenFile:
    """Mixin for readers holding ``self.file``: ``with Reader(...) as r`` closes it."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.file.close()
