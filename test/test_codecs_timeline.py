"""Time jumps as drivers make them (issue 17 item 6; the policy is in codecs/timeline.py).

A looped bag or a restarted camera (seq / header stamp back) restarts the payload decoder and
the pipeline resets once, counted, for every encoding; a genuine EVT 3.0 24-bit rollover
(seq + 1, later stamp) is unwrapped and resets nothing; ``is_bigendian`` payloads decode.
"""
import dataclasses

import numpy as np
import pytest

from eventfx_core.codecs import ENCODERS, WORD_BYTES, make_encoder
from eventfx_core.codecs.messages import EVENT_PACKET, TopicCodec, build_message
from eventfx_core.codecs.timeline import StreamPosition
from eventfx_core.events import Events, concat
from eventfx_core.io.bags import BagSource
from eventfx_core.pipeline_config import parse_params
from eventfx_core.stream_engine import StreamEngine

W, H = 64, 48
WRAP = 1 << 24
BAGS = ["test_data_evt3_trigger", "test_data_libcaer_rollover", "test_data_mono_cd",
        "test_events_2_libcaer_cmp"]


def _engine(msgtype=EVENT_PACKET) -> StreamEngine:
    _, cfg = parse_params({"stages": ["hot_pixel", "baf"], "baf": {"time_window_us": 500}})
    return StreamEngine(cfg, msgtype=msgtype)


def _run(engine: StreamEngine, raws: list[bytes]) -> int:
    """Push every message, re-encode every decision and read the outputs back in order, as a
    subscriber would (its own codec, which sees the restarts too). Returns events removed."""
    reader, removed = TopicCodec(engine.codec.wire_type), 0
    decisions = [d for raw in raws for d in engine.push_message(raw)] + engine.flush()
    for d in decisions:
        removed += int((~d.keep).sum())
        if getattr(d.tag.msg, "encoding", "evt3") not in ENCODERS:
            continue  # decode only (libcaer_cmp): nothing to re-encode
        out = reader.decode(reader.deserialize(engine.encode(d)))
        assert out.events.equals(d.tag.decoded.events[d.keep])
    assert len(decisions) == len(raws)
    return removed


def _messages(encoding: str, t0: int, n: int, seq0: int, stamp0_ns: int, step_us: int = 2000):
    """``n`` packets of random events starting at sensor time ``t0`` µs, seq and stamps rising."""
    rng = np.random.default_rng(t0 % 1000 + n)
    enc = make_encoder(encoding, W, H)
    out = []
    for i in range(n):
        t = t0 + i * step_us + np.sort(rng.integers(0, step_us, 50))
        ev = Events.from_arrays(t, rng.integers(0, W, 50), rng.integers(0, H, 50),
                                rng.integers(0, 2, 50), W, H)
        tb = (t0 // 1000) * 1000 * 1000 if encoding != "evt3" else 0  # ns, sub-stream base
        out.append(build_message(EVENT_PACKET, ev, header_stamp_ns=stamp0_ns + i * step_us * 1000,
                                 seq=seq0 + i, encoding=encoding, time_base=tb, encoder=enc))
    return out


def test_position_restarts_only_when_seq_or_stamp_goes_back():
    pos = StreamPosition()
    assert not pos.observe(5, 100)
    assert not pos.observe(6, 100)  # same stamp: no restart
    assert not pos.observe(9, 200)  # a gap (lost messages) is no restart
    assert pos.observe(0, 300)  # driver restarted: seq from 0, host stamps go on
    assert pos.observe(1, 50)  # looped bag without seq: stamp back
    assert not pos.observe(None, None)  # a message without seq or header: nothing to compare
    assert pos.restarts == 2
    still = StreamPosition()  # drivers that leave seq at 0 and stamps unset never restart
    assert not any(still.observe(0, 0) for _ in range(3))


@pytest.mark.parametrize("name", BAGS)
def test_looped_real_bag_decodes_the_same_and_resets_once(shared_data, name):
    path = shared_data / "ros2_bags" / name
    with BagSource(path) as src:
        msgs = [p.message for p in src if p.message is not None]
        msgtype = src.wire_msgtype
    codec = TopicCodec(msgtype)
    loops = [[codec.decode(m) for m in msgs] for _ in range(3)]
    first = concat([d.events for d in loops[0]])
    for k in (1, 2):
        again = concat([d.events for d in loops[k]])
        assert again.equals(first), f"loop {k} of {name} decodes to other times"
        assert [d.restarted for d in loops[k]] == [True] + [False] * (len(msgs) - 1)
    assert not any(d.restarted for d in loops[0])
    engine = _engine(msgtype)
    _run(engine, [codec.serialize(m) for m in msgs] * 3)
    assert engine.counters.resets == 2
    assert engine.counters.messages_rejected == 0


@pytest.mark.parametrize("encoding", ["evt3", "libcaer", "mono"])
def test_camera_restart_resets_once(encoding):
    """The sensor clock starts again near 0 while host stamps go on and seq starts from 0."""
    before = _messages(encoding, 5_000_000, 20, 0, 10**18)
    after = _messages(encoding, 1000, 20, 0, 10**18 + 3 * 10**9)
    engine, codec = _engine(), TopicCodec(EVENT_PACKET)
    decoded = [codec.decode(m) for m in before + after]
    assert _run(engine, [codec.serialize(m) for m in before + after]) > 0  # outputs re-encoded
    assert [d.restarted for d in decoded] == [False] * 20 + [True] + [False] * 19
    assert decoded[20].events.t[0] < 5_000_000  # a new clock, not unwrapped (+16.78 s for evt3)
    assert engine.counters.resets == 1


def test_genuine_evt3_rollover_is_unwrapped_not_reset():
    """A stream crossing the 24-bit counter twice (seq + 1 per packet, stamps forward)."""
    msgs = _messages("evt3", WRAP - 300_000, 60, 7, 10**18, step_us=20_000)  # 1.2 s, wraps once
    msgs += _messages("evt3", 2 * WRAP - 300_000, 60, 67, 10**18 + 10**9 * 20, step_us=20_000)
    codec, engine = TopicCodec(EVENT_PACKET), _engine()
    decoded = [codec.decode(m) for m in msgs]
    t = concat([d.events for d in decoded]).t
    assert not any(d.restarted for d in decoded)
    assert np.all(np.diff(t) >= 0) and t[-1] > 2 * WRAP  # one monotone clock across both wraps
    assert _run(engine, [codec.serialize(m) for m in msgs]) > 0
    assert engine.counters.resets == 0 and engine.counters.events_in == len(t)


@pytest.mark.parametrize("encoding", ["evt3", "libcaer", "mono"])
def test_big_endian_payload_is_honoured(encoding):
    msgs = _messages(encoding, 123_000, 5, 0, 10**18)
    k = WORD_BYTES[encoding]
    little, big = TopicCodec(EVENT_PACKET), TopicCodec(EVENT_PACKET)
    for m in msgs:
        words = np.frombuffer(np.asarray(m.events, np.uint8).tobytes(), f"<u{k}")
        swapped = np.frombuffer(words.astype(f">u{k}").tobytes(), np.uint8)
        mb = dataclasses.replace(m, events=swapped, is_bigendian=True)
        d_le, d_be = little.decode(m), big.decode(mb)
        assert d_be.events.equals(d_le.events) and len(d_le.events) == 50
        keep = np.arange(50) % 3 != 0
        out = big.rewrite(mb, d_be, keep)  # rewritten little endian, flag cleared
        assert out.is_bigendian is False
        assert TopicCodec(EVENT_PACKET).decode(out).events.equals(d_le.events[keep])
