"""The one pipeline object: ordered stages -> a keep decision for every event.

The ROS node and the offline CLI both drive it the same way, message by message:

    pipe = Pipeline(cfg.pipeline, sensor=(w, h), base_dir=cfg.base_dir)
    for msg in messages:
        for d in pipe.push(events_of(msg), tag=msg):   # Decisions, in push order
            write(d.tag, d.events[d.keep])
    for d in pipe.flush(): ...                          # end of stream

Event stages (filters, the Mamba denoiser) decide every event at once; windowed stages (the
voxel deflarer) decide when their window closes, so a message is handed back only once all
of its events are decided, and messages always come back in the order they were pushed.
Every stage sees only the events that the stages before it kept; an event stage may also hand
the first windowed stage its per-event P(flare) (the Mamba denoiser does; the deflarer can blend
it with its own flare share, ``deflare.blend``). Because all state lives in
the stages and every stage is split-invariant, cutting a stream into messages differently
never changes a decision.

Input hygiene, applied identically online and offline: events outside the sensor are
dropped and counted; an event earlier than the one before it (a looping bag, a camera
restart) flushes the windowed stages, resets every stage, and counts a reset (callers warn:
the node throttled, the CLI in its summary). Each ``Decision`` says which stage removed each
event (``removed_by``), for the node's live view, and a threshold-free score (``score``, see
``pipeline_score``: an event removed at stage i ranks below every event that reached stage i + 1,
then by the last stage's own score), whose threshold n/(n+1) is the keep decision. The score is
computed when first read (evaluate, realbench, ``eventfx denoise --scores``), never on the
node's path, which does not read it.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, EventfxError
from .events import Events, concat
from .pipeline_config import PipelineConfig, set_runtime_param
from . import pipeline_score
from .pipeline_thread import StepThread
from .stages import EventStage, WindowedStage, stage_class

log = logging.getLogger("eventfx.pipeline")
REMOVED_RANGE = 127  # Decision.removed_by of events outside the sensor
MAX_INFLIGHT_EVENTS = 32_768  # threads: 2: events the caller may run ahead of the second thread


class Decision:
    """One message's decisions. ``score`` is computed on first read from ``graded`` and
    ``removed_by`` (``pipeline_score.compose``, per event, so a slice of it equals it of a slice)."""

    def __init__(self, tag: Any, events: Events, keep: np.ndarray, score: np.ndarray | None = None,
                 removed_by: np.ndarray | None = None, *, graded: np.ndarray | None = None,
                 n_stages: int = 0):
        self.tag = tag  # whatever the caller pushed with the events (a message, an index)
        self.events = events  # the events as pushed
        self.keep = keep  # bool[n]
        self.removed_by = removed_by  # int8[n]: -1 kept, REMOVED_RANGE outside the sensor, else
        #                               the index in ``stages`` of the stage that removed it
        self.graded = graded  # float32[n]: the last score a stage gave each event (1: none did)
        self.n_stages = n_stages
        self._score = score

    @property
    def score(self) -> np.ndarray:
        """float32[n]: the pipeline score (``pipeline_score``: removed at stage i < reached stage
        i + 1, then by the last stage's own score); keep == score >= n/(n+1)."""
        if self._score is None:
            self._score = pipeline_score.compose(self.graded, self.removed_by, self.n_stages,
                                                 REMOVED_RANGE)
        return self._score

    @score.setter
    def score(self, value: np.ndarray) -> None:
        self._score = value

    def part(self, a: int, b: int, tag: Any) -> "Decision":
        """Events [a, b) as a decision of their own (the score stays uncomputed)."""
        def cut(arr):
            return None if arr is None else arr[a:b]

        return Decision(tag, self.events[a:b], self.keep[a:b], cut(self._score), cut(self.removed_by),
                        graded=cut(self.graded), n_stages=self.n_stages)


@dataclass
class PipelineStats:
    events_in: int = 0
    events_kept: int = 0
    out_of_range: int = 0  # events outside the sensor, dropped
    resets: int = 0  # time went backwards
    stage_seconds: dict[str, float] = field(default_factory=dict)  # compute time per stage
    second_thread_s: float = 0.0  # threads: 2: time the second thread worked


@dataclass
class _Pending:
    tag: Any
    events: Events
    keep: np.ndarray  # final decisions so far (False until decided True)
    score: np.ndarray
    removed_by: np.ndarray
    first_id: int  # global id of this message's first event
    undecided: int  # events still inside a windowed stage
    running: int = 0  # segments still on the second thread (threads: 2)


class Pipeline:
    """Stateful chain of stages built from a ``PipelineConfig``."""

    def __init__(self, config: PipelineConfig, sensor: tuple[int, int], base_dir: Path | None = None,
                 threads: int | None = None):
        self.config = config
        self.sensor = (int(sensor[0]), int(sensor[1]))
        self.base_dir = base_dir
        self.stages = []
        for name in config.stages:
            cls = stage_class(name)
            stage = cls(config.stage_configs[name], sensor=self.sensor, device=config.device,
                        base_dir=base_dir)
            if not isinstance(stage, (EventStage, WindowedStage)):
                raise ConfigError(f"stage {name!r} implements neither process() nor push()/flush()")
            self.stages.append(stage)
        self.event_stages = [s for s in self.stages if not isinstance(s, WindowedStage)]
        self.windowed_stages = [s for s in self.stages if isinstance(s, WindowedStage)]
        if self.windowed_stages and self.stages.index(self.windowed_stages[0]) < len(self.event_stages):
            raise ConfigError("windowed stages (deflare) must come after all event stages in `stages`")
        self.stats = PipelineStats(stage_seconds={s.name: 0.0 for s in self.stages})
        self._pending: deque[_Pending] = deque()
        # per windowed stage: FIFO of (global ids, events) waiting for a decision
        self._fifo: list[deque[tuple[np.ndarray, Events]]] = [deque() for _ in self.windowed_stages]
        self._next_id = 0
        self._last_t: int | None = None
        self._lock = threading.Lock()  # _pending and its entries' counters (both threads use them)
        # threads: 2: the caller's thread runs the event stages before the split (and the front
        # half of a stage that has one: the Mamba stage's features); a second thread runs the
        # rest (the model, later event stages, the windowed stages), message after message.
        self.threads = int(getattr(config, "threads", 1) if threads is None else threads)
        if self.threads not in (1, 2):
            raise ConfigError(f"threads must be 1 or 2, got {self.threads}")
        self._front_n = len(self.event_stages)  # event stages run whole before the split
        self._split_stage = None  # the stage whose process_front ends the caller's part
        self._steps: StepThread | None = None
        if self.threads == 2:
            k = next((i for i, s in enumerate(self.event_stages) if hasattr(s, "process_front")), None)
            if k is not None:
                self._front_n, self._split_stage = k, self.event_stages[k]
            if k is not None or self.windowed_stages:  # else nothing to overlap: one thread
                self._steps = StepThread(MAX_INFLIGHT_EVENTS)
                weakref.finalize(self, self._steps.close)  # also at exit: ends before the interpreter

    # ------------------------------------------------------------------ public API
    def push(self, events: Events, tag: Any = None) -> list[Decision]:
        """Feed one message's events; returns the messages now fully decided, in order."""
        if events.sensor_size != self.sensor:
            raise EventfxError(f"events are {events.width}x{events.height}, the pipeline was "
                               f"built for {self.sensor[0]}x{self.sensor[1]}")
        n = len(events)
        self.stats.events_in += n
        keep = np.zeros(n, bool)
        score = np.ones(n, np.float32)  # the last graded score (pipeline_score); 1 until a stage grades
        removed_by = np.full(n, -1, np.int8)
        entry = _Pending(tag, events, keep, score, removed_by, self._next_id, 0)
        self._next_id += n
        with self._lock:
            self._pending.append(entry)
        inside = (events.x < self.sensor[0]) & (events.y < self.sensor[1])
        n_out = n - np.count_nonzero(inside)
        if n_out:
            self.stats.out_of_range += int(n_out)
            score[~inside] = 0.0
            removed_by[~inside] = REMOVED_RANGE
        # Split at backwards jumps in time: each segment runs on one continuous clock.
        t = events.t
        back = np.flatnonzero(t[1:] < t[:-1]) + 1 if n > 1 else np.empty(0, np.int64)
        starts = [0, *back.tolist()]
        ends = [*back.tolist(), n]
        for a, b in zip(starts, ends):
            if a == b:
                continue
            if self._last_t is not None and t[a] < self._last_t:
                self._reset_for_backwards(self._last_t, int(t[a]))
            self._last_t = int(t[b - 1])
            self._run_segment(entry, a, b, inside[a:b])
        return self._pop_ready()

    def collect(self) -> list[Decision]:
        """The messages decided since the last call, in order: with ``threads: 2`` the second
        thread finishes messages after ``push`` returned (see ``set_on_ready``). Call it from the
        thread that calls ``push`` (the node's worker does): a message is queued before its work
        is counted as running, so a ``collect`` racing a ``push`` could see it too early."""
        if self._steps is not None:
            self._steps.check()
        return self._pop_ready()

    def set_on_ready(self, fn) -> None:
        """``fn()`` is called (on the second thread) each time it has run everything queued,
        so a consumer can ``collect``; no effect with one thread (``push`` returns everything)."""
        if self._steps is not None:
            self._steps.on_done = fn

    def flush(self) -> list[Decision]:
        """Decide everything still buffered (end of stream); state is kept."""
        self._drain()
        self._flush_windowed()
        return self._pop_ready()

    def reset(self) -> None:
        """Forget all stage state (pending messages are decided first by ``flush``)."""
        self._drain()
        self._flush_windowed()
        for s in self.stages:
            s.reset()
        self._last_t = None

    def close(self) -> None:
        """End the second thread (after what it holds) and every stage's own threads (the Mamba
        stage's ``threads: 2`` pool); the pipeline is not used afterwards."""
        if self._steps is not None:
            self._steps.close()
        for s in self.stages:
            if hasattr(s, "close"):
                s.close()

    def held_messages(self) -> int:
        """How many pushed messages have not been returned yet."""
        with self._lock:
            return len(self._pending)

    def oldest_held_tag(self) -> Any:
        """The tag of the oldest message not yet fully decided (None when nothing is held)."""
        with self._lock:
            return self._pending[0].tag if self._pending else None

    def runtime_params(self) -> dict[str, Any]:
        """The parameters changeable while running, as ``{"stage.field": value}``."""
        out = {}
        for s in self.stages:
            for name in getattr(s, "RUNTIME_PARAMS", ()):
                out[f"{s.name}.{name}"] = getattr(s.config, name)
        return out

    def set_param(self, dotted: str, value: Any) -> None:
        """Change a run-time parameter such as ``mamba.threshold``; ``ConfigError`` with the
        reason (and the old value kept) when the name or value is invalid."""
        new = set_runtime_param(self.config, dotted, value)
        next(s for s in self.stages if s.name == dotted.partition(".")[0]).config = new

    # ------------------------------------------------------------------ internals
    def _reset_for_backwards(self, last_t: int, t: int) -> None:
        # Counted in stats.resets; callers report it (the node throttled, the CLI in its summary).
        log.debug("time went backwards (%d -> %d us): resetting the pipeline state", last_t, t)
        self.stats.resets += 1
        self.reset()

    def _run_segment(self, entry: _Pending, a: int, b: int, inside: np.ndarray) -> None:
        """Run the steps before the split on events [a, b) of ``entry`` here, the rest here too
        or, with a second thread, there (queued behind the messages before)."""
        if inside.all():  # a slice: no copy of the events while no stage removes one
            sel: slice | np.ndarray = slice(a, b)
            ev = entry.events if b - a == len(entry.events) else entry.events[a:b]
        else:
            sel = np.flatnonzero(inside) + a
            ev = entry.events[sel]
        sel, ev, flare = self._event_stages(entry, sel, ev, None, 0, self._front_n)
        front, front_s = None, 0.0
        if self._split_stage is not None and len(ev):
            t0 = time.perf_counter()
            front = self._split_stage.process_front(ev)
            front_s = time.perf_counter() - t0
        if self._steps is None:
            self._finish_segment(entry, sel, ev, flare, front, front_s, self._last_t)
            return
        with self._lock:
            entry.running += 1
        self._steps.submit(len(ev), self._finish_segment, entry, sel, ev, flare, front, front_s,
                           self._last_t)

    def _finish_segment(self, entry: _Pending, sel, ev: Events, flare, front, front_s: float,
                        t_last: int) -> None:
        """The steps after the split: the back half of the split stage, the later event stages,
        then the windowed stages, which also learn that the stream reached ``t_last``."""
        t0 = time.perf_counter()
        k = self._front_n
        if self._split_stage is not None:
            k += 1
            if len(ev):
                t0 = time.perf_counter()
                res = self._split_stage.process_back(ev, front)
                self.stats.stage_seconds[self._split_stage.name] += front_s + time.perf_counter() - t0
                sel, ev, flare = self._apply(entry, self._split_stage, res, sel, ev, flare)
        sel, ev, flare = self._event_stages(entry, sel, ev, flare, k, len(self.event_stages))
        if not self.windowed_stages:
            entry.keep[sel] = True
        elif len(ev):
            with self._lock:
                entry.undecided += len(ev)
            ids = np.arange(sel.start, sel.stop) if isinstance(sel, slice) else sel
            self._feed_windowed(0, entry.first_id + ids, ev, flare)
        self._advance_windowed(t_last)
        if self._steps is not None:
            self.stats.second_thread_s += time.perf_counter() - t0
            with self._lock:
                entry.running -= 1

    def _event_stages(self, entry: _Pending, sel, ev: Events, flare, i: int, j: int):
        """Event stages i..j-1 on ``ev`` (the events ``sel`` of ``entry``); the survivors."""
        for stage in self.event_stages[i:j]:
            if len(ev) == 0:
                break
            t0 = time.perf_counter()
            res = stage.process(ev)
            self.stats.stage_seconds[stage.name] += time.perf_counter() - t0
            sel, ev, flare = self._apply(entry, stage, res, sel, ev, flare)
        return sel, ev, flare

    def _apply(self, entry: _Pending, stage, res, sel, ev: Events, flare):
        """Record one stage's result on ``entry``; the survivors (``sel``, events, P(flare))."""
        if res.score is not None:
            entry.score[sel] = res.score
        if res.flare is not None:
            flare = np.asarray(res.flare, np.float32)
        kept = np.asarray(res.keep, bool)
        if not kept.all():
            if isinstance(sel, slice):
                sel = np.arange(sel.start, sel.stop)
            entry.removed_by[sel[~kept]] = self.stages.index(stage)
            sel, ev = sel[kept], ev[kept]
            flare = None if flare is None else flare[kept]
        return sel, ev, flare

    def _feed_windowed(self, j: int, ids: np.ndarray, ev: Events,
                       flare: np.ndarray | None = None) -> None:
        stage = self.windowed_stages[j]
        self._fifo[j].append((ids, ev))
        t0 = time.perf_counter()
        decided = np.asarray(stage.push(ev, flare), bool)
        self.stats.stage_seconds[stage.name] += time.perf_counter() - t0
        self._apply_windowed(j, decided)

    def _apply_windowed(self, j: int, decided: np.ndarray) -> None:
        """Pop ``len(decided)`` events from stage j's FIFO; pass the kept ones on."""
        k = len(decided)
        if k == 0:
            return
        ids_parts, ev_parts, need = [], [], k
        fifo = self._fifo[j]
        while need:
            ids, ev = fifo[0]
            if len(ids) <= need:
                fifo.popleft()
                ids_parts.append(ids)
                ev_parts.append(ev)
                need -= len(ids)
            else:
                ids_parts.append(ids[:need])
                ev_parts.append(ev[:need])
                fifo[0] = (ids[need:], ev[need:])
                need = 0
        ids = np.concatenate(ids_parts)
        self._decide(ids[~decided], False, self.stages.index(self.windowed_stages[j]))
        if j + 1 < len(self.windowed_stages):
            kept_ids = ids[decided]
            if len(kept_ids):
                self._feed_windowed(j + 1, kept_ids, concat(ev_parts)[decided])
        else:
            self._decide(ids[decided], True)

    def _decide(self, ids: np.ndarray, value: bool, stage_index: int = -1) -> None:
        if len(ids) == 0:
            return
        with self._lock:
            firsts = np.fromiter((p.first_id for p in self._pending), np.int64, len(self._pending))
            which = np.searchsorted(firsts, ids, side="right") - 1
            for w in np.unique(which):
                entry = self._pending[int(w)]
                local = ids[which == w] - entry.first_id
                entry.keep[local] = value
                if not value:
                    entry.removed_by[local] = stage_index
                entry.undecided -= len(local)

    def _advance_windowed(self, t_us: int) -> None:
        """Tell the windowed stages how far the stream has come, so a window closes on time
        even when the stages before it dropped every later event (sparse survivors)."""
        for j, stage in enumerate(self.windowed_stages):
            t0 = time.perf_counter()
            decided = np.asarray(stage.advance(t_us), bool)
            self.stats.stage_seconds[stage.name] += time.perf_counter() - t0
            self._apply_windowed(j, decided)

    def _drain(self) -> None:
        """Wait until the second thread has done everything pushed (no-op with one thread)."""
        if self._steps is not None:
            self._steps.drain()

    def _flush_windowed(self) -> None:
        for j, stage in enumerate(self.windowed_stages):
            t0 = time.perf_counter()
            decided = np.asarray(stage.flush(), bool)
            self.stats.stage_seconds[stage.name] += time.perf_counter() - t0
            self._apply_windowed(j, decided)

    def _pop_ready(self) -> list[Decision]:
        out = []
        while True:
            with self._lock:
                if not self._pending or self._pending[0].undecided or self._pending[0].running:
                    break
                e = self._pending.popleft()
            self.stats.events_kept += int(np.count_nonzero(e.keep))
            out.append(Decision(e.tag, e.events, e.keep, removed_by=e.removed_by, graded=e.score,
                                n_stages=len(self.stages)))
        return out
