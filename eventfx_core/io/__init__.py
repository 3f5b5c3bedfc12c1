"""Event file I/O: bags (ROS 1, ROS 2 sqlite3/mcap), DSEC h5, eventfx archive, Prophesee raw, AEDAT4.

``open_source`` / ``open_sink`` (``io.stream``) are the one streaming interface used by
``eventfx convert`` and ``eventfx denoise``; the archive functions are what training uses.
"""
from .archive import Archive, ArchiveWriter, iter_archive, read_archive, write_archive

__all__ = ["Archive", "ArchiveWriter", "iter_archive", "read_archive", "write_archive",
           "open_source", "open_sink", "Packet", "Passthrough"]


def __getattr__(name):
    # The streaming layer pulls in rosbags and the codecs; import it only when asked for.
    if name in ("open_source", "open_sink", "Packet", "Passthrough", "detect_format"):
        from . import stream
        return getattr(stream, name)
    raise AttributeError(name)
