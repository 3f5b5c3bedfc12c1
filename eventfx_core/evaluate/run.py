"""Running methods over labelled archives (and a real noise recording) and scoring them."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ..errors import EventfxError
from ..events import Events
from ..labels import FLARE, NOISE, SIGNAL
from .metrics import LabelCounts, keep_remove_metrics, roc_curve, auc

ROC_MAX_EVENTS = 4_000_000  # scores kept for the ROC; beyond this a fixed-seed subsample


def find_archives(data: Path) -> list[Path]:
    """The test archives under ``data``: DIR/test/*.h5 if present, else DIR/*.h5, or one file."""
    data = Path(data)
    if data.is_file():
        return [data]
    if not data.is_dir():
        raise EventfxError(f"--data {data}: not found")
    files = sorted((data / "test").glob("*.h5")) if (data / "test").is_dir() else sorted(data.glob("*.h5"))
    if not files:
        raise EventfxError(f"--data {data}: no .h5 archives (expected DIR/test/*.h5 from eventfx generate)")
    return files


def flare_kind(meta: dict | None) -> str:
    """The kind of light behind a generated sequence's flare (``steady``, ``mains``, ``pwm``;
    ``no flare``), read from its archive metadata (``eventfx generate`` writes it)."""
    flare = (meta or {}).get("flare")
    return str(flare.get("flicker", "unknown")) if isinstance(flare, dict) else "no flare"


def flare_by_kind(per_archive: list[dict]) -> dict[str, dict]:
    """Per kind of light: flare events, the share of them removed, and the kind's share of all
    flare events kept (where the flare that stays comes from)."""
    kept_all = sum(p["flare_kept"] for p in per_archive)
    out = {}
    for kind in sorted({p["flare_kind"] for p in per_archive}):
        rows = [p for p in per_archive if p["flare_kind"] == kind]
        total, kept = sum(p["flare_events"] for p in rows), sum(p["flare_kept"] for p in rows)
        if total:
            out[kind] = {"sequences": len(rows), "flare_events": total,
                         "flare_removed": 1 - kept / total,
                         "share_of_kept_flare": kept / kept_all if kept_all else float("nan")}
    return out


def evaluate(methods: dict, archives: list[tuple[str, Events, np.ndarray]],
             noise_events: Events | None = None, progress: bool = True,
             kinds: dict[str, str] | None = None) -> tuple[dict, dict]:
    """Score each method; returns (results per method, ROC curves per method). ``kinds``: the
    kind of light of each archive's flare (by path, see :func:`flare_kind`) for the
    ``flare_by_kind`` breakdown."""
    from tqdm import tqdm

    results, rocs = {}, {}
    bar = tqdm(total=len(methods) * (len(archives) + (noise_events is not None)), unit="run",
               disable=not progress, file=sys.stderr)
    for name, method in methods.items():
        counts = LabelCounts()
        scores, positives = [], []
        seconds, n = 0.0, 0
        per_archive = []
        for path, ev, labels in archives:
            bar.set_description(f"{name}: {Path(path).name}")
            t0 = time.perf_counter()
            keep, score = method.run(ev)
            seconds += time.perf_counter() - t0
            n += len(ev)
            if len(keep) != len(ev):
                raise EventfxError(f"{name} decided {len(keep)} of {len(ev)} events of {path}")
            counts.add(keep, labels)
            one = LabelCounts()
            one.add(keep, labels)
            m = keep_remove_metrics(one)
            per_archive.append({"archive": Path(path).name, **{k: m[k] for k in (
                "events", "keep_f1", "noise_removed", "flare_removed", "signal_kept", "light_source_kept")},
                "flare_kind": (kinds or {}).get(path, "unknown"),
                "flare_events": int(one.total[FLARE]), "flare_kept": int(one.kept[FLARE])})
            sel = (labels == SIGNAL) | (labels == NOISE)
            scores.append(score[sel])
            positives.append(labels[sel] == SIGNAL)
            bar.update(1)
        r = keep_remove_metrics(counts)
        s, pos = np.concatenate(scores), np.concatenate(positives)
        if len(s) > ROC_MAX_EVENTS:
            pick = np.random.default_rng(0).choice(len(s), ROC_MAX_EVENTS, replace=False)
            s, pos = s[pick], pos[pick]
        fpr, tpr, _ = roc_curve(s, pos)
        r["noise_auc"] = auc(fpr, tpr)
        rocs[name] = (fpr, tpr)
        r["events_per_s"] = n / seconds if seconds > 0 else float("nan")
        if noise_events is not None:
            bar.set_description(f"{name}: noise bag")
            keep, _ = method.run(noise_events)
            r["real_noise_kept"] = float(keep.mean()) if len(keep) else float("nan")
            bar.update(1)
        describe = getattr(method, "describe", None)
        if callable(describe):
            r["settings"] = describe()
        r["counts_total"] = counts.total.tolist()
        r["counts_kept"] = counts.kept.tolist()
        r["per_archive"] = per_archive
        r["flare_by_kind"] = flare_by_kind(per_archive)
        results[name] = r
    bar.close()
    return results, rocs
