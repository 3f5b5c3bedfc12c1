"""codecs.messages.TopicCodec / legacy wire format against rosbags (the oracle) and the real bags."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core.errors import DecodeError
from eventfx_core.events import Events
from eventfx_core.codecs import legacy_wire
from eventfx_core.codecs.typestore import ros1_typestore, ros2_typestore
from eventfx_core.codecs.messages import (DVS_ARRAY, EVENT_PACKET, EVENTFX_ARRAY, PROPHESEE_ARRAY,
                                          TopicCodec, build_message, legacy_to_events)

event_lists = st.lists(st.tuples(st.integers(0, 65535), st.integers(0, 65535),
                                 st.integers(0, 2**31 - 1), st.integers(0, 999_999_999),
                                 st.booleans()), max_size=12)


def rosbags_array(store, msgtype, events, frame_id, ros1):
    T = store.types
    stamp = T["builtin_interfaces/msg/Time"](sec=7, nanosec=8)
    header = (T["std_msgs/msg/Header"](seq=3, stamp=stamp, frame_id=frame_id) if ros1
              else T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id))
    evs = [T[msgtype.replace("EventArray", "Event")](
        x=x, y=y, ts=T["builtin_interfaces/msg/Time"](sec=s, nanosec=n), polarity=p)
        for x, y, s, n, p in events]
    return T[msgtype](header=header, height=480, width=640, events=evs)


@settings(max_examples=40, deadline=None)
@given(events=event_lists, frame_id=st.text("abc_/0", max_size=7), ros1=st.booleans(),
       msgtype=st.sampled_from([DVS_ARRAY, PROPHESEE_ARRAY]))
def test_legacy_numpy_wire_matches_rosbags(events, frame_id, ros1, msgtype):
    store = ros1_typestore() if ros1 else ros2_typestore()
    msg = rosbags_array(store, msgtype, events, frame_id, ros1)
    raw = bytes(store.serialize_ros1(msg, msgtype) if ros1 else store.serialize_cdr(msg, msgtype))
    codec = TopicCodec(msgtype, ros_version=1 if ros1 else 2)
    fast = codec.deserialize(raw)  # numpy path
    assert codec.serialize(fast) == raw
    plain = legacy_to_events(msg.events, 640, 480)  # per-object path: the oracle
    assert codec.decode(fast).events.equals(plain)
    assert codec.decode(msg).events.equals(plain)
    assert fast.header.frame_id == frame_id


def test_legacy_truncated_payload_is_decode_error():
    store = ros2_typestore()
    msg = rosbags_array(store, DVS_ARRAY, [(1, 2, 3, 4, True)] * 3, "", False)
    raw = bytes(store.serialize_cdr(msg, DVS_ARRAY))
    with pytest.raises(DecodeError):
        TopicCodec(DVS_ARRAY).deserialize(raw[:-5])


@pytest.mark.parametrize("msgtype,encoding", [(EVENT_PACKET, "evt3"), (EVENT_PACKET, "libcaer"),
                                              (EVENT_PACKET, "mono"), (DVS_ARRAY, None),
                                              (PROPHESEE_ARRAY, None), (EVENTFX_ARRAY, None)])
def test_build_decode_rewrite(msgtype, encoding):
    rng = np.random.default_rng(1)
    n = 300
    ev = Events.from_arrays(np.sort(rng.integers(10**6, 2 * 10**6, n)), rng.integers(0, 640, n),
                            rng.integers(0, 480, n), rng.integers(0, 2, n), 640, 480)
    tb = int(ev.t[0]) * 1000 if encoding in ("libcaer", "mono") else 0
    msg = build_message(msgtype, ev, header_stamp_ns=5 * 10**9, seq=4, encoding=encoding, time_base=tb)
    codec = TopicCodec(msgtype)
    back = codec.deserialize(codec.serialize(msg))
    dec = codec.decode(back)
    assert dec.events.equals(ev)
    keep = rng.random(n) < 0.5
    out = codec.rewrite(back, dec, keep)
    assert out.header == back.header and getattr(out, "seq", None) == getattr(back, "seq", None)
    assert getattr(out, "encoding", None) == getattr(back, "encoding", None)
    again = TopicCodec(msgtype).decode(TopicCodec(msgtype).deserialize(codec.serialize(out)))
    assert again.events.equals(ev[keep])


def test_real_bags_through_topic_codec(shared_data):
    from rosbags.highlevel import AnyReader
    # ON counts and x/y sums from ros-event-camera/event_camera_codecs test/decoder_test.cpp
    want = {"test_data_libcaer_rollover": (111651612, 82801007, 181908, 201),
            "test_data_evt3_trigger": (42078718, 31656267, 41439, 105),
            "test_data_mono_cd": (34450, 26450, 50, 2)}
    for name, (xs, ys, on, n_msgs) in want.items():
        with AnyReader([shared_data / "ros2_bags" / name], default_typestore=ros2_typestore()) as r:
            codec = TopicCodec(r.connections[0].msgtype)
            sums = np.zeros(4, np.int64)
            for _, _, raw in r.messages():
                ev = codec.decode(codec.deserialize(raw)).events
                sums += [ev.x.sum(dtype=np.int64), ev.y.sum(dtype=np.int64), ev.p.sum(dtype=np.int64), 1]
        assert tuple(sums) == (xs, ys, on, n_msgs), name


def test_codecs_package_imports_nothing_from_io():
    """io imports codecs (messages, type store), never the reverse (issue 12)."""
    script = ("import importlib, pkgutil, sys, eventfx_core.codecs as c\n"
              "for m in pkgutil.walk_packages(c.__path__, 'eventfx_core.codecs.'):\n"
              "    importlib.import_module(m.name)\n"
              "print(sorted(m for m in sys.modules if m.startswith('eventfx_core.io')))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
