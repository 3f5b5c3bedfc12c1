"""The pipeline score: one threshold-free per-event score for a chain of stages.

A pipeline decides in stages, and each event stage grades the events it sees (STCF: its
supporting neighbours / 8; BAF likewise; the Mamba stage: 1 - P(noise); hot_pixel and refractory:
0 for what they remove). The pipeline score ranks events lexicographically by

    (depth, graded)

  * ``depth``: how many stages the event passed (0 .. n for n stages; n = kept by all). An event
    removed by stage i (0-based) has depth i, so it ranks below every event that reached stage
    i + 1, whatever the scores.
  * ``graded``: the score of the last stage that graded the event, up to and including the stage
    that removed it. A stage that gives no score (the deflarer) ranks its removals, and an event
    kept by all stages is ranked, by the last score it got before (the model's, after it).

and maps that order into [0, 1) as ``(depth + (1 - 2**-10) * clip(graded, 0, 1)) / (n + 1)``
(float32; the 2**-10 keeps every level strictly below the next one). Events outside the sensor
score 0. Consequences:

  * ``score >= n / (n + 1)`` is exactly the pipeline's keep decision: the default operating point
    lies on the ROC curve of this score.
  * A threshold inside level n raises the last grading stage's threshold (the model's); a
    threshold inside level i < n lowers stage i's threshold and keeps, without asking the later
    stages, what it would then let through (for STCF: k lowered to ``ceil(8 * graded)``).
    So one threshold sweeps a family of real decision rules, not a mixture of ties at 0.
  * It depends only on per-event decisions and scores, so it is split-invariant like them.

(A composition in this spirit is the cascade of Viola and Jones, CVPR 2001: a candidate rejected
at stage i ranks below every candidate that reached stage i + 1.) ``compose`` is the vectorised
form that ``Pipeline`` applies to every decided message; ``reference_order`` is the plain
definition (a sort by tuples), its test oracle.
"""
from __future__ import annotations

import numpy as np

SQUASH = 1.0 - 2.0 ** -10  # graded scores fill [0, SQUASH] of each level's unit width


def compose(graded: np.ndarray, removed_by: np.ndarray, n_stages: int, outside: int) -> np.ndarray:
    """float32[n] pipeline scores from each event's last graded score and ``removed_by`` (the
    stage index that removed it, -1 kept by all, ``outside`` for events outside the sensor).
    float32 throughout, a few passes over the events (the node calls it on every message):
    every step rounds monotonically, so the order above is kept."""
    score = np.fmax(np.asarray(graded, np.float32), np.float32(0))  # NaN -> 0 (fmax skips NaN)
    np.fmin(score, np.float32(1), out=score)
    score *= np.float32(SQUASH)
    r = np.asarray(removed_by)
    score += r  # depth = r for removals; kept events (r = -1) get n + 1 more below
    score[r < 0] += np.float32(n_stages + 1)
    score[r == outside] = 0.0
    score /= np.float32(n_stages + 1)
    return score


def reference_order(graded, removed_by, n_stages: int, outside: int) -> list[int]:
    """Event indices from lowest to highest rank, by the definition: sort by the tuple
    (outside sensor first, depth, graded)."""
    keys = []
    for i, (g, r) in enumerate(zip(list(graded), list(removed_by))):
        r = int(r)
        depth = n_stages if r < 0 else r
        g = 0.0 if g != g else min(max(float(g), 0.0), 1.0)
        keys.append(((r != outside), depth if r != outside else -1, g if r != outside else 0.0, i))
    return [k[-1] for k in sorted(keys)]
