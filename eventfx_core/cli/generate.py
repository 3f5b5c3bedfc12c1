"""``eventfx generate --config training/generate.yaml --out DIR [--shard i/N] [--workers N]
[--seed S]``: write a labelled synthetic training set (see ``eventfx_core.simulate``).

Reproducible by seed (independent of workers and shards), resumable (rerun the same command),
one eventfx archive per sequence under DIR/{train,val,test}/.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..config import from_dict, load_yaml, ros_parameters
from ..errors import EventfxError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "training" / "generate.yaml"


def add_parser(sub) -> None:
    from .common import add_quiet

    p = sub.add_parser("generate", help="generate labelled synthetic training data",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="generate config (default: %(default)s)")
    p.add_argument("--out", help="output folder (required unless --fit-noise)")
    p.add_argument("--shard", default="0/1", help="i/N: generate only sequences with index %% N == i")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default: %(default)s)")
    p.add_argument("--seed", type=int, help="master seed (overrides the config's)")
    add_quiet(p)
    p.add_argument("--fit-noise", metavar="RECORDING",
                   help="instead: fit the noise model to a noise-only recording and print the "
                        "config's noise section")
    p.set_defaults(func=run)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise EventfxError(f"--shard {text!r}: expected i/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise EventfxError(f"--shard {text!r}: need 0 <= i < N")
    return i, n


def load_generate_config(path: str | Path, seed: int | None = None):
    from ..simulate.sequence import GenerateConfig

    data = ros_parameters(load_yaml(path), path)
    cfg = from_dict(GenerateConfig, data, str(path))
    return replace(cfg, seed=seed) if seed is not None else cfg


def run(args) -> int:
    from ..simulate.dataset import generate_dataset

    if args.fit_noise:
        return fit_noise_command(args.fit_noise)
    if not args.out:
        raise EventfxError("--out is required")
    if args.workers < 1:
        raise EventfxError("--workers must be >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EventfxError(f"--out {out} is a file; generate writes a folder (rerun into the same folder resumes)")
    cfg = load_generate_config(args.config, args.seed)
    summary = generate_dataset(cfg, Path(args.out), parse_shard(args.shard), args.workers,
                               progress=not args.quiet)
    rate = summary["events"] / summary["seconds"] if summary["seconds"] > 0 else 0.0
    print(f"eventfx generate: wrote {summary['written']} sequences ({summary['events']} events, "
          f"{summary['seconds']:.1f} s, {rate / 1e3:.0f} k events/s), skipped {summary['skipped']} "
          f"finished; dataset {summary['fingerprint']} in {summary['out']}")
    return 0


def fit_noise_command(path: str) -> int:
    import json

    import yaml

    from ..simulate.fit import fit_noise, read_events

    fit = fit_noise(read_events(path))
    stats = fit.as_dict()
    stats.pop("noise_config")
    print(f"# noise fitted to {path}: {json.dumps(stats)}")
    print(yaml.safe_dump({"noise": {k: round(float(v), 6) for k, v in fit.noise_config().items()}},
                         sort_keys=False), end="")
    return 0
