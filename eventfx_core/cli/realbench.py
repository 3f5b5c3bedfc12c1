"""``eventfx realbench [--split report|tune|all] [--config config/denoise.yaml] [--out DIR]``: the
real-data benchmark (DND21's protocol: real recordings as signal, injected noise with known
labels at 1, 3 and 5 Hz per pixel, uniform and resampled from a real noise recording).

Writes report.md (also printed), report.json and curves.png. Methods: the --config pipeline,
the Mamba stage (--mamba-config), eventfx's STCF and BAF, dv-processing's three noise filters.
"""
from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

from ..errors import EventfxError
from .common import add_overwrite, add_quiet


def add_parser(sub) -> None:
    p = sub.add_parser("realbench", help="benchmark denoisers on real recordings with injected noise",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--split", choices=("report", "tune", "all"),
                   help="which recordings (default: report; --write-train: tune; tune on 'tune', cite 'report')")
    p.add_argument("--recordings", help="comma-separated recording names (default: the whole split)")
    p.add_argument("--data", help="real recordings folder (default: ../shared/data or $EVENTFX_SHARED_DATA)")
    p.add_argument("--config", default="config/denoise.yaml", help="the pipeline (default: %(default)s)")
    p.add_argument("--mamba-config", default="config/mamba.yaml",
                   help="params file of the Mamba method ('none' to skip; default: %(default)s)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=PARAMS",
                   help="another eventfx params file to score as method NAME (repeatable)")
    p.add_argument("--noise", default="uniform,resampled", help="noise kinds (default: %(default)s)")
    p.add_argument("--rates", default="1,3,5", help="injected noise, Hz per pixel (default: %(default)s)")
    p.add_argument("--noise-recording", help="real noise recording for 'resampled' (default: "
                   "test_data_libcaer_rollover in the real recordings folder)")
    p.add_argument("--max-seconds", type=float, default=1.0, help="first seconds of each recording "
                   "(default: %(default)s)")
    p.add_argument("--no-dv", action="store_true", help="skip dv-processing's filters")
    p.add_argument("--calibrate", type=float, default=0.0, metavar="SECONDS",
                   help="also score 'calibrated': --config with the overlay eventfx calibrate fits from "
                        "SECONDS of each condition's noise alone (a new draw: the camera's dark recording)")
    p.add_argument("--out", default="out/realbench", help="report folder (default: %(default)s)")
    p.add_argument("--write-train", metavar="DIR", help="instead: write labelled training archives "
                   "(tune split + injected noise, 0.5-6 Hz/px) to DIR/train and DIR/val for eventfx train")
    p.add_argument("--copies", type=int, default=8, help="--write-train archives per recording (default: %(default)s)")
    add_quiet(p)
    add_overwrite(p)
    p.set_defaults(func=run)


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise EventfxError(f"{what}: not a comma-separated list of numbers: {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise EventfxError(f"{what}: give positive numbers, got {text!r}")
    return vals


REPORT_FILES = ("report.md", "report.json", "curves.png")


def check_paths(args) -> None:
    """The report's files checked before any work starts (``io.output_paths``, as ``eventfx
    evaluate`` does): an existing report is replaced only with --overwrite, never an input."""
    from ..io.output_paths import check_outputs

    check_outputs({f"--out {name}": Path(args.out) / name for name in REPORT_FILES},
                  inputs=[args.data, args.config, args.noise_recording], overwrite=args.overwrite)


def run(args) -> int:
    from ..evaluate.real import recordings as R
    from ..evaluate.real.noise import NoiseModel
    from ..evaluate.real.report import write
    from ..evaluate.real.run import benchmark
    from ..pipeline_config import load_denoise_config

    data = Path(args.data) if args.data else None
    names = [n.strip() for n in args.recordings.split(",")] if args.recordings else None
    if args.write_train:
        return write_train(args, data, names)
    check_paths(args)
    split = args.split or "report"
    recs = R.real_recordings(data, None if split == "all" else split, names, args.max_seconds)
    if not recs:
        raise EventfxError(f"no real recordings in split {split!r}")
    kinds = tuple(k.strip() for k in args.noise.split(",") if k.strip())
    bad = set(kinds) - {"uniform", "resampled"}
    if bad or not kinds:
        raise EventfxError(f"--noise: kinds are uniform, resampled (got {args.noise!r})")
    rates = _floats(args.rates, "--rates")
    model = None
    if "resampled" in kinds:
        path = Path(args.noise_recording) if args.noise_recording else R.resolve(R.NOISE_RECORDING, data)
        if not path.exists():
            raise EventfxError(f"--noise-recording {path}: not found")
        model = NoiseModel.fit(R.read_events(path))
    configs = {"pipeline": load_denoise_config(args.config)}
    if args.mamba_config != "none":
        configs["mamba"] = load_denoise_config(args.mamba_config)
    for item in args.extra:
        name, sep, path = item.partition("=")
        if not sep or not name or name in ("pipeline", "mamba", "stcf", "baf") or name.startswith("dv_"):
            raise EventfxError(f"--extra {item!r}: give NAME=PARAMS with a new NAME")
        configs[name] = load_denoise_config(path)
    use_dv = not args.no_dv
    if use_dv:
        try:
            import dv_processing  # noqa: F401
        except ImportError:
            print("eventfx realbench: warning: dv_processing not installed; its filters are not run",
                  file=sys.stderr)
            use_dv = False
    stage_cfgs = configs["pipeline"].pipeline.stage_configs
    classic = {k: stage_cfgs[k] for k in ("stcf", "baf") if k in stage_cfgs}
    if not (0 <= args.calibrate < math.inf):
        raise EventfxError(f"--calibrate: give finite seconds >= 0, got {args.calibrate}")
    report = benchmark(recs, configs, classic, kinds, rates, model, use_dv, progress=not args.quiet,
                       calibrate_s=args.calibrate)
    report["command"] = "eventfx " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["realbench"] else ""
    text = write(Path(args.out), report, report["command"])
    print(text)
    print(f"eventfx realbench: report in {args.out}/report.md, report.json, curves.png")
    return 0


def write_train(args, data, names) -> int:
    """Training archives from the tune split only (the report split is never trained on)."""
    from ..evaluate.real import recordings as R
    from ..evaluate.real.noise import NoiseModel
    from ..evaluate.real.trainset import write_train_archives
    if args.split not in (None, "tune"):
        raise EventfxError("--write-train: only the tune split may be trained on")
    if args.copies < 1:
        raise EventfxError(f"--copies: give at least 1, got {args.copies}")
    recs = R.real_recordings(data, "tune", names, args.max_seconds)
    model = NoiseModel.fit(R.read_events(R.resolve(R.NOISE_RECORDING, data)))
    out = Path(args.write_train)
    train = write_train_archives(recs, out / "train", model, args.copies, seed=1000)
    val = write_train_archives(recs, out / "val", model, max(1, args.copies // 4), seed=2000)
    print(f"eventfx realbench: wrote {len(train)} train and {len(val)} val archives under {out}")
    return 0
