"""The codec benchmark runs and reports positive rates for every encoding (tiny input)."""
import numpy as np

from eventfx_core.codecs import make_decoder
from eventfx_core.bench.codecs import evt2_words, measure, synthetic_stream


def test_measure_small():
    res = measure(n_events=20_000, repeats=1)
    for name in ("evt3", "libcaer", "mono", "evt2"):
        assert res[name]["decode_Mev_s"] > 0
    assert res["evt3"]["bytes_per_event"] < 4  # vectors and shared time words pay off


def test_bench_evt2_stream_decodes_to_the_events():
    ev = synthetic_stream(5000, seed=3)
    d = make_decoder("evt2", ev.width, ev.height).decode(evt2_words(ev))
    assert d.events.equals(ev) and np.all(np.diff(d.events.t) >= 0)
