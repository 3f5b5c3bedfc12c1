"""The residual 3D U-Net, its checkpoints and the windowed ``deflare`` stage."""
import json
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from eventfx_core.config import from_dict
from conftest import random_unet_checkpoint
from eventfx_core.checkpoint import digest
from eventfx_core.deflarer.checkpoint import load_checkpoint, save_checkpoint
from eventfx_core.deflarer.stage import DeflareStage
from eventfx_core.deflarer.decode import event_flare_share_reference, mask_share
from eventfx_core.deflarer.model import (MASK_BIAS_INIT, Conv3d, ResidualUNet3D, UNet3DConfig, depth_to_space,
                                         space_to_depth)
from eventfx_core.deflarer.voxel import input_grids
from eventfx_core.deflarer.voxel import VoxelSpec
from eventfx_core.errors import ConfigError
from eventfx_core.events import Events, concat
from eventfx_core.stages import WindowedStage, stage_class

W, H = 24, 18


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory):
    """A checkpoint whose weights are random (not identity), so decisions vary per event."""
    return random_unet_checkpoint(tmp_path_factory.mktemp("ck") / "random.pt", (W, H), seed=0)


@pytest.fixture(scope="module")
def mask_ckpt(tmp_path_factory):
    """Random weights, count input channel and flare-mask head."""
    return random_unet_checkpoint(tmp_path_factory.mktemp("ck") / "mask.pt", (W, H), seed=3,
                                  in_channels=2, mask_head=True)


@pytest.fixture(scope="module")
def identity_ckpt(tmp_path_factory):
    model = ResidualUNet3D(UNet3DConfig(channels=(4, 8)))
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "identity.pt", model, VoxelSpec(), (W, H))


def make_stage(ckpt, **kw):
    """The U-Net on the whole sensor unless ``gate=True`` is asked for (test_deflare_gate.py)."""
    cfg = from_dict(DeflareStage.Config, {"checkpoint": str(ckpt), "gate": False, **kw}, "deflare")
    return DeflareStage(cfg, sensor=(W, H))


def stream(seed, n, t_end=95000):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, t_end, n))
    # a blob of dense activity (flare-like) plus scattered events
    x = np.where(rng.random(n) < 0.5, rng.integers(8, 13, n), rng.integers(0, W, n))
    y = np.where(rng.random(n) < 0.5, rng.integers(5, 10, n), rng.integers(0, H, n))
    return Events.from_arrays(t, x, y, rng.integers(0, 2, n), W, H)


def run(stage, parts):
    out = [stage.push(p) for p in parts] + [stage.flush()]
    return np.concatenate(out)


@pytest.mark.parametrize("channels,stem,hw", [((4,), 1, (5, 7)), ((4, 8, 8), 2, (18, 24)),
                                              ((4, 8, 8), 2, (13, 29)), ((2, 4, 4, 4), 1, (9, 10)),
                                              ((8, 16, 32), 2, (65, 87))])
def test_untrained_model_is_exact_identity(channels, stem, hw):
    torch.manual_seed(1)
    model = ResidualUNet3D(UNet3DConfig(channels=channels, stem=stem)).eval()
    v = torch.randn(2, 1, 8, *hw) * 3
    with torch.no_grad():
        out = model(v)
    assert torch.equal(out, v)
    # real-valued output: once the head is non-zero, values leave [0, 1] freely
    with torch.no_grad():
        model.head.bias.fill_(-5.0)
        assert model(v).min() < -5
    # the residual really passes through the network (not just the head bias)
    with torch.no_grad():
        model.head.weight.normal_()
        r = model.residual(torch.nn.functional.pad(v, (0, (-hw[1]) % model.multiple, 0, (-hw[0]) % model.multiple)))
        assert r.std() > 0


@pytest.mark.parametrize("in_channels", [1, 2])
def test_untrained_mask_head_model_returns_its_input_on_the_residual_channel(in_channels):
    torch.manual_seed(4)
    model = ResidualUNet3D(UNet3DConfig(channels=(4, 8, 8), in_channels=in_channels, mask_head=True)).eval()
    v = torch.randn(2, in_channels, 8, 13, 29) * 3
    with torch.no_grad():
        out = model(v)
    assert out.shape == (2, 2, 8, 13, 29) and model.out_channels == 2
    assert torch.equal(out[:, :1], v[:, :1])
    # the untrained mask head flags nothing: a constant logit far below the 0.5 share
    assert torch.equal(out[:, 1], torch.full_like(out[:, 1], MASK_BIAS_INIT))
    with torch.no_grad():  # once trained, the logits depend on the input
        model.flare_head.weight.normal_()
        logits = model(v)[:, 1]
    assert logits.std() > 0 and torch.equal(model(v)[:, :1], v[:, :1])
    with pytest.raises(ConfigError, match="in_channels"):
        from_dict(UNet3DConfig, {"in_channels": 3}, "model")


def test_onednn_conv_equals_torch_conv3d_with_gradients():
    torch.manual_seed(2)
    conv = Conv3d(3, 5, 3, padding=1)
    x = torch.randn(1, 3, 4, 9, 11, requires_grad=True)
    ref = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=1)
    out = conv(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    g_ref = torch.autograd.grad(ref.square().sum(), (x, conv.weight))
    g_out = torch.autograd.grad(out.square().sum(), (x, conv.weight))
    for a, b in zip(g_out, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_space_to_depth_round_trip():
    x = torch.arange(2 * 3 * 2 * 4 * 6, dtype=torch.float32).reshape(2, 3, 2, 4, 6)
    y = space_to_depth(x, 2)
    assert y.shape == (2, 12, 2, 2, 3)
    assert torch.equal(y[0, 0 * 4 + 1 * 2 + 0, 1, 1, 2], x[0, 0, 1, 2 * 1 + 1, 2 * 2 + 0])
    assert torch.equal(depth_to_space(y, 2), x)


def test_stage_is_registered_and_windowed(identity_ckpt):
    assert stage_class("deflare") is DeflareStage
    assert isinstance(make_stage(identity_ckpt), WindowedStage)


def test_identity_checkpoint_keeps_everything(identity_ckpt):
    ev = stream(1, 3000)
    keep = run(make_stage(identity_ckpt), [ev])
    assert keep.shape == (len(ev),) and keep.all()


@pytest.mark.parametrize("which", ["trained_ckpt", "mask_ckpt"])
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_decisions_do_not_depend_on_the_message_cut(request, which, seed, cuts):
    ckpt = request.getfixturevalue(which)
    ev = stream(seed % 7, 2000)
    whole = run(make_stage(ckpt, keep_threshold=0.7), [ev])
    assert 0 < whole.sum() < len(ev)  # the random model keeps some and drops some
    bounds = [0] + sorted(cuts) + [len(ev)]
    stage = make_stage(ckpt, keep_threshold=0.7)
    parts = [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(run(stage, parts), whole)


def test_window_decided_when_a_later_event_arrives(identity_ckpt):
    stage = make_stage(identity_ckpt)
    ev = Events.from_arrays([100, 19999, 20000, 45000], [1, 2, 3, 4], [1, 1, 1, 1], [1, 0, 1, 1], W, H)
    assert len(stage.push(ev[:2])) == 0 and stage.pending == 2  # window 0 still open
    assert len(stage.push(ev[2:3])) == 2  # an event at its end closes window 0
    assert len(stage.push(Events.empty(W, H))) == 0  # an empty message changes nothing
    assert len(stage.push(ev[3:])) == 1  # window 1 closes; the empty window is skipped
    assert len(stage.flush()) == 1 and stage.pending == 0
    assert len(stage.flush()) == 0  # nothing buffered: nothing to do


def test_time_going_backwards_decides_buffer_then_resets(trained_ckpt, caplog):
    ev = stream(2, 1500, t_end=60000)
    stage = make_stage(trained_ckpt)
    first = run(stage, [ev])
    stage = make_stage(trained_ckpt)
    with caplog.at_level(logging.WARNING, logger="eventfx_core.deflarer.stage"):
        out = run(stage, [ev[:700], concat([ev[700:], ev])])
    assert "time goes backwards" in caplog.text and stage.resets == 1
    # every event got exactly one decision; after the reset the replay decides like a fresh stage
    assert len(out) == 2 * len(ev)
    np.testing.assert_array_equal(out[len(ev):], first)


def test_overflow_burst_is_clipped_and_defined(trained_ckpt, identity_ckpt):
    n = 200_000  # one pixel firing 200k events in 2.5 ms: far beyond any sensor
    t = np.sort(np.random.default_rng(0).integers(20000, 22500, n))
    burst = Events.from_arrays(t, np.full(n, 5), np.full(n, 5), np.ones(n), W, H)
    rest = stream(3, 500, t_end=40000)
    ev = concat([burst, rest[rest.t >= 22500]])
    stage = make_stage(trained_ckpt)
    vin, vpred = stage.predict(burst, 20000)
    assert vin.max() == stage.clip and np.isfinite(vpred).all()  # clipped, not overflowing
    keep = run(stage, [ev])
    assert keep.shape == (len(ev),)
    assert run(make_stage(identity_ckpt), [ev]).all()


def test_wrong_sensor_checkpoint_is_a_config_error(identity_ckpt):
    cfg = from_dict(DeflareStage.Config, {"checkpoint": str(identity_ckpt)}, "deflare")
    with pytest.raises(ConfigError, match="trained on a 24x18 sensor"):
        DeflareStage(cfg, sensor=(640, 480))
    cfg = from_dict(DeflareStage.Config, {"checkpoint": str(identity_ckpt), "allow_other_sensor": True}, "d")
    stage = DeflareStage(cfg, sensor=(37, 21))  # 10x6 cells padded to a multiple of 4, cropped back
    ev = Events.from_arrays([10, 30000], [36, 0], [20, 0], [1, 0], 37, 21)
    assert run(stage, [ev]).all()
    vin, vpred = stage.predict(ev, 0)
    assert vin.shape == vpred.shape == (8, 6, 10) and vin[0, 5, 9] == 1.0


def _with_meta(blob, **changes):
    """The checkpoint ``blob`` with its meta changed and re-signed, so only the change is wrong."""
    text = json.dumps({**json.loads(blob["meta"]), **changes}, sort_keys=True)
    return dict(blob, meta=text, sha256=digest(text, blob["tensors"]))


def test_bad_checkpoints_are_config_errors(tmp_path, identity_ckpt):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    blob = torch.load(identity_ckpt, weights_only=True)
    meta = json.loads(blob["meta"])
    assert blob["kind"] == "deflarer" and meta["input_config"] == {"window_us": 20000, "bins": 8, "cell_px": 4}
    torch.save(_with_meta(blob, model_config=dict(meta["model_config"], channels=[8, 8])), tmp_path / "edited.pt")
    torch.save(dict(blob, kind="denoiser"), tmp_path / "other.pt")
    torch.save({"format": "eventfx-deflarer", "version": 1}, tmp_path / "v1.pt")
    torch.save(_with_meta(blob, input_config={"window_us": 20000, "bins": 8}), tmp_path / "nocell.pt")
    torch.save(_with_meta(blob, input_config={"window_us": 10000, "bins": 8, "cell_px": 4}), tmp_path / "spec.pt")
    torch.save(_with_meta(blob, input_config={"window_us": 20000, "bins": 8, "cell_px": 2}), tmp_path / "cell.pt")
    for name, msg in [("missing.pt", "not found"), ("junk.pt", "not a checkpoint"),
                      ("edited.pt", "do not match the model config"),
                      ("other.pt", "'denoiser' checkpoint, expected a deflarer"),
                      ("v1.pt", "old 'eventfx-deflarer' checkpoint.*--upgrade"),
                      ("nocell.pt", "voxel spec must give exactly window_us, bins, cell_px")]:
        with pytest.raises(ConfigError, match=msg):
            load_checkpoint(tmp_path / name)
    with pytest.raises(ConfigError, match="10000 us / 8 bins / 4 px cells"):
        make_stage(tmp_path / "spec.pt")
    with pytest.raises(ConfigError, match="2 px cells, the config asks 20000 us / 8 bins / 4 px cells"):
        make_stage(tmp_path / "cell.pt")
    assert make_stage(tmp_path / "cell.pt", cell_px=2).spec.cell_px == 2
    with pytest.raises(ConfigError, match="relative.pt: deflarer checkpoint not found"):
        DeflareStage(DeflareStage.Config(checkpoint="relative.pt"), (W, H), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="keep_threshold"):
        from_dict(DeflareStage.Config, {"keep_threshold": 1.0}, "deflare")
    # an old config: the key that pointed the other way is named, with the conversion
    with pytest.raises(ConfigError, match=r"deflare.threshold: was replaced by keep_threshold.*0.45 -> 0.55"):
        from_dict(DeflareStage.Config, {"threshold": 0.45}, "deflare")


def test_sparse_window_is_kept_without_a_forward_pass():
    """min_events: a window with fewer events is decided 'keep all' and never reaches the U-Net."""
    from eventfx_core.deflarer.stage import DeflareStage

    cfg = DeflareStage.Config(min_events=5, allow_other_sensor=True, gate=False)
    stage = DeflareStage(cfg, sensor=(64, 48))

    def no_forward(*a, **k):
        raise AssertionError("the U-Net ran on a sparse window")

    stage.forward_window = no_forward
    sparse = Events.from_arrays([100, 200, 300, 25_000], [1, 2, 3, 4], [1, 1, 1, 1], [1, 0, 1, 1], 64, 48)
    keep = stage.push(sparse)
    assert keep.tolist() == [True, True, True]
    dense = Events.from_arrays(np.arange(30_000, 30_010), np.arange(10), np.ones(10), np.ones(10), 64, 48)
    stage.push(dense)
    try:
        stage.push(Events.from_arrays([60_000], [5], [5], [1], 64, 48))
    except AssertionError as exc:
        assert "sparse" in str(exc)
    else:
        raise AssertionError("a window with enough events must run the U-Net")


def test_advance_closes_windows_on_the_stream_clock():
    """advance(t): windows ending by t are decided without a later event reaching the stage."""
    from eventfx_core.deflarer.stage import DeflareStage

    stage = DeflareStage(DeflareStage.Config(min_events=10**6, allow_other_sensor=True), sensor=(64, 48))
    ev = Events.from_arrays([100, 200], [1, 2], [1, 1], [1, 0], 64, 48)
    assert len(stage.push(ev)) == 0
    assert len(stage.advance(19_999)) == 0  # window 0 still open
    assert stage.advance(20_000).tolist() == [True, True]
    assert stage.pending == 0


def test_mask_head_checkpoint_round_trips_and_decides_from_its_share(mask_ckpt, tmp_path):
    ck = load_checkpoint(mask_ckpt)  # torch.load(weights_only=True) inside
    assert ck.model.config == UNet3DConfig(channels=(4, 8, 8), in_channels=2, mask_head=True)
    blob = torch.load(mask_ckpt, weights_only=True)
    model_config = json.loads(blob["meta"])["model_config"]
    assert model_config["mask_head"] is True and model_config["in_channels"] == 2
    for k, v in blob["tensors"].items():
        assert torch.equal(ck.model.state_dict()[k], v)
    again = load_checkpoint(save_checkpoint(tmp_path / "again.pt", ck.model, ck.voxel, ck.sensor))
    v = torch.randn(1, 2, 8, H // 4 + 1, W // 4)
    with torch.no_grad():
        assert torch.equal(again.model(v), ck.model(v))
    # the stage keeps exactly the events whose sigmoid(logit) share is below the threshold
    stage = make_stage(mask_ckpt, keep_threshold=0.6)
    ev = stream(5, 1500, t_end=19_999)
    keep = run(stage, [ev])
    vin = input_grids(ev, 0, stage.spec, 2, stage.clip)
    with torch.no_grad():
        logits = ck.model(torch.from_numpy(vin)[None])[0, 1].numpy()
    ref = np.float32(1) - event_flare_share_reference(ev, 0, mask_share(logits), stage.spec) >= np.float32(0.6)
    np.testing.assert_array_equal(keep, ref)
    assert 0 < keep.sum() < len(ev)


def test_checkpoint_without_mask_fields_loads_as_before(identity_ckpt, tmp_path):
    """Checkpoints written before the mask head (no in_channels / mask_head keys) still load."""
    blob = torch.load(identity_ckpt, weights_only=True)
    model_config = json.loads(blob["meta"])["model_config"]
    old = _with_meta(blob, model_config={k: v for k, v in model_config.items() if k not in ("in_channels", "mask_head")})
    torch.save(old, tmp_path / "old.pt")
    ck = load_checkpoint(tmp_path / "old.pt")
    assert ck.model.config.mask_head is False and ck.model.config.in_channels == 1
    assert run(make_stage(tmp_path / "old.pt"), [stream(2, 500)]).all()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), cuts=st.lists(st.integers(0, 2000), max_size=8),
       blend=st.sampled_from([0.25, 0.5, 0.8]))
def test_blended_decisions_follow_the_reference_whatever_the_cut(mask_ckpt, seed, cuts, blend):
    """keep = 1 - ((1 - blend) * share + blend * P(flare)) >= keep_threshold, each event with its own
    P(flare) (the stage buffers them beside the events), for any message cut; NaN = no P(flare)."""
    ev = stream(seed % 7, 2000)
    flare = np.random.default_rng(seed).random(len(ev)).astype(np.float32)
    flare[::10] = np.nan  # events pushed without a P(flare) are judged by the share alone
    stage = make_stage(mask_ckpt, keep_threshold=0.6, blend=blend)
    bounds = [0] + sorted(cuts) + [len(ev)]
    out = [stage.push(ev[a:b], flare[a:b]) for a, b in zip(bounds[:-1], bounds[1:])] + [stage.flush()]
    keep = np.concatenate(out)
    ck, spec, b = load_checkpoint(mask_ckpt), stage.spec, np.float32(blend)
    score = np.zeros(len(ev), np.float32)
    win = ev.t // spec.window_us
    for w in np.unique(win):
        m = np.flatnonzero(win == w)
        vin = input_grids(ev[m], int(w) * spec.window_us, spec, 2, stage.clip)
        with torch.no_grad():
            share = mask_share(ck.model(torch.from_numpy(vin)[None])[0, 1].numpy())
        score[m] = event_flare_share_reference(ev[m], int(w) * spec.window_us, share, spec)
    given = ~np.isnan(flare)
    score[given] = (np.float32(1) - b) * score[given] + b * flare[given]
    np.testing.assert_array_equal(keep, np.float32(1) - score >= np.float32(0.6))
    assert 0 < keep.sum() < len(ev)
    # blend 0 and no P(flare) at all decide alike
    np.testing.assert_array_equal(run(make_stage(mask_ckpt, keep_threshold=0.6, blend=0.0), [ev]),
                                  run(make_stage(mask_ckpt, keep_threshold=0.6), [ev]))


def test_blend_with_time_going_backwards_keeps_each_event_with_its_own_flare(mask_ckpt):
    """After a backwards jump the buffered events are decided with their own P(flare) and the
    replay after the reset decides like a fresh stage."""
    ev = stream(4, 1500, t_end=60000)
    flare = np.random.default_rng(1).random(len(ev)).astype(np.float32)
    stage = make_stage(mask_ckpt, blend=0.5)
    whole = np.concatenate([stage.push(ev, flare), stage.flush()])
    again = make_stage(mask_ckpt, blend=0.5)
    out = np.concatenate([again.push(ev[:700], flare[:700]),
                          again.push(concat([ev[700:], ev]), np.r_[flare[700:], flare]), again.flush()])
    assert again.resets == 1 and len(out) == 2 * len(ev)
    np.testing.assert_array_equal(out[:len(ev)], whole)
    np.testing.assert_array_equal(out[len(ev):], whole)
    with pytest.raises(ConfigError, match="blend"):
        make_stage(mask_ckpt, blend=1.5)


def test_bench_deflare_times_a_checkpoint_at_its_own_cells(tmp_path):
    """``eventfx bench --deflare --checkpoint``: the stage runs at the checkpoint's window, bins
    and cell size (a 2x2-px model no longer meets the config's 4 px and stops)."""
    import torch
    from eventfx_core.bench.deflare import bench
    from eventfx_core.deflarer.checkpoint import save_checkpoint
    from eventfx_core.deflarer.model import ResidualUNet3D, UNet3DConfig
    from eventfx_core.deflarer.voxel import VoxelSpec
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "fine.pt", ResidualUNet3D(UNet3DConfig(channels=(4, 8, 8))),
                           VoxelSpec(window_us=10000, bins=4, cell_px=2), (64, 48))
    r = bench((64, 48), 1, 3, 2e5, tmp_path, str(ckpt))
    assert r["windows"] == 3 and r["latency_ms"] >= 10.0  # 10 ms windows
