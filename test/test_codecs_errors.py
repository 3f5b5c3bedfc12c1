"""Bad input: truncated payloads, garbage words, out-of-range coordinates, random bytes."""
import time

import numpy as np
import pytest

from eventfx_core.codecs import ENCODINGS, make_decoder, make_encoder
from eventfx_core.codecs.reference import make_reference_decoder
from eventfx_core.errors import DecodeError
from eventfx_core.events import Events, validate

WORD_BYTES = {"evt3": 2, "evt2": 4, "libcaer": 8, "libcaer_cmp": 2, "mono": 8}
DEFINED = {"evt3": [0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xA, 0xE, 0xF],
           "evt2": [0x0, 0x1, 0x8, 0xA, 0xE, 0xF], "libcaer_cmp": [0, 1, 2, 3, 4, 5]}


def test_unknown_encoding_is_named():
    with pytest.raises(DecodeError, match="'evt4'"):
        make_decoder("evt4", 640, 480)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_partial_word_names_byte_offset(encoding):
    size = WORD_BYTES[encoding]
    payload = bytes(3 * size + 1)
    with pytest.raises(DecodeError, match=f"byte offset {3 * size}"):
        make_decoder(encoding, 640, 480).decode(payload)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_empty_payload(encoding):
    d = make_decoder(encoding, 640, 480).decode(b"", time_base=123)
    assert len(d.events) == 0 and len(d.triggers) == 0


@pytest.mark.parametrize("encoding, words, dtype, offset", [
    ("evt3", [0x8000, 0x6000, 0x0001, 0x2003, 0x9000], "<u2", 8),
    ("evt2", [0x80000000, 0x10000000, 0x30000000], "<u4", 8),
    ("libcaer_cmp", [0x0000, 0x1000, 0x7000], "<u2", 4),
    ("libcaer", [0x00220007, 0x00000005, 0x00220006, 0x80000000], "<u4", 8),  # negative stamp
])
def test_garbage_word_names_byte_offset_and_keeps_state(encoding, words, dtype, offset):
    dec = make_decoder(encoding, 640, 480)
    good = np.array(words[:2], dtype).tobytes()
    with pytest.raises(DecodeError, match=f"byte offset {offset}"):
        dec.decode(np.array(words, dtype).tobytes())
    with pytest.raises(DecodeError):
        make_reference_decoder(encoding, 640, 480).decode(np.array(words, dtype).tobytes())
    # a payload that raised left the decoder as a fresh one
    assert dec.decode(good).events.equals(make_decoder(encoding, 640, 480).decode(good).events)


def test_out_of_range_events_are_dropped_and_counted():
    ev = Events.from_arrays([1, 2, 3], [5, 639, 100], [5, 479, 200], [1, 0, 1], 640, 480)
    for encoding in ("evt3", "libcaer", "mono"):
        payload = make_encoder(encoding, 640, 480).encode(ev, time_base=0)
        d = make_decoder(encoding, 320, 240).decode(payload, time_base=0)  # smaller sensor
        assert d.n_out_of_range == 1 and d.events.x.tolist() == [5, 100]
        r = make_reference_decoder(encoding, 320, 240).decode(payload, time_base=0)
        assert r.n_out_of_range == 1 and r.events.equals(d.events)


def test_evt3_events_before_first_time_are_counted():
    words = np.array([0x0003, 0x2001, 0x3000, 0x4007, 0x8001, 0x6002, 0x2004], "<u2")
    d = make_decoder("evt3", 640, 480).decode(words.tobytes())
    # ADDR_Y before the first time is skipped too (upstream), so the event is on row 0
    assert d.n_before_time == 4 and d.events.x.tolist() == [4] and d.events.y.tolist() == [0]
    assert d.events.t.tolist() == [4096 + 2]


def test_uint8_array_payload_and_wrong_dtype():
    ev = Events.from_arrays([7], [1], [2], [1], 64, 64)
    payload = make_encoder("evt3", 64, 64).encode(ev)
    arr = np.frombuffer(b"\0" + payload, np.uint8)[1:]  # unaligned view
    assert make_decoder("evt3", 64, 64).decode(arr).events.equals(ev)
    with pytest.raises(DecodeError, match="uint8"):
        make_decoder("evt3", 64, 64).decode(np.zeros(4, np.int16))


def _outcome(dec, payload):
    try:
        return dec.decode(payload)
    except DecodeError:
        return None


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_fuzz_random_bytes(encoding):
    """Random payloads: DecodeError or valid events, same outcome as the reference, fast."""
    rng = np.random.default_rng(12345)
    dec = make_decoder(encoding, 640, 480)
    ref = make_reference_decoder(encoding, 640, 480)
    start = time.perf_counter()
    n_ok = 0
    for k in range(300):
        size = int(rng.integers(0, 200)) * WORD_BYTES[encoding]
        if k % 2 and encoding in DEFINED:  # words of defined types only: reach deeper states
            n = size // WORD_BYTES[encoding]
            bits = 8 * WORD_BYTES[encoding]
            body = rng.integers(0, 1 << (bits - 4), n, dtype=np.uint64)
            code = rng.choice(DEFINED[encoding], n).astype(np.uint64)
            words = (code << np.uint64(bits - 4)) | body
            payload = words.astype(f"<u{WORD_BYTES[encoding]}").tobytes()
        else:
            payload = rng.integers(0, 256, size + int(rng.integers(0, 2)), dtype=np.uint8).tobytes()
        a, b = _outcome(dec, payload), _outcome(ref, payload)
        assert (a is None) == (b is None)
        if a is not None:
            n_ok += 1
            validate(a.events, check_sorted=False)
            assert a.events.equals(b.events) and a.triggers.equals(b.triggers)
            assert (a.n_out_of_range, a.n_before_time) == (b.n_out_of_range, b.n_before_time)
    assert n_ok > 0
    assert time.perf_counter() - start < 30
