"""`eventfx train` for the denoiser: loss goes down, kill + resume == uninterrupted, DDP on gloo."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from eventfx_core.events import Events
from eventfx_core.io.archive import write_archive
from eventfx_core.denoiser.data import IGNORE, LaneSampler, class_of_label

REPO = Path(__file__).resolve().parents[1]


def _synthetic_archive(path: Path, seed: int, n_signal=3000, n_noise=1500, n_flare=600) -> None:
    """Signal: a bar sweeping across a 32x32 sensor (dense in space-time); noise: uniform
    random events; flare: a flickering blob at a fixed place (label 2); a few light-source
    events (label 3)."""
    rng = np.random.default_rng(seed)
    dur = 200_000
    ts = np.sort(rng.integers(0, dur, n_signal))
    xs = (ts * 32 // dur + rng.integers(-1, 2, n_signal)).clip(0, 31)
    ys = rng.integers(0, 32, n_signal)
    tn = rng.integers(0, dur, n_noise)
    tf = (rng.integers(0, dur // 10_000, n_flare) * 10_000 + rng.integers(0, 1500, n_flare))
    t = np.concatenate([ts, tn, tf, tf[:50] + 1])
    x = np.concatenate([xs, rng.integers(0, 32, n_noise), rng.integers(22, 28, n_flare), np.full(50, 25)])
    y = np.concatenate([ys, rng.integers(0, 32, n_noise), rng.integers(2, 8, n_flare), np.full(50, 5)])
    p = rng.integers(0, 2, len(t))
    lab = np.concatenate([np.zeros(n_signal), np.ones(n_noise), np.full(n_flare, 2), np.full(50, 3)])
    order = np.argsort(t, kind="stable")
    ev = Events.from_arrays(t[order], x[order], y[order], p[order], 32, 32)
    write_archive(path, ev, lab[order].astype(np.uint8), meta={"test": True})


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    d = tmp_path_factory.mktemp("archives")
    for i in range(2):
        _synthetic_archive(d / f"train_{i}.h5", seed=i)
    _synthetic_archive(d / "val_0.h5", seed=10)
    return d


def _config(archives: Path, out: Path, **train) -> dict:
    t = dict(steps=12, batch=4, chunk_len=64, window_chunks=4, lr=0.01, warmup_steps=2,
             checkpoint_every=4, log_every=1, seed=3, threads=1)
    t.update(train)
    return {"kind": "denoiser", "output": str(out),
            "data": {"train": [str(archives / "train_*.h5")], "val": [str(archives / "val_0.h5")],
                     "cache_dir": str(archives / "cache"), "val_max_events": 2000},
            "model": {"d_model": 8, "n_layers": 1, "d_state": 8, "headdim": 4, "chunk_len": 16},
            "train": t}


def _write(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    env.pop("WORLD_SIZE", None)
    return env


def _run(*argv, check=True):
    out = subprocess.run([sys.executable, "-m", "eventfx_core", *argv], capture_output=True,
                         text=True, timeout=300, env=_env(), cwd=REPO)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_label_mapping_and_lanes_are_deterministic(archives, tmp_path):
    lut = class_of_label(["signal", "noise", "flare"])
    assert lut[:4].tolist() == [0, 1, 2, 0]  # light source trains as signal
    assert class_of_label(["signal", "noise", "flare", "light_source"])[3] == 3
    from eventfx_core.denoiser.features import FeatureConfig
    from eventfx_core.denoiser.data import load_archive_features
    data = [load_archive_features(archives / "train_0.h5", FeatureConfig(), tmp_path)]
    assert data[0].features.shape == (len(data[0]), 16) and (data[0].dt_us >= 0).all()
    a = LaneSampler(data, 3, 64, 4, seed=1, rank=0)
    b = LaneSampler(data, 3, 64, 4, seed=1, rank=1)
    f1, d1, c1, new1 = a.batch_at(5, lut)
    f2, _, _, _ = LaneSampler(data, 3, 64, 4, seed=1, rank=0).batch_at(5, lut)
    assert np.array_equal(f1, f2) and not new1 and a.batch_at(8, lut)[3]
    assert not np.array_equal(f1, b.batch_at(5, lut)[0])
    assert set(np.unique(c1)) <= {IGNORE, 0, 1, 2}


def test_training_lowers_the_loss(archives, tmp_path):
    from argparse import Namespace

    from eventfx_core.denoiser.checkpoint import load_checkpoint
    from eventfx_core.denoiser.training import run

    cfg = _config(archives, tmp_path / "run", steps=60, checkpoint_every=20, lr=0.02)
    assert run(cfg, Namespace(config=None, progress=False)) == 0
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in recs if r["split"] == "train"]
    assert np.mean(train[-10:]) < 0.8 * np.mean(train[:5]), (train[:5], train[-10:])
    val = [r for r in recs if r["split"] == "val"]
    assert len(val) == 3 and val[-1]["loss"] < val[0]["loss"] + 1e-9
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("step,split,loss")
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ck.training["class_counts"][0] > 0 and ck.model_config.d_model == 8
    load_checkpoint(tmp_path / "run" / "final.pt")


@pytest.mark.slow
def test_killed_and_resumed_training_equals_uninterrupted(archives, tmp_path):
    whole = _write(_config(archives, tmp_path / "whole"), tmp_path / "whole.yaml")
    split = _write(_config(archives, tmp_path / "split"), tmp_path / "split.yaml")
    _run("train", "--config", str(whole), "--no-progress")
    killed = _run("train", "--config", str(split), "--no-progress", "--kill-at-step", "7", check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "split" / "final.pt").exists()
    _run("train", "--config", str(split), "--no-progress", "--resume")
    a = torch.load(tmp_path / "whole" / "final.pt", weights_only=True)["tensors"]
    b = torch.load(tmp_path / "split" / "final.pt", weights_only=True)["tensors"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    steps = [int(r.split(",")[0]) for r in rows[1:] if r.split(",")[1] == "train"]
    assert steps == list(range(1, 13))  # the killed run's steps 5-7 were dropped, then redone


@pytest.mark.slow
def test_resume_with_another_config_is_refused(archives, tmp_path):
    cfg = _config(archives, tmp_path / "r")
    _run("train", "--config", str(_write(cfg, tmp_path / "a.yaml")), "--no-progress",
         "--kill-at-step", "5", check=False)
    cfg["train"]["lr"] = 0.5
    out = _run("train", "--config", str(_write(cfg, tmp_path / "b.yaml")), "--resume", check=False)
    assert out.returncode == 2 and "different config" in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_on_gloo(archives, tmp_path):
    cfg = _write(_config(archives, tmp_path / "ddp", steps=8), tmp_path / "ddp.yaml")
    torchrun = Path(sys.executable).with_name("torchrun")
    out = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                          "--master_port", str(_free_port()), "-m", "eventfx_core", "train",
                          "--config", str(cfg), "--no-progress"],
                         capture_output=True, text=True, timeout=300, env=_env(), cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    meta = json.loads(torch.load(tmp_path / "ddp" / "final.pt", weights_only=True)["meta"])
    assert meta["training"]["world_size"] == 2 and meta["training"]["step"] == 8


def test_unknown_training_kind_is_one_line_error(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("kind: teleporter\n")
    out = _run("train", "--config", str(cfg), check=False)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "kind" in out.stderr


def _prefilter_params(path: Path) -> Path:
    """A pipeline params file whose hot_pixel and stcf settings the cascade prefilter must use
    (not the defaults: a prefilter that read other settings keeps other events)."""
    params = {"stages": ["hot_pixel", "stcf", "mamba"],
              "hot_pixel": {"window_us": 50_000, "max_rate_hz": 60.0, "busy_share": 0.9},
              "stcf": {"time_window_us": 20_000, "k": 2}}
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    return path


def test_cascade_prefilter_keeps_what_the_pipeline_stages_keep(archives, tmp_path):
    """Cascade training (Viola and Jones 2001): the features are those of the events that
    hot_pixel -> stcf keep, the filters chained by hand over the whole stream as the oracle,
    whatever the archive's chunking."""
    from eventfx_core.denoiser.data import load_archive_features
    from eventfx_core.denoiser.features import FeatureConfig, FeatureExtractor
    from eventfx_core.denoiser.training import DataConfig, prefilter_pipeline
    from eventfx_core.filters.hot_pixel import HotPixelFilter
    from eventfx_core.filters.stcf import SpatioTemporalCorrelationFilter
    from eventfx_core.io.archive import ArchiveReader

    data = DataConfig(prefilter=["hot_pixel", "stcf"], prefilter_config="pipe.yaml")
    _prefilter_params(tmp_path / "pipe.yaml")
    pre = prefilter_pipeline(data, tmp_path)
    assert pre.stages == ["hot_pixel", "stcf"] and pre.stage_configs["stcf"].k == 2
    path = archives / "train_0.h5"
    with ArchiveReader(path) as r:
        ev, lab = r.read(0, r.n)
    hp = HotPixelFilter(pre.stage_configs["hot_pixel"], sensor=(32, 32))
    stcf = SpatioTemporalCorrelationFilter(pre.stage_configs["stcf"], sensor=(32, 32))
    k1 = hp.process(ev).keep
    keep = np.zeros(len(ev), bool)
    keep[np.flatnonzero(k1)[stcf.process(ev[k1]).keep]] = True
    assert 0 < keep.sum() < 0.9 * len(ev) and (~k1).any()  # both stages remove something here
    survivors = ev[keep]
    want = FeatureExtractor(FeatureConfig(), 32, 32).extract(survivors)
    fc = FeatureConfig()
    got = load_archive_features(path, fc, tmp_path / "cache", chunk_events=777, prefilter=pre)
    assert np.array_equal(np.asarray(got.labels), lab[keep])
    np.testing.assert_allclose(np.asarray(got.features), want, rtol=1e-5, atol=1e-6)
    gaps = np.maximum(np.diff(survivors.t, prepend=survivors.t[0]), 0)
    assert np.array_equal(np.asarray(got.dt_us), gaps.astype(np.float32))
    # cached apart from the unfiltered features, which stay those of every event
    whole = load_archive_features(path, fc, tmp_path / "cache")
    assert len(whole) == len(ev) and len(got) == keep.sum()
    # the noise share behind the filters is what the model learns on
    assert (lab[keep] == 1).mean() < (lab == 1).mean()


def test_cascade_training_learns_on_the_prefiltered_stream(archives, tmp_path):
    from argparse import Namespace

    from eventfx_core.denoiser.checkpoint import load_checkpoint
    from eventfx_core.denoiser.training import run
    from eventfx_core.errors import ConfigError

    cfg = _config(archives, tmp_path / "run", steps=4)
    cfg["data"].update(prefilter=["hot_pixel", "stcf"], prefilter_config=str(_prefilter_params(tmp_path / "p.yaml")))
    assert run(cfg, Namespace(config=None, progress=False)) == 0
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert [s for s, _ in ck.training["prefilter"]] == ["hot_pixel", "stcf"]
    assert ck.training["prefilter"][1][1]["time_window_us"] == 20_000
    plain = _config(archives, tmp_path / "plain", steps=4)
    assert run(plain, Namespace(config=None, progress=False)) == 0
    n_pre = sum(ck.training["class_counts"])
    n_all = sum(load_checkpoint(tmp_path / "plain" / "best.pt").training["class_counts"])
    assert 0 < n_pre < 0.9 * n_all  # trained on the survivors only
    for bad in (["mamba"], ["stcf", "deflare"]):
        cfg["data"]["prefilter"] = bad
        with pytest.raises(ConfigError, match="prefilter"):
            run(cfg, Namespace(config=None, progress=False))


def test_shipped_cascade_config_prefilters_with_the_default_pipelines_settings():
    from eventfx_core.config import from_dict
    from eventfx_core.denoiser.training import DataConfig, prefilter_pipeline
    from eventfx_core.pipeline_config import load_denoise_config

    for name in ("denoiser_cascade.yaml", "denoiser_cascade_real.yaml"):
        raw = yaml.safe_load((REPO / "training" / name).read_text())
        data = from_dict(DataConfig, raw["data"], "data")
        pre = prefilter_pipeline(data, REPO / "training")
        default = load_denoise_config(REPO / "config" / "denoise.yaml").pipeline
        assert pre.stages == default.stages[:2] == ["hot_pixel", "stcf"]
        assert all(pre.stage_configs[s] == default.stage_configs[s] for s in pre.stages)
