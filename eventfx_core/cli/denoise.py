"""``eventfx denoise IN OUT [--config C]``: run the pipeline offline over any input format.

The event topic is rewritten with the kept events: one output message per input message, the
same message type and encoding, header and sequence number; other topics are copied as they
are. It runs the very code the node runs (``stream_engine.StreamEngine``), so a bag
denoised here and the same bag replayed through the node give the same events.

A message that cannot be decoded is skipped with a warning and counted, as the node does;
``--strict`` turns it into an error instead.
"""
from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import EventfxError
from ..events import Events, concat
from ..stream_engine import StreamEngine

PREVIEW_EVENTS = 2_000_000  # at most this many input events are kept for the --preview PNG


def add_parser(sub) -> None:
    from .common import add_input_format, add_output_format, add_overwrite, add_quiet, add_salvage, first_paragraph

    p = sub.add_parser("denoise", help="denoise (and deflare) a recording offline",
                       description=first_paragraph(__doc__))
    p.add_argument("input", help="bag folder/.bag/.mcap, DSEC events.h5, eventfx archive .h5, .raw, .aedat4")
    p.add_argument("output", help="output path (format from the name or --output-format)")
    p.add_argument("--config", help="denoise params file (default: config/denoise.yaml)")
    p.add_argument("--topic", help="event topic of a bag (default: the only event topic)")
    add_output_format(p)
    add_input_format(p, old_spelling=False)
    p.add_argument("--params-file", action="append", default=[], metavar="OVERLAY",
                   help="a params file laid over --config, as the node's second --params-file (e.g. "
                        "eventfx calibrate's output; repeatable, later ones win, --set wins over all)")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.FIELD=VALUE",
                   help="override a config value, e.g. --set mamba.threshold=0.7 (repeatable)")
    p.add_argument("--scores", help="also write per-event decisions (t,x,y,p,score,keep) to this .h5; score: the "
                   "pipeline score (eventfx_core/pipeline_score.py: keep == score >= n/(n+1) for n stages)")
    p.add_argument("--preview", help="also write a before/after event-frame PNG here (.png)")
    p.add_argument("--strict", action="store_true", help="stop at the first undecodable message")
    add_overwrite(p)
    add_salvage(p)
    add_quiet(p)
    p.set_defaults(func=run)


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EventfxError(f"--set {item!r}: expected STAGE.FIELD=VALUE")
        out[key] = yaml.safe_load(value)
    return out


class ScoreWriter:
    """Appends (t, x, y, p, score, keep) of every input event to an HDF5 file (``run`` writes it
    through ``io.output_paths.atomic_output``: no half file stands under the final name)."""

    def __init__(self, path: Path):
        import h5py

        self.f = h5py.File(path, "w")
        self.ds = {}
        for name, dt in (("t", "i8"), ("x", "u2"), ("y", "u2"), ("p", "u1"), ("score", "f4"), ("keep", "u1")):
            self.ds[name] = self.f.create_dataset(name, (0,), dtype=dt, maxshape=(None,), chunks=(1 << 16,))

    def append(self, ev: Events, score: np.ndarray, keep: np.ndarray) -> None:
        n0 = self.ds["t"].shape[0]
        for name, arr in (("t", ev.t), ("x", ev.x), ("y", ev.y), ("p", ev.p), ("score", score),
                          ("keep", keep.astype(np.uint8))):
            self.ds[name].resize((n0 + len(arr),))
            self.ds[name][n0:] = arr

    def close(self) -> None:
        self.f.close()


def load_config(args):
    """The denoise config with ``--set`` applied; an error caused by one ``--set`` names it, and a
    config that runs no stage says so (every event would be kept)."""
    from ..errors import ConfigError, warn

    from ..pipeline_config import denoise_config, overlay_overrides, read_denoise_params

    params, path = read_denoise_params(args.config)  # the file is read once
    denoise_config(params, path)  # errors of the file itself name the file
    layered: dict = {}
    for overlay in args.params_file:
        one = overlay_overrides(overlay)
        try:
            denoise_config(params, path, {**layered, **one})
        except ConfigError as exc:
            raise ConfigError(f"--params-file {overlay}: {exc}") from None
        layered.update(one)
    for item in args.set:
        try:
            denoise_config(params, path, {**layered, **parse_overrides([item])})
        except ConfigError as exc:
            text = str(exc)
            for prefix in (str(args.config or ""), str(_default_path())):
                if prefix and text.startswith(prefix):
                    text = text[len(prefix):].lstrip(".: ")
            raise ConfigError(f"--set {item}: {text}") from None
    cfg = denoise_config(params, path, {**layered, **parse_overrides(args.set)})
    if not cfg.pipeline.stages:
        warn(f"{cfg.path}: no stages to run: every event is kept unchanged")
    return cfg


def _default_path():
    from ..pipeline_config import default_config_path

    return default_config_path()


def check_paths(args) -> None:
    """Every output of this run checked before any work starts (``io.output_paths``)."""
    from ..io.output_paths import check_outputs

    check_outputs({"output": args.output, "--scores": args.scores, "--preview": args.preview},
                  inputs=[args.input], overwrite=args.overwrite,
                  suffixes={"--scores": (".h5", ".hdf5"), "--preview": (".png",)})


def write_preview(path: str, before: Events, after: Events, title: str, removed: Events,
                  removed_by: np.ndarray, stages: list[str]) -> None:
    from ..io.output_paths import atomic_output
    from ..viz import before_after_png

    with atomic_output(path, keep_suffix=True) as tmp:
        before_after_png(tmp, before, after, title=title, removed=removed, removed_stage=removed_by,
                         stage_names=stages)


def run(args) -> int:
    from ..io import Passthrough, open_sink, open_source
    from ..io.output_paths import atomic_output

    check_paths(args)
    cfg = load_config(args)
    src = open_source(args.input, topic=args.topic, format=args.input_format, salvage=args.salvage)
    scores = None
    preview_in: list[Events] = []
    preview_out: list[Events] = []
    preview_removed: list[Events] = []
    preview_removed_by: list[np.ndarray] = []
    n_preview = 0
    engine = StreamEngine(cfg.pipeline, cfg.base_dir)  # the node's stream loop, no time pressure
    n_out = n_msgs = n_bad = 0
    t0 = time.perf_counter()

    def emit(decisions, sink):
        nonlocal n_out, n_preview
        for d in decisions:
            sink.write(d.tag, d.keep)
            n_out += int(np.count_nonzero(d.keep))
            if scores:
                scores.append(d.events, d.score, d.keep)
            if args.preview and n_preview < PREVIEW_EVENTS and len(d.events):
                preview_in.append(d.events)
                preview_out.append(d.events[d.keep])
                preview_removed.append(d.events[~d.keep])
                preview_removed_by.append(d.removed_by[~d.keep])
                n_preview += len(d.events)

    with ExitStack() as stack:
        stack.callback(engine.close)  # the learned stages' threads (threads: 2) end with the run
        if args.scores:  # closed before atomic_output renames it (the stack unwinds in reverse)
            scores = ScoreWriter(stack.enter_context(atomic_output(args.scores)))
            stack.callback(scores.close)
        with open_sink(args.output, source=src, format=args.output_format, overwrite=args.overwrite) as sink:
            bar = tqdm(total=getattr(src, "num_packets", None), unit="msg", disable=args.quiet,
                       desc="denoise", file=sys.stderr)
            for item in src:
                if isinstance(item, Passthrough):
                    sink.write_passthrough(item)
                    continue
                bar.update(1)
                error = getattr(item, "error", None)
                if error is not None:  # a message that could not be decoded
                    if args.strict:
                        raise error
                    n_bad += 1
                    tqdm.write(f"eventfx: warning: skipped message {item.index}: {error}", file=sys.stderr)
                    continue
                n_msgs += 1
                emit(engine.push(item.events, tag=item), sink)
            emit(engine.flush(), sink)
            bar.close()
    dt = time.perf_counter() - t0
    if args.preview and preview_in:
        write_preview(args.preview, concat(preview_in), concat(preview_out),
                      f"{Path(args.input).name}: {' -> '.join(cfg.pipeline.stages) or 'pass-through'}",
                      concat(preview_removed), np.concatenate(preview_removed_by),
                      list(cfg.pipeline.stages))
    n_in, resets = engine.counters.events_in, engine.counters.resets
    outside = engine.counters.events_out_of_range
    if outside:
        from ..errors import warn
        warn(f"{args.input}: {outside:,} events lie outside the sensor size the input states and were "
             f"dropped (counted in 'events in', never kept)")
    frac = n_out / n_in if n_in else 0.0
    print(f"{n_msgs} messages, {n_in:,} events in, {n_out:,} kept ({100 * frac:.1f} %), "
          f"{n_bad} undecodable messages skipped, {resets} time resets, "
          f"{n_in / dt / 1e6 if dt > 0 else 0:.2f} M events/s -> {args.output}")
    return 0
