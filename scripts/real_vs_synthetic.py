"""Why the learned denoiser loses on real data: per-event feature means, rates and time
statistics of synthetic archives (signal, noise) next to real recordings (their events, and
noise injected as in ``eventfx realbench``).

    .venv/bin/python scripts/real_vs_synthetic.py SYNTHETIC_DIR [--rate 3] [--recordings a,b]

SYNTHETIC_DIR: ``eventfx generate`` output (its test/*.h5). Features: the shipped denoiser's
feature config (read from its checkpoint).
"""
import argparse
import glob
from pathlib import Path

import numpy as np

from eventfx_core.evaluate.real import recordings as R
from eventfx_core.evaluate.real.noise import NoiseModel, inject, make_noise
from eventfx_core.evaluate.real.run import seed_of
from eventfx_core.denoiser.features.config import feature_names
from eventfx_core.denoiser.features.extractor import FeatureExtractor
from eventfx_core.io.archive import read_archive
from eventfx_core.labels import NOISE, SIGNAL


def stats(ev):
    T = ev.duration_us * 1e-6
    pix = ev.y.astype(np.int64) * ev.width + ev.x
    c = np.bincount(pix, minlength=ev.width * ev.height)
    o = np.lexsort((ev.t, pix))
    same = pix[o][1:] == pix[o][:-1]
    isi = np.diff(ev.t[o])[same]
    return {"Mev/s": len(ev) / T / 1e6, "Hz per active px": len(ev) / T / max(1, (c > 0).sum()),
            "active px share": (c > 0).mean(), "median pixel ISI ms": float(np.median(isi)) / 1e3,
            "ON share": float(ev.p.mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("synthetic")
    ap.add_argument("--rate", type=float, default=3.0)
    ap.add_argument("--recordings", default="libcaer_cmp,emlb_demo,evl_sample")
    args = ap.parse_args()
    from eventfx_core.denoiser.checkpoint import load_checkpoint
    weights = Path(__file__).resolve().parents[1] / "eventfx_core" / "weights" / "denoiser.pt"
    cfg = load_checkpoint(weights).feature_config
    names = feature_names(cfg)
    groups, rows = {}, {}
    sig, noise = [], []
    for f in sorted(glob.glob(f"{args.synthetic}/test/*.h5")):
        a = read_archive(f)
        if (a.labels == SIGNAL).sum() < 2:
            continue
        F = FeatureExtractor(cfg, a.events.width, a.events.height).extract(a.events)
        sig.append(F[a.labels == SIGNAL])
        noise.append(F[a.labels == NOISE])
        s = a.events[a.labels == SIGNAL]
        rows[f"synthetic {f.split('/')[-1]}"] = dict(stats(s), **{"noise Hz/px": (a.labels == NOISE).sum() / (
            a.events.duration_us * 1e-6) / (a.events.width * a.events.height)})
    groups["syn signal"], groups["syn noise"] = np.concatenate(sig), np.concatenate(noise)
    model = NoiseModel.fit(R.read_events(R.resolve(R.NOISE_RECORDING)))
    for rec in R.real_recordings(names=args.recordings.split(",")):
        rng = np.random.default_rng(seed_of(rec.info.name, "uniform", args.rate))
        ev, is_sig = inject(rec.events, make_noise("uniform", args.rate, rec.events, rng, model))
        F = FeatureExtractor(cfg, ev.width, ev.height).extract(ev)
        groups[f"{rec.info.name[:10]} real"] = F[is_sig]
        groups[f"{rec.info.name[:10]} +{args.rate:g}Hz"] = F[~is_sig]
        rows[rec.info.name] = stats(rec.events)
    print("| events | " + " | ".join(next(iter(rows.values())).keys()) + " |")
    for k, v in rows.items():
        print(f"| {k} | " + " | ".join(f"{x:.3g}" for x in v.values()) + " |")
    print("\n| feature (mean) | " + " | ".join(groups) + " |")
    for j, n in enumerate(names):
        print(f"| {n} | " + " | ".join(f"{g[:, j].mean():.3f}" for g in groups.values()) + " |")


if __name__ == "__main__":
    main()
