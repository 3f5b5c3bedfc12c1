"""The node's worker: a bounded queue filled by the executor thread, drained by one thread.

The executor thread only appends ``(raw bytes, receive time)`` (full: the oldest message is
dropped and ``on_drop`` is called); the worker thread hands each message to ``handle``. An
exception in ``handle`` is passed to ``on_error`` and the worker keeps going. No rclpy here.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable


class Worker:
    def __init__(self, handle: Callable[[bytes, int], None], maxlen: int,
                 on_drop: Callable[[], None], on_error: Callable[[Exception], None],
                 on_busy: Callable[[float], None] = lambda s: None):
        self._handle, self._on_drop, self._on_error, self._on_busy = handle, on_drop, on_error, on_busy
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

    def stop(self, timeout_s: float) -> None:
        """Process what is queued, then end the thread (bounded wait)."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._cv.wait()
                if not self._queue:
                    return
                raw, recv_ns = self._queue.popleft()
                self.queued_bytes -= len(raw)
            t0 = time.perf_counter()
            try:
                self._handle(raw, recv_ns)
            except Exception as exc:  # never let one message stop the node
                self._on_error(exc)
            finally:
                self._on_busy(time.perf_counter() - t0)
