"""``eventfx replay BAG --out OUT_BAG``: a bag through the real node over DDS, and a summary.

    eventfx replay in_bag --out out/cleaned [--rate 1] [--config config/denoise.yaml]
                   [--topic /event_camera/events] [--reliable] [-p mamba.threshold=0.7]
                   [--summary-dir out/] [--preview out/before_after.png] [--overwrite]

Every output (the bag, its node log, summary.json/summary.txt, the preview) is checked before
the node starts, by the one output-path policy (``eventfx_core.io.output_paths``): never an
input, an existing one replaced only with --overwrite; each is written under a temporary name
and renamed when complete.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from eventfx_core.cli.common import add_overwrite
from eventfx_core.errors import EventfxError
from eventfx_core.events import concat

SUMMARY_FILES = ("summary.json", "summary.txt")


def _param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, yaml.safe_load(value) if value else ""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("replay", help="replay a bag through the denoise node over DDS",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", type=Path, help="input ROS 2 bag with an event topic")
    p.add_argument("--out", type=Path, required=True, help="output bag to create (node output + /diagnostics)")
    p.add_argument("--rate", type=float, default=1.0,
                   help="x recorded speed (default 1); 0 = as fast as the node keeps up (flow-controlled)")
    p.add_argument("--config", type=Path, help="denoise params file (default: config/denoise.yaml)")
    p.add_argument("--topic", help="event topic of the bag (default: its only event topic)")
    p.add_argument("--output-topic", help="node output topic (default: the config's output_topic)")
    p.add_argument("--reliable", action="store_true", help="reliable QoS (default: best effort, like drivers)")
    p.add_argument("-p", "--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="node parameter override, e.g. -p mamba.threshold=0.7 or -p 'stages=[]'")
    p.add_argument("--summary-dir", type=Path, help="write summary.json and summary.txt here")
    p.add_argument("--preview", type=Path, help="write a before/after event-frame PNG here")
    p.add_argument("--preview-ms", type=float, default=50.0, help="time span of the preview frames")
    add_overwrite(p)
    p.set_defaults(func=run)


def check_paths(args) -> None:
    """Every output of this run checked before the node starts (``io.output_paths``)."""
    from eventfx_core.io.output_paths import check_outputs

    from .replay import node_log_path, params_path

    log = node_log_path(args.out)
    outs = {"--out": args.out, "node log": log, "node params": params_path(log)}
    if args.summary_dir:
        outs.update({f"--summary-dir {n}": Path(args.summary_dir) / n for n in SUMMARY_FILES})
    outs["--preview"] = args.preview
    check_outputs(outs, inputs=[args.bag, args.config], overwrite=args.overwrite,
                  suffixes={"--preview": (".png",)})


def run(args) -> int:
    from .replay import ReplayOptions, replay

    check_paths(args)
    opt = ReplayOptions(bag=args.bag, out=args.out, rate=args.rate, config=args.config,
                        topic=args.topic, output_topic=args.output_topic, reliable=args.reliable,
                        params=dict(args.param), overwrite=args.overwrite)
    summary = replay(opt)
    print(summary.to_text())
    if args.summary_dir:
        summary.write(args.summary_dir)
    if args.preview:
        write_preview(args.preview, args.bag, args.out, summary, args.preview_ms, args.config,
                      dict(args.param))
        print(f"  preview: {args.preview}")
    return 0


def write_preview(path: Path, bag: Path, out: Path, summary, span_ms: float,
                  config: Path | None = None, params: dict | None = None) -> Path:
    """Event frames of the same time span: before (input bag) | after (the node's output bag) |
    removed. The removed events are the node's (input minus output); each is coloured by the
    stage that removes it when the same config runs offline (``eventfx denoise``, which equals
    the node wherever no latency fallback was taken); events the node removed but the offline
    run keeps were decided by the node's latency fallback and get the colour after the stages'."""
    from eventfx_core.io.output_paths import atomic_output
    from eventfx_core.pipeline_config import default_config_path, load_denoise_config
    from eventfx_core.stream_engine import StreamEngine
    from eventfx_core.viz import before_after_png

    from .replay import decode_all, read_bag

    _, t_in, m_in = read_bag(bag, summary.topic)
    _, t_out, m_out = read_bag(out, None)
    # The input once, through the same config offline: its events and which stage removes each.
    cfg = load_denoise_config(Path(config) if config else default_config_path(), params or {})
    engine = StreamEngine(cfg.pipeline, cfg.base_dir, msgtype=t_in)
    decided = [*(d for _, raw in m_in for d in engine.push_message(raw)), *engine.flush()]
    decided = [d for d in decided if len(d.events)]
    if not decided:
        raise EventfxError(f"{bag}: no events to draw")
    # a sensor-size change mid-bag: keep the last size's events (as decode_all does)
    decided = [d for d in decided if d.events.sensor_size == decided[-1].events.sensor_size]
    before = concat([d.events for d in decided])
    offline_stage = np.concatenate([np.where(d.keep, -1, d.removed_by) for d in decided])
    after, _ = decode_all(t_out, [r for _, r in m_out])
    if after is None:
        after = before[:0]
    # The densest span_ms of the input, so the picture shows something.
    span = int(span_ms * 1000)
    edges = np.arange(before.t[0], before.t[-1] + span, span)
    counts = np.histogram(before.t, edges)[0]
    a = int(edges[int(np.argmax(counts))])
    in_span = (before.t >= a) & (before.t < a + span)
    shown_in, shown_out = before[in_span], after[(after.t >= a) & (after.t < a + span)]
    key = lambda ev: (((ev.t - a) * ev.height + ev.y) * ev.width + ev.x) * 2 + ev.p  # noqa: E731
    gone = ~np.isin(key(shown_in), key(shown_out))  # removed by the node
    removed = shown_in[gone]
    # each in the colour of the stage that removes it offline; the node's other removals were
    # its latency fallback's (the colour after the stages')
    names = list(summary.stages) + ["latency fallback"]
    stage = offline_stage[in_span][gone].astype(np.int64)
    stage[stage < 0] = len(names) - 1
    title = f"{Path(bag).name}: {span_ms:g} ms, stages {', '.join(summary.stages) or 'none'}"
    with atomic_output(path, keep_suffix=True) as tmp:
        before_after_png(tmp, shown_in, shown_out, title=title, removed=removed,
                         removed_stage=stage, stage_names=names)
    return Path(path)

