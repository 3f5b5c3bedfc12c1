"""Cross-checks against an independent implementation: faery (PyPI, Rust EVT 2.0/3.0 codecs).

Our EVT3 encoder's stream, written as a Prophesee .raw file, must read back identically in
faery; streams faery writes (EVT3 and EVT2) must decode identically with our decoders.
"""
import numpy as np
import pytest

from eventfx_core.codecs import Triggers, make_decoder, make_encoder
from eventfx_core.events import Events

faery = pytest.importorskip("faery")

WRAP = 1 << 24


def stream_with_vectors(seed=7, n=6000, width=640, height=480):
    """Sorted events over 3 wraps, with same-time row runs (vectors) and repeated stamps."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 3 * WRAP + 12345, n))
    x = rng.integers(0, width - 40, n)
    y = rng.integers(0, height, n)
    p = rng.integers(0, 2, n)
    for i in range(0, n - 30, 97):  # a run of neighbours on one row at one time
        k = int(rng.integers(3, 30))
        t[i:i + k], y[i:i + k], p[i:i + k] = t[i], y[i], p[i]
        x[i:i + k] = x[i] + np.arange(k) + (np.arange(k) > k // 2)
    order = np.argsort(t, kind="stable")
    return Events.from_arrays(t[order], x[order], y[order], p[order], width, height)


def raw_file(path, version, width, height, payload):
    head = f"% evt {version}\n% format EVT{version[0]};height={height};width={width}\n% end\n"
    path.write_bytes(head.encode() + payload)
    return path


def faery_read(path):
    with faery.evt.Decoder(path, None, None) as decoder:
        packets = list(decoder)
    events = [p["events"] for p in packets if "events" in p]
    triggers = [p["triggers"] for p in packets if "triggers" in p]
    return (np.concatenate(events) if events else None,
            np.concatenate(triggers) if triggers else None)


def strip_header(data: bytes) -> bytes:
    while data.startswith(b"%"):
        data = data[data.index(b"\n") + 1:]
    return data


def test_faery_reads_our_evt3(tmp_path):
    ev = stream_with_vectors()
    rng = np.random.default_rng(3)
    m = 40
    tr = Triggers.from_arrays(np.sort(rng.integers(0, ev.t[-1], m)), rng.integers(0, 4, m),
                              rng.integers(0, 2, m))
    enc = make_encoder("evt3", ev.width, ev.height)
    cuts = [0, 1000, 2500, 2501, 4000, len(ev)]
    payload = b""
    for a, b in zip(cuts[:-1], cuts[1:]):
        lo = -1 if a == 0 else ev.t[a]
        hi = ev.t[b] if b < len(ev) else 1 << 62
        payload += enc.encode(ev[a:b], tr[(tr.t >= lo) & (tr.t < hi)])
    assert {0x3, 0x4} <= set((np.frombuffer(payload, "<u2") >> 12).tolist())  # vectors used
    fe, ft = faery_read(raw_file(tmp_path / "ours.raw", "3.0", ev.width, ev.height, payload))
    assert len(fe) == len(ev)
    assert np.array_equal(fe["t"].astype(np.int64), ev.t)
    assert np.array_equal(fe["x"], ev.x) and np.array_equal(fe["y"], ev.y)
    assert np.array_equal(fe["on"].astype(np.uint8), ev.p)
    assert ft is not None and len(ft) == m
    assert np.array_equal(ft["t"].astype(np.int64), tr.t)
    assert np.array_equal(ft["source"].astype(np.uint8), tr.id)
    assert np.array_equal(ft["rising"].astype(np.uint8), tr.value)


@pytest.mark.parametrize("version", ["evt3", "evt2"])
def test_we_read_faery_streams(tmp_path, version):
    ev = stream_with_vectors(seed=11, n=3000)
    packet = np.zeros(len(ev), dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    packet["t"], packet["x"], packet["y"], packet["on"] = ev.t, ev.x, ev.y, ev.p.astype(bool)
    path = tmp_path / f"faery.{version}.raw"
    with faery.evt.Encoder(path, version, False, (ev.width, ev.height), True) as encoder:
        encoder.write({"events": packet})
    payload = strip_header(path.read_bytes())
    dec = make_decoder(version, ev.width, ev.height)
    step = 4 * 1000  # several packets, cut on word boundaries, decoder state carried
    parts = [dec.decode(payload[i:i + step]) for i in range(0, len(payload), step)]
    t = np.concatenate([d.events.t for d in parts])
    x = np.concatenate([d.events.x for d in parts])
    assert sum(d.n_out_of_range + d.n_before_time for d in parts) == 0
    assert np.array_equal(t, ev.t) and np.array_equal(x, ev.x)
    assert np.array_equal(np.concatenate([d.events.p for d in parts]), ev.p)
