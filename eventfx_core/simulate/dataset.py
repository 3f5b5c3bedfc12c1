"""Writing a labelled synthetic dataset: one eventfx archive per sequence, split into
train/val/test folders by sequence index, generated in parallel processes, resumable.

    DIR/dataset.json                 config + fingerprint of the dataset
    DIR/{train,val,test}/seq_NNNNN.h5  eventfx archives with labels (``eventfx_core.io.archive``)

A sequence depends only on (config, seed, index), so worker count and ``--shard`` never change
it; the test and val splits take the first indices, so a larger ``train_sequences`` grows the
train split of an existing folder without touching the others. An archive is written as
``seq_NNNNN.h5.partial`` and renamed when its writer has closed (the archive's ``complete``
flag is set then too): a rerun skips finished sequences (same fingerprint), rewrites partial
ones, and refuses to mix in files of another config.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

from ..config import from_dict
from ..errors import EventfxError
from .flare import find_flare7k
from .sequence import GenerateConfig, make_sequence

GENERATOR_VERSION = 4  # bump when the simulation changes what a (config, seed) produces
#                       (3: test and val come first, so train can grow; 4: radial shimmer)


def fingerprint(cfg: GenerateConfig) -> str:
    """What a sequence of this dataset depends on: everything but ``train_sequences`` (the
    train split comes last, so raising it and rerunning adds sequences and keeps the rest)."""
    config = asdict(cfg)
    config.pop("train_sequences")
    # settings added later leave old datasets' fingerprints alone while they are off
    if not cfg.randomise.enabled:
        config.pop("randomise")
    if cfg.noise.silent_fraction == 0:
        config["noise"].pop("silent_fraction")
    blob = json.dumps({"config": config, "version": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sequence_path(out: Path, cfg: GenerateConfig, index: int) -> Path:
    return out / cfg.split_of(index) / f"seq_{index:05d}.h5"


def finished(path: Path, fp: str) -> bool:
    """True if ``path`` is a complete archive of this fingerprint; raise if it belongs to
    another dataset; False if it is missing or incomplete (to be rewritten)."""
    if not path.exists():
        return False
    import h5py
    try:
        with h5py.File(path, "r") as f:
            complete = bool(f.attrs.get("complete", False))
            meta = json.loads(f.attrs.get("meta", "{}"))
    except (OSError, ValueError):
        return False  # unreadable leftover: rewrite it
    if not complete:
        return False
    if meta.get("fingerprint") != fp:
        raise EventfxError(f"{path} was generated with another config or seed (fingerprint "
                           f"{meta.get('fingerprint')}, now {fp}); use a new --out folder")
    return True


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left" in str(exc))


_RECORDINGS: dict = {}  # per worker process: loaded background recordings


def generate_one(cfg_dict: dict, index: int, path: str, fp: str, flare7k) -> tuple[int, int, float]:
    """Simulate sequence ``index`` and write its archive; returns (index, events, seconds)."""
    import cv2
    from ..io.archive import ArchiveWriter
    from .background import read_recording

    cv2.setNumThreads(1)  # the processes are the parallelism
    t0 = time.perf_counter()
    cfg = from_dict(GenerateConfig, cfg_dict, "generate")
    recs = None
    if cfg.background.recording_probability > 0:
        key = tuple(cfg.background.recordings)
        if key not in _RECORDINGS:
            _RECORDINGS[key] = [read_recording(p, cfg.background.max_events_read) for p in key]
        recs = _RECORDINGS[key]
    events, labels, meta = make_sequence(cfg, index, flare7k, recs)
    meta.update(split=cfg.split_of(index), fingerprint=fp, generator_version=GENERATOR_VERSION)
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        with ArchiveWriter(tmp, events.width, events.height, meta=meta, with_labels=True) as w:
            w.append(events, labels)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return index, len(events), time.perf_counter() - t0


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".eventfx-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EventfxError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None


def generate_dataset(cfg: GenerateConfig, out: Path, shard: tuple[int, int] = (0, 1),
                     workers: int = 1, progress: bool = True, log=print) -> dict:
    """Generate the sequences of ``shard`` (i, N: indices with index % N == i) into ``out``.
    Returns a summary dict."""
    from tqdm import tqdm

    out = Path(out)
    fp = fingerprint(cfg)
    _check_writable(out)
    manifest = out / "dataset.json"
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text()).get("fingerprint")
        except (OSError, ValueError):
            old = None
        if old not in (None, fp):
            raise EventfxError(f"{out} holds a dataset of another config or seed (fingerprint "
                               f"{old}, now {fp}); use a new --out folder")
    pairs = find_flare7k(cfg.flare.flare7k_path) if cfg.flare.flare7k_path else None
    for split in ("train", "val", "test"):
        _check_writable(out / split)
    try:
        manifest.write_text(json.dumps({"fingerprint": fp, "generator_version": GENERATOR_VERSION,
                                        "config": asdict(cfg)}, indent=1))
    except OSError as exc:
        raise EventfxError(f"{manifest}: cannot write ({exc.strerror or exc})") from None
    i, n = shard
    todo, skipped = [], 0
    for index in range(i, cfg.n_sequences, n):
        path = sequence_path(out, cfg, index)
        path.with_name(path.name + ".partial").unlink(missing_ok=True)
        if finished(path, fp):
            skipped += 1
        else:
            todo.append(index)
    log(f"eventfx generate: {len(todo)} sequences to write, {skipped} already finished, "
        f"shard {i}/{n}, {workers} worker(s) -> {out}")
    cfg_dict = asdict(cfg)
    total_events, t0 = 0, time.perf_counter()
    bar = tqdm(total=len(todo), unit="seq", disable=not progress)
    done = 0

    def _finish(result):
        nonlocal total_events, done
        total_events += result[1]
        done += 1
        bar.update(1)
        bar.set_postfix(events=total_events)

    try:
        if workers <= 1:
            for index in todo:
                _finish(generate_one(cfg_dict, index, str(sequence_path(out, cfg, index)), fp, pairs))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = [pool.submit(generate_one, cfg_dict, index, str(sequence_path(out, cfg, index)),
                                    fp, pairs) for index in todo]
                pending = set(futs)
                while pending:
                    # FIRST_COMPLETED, so the progress bar moves with every finished sequence
                    fin, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in fin:
                        if f.exception() is not None:
                            for p in pending:
                                p.cancel()
                            raise f.exception()
                        _finish(f.result())
    except OSError as exc:
        if is_disk_full(exc):
            raise EventfxError(f"{out}: disk full; {skipped + done} finished sequences are kept, "
                               "free some space and rerun the same command to resume") from None
        raise EventfxError(f"{out}: cannot write a sequence ({exc})") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return dict(out=str(out), written=done, skipped=skipped, events=total_events,
                seconds=seconds, fingerprint=fp)
