"""Deflarer metrics, after E-Deflare (Han et al., arXiv 2512.09016) plus event-level counts.

* ``chamfer``: symmetric Chamfer distance between the output and ground-truth event point
  sets of each window in (x px, y px, t / t_scale_us) space (t relative to the window
  start; by default 1 ms counts like 1 pixel), the mean of both directions' mean nearest
  distances, averaged over windows. Point sets above ``max_points`` are subsampled (seeded).
  E-Deflare's normalisation could not be checked here, so its 0.448 is not comparable.
* ``voxel_mse``: mean squared difference of the output and ground-truth voxel grids
  (the model's own grid encoding), averaged over windows.
* ``removal_f1`` / ``retention_f1``: our event-level stand-ins for E-Deflare's R-F1 / T-F1,
  whose exact definitions we could not retrieve. removal: positives = flare events, a
  detection = a dropped event. retention: positives = ground-truth events (label != 2),
  a detection = a kept event.
* ``flare_removed_pct``, ``signal_kept_pct``, ``noise_kept_pct``, ``light_kept_pct``: share
  of events of each label that the stage removed / kept.
"""
from __future__ import annotations

import numpy as np
import torch

from ..events import Events
from ..labels import FLARE, LIGHT_SOURCE, NOISE, SIGNAL
from .data import read_labelled
from .voxel import VoxelSpec, events_to_voxel
from .window import window_index


def _points(ev: Events, t0: int, t_scale_us: float) -> torch.Tensor:
    return torch.from_numpy(np.stack([ev.x.astype(np.float32), ev.y.astype(np.float32),
                                      ((ev.t - t0) / t_scale_us).astype(np.float32)], axis=1))


def _mean_nearest(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> float:
    mins = [torch.cdist(a[i:i + chunk], b).min(dim=1).values for i in range(0, len(a), chunk)]
    return float(torch.cat(mins).mean())


def chamfer_distance(out: Events, gt: Events, t0: int = 0, t_scale_us: float = 1000.0,
                     max_points: int = 4096, seed: int = 0) -> float:
    """Symmetric Chamfer distance; 0 if both sets are empty, NaN if exactly one is."""
    if not len(out) and not len(gt):
        return 0.0
    if not len(out) or not len(gt):
        return float("nan")
    rng = np.random.default_rng(seed)
    if len(out) > max_points:
        out = out[np.sort(rng.choice(len(out), max_points, replace=False))]
    if len(gt) > max_points:
        gt = gt[np.sort(rng.choice(len(gt), max_points, replace=False))]
    a, b = _points(out, t0, t_scale_us), _points(gt, t0, t_scale_us)
    return 0.5 * (_mean_nearest(a, b) + _mean_nearest(b, a))


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def label_counts(labels: np.ndarray, keep: np.ndarray) -> dict[str, int]:
    """Events and kept events per label (the sums that the percentages come from)."""
    out = {}
    for name, lab in (("signal", SIGNAL), ("noise", NOISE), ("flare", FLARE), ("light", LIGHT_SOURCE)):
        sel = labels == lab
        out[f"{name}_events"] = int(sel.sum())
        out[f"{name}_kept"] = int((sel & keep).sum())
    return out


def summarise(counts: dict[str, int], chamfers: list[float], mses: list[float]) -> dict:
    """Percentages, F1s and window averages from summed counts and per-window figures."""
    def pct(kept, total):
        return 100.0 * counts[kept] / counts[total] if counts[total] else float("nan")
    flare, flare_kept = counts["flare_events"], counts["flare_kept"]
    gt = counts["signal_events"] + counts["noise_events"] + counts["light_events"]
    gt_kept = counts["signal_kept"] + counts["noise_kept"] + counts["light_kept"]
    chamfers = [c for c in chamfers if np.isfinite(c)]
    return {
        "events": gt + flare,
        "windows": len(mses),
        "chamfer": float(np.mean(chamfers)) if chamfers else float("nan"),
        "voxel_mse": float(np.mean(mses)) if mses else float("nan"),
        # removal: flare dropped = TP, non-flare dropped = FP, flare kept = FN
        "removal_f1": f1(flare - flare_kept, gt - gt_kept, flare_kept),
        # retention: gt kept = TP, flare kept = FP, gt dropped = FN
        "retention_f1": f1(gt_kept, flare_kept, gt - gt_kept),
        "flare_removed_pct": 100.0 - pct("flare_kept", "flare_events") if flare else float("nan"),
        "signal_kept_pct": pct("signal_kept", "signal_events"),
        "noise_kept_pct": pct("noise_kept", "noise_events"),
        "light_kept_pct": pct("light_kept", "light_events"),
        **counts,
    }


def run_stage(stage, events: Events, message_events: int = 20000) -> np.ndarray:
    """Keep decisions of a windowed stage over a whole recording, in messages of this size."""
    stage.reset()
    out = [stage.push(events[i:i + message_events]) for i in range(0, len(events), message_events)]
    out.append(stage.flush())
    keep = np.concatenate(out) if out else np.zeros(0, bool)
    assert len(keep) == len(events), "windowed stage returned a wrong number of decisions"
    return keep


def window_figures(events: Events, labels: np.ndarray, keep: np.ndarray, spec: VoxelSpec,
                   t_scale_us: float = 1000.0) -> tuple[list[float], list[float]]:
    """Per-window Chamfer distances and voxel MSEs of the kept events against label != 2."""
    chamfers, mses = [], []
    if not len(events):
        return chamfers, mses
    idx = window_index(events.t, spec.window_us)
    cuts = np.flatnonzero(np.diff(idx)) + 1
    for a, b in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(events)]]).tolist()):
        t0 = int(idx[a]) * spec.window_us
        win, lab, k = events[a:b], labels[a:b], keep[a:b]
        out, gt = win[k], win[lab != FLARE]
        chamfers.append(chamfer_distance(out, gt, t0, t_scale_us))
        mses.append(float(np.mean((events_to_voxel(out, t0, spec) - events_to_voxel(gt, t0, spec)) ** 2)))
    return chamfers, mses


def evaluate_deflarer(archives, stage, t_scale_us: float = 1000.0) -> dict:
    """Run ``stage`` (a ``DeflareStage``) over labelled archives; return the metrics above.

    ``archives``: paths of labelled eventfx archives, or ``(events, labels)`` pairs.
    """
    counts: dict[str, int] = {}
    chamfers: list[float] = []
    mses: list[float] = []
    for item in archives:
        events, labels = read_labelled(item) if not isinstance(item, tuple) else item
        keep = run_stage(stage, events)
        for k, v in label_counts(labels, keep).items():
            counts[k] = counts.get(k, 0) + v
        c, m = window_figures(events, labels, keep, stage.spec, t_scale_us)
        chamfers += c
        mses += m
    if not counts:
        counts = label_counts(np.zeros(0, np.uint8), np.zeros(0, bool))
    return summarise(counts, chamfers, mses)
