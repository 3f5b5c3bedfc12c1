"""The stream engine and the latency budget, in process with an injected clock (no DDS).

A simulated worker drains messages that arrive faster than the "learned" route can process
them (costs are charged to a fake clock), so the routes taken are deterministic. What must
hold: every message is published once, in order, within the budget; the fallback's decisions
equal the fallback filter run on the whole stream (it is kept warm: no over-filtered start of a
fallback period), each learned run after a fallback equals a fresh learned pipeline (state
reset, nothing stale); the counters add up.
"""
import numpy as np
import pytest

from eventfx_core.codecs.messages import EVENT_PACKET, TopicCodec, build_message
from eventfx_core.events import Events
from eventfx_core.latency_budget import LatencyBudget
from eventfx_core.pipeline import Pipeline
from eventfx_core.pipeline_config import parse_params
from eventfx_core import stream_engine
from eventfx_core.stream_engine import DROP, FALLBACK, LEARNED, StreamEngine

W, H = 64, 48
PARAMS = {"stages": ["hot_pixel", "baf"], "baf": {"time_window_us": 3000},
          "stcf": {"time_window_us": 5000, "k": 1}}


def _messages(n_msgs=60, per=400, seed=0):
    rng = np.random.default_rng(seed)
    codec, out, evs = TopicCodec(EVENT_PACKET), [], []
    for i in range(n_msgs):
        t = i * 2000 + np.sort(rng.integers(0, 2000, per))
        # half the events in a moving blob (correlated), half uniform noise
        x = np.where(np.arange(per) % 2 == 0, (i + rng.integers(0, 4, per)) % W, rng.integers(0, W, per))
        y = np.where(np.arange(per) % 2 == 0, 20 + rng.integers(0, 4, per), rng.integers(0, H, per))
        ev = Events.from_arrays(t, x, y, rng.integers(0, 2, per), W, H)
        evs.append(ev)
        out.append(codec.serialize(build_message(EVENT_PACKET, ev, header_stamp_ns=int(t[0]) * 1000,
                                                 seq=i, encoding="evt3")))
    return out, evs


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _simulate(raws, cost_learned_s, cost_fallback_s, period_s, budget_s):
    """One worker: message i arrives at i * period_s; each route charges its cost to the clock."""
    _, pipe_cfg = parse_params(PARAMS)
    engine = StreamEngine(pipe_cfg, msgtype=EVENT_PACKET, fallback=["stcf"])
    clock = FakeClock()
    budget = LatencyBudget(budget_s, clock=clock)
    routes, published = [], []  # published: (message index, publish time, decision)
    for i, raw in enumerate(raws):
        arrival = i * period_s
        clock.now = max(clock.now, arrival)
        held = engine.oldest_held()
        queued = sum(len(raws[j]) for j in range(i + 1, len(raws)) if j * period_s <= clock.now)
        route = budget.route(arrival, len(raw), None if held is None else held, queued)
        routes.append(route)
        if i == 0:  # the node's first message goes to the fallback while the learned stages load
            budget.observe(FALLBACK, len(raw), cost_fallback_s)
        start = clock.now
        decisions = engine.push_message(raw, tag=arrival, route=route)
        cost = {LEARNED: cost_learned_s, FALLBACK: cost_fallback_s, DROP: 0.0}[route]
        clock.now += cost
        budget.observe(route, len(raw), clock.now - start)
        published += [(d.tag.tag, clock.now, d) for d in decisions]
    published += [(d.tag.tag, clock.now, d) for d in engine.flush()]
    return engine, routes, published


def _runs(routes):
    """[(route, first, last+1)] of consecutive equal routes."""
    out, start = [], 0
    for i in range(1, len(routes) + 1):
        if i == len(routes) or routes[i] != routes[start]:
            out.append((routes[start], start, i))
            start = i
    return out


@pytest.mark.parametrize("shadow_batch", [1000, 65_536])  # warm fallback fed every 3 messages / at takeover
def test_overload_goes_to_the_fallback_in_order_within_budget_and_resumes_cleanly(shadow_batch, monkeypatch):
    monkeypatch.setattr(stream_engine, "SHADOW_BATCH_EVENTS", shadow_batch)
    raws, evs = _messages()
    period, budget = 0.010, 0.100
    # learned: 20 ms per message at one every 10 ms (2x overload); fallback 1 ms
    engine, routes, published = _simulate(raws, 0.020, 0.001, period, budget)
    assert FALLBACK in routes and LEARNED in routes and DROP not in routes
    # every message once, in order, within the budget
    arrivals = [a for a, _, _ in published]
    assert arrivals == [i * period for i in range(len(raws))]
    assert all(t - a <= budget + 1e-9 for a, t, _ in published)
    c = engine.counters
    fb_idx = [i for i, r in enumerate(routes) if r == FALLBACK]
    assert c.messages_fallback == len(fb_idx)
    assert c.events_fallback == sum(len(evs[i]) for i in fb_idx) > 0
    assert c.events_in == sum(len(e) for e in evs) and c.messages_dropped_late == 0
    assert c.events_out == sum(int(d.keep.sum()) for _, _, d in published)
    # the fallback decides as the fallback filter on the whole stream; each learned run equals a
    # fresh learned pipeline over exactly its messages
    _, learned_cfg = parse_params(PARAMS)
    _, fb_cfg = parse_params({**PARAMS, "stages": ["stcf"]})
    whole = Pipeline(fb_cfg, (W, H))
    fb_whole = [d.keep for e in evs for d in whole.push(e)]
    keep = {round(a / period): d.keep for a, _, d in published}
    n_checked = n_cold_differs = 0
    for route, a, b in _runs(routes):
        got = np.concatenate([keep[i] for i in range(a, b)])
        if route == FALLBACK:
            assert np.array_equal(np.concatenate(fb_whole[a:b]), got), (route, a, b)
            cold = Pipeline(fb_cfg, (W, H))  # what a fallback started fresh would decide
            n_cold_differs += not np.array_equal(
                np.concatenate([d.keep for i in range(a, b) for d in cold.push(evs[i])]), got)
            continue
        fresh = Pipeline(learned_cfg, (W, H))
        ref = [d.keep for i in range(a, b) for d in fresh.push(evs[i], i)] + [d.keep for d in fresh.flush()]
        assert np.array_equal(np.concatenate(ref), got), (route, a, b)
        n_checked += a > 0
    assert n_checked >= 1, "the learned route never resumed after a fallback"
    assert n_cold_differs >= 1, "no fallback period where a cold start would differ: the check has no teeth"


def test_no_pressure_means_no_fallback_and_exact_offline_decisions():
    raws, evs = _messages(n_msgs=20)
    engine, routes, published = _simulate(raws, 0.001, 0.0005, 0.010, 0.050)
    assert set(routes) == {LEARNED} and engine.counters.messages_fallback == 0
    _, cfg = parse_params(PARAMS)
    pipe = Pipeline(cfg, (W, H))
    ref = [d.keep for e in evs for d in pipe.push(e)] + [d.keep for d in pipe.flush()]
    assert np.array_equal(np.concatenate(ref), np.concatenate([d.keep for _, _, d in published]))


def test_whole_messages_drop_only_when_even_the_fallback_is_too_late():
    raws, _ = _messages(n_msgs=30)
    # the fallback too takes longer than a message period: the backlog outgrows the budget
    engine, routes, published = _simulate(raws, 0.030, 0.015, 0.010, 0.050)
    # drops keep the queue within one budget of fallback work: latency stays bounded
    assert all(t - a <= 0.050 + 2 * 0.015 + 1e-9 for a, t, _ in published)
    c = engine.counters
    assert DROP in routes and c.messages_dropped_late == routes.count(DROP)
    assert c.messages_fallback == routes.count(FALLBACK) > 0
    arrivals = [a for a, _, _ in published]
    assert arrivals == sorted(arrivals) and len(arrivals) == len(raws) - routes.count(DROP)


def test_a_passing_stall_is_published_late_by_the_fallback_not_dropped():
    raws, _ = _messages(n_msgs=120, per=100)
    # the learned route costs 200 ms once (a stall at message 5), then the fallback clears the
    # backlog and the learned route resumes
    _, pipe_cfg = parse_params(PARAMS)
    engine = StreamEngine(pipe_cfg, msgtype=EVENT_PACKET, fallback=["stcf"])
    clock = FakeClock()
    budget = LatencyBudget(0.050, clock=clock)
    budget.observe(FALLBACK, len(raws[0]), 0.001)
    routes = []
    for i, raw in enumerate(raws):
        clock.now = max(clock.now, i * 0.005)
        queued = sum(len(raws[j]) for j in range(i + 1, len(raws)) if j * 0.005 <= clock.now)
        route = budget.route(i * 0.005, len(raw), engine.oldest_held(), queued)
        routes.append(route)
        engine.push_message(raw, tag=i, route=route)
        cost = 0.200 if i == 5 else (0.002 if route == LEARNED else 0.001)
        clock.now += cost
        budget.observe(route, len(raw), cost)
    assert DROP not in routes and routes[:6] == [LEARNED] * 6 and FALLBACK in routes
    assert routes[-1] == LEARNED  # caught up: the learned route resumed


def test_bad_messages_are_counted_not_raised():
    raws, evs = _messages(n_msgs=3)
    _, cfg = parse_params(PARAMS)
    engine = StreamEngine(cfg, msgtype=EVENT_PACKET, max_message_bytes=10**6)
    assert engine.push_message(b"\x00\x01garbage") == []
    out = engine.push_message(raws[2]) + engine.flush()
    assert engine.counters.messages_rejected == 1
    assert engine.counters.messages_lost == 0  # the garbage was unread: seq 2 after it is no loss
    assert len(out) == 1 and [k for k, _ in engine.take_notes()] == ["rejected"]
    assert engine.encode(out[0]) != raws[2] or out[0].keep.all()


def test_removed_by_names_the_stage():
    _, evs = _messages(n_msgs=10)
    _, cfg = parse_params(PARAMS)
    pipe = Pipeline(cfg, (W, H))
    ds = [d for e in evs for d in pipe.push(e)] + pipe.flush()
    rb = np.concatenate([d.removed_by for d in ds])
    keep = np.concatenate([d.keep for d in ds])
    assert np.array_equal(rb == -1, keep)
    assert set(np.unique(rb[~keep])) <= {0, 1} and (rb == 1).any()  # baf removed the noise
    # the first stage sees every event: what it removed in the chain, it removes alone
    _, cfg1 = parse_params({**PARAMS, "stages": ["hot_pixel"]})
    solo = Pipeline(cfg1, (W, H))
    keep1 = np.concatenate([d.keep for e in evs for d in solo.push(e)] + [d.keep for d in solo.flush()])
    assert np.array_equal(~keep1, rb == 0)
    with pytest.raises(ValueError):
        LatencyBudget(0)


def test_a_fallback_batch_decides_as_one_message_at_a_time():
    raws, evs = _messages(n_msgs=12)
    _, cfg = parse_params(PARAMS)
    one = StreamEngine(cfg, msgtype=EVENT_PACKET, fallback=["stcf"])
    batch = StreamEngine(cfg, msgtype=EVENT_PACKET, fallback=["stcf"])
    ref = [d for i, r in enumerate(raws) for d in one.push_message(r, tag=i, route=FALLBACK)]
    got = batch.push_fallback_batch([(r, i) for i, r in enumerate(raws[:5])]) \
        + batch.push_fallback_batch([(r, i + 5) for i, r in enumerate(raws[5:])])
    assert [d.tag.tag for d in got] == list(range(12))
    for a, b in zip(ref, got):
        assert np.array_equal(a.keep, b.keep) and one.encode(a) == batch.encode(b)
    assert batch.counters == one.counters


def test_two_pipeline_threads_take_the_same_routes_and_decisions_as_one():
    """``threads: 2`` (Mamba model and deflarer on a second thread): with the same routes, the
    messages come out once each, in order, with one thread's decisions, whether taken from
    ``push``, ``collect`` or ``flush``; switching to the fallback waits for the second thread."""
    raws, _ = _messages(n_msgs=40)
    routes = [LEARNED] * 12 + [FALLBACK] * 5 + [LEARNED] * 10 + ["batch"] + [LEARNED] * 10
    results = {}
    for threads in (1, 2):
        _, cfg = parse_params({"stages": ["stcf", "mamba", "deflare"], "threads": threads,
                               "stcf": {"time_window_us": 5000, "k": 1},
                               "deflare": {"allow_other_sensor": True}})
        engine = StreamEngine(cfg, msgtype=EVENT_PACKET, fallback=["stcf"])
        ready = []
        engine.set_on_ready(lambda: ready.append(1))
        out, i = [], 0
        for route in routes:
            if route == "batch":
                out += engine.push_fallback_batch([(raws[i], i), (raws[i + 1], i + 1), (raws[i + 2], i + 2)])
                i += 3
                continue
            out += engine.push_message(raws[i], tag=i, route=route)
            out += engine.collect()
            i += 1
        out += engine.flush()
        engine.close()
        assert [d.tag.tag for d in out] == list(range(len(raws)))
        assert (threads == 2) == (len(ready) > 0)
        results[threads] = (out, engine.counters.as_dict())
    (one, c1), (two, c2) = results[1], results[2]
    assert c1.pop("second_thread_busy_us") == 0 < c2.pop("second_thread_busy_us")
    assert c1 == c2 and c1["messages_fallback"] == 8
    for a, b in zip(one, two):
        assert np.array_equal(a.keep, b.keep) and np.array_equal(a.removed_by, b.removed_by)
    assert 0 < sum(int(d.keep.sum()) for d in one) < sum(len(d.keep) for d in one)


def test_a_pipeline_install_does_not_use_is_closed_and_leaves_no_thread():
    """The node builds a learned pipeline in the background; when the sensor changed meanwhile
    (or one is installed) ``install`` refuses it: it must not keep a thread alive."""
    raws, _ = _messages(n_msgs=3)
    _, cfg = parse_params({"stages": ["stcf", "deflare"], "threads": 2,
                           "deflare": {"allow_other_sensor": True}})
    engine = StreamEngine(cfg, msgtype=EVENT_PACKET)
    engine.prepare((W, H))
    spare = engine.build((W, H))
    assert spare._steps is not None and not spare._steps._thread.is_alive()  # no work: no thread
    assert engine.install(spare) is False  # one is installed already
    assert spare._steps._closing and not spare._steps._thread.is_alive()
    other = engine.build((W + 1, H))
    assert engine.install(other) is False and other._steps._closing  # another sensor
    out = [d for i, r in enumerate(raws) for d in engine.push_message(r, tag=i)] + engine.flush()
    assert len(out) == 3
    thread = engine.pipe._steps._thread
    assert thread.is_alive()
    engine.close()
    assert not thread.is_alive() and engine.pipe is None


def test_the_engine_path_computes_no_pipeline_score_until_read(monkeypatch):
    """The node's path (push, fallback batches, collect, encode, flush) never calls
    ``pipeline_score.compose``; a fallback batch's scores, read later, are bit for bit those
    of one message at a time."""
    from eventfx_core import pipeline_score

    real, calls = pipeline_score.compose, []
    monkeypatch.setattr(pipeline_score, "compose", lambda *a: calls.append(1) or real(*a))
    raws, _ = _messages(n_msgs=16)
    _, cfg = parse_params({**PARAMS, "threads": 2, "stages": ["hot_pixel", "baf", "deflare"],
                           "deflare": {"allow_other_sensor": True}})
    outs = []
    for batched in (False, True):
        engine = StreamEngine(cfg, msgtype=EVENT_PACKET, fallback=["stcf"])
        out = [d for i, r in enumerate(raws[:6]) for d in engine.push_message(r, tag=i)]
        out += engine.collect()
        if batched:
            out += engine.push_fallback_batch([(r, i + 6) for i, r in enumerate(raws[6:11])])
        else:
            out += [d for i, r in enumerate(raws[6:11]) for d in engine.push_message(r, i + 6, FALLBACK)]
        out += [d for i, r in enumerate(raws[11:]) for d in engine.push_message(r, tag=i + 11)]
        out += engine.flush()
        engine.close()
        for d in out:
            engine.encode(d)
        assert [d.tag.tag for d in out] == list(range(16))
        outs.append(out)
    assert calls == []
    for a, b in zip(*outs):
        assert np.array_equal(a.score.view(np.uint32), b.score.view(np.uint32))
        n = np.float32(a.n_stages)  # 3, or 1 for the fallback's messages
        assert np.array_equal(a.score >= n / (n + 1), a.keep)
    assert len(calls) == 32


def test_the_stages_hold_is_part_of_the_budget_not_a_reason_to_fall_back():
    """A windowed stage holds events by design (the deflarer: its window and look-ahead
    windows); a held message that has waited that long is on time, not late. Without the hold
    in the budget, a 60 ms hold against a 55 ms resume limit kept the stream on the fallback."""
    from eventfx_core.pipeline_config import load_denoise_config
    shipped = load_denoise_config(None).pipeline
    deflare = shipped.stage_configs["deflare"]
    assert shipped.hold_us() == deflare.window_us * (1 + deflare.lookahead_windows) > 0
    _, no_window = parse_params(PARAMS)
    assert no_window.hold_us() == 0
    clock = FakeClock()
    plain = LatencyBudget(0.220, clock=clock)
    held = LatencyBudget(0.220, clock=clock, hold_s=0.060)
    for b in (plain, held):
        b.observe(LEARNED, 1000, 0.005)
    clock.now = 0.120  # the oldest held message arrived 120 ms ago: 60 ms hold + 60 ms of work
    assert plain.route(0.119, 1000, oldest_held_s=0.0) == FALLBACK  # 125 ms > 110 ms
    assert held.route(0.119, 1000, oldest_held_s=0.0) == LEARNED  # <= 60 + 80 ms
    clock.now = 0.200  # truly late: both fall back
    assert held.route(0.199, 1000, oldest_held_s=0.0) == FALLBACK
    assert plain.mode == held.mode == FALLBACK
    clock.now = 0.090  # 90 + 5 ms: within the resume limit with the hold (60 + 40), never without (55)
    assert plain.route(0.089, 1000, oldest_held_s=0.0) == FALLBACK
    assert held.route(0.089, 1000, oldest_held_s=0.0) == LEARNED
    with pytest.raises(ValueError, match="must exceed the stages' hold"):
        LatencyBudget(0.050, hold_s=0.060)
