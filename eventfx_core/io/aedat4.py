"""AEDAT4 (iniVation DV) files through the ``aedat`` package: the first event stream, streamed.

``aedat.Decoder`` yields one packet per stream record (events, frames, IMU, triggers); only
the packets of the first ``events`` stream are kept. Time stamps are µs already. A truncated
or corrupt file is refused at the packet where its data ends (``salvage``: the events of the
packets before it are read, with a warning).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import FormatError, warn
from ..events import Events

MAGIC = b"#!AER-DAT4.0"


class AedatSource:
    format = "aedat4"
    topic = None
    msgtype = None
    num_packets = None

    def __init__(self, path: Path | str, salvage: bool = False):
        import aedat

        self.path = Path(path)
        self.salvage = salvage
        try:
            self._decoder = aedat.Decoder(str(self.path))
            streams = self._decoder.id_to_stream()
        except Exception as exc:  # aedat raises plain RuntimeError/OSError on bad files
            raise FormatError(f"{path}: not a readable AEDAT4 file ({exc})") from None
        ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
        if not ids:
            raise FormatError(f"{path}: AEDAT4 file has no event stream")
        self.stream_id = ids[0]
        s = streams[self.stream_id]
        self.sensor_size = (int(s["width"]), int(s["height"]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._decoder = None

    def chunks(self) -> Iterator[Events]:
        import aedat

        decoder = aedat.Decoder(str(self.path))  # a fresh pass each time
        w, h = self.sensor_size
        i = n_events = 0
        while True:
            try:
                packet = next(decoder)
            except StopIteration:
                return
            except Exception as exc:
                where = f"after packet {i} ({n_events:,} events read; file size {self.path.stat().st_size} bytes)"
                if self.salvage:
                    warn(f"{self.path}: truncated or corrupt AEDAT4 data {where}: kept the events before it "
                         f"({exc})")
                    return
                raise FormatError(f"{self.path}: truncated or corrupt AEDAT4 data {where} ({exc}); "
                                  f"--salvage reads the events before it") from None
            i += 1
            if packet.get("stream_id") != self.stream_id or "events" not in packet:
                continue
            e = packet["events"]
            n_events += len(e["t"])
            yield Events.from_arrays(e["t"].astype(np.int64), e["x"], e["y"],
                                     e["on"].astype(np.uint8), w, h)
