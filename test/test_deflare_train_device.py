"""Deflarer training: crop-only voxel grids, batch worker processes and the device option
(no GPU needed: the device path is checked up to its config and its CPU-only checkpoints)."""
import argparse

import numpy as np
import pytest
import torch

from eventfx_core.config import from_dict
from eventfx_core.deflarer.checkpoint import load_checkpoint
from eventfx_core.deflarer.data import read_labelled
from eventfx_core.deflarer.training import (DeflarerTrainConfig, crop_targets, crop_targets_reference, draw_crops,
                                            run, windows_of)
from eventfx_core.errors import ConfigError

from test_deflare_train import archives, tiny_config  # noqa: F401  (archives is a fixture)


@pytest.mark.parametrize("cell", [1, 2, 3, 4])
def test_crop_grids_equal_the_whole_sensor_grids_cropped(archives, cell):  # noqa: F811
    """Crops at the sensor's edges too (3-px cells leave partial last cells on 40 x 32)."""
    _, train, _ = archives
    cfg = from_dict(DeflarerTrainConfig, {**tiny_config(1), "voxel": {"cell_px": cell},
                                          "model": {"channels": [4, 8], "in_channels": 2},
                                          "train": {"batch": 6, "crop": 24, "thin_prob": 0.5}}, "t")
    ev, lab = read_labelled(train[0])
    samples = windows_of(ev, lab, cfg.voxel, 50)
    plans = [p for _ in range(10) for p in draw_crops(samples, cfg, np.random.default_rng(cell))]
    edges = 0
    for p in plans:
        s = samples[p.sample]
        _, rows, cols = cfg.voxel.grid_shape(40, 32)
        edges += p.window[1].stop == cols or p.window[0].stop == rows
        fast = crop_targets(s, cfg.voxel, 2, 8.0, p.window)
        ref = crop_targets_reference(s, cfg.voxel, 2, 8.0, p.window)
        for a, b in zip(fast, ref):
            assert a.shape == b.shape and np.array_equal(a, b)
    assert edges > 0


def test_batch_workers_give_the_same_weights_and_cpu_checkpoints(archives, tmp_path):  # noqa: F811
    """train.workers builds the batches in other processes from crops drawn here in step order:
    the same weights as in-process batches, and a resume state (generator state included) that
    continues the same run; every tensor of the checkpoint is on the CPU and loads with
    weights_only."""
    d, _, _ = archives

    def cfg(epochs, out, workers):
        c = tiny_config(epochs)
        return {**c, "data": {"train": c["data"]["train"]}, "output": str(tmp_path / out),
                "train": {**c["train"], "workers": workers, "device": "cpu"}}
    args = argparse.Namespace(config=str(d / "deflarer.yaml"), resume=False, progress=False)
    assert run(cfg(2, "inproc.pt", 0), args) == 0
    assert run(cfg(1, "workers.pt", 2), args) == 0
    assert run(cfg(2, "workers.pt", 2), argparse.Namespace(**{**vars(args), "resume": True})) == 0
    a, b = load_checkpoint(tmp_path / "inproc.pt"), load_checkpoint(tmp_path / "workers.pt")
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    blob = torch.load(tmp_path / "workers.pt", map_location="meta", weights_only=True)
    tensors = [blob["tensors"][k] for k in blob["tensors"]]
    state = blob["resume"]["optimizer"]["state"]
    tensors += [t for s in state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    assert len(tensors) > 3 * len(blob["tensors"]) - 1
    raw = torch.load(tmp_path / "workers.pt", weights_only=True)  # where the file itself put them
    assert all(t.device.type == "cpu" for t in raw["tensors"].values())
    assert all(t.device.type == "cpu" for s in raw["resume"]["optimizer"]["state"].values()
               for t in s.values() if isinstance(t, torch.Tensor))


def test_device_and_workers_config_errors():
    for bad in ({"device": "tpu"}, {"device": "gpu0"}, {"workers": -1}):
        with pytest.raises(ConfigError):
            from_dict(DeflarerTrainConfig, {"kind": "deflarer", "train": bad}, "t")
    assert from_dict(DeflarerTrainConfig, {"kind": "deflarer", "train": {"device": "cuda:1"}}, "t").train.device == "cuda:1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_error(archives, tmp_path):  # noqa: F811
    d, _, _ = archives
    c = tiny_config(1)
    with pytest.raises(ConfigError, match="no CUDA device"):
        run({**c, "output": str(tmp_path / "x.pt"), "train": {**c["train"], "device": "cuda"}},
            argparse.Namespace(config=str(d / "deflarer.yaml"), resume=False, progress=False))
