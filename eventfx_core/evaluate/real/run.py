"""The whole real-data benchmark: every recording x noise kind x rate x method.

For each condition the report holds every method's ROC-AUC and default operating point, and,
at the share of real events that the default pipeline keeps, the share of noise each method's
curve removes (dv-processing: the upper hull of its three filters over their parameters).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from .curves import removed_at, roc_auc_of
from .methods import DV_METHODS, run_baf, run_config, run_dv, run_stcf
from .noise import NoiseModel, inject, make_noise

CURVE_POINTS = 200  # points per stored curve (JSON, PNG)


def thin(roc, n: int = CURVE_POINTS) -> tuple[list[float], list[float]]:
    fpr, tpr = np.asarray(roc[0], float), np.asarray(roc[1], float)
    if len(fpr) > n:
        idx = np.unique(np.r_[np.linspace(0, len(fpr) - 1, n).astype(int), len(fpr) - 1])
        fpr, tpr = fpr[idx], tpr[idx]
    return [round(float(v), 5) for v in fpr], [round(float(v), 5) for v in tpr]


def seed_of(*parts) -> int:
    """A fixed seed per condition (the same noise for every method and every run)."""
    return int.from_bytes("/".join(map(str, parts)).encode()[:32].ljust(32, b"\0"), "little") % (2**63)


def run_condition(ev, is_signal, configs: dict, classic_cfgs: dict, use_dv: bool) -> dict:
    """All methods on one noisy recording -> {method: MethodResult}."""
    results = {}
    for name, cfg in configs.items():
        results[name] = run_config(name, cfg, ev, is_signal)
    results["stcf"] = run_stcf(ev, is_signal, classic_cfgs.get("stcf"))
    results["baf"] = run_baf(ev, is_signal, classic_cfgs.get("baf"))
    if use_dv:
        results.update(run_dv(ev, is_signal))
    return results


def summarise(results: dict, reference: str) -> dict:
    """Per method: AUC, default point, noise removed at the reference's share kept."""
    ref = results[reference].default
    out = {}
    for name, r in results.items():
        out[name] = {"auc": roc_auc_of(r.roc), "default": r.default, "scored": r.scored,
                     "removed_at_reference_kept": removed_at(r.roc, ref["kept"]),
                     "curve": thin(r.roc)}
    ref_removed = ref["removed"]
    if "dv_hull" in out:
        out[reference]["margin_over_dv_hull"] = ref_removed - out["dv_hull"]["removed_at_reference_kept"]
    classic = [n for n in ("stcf", "baf", "dv_hull") if n in out]
    best = max(classic, key=lambda n: out[n]["removed_at_reference_kept"])
    out[reference]["best_classic_at_kept"] = best
    out[reference]["margin_over_best_classic"] = ref_removed - out[best]["removed_at_reference_kept"]
    return out


def benchmark(recordings, configs: dict, classic_cfgs: dict, kinds=("uniform", "resampled"),
              rates=(1.0, 3.0, 5.0), noise_model: NoiseModel | None = None, use_dv: bool = True,
              reference: str = "pipeline", progress: bool = True) -> dict:
    """Run everything; returns the JSON-ready report dict."""
    rows = []
    for rec in recordings:
        for kind in kinds:
            for rate in rates:
                t0 = time.perf_counter()
                rng = np.random.default_rng(seed_of(rec.info.name, kind, rate))
                noise = make_noise(kind, rate, rec.events, rng, noise_model)
                ev, is_signal = inject(rec.events, noise)
                res = run_condition(ev, is_signal, configs, classic_cfgs, use_dv)
                rows.append({"recording": rec.info.name, "split": rec.info.split, "noise": kind,
                             "rate_hz": rate, "signal_events": len(rec.events), "noise_events": len(noise),
                             "methods": summarise(res, reference)})
                if progress:
                    m = rows[-1]["methods"][reference]
                    print(f"realbench: {rec.info.name} {kind} {rate:g} Hz/px: {reference} keeps "
                          f"{m['default']['kept']:.3f}, removes {m['default']['removed']:.3f}; AUC "
                          f"{m['auc']:.3f} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return {"recordings": [r.describe() for r in recordings],
            "noise_model": noise_model.describe() if noise_model is not None else None,
            "reference": reference, "methods": list(configs) + ["stcf", "baf"] + (
                [*DV_METHODS, "dv_hull"] if use_dv else []),
            "rows": rows}
