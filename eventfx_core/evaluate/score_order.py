"""How much a reordering of the pipeline score could gain: each event's outcome (the stage that
removed it, or kept by all, and its last graded score; ``pipeline_score``) falls in a cell of
(depth, graded bin); each cell's share of signal is fitted on one split and orders the events of
another (the removals of all stages interleaved by a calibrated probability of being signal,
kept events on top so that the keep decision stays the operating point; within a cell by graded,
so every threshold is still a rule of the form "stage i keeps what grades >= g_i"). Compared
with the lexicographic order that ships, and with a bound: the shares fitted on the evaluated
split itself (the best order of the cells, up to the order inside them).
(Calibrated probabilities from binned scores: histogram binning, Zadrozny and Elkan, ICML
2001.)

    python -m eventfx_core.evaluate.score_order [--data data/synthetic] [--config C] [--real]

Synthetic: fitted on DIR/val, evaluated on DIR/test (signal against noise, as ``eventfx evaluate``'s
noise AUC). ``--real``: also realbench's conditions (fitted on the tune recording libcaer_cmp,
evaluated on the report split, and each domain's table on the other domain).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..labels import NOISE, SIGNAL
from ..pipeline import REMOVED_RANGE
from ..pipeline_score import compose
from .metrics import roc_auc

BINS = 32  # graded bins per depth (STCF's k/8 fall on bin edges: 4 bins per supporting neighbour)
TUNE_FIT = ("libcaer_cmp",)  # real fit: evt3_trigger's own events are mostly sensor noise (README)


def cells(depth: np.ndarray, graded: np.ndarray, bins: int = BINS) -> np.ndarray:
    """int64 cell of each event: depth * bins + graded bin (1e-4 absorbs float32 rounding)."""
    b = np.minimum(np.floor(np.asarray(graded) * bins + 1e-4).astype(np.int64), bins - 1)
    return np.asarray(depth, np.int64) * bins + b


def signal_share(cell: np.ndarray, positive: np.ndarray, n_cells: int) -> np.ndarray:
    """Each cell's share of signal, (signal + 1/2) / (events + 1): an empty cell is 1/2."""
    pos = np.bincount(cell, weights=positive.astype(np.float64), minlength=n_cells)
    return (pos + 0.5) / (np.bincount(cell, minlength=n_cells) + 1.0)


def reordered(depth, graded, share: np.ndarray, n_stages: int, bins: int = BINS) -> np.ndarray:
    """float64 scores: kept events (depth n) above all removals, in lexicographic order; removals
    by their cell's ``share`` (ties: lower depth first, then lower bin), within a cell by graded."""
    n_cells = (n_stages + 1) * bins
    idx = np.arange(n_cells)
    kept_cell = idx >= n_stages * bins
    order = np.lexsort((idx, np.where(kept_cell, 2.0, share[:n_cells])))  # kept cells last
    rank = np.empty(n_cells)
    rank[order] = np.arange(n_cells)
    c = cells(depth, graded, bins)
    within = np.clip(np.asarray(graded) * bins - c % bins, 0.0, 0.999)
    return rank[c] + within


class Outcomes:
    """depth, graded and signal/noise of the events of one or more streams (signal or noise only)."""

    def __init__(self, n_stages: int):
        self.n = n_stages
        self.depth, self.graded, self.positive = [], [], []

    def add(self, decisions, is_signal: np.ndarray, use: np.ndarray | None = None) -> None:
        graded = np.concatenate([d.graded for d in decisions]).astype(np.float64)
        r = np.concatenate([d.removed_by for d in decisions]).astype(np.int64)
        use = np.ones(len(r), bool) if use is None else use
        inside = use & (r != REMOVED_RANGE)
        self.depth.append(np.where(r < 0, self.n, r)[inside])
        # as compose reads it: NaN (no score) 0, clipped to [0, 1]
        self.graded.append(np.clip(np.nan_to_num(graded, nan=0.0), 0.0, 1.0)[inside])
        self.positive.append(np.asarray(is_signal, bool)[inside])

    def arrays(self):
        return tuple(np.concatenate(a) for a in (self.depth, self.graded, self.positive))


def aucs(out: Outcomes, fitted: dict[str, np.ndarray]) -> dict[str, float]:
    """AUC of the lexicographic order, of each fitted table's order, and the bound."""
    d, g, pos = out.arrays()
    n_cells = (out.n + 1) * BINS
    r = np.where(d == out.n, -1, d)
    res = {"lexicographic": roc_auc(compose(g.astype(np.float32), r, out.n, REMOVED_RANGE), pos)}
    for name, share in fitted.items():
        res[name] = roc_auc(reordered(d, g, share, out.n), pos)
    res["bound"] = roc_auc(reordered(d, g, signal_share(cells(d, g), pos, n_cells), out.n), pos)
    return res


def fit(out: Outcomes) -> np.ndarray:
    d, g, pos = out.arrays()
    return signal_share(cells(d, g), pos, (out.n + 1) * BINS)


def synthetic(cfg, folder: Path) -> Outcomes:
    from ..io.archive import read_archive
    from .methods import PipelineMethod
    method, out = None, None
    for f in sorted(folder.glob("*.h5")):
        a = read_archive(f)
        if method is None:
            method = PipelineMethod(cfg, a.events.sensor_size)
            out = Outcomes(len(method.pipe.stages))
        out.add(method.decisions(a.events), a.labels == SIGNAL, (a.labels == SIGNAL) | (a.labels == NOISE))
    return out


def real(cfg, split: str, names=None) -> list[tuple[str, Outcomes]]:
    """One ``Outcomes`` per realbench condition of ``split`` (same noise draws as realbench)."""
    from .methods import PipelineMethod
    from .real import recordings as R
    from .real.noise import NoiseModel, inject, noise_process
    from .real.run import seed_of
    model = NoiseModel.fit(R.read_events(R.resolve(R.NOISE_RECORDING)))
    res = []
    for rec in R.real_recordings(None, split, names, 1.0):
        method = PipelineMethod(cfg, rec.events.sensor_size)
        for kind in ("uniform", "resampled"):
            for rate in (1.0, 3.0, 5.0):
                rng = np.random.default_rng(seed_of(rec.info.name, kind, rate))
                ev, is_signal = inject(rec.events, noise_process(kind, rate, rec.events, rng, model)[0])
                out = Outcomes(len(method.pipe.stages))
                out.add(method.decisions(ev), is_signal)
                res.append((f"{rec.info.name} {kind} {rate:g} Hz/px", out))
    return res


def merged(parts: list[Outcomes]) -> Outcomes:
    out = Outcomes(parts[0].n)
    for p in parts:
        out.depth += p.depth
        out.graded += p.graded
        out.positive += p.positive
    return out


def main(argv=None) -> int:
    from ..pipeline_config import load_denoise_config
    ap = argparse.ArgumentParser(prog="python -m eventfx_core.evaluate.score_order", description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--config", default="config/denoise.yaml")
    ap.add_argument("--real", action="store_true", help="also realbench's conditions: fitted on the tune recording, evaluated on the report split")
    args = ap.parse_args(argv)
    cfg = load_denoise_config(args.config)
    val, test = synthetic(cfg, Path(args.data) / "val"), synthetic(cfg, Path(args.data) / "test")
    tables = {"fitted on synthetic val": fit(val)}
    if args.real:
        tune = real(cfg, "tune", TUNE_FIT)
        tables["fitted on real tune"] = fit(merged([o for _, o in tune]))
        report = real(cfg, "report")
    cols = ["lexicographic", *tables, "bound"]
    print("| events | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    rows = [("synthetic test", test)] + ([(f"report: {k}", o) for k, o in report] if args.real else [])
    for name, out in rows:
        a = aucs(out, tables)
        print(f"| {name} | " + " | ".join(f"{a[c]:.4f}" for c in cols) + " |")
    np.set_printoptions(precision=2, linewidth=200)
    for name, share in tables.items():
        print(f"\nshare of signal per graded bin ({name}), rows = depth 0..{val.n} (kept last):",
              file=sys.stderr)
        print(share.reshape(val.n + 1, BINS), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
