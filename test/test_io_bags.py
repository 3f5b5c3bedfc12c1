"""Bags through open_source/open_sink: real recordings, ROS 1 <-> ROS 2, pass-through, corruption."""
import numpy as np
import pytest
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Writer as Writer2
from rosbags.highlevel import AnyReader

from eventfx_core.errors import EventfxError
from eventfx_core.events import Events, concat
from eventfx_core.io import Passthrough, open_sink, open_source
from eventfx_core.codecs.typestore import ros1_typestore, ros2_typestore
from eventfx_core.codecs.messages import DVS_ARRAY, EVENT_PACKET, TopicCodec, build_message


def read_all(path, **kw):
    src = open_source(path, **kw)
    evs, other = [], []
    for it in src:
        if isinstance(it, Passthrough):
            other.append((it.topic, it.timestamp_ns, bytes(it.raw)))
        else:
            assert it.error is None
            evs.append(it.events)
    src.close()
    return src, concat(evs, *src.sensor_size), other


def convert(inp, out, keep=None, **kw):
    src = open_source(inp)
    with open_sink(out, source=src, **kw) as sink:
        for it in src:
            if isinstance(it, Passthrough):
                sink.write_passthrough(it)
            else:
                sink.write(it, None if keep is None else keep(it.events))
    src.close()
    return sink


def random_events(n, t0, seed=0, w=346, h=260):
    rng = np.random.default_rng(seed)
    t = t0 + np.sort(rng.integers(0, 3_000_000, n))
    return Events.from_arrays(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n), w, h)


def make_dvs_ros1_bag(path, ev, per_msg=500):
    """A legacy ROS 1 bag: dvs_msgs/EventArray (ROS time in ts) plus a std_msgs/String topic."""
    store = ros1_typestore()
    codec = TopicCodec(DVS_ARRAY, ros_version=1)
    with Writer1(path) as w:
        ce = w.add_connection("/dvs/events", DVS_ARRAY, typestore=store)
        cs = w.add_connection("/note", "std_msgs/msg/String", typestore=store)
        for k, i in enumerate(range(0, len(ev), per_msg)):
            part = ev[i:i + per_msg]
            msg = build_message(DVS_ARRAY, part, header_stamp_ns=int(part.t[-1]) * 1000 + 1234,
                                seq=k, ros_version=1, frame_id="dvs")
            w.write(ce, int(part.t[-1]) * 1000 + 5000, codec.serialize(msg))
            note = store.types["std_msgs/msg/String"](data=f"note {k}")
            w.write(cs, int(part.t[-1]) * 1000 + 6000, bytes(store.serialize_ros1(note, "std_msgs/msg/String")))


def test_real_bags_open_source(shared_data):
    for name, n_on, size in (("test_data_libcaer_rollover", 181908, (640, 480)),
                             ("test_data_evt3_trigger", 41439, (1280, 720)),
                             ("test_data_mono_cd", 50, (640, 480))):
        src, ev, other = read_all(shared_data / "ros2_bags" / name)
        assert src.sensor_size == size and src.msgtype == EVENT_PACKET and not other
        assert int(ev.p.sum()) == n_on


def test_dvs_ros1_to_evt3_ros2_and_back_loses_nothing(tmp_path):
    ev = random_events(5000, t0=1_700_000_000_123_456)  # epoch ROS time, as real dvs bags
    make_dvs_ros1_bag(tmp_path / "in.bag", ev)
    convert(tmp_path / "in.bag", tmp_path / "packets", to_type=EVENT_PACKET, to_encoding="evt3")
    src, mid, other = read_all(tmp_path / "packets")
    assert src.format == "rosbag2" and src.msgtype == EVENT_PACKET and len(mid) == len(ev)
    assert [o[0] for o in other] == ["/note"] * 10
    convert(tmp_path / "packets", tmp_path / "back.bag", to_type=DVS_ARRAY)
    src2, back, other2 = read_all(tmp_path / "back.bag")
    assert src2.format == "rosbag1" and src2.msgtype == DVS_ARRAY
    assert back.equals(ev)
    _, _, other_in = read_all(tmp_path / "in.bag")
    assert other2 == other_in  # ROS 1 -> ROS 2 -> ROS 1 keeps the String messages exactly


def test_recut_packet_us_keeps_events(tmp_path):
    ev = random_events(3000, t0=50_000_000, seed=2)
    make_dvs_ros1_bag(tmp_path / "in.bag", ev, per_msg=700)
    sink = convert(tmp_path / "in.bag", tmp_path / "cut", to_type="eventfx_msgs/msg/EventArray", packet_us=10_000)
    _, out, _ = read_all(tmp_path / "cut")
    assert out.equals(ev)
    n_windows = len(np.unique(ev.t // 10_000))
    assert sink.n_messages == n_windows


def test_bag_to_bag_other_topics_byte_identical_and_masks_apply(tmp_path, shared_data):
    # A ROS 2 bag with the real evt3 events plus a String topic.
    store = ros2_typestore()
    with AnyReader([shared_data / "ros2_bags" / "test_data_evt3_trigger"], default_typestore=store) as r, \
            Writer2(tmp_path / "in", version=9) as w:
        ce = w.add_connection("/event_camera/events", EVENT_PACKET, typestore=store)
        cs = w.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        for i, (_, ts, raw) in enumerate(r.messages()):
            w.write(ce, ts, raw)
            s = store.types["std_msgs/msg/String"](data="x" * i)
            w.write(cs, ts + 1, bytes(store.serialize_cdr(s, "std_msgs/msg/String")))
    keep = lambda e: (e.x % 2) == 0  # noqa: E731
    convert(tmp_path / "in", tmp_path / "out", keep=keep)
    _, ev_in, other_in = read_all(tmp_path / "in")
    src, ev_out, other_out = read_all(tmp_path / "out")
    assert other_out == other_in and len(other_in) == 105
    assert ev_out.equals(ev_in[keep(ev_in)])
    # In-place rewrite keeps header, seq, time_base, encoding and the triggers.
    with AnyReader([tmp_path / "in"], default_typestore=store) as a, AnyReader([tmp_path / "out"], default_typestore=store) as b:
        ma = [a.deserialize(raw, c.msgtype) for c, _, raw in a.messages(connections=a.connections[:1])]
        mb = [b.deserialize(raw, c.msgtype) for c, _, raw in b.messages(connections=[x for x in b.connections if x.topic == "/event_camera/events"])]
    fields = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id, m.seq,  # noqa: E731
                        m.time_base, m.encoding, m.width, m.height)
    assert [fields(m) for m in ma] == [fields(m) for m in mb]
    n_trig = lambda p: sum(len(it.decoded.triggers) for it in open_source(p) if not isinstance(it, Passthrough))  # noqa: E731
    assert n_trig(tmp_path / "out") == n_trig(tmp_path / "in") == 2


def test_mcap_round_trip(tmp_path, shared_data):
    convert(shared_data / "ros2_bags" / "test_data_mono_cd", tmp_path / "m", format="mcap")
    src, ev, _ = read_all(tmp_path / "m")
    assert src.format == "mcap" and len(ev) == 100 and int(ev.p.sum()) == 50


def test_truncated_db3_is_one_line_error(tmp_path, shared_data):
    import shutil
    bag = tmp_path / "bag"
    shutil.copytree(shared_data / "ros2_bags" / "test_data_evt3_trigger", bag)
    db = bag / "test_data_evt3_trigger_0.db3"
    db.chmod(0o644)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    with pytest.raises(EventfxError) as err:
        src = open_source(bag)
        for _ in src:
            pass
    msg = str(err.value)
    assert "\n" not in msg and str(bag) in msg


def test_output_never_half_written(tmp_path):
    ev = random_events(1000, t0=10**6)
    make_dvs_ros1_bag(tmp_path / "in.bag", ev)
    src = open_source(tmp_path / "in.bag")
    with pytest.raises(RuntimeError):
        with open_sink(tmp_path / "out", source=src) as sink:
            for it in src:
                if not isinstance(it, Passthrough):
                    sink.write(it)
                    raise RuntimeError("interrupted")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
