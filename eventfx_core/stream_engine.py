"""The one stream engine: event messages (or decoded events) in, keep decisions out.

The ROS node, ``eventfx denoise`` and ``eventfx replay``'s offline side all drive this object,
so the stream loop (decode -> pipeline -> re-encode, sensor changes, resets, counters) is
written once::

    engine = StreamEngine(cfg.pipeline, base_dir=cfg.base_dir, msgtype=EVENT_PACKET)
    for raw in messages:                          # raw CDR bytes of one event topic
        for d in engine.push_message(raw, tag=t):  # Decisions, in push order
            publish(engine.encode(d))              # the same message, only the kept events
    for d in engine.flush(): ...                   # end of stream

``push(events, tag)`` is the same without the codec (sources that decode themselves). With the
pipeline's ``threads: 2`` a message may finish on the pipeline's second thread after ``push``
returned: ``collect()`` returns those (a function given to ``set_on_ready`` is called from that
thread each time one may be ready; it must not block), and ``flush()`` waits for all of them.

Routes. Every message is decided by the configured pipeline (``LEARNED``) unless the caller
routes it to the ``FALLBACK`` pipeline (a classic filter such as STCF, for messages the learned
stages cannot reach in time; see ``eventfx_core.latency_budget``) or ``DROP``s it (counted, never
published). Order is kept: before a fallback message the learned pipeline is flushed, so the
messages it holds come out first; when the learned route resumes its state is reset (the events
it skipped never reached it), exactly as after a time jump. The fallback filter is kept warm: it
also sees every message the learned route decides (its decisions there are discarded), in
batches of up to ``SHADOW_BATCH_EVENTS`` events (one call per batch: every fallback stage is
split-invariant, so this decides as one call per message would) and always before it decides a
message itself, so when it takes over its state is current and its decisions equal the
fallback filter run on the whole stream (dropped and rejected messages aside). A caller that never routes
(offline: no ``fallback``) gets exactly the pipeline's decisions and runs no fallback filter.

Bad input never raises out of ``push_message``: it is counted, described in ``take_notes()``
(kind, text) for the caller to log (throttled), and the message is skipped.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import from_dict
from .errors import ConfigError, EventfxError
from .events import Events, concat
from .codecs.messages import TopicCodec, message_seq
from .pipeline import Decision, Pipeline
from .pipeline_config import PipelineConfig, runtime_names, set_runtime_param
from .stages import stage_class

LEARNED, FALLBACK, DROP = "learned", "fallback", "drop"
MAX_SENSOR = 65535
SHADOW_BATCH_EVENTS = 65_536  # learned-route events the warm fallback takes in one call (at most
#                               about 10 ms of catching up when it takes over)


@dataclass
class StreamCounters:
    """What the engine counts (the node reports them in ``/diagnostics``)."""

    messages_rejected: int = 0  # undecodable messages (garbage, unknown encoding, sizes, too big)
    messages_lost: int = 0  # gaps in the input sequence numbers
    messages_empty: int = 0  # messages without events (passed on empty)
    messages_fallback: int = 0  # messages decided by the fallback filter (latency budget)
    messages_dropped_late: int = 0  # messages not published: even the fallback could not keep up
    events_in: int = 0  # events of accepted messages
    events_out: int = 0  # events kept (decided so far)
    events_fallback: int = 0  # events decided by the fallback filter
    events_out_of_range: int = 0  # events outside the sensor (dropped)
    events_before_time: int = 0  # events before the first time reference (evt2/evt3, dropped)
    resets: int = 0  # pipeline resets after time went backwards
    sensor_changes: int = 0  # new pipeline state because the sensor size changed
    second_thread_busy_us: int = 0  # threads: 2: time the learned pipeline's second thread worked

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class MessageTag:
    """The pipeline tag of a message pushed with ``push_message``."""

    msg: Any  # the deserialised message
    decoded: Any  # codecs.Decoded
    raw: bytes  # its input bytes
    tag: Any  # what the caller passed (e.g. the receive time)
    route: str


def fallback_config(config: PipelineConfig, names: list[str]) -> PipelineConfig:
    """The fallback pipeline: the named event stages with the config's settings for them."""
    cfgs = {}
    for name in names:
        cls = stage_class(name)
        if hasattr(cls, "flush"):
            raise ConfigError(f"fallback: {name} is a windowed stage; the fallback must decide at once")
        cfgs[name] = config.stage_configs.get(name) or from_dict(cls.Config, {}, name)
    return PipelineConfig(stages=list(names), device="cpu", stage_configs=cfgs)


class StreamEngine:
    """One event topic's stream: codec, pipeline state, routes, resets and counters."""

    def __init__(self, config: PipelineConfig, base_dir: Path | None = None, *,
                 msgtype: str | None = None, ros_version: int = 2,
                 fallback: list[str] | None = None, max_message_bytes: int | None = None):
        self.config = replace(config, stage_configs=dict(config.stage_configs))
        self.base_dir = base_dir
        self.codec = TopicCodec(msgtype, ros_version=ros_version) if msgtype else None
        self.fallback_config = fallback_config(self.config, fallback) if fallback else None
        self.max_message_bytes = max_message_bytes
        self.counters = StreamCounters()
        self.builds = 0  # learned pipelines installed (first message, sensor changes, after errors)
        self.pipe: Pipeline | None = None
        self.sensor: tuple[int, int] | None = None  # of the stream so far
        self._fb: Pipeline | None = None
        self._fb_pending: list[Events] = []  # learned-route events the warm fallback has not seen
        self._fb_pending_n = 0
        self._route = LEARNED
        self._learned_stale = False  # the learned pipeline missed events: reset before its next use
        self._resets_seen = 0  # resets of self.pipe already counted
        self._busy_seen = 0  # its second thread's busy us already counted
        self._oor_seen = 0
        self._last_seq: int | None = None
        self._unread = 0  # messages skipped before their seq was read (not a DDS loss)
        self._unread_lock = threading.Lock()
        self._notes: list[tuple[str, str]] = []
        self._on_ready = None  # see set_on_ready

    # ------------------------------------------------------------------ decoded events
    def push(self, events: Events, tag: Any = None, route: str = LEARNED) -> list[Decision]:
        """Decide one message's events; returns the messages now fully decided, in order."""
        out: list[Decision] = []
        if route == DROP:
            self.counters.messages_dropped_late += 1
            return out
        if self.sensor is not None and self.sensor != events.sensor_size:
            self._note("sensor", f"sensor size changed {self.sensor} -> {events.sensor_size}: "
                                 "new pipeline state")
            self.counters.sensor_changes += 1
            out += self.flush()
            self._close_pipe()
            self._close_fallback()
        self.sensor = events.sensor_size
        fallback = route == FALLBACK and self.fallback_config is not None
        if self.pipe is None and not fallback:
            self.install(self.build(self.sensor))
        if self._fb is None and self.fallback_config is not None:
            self._fb = Pipeline(self.fallback_config, events.sensor_size, self.base_dir)
        n = len(events)
        self.counters.events_in += n
        if n == 0:
            self.counters.messages_empty += 1
        if fallback:
            if self._route != FALLBACK:
                if self.pipe is not None:  # what the learned stages hold comes out first, in order
                    out += self.pipe.flush()
                self._learned_stale = True
            self._route = FALLBACK
            self._warm_fallback()
            self.counters.messages_fallback += 1
            self.counters.events_fallback += n
            resets, oor = self._fb.stats.resets, self._fb.stats.out_of_range
            out += self._fb.push(events, tag)
            self.counters.resets += self._fb.stats.resets - resets
            self.counters.events_out_of_range += self._fb.stats.out_of_range - oor
        else:
            if self._learned_stale:
                self.pipe.reset()
                self._learned_stale = False
            self._route = LEARNED
            out += self.pipe.push(events, tag)
            self._count_pipe()
            if self._fb is not None:  # keep the fallback warm (its decisions here are not used)
                self._fb_pending.append(events)
                self._fb_pending_n += n
                if self._fb_pending_n >= SHADOW_BATCH_EVENTS:
                    self._warm_fallback()
        return self._counted(out)

    def _warm_fallback(self) -> None:
        """Bring the fallback's state up to date with the learned route's events."""
        if self._fb_pending:
            self._fb.push(concat(self._fb_pending) if len(self._fb_pending) > 1 else self._fb_pending[0])
            self._fb_pending, self._fb_pending_n = [], 0

    def build(self, sensor: tuple[int, int]) -> Pipeline:
        """A new learned pipeline for ``sensor`` (loads checkpoints: slow). Touches no engine
        state, so a caller may build in another thread while the fallback route runs."""
        return Pipeline(self.config, sensor, self.base_dir)

    def install(self, pipe: Pipeline) -> bool:
        """Use ``pipe`` (from ``build``) as the learned pipeline; False when the stream's sensor
        changed meanwhile or one is installed already (then ``pipe`` is closed, unused)."""
        if self.pipe is not None or pipe.sensor != self.sensor:
            pipe.close()  # no thread of it is left behind
            return False
        self.builds += 1
        self.pipe = pipe
        pipe.set_on_ready(self._on_ready)
        self._resets_seen = self._oor_seen = self._busy_seen = 0
        self._learned_stale = False
        return True

    def prepare(self, sensor: tuple[int, int]) -> None:
        """Build the learned pipeline for ``sensor`` now (before the first message)."""
        self.sensor = (int(sensor[0]), int(sensor[1]))
        self.install(self.build(self.sensor))

    def flush(self) -> list[Decision]:
        """End of stream: decide everything still held (state is kept)."""
        return self._drain("flush")

    def collect(self) -> list[Decision]:
        """Messages the learned pipeline finished since ``push`` returned (``threads: 2``)."""
        return self._drain("collect")

    def _drain(self, method: str) -> list[Decision]:
        if self.pipe is None:
            return []
        out = getattr(self.pipe, method)()
        self._count_pipe()
        return self._counted(out)

    def set_on_ready(self, fn) -> None:
        """``fn()`` is called from the pipeline's second thread (``threads: 2``) whenever a
        message may have finished (then ``collect``); it must not block."""
        self._on_ready = fn
        if self.pipe is not None:
            self.pipe.set_on_ready(fn)

    def close(self) -> None:
        """End the pipelines' threads (the learned pipeline's second thread with ``threads: 2``,
        the stages' own); nothing is decided after."""
        self._close_pipe()
        self._close_fallback()

    def _close_pipe(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None

    def _close_fallback(self) -> None:
        if self._fb is not None:
            self._fb.close()
            self._fb = None
        self._fb_pending, self._fb_pending_n = [], 0

    def oldest_held(self) -> Any:
        """The caller's tag of the oldest message the learned pipeline still holds, or None."""
        t = self.pipe.oldest_held_tag() if self.pipe is not None else None
        return t.tag if isinstance(t, MessageTag) else t

    def held_messages(self) -> int:
        """How many accepted messages the learned pipeline holds, not yet returned."""
        return self.pipe.held_messages() if self.pipe is not None else 0

    def discard_state(self) -> None:
        """Forget the pipelines (after an unexpected error left them half-updated)."""
        self._close_pipe()
        self._close_fallback()
        self.sensor = None
        self._route = LEARNED

    def _count_pipe(self) -> None:
        pipe = self.pipe
        if pipe.stats.resets > self._resets_seen:
            self.counters.resets += pipe.stats.resets - self._resets_seen
            self._note("reset", "time went backwards: pipeline state reset")
        if pipe.stats.out_of_range > self._oor_seen:
            n = pipe.stats.out_of_range - self._oor_seen
            self.counters.events_out_of_range += n
            self._note("range", f"{n} events outside the {pipe.sensor[0]}x{pipe.sensor[1]} sensor dropped")
        self._resets_seen, self._oor_seen = pipe.stats.resets, pipe.stats.out_of_range
        busy = int(pipe.stats.second_thread_s * 1e6)
        self.counters.second_thread_busy_us += busy - self._busy_seen
        self._busy_seen = busy

    def _counted(self, decisions: list[Decision]) -> list[Decision]:
        for d in decisions:
            self.counters.events_out += int(np.count_nonzero(d.keep))
        return decisions

    # ------------------------------------------------------------------ messages (bytes)
    def push_message(self, raw: bytes, tag: Any = None, route: str = LEARNED) -> list[Decision]:
        """Deserialise, check and decode one message, then ``push`` it; decisions carry a
        ``MessageTag``. A bad message is counted and skipped (see ``take_notes``)."""
        item = self._read(raw, tag, route)
        if item is None:
            return []
        return self.push(item.decoded.events, item, route)

    def push_fallback_batch(self, items: list[tuple[bytes, Any]]) -> list[Decision]:
        """Several queued messages ``(raw, tag)`` through the fallback at once: one filter call
        over their events (the same decisions as one call each: every stage is split-invariant),
        so a backlog clears faster. Returns one decision per accepted message, in order."""
        tags = [t for t in (self._read(raw, tag, FALLBACK) for raw, tag in items) if t is not None]
        if len(tags) < 2 or len({t.decoded.events.sensor_size for t in tags}) > 1 \
                or self.fallback_config is None:
            return [d for t in tags for d in self.push(t.decoded.events, t, FALLBACK)]
        evs = [t.decoded.events for t in tags]
        out = self.push(concat(evs), tags, FALLBACK)
        self.counters.messages_fallback += len(tags) - 1
        self.counters.messages_empty += sum(len(e) == 0 for e in evs) - (sum(len(e) for e in evs) == 0)
        joined = out.pop()  # the batch: the last decision (held learned messages come first)
        bounds = np.cumsum([0] + [len(e) for e in evs])
        for t, a, b in zip(tags, bounds[:-1], bounds[1:]):
            out.append(joined.part(int(a), int(b), t))
        return out

    def _read(self, raw: bytes, tag: Any, route: str) -> MessageTag | None:
        """Checks, seq tracking and decoding of one message; None when it is not pushed."""
        codec = self.codec
        if self.max_message_bytes is not None and len(raw) > self.max_message_bytes:
            self.note_unread()
            return self._reject(f"{len(raw)} bytes is over max_message_bytes ({self.max_message_bytes})")
        try:
            msg = codec.deserialize(raw)
        except EventfxError as exc:
            self.note_unread()
            return self._reject(str(exc))
        self._track_seq(message_seq(msg))
        if route == DROP:
            self.counters.messages_dropped_late += 1
            return None
        try:
            decoded = codec.decode(msg)
        except EventfxError as exc:
            return self._reject(str(exc))
        ev = decoded.events
        if decoded.n_out_of_range:
            self.counters.events_out_of_range += decoded.n_out_of_range
            self._note("range", f"{decoded.n_out_of_range} events outside the {ev.width}x{ev.height} "
                                "sensor dropped")
        self.counters.events_before_time += decoded.n_before_time
        if not (0 < ev.width <= MAX_SENSOR and 0 < ev.height <= MAX_SENSOR):
            return self._reject(f"invalid sensor size {ev.width}x{ev.height}")
        return MessageTag(msg, decoded, raw, tag, route)

    def encode(self, d: Decision) -> bytes:
        """The output message of a decision from ``push_message``: the input bytes when nothing
        was removed, else the same message rewritten with the kept events."""
        t: MessageTag = d.tag
        if bool(d.keep.all()) and not t.decoded.n_out_of_range and not t.decoded.n_before_time:
            return t.raw
        return self.codec.serialize(self.codec.rewrite(t.msg, t.decoded, d.keep))

    def note_unread(self) -> None:
        """A message was skipped before its seq was read (e.g. dropped from a queue)."""
        with self._unread_lock:
            self._unread += 1

    def _track_seq(self, seq: int | None) -> None:
        if seq is None:
            return
        last, self._last_seq = self._last_seq, seq
        # A gap is a loss unless the missing messages arrived and were skipped unread.
        with self._unread_lock:
            unread, self._unread = self._unread, 0
        if last is not None and seq > last + 1 + unread:
            lost = seq - last - 1 - unread
            self.counters.messages_lost += lost
            self._note("lost", f"{lost} message(s) lost (seq {last} -> {seq})")

    def _reject(self, why: str) -> None:
        self.counters.messages_rejected += 1
        self._note("rejected", f"message rejected: {why}")

    def _note(self, kind: str, text: str) -> None:
        self._notes.append((kind, text))

    def take_notes(self) -> list[tuple[str, str]]:
        """What happened since the last call, as ``(kind, text)``; the caller logs (throttled)."""
        notes, self._notes = self._notes, []
        return notes

    # ------------------------------------------------------------------ run-time parameters
    def runtime_names(self) -> set[str]:
        return runtime_names(self.config)

    def set_param(self, dotted: str, value: Any) -> None:
        """Change a run-time parameter (``mamba.threshold``) now and for later pipelines;
        ``ConfigError`` (old value kept) when the name or value is invalid."""
        if self.pipe is not None:
            self.pipe.set_param(dotted, value)  # updates the stage and self.config
        else:
            set_runtime_param(self.config, dotted, value)

    # ------------------------------------------------------------------ start-up checks
    def check(self, sensor: tuple[int, int] = (64, 48)) -> None:
        """Build every stage once and run synthetic events through each on its own (a filter
        before it would remove them), so a bad checkpoint or stage set fails now and compiled
        kernels are ready before the first message."""
        n, rng = 256, np.random.default_rng(0)
        ev = Events.from_arrays(np.sort(rng.integers(0, 20_000, n)), rng.integers(0, sensor[0], n),
                                rng.integers(0, sensor[1], n), rng.integers(0, 2, n), *sensor)
        for cfg in (self.config, self.fallback_config):
            for name in (cfg.stages if cfg is not None else []):
                one = PipelineConfig(stages=[name], device=cfg.device,
                                     stage_configs={name: cfg.stage_configs[name]})
                pipe = Pipeline(one, sensor, self.base_dir)
                try:
                    pipe.push(ev)
                    pipe.flush()
                finally:
                    pipe.close()
