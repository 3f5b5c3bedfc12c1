"""Issue 16, the reader/writer half: conversions keep what they read, no event is dropped
silently, truncated recordings follow one rule, and ROS 2 bags as people have them open.

One test (or more) per row of the issue's table; each failed on the code before the fix.
"""
import shutil

import h5py
import numpy as np
import pytest

from conftest import random_raw, run_cli
from eventfx_core.events import Events
from eventfx_core.io import Packet, open_source
from eventfx_core.io.dsec import read_dsec
from eventfx_core.stages import stage_class


run = run_cli  # eventfx ARGV in this process -> (status, stdout, stderr)


def bag_packets(path):
    src = open_source(path)
    return src, [p for p in src if isinstance(p, Packet)]


# --- row 6: libcaer bag -> DSEC -> bag keeps absolute time, encoding; says what it cannot keep ---
def test_libcaer_bag_dsec_bag_dsec_keeps_absolute_time_and_encoding(tmp_path, shared_data, capsys):
    bag = shared_data / "ros2_bags" / "test_data_libcaer_rollover"
    _, packets = bag_packets(bag)
    t_in = np.concatenate([p.events.t for p in packets])
    assert t_in[0] == 1702309120762236  # the figure of the issue
    rc, _, err = run(capsys, "convert", "-q", bag, tmp_path / "a.h5")
    assert rc == 0 and "frame ids and other topics are not" in err  # says what DSEC cannot hold
    assert np.array_equal(read_dsec(tmp_path / "a.h5").t, t_in)
    assert run(capsys, "convert", "-q", tmp_path / "a.h5", tmp_path / "b")[0] == 0
    src, back = bag_packets(tmp_path / "b")
    assert src.first_encoding == "libcaer"  # the input's encoding, not evt3
    assert np.array_equal(np.concatenate([p.events.t for p in back]), t_in)
    # the message cut: 201 messages, not 2001, with their receive times, header stamps and seq
    from eventfx_core.codecs.messages import header_stamp_ns
    assert len(back) == len(packets) == 201
    for a, b in zip(packets, back):
        assert (a.timestamp_ns, header_stamp_ns(a.message), a.message.seq, len(a.events)) == \
            (b.timestamp_ns, header_stamp_ns(b.message), b.message.seq, len(b.events))
    assert run(capsys, "convert", "-q", tmp_path / "b", tmp_path / "c.h5")[0] == 0
    assert np.array_equal(read_dsec(tmp_path / "c.h5").t, t_in)


def test_evt3_output_of_absolute_time_warns(tmp_path, shared_data, capsys):
    bag = shared_data / "ros2_bags" / "test_data_libcaer_rollover"
    rc, _, err = run(capsys, "convert", "-q", bag, tmp_path / "o", "--to-encoding", "evt3")
    assert rc == 0 and "24-bit" in err and "header.stamp" in err


def test_raw_output_keeps_absolute_time(tmp_path, shared_data, capsys):
    bag = shared_data / "ros2_bags" / "test_data_libcaer_rollover"
    assert run(capsys, "convert", "-q", bag, tmp_path / "o.raw")[0] == 0
    _, packets = bag_packets(bag)
    src = open_source(tmp_path / "o.raw")
    t = np.concatenate([p.events.t for p in src])
    assert np.array_equal(t, np.concatenate([p.events.t for p in packets]))


def test_hot_pixel_decisions_do_not_depend_on_a_constant_time_shift():
    # One pixel at 300 Hz for 3 s (limit: 100 per 1 s window) among sparse background.
    rng = np.random.default_rng(5)
    t_hot = np.arange(0, 3_000_000, 3333)
    t_bg = np.sort(rng.integers(0, 3_000_000, 400))
    t = np.concatenate([t_hot, t_bg])
    x = np.concatenate([np.full(len(t_hot), 10), rng.integers(0, 32, len(t_bg))])
    y = np.concatenate([np.full(len(t_hot), 10), rng.integers(0, 24, len(t_bg))])
    order = np.argsort(t, kind="stable")
    ev = Events.from_arrays(t[order], x[order], y[order], np.zeros(len(t)), 32, 24)
    cls = stage_class("hot_pixel")
    cfg = cls.Config(window_us=1_000_000, max_rate_hz=100.0, busy_share=0.0)
    keeps = []
    for shift in (0, 1_702_309_120_762_236):
        f = cls(cfg, (32, 24))
        shifted = Events(ev.t + shift, ev.x, ev.y, ev.p, 32, 24)
        keeps.append(np.asarray(f.process(shifted).keep))
    assert np.array_equal(keeps[0], keeps[1])


# --- row 7: a DSEC-layout file of a 1280x720 camera without width/height attributes ------------
def _write_dsec_layout(path, t, x, y, p, attrs=None):
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        g["t"], g["x"], g["y"], g["p"] = (t - t[0]).astype(np.uint32), x.astype(np.uint16), \
            y.astype(np.uint16), p.astype(np.uint8)
        rel = t - t[0]
        f["ms_to_idx"] = np.searchsorted(rel, np.arange(0, rel[-1] // 1000 + 1) * 1000).astype(np.uint64)
        f["t_offset"] = np.int64(t[0])
        for k, v in (attrs or {}).items():
            f.attrs[k] = v


@pytest.fixture
def big_dsec(tmp_path):
    rng = np.random.default_rng(2)
    n = 5000
    t = 1_000_000 + np.sort(rng.integers(0, 500_000, n))
    x, y = rng.integers(0, 1280, n), rng.integers(0, 720, n)
    path = tmp_path / "events.h5"
    _write_dsec_layout(path, t, x, y, rng.integers(0, 2, n))
    return path, n


def test_dsec_layout_without_size_takes_it_from_the_data(big_dsec, tmp_path, capsys):
    path, n = big_dsec
    src = open_source(path)
    assert src.sensor_size == (1280, 720)
    rc, out, err = run(capsys, "info", "-q", path)
    assert rc == 0 and "1280 x 720" in out and "taken from the data" in err
    cfg = tmp_path / "keep_all.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    stages: [hot_pixel]\n    hot_pixel:\n      max_rate_hz: 1000000.0\n")
    rc, out, err = run(capsys, "denoise", "--quiet", path, tmp_path / "o.h5", "--config", cfg)
    assert rc == 0 and f"{n:,} events in, {n:,} kept" in out, out + err
    assert len(read_dsec(tmp_path / "o.h5")) == n


def test_events_outside_a_stated_sensor_are_counted_and_reported(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n = 2000
    t = 5_000 + np.sort(rng.integers(0, 100_000, n))
    x, y = rng.integers(0, 800, n), rng.integers(0, 480, n)  # the file says 640 wide
    path = tmp_path / "stated.h5"
    _write_dsec_layout(path, t, x, y, rng.integers(0, 2, n), attrs={"width": 640, "height": 480})
    cfg = tmp_path / "keep_all.yaml"
    cfg.write_text("/**:\n  ros__parameters:\n    stages: [hot_pixel]\n    hot_pixel:\n      max_rate_hz: 1000000.0\n")
    rc, out, err = run(capsys, "denoise", "--quiet", path, tmp_path / "o.h5", "--config", cfg)
    outside = int(np.count_nonzero(x >= 640))
    assert rc == 0 and f"{outside:,} events lie outside" in err


# --- row 8: truncated recordings: one rule (refuse with the offset, --salvage reads) -------------
@pytest.fixture
def raw_file(tmp_path):
    return random_raw(tmp_path / "r.raw", 4, 30_000, t0=7_000_000, max_gap=40)


@pytest.mark.parametrize("cut", [2, 3, 1000])  # even and odd lengths
def test_truncated_raw_is_refused_with_the_offset_and_salvaged_on_request(raw_file, cut, capsys):
    data = raw_file.read_bytes()
    raw_file.write_bytes(data[:-cut])
    rc, _, err = run(capsys, "info", raw_file)  # with the progress bar: the error on its own line
    lines = [ln for ln in err.splitlines() if ln.startswith("eventfx: error:")]
    assert rc == 2 and len(lines) == 1 and "truncated" in lines[0] and "byte offset" in lines[0]
    rc, out, err = run(capsys, "info", "-q", "--salvage", raw_file)
    assert rc == 0 and "eventfx: warning:" in err and "truncated" in err
    n = int(out.split("events:")[1].split()[0].replace(",", ""))
    assert 0 < n <= 30_000


def test_truncated_aedat4_is_refused_and_salvaged_on_request(tmp_path, shared_data, capsys):
    src = shared_data / "aedat4" / "emlb_demo-01_davis346.aedat4"
    cut = tmp_path / "cut.aedat4"
    cut.write_bytes(src.read_bytes()[:3_000_000])
    rc, _, err = run(capsys, "info", cut)
    lines = [ln for ln in err.splitlines() if ln.startswith("eventfx: error:")]
    assert rc == 2 and len(lines) == 1 and "--salvage" in lines[0]
    rc, out, err = run(capsys, "convert", "-q", "--salvage", cut, tmp_path / "o.h5")
    assert rc == 0 and "truncated" in err
    n = len(read_dsec(tmp_path / "o.h5"))
    assert 0 < n < 319_512


# --- row 9: a real ROS 2 bag with incomplete metadata (storage_identifier "" and no files) ------
def test_libcaer_cmp_bag_with_incomplete_metadata_decodes_as_upstream_asserts(shared_data, capsys):
    bag = shared_data / "ros2_bags" / "test_events_2_libcaer_cmp"
    src, packets = bag_packets(bag)
    assert src.format == "mcap" and len(packets) == 100 and src.sensor_size == (346, 260)
    ev_t = np.concatenate([p.events.t for p in packets])
    ev_p = np.concatenate([p.events.p for p in packets])
    first = 1744227144732712  # event_camera_py tests/test_2.py: find_first_sensor_time
    assert ev_t[0] == first and packets[0].message.time_base // 1000 == first
    m = ev_t < first + 1_000_000  # decode_until the last frame time, 1744227145732712
    assert int(np.count_nonzero(ev_p[m] == 0)) == 360_223 and int(np.count_nonzero(ev_p[m] == 1)) == 211_043
    # event_camera_py's EventCD.t holds microseconds since the first sensor time.
    assert int((ev_t[m] - first).sum()) == 335_555_680_277
    rc, out, err = run(capsys, "info", "-q", bag)
    assert rc == 0 and "571,266" in out and "storage_identifier" in err


def test_incomplete_metadata_is_repaired_without_touching_the_bag(tmp_path, shared_data):
    bag = tmp_path / "bag"
    shutil.copytree(shared_data / "ros2_bags" / "test_data_mono_cd", bag)
    meta = bag / "metadata.yaml"
    text = meta.read_text()
    broken = text.replace("storage_identifier: sqlite3", 'storage_identifier: ""')
    assert broken != text
    meta.write_text(broken)
    src, packets = bag_packets(bag)
    assert src.format == "rosbag2" and sum(len(p.events) for p in packets) == 100
    assert meta.read_text() == broken
