"""Fast (numpy) wire format of the legacy per-event arrays: dvs_msgs / prophesee_event_msgs.

``EventArray`` = ``Header header, uint32 height, uint32 width, Event[] events`` with
``Event = uint16 x, uint16 y, Time ts, bool polarity``. rosbags (de)serialises such arrays one
Python object per event (a few µs each); these functions read and write the same bytes with
one numpy view per message. rosbags' own serialiser is the oracle in the tests.

CDR (ROS 2, little endian, XCDR1): offsets count from the end of the 4-byte encapsulation
header and every primitive aligns to its size. The events sequence starts 4-aligned, so event
0 is ``x@0 y@2 sec@4 nsec@8 pol@12`` and, from then on, every event starts 2 mod 4 with a
16-byte stride: ``x@0 y@2 (pad) sec@6 nsec@10 pol@14``. ROS 1: packed, 13 bytes per event
(``header`` is ``uint32 seq, time stamp, string frame_id`` without NUL).

The parsed events are a numpy structured array of ``EVENT_DTYPE`` (fields x, y, sec, nanosec,
polarity), which is what ``TopicCodec`` stores in ``msg.events`` for these types.
"""
from __future__ import annotations

import struct

import numpy as np

from ..errors import DecodeError

EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("sec", "<i4"), ("nanosec", "<u4"),
                        ("polarity", "u1")])
# Event 1.. in CDR: 16-byte stride, 2 bytes of padding between y and sec.
_CDR_TAIL = np.dtype({"names": ["x", "y", "sec", "nanosec", "polarity"],
                      "formats": ["<u2", "<u2", "<i4", "<u4", "u1"],
                      "offsets": [0, 2, 6, 10, 14], "itemsize": 16})
_CDR_HEAD = np.dtype({"names": ["x", "y", "sec", "nanosec", "polarity"],
                      "formats": ["<u2", "<u2", "<i4", "<u4", "u1"],
                      "offsets": [0, 2, 4, 8, 12], "itemsize": 13})
_ROS1 = np.dtype({"names": ["x", "y", "sec", "nanosec", "polarity"],
                  "formats": ["<u2", "<u2", "<u4", "<u4", "u1"],
                  "offsets": [0, 2, 4, 8, 12], "itemsize": 13})
CDR_LE = b"\x00\x01\x00\x00"


def _align(pos: int, n: int) -> int:
    return (pos + n - 1) // n * n


def cdr_events_size(n: int) -> int:
    """Bytes of ``n`` CDR events: 13 + 1 pad, 16 each in the middle, 15 for the last."""
    return 0 if n == 0 else (13 if n == 1 else 14 + 16 * (n - 2) + 15)


def parse_cdr(raw: bytes | memoryview) -> tuple[tuple[int, int, str], int, int, np.ndarray]:
    """``((stamp_sec, stamp_nanosec, frame_id), height, width, events)`` from CDR bytes."""
    buf = memoryview(raw)
    if len(buf) < 4 or bytes(buf[:4]) != CDR_LE:
        raise DecodeError(f"not a little-endian CDR message (starts {bytes(buf[:4]).hex()})")
    body = buf[4:]
    try:
        sec, nsec, flen = struct.unpack_from("<iII", body, 0)
        frame_id = bytes(body[12:12 + flen]).rstrip(b"\x00").decode()
        pos = _align(12 + flen, 4)
        height, width, n = struct.unpack_from("<III", body, pos)
    except (struct.error, UnicodeDecodeError) as exc:
        raise DecodeError(f"truncated EventArray header ({exc})") from None
    pos += 12
    need = cdr_events_size(n)
    if pos + need > len(body):
        raise DecodeError(f"EventArray claims {n} events but has {len(body) - pos} bytes for them")
    ev = np.empty(n, EVENT_DTYPE)
    if n:
        head = np.frombuffer(body, _CDR_HEAD, 1, pos)
        for f in EVENT_DTYPE.names:
            ev[f][:1] = head[f]
    if n > 1:
        # The last element has no trailing padding: view it through a buffer padded by 1 byte.
        tail_bytes = bytes(body[pos + 14: pos + need]) + b"\x00"
        tail = np.frombuffer(tail_bytes, _CDR_TAIL, n - 1)
        for f in EVENT_DTYPE.names:
            ev[f][1:] = tail[f]
    return (sec, nsec, frame_id), height, width, ev


def build_cdr(stamp: tuple[int, int], frame_id: str, height: int, width: int,
              events: np.ndarray) -> bytes:
    """CDR bytes of an EventArray (inverse of ``parse_cdr``)."""
    fid = frame_id.encode() + b"\x00"
    head = struct.pack("<iII", stamp[0], stamp[1], len(fid)) + fid
    head += b"\x00" * (_align(len(head), 4) - len(head))
    n = len(events)
    head += struct.pack("<III", height, width, n)
    if n == 0:
        return CDR_LE + head
    first = np.zeros(1, _CDR_HEAD)
    rest = np.zeros(n - 1, _CDR_TAIL)
    for f in EVENT_DTYPE.names:
        first[f] = events[f][:1]
        rest[f] = events[f][1:]
    body = first.tobytes()
    if n > 1:
        body += b"\x00" + rest.tobytes()[:-1]  # no padding after the last element's bool
    return CDR_LE + head + body


def parse_ros1(raw: bytes | memoryview) -> tuple[tuple[int, int, int, str], int, int, np.ndarray]:
    """``((seq, stamp_sec, stamp_nanosec, frame_id), height, width, events)`` from ROS 1 bytes."""
    buf = memoryview(raw)
    try:
        seq, sec, nsec, flen = struct.unpack_from("<IIII", buf, 0)
        frame_id = bytes(buf[16:16 + flen]).decode()
        pos = 16 + flen
        height, width, n = struct.unpack_from("<III", buf, pos)
    except (struct.error, UnicodeDecodeError) as exc:
        raise DecodeError(f"truncated ROS 1 EventArray header ({exc})") from None
    pos += 12
    if pos + 13 * n > len(buf):
        raise DecodeError(f"EventArray claims {n} events but has {len(buf) - pos} bytes for them")
    packed = np.frombuffer(buf, _ROS1, n, pos)
    ev = np.empty(n, EVENT_DTYPE)
    for f in EVENT_DTYPE.names:
        ev[f] = packed[f]
    return (seq, sec, nsec, frame_id), height, width, ev


def build_ros1(seq: int, stamp: tuple[int, int], frame_id: str, height: int, width: int,
               events: np.ndarray) -> bytes:
    """ROS 1 bytes of an EventArray (inverse of ``parse_ros1``)."""
    fid = frame_id.encode()
    head = struct.pack("<IIII", seq, stamp[0], stamp[1], len(fid)) + fid
    head += struct.pack("<III", height, width, len(events))
    packed = np.zeros(len(events), _ROS1)
    for f in EVENT_DTYPE.names:
        packed[f] = events[f]
    return head + packed.tobytes()
