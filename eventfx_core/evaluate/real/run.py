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
from .noise import NoiseModel, dark, inject, noise_process

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


def calibrated(cfg, noise_dark):
    """``cfg`` with the overlay that ``eventfx calibrate`` fits from ``noise_dark``."""
    from ...calibrate import CalibrateConfig, fit
    from ...pipeline_config import load_denoise_config
    stcf = cfg.pipeline.stage_configs.get("stcf")
    c = fit(noise_dark)
    params = c.overlay(int(stcf.time_window_us) if stcf is not None else 50_000, CalibrateConfig())
    muted = [v for v in params["hot_pixel"]["muted_pixels"] if v != ""]
    overlay = {"hot_pixel.muted_pixels": muted, "stcf.time_window_us": params["stcf"]["time_window_us"]}
    return load_denoise_config(cfg.path, overlay), {"hot_pixels": len(muted) // 2, **overlay,
                                                     "background_hz": c.background_hz}


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
        # the hull mixes neighbouring settings; without mixing, the best one setting keeping as much:
        single = [p["removed"] for p in results["dv_hull"].points if p["kept"] >= ref["kept"]]
        out["dv_hull"]["removed_single_at_reference_kept"] = max(single) if single else 0.0
        for name, r in results.items():  # every whole config, against the hull at its own share kept
            if r.scored and r.default is not None:
                out[name]["margin_over_dv_hull_at_own_kept"] = r.default["removed"] - removed_at(
                    results["dv_hull"].roc, r.default["kept"])
    classic = [n for n in ("stcf", "baf", "dv_hull") if n in out]
    best = max(classic, key=lambda n: out[n]["removed_at_reference_kept"])
    out[reference]["best_classic_at_kept"] = best
    out[reference]["margin_over_best_classic"] = ref_removed - out[best]["removed_at_reference_kept"]
    return out


def benchmark(recordings, configs: dict, classic_cfgs: dict, kinds=("uniform", "resampled"),
              rates=(1.0, 3.0, 5.0), noise_model: NoiseModel | None = None, use_dv: bool = True,
              reference: str = "pipeline", progress: bool = True, calibrate_s: float = 0.0) -> dict:
    """Run everything; returns the JSON-ready report dict. ``calibrate_s`` > 0 adds the method
    ``calibrated``: the reference config with the overlay that ``eventfx calibrate`` fits from
    ``calibrate_s`` seconds of the condition's noise process alone (a new draw, no signal: the
    camera's dark recording)."""
    rows = []
    for rec in recordings:
        for kind in kinds:
            for rate in rates:
                t0 = time.perf_counter()
                rng = np.random.default_rng(seed_of(rec.info.name, kind, rate))
                noise, pixel_rates, on_share = noise_process(kind, rate, rec.events, rng, noise_model)
                ev, is_signal = inject(rec.events, noise)
                run_configs, calib = dict(configs), None
                if calibrate_s > 0:
                    d = dark(pixel_rates, on_share, calibrate_s, ev.width, ev.height,
                             np.random.default_rng(seed_of(rec.info.name, kind, rate, "dark")))
                    run_configs["calibrated"], calib = calibrated(configs[reference], d)
                res = run_condition(ev, is_signal, run_configs, classic_cfgs, use_dv)
                rows.append({"recording": rec.info.name, "split": rec.info.split, "noise": kind,
                             "rate_hz": rate, "signal_events": len(rec.events), "noise_events": len(noise),
                             "methods": summarise(res, reference)})
                if calib is not None:
                    rows[-1]["calibration"] = {k: v for k, v in calib.items() if k != "hot_pixel.muted_pixels"}
                if progress:
                    m = rows[-1]["methods"][reference]
                    print(f"realbench: {rec.info.name} {kind} {rate:g} Hz/px: {reference} keeps "
                          f"{m['default']['kept']:.3f}, removes {m['default']['removed']:.3f}; AUC "
                          f"{m['auc']:.3f} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return {"recordings": [r.describe() for r in recordings],
            "noise_model": noise_model.describe() if noise_model is not None else None,
            "reference": reference, "methods": list(configs) + (["calibrated"] if calibrate_s > 0 else [])
            + ["stcf", "baf"] + (
                [*DV_METHODS, "dv_hull"] if use_dv else []),
            "rows": rows}
