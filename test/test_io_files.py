"""DSEC h5, eventfx archive, Prophesee raw, AEDAT4: round trips (hypothesis) and corrupt files."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core.errors import EventfxError, FormatError
from eventfx_core.events import Events, concat
from eventfx_core.io import ArchiveWriter, iter_archive, open_sink, open_source, read_archive, write_archive
from eventfx_core.io.dsec import DsecReader, DsecWriter, read_dsec, write_dsec
from eventfx_core.io.prophesee_raw import read_raw, write_raw


@st.composite
def event_arrays(draw, max_n=300, max_t=40_000_000):
    n = draw(st.integers(0, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    t0 = draw(st.integers(0, max_t))
    rng = np.random.default_rng(seed)
    span = draw(st.sampled_from([10, 5000, 3_000_000]))
    t = t0 + np.sort(rng.integers(0, span, n))
    return Events.from_arrays(t, rng.integers(0, 640, n), rng.integers(0, 480, n), rng.integers(0, 2, n), 640, 480)


def stream_all(path):
    src = open_source(path)
    ev = concat([p.events for p in src], *(src.sensor_size or (640, 480)))  # empty bag: no size
    src.close()
    return src, ev


@settings(max_examples=15, deadline=None)
@given(ev=event_arrays(), cut=st.integers(1, 400))
def test_dsec_round_trip_and_ms_to_idx(tmp_path_factory, ev, cut):
    path = tmp_path_factory.mktemp("d") / "events.h5"
    with DsecWriter(path) as w:
        for i in range(0, len(ev), cut):
            w.append(ev[i:i + cut])
    assert read_dsec(path).equals(ev)
    # Plain h5py + hdf5plugin, as DSEC's own loader reads it.
    import h5py
    import hdf5plugin  # noqa: F401
    with h5py.File(path, "r") as f:
        t = f["events/t"][:].astype(np.int64)
        ms = f["ms_to_idx"][:]
        assert t.dtype == np.int64 and f["events/x"].dtype == np.uint16 and f["events/p"].dtype == np.uint8
        if len(ev):
            assert np.array_equal(t + int(f["t_offset"][()]), ev.t)
            assert len(ms) == t[-1] // 1000 + 1
            for m, i in enumerate(ms):
                assert t[i] >= m * 1000 and (i == 0 or t[i - 1] < m * 1000)
    if len(ev) > 1:
        t0, t1 = int(ev.t[0]) + 7, int(ev.t[-1]) - 3
        with DsecReader(path) as r:
            assert r.slice_us(t0, t1).equals(ev[(ev.t >= t0) & (ev.t < t1)])


def test_dsec_readable_by_a_fresh_interpreter(tmp_path):
    ev = Events.from_arrays(np.arange(0, 50_000, 10) + 123, np.arange(5000) % 640, np.arange(5000) % 480,
                            np.arange(5000) % 2, 640, 480)
    write_dsec(tmp_path / "events.h5", ev)
    code = ("import h5py, hdf5plugin, sys; f = h5py.File(sys.argv[1]); "
            "print(len(f['events/t']), int(f['ms_to_idx'][10]), int(f['t_offset'][()]))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "events.h5")], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["5000", "1000", "123"]


@settings(max_examples=15, deadline=None)
@given(ev=event_arrays(), labelled=st.booleans(), cut=st.integers(1, 400))
def test_archive_round_trip(tmp_path_factory, ev, labelled, cut):
    d = tmp_path_factory.mktemp("a")
    labels = (np.arange(len(ev)) % 4).astype(np.uint8) if labelled else None
    write_archive(d / "a.h5", ev, labels, {"seed": 3})
    a = read_archive(d / "a.h5")
    assert a.events.equals(ev) and a.meta == {"seed": 3}
    assert (a.labels is None) if not labelled else np.array_equal(a.labels, labels)
    parts = list(iter_archive(d / "a.h5", chunk_events=cut))
    assert concat([p[0] for p in parts], 640, 480).equals(ev)
    assert all(len(p[0]) <= cut for p in parts)


def test_archive_not_closed_is_detected(tmp_path):
    w = ArchiveWriter(tmp_path / "a.h5", 10, 10, with_labels=True)
    w.append(Events.from_arrays([1], [2], [3], [1], 10, 10), np.array([1], np.uint8))
    w.file.flush()
    with pytest.raises(FormatError, match="incomplete"):
        read_archive(tmp_path / "a.h5")
    w.close()
    assert len(read_archive(tmp_path / "a.h5").events) == 1


@settings(max_examples=15, deadline=None)
@given(ev=event_arrays(max_t=2**24 - 3_000_100))
def test_raw_round_trip(tmp_path_factory, ev):
    path = tmp_path_factory.mktemp("r") / "x.raw"
    write_raw(path, ev)
    assert read_raw(path).equals(ev)
    src, streamed = stream_all(path)
    assert src.format == "raw" and src.sensor_size == (640, 480) and streamed.equals(ev)


def test_raw_keeps_absolute_time_in_its_header(tmp_path):
    # EVT3 words hold 24 bits of time; the header line eventfx_time_base_us holds the rest.
    ev = Events.from_arrays([2**24 * 3 + 5, 2**24 * 3 + 9, 2**24 * 5], [1, 2, 3], [4, 5, 6], [1, 0, 1], 640, 480)
    write_raw(tmp_path / "x.raw", ev)
    assert b"% eventfx_time_base_us 00000000000050331648\n" in (tmp_path / "x.raw").read_bytes()[:400]
    back = read_raw(tmp_path / "x.raw")
    assert np.array_equal(back.t, ev.t) and np.array_equal(back.x, ev.x)


@settings(max_examples=8, deadline=None)
@given(ev=event_arrays(max_n=200), fmt=st.sampled_from(["rosbag2", "rosbag1", "mcap", "dsec", "archive", "raw"]))
def test_every_format_round_trips_through_open_sink(tmp_path_factory, ev, fmt):
    d = tmp_path_factory.mktemp("f")
    write_archive(d / "in.h5", ev)
    name = {"rosbag1": "out.bag", "raw": "out.raw", "dsec": "out.h5", "archive": "out.h5"}.get(fmt, "out")
    src = open_source(d / "in.h5")
    with open_sink(d / name, source=src, format=fmt) as sink:
        for p in src:
            sink.write(p)
    src.close()
    out_src, back = stream_all(d / name)
    want = ev
    if fmt not in ("dsec", "archive", "raw") and len(ev):  # EventPacket's default evt3: 24-bit clock
        # (.raw keeps the rest in its header, eventfx_time_base_us)
        want = Events(ev.t - int(ev.t[0]) // 2**24 * 2**24, ev.x, ev.y, ev.p, 640, 480)
    assert back.equals(want), fmt


def test_aedat4_counts(shared_data):
    src, ev = stream_all(shared_data / "aedat4" / "emlb_demo-01_davis346.aedat4")
    assert src.format == "aedat4" and src.sensor_size == (346, 260) and len(ev) == 319_512
    _, small = stream_all(shared_data / "aedat4" / "evl_sample_davis346.aedat4")
    assert len(small) == 6_676


@pytest.mark.parametrize("name,content", [
    ("random.h5", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))),
    ("garbage.raw", b"\x89garbage that is not a header\n" * 20),
    ("nothing.raw", b""),
    ("hdf.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100),
])
def test_corrupt_files_give_one_line(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(EventfxError) as err:
        src = open_source(tmp_path / name)
        for _ in src:
            pass
    assert "\n" not in str(err.value) and name in str(err.value)


def test_truncated_and_garbage_raw_name_the_byte_offset(tmp_path):
    ev = Events.from_arrays(np.arange(100) * 7, np.arange(100), np.arange(100), np.arange(100) % 2, 640, 480)
    write_raw(tmp_path / "x.raw", ev)
    data = (tmp_path / "x.raw").read_bytes()
    (tmp_path / "t.raw").write_bytes(data[:-1])
    with pytest.raises(FormatError, match="byte offset"):
        list(open_source(tmp_path / "t.raw"))
    header_end = data.index(b"% end\n") + 6
    (tmp_path / "g.raw").write_bytes(data[:header_end] + b"\x00\x90" * 50)  # 0x9 words are undefined
    with pytest.raises(FormatError, match="byte offset"):
        list(open_source(tmp_path / "g.raw"))
