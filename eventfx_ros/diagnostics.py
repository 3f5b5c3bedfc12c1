"""Counters and timings of the denoise node, and their ``diagnostic_msgs/DiagnosticArray`` form.

``NodeStats`` is plain Python (thread-safe: the worker thread counts, the timer reports).
``report()`` returns the period figures (rates, kept fraction, latency p50/p99) and the
running totals as strings keyed by name, which is what a ``DiagnosticStatus`` carries;
``to_diagnostic_array`` wraps them, ``status_values`` reads them back (replay, tests).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

# Latency samples kept per report period (a ring: enough for p99 at 1 kHz messages).
LATENCY_SAMPLES = 4096

# Totals that mean something went wrong: a period in which one of them grew is reported WARN.
TROUBLE_COUNTERS = ("messages_lost", "messages_rejected", "queue_drops", "resets",
                    "events_out_of_range", "messages_dropped_late")
# Whole-run latency histogram: log-spaced bin edges from 10 us to 100 s (p50/p99 within 2 %).
_RUN_EDGES = np.geomspace(1e-5, 100.0, 801)


@dataclass
class _Totals:
    """What only the node sees; the stream engine counts the rest (``StreamCounters``: events,
    rejected and lost messages, resets, fallback), and ``report`` merges both."""

    messages_in: int = 0  # messages received (including rejected ones)
    messages_out: int = 0  # messages published on the output topic
    queue_drops: int = 0  # messages dropped because the worker queue was full
    messages_late: int = 0  # published later than the latency budget (a stall, the first message)
    worker_busy_us: int = 0  # time the worker spent decoding, filtering, encoding, publishing


@dataclass
class NodeStats:
    """What the node counts; ``report`` returns and restarts the period figures."""

    totals: _Totals = field(default_factory=_Totals)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _period_start: float = field(default_factory=time.monotonic)
    _period_in: int = 0
    _period_out: int = 0
    _period_msgs: int = 0
    _lat: np.ndarray = field(default_factory=lambda: np.zeros(LATENCY_SAMPLES), repr=False)
    _lat_n: int = 0
    _queue_max: int = 0
    _run_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(_RUN_EDGES) + 1, np.int64),
                                  repr=False)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.totals, name, getattr(self.totals, name) + n)

    def received(self) -> None:
        self.count("messages_in")

    def busy(self, seconds: float) -> None:
        with self._lock:
            self.totals.worker_busy_us += int(seconds * 1e6)

    def queue_depth(self, depth: int) -> None:
        with self._lock:
            self._queue_max = max(self._queue_max, depth)

    def decoded(self, n_events: int) -> None:
        with self._lock:
            self._period_in += n_events

    def published(self, n_events: int, latency_s: float | None) -> None:
        """One output message; ``latency_s`` None for the end-of-stream flush (not live)."""
        with self._lock:
            self.totals.messages_out += 1
            self._period_out += n_events
            self._period_msgs += 1
            if latency_s is None:
                return
            self._lat[self._lat_n % LATENCY_SAMPLES] = latency_s
            self._lat_n += 1
            self._run_hist[np.searchsorted(_RUN_EDGES, latency_s)] += 1

    def _run_quantile(self, q: float) -> float:
        """Whole-run latency quantile in ms (upper edge of its histogram bin), nan when empty."""
        total = int(self._run_hist.sum())
        if not total:
            return float("nan")
        i = int(np.searchsorted(np.cumsum(self._run_hist), q * total))
        return float(_RUN_EDGES[min(i, len(_RUN_EDGES) - 1)] * 1e3)

    def report(self, now: float | None = None, engine: dict | None = None) -> dict[str, float | int]:
        """Period figures since the last report plus the running totals (``engine``: the stream
        engine.s counters, which it alone keeps)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            dt = max(now - self._period_start, 1e-9)
            lat = self._lat[: min(self._lat_n, LATENCY_SAMPLES)]
            p50, p99 = (np.percentile(lat, [50, 99]) * 1e3) if lat.size else (float("nan"),) * 2
            out = {
                "period_s": dt,
                "input_event_rate_ev_s": self._period_in / dt,
                "output_event_rate_ev_s": self._period_out / dt,
                "output_message_rate_msg_s": self._period_msgs / dt,
                "kept_fraction": (self._period_out / self._period_in) if self._period_in else float("nan"),
                "latency_p50_ms": float(p50),
                "latency_p99_ms": float(p99),
                "queue_max": self._queue_max,
                "run_latency_p50_ms": self._run_quantile(0.50),  # every live message so far
                "run_latency_p99_ms": self._run_quantile(0.99),
                **vars(self.totals),
                **(engine or {}),
            }
            self._period_start, self._period_in, self._period_out = now, 0, 0
            self._period_msgs, self._lat_n, self._queue_max = 0, 0, 0
        return out


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def to_diagnostic_array(report: dict, stamp, name: str, hardware_id: str,
                        previous: dict | None = None):
    """A ``DiagnosticArray`` with one status: OK, or WARN when a trouble counter grew."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    grew = [k for k in TROUBLE_COUNTERS if report[k] > (previous or {}).get(k, 0)]
    status = DiagnosticStatus(
        level=DiagnosticStatus.WARN if grew else DiagnosticStatus.OK,
        name=name, hardware_id=hardware_id,
        message=("input trouble: " + ", ".join(grew)) if grew else "ok",
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in report.items()],
    )
    arr = DiagnosticArray(status=[status])
    arr.header.stamp = stamp
    return arr


def status_values(status) -> dict[str, float]:
    """The numeric key/values of a ``DiagnosticStatus`` (as written by ``to_diagnostic_array``)."""
    out = {}
    for kv in status.values:
        try:
            out[kv.key] = float(kv.value)
        except ValueError:
            pass
    return out
