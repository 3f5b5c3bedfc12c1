"""DSEC ``events.h5``: read (whole, by time slice, or streamed in chunks) and write (streamed).

Layout (Gehrig et al., "DSEC: A Stereo Event Camera Dataset for Driving Scenarios", RA-L 2021,
and its loader scripts): ``/events/{p,t,x,y}`` with ``t`` in µs relative to the scalar
``/t_offset`` (so absolute time = t + t_offset), and ``/ms_to_idx`` where
``ms_to_idx[ms]`` is the first event with ``t >= ms * 1000``. Datasets are Blosc+ZSTD
compressed through ``hdf5plugin`` (readers must ``import hdf5plugin`` first, as DSEC's own do).
DSEC cameras are 640x480; the writer also stores ``width``/``height`` as root attributes and
the reader uses them when present. A file without them (DSEC's own, or another camera's in
DSEC layout) is 640x480 when every event fits, else the size is taken from the data (largest
x and y + 1) with a warning, so no event is ever outside the sensor the reader reports.

Absolute time is kept in ``t_offset`` (the first event's µs). The writer also records the
EventPacket encoding of the recording it was made from (root attribute ``source_encoding``)
and, when it was made from messages, their cut (eventfx extension, ignored by DSEC's own
loaders): ``/eventfx/msg_first`` (uint64, index of each message's first event) and
``/eventfx/msg_stamp_ns``, ``msg_header_ns`` and ``msg_seq`` (int64: its bag receive time,
header stamp and sequence number), so a bag made back from the file has the same encoding and
the same messages.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import h5py
import hdf5plugin
import numpy as np

from ..errors import FormatError, warn
from ..events import Events
from .items import OpenFile

DSEC_SIZE = (640, 480)  # (width, height) of DSEC's Prophesee Gen3.1 cameras
CHUNK = 1 << 18  # events per HDF5 chunk (256 k: about 1 MB of t per chunk)
T_DTYPE = np.uint32  # DSEC stores relative µs as uint32 (71.6 minutes of range)


def _compression() -> dict:
    return dict(hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))


def open_h5(path: Path | str) -> h5py.File:
    """Open an HDF5 file for reading; ``FormatError`` naming the file when it is not one."""
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())  # h5py's messages span lines
        raise FormatError(f"{path}: not a readable HDF5 file ({reason})") from None


def is_dsec(f: h5py.File) -> bool:
    return "events" in f and "t" in f["events"] and "ms_to_idx" in f


class DsecReader(OpenFile):
    """Random and streamed access to a DSEC events file (keeps the file open; use ``with``)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.file = open_h5(path)
        if not is_dsec(self.file):
            self.file.close()
            raise FormatError(f"{path}: not a DSEC events file (no /events/t or /ms_to_idx)")
        ev = self.file["events"]
        self._t, self._x, self._y, self._p = ev["t"], ev["x"], ev["y"], ev["p"]
        self.t_offset = int(self.file["t_offset"][()]) if "t_offset" in self.file else 0
        self.ms_to_idx = self.file["ms_to_idx"]
        self.msg_first = self.msg_stamp_ns = None  # the message cut, where the file keeps it
        if "eventfx" in self.file and "msg_first" in self.file["eventfx"]:
            g = self.file["eventfx"]
            self.msg_first = np.asarray(g["msg_first"][()], np.int64)
            self.msg_stamp_ns = np.asarray(g["msg_stamp_ns"][()], np.int64)
            self.msg_header_ns = np.asarray(g["msg_header_ns"][()], np.int64) if "msg_header_ns" in g else None
            self.msg_seq = np.asarray(g["msg_seq"][()], np.int64) if "msg_seq" in g else None
            if len(self.msg_first) != len(self.msg_stamp_ns) or np.any(np.diff(self.msg_first) < 0) \
                    or (len(self.msg_first) and self.msg_first[-1] > len(ev["t"])):
                self.file.close()
                raise FormatError(f"{path}: /eventfx/msg_first and msg_stamp_ns do not describe a message cut")
        attrs = self.file.attrs
        self.n = len(self._t)
        enc = attrs.get("source_encoding")
        self.source_encoding = (enc.decode() if isinstance(enc, bytes) else str(enc)) if enc is not None else None
        if "width" in attrs and "height" in attrs:
            self.width, self.height = int(attrs["width"]), int(attrs["height"])
        else:
            self.width, self.height = self._size_from_data()

    def _size_from_data(self, chunk: int = 1 << 22) -> tuple[int, int]:
        """DSEC's 640x480 when every event fits, else (max x + 1, max y + 1) with a warning."""
        mx = my = -1
        try:
            for a in range(0, self.n, chunk):
                x, y = self._x[a:a + chunk], self._y[a:a + chunk]
                if len(x):
                    mx, my = max(mx, int(x.max())), max(my, int(y.max()))
        except (OSError, ValueError) as exc:
            raise FormatError(f"{self.path}: cannot read x/y ({exc})") from None
        if mx < DSEC_SIZE[0] and my < DSEC_SIZE[1]:
            return DSEC_SIZE
        size = (max(mx + 1, DSEC_SIZE[0]), max(my + 1, DSEC_SIZE[1]))
        warn(f"{self.path}: no width/height attributes and events up to x={mx}, y={my} (beyond DSEC's "
             f"640x480): sensor size taken from the data as {size[0]}x{size[1]}")
        return size

    def read(self, start: int = 0, stop: int | None = None) -> Events:
        """Events ``start:stop`` with absolute time stamps (t + t_offset)."""
        stop = self.n if stop is None else min(stop, self.n)
        try:
            t = self._t[start:stop].astype(np.int64) + self.t_offset
            return Events.from_arrays(t, self._x[start:stop], self._y[start:stop],
                                      self._p[start:stop], self.width, self.height)
        except (OSError, ValueError) as exc:
            raise FormatError(f"{self.path}: cannot read events {start}..{stop} ({exc})") from None

    def slice_us(self, t0_us: int, t1_us: int) -> Events:
        """Events with ``t0_us <= t < t1_us`` (absolute µs), located through ``ms_to_idx``."""
        r0, r1 = t0_us - self.t_offset, t1_us - self.t_offset
        n_ms = len(self.ms_to_idx)
        i0 = 0 if r0 <= 0 else (self.n if r0 // 1000 >= n_ms else int(self.ms_to_idx[r0 // 1000]))
        ms1 = -(-r1 // 1000)  # ceil: the index for ms1 is past every event < t1
        i1 = 0 if r1 <= 0 else (self.n if ms1 >= n_ms else int(self.ms_to_idx[ms1]))
        ev = self.read(i0, i1)
        keep = (ev.t >= t0_us) & (ev.t < t1_us)
        return ev if keep.all() else ev[keep]

    def chunks(self, chunk_events: int = 1_000_000) -> Iterator[Events]:
        for start in range(0, self.n, chunk_events):
            yield self.read(start, start + chunk_events)


def read_dsec(path: Path | str) -> Events:
    """All events of a DSEC file (small files and tests; stream big ones with ``DsecReader``)."""
    with DsecReader(path) as r:
        return r.read()


class DsecWriter:
    """Appends time-sorted events to a new DSEC file; ``ms_to_idx`` is built as events arrive."""

    def __init__(self, path: Path | str, width: int = DSEC_SIZE[0], height: int = DSEC_SIZE[1],
                 t_offset: int | None = None, source_encoding: str | None = None):
        self.path = Path(path)
        self.file = h5py.File(self.path, "w")
        self.file.attrs["width"], self.file.attrs["height"] = int(width), int(height)
        if source_encoding:
            self.file.attrs["source_encoding"] = str(source_encoding)
        g = self.file.create_group("events")
        comp = _compression()
        self._ds = {name: g.create_dataset(name, (0,), dtype=dt, maxshape=(None,), chunks=(CHUNK,), **comp)
                    for name, dt in (("p", np.uint8), ("t", T_DTYPE), ("x", np.uint16), ("y", np.uint16))}
        self._ms = self.file.create_dataset("ms_to_idx", (0,), dtype=np.uint64, maxshape=(None,),
                                            chunks=(CHUNK // 4,), **comp)
        self.t_offset = t_offset  # fixed by the first event unless given
        self.n = 0
        self._msg_first: list[int] = []
        self._msg_stamp: list[int] = []
        self._msg_header: list[int] = []
        self._msg_seq: list[int] = []
        self._next_ms = 0
        self._last_t: int | None = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close()

    def append(self, ev: Events) -> None:
        if len(ev) == 0:
            return
        if self.t_offset is None:
            self.t_offset = int(ev.t[0])
        rel = ev.t - self.t_offset
        if rel[0] < 0 or (self._last_t is not None and ev.t[0] < self._last_t) or np.any(np.diff(ev.t) < 0):
            raise FormatError(f"{self.path}: DSEC files need time-sorted events (event {self.n})")
        if rel[-1] > np.iinfo(T_DTYPE).max:
            raise FormatError(f"{self.path}: events span more than 2^32 µs (71.6 min), beyond DSEC's uint32 t")
        self._last_t = int(ev.t[-1])
        n0, n1 = self.n, self.n + len(ev)
        for name, arr in (("p", ev.p), ("t", rel.astype(T_DTYPE)), ("x", ev.x), ("y", ev.y)):
            self._ds[name].resize((n1,))
            self._ds[name][n0:n1] = arr
        # Every ms whose start is <= the newest event now has its first index settled.
        last_ms = int(rel[-1]) // 1000
        if last_ms >= self._next_ms:
            ms = np.arange(self._next_ms, last_ms + 1, dtype=np.int64)
            idx = n0 + np.searchsorted(rel, ms * 1000, side="left")
            self._ms.resize((last_ms + 1,))
            self._ms[self._next_ms:last_ms + 1] = idx.astype(np.uint64)
            self._next_ms = last_ms + 1
        self.n = n1

    def start_message(self, stamp_ns: int, header_ns: int, seq: int) -> None:
        """The events appended next belong to a new message (receive time, header stamp, seq)."""
        self._msg_first.append(self.n)
        self._msg_stamp.append(int(stamp_ns))
        self._msg_header.append(int(header_ns))
        self._msg_seq.append(int(seq))

    def close(self) -> None:
        if not self.file.id.valid:
            return
        if "t_offset" not in self.file:
            self.file.create_dataset("t_offset", data=np.int64(self.t_offset or 0))
        if self._msg_first:
            g = self.file.create_group("eventfx")
            g["msg_first"] = np.asarray(self._msg_first, np.uint64)
            g["msg_stamp_ns"] = np.asarray(self._msg_stamp, np.int64)
            g["msg_header_ns"] = np.asarray(self._msg_header, np.int64)
            g["msg_seq"] = np.asarray(self._msg_seq, np.int64)
        self.file.close()


def write_dsec(path: Path | str, ev: Events) -> None:
    with DsecWriter(path, ev.width, ev.height) as w:
        w.append(ev)
