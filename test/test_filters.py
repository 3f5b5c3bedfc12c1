"""Classic filters: numba kernels == per-event Python references, split invariance, behaviour."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core.config import from_dict
from eventfx_core.errors import ConfigError, EventfxError
from eventfx_core.events import Events, concat
from eventfx_core.stages import EventStage, StageResult, stage_class
from eventfx_core.filters.reference import REFERENCES

FILTERS = ["baf", "stcf", "refractory", "hot_pixel"]

# A few configs per filter, small enough windows that both keep and drop happen on the streams.
CONFIGS = {
    "baf": [{}, {"time_window_us": 300, "include_self": True}],
    "stcf": [{}, {"time_window_us": 3000, "k": 1, "polarity_match": True}, {"k": 4}],
    "refractory": [{}, {"refractory_us": 2000}, {"refractory_us": 0}],
    "hot_pixel": [{"window_us": 20_000, "max_rate_hz": 100.0}, {"window_us": 3000, "max_rate_hz": 400.0},
                  {"window_us": 20_000, "max_rate_hz": 150.0, "busy_share": 1.0},
                  {"window_us": 3000, "max_rate_hz": 400.0, "busy_share": 0.0},
                  {"window_us": 3000, "max_rate_hz": 400.0, "muted_pixels": [0, 0, 4, 3, 8, 6, 2, 5]}],
}
CASES = [(name, i) for name in FILTERS for i in range(len(CONFIGS[name]))]


def make(name: str, i: int, sensor=(9, 7)):
    cls = stage_class(name)
    return cls(from_dict(cls.Config, CONFIGS[name][i], name), sensor=sensor)


STREAM = {"t0": 10_000, "max_gap": 400}  # make_events (conftest.py) on the 9 x 7 sensor


@pytest.mark.parametrize("name", FILTERS)
def test_is_a_registered_event_stage(name, make_events):
    stage = stage_class(name)(None, sensor=(9, 7), device="cpu", base_dir=None)
    assert isinstance(stage, EventStage) and stage.name == name
    res = stage.process(make_events(0, 100, **STREAM))
    assert isinstance(res, StageResult)
    assert res.keep.dtype == np.bool_ and res.keep.shape == (100,)
    assert res.score.dtype == np.float32 and res.score.shape == (100,)
    assert ((res.score >= 0) & (res.score <= 1)).all()
    empty = stage.process(Events.empty(9, 7))
    assert empty.keep.shape == (0,) and empty.score.shape == (0,)


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from(CASES), seed=st.integers(0, 2**31), n=st.integers(0, 500),
       max_gap=st.sampled_from([3, 100, 400, 5000]))
def test_fast_equals_reference(make_events, case, seed, n, max_gap):
    name, i = case
    ev = make_events(seed, n, t0=10_000, max_gap=max_gap)
    stage = make(name, i)
    res = stage.process(ev)
    keep, score = REFERENCES[name](stage.config).run(ev)
    np.testing.assert_array_equal(res.keep, keep)
    np.testing.assert_array_equal(res.score, score)


@settings(max_examples=40, deadline=None)
@given(case=st.sampled_from(CASES), seed=st.integers(0, 2**31), n=st.integers(0, 800), data=st.data())
def test_split_invariance(make_events, case, seed, n, data):
    name, i = case
    ev = make_events(seed, n, **STREAM)
    whole = make(name, i).process(ev)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=6)))
    stage = make(name, i)
    bounds = [0, *cuts, n]
    parts = [stage.process(ev[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(np.concatenate([p.keep for p in parts]), whole.keep)
    np.testing.assert_array_equal(np.concatenate([p.score for p in parts]), whole.score)


def test_both_decisions_occur(make_events):
    """The test streams exercise keeping and dropping for every config (tests can fail)."""
    for name, i in CASES:
        keep = make(name, i).process(make_events(1, 3000, **STREAM)).keep
        if CONFIGS[name][i] == {"refractory_us": 0}:
            assert keep.all()  # no refractory period: nothing to drop
        else:
            assert keep.any() and not keep.all(), (name, CONFIGS[name][i])


def test_baf_isolated_event_dropped_cluster_kept():
    baf = stage_class("baf")(None, sensor=(64, 48))
    # an isolated event, then a dense 3x3 cluster firing every 100 us
    xs, ys, ts = [50], [40], [100_000]
    for k in range(5):
        for dy in range(3):
            for dx in range(3):
                xs.append(10 + dx), ys.append(10 + dy), ts.append(200_000 + 100 * k)
    ev = Events.from_arrays(ts, xs, ys, np.ones(len(ts)), 64, 48)
    keep = baf.process(ev).keep
    assert not keep[0]
    assert not keep[1]  # the first event of the cluster has no earlier support
    assert keep[2:].all()


def test_stcf_needs_k_neighbours():
    stcf = stage_class("stcf")(from_dict(stage_class("stcf").Config, {"k": 3, "time_window_us": 1000}),
                                sensor=(16, 16))
    ev = Events.from_arrays([0, 10, 20, 30, 40], [4, 6, 4, 5, 5], [4, 4, 6, 5, 5], [1, 1, 1, 1, 1], 16, 16)
    res = stcf.process(ev)
    # (5,5) at t=30 has 3 neighbours within 1 ms -> kept; at t=40 still 3 (own pixel not counted)
    np.testing.assert_array_equal(res.keep, [False, False, False, True, True])
    np.testing.assert_array_equal(res.score[3:], np.float32([3 / 8, 3 / 8]))
    # later than the window: nothing supports any more
    assert not stcf.process(Events.from_arrays([5000], [5], [5], [1], 16, 16)).keep[0]


def test_hot_pixel_spares_a_flickering_lamp_but_not_a_lone_pixel():
    """A 3x3 lamp core firing at 1 kHz keeps its events (its neighbours are as busy); a lone
    pixel at 1 kHz is muted; with busy_share 0 the lamp is muted too."""
    cls = stage_class("hot_pixel")
    t = np.arange(0, 300_000, 1000)
    lamp = [(10 + dx, 10 + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    pix = lamp + [(25, 5)]
    tt = np.repeat(t, len(pix)) + np.tile(np.arange(len(pix)), len(t))  # round robin, 1 us apart
    xs = np.tile([p[0] for p in pix], len(t))
    ys = np.tile([p[1] for p in pix], len(t))
    ev = Events.from_arrays(tt, xs, ys, np.ones(len(tt)), 32, 32)
    lone = (ev.x == 25) & (ev.y == 5)
    for share, lamp_kept in ((0.25, len(t) * 9), (0.0, 10 * 9)):
        hp = cls(from_dict(cls.Config, {"window_us": 100_000, "max_rate_hz": 100.0, "busy_share": share}),
                 sensor=(32, 32))
        keep = hp.process(ev).keep
        assert keep[lone].sum() == 10  # the learning window's first `limit` events only
        assert keep[~lone].sum() == lamp_kept
    with pytest.raises(ConfigError, match="busy_share"):
        cls(from_dict(cls.Config, {"busy_share": 2.0}), sensor=(32, 32))


def test_refractory_counts_from_last_kept_event():
    ref = stage_class("refractory")(from_dict(stage_class("refractory").Config, {"refractory_us": 1000}),
                                    sensor=(4, 4))
    ev = Events.from_arrays([0, 600, 1000, 1500, 2100, 2100], [1, 1, 1, 1, 1, 2], [1] * 6, [1] * 6, 4, 4)
    np.testing.assert_array_equal(ref.process(ev).keep, [True, False, True, False, True, True])


def test_hot_pixel_suppressed_after_learning_period():
    cls = stage_class("hot_pixel")
    hp = cls(from_dict(cls.Config, {"window_us": 100_000, "max_rate_hz": 100.0}), sensor=(32, 32))
    assert hp.config.limit() == 10
    rng = np.random.default_rng(4)
    hot_t = np.arange(0, 1_000_000, 1000)  # pixel (3, 7) fires at 1 kHz for 1 s
    bg_t = np.sort(rng.integers(0, 1_000_000, 2000))  # background at ~2 Hz per pixel
    t = np.concatenate([hot_t, bg_t])
    x = np.concatenate([np.full(len(hot_t), 3), rng.integers(8, 32, len(bg_t))])
    y = np.concatenate([np.full(len(hot_t), 7), rng.integers(0, 32, len(bg_t))])
    order = np.argsort(t, kind="stable")
    ev = Events.from_arrays(t[order], x[order], y[order], np.ones(len(t)), 32, 32)
    keep = hp.process(ev).keep
    hot = (ev.x == 3) & (ev.y == 7)
    assert keep[hot].sum() == 10  # only the first `limit` events of the learning window pass
    assert keep[hot & (ev.t >= 100_000)].sum() == 0
    assert keep[~hot].all()
    # the pixel stops being hot one window after it calms down
    later = Events.from_arrays([1_150_000, 1_250_000], [3, 3], [7, 7], [1, 1], 32, 32)
    np.testing.assert_array_equal(hp.process(later).keep, [True, True])


@pytest.mark.parametrize("name", FILTERS)
def test_time_backwards_resets_with_warning(name, make_events):
    ev = make_events(5, 400, **STREAM)
    earlier = Events.from_arrays(ev.t - 2000, ev.x, ev.y, ev.p, 9, 7)
    stage = make(name, 0)
    stage.process(ev)
    with pytest.warns(RuntimeWarning, match="backwards"):
        res = stage.process(earlier)
    np.testing.assert_array_equal(res.keep, make(name, 0).process(earlier).keep)
    with pytest.warns(RuntimeWarning, match="backwards"):
        both = make(name, 0).process(concat([ev, earlier]))
    np.testing.assert_array_equal(both.keep[len(ev):], res.keep)


@pytest.mark.parametrize("name", FILTERS)
def test_reset_and_sensor_change(name, make_events):
    ev = make_events(6, 400, **STREAM)
    stage = make(name, 0)
    first = stage.process(ev)
    stage.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(stage.process(ev).keep, first.keep)
    other = make_events(7, 300, 12, 5, **STREAM)
    with pytest.warns(RuntimeWarning, match="sensor size"):
        res = stage.process(other)
    np.testing.assert_array_equal(res.keep, make(name, 0, sensor=(12, 5)).process(other).keep)


@pytest.mark.parametrize("name", FILTERS)
def test_out_of_range_raises(name):
    bad = Events.from_arrays([1, 2, 3], [0, 8, 9], [6, 7, 0], [0, 1, 1], 9, 7)
    with pytest.raises(EventfxError, match="event 1 .*outside"):
        make(name, 0).process(bad)


@pytest.mark.parametrize("name,bad", [("baf", {"time_window_us": 0}), ("stcf", {"k": 9}),
                                      ("refractory", {"refractory_us": -1}),
                                      ("hot_pixel", {"window_us": 0}), ("baf", {"nope": 1})])
def test_bad_config_rejected(name, bad):
    with pytest.raises(ConfigError):
        from_dict(stage_class(name).Config, bad, name)
