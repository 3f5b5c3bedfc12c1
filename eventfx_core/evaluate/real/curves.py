"""Operating points, the upper (ROC convex) hull of a parameter sweep, and comparisons at an
operating point. Axes as in DND21 (Guo and Delbruck, TPAMI 2022): tpr = share of real events
kept, fpr = share of injected noise kept = 1 - share of noise removed."""
from __future__ import annotations

import numpy as np

from ..metrics import auc


def point(keep: np.ndarray, is_signal: np.ndarray, settings: dict) -> dict:
    keep = np.asarray(keep, bool)
    n_sig, n_noise = int(is_signal.sum()), int((~is_signal).sum())
    kept = float(keep[is_signal].sum() / n_sig) if n_sig else float("nan")
    removed = float(1 - keep[~is_signal].sum() / n_noise) if n_noise else float("nan")
    return {"kept": kept, "removed": removed, "settings": settings}


def hull(points: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The upper hull (fpr, tpr) of the points with (0, 0) and (1, 1): what a sweep reaches,
    mixing neighbouring settings where that is better than any one setting."""
    xy = {(0.0, 0.0), (1.0, 1.0)}
    xy |= {(1 - p["removed"], p["kept"]) for p in points
           if np.isfinite(p["kept"]) and np.isfinite(p["removed"])}
    pts = sorted(xy)
    upper: list[tuple[float, float]] = []
    for q in pts:  # Andrew's monotone chain, upper part
        while len(upper) >= 2:
            (x1, y1), (x2, y2) = upper[-2], upper[-1]
            if (x2 - x1) * (q[1] - y1) - (y2 - y1) * (q[0] - x1) >= 0:
                upper.pop()
            else:
                break
        upper.append(q)
    a = np.array(upper)
    return a[:, 0], a[:, 1]


def removed_at(roc: tuple[np.ndarray, np.ndarray], kept: float) -> float:
    """Share of noise removed by a curve where it keeps ``kept`` of the real events (the
    lowest fpr at which tpr reaches ``kept``)."""
    fpr, tpr = np.asarray(roc[0], float), np.asarray(roc[1], float)
    fpr, tpr = np.maximum.accumulate(fpr), np.maximum.accumulate(tpr)
    i = int(np.searchsorted(tpr, kept, side="left"))
    if i >= len(tpr):
        return 0.0
    if i == 0 or tpr[i] == tpr[i - 1]:
        return float(1 - fpr[i])
    f = fpr[i - 1] + (fpr[i] - fpr[i - 1]) * (kept - tpr[i - 1]) / (tpr[i] - tpr[i - 1])
    return float(1 - f)


def roc_auc_of(roc: tuple[np.ndarray, np.ndarray]) -> float:
    return auc(np.asarray(roc[0], float), np.asarray(roc[1], float))
