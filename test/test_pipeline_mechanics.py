"""The pipeline's message bookkeeping: order, windowed delays, resets, out-of-range events.

The stages here are small but real stateful stages written for the test (the shipped stages
have their own tests and run through the pipeline in test_pipeline_real.py): they make the
expected decisions easy to compute by hand.
"""
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core import stages as stages_mod
from eventfx_core.errors import ConfigError
from eventfx_core.events import Events, concat
from eventfx_core.pipeline import Pipeline
from eventfx_core.pipeline_config import PipelineConfig, parse_params
from eventfx_core.stages import StageResult

W, H = 16, 8


class EveryOtherAtPixel:
    """Event stage: keeps every second event at each pixel (state across calls)."""

    name = "every_other"

    @dataclass
    class Config:
        threshold: float = 0.5  # unused by the decision; changeable at run time

    RUNTIME_PARAMS = ("threshold",)

    def __init__(self, config, sensor, device="cpu", base_dir=None):
        self.config = config
        self.count = np.zeros(sensor[0] * sensor[1], np.int64)

    def process(self, ev):
        keep = np.zeros(len(ev), bool)
        for i in range(len(ev)):
            k = int(ev.y[i]) * W + int(ev.x[i])
            keep[i] = self.count[k] % 2 == 1
            self.count[k] += 1
        return StageResult(keep, keep.astype(np.float32) * 0.9)

    def reset(self):
        self.count[:] = 0


class WindowMajority:
    """Windowed stage: in each 1000 us window keeps events whose polarity is the majority."""

    name = "window_majority"

    @dataclass
    class Config:
        window_us: int = 1000  # window length

    def __init__(self, config, sensor, device="cpu", base_dir=None):
        self.config = config
        self.buf: list[Events] = []
        self.flare_seen: list = []  # (times, flare) of every push, for the side-channel test

    def _decide(self, ev):
        keep = np.zeros(len(ev), bool)
        win = ev.t // self.config.window_us
        for w in np.unique(win):
            m = win == w
            on = int(ev.p[m].sum())
            keep[m] = ev.p[m] == (1 if on * 2 >= m.sum() else 0)
        return keep

    def push(self, ev, flare=None):
        self.flare_seen.append((ev.t.copy(), None if flare is None else np.asarray(flare).copy()))
        self.buf.append(ev)
        allev = concat(self.buf, W, H)
        if len(allev) == 0:
            return np.zeros(0, bool)
        closed = allev.t // self.config.window_us < allev.t[-1] // self.config.window_us
        k = int(np.count_nonzero(closed))
        self.buf = [allev[k:]]
        return self._decide(allev[:k])

    def advance(self, t_us):
        allev = concat(self.buf, W, H)
        closed = allev.t // self.config.window_us < t_us // self.config.window_us
        k = int(np.count_nonzero(closed))
        self.buf = [allev[k:]]
        return self._decide(allev[:k])

    def flush(self):
        allev = concat(self.buf, W, H)
        self.buf = []
        return self._decide(allev)

    def reset(self):
        self.buf = []


class FlareIsTime:
    """Event stage: keeps everything and hands on 'P(flare)' = the event's time stamp."""

    name = "flare_is_time"

    @dataclass
    class Config:
        pass

    def __init__(self, config, sensor, device="cpu", base_dir=None):
        self.config = config

    def process(self, ev):
        return StageResult(np.ones(len(ev), bool), None, ev.t.astype(np.float32))

    def reset(self):
        pass


@pytest.fixture(autouse=True)
def register(monkeypatch):
    monkeypatch.setitem(stages_mod.REGISTRY, "every_other", f"{__name__}:EveryOtherAtPixel")
    monkeypatch.setitem(stages_mod.REGISTRY, "flare_is_time", f"{__name__}:FlareIsTime")
    monkeypatch.setitem(stages_mod.REGISTRY, "window_majority", f"{__name__}:WindowMajority")


def make_pipeline(names=("every_other", "window_majority")):
    _, cfg = parse_params({"stages": list(names)})
    return Pipeline(cfg, (W, H))


def random_events(seed, n=400):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 40, n))
    return Events.from_arrays(t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n), W, H)


def run(pipe, parts):
    out = []
    for i, p in enumerate(parts):
        out += pipe.push(p, tag=i)
    out += pipe.flush()
    return out


def test_messages_come_back_in_order_and_complete():
    ev = random_events(0)
    parts = [ev[i:i + 37] for i in range(0, len(ev), 37)]
    out = run(make_pipeline(), parts)
    assert [d.tag for d in out] == list(range(len(parts)))
    assert all(len(d.keep) == len(p) for d, p in zip(out, parts))


def test_event_stage_flare_reaches_the_windowed_stage_for_the_survivors_only():
    """StageResult.flare of an event stage is subset by every later event stage's keep and
    handed to the first windowed stage beside its events; without it the stage gets None."""
    ev = random_events(3)
    pipe = make_pipeline(("flare_is_time", "every_other", "window_majority"))
    run(pipe, [ev[i:i + 50] for i in range(0, len(ev), 50)])
    seen = pipe.windowed_stages[0].flare_seen
    survivors = ev.t[EveryOtherAtPixel(None, (W, H)).process(ev).keep]
    assert 0 < len(survivors) < len(ev)
    np.testing.assert_array_equal(np.concatenate([t for t, _ in seen]), survivors)
    np.testing.assert_array_equal(np.concatenate([f for _, f in seen]), survivors.astype(np.float32))
    plain = make_pipeline()
    run(plain, [ev])
    assert all(f is None for _, f in plain.windowed_stages[0].flare_seen)


def test_windowed_stage_delays_decisions_until_window_closes():
    pipe = make_pipeline(("window_majority",))
    ev = Events.from_arrays([10, 20, 30], [1, 2, 3], [1, 1, 1], [1, 1, 0], W, H)
    assert pipe.push(ev, tag="a") == []  # window 0 still open
    later = Events.from_arrays([1500], [4], [1], [1], W, H)
    out = pipe.push(later, tag="b")
    assert [d.tag for d in out] == ["a"]
    assert out[0].keep.tolist() == [True, True, False]
    assert [d.tag for d in pipe.flush()] == ["b"]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 400), max_size=8))
def test_any_message_cut_gives_the_same_decisions(seed, cuts):
    ev = random_events(seed)
    whole = np.concatenate([d.keep for d in run(make_pipeline(), [ev])])
    bounds = [0, *sorted(cuts), len(ev)]
    parts = [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    split = np.concatenate([d.keep for d in run(make_pipeline(), parts)])
    assert np.array_equal(whole, split)


def test_the_score_is_computed_when_read_with_the_values_of_one_eager_pass(monkeypatch):
    """Deciding computes no pipeline score (the node never reads it); reading ``score`` gives
    bit for bit what ``compose`` gives over the whole stream at once."""
    from eventfx_core import pipeline_score
    from eventfx_core.pipeline import REMOVED_RANGE

    real, calls = pipeline_score.compose, []
    monkeypatch.setattr(pipeline_score, "compose", lambda *a: calls.append(len(a[0])) or real(*a))
    ev = random_events(7)
    ev = Events.from_arrays(ev.t, np.where(np.arange(len(ev)) % 41 == 0, W + 1, ev.x), ev.y, ev.p, W, H)
    out = run(make_pipeline(), [ev[i:i + 29] for i in range(0, len(ev), 29)])
    assert calls == []
    part = out[3].part(5, 20, "p")  # a slice (the node's fallback batches): its own lazy score
    assert part.score.dtype == np.float32 and calls == [15]
    calls.clear()
    graded = np.concatenate([d.graded for d in out])
    removed_by = np.concatenate([d.removed_by for d in out])
    eager = real(graded, removed_by, 2, REMOVED_RANGE)
    lazy = np.concatenate([d.score for d in out])
    assert calls == [len(d.keep) for d in out]  # once per message ...
    assert all(d.score is d.score for d in out) and len(calls) == len(out)  # ... then kept
    assert lazy.dtype == np.float32 and np.array_equal(lazy.view(np.uint32), eager.view(np.uint32))
    keep = np.concatenate([d.keep for d in out])
    assert np.array_equal(lazy >= np.float32(2 / 3), keep) and 0 < keep.mean() < 1
    assert (lazy[removed_by == REMOVED_RANGE] == 0).all() and (removed_by == REMOVED_RANGE).any()
    assert len(set(removed_by.tolist())) == 4  # kept, outside, and both stages removed some
    assert np.array_equal(part.score.view(np.uint32), out[3].score[5:20].view(np.uint32))


def test_out_of_range_events_are_dropped_and_counted():
    pipe = make_pipeline(())
    ev = Events.from_arrays([1, 2, 3], [1, W + 3, 2], [1, 1, H], [1, 1, 1], W, H)
    (d,) = pipe.push(ev)
    assert d.keep.tolist() == [True, False, False]
    assert pipe.stats.out_of_range == 2


def test_backwards_time_resets_state_wherever_the_cut_is():
    a = random_events(1, 100)
    b = random_events(2, 100)  # starts again near t=0: a camera restart
    stream = concat([a, b])
    p1, p2 = make_pipeline(), make_pipeline()
    whole = np.concatenate([d.keep for d in run(p1, [stream])])
    split = np.concatenate([d.keep for d in run(p2, [a, b])])
    assert np.array_equal(whole, split)
    assert p1.stats.resets == p2.stats.resets == 1
    # after the reset, b is decided as if the pipeline were fresh
    fresh = np.concatenate([d.keep for d in run(make_pipeline(), [b])])
    assert np.array_equal(split[len(a):], fresh)


def test_runtime_parameter_validation_keeps_old_value():
    pipe = make_pipeline()
    pipe.set_param("every_other.threshold", 0.7)
    assert pipe.runtime_params()["every_other.threshold"] == 0.7
    with pytest.raises(ConfigError):
        pipe.set_param("every_other.threshold", "high")
    with pytest.raises(ConfigError):
        pipe.set_param("window_majority.window_us", 5)
    assert pipe.runtime_params()["every_other.threshold"] == 0.7


def test_unknown_keys_and_stages_are_rejected():
    with pytest.raises(ConfigError, match="unknown key"):
        parse_params({"stages": [], "bogus": 1})
    with pytest.raises(ConfigError, match="unknown stage"):
        parse_params({"stages": ["nope"]})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_params({"stages": ["window_majority"], "window_majority": {"windw_us": 3}})
    with pytest.raises(ConfigError, match="input_type"):
        parse_params({"input_type": "std_msgs/msg/String"})


def test_sensor_size_mismatch_is_an_error():
    pipe = make_pipeline()
    with pytest.raises(Exception, match="pipeline was built"):
        pipe.push(Events.empty(W + 1, H))


def test_windows_close_on_the_stream_clock_when_earlier_stages_drop_everything():
    """A message whose survivors sit in window 0 is decided once the *stream* passes the
    window's end, even if every later event is dropped before the windowed stage."""
    pipe = make_pipeline(("every_other", "window_majority"))
    first = Events.from_arrays([10, 20], [3, 3], [2, 2], [1, 1], W, H)  # 2nd event survives
    assert pipe.push(first, tag="a") == []
    # later events, each at a fresh pixel, are all dropped by every_other (first at its pixel)
    later = Events.from_arrays([1500, 1600], [5, 6], [1, 1], [1, 1], W, H)
    out = pipe.push(later, tag="b")
    assert [d.tag for d in out] == ["a", "b"]
    assert out[0].keep.tolist() == [False, True]
    assert out[1].keep.tolist() == [False, False]
