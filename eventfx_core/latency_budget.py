"""Bounded latency: which route each message takes so that it is published within a budget.

A live stream gives the learned stages no choice of pace. Before a message is processed,
``LatencyBudget.route`` predicts when it would be published on each route, from how long the
message (and any message the learned pipeline still holds) has waited and from the measured
cost per input byte of each route (an exponential average of the worker's own timings):

- ``learned`` when waiting + learned cost fits the stages' hold (``hold_s``: what a windowed
  stage holds an event by design, e.g. the deflarer's window and look-ahead windows; no pace of
  the CPU removes it) plus ``learned_fraction`` of the rest of the budget (the rest is headroom:
  the messages queued behind it, scheduling and transport jitter);
- else ``fallback`` (the classic filter, e.g. STCF);
- ``drop`` only when the fallback cannot keep up: the queue behind the message (it included)
  would take the fallback, at its best measured pace, longer than the budget to clear, so the
  oldest message goes, counted.
  A message that is late for a passing reason (a stall, the first message building the
  pipeline) is still published, by the fallback, and counted as ``late``.

Hysteresis: once on the fallback, the learned route resumes only when its prediction fits
``resume_fraction`` of the budget (a smaller share), so a load near the limit does not flip routes (and reset the
learned state) every message. The clock is injectable, so tests drive overload deterministically.
Offline tools use no budget: every message takes the learned route (exact, split-invariant).
"""
from __future__ import annotations

import time
from typing import Callable

from .stream_engine import DROP, FALLBACK, LEARNED

COST_ALPHA = 0.2  # weight of the newest timing in the cost average


class LatencyBudget:
    """Route choice for one stream; ``observe`` feeds back what each message took."""

    def __init__(self, budget_s: float, clock: Callable[[], float] = time.monotonic,
                 learned_fraction: float = 0.5, resume_fraction: float = 0.25, hold_s: float = 0.0):
        if budget_s <= 0:
            raise ValueError(f"latency budget must be > 0 s, got {budget_s}")
        if not 0 <= hold_s < budget_s:
            raise ValueError(f"latency budget {budget_s * 1e3:g} ms must exceed the stages' hold "
                             f"({hold_s * 1e3:g} ms: windows they wait for by design)")
        self.budget_s = float(budget_s)
        self.hold_s = float(hold_s)
        self.clock = clock
        self.learned_fraction = float(learned_fraction)
        self.resume_fraction = float(resume_fraction)
        self.cost_per_byte: dict[str, float | None] = {LEARNED: None, FALLBACK: None}
        self.best_per_byte: dict[str, float | None] = {LEARNED: None, FALLBACK: None}
        self.mode = LEARNED

    def predict(self, route: str, n_bytes: int) -> float:
        """Seconds a message of ``n_bytes`` would take on ``route`` (0 until first measured)."""
        c = self.cost_per_byte[route]
        return 0.0 if c is None else c * n_bytes

    def route(self, received_s: float, n_bytes: int, oldest_held_s: float | None = None,
              queued_bytes: int = 0) -> str:
        """``learned``, ``fallback`` or ``drop`` for a message received at ``received_s`` (clock
        seconds); ``oldest_held_s``: receive time of the oldest message the learned pipeline
        still holds (a windowed stage), which the learned route would publish after this one;
        ``queued_bytes``: the messages waiting behind this one."""
        now = self.clock()
        waited = now - received_s
        waited_learned = max(waited, now - oldest_held_s) if oldest_held_s is not None else waited
        share = self.learned_fraction if self.mode == LEARNED else self.resume_fraction
        limit = self.hold_s + (self.budget_s - self.hold_s) * share
        if waited_learned + self.predict(LEARNED, n_bytes) <= limit:
            self.mode = LEARNED
            return LEARNED
        best = self.best_per_byte[FALLBACK]  # "cannot keep up" even at its best: drop the oldest
        if best is not None and best * (n_bytes + queued_bytes) > self.budget_s:
            return DROP
        self.mode = FALLBACK
        return FALLBACK

    def observe(self, route: str, n_bytes: int, seconds: float) -> None:
        """What processing and publishing one message on ``route`` took."""
        if route not in self.cost_per_byte or n_bytes <= 0:
            return
        c = seconds / n_bytes
        old = self.cost_per_byte[route]
        self.cost_per_byte[route] = c if old is None else (1 - COST_ALPHA) * old + COST_ALPHA * c
        best = self.best_per_byte[route]
        self.best_per_byte[route] = c if best is None else min(best, c)
        if route == FALLBACK and self.cost_per_byte[LEARNED] is not None:
            # The learned route is not measured while it is skipped: let its estimate relax
            # toward its best, so a passing stall does not keep it off for good (if the load is
            # still there, its next timing sends the stream back to the fallback).
            self.cost_per_byte[LEARNED] += COST_ALPHA * (self.best_per_byte[LEARNED] - self.cost_per_byte[LEARNED])
