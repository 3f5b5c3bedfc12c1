"""``threads: 2``: the pipeline's later steps on a second thread decide exactly as one thread.

The oracle is the plain single-thread pipeline (``threads: 1``) on the same stream: the same
keep decisions, scores and removing stage for every event, however the stream is cut, with
results collected while pushing (``collect``) or at the end; messages come back in order, each
once. Then the mechanics: a split stage's halves, time jumps, errors on the second thread, the
bounded queue and shutdown.
"""
import gc
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core import stages as stages_mod
from eventfx_core.events import Events, concat
from eventfx_core.io import Packet, open_source
from eventfx_core.pipeline import Pipeline
from eventfx_core.pipeline_config import load_denoise_config, parse_params
from eventfx_core.pipeline_thread import StepThread
from eventfx_core.stages import StageResult

REPO = Path(__file__).resolve().parents[1]
DEMO_BAG = REPO / "data" / "demo" / "emlb_demo_evt3"
W, H = 16, 8


def run(pipe: Pipeline, parts, collect_every: int = 0):
    """Push ``parts`` (tags 0..n-1), collecting on the way every ``collect_every`` messages."""
    out = []
    for i, p in enumerate(parts):
        out += pipe.push(p, tag=i)
        if collect_every and i % collect_every == 0:
            out += pipe.collect()
    out += pipe.flush()
    assert [d.tag for d in out] == list(range(len(parts)))  # in order, each message once
    pipe.close()
    return (np.concatenate([d.keep for d in out]), np.concatenate([d.score for d in out]),
            np.concatenate([d.removed_by for d in out]))


def cut(stream: Events, rng, n_cuts: int) -> list[Events]:
    bounds = [0, *np.sort(rng.choice(np.arange(1, len(stream)), n_cuts, replace=False)).tolist(),
              len(stream)]
    return [stream[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def test_default_pipeline_on_two_threads_decides_as_on_one():
    cfg = load_denoise_config(REPO / "config" / "denoise.yaml")
    packets = [p.events for p in open_source(DEMO_BAG) if isinstance(p, Packet)][:120]  # 120 ms
    stream = concat(packets)
    sensor, base = stream.sensor_size, cfg.base_dir
    one = run(Pipeline(cfg.pipeline, sensor, base, threads=1), packets)
    assert 0.05 < one[0].mean() < 0.999  # the pipeline removes something, not everything
    assert len(set(one[2].tolist())) > 2  # ... by more than one stage
    two = Pipeline(cfg.pipeline, sensor, base, threads=2)
    assert two._steps is not None and two._split_stage is not None  # really split: Mamba's halves
    same_cuts = run(two, packets, collect_every=3)
    for a, b in zip(one, same_cuts):  # the same calls on the same inputs: bit-identical
        assert np.array_equal(a, b)
    rng = np.random.default_rng(1)
    for parts in (cut(stream, rng, 60), cut(stream, rng, 7)):
        keep, score, removed_by = run(Pipeline(cfg.pipeline, sensor, base, threads=2), parts, 2)
        assert np.array_equal(keep, one[0])
        assert np.array_equal(removed_by, one[2])
        np.testing.assert_allclose(score, one[1], atol=1e-4)  # model tiles fall differently


# ----------------------------------------------------------------------------- mechanics
class EveryOtherSplit:
    """Event stage with two halves: ``process_front`` computes each event's pixel (no state),
    ``process_back`` keeps every second event at each pixel (state across calls)."""

    name = "every_other_split"

    @dataclass
    class Config:
        pass

    def __init__(self, config, sensor, device="cpu", base_dir=None):
        self.config = config
        self.count = np.zeros(sensor[0] * sensor[1], np.int64)
        self.threads_seen: set[str] = set()

    def process_front(self, ev):
        return ev.y.astype(np.int64) * W + ev.x

    def process_back(self, ev, pixels):
        self.threads_seen.add(threading.current_thread().name)
        keep = np.zeros(len(ev), bool)
        for i, k in enumerate(pixels):
            keep[i] = self.count[k] % 2 == 1
            self.count[k] += 1
        return StageResult(keep, np.where(keep, 0.75, 0.25).astype(np.float32))

    def process(self, ev):
        return self.process_back(ev, self.process_front(ev))

    def reset(self):
        self.count[:] = 0


class HalfWindow:
    """Windowed stage: in each 500 us window keeps the events of the majority polarity."""

    name = "half_window"

    @dataclass
    class Config:
        fail_at_us: int = -1  # raise when a push reaches this time (error-path test)

    def __init__(self, config, sensor, device="cpu", base_dir=None):
        self.config = config
        self.buf = Events.empty(W, H)

    def _take(self, t_us):
        closed = self.buf.t // 500 < t_us // 500
        k = int(np.count_nonzero(closed))
        done, self.buf = self.buf[:k], self.buf[k:]
        win, keep = done.t // 500, np.zeros(k, bool)
        for w in np.unique(win):
            m = win == w
            keep[m] = done.p[m] == (1 if 2 * int(done.p[m].sum()) >= m.sum() else 0)
        return keep

    def push(self, ev, flare=None):
        if 0 <= self.config.fail_at_us <= (ev.t[-1] if len(ev) else -1):
            raise RuntimeError("half_window failed on purpose")
        self.buf = concat([self.buf, ev])
        return self._take(int(self.buf.t[-1]) if len(self.buf) else 0)

    def advance(self, t_us):
        return self._take(t_us)

    def flush(self):
        return self._take(np.iinfo(np.int64).max // 2)

    def reset(self):
        self.buf = Events.empty(W, H)


@pytest.fixture(autouse=True)
def register(monkeypatch):
    monkeypatch.setitem(stages_mod.REGISTRY, "every_other_split", f"{__name__}:EveryOtherSplit")
    monkeypatch.setitem(stages_mod.REGISTRY, "half_window", f"{__name__}:HalfWindow")


def small_pipeline(threads, stages=("every_other_split", "half_window"), **cfg):
    _, config = parse_params({"stages": list(stages), **cfg})
    return Pipeline(config, (W, H), threads=threads)


def random_stream(seed, n=600, restart_at=None):
    """Events on a 16x8 sensor, some outside it; with ``restart_at`` time jumps back there."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 30, n))
    if restart_at is not None:
        t[restart_at:] -= t[restart_at] - 5  # a camera restart
    return Events.from_arrays(t, rng.integers(0, W + 1, n), rng.integers(0, H, n),
                              rng.integers(0, 2, n), W, H)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 599), max_size=12),
       st.sampled_from([None, 250]), st.integers(0, 3))
def test_any_cut_on_two_threads_decides_as_one_thread(seed, cuts, restart_at, collect_every):
    ev = random_stream(seed, restart_at=restart_at)
    one = run(small_pipeline(1), [ev])
    bounds = [0, *sorted(set(cuts)), len(ev)]
    two_pipe = small_pipeline(2)
    two = run(two_pipe, [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])], collect_every)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)
    assert two_pipe.stats.resets == (restart_at is not None)


def test_the_back_half_runs_on_the_second_thread_and_close_ends_it():
    pipe = small_pipeline(2)
    run(pipe, [random_stream(0)[:300], random_stream(0)[300:]])
    assert pipe.stages[0].threads_seen == {"eventfx-pipeline"}
    assert not pipe._steps._thread.is_alive()  # run() closed it
    one = small_pipeline(1)
    run(one, [random_stream(0)])
    assert one.stages[0].threads_seen == {threading.current_thread().name}
    assert small_pipeline(2, stages=("stcf",))._steps is None  # nothing to overlap: one thread


def test_the_second_thread_starts_with_the_first_work_and_close_ends_it():
    before = threading.active_count()
    idle = small_pipeline(2)  # built, never pushed (e.g. a background build the node discards)
    assert idle._steps is not None and idle._steps._thread.ident is None
    assert threading.active_count() == before
    idle.close()
    assert idle._steps._thread.ident is None and threading.active_count() == before
    used = small_pipeline(2)
    used.push(random_stream(0))
    assert used._steps._thread.is_alive()
    used.flush()
    used.close()
    assert not used._steps._thread.is_alive() and threading.active_count() == before
    with pytest.raises(RuntimeError, match="closed"):
        used.push(random_stream(1))


def test_a_dropped_pipeline_ends_its_second_thread():
    pipe = small_pipeline(2)
    pipe.push(random_stream(4))
    pipe.flush()
    thread = pipe._steps._thread
    assert thread.is_alive()
    del pipe
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_an_error_on_the_second_thread_reaches_the_caller():
    pipe = small_pipeline(2, half_window={"fail_at_us": 3000})
    with pytest.raises(RuntimeError, match="on purpose"):
        ev = random_stream(3)
        for a in range(0, len(ev), 50):
            pipe.push(ev[a:a + 50])
        pipe.flush()
    with pytest.raises(RuntimeError, match="on purpose"):  # the state is broken: it stays raised
        pipe.collect()
    pipe.close()


@pytest.mark.parametrize("fail", [False, True])
def test_eventfx_denoise_ends_the_second_thread_also_after_an_error_mid_file(tmp_path, capsys, fail):
    from conftest import random_raw, run_cli

    raw = random_raw(tmp_path / "in.raw", 5, 4000, t0=0, max_gap=40, width=W, height=H)
    before = {t for t in threading.enumerate() if t.name == "eventfx-pipeline"}
    argv = ["denoise", raw, tmp_path / "out.raw", "-q", "--set", "threads=2",
            "--set", "stages=[every_other_split, half_window]",
            "--set", f"half_window.fail_at_us={40_000 if fail else -1}"]
    if fail:  # a stage error on the second thread, mid-file: a bug, so a traceback, not exit 2
        with pytest.raises(RuntimeError, match="on purpose"):
            run_cli(capsys, *argv)
    else:
        assert run_cli(capsys, *argv)[0] == 0
    left = [t for t in threading.enumerate() if t.name == "eventfx-pipeline" and t not in before]
    assert left == []


def test_the_queue_is_bounded_and_runs_in_order():
    steps = StepThread(max_events=10)
    release, ran = threading.Event(), []
    steps.submit(8, lambda: (release.wait(5), ran.append(1)))
    second = threading.Thread(target=steps.submit, args=(8, ran.append, 2))
    second.start()
    time.sleep(0.2)
    assert second.is_alive() and ran == []  # 8 + 8 > 10 events: the caller waits
    release.set()
    second.join(5)
    steps.submit(100, ran.append, 3)  # over the bound alone: accepted once the queue is empty
    steps.drain()
    assert ran == [1, 2, 3]
    steps.close()
    assert not steps._thread.is_alive()
