"""Bounded latency: which route each message takes so that it is published within a budget.

A live stream gives the learned stages no choice of pace. Before a message is processed,
``LatencyBudget.route`` predicts when it would be published on each route, from how long the
message (and any message the learned pipeline still holds) has waited and from the measured
cost per input byte of each route (an exponential average of the worker's own timings):

- ``learned`` when waiting + learned cost fits the budget;
- else ``fallback`` (the classic filter, e.g. STCF) when waiting + fallback cost fits;
- else ``drop``: not even the fallback can publish it in time (counted, never silent).

Hysteresis: once on the fallback, the learned route resumes only when its prediction fits
``resume_fraction`` of the budget, so a load near the limit does not flip routes (and reset the
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
                 resume_fraction: float = 0.5):
        if budget_s <= 0:
            raise ValueError(f"latency budget must be > 0 s, got {budget_s}")
        self.budget_s = float(budget_s)
        self.clock = clock
        self.resume_fraction = float(resume_fraction)
        self.cost_per_byte: dict[str, float | None] = {LEARNED: None, FALLBACK: None}
        self.mode = LEARNED

    def predict(self, route: str, n_bytes: int) -> float:
        """Seconds a message of ``n_bytes`` would take on ``route`` (0 until first measured)."""
        c = self.cost_per_byte[route]
        return 0.0 if c is None else c * n_bytes

    def route(self, received_s: float, n_bytes: int, oldest_held_s: float | None = None) -> str:
        """``learned``, ``fallback`` or ``drop`` for a message received at ``received_s`` (clock
        seconds); ``oldest_held_s``: receive time of the oldest message the learned pipeline
        still holds (a windowed stage), which the learned route would publish after this one."""
        now = self.clock()
        waited = now - received_s
        waited_learned = max(waited, now - oldest_held_s) if oldest_held_s is not None else waited
        limit = self.budget_s if self.mode == LEARNED else self.budget_s * self.resume_fraction
        if waited_learned + self.predict(LEARNED, n_bytes) <= limit:
            self.mode = LEARNED
            return LEARNED
        if waited + self.predict(FALLBACK, n_bytes) <= self.budget_s:
            self.mode = FALLBACK
            return FALLBACK
        return DROP

    def observe(self, route: str, n_bytes: int, seconds: float) -> None:
        """What processing and publishing one message on ``route`` took."""
        if route not in self.cost_per_byte or n_bytes <= 0:
            return
        c = seconds / n_bytes
        old = self.cost_per_byte[route]
        self.cost_per_byte[route] = c if old is None else (1 - COST_ALPHA) * old + COST_ALPHA * c
