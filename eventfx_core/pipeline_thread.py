"""The pipeline's second thread: the later steps of each message, in push order, bounded.

``Pipeline(threads=2)`` runs the first steps of a message (the classic filters, the features
of the Mamba stage) on the caller's thread and hands the rest (the model, the deflarer) to one
``StepThread``, so message n + 1's first steps overlap message n's last ones. Every stage is
still called by one thread at a time with the same inputs in the same order, so the decisions
are those of one thread (``test/test_pipeline_threads.py`` checks this over random cuts).

- Order: one worker thread runs the submitted calls one after another, in submission order.
- Bound: ``submit`` blocks while the calls queued or running hold ``max_events`` events or
  more (a call is always accepted when nothing else is queued), so the caller can run at most
  that far ahead and the memory of the steps' inputs (e.g. the features) stays bounded.
- Errors: an exception in a call is kept; later calls are skipped and every later ``submit``
  or ``drain`` raises it (the pipeline's state is then inconsistent: callers discard it).
- ``on_done``: called on the worker thread when it has run everything queued (e.g. to wake a
  consumer; while the caller keeps it busy, the caller collects results itself).
- Shutdown: ``close`` runs what is queued, then ends the thread (bounded wait). The thread
  starts with the first ``submit``: a ``StepThread`` that is never given work (a pipeline
  built but never used) starts none, and ``close`` leaves none.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable


class StepThread:
    def __init__(self, max_events: int, name: str = "eventfx-pipeline"):
        self.max_events = int(max_events)
        self.on_done: Callable[[], None] | None = None
        self._cv = threading.Condition()
        self._items: deque[tuple[int, Callable, tuple]] = deque()
        self._events = 0  # events of the calls queued or running
        self._error: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)  # see submit

    @property
    def busy(self) -> bool:
        """True while a call is queued or running."""
        return bool(self._items)

    def submit(self, n_events: int, fn: Callable, *args: Any) -> None:
        """Queue ``fn(*args)`` (working on ``n_events`` events); waits while the queue is full."""
        with self._cv:
            while self._items and self._events + n_events > self.max_events and self._error is None:
                self._cv.wait()
            self._raise()
            if self._closing:
                raise RuntimeError("the pipeline thread is closed")
            if self._thread.ident is None:  # the first call: start the thread now
                self._thread.start()
            self._items.append((n_events, fn, args))
            self._events += n_events
            self._cv.notify_all()

    def drain(self) -> None:
        """Wait until every submitted call has run; raise the error of a failed one."""
        with self._cv:
            while self._items and self._error is None:
                self._cv.wait()
            self._raise()

    def close(self, timeout_s: float = 10.0) -> None:
        """Run what is queued, then end the thread (waits at most ``timeout_s``)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def check(self) -> None:
        """Raise the error of a failed call, if any."""
        with self._cv:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._items and not self._closing:
                    self._cv.wait()
                if not self._items:
                    return
                n_events, fn, args = self._items[0]  # stays queued while it runs (drain waits)
                failed = self._error is not None
            try:
                if not failed:
                    fn(*args)
            except BaseException as exc:  # handed to the caller's thread by submit/drain
                with self._cv:
                    self._error = exc
            del fn, args  # hold no reference to the caller's objects while idle (its finalizer)
            with self._cv:
                self._items.popleft()
                self._events -= n_events
                self._cv.notify_all()
                idle = not self._items
            on_done = self.on_done if idle else None
            try:
                if on_done is not None:
                    on_done()
            except BaseException as exc:
                with self._cv:
                    self._error = self._error or exc
