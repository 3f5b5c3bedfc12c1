"""The one checkpoint schema of both models (denoiser and deflarer), and its upgrade tool.

A checkpoint is ``torch.save`` of plain data only (str, int, float, lists, dicts, tensors), read
back with ``torch.load(weights_only=True)``, so loading never runs pickled code:

    {"format": "eventfx-checkpoint", "format_version": 1,
     "kind": "denoiser" | "deflarer",
     "meta": JSON text {"model_config": {...},     # the network's dataclass config
                        "input_config": {...},     # how events become its input: the feature
                                                   # config (denoiser) or the voxel spec (deflarer)
                        "training": {...},         # what produced the weights (free-form)
                        ...},                      # per kind: feature_names, class_names / sensor
     "tensors": {parameter name: tensor},         # model.state_dict()
     "sha256": hex digest of meta and every tensor's name, dtype, shape and bytes,
     "resume": optional training state (below)}

The resume state (``train_loop``) is the one resume format: ``{"step", "best", "config"
(JSON text the resumed run must match), "optimizer" (its state_dict), "torch_rng",
"extra" (the model's own, e.g. its sampler's random state)}``. A checkpoint with it is still a
deployable checkpoint; ``sha256`` covers meta and weights, not the resume state.

Each model's ``checkpoint.py`` (``denoiser/``, ``deflarer/``) turns this into its model and
configs. Anything wrong -- a missing, truncated or edited file, a checkpoint of the other model,
a newer format -- raises ``ConfigError`` with one line. Files of the formats before this one
("eventfx-denoiser" v1, "eventfx-deflarer" v2, "eventfx-denoiser-train") are refused with the
command that converts them, once, without running any code from them:

    python -m eventfx_core.checkpoint --upgrade OLD.pt NEW.pt [--overwrite]

It follows the output-path policy of every eventfx writer (``io.output_paths``): NEW is never
OLD, an existing NEW is replaced only with ``--overwrite``, and the file is written as
``NEW.partial`` and renamed when complete and checked; a ``NEW.partial`` already there is not
removed without ``--overwrite`` either (``check_output``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ConfigError, EventfxError

FORMAT = "eventfx-checkpoint"
FORMAT_VERSION = 1
KINDS = ("denoiser", "deflarer")
UPGRADE = "python -m eventfx_core.checkpoint --upgrade OLD.pt NEW.pt"
OLD_FORMATS = {"eventfx-denoiser": "denoiser", "eventfx-deflarer": "deflarer",
               "eventfx-denoiser-train": "denoiser"}


@dataclass
class Stored:
    """A checked checkpoint file: its kind, meta (parsed), weights and optional resume state."""
    kind: str
    meta: dict
    tensors: dict[str, torch.Tensor]
    resume: dict | None
    path: Path


def digest(meta: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(meta.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write(path: str | Path, kind: str, meta: dict, model: torch.nn.Module,
          resume: dict | None = None) -> Path:
    """Write ``model``'s weights with ``meta`` (model_config, input_config, training, ...);
    atomic (tmp file + rename)."""
    if kind not in KINDS:
        raise EventfxError(f"checkpoint kind {kind!r}: expected one of {', '.join(KINDS)}")
    missing = {"model_config", "input_config", "training"} - set(meta)
    if missing:
        raise EventfxError(f"checkpoint meta lacks {sorted(missing)}")
    path = Path(path)
    meta_text = json.dumps(meta, sort_keys=True)
    tensors = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "meta": meta_text,
            "tensors": tensors, "sha256": digest(meta_text, tensors)}
    if resume is not None:
        blob["resume"] = resume
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def load_blob(path: Path, what: str = "checkpoint") -> dict:
    """``torch.load(weights_only=True)`` of any eventfx checkpoint file, with one-line errors."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not one
        raise ConfigError(f"{path}: not a checkpoint (not the zip archive torch.save writes; "
                          f"truncated, or another kind of file)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(f"{path}: refused to load: the file holds more than plain tensors and data "
                          f"(checkpoints are loaded with weights_only=True and never run code)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a loadable checkpoint (truncated or corrupt: {reason})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("format"), str):
        raise ConfigError(f"{path}: not an eventfx checkpoint (no format tag)")
    return blob


def read(path: str | Path, kind: str, what: str | None = None) -> Stored:
    """Read and check a checkpoint of ``kind``: format, version, kind, checksum."""
    path = Path(path)
    what = what or f"{kind} checkpoint"
    blob = load_blob(path, what)
    fmt = blob["format"]
    if fmt in OLD_FORMATS:
        raise ConfigError(f"{path}: an old {fmt!r} checkpoint; convert it once with "
                          f"`python -m eventfx_core.checkpoint --upgrade {path} NEW.pt`")
    if fmt != FORMAT:
        raise ConfigError(f"{path}: not an eventfx checkpoint (format {fmt!r})")
    version = blob.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ConfigError(f"{path}: checkpoint format version {version!r} is not supported "
                          f"(this eventfx reads up to {FORMAT_VERSION})")
    if blob.get("kind") != kind:
        raise ConfigError(f"{path}: is a {blob.get('kind')!r} checkpoint, expected a {kind} checkpoint")
    meta_text, tensors = blob.get("meta"), blob.get("tensors")
    if (not isinstance(meta_text, str) or not isinstance(tensors, dict)
            or not all(isinstance(v, torch.Tensor) for v in tensors.values())):
        raise ConfigError(f"{path}: checkpoint lacks its meta or tensors")
    if blob.get("sha256") != digest(meta_text, tensors):
        raise ConfigError(f"{path}: checkpoint contents do not match their checksum (edited or damaged)")
    try:
        meta = json.loads(meta_text)
        if not isinstance(meta, dict) or not {"model_config", "input_config", "training"} <= set(meta):
            raise KeyError("model_config, input_config or training")
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: malformed checkpoint meta ({exc})") from None
    resume = blob.get("resume")
    return Stored(kind, meta, tensors, resume if isinstance(resume, dict) else None, path)


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load ``tensors`` into ``model`` (eval mode) after checking names, shapes and finiteness."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ConfigError(f"{where}: weights do not match the model config (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    for name, t in expected.items():
        if tuple(tensors[name].shape) != tuple(t.shape):
            raise ConfigError(f"{where}: weights do not match the model config ({name} has shape "
                              f"{tuple(tensors[name].shape)}, the model needs {tuple(t.shape)})")
        if tensors[name].is_floating_point() and not torch.isfinite(tensors[name]).all():
            raise ConfigError(f"{where}: weight {name} has non-finite values")
    model.load_state_dict(tensors)
    model.eval()


# ---- the upgrade from the formats before this one (plain data in, plain data out) ----

def _upgrade_denoiser(blob: dict, where: str) -> tuple[dict, dict, dict | None]:
    """"eventfx-denoiser" v1: {meta JSON {model_config, feature_config, feature_names,
    class_names, training}, tensors, sha256}."""
    meta_text, tensors = blob.get("meta"), blob.get("tensors")
    if not isinstance(meta_text, str) or not isinstance(tensors, dict):
        raise ConfigError(f"{where}: old denoiser checkpoint lacks its meta or tensors")
    if blob.get("sha256") != digest(meta_text, tensors):
        raise ConfigError(f"{where}: old checkpoint contents do not match their checksum (edited or damaged)")
    old = json.loads(meta_text)
    meta = {"model_config": old["model_config"], "input_config": old["feature_config"],
            "feature_names": old["feature_names"], "class_names": old["class_names"],
            "training": old.get("training", {})}
    return meta, tensors, None


def _upgrade_denoiser_train(blob: dict, where: str) -> tuple[dict, dict, dict | None]:
    """"eventfx-denoiser-train" v1 (the old resume file): {step, best, config, model, optimizer,
    torch_rng, extra}; the model and feature configs come from the run's config JSON."""
    from .denoiser.features import FeatureConfig, feature_names
    from .config import from_dict

    cfg = json.loads(blob["config"])
    fcfg = from_dict(FeatureConfig, cfg["features"], f"{where}: features")
    meta = {"model_config": cfg["model"], "input_config": cfg["features"],
            "feature_names": feature_names(fcfg), "class_names": cfg["model"]["class_names"],
            "training": {"kind": "eventfx train (denoiser)", "step": int(blob["step"])}}
    resume = {"step": int(blob["step"]), "best": float(blob["best"]), "config": blob["config"],
              "optimizer": blob["optimizer"], "torch_rng": blob["torch_rng"], "extra": blob.get("extra") or {}}
    return meta, blob["model"], resume


def _upgrade_deflarer(blob: dict, where: str) -> tuple[dict, dict, dict | None]:
    """"eventfx-deflarer" v2: {model, voxel, sensor, state_dict, train (epoch, optimizer, loss)}.
    The old per-epoch training state is kept as training info (epoch, loss); its optimizer state
    counted epochs, not steps, and is not carried over."""
    if blob.get("version") != 2:
        raise ConfigError(f"{where}: deflarer checkpoint version {blob.get('version')!r} cannot be "
                          f"upgraded (only version 2); retrain it with "
                          f"`eventfx train --config training/deflarer.yaml`")
    train = blob.get("train") or {}
    training = {"kind": "eventfx train (deflarer)"}
    training.update({k: train[k] for k in ("epoch", "loss") if k in train})
    meta = {"model_config": blob["model"], "input_config": blob["voxel"], "sensor": blob["sensor"],
            "training": training}
    return meta, blob["state_dict"], None


def upgrade(old: str | Path, new: str | Path, overwrite: bool = False) -> Path:
    """Convert a checkpoint of an older eventfx format into this one (weights bit for bit)."""
    from .io.output_paths import atomic_output, check_output

    old, new = Path(old), Path(new)
    check_output(new, inputs=[old], overwrite=overwrite, what="NEW")
    blob = load_blob(old)
    fmt = blob["format"]
    if fmt == FORMAT:
        raise ConfigError(f"{old}: already an {FORMAT!r} checkpoint (format version {blob.get('format_version')})")
    converters = {"eventfx-denoiser": _upgrade_denoiser, "eventfx-denoiser-train": _upgrade_denoiser_train,
                  "eventfx-deflarer": _upgrade_deflarer}
    if fmt not in converters:
        raise ConfigError(f"{old}: format {fmt!r} is not one this tool upgrades ({', '.join(converters)})")
    try:
        meta, tensors, resume = converters[fmt](blob, str(old))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{old}: malformed old checkpoint ({type(exc).__name__}: {exc})") from None
    kind = OLD_FORMATS[fmt]
    meta_text = json.dumps(meta, sort_keys=True)
    out = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "meta": meta_text,
           "tensors": dict(tensors), "sha256": digest(meta_text, tensors)}
    if resume is not None:
        out["resume"] = resume
    if kind == "denoiser":
        from .denoiser.checkpoint import load_checkpoint
    else:
        from .deflarer.checkpoint import load_checkpoint
    with atomic_output(new) as tmp:  # renamed to NEW only when written and checked
        torch.save(out, tmp)
        load_checkpoint(tmp)  # the model's own loader checks that the result rebuilds its model
    return new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eventfx_core.checkpoint",
                                description="Convert a checkpoint of an older eventfx format into the "
                                "current one (the weights are copied bit for bit; no code is run).")
    p.add_argument("--upgrade", nargs=2, metavar=("OLD", "NEW"), required=True,
                   help="read OLD (an old-format checkpoint), write NEW (must not exist)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing NEW (and a NEW.partial left by an interrupted run)")
    args = p.parse_args(argv)
    try:
        out = upgrade(*args.upgrade, overwrite=args.overwrite)
    except EventfxError as exc:
        print(f"eventfx: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
