"""The eventfx HDF5 archive: events (+ optional per-event labels) for training and evaluation.

Layout: ``/events/{t,x,y,p}`` (int64 µs, uint16, uint16, uint8) and optional ``/events/label``
(uint8: 0 signal, 1 noise, 2 flare, 3 light source, defined in ``eventfx_core.labels``); root
attributes ``format = "eventfx-archive"``, ``version = 1``, ``width``, ``height``, ``meta`` (a
JSON string) and ``complete``, which stays False until the writer is closed, so a file left
behind by a crash is detected (``read_archive``/``iter_archive`` refuse it). Datasets are
chunked, resizable and Blosc+ZSTD compressed (``hdf5plugin``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..errors import FormatError
from ..events import Events
from .dsec import _compression, open_h5
from .items import OpenFile

FORMAT = "eventfx-archive"
VERSION = 1
CHUNK = 1 << 16  # events per HDF5 chunk (64 k)
_FIELDS = (("t", np.int64), ("x", np.uint16), ("y", np.uint16), ("p", np.uint8))


@dataclass
class Archive:
    events: Events
    labels: np.ndarray | None  # uint8 per event (eventfx_core.labels); None when the file has none
    meta: dict = field(default_factory=dict)


class ArchiveWriter:
    """Appends events (and labels) to a new archive; ``close`` marks it complete."""

    def __init__(self, path: Path | str, width: int, height: int, meta: dict | None = None,
                 with_labels: bool = False):
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.with_labels = with_labels
        self.file = h5py.File(self.path, "w")
        a = self.file.attrs
        a["format"], a["version"], a["complete"] = FORMAT, VERSION, False
        a["width"], a["height"] = self.width, self.height
        a["meta"] = json.dumps(meta or {})
        g = self.file.create_group("events")
        fields = _FIELDS + ((("label", np.uint8),) if with_labels else ())
        comp = _compression()
        self._ds = {name: g.create_dataset(name, (0,), dtype=dt, maxshape=(None,), chunks=(CHUNK,), **comp)
                    for name, dt in fields}
        self.n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def append(self, events: Events, labels: np.ndarray | None = None) -> None:
        if events.sensor_size != (self.width, self.height):
            raise FormatError(f"{self.path}: events are {events.width}x{events.height}, "
                              f"archive is {self.width}x{self.height}")
        if self.with_labels != (labels is not None):
            raise FormatError(f"{self.path}: archive {'needs' if self.with_labels else 'has no'} labels")
        if labels is not None and len(labels) != len(events):
            raise FormatError(f"{self.path}: {len(labels)} labels for {len(events)} events")
        n0, n1 = self.n, self.n + len(events)
        if n1 == n0:
            return
        cols = {"t": events.t, "x": events.x, "y": events.y, "p": events.p}
        if labels is not None:
            cols["label"] = np.asarray(labels, np.uint8)
        for name, arr in cols.items():
            self._ds[name].resize((n1,))
            self._ds[name][n0:n1] = arr
        self.n = n1

    def close(self) -> None:
        if self.file.id.valid:
            self.file.attrs["complete"] = True
            self.file.close()


def write_archive(path: Path | str, events: Events, labels: np.ndarray | None = None,
                  meta: dict | None = None) -> None:
    with ArchiveWriter(path, events.width, events.height, meta, with_labels=labels is not None) as w:
        w.append(events, labels)


class ArchiveReader(OpenFile):
    """Checked, open archive (use ``with``); reads ranges of events and labels."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.file = open_h5(path)
        a = self.file.attrs
        try:
            if a.get("format") != FORMAT:
                raise FormatError(f"{path}: not an eventfx archive (format attribute {a.get('format')!r})")
            if int(a.get("version", -1)) != VERSION:
                raise FormatError(f"{path}: archive version {a.get('version')} (this eventfx reads {VERSION})")
            if not bool(a.get("complete", False)):
                raise FormatError(f"{path}: archive is incomplete (its writer was never closed)")
            self.width, self.height = int(a["width"]), int(a["height"])
            self.meta = json.loads(a.get("meta", "{}"))
            ev = self.file["events"]
            self._ds = {name: ev[name] for name, _ in _FIELDS}
            self._labels = ev["label"] if "label" in ev else None
        except FormatError:
            self.file.close()
            raise
        except (KeyError, ValueError, OSError) as exc:
            self.file.close()
            raise FormatError(f"{path}: corrupt eventfx archive ({exc})") from None
        self.n = len(self._ds["t"])

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    def read(self, start: int = 0, stop: int | None = None) -> tuple[Events, np.ndarray | None]:
        stop = self.n if stop is None else min(stop, self.n)
        try:
            d = self._ds
            ev = Events.from_arrays(d["t"][start:stop], d["x"][start:stop], d["y"][start:stop],
                                    d["p"][start:stop], self.width, self.height)
            labels = None if self._labels is None else np.asarray(self._labels[start:stop], np.uint8)
        except (OSError, ValueError) as exc:
            raise FormatError(f"{self.path}: cannot read events {start}..{stop} ({exc})") from None
        return ev, labels


def read_archive(path: Path | str) -> Archive:
    with ArchiveReader(path) as r:
        ev, labels = r.read()
        return Archive(ev, labels, r.meta)


def iter_archive(path: Path | str, chunk_events: int = 1_000_000) -> Iterator[tuple[Events, np.ndarray | None]]:
    """``(events, labels)`` chunks of at most ``chunk_events``, in file order."""
    with ArchiveReader(path) as r:
        for start in range(0, r.n, chunk_events):
            yield r.read(start, start + chunk_events)


def is_archive(f: h5py.File) -> bool:
    return f.attrs.get("format") == FORMAT
