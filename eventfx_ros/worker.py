"""The node's worker: a bounded queue filled by the executor thread, drained by one thread.

The executor thread only appends ``(raw bytes, receive time)`` (full: the oldest message is
dropped and ``on_drop`` is called); the worker thread hands each message to ``handle``. An
exception in ``handle`` is passed to ``on_error`` and the worker keeps going. ``poke()`` (from
any thread, e.g. the pipeline's second thread when it finished a message) makes the worker
thread call ``on_idle`` before its next message. No rclpy here.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable


class Worker:
    def __init__(self, handle: Callable[[bytes, int], None], maxlen: int,
                 on_drop: Callable[[], None], on_error: Callable[[Exception], None],
                 on_busy: Callable[[float], None] = lambda s: None,
                 on_idle: Callable[[], None] = lambda: None):
        self._handle, self._on_drop, self._on_error, self._on_busy = handle, on_drop, on_error, on_busy
        self._on_idle = on_idle
        self._poked = False
        self.maxlen = int(maxlen)
        self._queue: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._stopping = False
        self.queued_bytes = 0  # bytes of the messages waiting (the latency budget's backlog)
        self._thread = threading.Thread(target=self._run, name="eventfx_worker", daemon=True)
        self._thread.start()

    def put(self, raw: bytes) -> int:
        """Queue one message (executor thread); returns the queue depth."""
        now = time.monotonic_ns()
        with self._cv:
            if len(self._queue) >= self.maxlen:
                self.queued_bytes -= len(self._queue.popleft()[0])
                self._on_drop()
            self._queue.append((raw, now))
            self.queued_bytes += len(raw)
            self._cv.notify()
            return len(self._queue)

    def take_queued(self, max_items: int) -> list[tuple[bytes, int]]:
        """Take up to ``max_items`` waiting messages at once (worker thread: batch processing)."""
        with self._cv:
            out = [self._queue.popleft() for _ in range(min(max_items, len(self._queue)))]
            self.queued_bytes -= sum(len(raw) for raw, _ in out)
        return out

    def poke(self) -> None:
        """Have the worker thread call ``on_idle`` soon (any thread; waits only for the queue lock)."""
        with self._cv:
            self._poked = True
            self._cv.notify()

    def stop(self, timeout_s: float) -> None:
        """Process what is queued, then end the thread (bounded wait)."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping and not self._poked:
                    self._cv.wait()
                poked, self._poked = self._poked, False
                item = self._queue.popleft() if self._queue else None
                if item is not None:
                    self.queued_bytes -= len(item[0])
                elif not poked:
                    return  # stopping, nothing queued
            if poked:
                self._call(self._on_idle)
            if item is not None:
                self._call(self._handle, *item)

    def _call(self, fn: Callable, *args) -> None:
        t0 = time.perf_counter()
        try:
            fn(*args)
        except Exception as exc:  # never let one message stop the node
            self._on_error(exc)
        finally:
            self._on_busy(time.perf_counter() - t0)
