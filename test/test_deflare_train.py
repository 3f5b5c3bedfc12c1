"""Training the deflarer on tiny labelled archives, and its metrics."""
import argparse
import json

import numpy as np
import pytest
import torch

from eventfx_core.deflarer.checkpoint import load_checkpoint
from eventfx_core.deflarer.data import read_labelled
from eventfx_core.deflarer.metrics import chamfer_distance, evaluate_deflarer, f1, summarise, label_counts
from eventfx_core.deflarer.stage import DeflareStage
from eventfx_core.deflarer.training import (DeflarerTrainConfig, deflarer_loss, make_batch, run, weighted_mse,
                                        windows_of)
from eventfx_core.deflarer.model import ResidualUNet3D
from eventfx_core.config import from_dict
from eventfx_core.errors import ConfigError
from eventfx_core.events import Events
from eventfx_core.io.archive import write_archive

W, H = 40, 32


def synth(seed, duration_us=200_000):
    """Background edge (0), noise (1), a dense flickering flare disc (2), its light source (3)."""
    rng = np.random.default_rng(seed)
    parts = []
    n_bg = duration_us // 100
    t = rng.integers(0, duration_us, n_bg)
    parts.append((t, (5 + t * 30 // duration_us) % W, rng.integers(0, H, n_bg), rng.integers(0, 2, n_bg), 0))
    n_no = duration_us // 400
    parts.append((rng.integers(0, duration_us, n_no), rng.integers(0, W, n_no), rng.integers(0, H, n_no),
                  rng.integers(0, 2, n_no), 1))
    cx, cy = 26, 14
    n_fl = duration_us // 20
    t = rng.integers(0, duration_us, n_fl)
    r, a = rng.random(n_fl) * 7, rng.random(n_fl) * 2 * np.pi
    parts.append((t, np.clip(cx + r * np.cos(a), 0, W - 1).astype(int), np.clip(cy + r * np.sin(a), 0, H - 1).astype(int),
                  ((t // 5000) % 2).astype(int), 2))  # 100 Hz flicker: polarity alternates
    n_ls = duration_us // 200
    parts.append((rng.integers(0, duration_us, n_ls), np.full(n_ls, cx), np.full(n_ls, cy), rng.integers(0, 2, n_ls), 3))
    t = np.concatenate([p[0] for p in parts]); order = np.argsort(t, kind="stable")  # noqa: E702
    cols = [np.concatenate([np.broadcast_to(p[i], p[0].shape) for p in parts])[order] for i in range(5)]
    return cols


def write_labelled(path, seed):
    t, x, y, p, label = synth(seed)
    write_archive(path, Events.from_arrays(t, x, y, p, W, H), np.asarray(label, np.uint8))
    return path


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    d = tmp_path_factory.mktemp("arch")
    (d / "train").mkdir(); (d / "val").mkdir()  # noqa: E702
    return d, [write_labelled(d / "train" / f"a{i}.h5", i) for i in range(2)], [write_labelled(d / "val" / "v.h5", 9)]


def tiny_config(epochs):
    return {"kind": "deflarer", "data": {"train": ["train/*.h5"], "val": ["val/*.h5"]},
            "model": {"channels": [4, 8], "input_clip": 8.0},
            "train": {"epochs": epochs, "steps": 12, "batch": 2, "crop": 32, "lr": 1e-2, "threads": 1, "val_every": 1},
            "output": "out/deflarer.pt"}


def test_train_writes_a_checkpoint_that_learns_and_resumes(archives, capsys):
    d, train, val = archives
    args = argparse.Namespace(config=str(d / "deflarer.yaml"), resume=False)
    assert run(tiny_config(2), args) == 0
    text = capsys.readouterr().out
    assert "epoch 2/2" in text and "removal_f1=" in text and "chamfer=" in text
    ck = load_checkpoint(d / "out" / "deflarer.pt")
    assert ck.sensor == (W, H) and ck.training["epoch"] == 2 and ck.resume["step"] == 24
    # on fixed crops the trained model fits the flare-free target better than the identity
    cfg = from_dict(DeflarerTrainConfig, tiny_config(2), "t")
    ev, lab = read_labelled(train[0])
    b = make_batch(windows_of(ev, lab, cfg.voxel, 50), cfg, np.random.default_rng(5))
    with torch.no_grad():
        assert weighted_mse(ck.model(b.x), b.y, b.weight) < 0.9 * weighted_mse(b.x, b.y, b.weight)
    # resume continues after epoch 2
    assert run(tiny_config(3), argparse.Namespace(config=str(d / "deflarer.yaml"), resume=True)) == 0
    text = capsys.readouterr().out
    assert "resuming" in text and "epoch 3/3" in text and "epoch 1/3" not in text
    assert load_checkpoint(d / "out" / "deflarer.pt").training["epoch"] == 3


def test_resumed_training_equals_uninterrupted(archives, tmp_path):
    """The resume state carries the crop sampler's random state: 1 epoch + 1 resumed epoch
    gives the very weights of 2 epochs in one run; the JSONL log reads as one run."""
    d, _, _ = archives

    def cfg(epochs, out):
        c = tiny_config(epochs)
        return {**c, "data": {"train": c["data"]["train"]}, "output": str(tmp_path / out)}
    args = argparse.Namespace(config=str(d / "deflarer.yaml"), resume=False, progress=False)
    assert run(cfg(2, "whole.pt"), args) == 0
    assert run(cfg(1, "split.pt"), args) == 0
    assert run(cfg(2, "split.pt"), argparse.Namespace(**{**vars(args), "resume": True})) == 0
    a, b = load_checkpoint(tmp_path / "whole.pt"), load_checkpoint(tmp_path / "split.pt")
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "split.metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 12, 20, 24]


def mask_config(epochs, **train):
    cfg = tiny_config(epochs)
    return {**cfg, "model": {**cfg["model"], "in_channels": 2, "mask_head": True},
            "train": {**cfg["train"], "light_cell_weight": 2.0, **train}}


def test_flare_share_targets_of_a_batch(archives):
    d, train, _ = archives
    cfg = from_dict(DeflarerTrainConfig, mask_config(1, batch=6, flare_crop_prob=1.0), "t")
    ev, lab = read_labelled(train[0])
    b = make_batch(windows_of(ev, lab, cfg.voxel, 50), cfg, np.random.default_rng(1))
    assert b.x.shape[1] == 2 and b.y.shape[1] == b.share.shape[1] == 1
    occupied = b.x[:, 1:] > 0  # the count channel
    assert ((b.share >= 0) & (b.share <= 1)).all()
    assert torch.equal(b.share_weight > 0, occupied)  # empty cell-bins are out of the loss
    assert (b.share[occupied] == 1).any() and (b.share[occupied] == 0).any()  # pure flare, pure rest
    mixed = (b.share > 0.05) & (b.share < 0.95)
    assert mixed.any()  # the light source sits inside its flare
    # light events counted 4x in the denominator: same crops, lower share exactly where light is
    cfg4 = from_dict(DeflarerTrainConfig, mask_config(1, batch=6, flare_crop_prob=1.0, light_target_weight=4.0), "t")
    b4 = make_batch(windows_of(ev, lab, cfg.voxel, 50), cfg4, np.random.default_rng(1))
    assert torch.equal(b4.x, b.x) and (b4.share <= b.share + 1e-6).all()
    lowered = b4.share < b.share - 1e-6
    assert lowered.any() and (b.share[lowered] > 0).all()


def test_a_few_steps_lower_the_mask_loss(archives):
    d, train, _ = archives
    cfg = from_dict(DeflarerTrainConfig, mask_config(1, batch=4), "t")
    ev, lab = read_labelled(train[0])
    b = make_batch(windows_of(ev, lab, cfg.voxel, 50), cfg, np.random.default_rng(2))
    torch.manual_seed(0)
    model = ResidualUNet3D(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        first = float(deflarer_loss(model(b.x), b, cfg.train))
        mse0 = float(weighted_mse(model(b.x)[:, :1], b.y, b.weight))
    for _ in range(25):
        loss = deflarer_loss(model(b.x), b, cfg.train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = model(b.x)
        assert float(deflarer_loss(out, b, cfg.train)) < 0.7 * first
        assert float(weighted_mse(out[:, :1], b.y, b.weight)) < mse0  # the residual grid learns too
    # a training run writes a checkpoint with the mask head, and its validation uses it
    args = argparse.Namespace(config=str(d / "mask.yaml"), resume=False)
    assert run({**mask_config(1), "output": "out/mask.pt"}, args) == 0
    ck = load_checkpoint(d / "out" / "mask.pt")
    assert ck.model.config.mask_head and ck.model.config.in_channels == 2


def test_thinning_keeps_signal_and_light_and_thins_noise_and_flare():
    from eventfx_core.deflarer.training import WindowSample, thinned
    rng = np.random.default_rng(0)
    n = 4000
    labels = rng.integers(0, 4, n).astype(np.uint8)
    ev = Events.from_arrays(np.arange(n), rng.integers(0, 32, n), rng.integers(0, 24, n),
                            rng.integers(0, 2, n), 32, 24)
    s = WindowSample(ev, labels, 0)
    none, half, all_ = (thinned(s, k, np.random.default_rng(1)) for k in (0.0, 0.5, 1.0))
    assert len(all_.events) == n and np.array_equal(all_.labels, labels)
    assert set(np.unique(none.labels)) == {0, 3} and len(none.labels) == int(np.isin(labels, (0, 3)).sum())
    for lab in (1, 2):  # about half of the noise and flare stays, all signal and light source
        assert abs((half.labels == lab).sum() / (labels == lab).sum() - 0.5) < 0.05
    for lab in (0, 3):
        assert (half.labels == lab).sum() == (labels == lab).sum()
    assert np.all(np.diff(half.events.t) > 0)  # a subset, in order


def test_train_config_errors(archives):
    d, _, _ = archives
    args = argparse.Namespace(config=str(d / "deflarer.yaml"))
    with pytest.raises(ConfigError, match="matches no file"):
        run({**tiny_config(1), "data": {"train": ["nothing/*.h5"]}}, args)
    with pytest.raises(ConfigError, match="unknown key"):
        run({**tiny_config(1), "learning_rate": 1}, args)
    with pytest.raises(ConfigError, match="light_cell_weight must be >= 0"):
        run(mask_config(1, light_cell_weight=-1.0), args)
    with pytest.raises(ConfigError, match="thin_prob"):
        run(mask_config(1, thin_prob=1.5), args)


def test_chamfer_and_f1_definitions():
    a = Events.from_arrays([0, 1000], [0, 3], [0, 4], [1, 1], 10, 10)
    assert chamfer_distance(a, a) == 0.0
    b = Events.from_arrays([0], [0], [0], [1], 10, 10)
    # a->b: 0 and 5.099 (3,4,1 ms); b->a: 0  => 0.5 * (2.5495 + 0)
    assert chamfer_distance(a, b) == pytest.approx(0.5 * np.sqrt(26) / 2, rel=1e-5)
    assert np.isnan(chamfer_distance(a, Events.empty(10, 10)))
    assert f1(3, 1, 1) == pytest.approx(0.75)
    labels = np.array([0, 0, 2, 2, 2, 3, 1], np.uint8)
    keep = np.array([1, 1, 0, 0, 1, 1, 0], bool)
    m = summarise(label_counts(labels, keep), [], [])
    assert m["flare_removed_pct"] == pytest.approx(200 / 3) and m["signal_kept_pct"] == 100
    assert m["light_kept_pct"] == 100 and m["noise_kept_pct"] == 0
    assert m["removal_f1"] == pytest.approx(f1(2, 1, 1)) and m["retention_f1"] == pytest.approx(f1(3, 1, 1))


def test_evaluate_identity_stage_keeps_all(archives, tmp_path):
    from eventfx_core.deflarer.checkpoint import save_checkpoint
    from eventfx_core.deflarer.model import ResidualUNet3D, UNet3DConfig
    from eventfx_core.deflarer.voxel import VoxelSpec
    _, _, val = archives
    ck = save_checkpoint(tmp_path / "id.pt", ResidualUNet3D(UNet3DConfig((4, 8))), VoxelSpec(), (W, H))
    m = evaluate_deflarer(val, DeflareStage(DeflareStage.Config(checkpoint=str(ck)), (W, H)))
    assert m["flare_removed_pct"] == 0 and m["signal_kept_pct"] == 100 and m["windows"] == 10
    assert m["chamfer"] > 0 and m["voxel_mse"] > 0 and m["retention_f1"] < 1
