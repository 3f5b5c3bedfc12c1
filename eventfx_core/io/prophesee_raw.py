"""Prophesee ``.raw`` files: ASCII header lines starting with ``%``, then EVT 3.0 or EVT 2.0 words.

Header keys understood (Metavision writes several generations of them): ``% evt 3.0`` /
``% evt 2.0``, ``% format EVT3;height=720;width=1280``, ``% geometry 1280x720``,
``% Width 640`` / ``% Height 480``; ``% end`` closes the header where present. The payload is
decoded in chunks with the stateful decoders of ``eventfx_core.codecs``, so any file size
streams in bounded memory. Writing produces EVT 3.0 with a ``% end``-terminated header.

Time: EVT3 carries a 24-bit µs counter; the writer stores ``t - base`` with ``base`` the
first event's time rounded down to a multiple of 2**24 µs (the decoder's clock starts in its
first wrap period) and writes ``base`` in the header line ``% eventfx_time_base_us BASE``;
the reader adds it back, so absolute time survives a round trip. Files without that line
(Metavision's) read with the decoder's own clock.

Truncation: the writer also states the payload length (``% eventfx_payload_bytes N``, filled
in when it closes). A file that ends mid-word, or shorter than its stated payload, is refused
with the byte offset where its data ends; ``salvage`` reads every complete word before it and
warns instead.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..codecs import make_decoder, make_encoder
from ..errors import DecodeError, FormatError, warn
from ..events import Events
from .items import OpenFile

WORD_BYTES = {"evt3": 2, "evt2": 4}
WRAP_US = 1 << 24  # EVT3 time counter period
CHUNK_BYTES = 1 << 22  # bytes decoded at a time (4 MB: about 2 M EVT3 words)
MAX_HEADER = 1 << 16  # a header longer than this is not a Prophesee header
TIME_BASE_KEY = "eventfx_time_base_us"  # header: µs to add to the decoded time (absolute time)
PAYLOAD_KEY = "eventfx_payload_bytes"  # header: payload length as written (truncation check)


def read_header(f) -> tuple[dict, int]:
    """Parse the ``%`` lines at the start of an open binary file: (keys, payload offset)."""
    keys: dict = {}
    pos = 0
    while True:
        f.seek(pos)
        if f.read(1) != b"%":
            break
        f.seek(pos)
        line = f.readline(MAX_HEADER)
        if not line.endswith(b"\n") or pos + len(line) > MAX_HEADER:
            raise FormatError("unterminated header line")
        pos += len(line)
        text = line[1:].decode("ascii", "replace").strip()
        if text == "end":
            break
        key, _, value = text.partition(" ")
        keys[key.strip().lower()] = value.strip()
    return keys, pos


def header_info(keys: dict) -> tuple[str, int | None, int | None]:
    """(encoding, width, height) from header keys."""
    enc = None
    fmt = keys.get("format", "")
    if fmt:
        m = re.match(r"\s*EVT(\d)", fmt, re.I)
        enc = f"evt{m.group(1)}" if m else None
    if enc is None and "evt" in keys:
        enc = {"3.0": "evt3", "2.0": "evt2"}.get(keys["evt"])
    w = h = None
    m = re.search(r"width=(\d+)", fmt)
    if m:
        w = int(m.group(1))
    m = re.search(r"height=(\d+)", fmt)
    if m:
        h = int(m.group(1))
    if (w is None or h is None) and "geometry" in keys:
        m = re.match(r"(\d+)x(\d+)", keys["geometry"])
        if m:
            w, h = int(m.group(1)), int(m.group(2))
    if w is None and "width" in keys:
        w = int(keys["width"])
    if h is None and "height" in keys:
        h = int(keys["height"])
    return enc, w, h


class RawSource(OpenFile):
    """Stream the events of a ``.raw`` file in chunks of ``CHUNK_BYTES``."""

    format = "raw"
    topic = None
    msgtype = None

    def __init__(self, path: Path | str, chunk_bytes: int = CHUNK_BYTES, salvage: bool = False):
        self.path = Path(path)
        self.salvage = salvage
        try:
            self.file = open(self.path, "rb")
        except OSError as exc:
            raise FormatError(f"{path}: cannot open ({exc.strerror})") from None
        try:
            keys, self.offset = read_header(self.file)
        except FormatError as exc:
            self.file.close()
            raise FormatError(f"{path}: bad Prophesee header ({exc})") from None
        self.encoding, w, h = header_info(keys)
        if self.offset == 0 or self.encoding not in WORD_BYTES or not w or not h:
            self.file.close()
            raise FormatError(f"{path}: not a Prophesee .raw file (need a '%' header naming "
                              f"EVT 2.0/3.0 and the sensor size; found {sorted(keys) or 'none'})")
        self.sensor_size = (w, h)
        self.size = self.path.stat().st_size
        try:
            self.time_base_us = int(keys.get(TIME_BASE_KEY, 0))
            stated = int(keys[PAYLOAD_KEY]) if PAYLOAD_KEY in keys else None
        except ValueError:
            self.file.close()
            raise FormatError(f"{path}: bad header value of {TIME_BASE_KEY} or {PAYLOAD_KEY}") from None
        self.end = self.size  # where the payload ends: the file's end or the last whole word
        have = self.size - self.offset
        word = WORD_BYTES[self.encoding]
        problem = None
        if stated is not None and have < stated:
            problem = (f"truncated: the header states {stated} payload bytes, the file holds {have} "
                       f"(data ends at byte offset {self.size})")
        elif have % word:
            problem = (f"truncated: {have % word} stray byte(s) at byte offset {self.size - have % word} "
                       f"(file ends mid-word)")
        if problem:
            if not salvage:
                self.file.close()
                raise FormatError(f"{path}: {problem}; --salvage reads the words before it")
            warn(f"{path}: {problem}; reading the {have // word * word} bytes of whole words before it")
            self.end = self.offset + have // word * word
        self.chunk_bytes = max(word, chunk_bytes // word * word)
        self.num_packets = -(-(self.size - self.offset) // self.chunk_bytes)

    def chunks(self) -> Iterator[Events]:
        decoder = make_decoder(self.encoding, *self.sensor_size)
        word = WORD_BYTES[self.encoding]
        pos = self.offset
        self.file.seek(pos)
        while pos < self.end:
            data = self.file.read(min(self.chunk_bytes, self.end - pos))
            if not data:
                return
            if len(data) % word:  # the file shrank while it was read
                raise FormatError(f"{self.path}: truncated: {len(data) % word} stray byte(s) at byte "
                                  f"offset {pos + len(data) - len(data) % word} (file ends mid-word)")
            try:
                ev = decoder.decode(data).events
                if self.time_base_us:
                    ev = Events(ev.t + self.time_base_us, ev.x, ev.y, ev.p, ev.width, ev.height)
                yield ev
            except DecodeError as exc:
                raise FormatError(f"{self.path}: bad {self.encoding} data in the chunk at byte offset "
                                  f"{pos}: {exc}") from None
            pos += len(data)


class RawWriter:
    """Write events as an EVT 3.0 ``.raw`` file (see the module docstring for time)."""

    def __init__(self, path: Path | str, width: int, height: int):
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.file = open(self.path, "wb")
        self.file.write((f"% evt 3.0\n% format EVT3;height={height};width={width}\n"
                         f"% geometry {width}x{height}\n% generator eventfx\n").encode())
        # Fixed-width fields, filled in by close() (the first event and the length come later).
        self._fields_at = self.file.tell()
        self.file.write(self._fields(0, 0))
        self.file.write(b"% end\n")
        self._payload_at = self.file.tell()
        self.encoder = make_encoder("evt3", width, height)
        self.base: int | None = None

    @staticmethod
    def _fields(base: int, payload: int) -> bytes:
        return f"% {TIME_BASE_KEY} {base:020d}\n% {PAYLOAD_KEY} {payload:020d}\n".encode()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def append(self, ev: Events) -> None:
        if len(ev) == 0:
            return
        if self.base is None:
            self.base = int(ev.t[0]) // WRAP_US * WRAP_US
        if self.base:
            ev = Events(ev.t - self.base, ev.x, ev.y, ev.p, ev.width, ev.height)
        self.file.write(self.encoder.encode(ev))

    def close(self) -> None:
        if self.file.closed:
            return
        end = self.file.tell()
        self.file.seek(self._fields_at)
        self.file.write(self._fields(self.base or 0, end - self._payload_at))
        self.file.close()


def write_raw(path: Path | str, ev: Events) -> None:
    with RawWriter(path, ev.width, ev.height) as w:
        w.append(ev)


def read_raw(path: Path | str) -> Events:
    from ..events import concat
    with RawSource(path) as src:
        return concat(list(src.chunks()), *src.sensor_size)
