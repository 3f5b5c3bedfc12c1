"""The real bags decode to exactly the figures event_camera_codecs' test/decoder_test.cpp asserts.

Upstream sums time stamps in nanoseconds into a wrapping uint64; eventfx keeps microseconds
(floor of the upstream ns, see the codec docstrings), so the ns are rebuilt per message as
``t_us * 1000 + time_base % 1000`` (libcaer, mono: the sub-microsecond part of time_base;
evt3 ignores time_base and its ns are t_us * 1000).
"""
from pathlib import Path

import numpy as np
import pytest

from conftest import missing_shared_data
from eventfx_core.codecs import make_decoder
from eventfx_core.codecs.reference import make_reference_decoder

U64 = (1 << 64) - 1


def read_packets(shared_data: Path, name: str) -> list:
    from rosbags.highlevel import AnyReader

    from eventfx_core.codecs.typestore import ros2_typestore

    path = shared_data / "ros2_bags" / name
    if not path.is_dir():
        missing_shared_data(f"bag {path}")
    with AnyReader([path], default_typestore=ros2_typestore()) as reader:
        return [reader.deserialize(raw, con.msgtype) for con, _, raw in reader.messages()]


def ns(d, msg) -> np.ndarray:
    """Upstream's nanosecond time stamps of the decoded events (Python ints, exact)."""
    rem = 0 if msg.encoding == "evt3" else msg.time_base % 1000
    return d.events.t.astype(object) * 1000 + rem


def checksums(packets, until_ns=None):
    """Upstream CheckSumProcessor over all packets (optionally decodeUntil ``until_ns``)."""
    dec = make_decoder(packets[0].encoding, packets[0].width, packets[0].height)
    sums = dict(t=0, x=0, y=0, p=0, trig_t=0, trig_edge=0, trig_id=0, last=0, n_oor=0)
    stopped = False
    for msg in packets:
        d = dec.decode(msg.events, msg.time_base)
        sums["n_oor"] += d.n_out_of_range + d.n_before_time
        t_ns = ns(d, msg)
        keep = len(t_ns)
        if until_ns is not None:
            late = np.nonzero(t_ns >= until_ns)[0]
            keep = int(late[0]) if len(late) else keep
            if stopped and msg.encoding == "evt3":
                keep = 0  # upstream's evt3 decoder stays at the limit once it reached it
            stopped = stopped or len(late) > 0
        if keep:
            sums["t"] = (sums["t"] + int(t_ns[:keep].sum())) & U64
            sums["x"] += int(d.events.x[:keep].sum())
            sums["y"] += int(d.events.y[:keep].sum())
            sums["p"] += int(d.events.p[:keep].sum())
            sums["last"] = int(t_ns[keep - 1])
        sums["trig_t"] += int(d.triggers.t.astype(object).sum() * 1000)
        sums["trig_edge"] += int(d.triggers.value.sum())
        sums["trig_id"] += int(d.triggers.id.sum())
    return sums


def test_evt3_bag_checksums(shared_data):
    packets = read_packets(shared_data, "test_data_evt3_trigger")
    assert packets[0].encoding == "evt3" and len(packets) == 105
    s = checksums(packets)
    assert (s["t"], s["x"], s["y"], s["p"]) == (1222326831810000, 42078718, 31656267, 41439)
    assert (s["trig_t"], s["trig_edge"], s["trig_id"]) == (29096982000, 1, 0)
    assert s["n_oor"] == 0


@pytest.mark.parametrize("until, t, x, y, p, last", [
    (14252072000, 29004181874000, 897009, 773502, 1028, 14252063000),
    (14251634000, 28491115518000, 880131, 758865, 1006, 14251630000),
    (14252063000, 28989929811000, 896982, 773451, 1027, 14252047000),
])
def test_evt3_bag_until(shared_data, until, t, x, y, p, last):
    s = checksums(read_packets(shared_data, "test_data_evt3_trigger"), until)
    assert (s["t"], s["x"], s["y"], s["p"], s["last"]) == (t, x, y, p, last)


def test_libcaer_bag_checksums_and_rollover(shared_data):
    packets = read_packets(shared_data, "test_data_libcaer_rollover")
    assert packets[0].encoding == "libcaer" and len(packets) == 201
    s = checksums(packets)
    assert (s["t"], s["x"], s["y"], s["p"]) == (15762826572202229126, 111651612, 82801007, 181908)
    # time_base jumps when the sensor's 31-bit stamp rolls over; the decoded clock stays monotone
    dec = make_decoder("libcaer", 640, 480)
    t = np.concatenate([dec.decode(m.events, m.time_base).events.t for m in packets])
    assert len({m.time_base for m in packets}) > 1
    assert np.all(np.diff(t) >= 0)


@pytest.mark.parametrize("until, t, x, y, p, last", [
    (1702309120772229018, 15706488888233371866, 533572, 401707, 872, 1702309120772213018),
    (1702309120773239018, 3141897757159270998, 582593, 442271, 951, 1702309120773233018),
    (1702309120782222018, 12099893362926800844, 1068301, 808043, 1788, 1702309120782216018),
])
def test_libcaer_bag_until(shared_data, until, t, x, y, p, last):
    s = checksums(read_packets(shared_data, "test_data_libcaer_rollover"), until)
    assert (s["t"], s["x"], s["y"], s["p"], s["last"]) == (t, x, y, p, last)


def test_libcaer_bag_first_packet_summary(shared_data):
    msg = read_packets(shared_data, "test_data_libcaer_rollover")[0]
    d = make_decoder("libcaer", msg.width, msg.height).decode(msg.events, msg.time_base)
    t_ns = ns(d, msg)
    assert (t_ns[0], t_ns[-1]) == (1702309120762236018, 1702309120772213018)
    assert (int((d.events.p == 0).sum()), int((d.events.p == 1).sum())) == (741, 872)


def test_mono_bag_checksums(shared_data):
    packets = read_packets(shared_data, "test_data_mono_cd")
    assert packets[0].encoding == "mono"
    s = checksums(packets)
    assert (s["t"], s["x"], s["y"], s["p"]) == (4950000, 34450, 26450, 50)
    for until, want in [(50000, (1225000, 17225, 13225, 25, 49000)),
                        (80000, (3160000, 27260, 20860, 40, 79000)),
                        (49000, (1176000, 16856, 12936, 24, 48000))]:
        s = checksums(packets, until)
        assert (s["t"], s["x"], s["y"], s["p"], s["last"]) == want


@pytest.mark.parametrize("name, first", [("test_data_evt3_trigger", 12),
                                         ("test_data_libcaer_rollover", 6),
                                         ("test_data_mono_cd", 2)])
def test_bags_fast_equals_reference(shared_data, name, first):
    """The numba decoder and the per-word reference agree on the first packets of each bag."""
    packets = read_packets(shared_data, name)[:first]
    m0 = packets[0]
    fast = make_decoder(m0.encoding, m0.width, m0.height)
    ref = make_reference_decoder(m0.encoding, m0.width, m0.height)
    for msg in packets:
        a, b = fast.decode(msg.events, msg.time_base), ref.decode(msg.events, msg.time_base)
        assert a.events.equals(b.events) and a.triggers.equals(b.triggers)
        assert (a.n_out_of_range, a.n_before_time) == (b.n_out_of_range, b.n_before_time)


@pytest.mark.parametrize("name", ["test_data_evt3_trigger", "test_data_libcaer_rollover",
                                  "test_data_mono_cd"])
def test_bags_reencode_with_same_time_base(shared_data, name):
    """What the node does: decode each message, re-encode its events (and triggers) with the
    message's encoding and time_base; a decoder reading the new stream gets the same events."""
    from eventfx_core.codecs import make_encoder

    packets = read_packets(shared_data, name)
    m0 = packets[0]
    dec_in = make_decoder(m0.encoding, m0.width, m0.height)
    enc = make_encoder(m0.encoding, m0.width, m0.height)
    dec_out = make_decoder(m0.encoding, m0.width, m0.height)
    for msg in packets:
        a = dec_in.decode(msg.events, msg.time_base)
        payload = enc.encode(a.events, a.triggers if len(a.triggers) else None, msg.time_base)
        b = dec_out.decode(payload, msg.time_base)
        assert b.events.equals(a.events) and b.triggers.equals(a.triggers)
        if m0.encoding == "evt3":  # vectors and shared time words: not bigger than the sensor's
            assert len(payload) <= len(msg.events) + 8
