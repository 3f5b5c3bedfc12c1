"""``eventfx evaluate --data DIR --methods mamba,baf,stcf,refractory,hot_pixel,dv_baf
[--config config/denoise.yaml] [--out DIR] [--noise-bag PATH]``: score cleaners on labelled
archives (``eventfx generate``'s test split) and on a real noise-only recording.

Writes report.md (also printed; with the flare removed per kind of light), report.json and
roc.png (an existing report is replaced only with ``--overwrite``). A method that cannot be
built (no checkpoint, dv_processing missing) is reported as not run, and the exit status is 1.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import EventfxError

DEFAULT_METHODS = "mamba,baf,stcf,refractory,hot_pixel,dv_baf"
SHARED_DATA = Path(os.environ.get("EVENTFX_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
DEFAULT_NOISE_BAG = SHARED_DATA / "ros2_bags" / "test_data_libcaer_rollover"  # almost pure noise


def add_parser(sub) -> None:
    from .common import add_overwrite, add_quiet

    p = sub.add_parser("evaluate", help="score denoisers/deflarers on labelled archives",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset folder (uses DIR/test/*.h5) or one archive")
    p.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated (default: %(default)s); "
                   "also 'pipeline' = the whole --config pipeline")
    p.add_argument("--config", help="denoise params file for stage settings and 'pipeline'")
    p.add_argument("--out", default="out/evaluate", help="report folder (default: %(default)s)")
    p.add_argument("--noise-bag", default=str(DEFAULT_NOISE_BAG) if DEFAULT_NOISE_BAG.exists() else None,
                   help="real noise-only recording: fraction each method keeps (default: %(default)s)")
    p.add_argument("--no-noise-bag", action="store_true", help="skip the real noise recording")
    p.add_argument("--max-archives", type=int, help="evaluate at most this many archives")
    add_quiet(p)
    add_overwrite(p)
    p.set_defaults(func=run)


REPORT_FILES = ("report.md", "report.json", "roc.png")


def check_paths(args) -> None:
    """The report's files checked before any work starts (``io.output_paths``): an existing
    report is replaced only with --overwrite, never an input."""
    from ..io.output_paths import check_outputs

    check_outputs({f"--out {name}": Path(args.out) / name for name in REPORT_FILES},
                  inputs=[args.data, args.config, None if args.no_noise_bag else args.noise_bag],
                  overwrite=args.overwrite)


def run(args) -> int:
    from ..evaluate.methods import build_method
    from ..evaluate.report import write_report
    from ..evaluate.run import evaluate, find_archives, flare_kind
    from ..io.archive import read_archive
    from ..labels import label_counts
    import numpy as np

    check_paths(args)
    files = find_archives(Path(args.data))[: args.max_archives]
    archives, kinds = [], {}
    for f in files:
        a = read_archive(f)
        if a.labels is None:
            raise EventfxError(f"{f}: archive has no labels (evaluate needs eventfx generate output)")
        archives.append((str(f), a.events, a.labels))
        kinds[str(f)] = flare_kind(a.meta)
    sensors = {a[1].sensor_size for a in archives}
    if len(sensors) != 1:
        raise EventfxError(f"--data: archives of different sensor sizes {sorted(sensors)}")
    sensor = sensors.pop()
    denoise_cfg = None
    if args.config:
        from ..pipeline_config import load_denoise_config
        denoise_cfg = load_denoise_config(args.config)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not names:
        raise EventfxError("--methods: no method given")
    methods, skipped = {}, {}
    for name in names:
        try:
            methods[name] = build_method(name, sensor, denoise_cfg)
        except EventfxError as exc:
            if "unknown method" in str(exc):
                raise
            skipped[name] = str(exc)
            print(f"eventfx evaluate: warning: {name} not run: {exc}", file=sys.stderr)
    noise_ev, noise_path = None, None
    if args.noise_bag and not args.no_noise_bag:
        from ..simulate.fit import read_events
        noise_path = args.noise_bag
        noise_ev = read_events(noise_path)
    noise_methods = {}
    if noise_ev is not None and noise_ev.sensor_size != sensor:
        # the methods are built for the archives' sensor; the bag gets its own instances
        for name in methods:
            noise_methods[name] = build_method(name, noise_ev.sensor_size, denoise_cfg)
    results, rocs = evaluate(methods, archives, None if noise_methods else noise_ev, not args.quiet, kinds)
    if noise_methods:
        for name, m in noise_methods.items():
            keep, _ = m.run(noise_ev)
            results[name]["real_noise_kept"] = float(keep.mean()) if len(keep) else float("nan")
    all_labels = np.concatenate([a[2] for a in archives])
    summary = dict(data=str(args.data), archives=len(archives), events=int(len(all_labels)),
                   label_counts=label_counts(all_labels), sensor=list(sensor), noise_bag=noise_path,
                   noise_bag_events=None if noise_ev is None else len(noise_ev))
    text = write_report(Path(args.out), summary, results, skipped, rocs)
    if "deflare" in methods:
        text += deflarer_section(Path(args.out), sensor, denoise_cfg, archives)
    print(text)
    print(f"eventfx evaluate: report in {args.out}/report.md, report.json, roc.png")
    return 1 if skipped else 0


def deflarer_section(out: Path, sensor, denoise_cfg, archives) -> str:
    """E-Deflare's measures (Chamfer distance, voxel MSE, removal/retention F1) for the deflare
    stage, appended to report.md and stored as ``deflarer`` in report.json."""
    import json

    from ..deflarer.metrics import evaluate_deflarer
    from ..stages import stage_class

    cls = stage_class("deflare")
    cfg = denoise_cfg.pipeline.stage_configs.get("deflare") if denoise_cfg else None
    stage = cls(cfg or cls.Config(), sensor=sensor, base_dir=denoise_cfg.base_dir if denoise_cfg else None)
    figures = evaluate_deflarer([(ev, labels) for _, ev, labels in archives], stage)
    keys = ("chamfer", "voxel_mse", "removal_f1", "retention_f1", "flare_removed_pct",
            "signal_kept_pct", "noise_kept_pct", "light_kept_pct")
    lines = ["", "## Deflarer: E-Deflare's measures", "",
             "Chamfer distance (x, y in pixels, 1 ms = 1 unit) and voxel MSE per 20 ms window between "
             "the kept events and the ground truth (every event not labelled flare); removal/retention "
             "F1 are eventfx's event-level stand-ins for R-F1/T-F1 (see eventfx_core/deflarer/metrics.py). "
             "E-Deflare's published figures (Chamfer 0.448, MSE 0.127, R-F1 0.707) are on its own data "
             "and voxel normalisation: not comparable number for number.", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
             "| " + " | ".join(f"{figures[k]:.4g}" for k in keys) + " |", ""]
    section = "\n".join(lines)
    with open(out / "report.md", "a") as f:
        f.write(section)
    report = json.loads((out / "report.json").read_text())
    report["deflarer"] = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in figures.items()}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    return section
