"""Keep-vs-remove metrics from per-label counts, and a numpy ROC / AUC.

Ground truth (``eventfx_core.labels``): signal and light source should be kept, noise and flare
removed. Everything is computed from ``LabelCounts`` (events and kept events per label), so
counts add up across archives.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..labels import FLARE, LABEL_NAMES, LIGHT_SOURCE, NOISE, SIGNAL


@dataclass
class LabelCounts:
    total: np.ndarray = field(default_factory=lambda: np.zeros(len(LABEL_NAMES), np.int64))
    kept: np.ndarray = field(default_factory=lambda: np.zeros(len(LABEL_NAMES), np.int64))

    def add(self, keep: np.ndarray, labels: np.ndarray) -> None:
        labels = np.asarray(labels, np.int64)
        if labels.size and labels.max() >= len(LABEL_NAMES):
            raise ValueError(f"label {labels.max()} out of range 0..{len(LABEL_NAMES) - 1}")
        self.total += np.bincount(labels, minlength=len(LABEL_NAMES))
        self.kept += np.bincount(labels[np.asarray(keep, bool)], minlength=len(LABEL_NAMES))


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b > 0 else float("nan")


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if (p + r) > 0 else (float("nan") if np.isnan(p) or np.isnan(r) else 0.0)


def keep_remove_metrics(c: LabelCounts) -> dict[str, float]:
    """Precision/recall/F1 of both decisions, and per-class kept/removed shares."""
    tot, kept = c.total, c.kept
    removed = tot - kept
    keep_cls = [SIGNAL, LIGHT_SOURCE]
    rm_cls = [NOISE, FLARE]
    keep_tp, keep_pred, keep_true = kept[keep_cls].sum(), kept.sum(), tot[keep_cls].sum()
    rm_tp, rm_pred, rm_true = removed[rm_cls].sum(), removed.sum(), tot[rm_cls].sum()
    out = {"events": int(tot.sum())}
    for name, tp, pred, true in (("keep", keep_tp, keep_pred, keep_true), ("remove", rm_tp, rm_pred, rm_true)):
        p, r = _ratio(tp, pred), _ratio(tp, true)
        out.update({f"{name}_precision": p, f"{name}_recall": r, f"{name}_f1": _f1(p, r)})
    out["noise_removed"] = _ratio(removed[NOISE], tot[NOISE])
    out["flare_removed"] = _ratio(removed[FLARE], tot[FLARE])
    out["signal_kept"] = _ratio(kept[SIGNAL], tot[SIGNAL])  # the background (scene) kept
    out["light_source_kept"] = _ratio(kept[LIGHT_SOURCE], tot[LIGHT_SOURCE])
    # Per removal class: recall = its share removed; precision = its share of the removed
    # events that are either it or a keep class (removing noise is not a false flare alarm).
    wrongly_removed = removed[keep_cls].sum()
    for name, cls in (("noise", NOISE), ("flare", FLARE)):
        p = _ratio(removed[cls], removed[cls] + wrongly_removed)
        out[f"{name}_precision"], out[f"{name}_f1"] = p, _f1(p, out[f"{name}_removed"])
    out["accuracy"] = _ratio(keep_tp + rm_tp, tot.sum())
    return out


def roc_curve(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): predicting positive when score >= threshold, thresholds from
    +inf down through every distinct score (ties are one step)."""
    score = np.asarray(score, np.float64)
    positive = np.asarray(positive, bool)
    order = np.argsort(-score, kind="stable")
    s, pos = score[order], positive[order]
    tps = np.cumsum(pos)
    fps = np.cumsum(~pos)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1] if len(s) else np.zeros(0, np.int64)
    P, N = max(int(pos.sum()), 0), max(int((~pos).sum()), 0)
    tpr = np.r_[0.0, tps[last] / P] if P else np.r_[0.0, np.full(len(last), np.nan)]
    fpr = np.r_[0.0, fps[last] / N] if N else np.r_[0.0, np.full(len(last), np.nan)]
    return fpr, tpr, np.r_[np.inf, s[last]]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve by the trapezoid rule (NaN if a class is absent)."""
    if len(fpr) < 2 or np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    return float(np.trapezoid(tpr, fpr))


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    return auc(*roc_curve(score, positive)[:2])
