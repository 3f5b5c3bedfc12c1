"""Time going backwards: the one statement of the policy, and its message-level half.

Two kinds of backward time reach eventfx, and each is handled in one place:

1. **The stream restarts** (a camera driver restarted, a bag played with ``--loop``, a second
   recording on the same topic). The message sequence number or the header stamp goes back.
   ``StreamPosition`` (used by ``codecs.messages.TopicCodec.decode``) sees it first, before the
   payload is decoded: the stateful decoder is replaced by a fresh one, so a sensor clock that
   starts again is read as a new clock, not unwrapped as a counter rollover (EVT 3.0's 24-bit
   counter would otherwise add 16.78 s per loop; EVT 2.0's 34-bit one 4.77 h), and the decoded
   events carry ``Decoded.restarted``. A genuine rollover comes with seq + 1 and a later stamp,
   so it is unwrapped as before and is not a restart.
2. **Event time goes back** (whatever the cause, restart included): ``pipeline.Pipeline.push``
   splits the message at each backward step, decides what the windowed stages hold, resets
   every stage and counts it in ``stats.resets`` (the node's ``/diagnostics`` and
   ``eventfx denoise``'s summary report it). Stages never see time go back inside a pipeline.

Time that only moves forward needs no reset, however large the gap: every stage's state ages
with event time.
"""
from __future__ import annotations


class StreamPosition:
    """Where one topic's message stream is: the last sequence number and header stamp seen."""

    def __init__(self):
        self.seq: int | None = None
        self.stamp_ns: int | None = None
        self.restarts = 0  # how many times the stream restarted

    def observe(self, seq: int | None, stamp_ns: int | None) -> bool:
        """Record the next message's position; True when the stream restarted at it: its seq
        or its header stamp is smaller than the previous message's (equal is no restart:
        drivers that leave ``seq`` 0 or stamps unset never look restarted)."""
        restarted = ((seq is not None and self.seq is not None and seq < self.seq)
                     or (stamp_ns is not None and self.stamp_ns is not None
                         and stamp_ns < self.stamp_ns))
        if seq is not None:
            self.seq = seq
        if stamp_ns is not None:
            self.stamp_ns = stamp_ns
        self.restarts += int(restarted)
        return restarted
