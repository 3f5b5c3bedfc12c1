"""``eventfx train --config FILE``: train a model; the config's ``kind:`` picks which.

    kind: denoiser  -> eventfx_core.denoiser.training.run   (the stateful Mamba2 denoiser)
    kind: deflarer  -> eventfx_core.deflarer.training.run    (the voxel 3D U-Net deflarer)

Both get the whole config mapping and these arguments. Several processes:
``torchrun --nproc_per_node N -m eventfx_core train --config FILE`` (DDP; gloo on a CPU).
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from ..config import load_yaml
from ..errors import ConfigError

TRAINERS = {
    "denoiser": "eventfx_core.denoiser.training",
    "deflarer": "eventfx_core.deflarer.training",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the denoiser or the deflarer from a training config",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training config (YAML with kind: denoiser|deflarer)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last saved training state in the output folder")
    p.add_argument("--output", help="output folder or checkpoint (overrides the config's output)")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh where the output already holds a checkpoint (else refused; see --resume)")
    p.add_argument("--max-minutes", type=float, dest="max_minutes",
                   help="deflarer: stop and save after this many minutes")
    p.add_argument("-q", "--quiet", action="store_false", dest="progress", help="no progress bar")
    p.add_argument("--no-progress", action="store_false", dest="progress", help=argparse.SUPPRESS)  # old spelling
    p.add_argument("--kill-at-step", type=int, dest="kill_at_step", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args) -> int:
    config = load_yaml(args.config)
    kind = config.get("kind")
    if kind not in TRAINERS:
        raise ConfigError(f"{args.config}: kind must be one of {', '.join(TRAINERS)}, got {kind!r}")
    check_output(args, config)
    return int(importlib.import_module(TRAINERS[kind]).run(config, args) or 0)


def check_output(args, config: dict) -> None:
    """Before any work: a checkpoint the user already has is replaced only with --overwrite (or
    continued with --resume); missing parent folders are created (``io.output_paths``)."""
    from ..errors import EventfxError
    from ..io.output_paths import make_parent

    out = args.output or config.get("output")
    if not out:
        return
    path = Path(out).expanduser()
    if not path.is_absolute():
        path = Path(args.config).resolve().parent / path
    has = path.is_file() or (path.is_dir() and any(path.glob("*.pt")))
    if has and not (getattr(args, "resume", False) or getattr(args, "overwrite", False)):
        raise EventfxError(f"output {path} already holds a checkpoint; continue it with --resume, "
                           f"replace it with --overwrite, or choose another --output")
    make_parent(path, "output")
