"""``eventfx calibrate RECORDING --out params.yaml``: fit the noise model of your own camera from a
dark or static recording of it (per-pixel rates, hot pixels, background rate) and write a params
overlay that sets hot_pixel.muted_pixels and stcf.time_window_us from it.

Load it after the base config: ``denoise_node --ros-args --params-file config/denoise.yaml
--params-file params.yaml`` or ``eventfx denoise IN OUT --params-file params.yaml``. With
``--seconds S`` only the first S seconds are fitted and the rest is held out: the command then
says which share of the held-out events the base config keeps with and without the overlay (the
recording is noise only, so lower is better).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import EventfxError
from .common import add_overwrite, add_quiet, first_paragraph


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the noise model of a camera from its dark recording",
                       description=first_paragraph(__doc__))
    p.add_argument("recording", help="a dark or static recording (any input format eventfx reads)")
    p.add_argument("--out", required=True, help="the params overlay to write (.yaml)")
    p.add_argument("--config", help="the base config the overlay is laid over (default: config/denoise.yaml)")
    p.add_argument("--topic", help="event topic of a bag (default: the only event topic)")
    p.add_argument("--seconds", type=float, help="fit only the first SECONDS, hold out the rest (default: all)")
    p.add_argument("--rate-map", help="also write the per-pixel rate map, Hz, float32 [height, width] (.npy)")
    p.add_argument("--hot-factor", type=float, default=10.0,
                   help="hot: a pixel above this many times the background rate (default: %(default)s)")
    add_overwrite(p)
    add_quiet(p)
    p.set_defaults(func=run)


def read_all(path: str, topic: str | None, quiet: bool):
    from ..events import concat
    from ..io import Packet, open_source
    from .common import progress

    parts = []
    with open_source(path, topic=topic) as src, progress(total=getattr(src, "num_packets", None), unit="msg",
                                                         desc="calibrate", disable=quiet) as bar:
        for item in src:
            bar.update(1)
            if isinstance(item, Packet) and len(item.events):
                parts.append(item.events)
    if not parts:
        raise EventfxError(f"{path}: no events to calibrate on")
    return concat(parts)


def kept_share(cfg, ev) -> float:
    from ..evaluate.methods import PipelineMethod

    keep, _ = PipelineMethod(cfg, ev.sensor_size).run(ev)
    return float(keep.mean()) if len(keep) else float("nan")


def run(args) -> int:
    from ..calibrate import CalibrateConfig, fit, overlay_yaml
    from ..io.output_paths import atomic_output, check_outputs
    from ..pipeline_config import load_denoise_config

    if not Path(args.recording).exists():
        raise EventfxError(f"{args.recording}: no such file or folder")
    if args.seconds is not None and not (0 < args.seconds < math.inf):
        raise EventfxError(f"--seconds must be a finite number > 0, got {args.seconds}")
    if not (1 < args.hot_factor < math.inf):
        raise EventfxError(f"--hot-factor must be a finite number > 1, got {args.hot_factor}")
    outs = check_outputs({"--out": args.out, "--rate-map": args.rate_map}, inputs=[args.recording, args.config],
                         overwrite=args.overwrite, suffixes={"--out": (".yaml", ".yml"), "--rate-map": (".npy",)})
    base = load_denoise_config(args.config)
    ev = read_all(args.recording, args.topic, args.quiet)
    held = None
    if args.seconds is not None:
        cut = int(np.searchsorted(ev.t, ev.t[0] + int(args.seconds * 1e6)))
        ev, held = ev[:cut], (ev[cut:] if cut < len(ev) else None)
    cfg = CalibrateConfig(hot_factor=args.hot_factor)
    calib = fit(ev, cfg)
    stcf = base.pipeline.stage_configs.get("stcf")
    base_window = int(stcf.time_window_us) if stcf is not None else 50_000
    params = calib.overlay(base_window, cfg)
    with atomic_output(outs["--out"]) as tmp:
        Path(tmp).write_text(overlay_yaml(calib, params, args.recording))
    if args.rate_map:
        with atomic_output(outs["--rate-map"], keep_suffix=True) as tmp:
            np.save(tmp, calib.rate_map)
    print(f"calibrate: {calib.events} events over {calib.seconds:.3f} s: background "
          f"{calib.background_hz:.3f} Hz/px, {int(calib.hot.sum())} hot pixels "
          f"({100 * calib.hot_event_share:.1f} % of the events); stcf.time_window_us "
          f"{params['stcf']['time_window_us']}; wrote {args.out}")
    if held is not None and len(held) and base.pipeline.stages:
        from ..pipeline_config import overlay_overrides
        tuned = load_denoise_config(args.config, overlay_overrides(args.out))
        before, after = kept_share(base, held), kept_share(tuned, held)
        print(f"calibrate: held out {held.duration_us * 1e-6:.3f} s ({len(held)} events, not fitted): the "
              f"base config keeps {100 * before:.2f} %, with the overlay {100 * after:.2f} % "
              f"(a noise-only recording: lower is better)")
    return 0
