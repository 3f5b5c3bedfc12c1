"""decode(encode(x)) == x for every encoder, across packets, wraps and vector runs.

The decoded streams are also checked against the per-word reference decoders.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core.codecs import Triggers, make_decoder, make_encoder
from eventfx_core.codecs.base import EncodeError
from eventfx_core.codecs.reference import make_reference_decoder
from eventfx_core.events import Events, concat

WRAP = 1 << 24


def random_stream(rng, n, width, height, max_gap, t0=0):
    """Sorted events with repeated time stamps and runs of neighbours on a row (vectors)."""
    gaps = np.where(rng.random(n) < 0.5, 0, rng.integers(0, max_gap + 1, n))
    t = t0 + np.cumsum(gaps)
    x = rng.integers(0, width, n)
    y = rng.integers(0, height, n)
    p = rng.integers(0, 2, n)
    # make some runs: same t/y/p, consecutive or near-consecutive x
    i = 0
    while i < n:
        if rng.random() < 0.3:
            k = int(min(rng.integers(2, 30), n - i))
            xs = np.minimum(x[i] + np.cumsum(rng.integers(1, 3, k)) - 1, width - 1)
            t[i:i + k], y[i:i + k], p[i:i + k], x[i:i + k] = t[i], y[i], p[i], xs
            t[i + k:] = np.maximum(t[i + k:], t[i])
            i += k
        else:
            i += 1
    return Events.from_arrays(t, x, y, p, width, height)


def split_points(rng, n, n_packets):
    return np.sort(rng.integers(0, n + 1, max(n_packets - 1, 0)))


def check_stream(encoding, ev, packets_at, time_bases, triggers=None):
    """Encode in packets with one encoder, decode with one fresh decoder (and the reference)."""
    enc = make_encoder(encoding, ev.width, ev.height)
    dec = make_decoder(encoding, ev.width, ev.height)
    ref = make_reference_decoder(encoding, ev.width, ev.height)
    bounds = [0, *packets_at, len(ev)]
    out, out_tr = [], []
    for k in range(len(bounds) - 1):
        part = ev[bounds[k]:bounds[k + 1]]
        tr = None
        if triggers is not None:  # triggers timed inside this packet's span go with it
            def edge(b):
                return ev.t[b] if b < len(ev) else np.iinfo(np.int64).max
            lo = -1 if k == 0 else edge(bounds[k])
            tr = triggers[(triggers.t >= lo) & (triggers.t < edge(bounds[k + 1]))]
        payload = enc.encode(part, tr, time_base=time_bases[k])
        d = dec.decode(payload, time_base=time_bases[k])
        r = ref.decode(payload, time_base=time_bases[k])
        assert d.events.equals(r.events) and d.triggers.equals(r.triggers)
        assert d.n_out_of_range == 0 and d.n_before_time == 0
        assert d.events.equals(part)
        out.append(d.events)
        out_tr.append(d.triggers)
        if tr is not None:
            assert d.triggers.equals(tr)
    assert concat(out, ev.width, ev.height).equals(ev)
    if triggers is not None:
        assert np.array_equal(np.concatenate([t.t for t in out_tr]), triggers.t)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), n_packets=st.integers(1, 5),
       max_gap=st.sampled_from([3, 5000, 3 * WRAP, 40 * WRAP]), with_triggers=st.booleans())
def test_evt3_roundtrip(seed, n, n_packets, max_gap, with_triggers):
    rng = np.random.default_rng(seed)
    ev = random_stream(rng, n, 1280, 720, max_gap)
    tr = None
    if with_triggers and n:
        m = int(rng.integers(0, 10))
        tr = Triggers.from_arrays(np.sort(rng.integers(0, ev.t[-1] + 1, m)),
                                  rng.integers(0, 16, m), rng.integers(0, 2, m))
    check_stream("evt3", ev, split_points(rng, n, n_packets), [0] * n_packets, tr)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), n_packets=st.integers(1, 4),
       max_gap=st.sampled_from([2, 1000, 1 << 25]),  # steps stay < 2**31 us
       time_base=st.integers(0, 1_800_000_000_000_000_000))
def test_libcaer_roundtrip(seed, n, n_packets, max_gap, time_base):
    rng = np.random.default_rng(seed)
    ev = random_stream(rng, n, 640, 480, max_gap, t0=time_base // 1000 + int(rng.integers(0, 1000)))
    cuts = split_points(rng, n, n_packets)
    # as the driver does: each packet's time_base is at or before its first event (ns)
    starts = [ev.t[c] if c < n else 0 for c in (0, *cuts)] if n else [0] * n_packets
    bases = [max(time_base, (int(s) - int(rng.integers(0, 5000))) * 1000 + time_base % 1000)
             for s in starts]
    check_stream("libcaer", ev, cuts, bases)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), n_packets=st.integers(1, 4),
       time_base=st.integers(0, 1_800_000_000_000_000_000))
def test_mono_roundtrip(seed, n, n_packets, time_base):
    rng = np.random.default_rng(seed)
    ev = random_stream(rng, n, 640, 480, 10_000, t0=time_base // 1000)
    ev = ev[ev.t - time_base // 1000 < 4_000_000]  # mono holds 4.29 s after the time base
    cuts = split_points(rng, len(ev), n_packets)
    # each packet's time_base (ns, any sub-microsecond part) at or before its first event
    starts = [ev.t[c] if c < len(ev) else 0 for c in (0, *cuts)] if len(ev) else [0] * n_packets
    bases = [max(time_base, int(s) * 1000 + int(rng.integers(-3000, 1000))) for s in starts]
    check_stream("mono", ev, cuts, bases)


def test_libcaer_rollover_within_packet():
    """Offsets past 2**31 us (several libcaer rollovers in one packet) come back exactly."""
    tb = 1_702_306_974_272_224_018
    rel = np.array([0, 5, 2**31 - 1, 2**31, 2**31 + 9, 2**32 + 1, 2**32 + 2**30], np.int64)
    ev = Events.from_arrays(tb // 1000 + rel, np.arange(7), np.arange(7), np.ones(7), 640, 480)
    payload = make_encoder("libcaer", 640, 480).encode(ev, time_base=tb)
    stamps = np.frombuffer(payload, "<u4")[1::2]
    assert stamps.max() < 2**31 and np.any(np.diff(stamps.astype(np.int64)) < 0)
    assert make_decoder("libcaer", 640, 480).decode(payload, tb).events.equals(ev)
    assert make_reference_decoder("libcaer", 640, 480).decode(payload, tb).events.equals(ev)


def test_evt3_wraparound_is_unwrapped():
    """Times across several 16.77 s wraps (and a gap of many wraps) come back exactly."""
    t = np.array([0, 5, WRAP - 2, WRAP - 1, WRAP, WRAP + 7, 2 * WRAP + 100, 9 * WRAP + 3,
                  9 * WRAP + 3, 30 * WRAP - 1], np.int64)
    ev = Events.from_arrays(t, np.arange(10), np.arange(10), np.arange(10) % 2, 64, 64)
    check_stream("evt3", ev, [2, 4, 7], [0] * 4)
    payload = make_encoder("evt3", 64, 64).encode(ev)
    d = make_decoder("evt3", 64, 64).decode(payload)
    assert d.events.t.tolist() == t.tolist() and np.all(np.diff(d.events.t) >= 0)
    highs = [w for w in words(payload).tolist() if w >> 12 == 0x8]
    # each of the 29 wraps is written as a real sensor does: TIME_HIGH 0xFFF then 0x000
    assert sum(a == 0x8FFF and b == 0x8000 for a, b in zip(highs, highs[1:])) == 29


def test_evt3_packet_decodes_standalone():
    """A later packet read by a fresh decoder gives the same times modulo the 24-bit wrap."""
    rng = np.random.default_rng(1)
    ev = random_stream(rng, 200, 320, 240, WRAP // 10)
    enc = make_encoder("evt3", 320, 240)
    enc.encode(ev[:100])
    d = make_decoder("evt3", 320, 240).decode(enc.encode(ev[100:]))
    assert len(d.events) == 100 and d.n_before_time == 0
    assert np.all((ev[100:].t - d.events.t) % WRAP == 0)
    assert np.array_equal(d.events.x, ev[100:].x) and np.array_equal(d.events.y, ev[100:].y)


def words(payload):
    return np.frombuffer(payload, "<u2")


def test_evt3_vectors_used_and_shorter():
    """A full row segment at one time uses VECT_BASE_X + VECT_12/VECT_8, far fewer words."""
    x = np.r_[np.arange(100, 131), 140, 142]  # 31 neighbours, then two sparse events
    ev = Events.from_arrays(np.full(x.size, 77), x, np.full(x.size, 5), np.ones(x.size), 640, 480)
    payload = make_encoder("evt3", 640, 480).encode(ev)
    codes = words(payload) >> 12
    assert {0x3, 0x4, 0x5} <= set(codes.tolist())  # base, VECT_12 and VECT_8 all used
    assert len(codes) < 3 + x.size // 2  # TIME_HIGH, TIME_LOW, ADDR_Y + far fewer than 1/event
    d = make_decoder("evt3", 640, 480).decode(payload)
    assert d.events.equals(ev)
    assert make_reference_decoder("evt3", 640, 480).decode(payload).events.equals(ev)


def test_evt3_decodes_hand_written_vector_words():
    """Words written by hand from the EVT 3.0 table (not by our encoder)."""
    w = [0x8001, 0x6002,  # time = 1 << 12 | 2
         0x0007,  # y = 7
         0x3000 | (1 << 11) | 10,  # base x = 10, ON
         0x4000 | 0b100000000101,  # x = 10, 12, 21
         0x5000 | 0b10000001,  # x = 22, 29
         0x2000 | 3,  # x = 3, OFF
         0xA000 | (5 << 8) | 1,  # trigger id 5 rising
         0xE000, 0x7000, 0xF000]  # OTHERS / CONTINUED: ignored
    d = make_decoder("evt3", 640, 480).decode(np.array(w, "<u2").tobytes())
    assert d.events.x.tolist() == [10, 12, 21, 22, 29, 3]
    assert d.events.p.tolist() == [1, 1, 1, 1, 1, 0] and set(d.events.y.tolist()) == {7}
    assert set(d.events.t.tolist()) == {4098}
    assert (d.triggers.t.tolist(), d.triggers.id.tolist(), d.triggers.value.tolist()) == (
        [4098], [5], [1])


def test_evt2_hand_written_words():
    """EVT 2.0 words built from the format table; wrap of the 34-bit clock is unwrapped."""
    def cd(p, t, x, y):
        return (p << 28) | ((t & 0x3F) << 22) | (x << 11) | y
    w = [cd(1, 5, 3, 4),  # before any TIME_HIGH: dropped, counted
         (0x8 << 28) | 0x0FFFFFFF, cd(1, 7, 10, 20), cd(0, 9, 11, 21),
         (0xA << 28) | (3 << 22) | (4 << 8) | 1,
         (0x8 << 28) | 2, cd(1, 1, 639, 479), cd(1, 1, 640, 0)]  # wrapped; last is outside
    d = make_decoder("evt2", 640, 480).decode(np.array(w, "<u4").tobytes())
    top = 0x0FFFFFFF << 6
    assert d.events.t.tolist() == [top + 7, top + 9, (1 << 34) + 128 + 1]
    assert d.events.x.tolist() == [10, 11, 639] and d.events.p.tolist() == [1, 0, 1]
    assert (d.n_before_time, d.n_out_of_range) == (1, 1)
    assert d.triggers.t.tolist() == [top + 3] and d.triggers.id.tolist() == [4]


def test_libcaer_cmp_hand_written_words():
    """libcaer_cmp words from the upstream type table, fast == reference."""
    w = [0x0003, 0x1004,  # time 3 << 12 | 4
         0x2000 | 17,  # x = 17
         0x3000 | (1 << 11) | 9,  # event (17, 9) ON
         0x4000 | 30,  # base y 30, OFF
         0x5000 | 0b00000011,  # rows 30, 31
         0x5000 | 0b10000000]  # row 38 + 7 -> 45? no: base now 38, bit 7 -> 45
    tb = 1_702_669_729_854_452_000
    for make in (make_decoder, make_reference_decoder):
        d = make("libcaer_cmp", 640, 480).decode(np.array(w, "<u2").tobytes(), time_base=tb)
        assert d.events.y.tolist() == [9, 30, 31, 45] and set(d.events.x.tolist()) == {17}
        assert d.events.p.tolist() == [1, 0, 0, 0]
        assert set(d.events.t.tolist()) == {tb // 1000 + (3 << 12 | 4)}


def test_encoders_reject_what_they_cannot_write():
    ev = Events.from_arrays([10, 20], [1, 2], [1, 2], [0, 1], 640, 480)
    tr = Triggers.from_arrays([15], [1], [1])
    with pytest.raises(EncodeError, match="trigger"):
        make_encoder("mono", 640, 480).encode(ev, tr)
    with pytest.raises(EncodeError, match="before the time_base"):
        make_encoder("mono", 640, 480).encode(ev, time_base=10**9)
    with pytest.raises(EncodeError, match="non-decreasing"):
        make_encoder("libcaer", 640, 480).encode(ev[::-1])
    back = Events.from_arrays([WRAP // 2, 0], [1, 2], [1, 2], [0, 1], 640, 480)
    with pytest.raises(EncodeError, match="back in time"):
        make_encoder("evt3", 640, 480).encode(back)
    wide = Events.from_arrays([0], [700], [1], [0], 640, 480)
    with pytest.raises(EncodeError, match="outside"):
        make_encoder("evt3", 640, 480).encode(wide)
    with pytest.raises(EncodeError, match="no encoder"):
        make_encoder("evt2", 640, 480)
