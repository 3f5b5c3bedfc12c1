"""Event codecs: ``event_camera_msgs/EventPacket`` payloads <-> ``Events`` (+ ``Triggers``).

    dec = make_decoder("evt3", width, height)    # stateful across packets where the format is
    d = dec.decode(payload, time_base=msg.time_base)   # d.events, d.triggers, d.n_out_of_range
    enc = make_encoder("evt3", width, height)
    payload = enc.encode(d.events, d.triggers, time_base=msg.time_base)

Each module states how its wire time maps to int64 microseconds; for every encoder,
``decode(encode(x, time_base=b), time_base=b) == x`` (stream-wise for the stateful ones).
Fast paths are numba loops; ``reference.py`` holds plain per-word decoders used as the
test oracle.

Whole ROS messages <-> ``Events`` live here too: ``messages`` (``TopicCodec``, ``build_message``),
``legacy_wire`` (numpy wire format of dvs/prophesee arrays) and ``typestore`` (rosbags type
stores from ``msg/``). ``io`` imports this package; nothing here imports ``io``.
"""
from __future__ import annotations

from ..errors import DecodeError
from .base import Decoded, EncodeError, Triggers
from .evt2 import Evt2Decoder
from .evt3 import Evt3Decoder, Evt3Encoder
from .libcaer import LibcaerCmpDecoder, LibcaerDecoder, LibcaerEncoder
from .mono import MonoDecoder, MonoEncoder

DECODERS = {
    "evt3": Evt3Decoder,
    "evt2": Evt2Decoder,
    "libcaer": LibcaerDecoder,
    "libcaer_cmp": LibcaerCmpDecoder,
    "mono": MonoDecoder,
}
ENCODERS = {
    "evt3": Evt3Encoder,
    "libcaer": LibcaerEncoder,
    "mono": MonoEncoder,
}
ENCODINGS = tuple(DECODERS)  # every encoding that decodes; ENCODERS lists those that also encode
# Bytes per wire word (what ``is_bigendian`` swaps): libcaer is pairs of 32-bit fields.
WORD_BYTES = {"evt3": 2, "evt2": 4, "libcaer": 4, "libcaer_cmp": 2, "mono": 8}


def _sensor(width, height, what: str) -> tuple[int, int]:
    w, h = int(width), int(height)
    if not (0 < w <= 65535 and 0 < h <= 65535):
        raise DecodeError(f"{what}: invalid sensor size {w}x{h}")
    return w, h


def make_decoder(encoding: str, width: int, height: int):
    """A fresh decoder for ``encoding``; unknown names raise ``DecodeError`` naming them."""
    cls = DECODERS.get(encoding)
    if cls is None:
        raise DecodeError(f"unknown event encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
    return cls(*_sensor(width, height, f"{encoding} decoder"))


def make_encoder(encoding: str, width: int, height: int):
    """A fresh encoder for ``encoding``; names without an encoder raise ``EncodeError``."""
    cls = ENCODERS.get(encoding)
    if cls is None:
        raise EncodeError(f"no encoder for event encoding {encoding!r} "
                          f"(encoders: {', '.join(ENCODERS)})")
    return cls(*_sensor(width, height, f"{encoding} encoder"))


__all__ = ["make_decoder", "make_encoder", "Triggers", "Decoded", "ENCODINGS", "DECODERS",
           "ENCODERS", "WORD_BYTES", "DecodeError", "EncodeError"]
