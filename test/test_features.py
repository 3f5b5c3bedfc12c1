"""Streaming per-event features: fast path == Python reference, split invariance, resets."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core.errors import EventfxError
from eventfx_core.events import Events, concat
from eventfx_core.denoiser.features import FeatureConfig, FeatureExtractor, feature_names
from eventfx_core.denoiser.features.reference import ReferenceFeatureExtractor


def random_stream(seed: int, n: int, width: int = 9, height: int = 7, max_gap: int = 3000) -> Events:
    """Events on a small sensor, dense enough that windows, changes and rings all fill up."""
    rng = np.random.default_rng(seed)
    t = 1000 + np.cumsum(rng.integers(0, max_gap, n))
    return Events.from_arrays(t, rng.integers(0, width, n), rng.integers(0, height, n),
                              rng.integers(0, 2, n), width, height)


def extract_in_parts(cfg, ev: Events, cuts) -> np.ndarray:
    fx = FeatureExtractor(cfg, ev.width, ev.height)
    bounds = [0, *sorted(cuts), len(ev)]
    return np.concatenate([fx.extract(ev[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])


CONFIGS = [FeatureConfig(),
           FeatureConfig(window_us=3000, taus_us=(1000.0,), max_changes=2),
           FeatureConfig(window_us=50_000, taus_us=(2000.0, 20_000.0, 200_000.0), max_changes=7),
           FeatureConfig(cell_px=(4,)),
           FeatureConfig(cell_px=(3, 5), cell_taus_us=(500.0, 4000.0, 30_000.0)),
           FeatureConfig(context_px=4),  # local context: log_dt_block, block_burst
           FeatureConfig(cell_px=(4,), context_px=3),
           FeatureConfig(cell_px=(4,), context_px=3, local_dt=False),
           FeatureConfig(cell_px=(3, 5), cell_taus_us=(500.0, 4000.0, 30_000.0), context_px=2)]


def test_names_and_shape():
    for cfg in CONFIGS:
        fx = FeatureExtractor(cfg, 9, 7)
        F = fx.extract(random_stream(0, 50))
        assert F.shape == (50, fx.num_features) == (50, len(feature_names(cfg)))
        assert F.dtype == np.float32 and F.flags.c_contiguous
    assert len(feature_names(FeatureConfig())) == 16
    assert len(feature_names(FeatureConfig(cell_px=(8, 16)))) == 16 + 2 * 2 * 2 + 1
    # local context replaces the two sensor-wide columns in place: same count, same positions
    old, new = feature_names(FeatureConfig(cell_px=(16,))), feature_names(FeatureConfig(cell_px=(16,), context_px=16))
    assert len(old) == len(new)
    assert [(a, b) for a, b in zip(old, new) if a != b] == [("log_dt_global", "log_dt_block"),
                                                            ("global_burst", "block_burst")]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 400), which=st.integers(0, len(CONFIGS) - 1),
       max_gap=st.sampled_from([5, 300, 3000, 40_000]), size=st.sampled_from([(3, 2), (9, 7)]))
def test_fast_equals_reference(seed, n, which, max_gap, size):
    cfg = CONFIGS[which]
    ev = random_stream(seed, n, *size, max_gap=max_gap)
    fast = FeatureExtractor(cfg, ev.width, ev.height).extract(ev)
    ref = ReferenceFeatureExtractor(cfg, ev.width, ev.height).extract(ev)
    np.testing.assert_array_equal(fast, ref)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 600), which=st.integers(0, len(CONFIGS) - 1),
       data=st.data())
def test_split_invariance(seed, n, which, data):
    cfg = CONFIGS[which]
    ev = random_stream(seed, n)
    cuts = data.draw(st.lists(st.integers(0, n), max_size=6))
    whole = FeatureExtractor(cfg, ev.width, ev.height).extract(ev)
    np.testing.assert_array_equal(extract_in_parts(cfg, ev, cuts), whole)


def test_values_in_range_and_deterministic():
    ev = random_stream(3, 5000, width=30, height=20, max_gap=200)
    a = FeatureExtractor(FeatureConfig(), 30, 20).extract(ev)
    b = FeatureExtractor(FeatureConfig(), 30, 20).extract(ev)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and a.min() >= -1.0 and a.max() <= 1.0
    # every feature varies on a busy stream (none is constant by mistake)
    assert (a.std(axis=0) > 0).all()


def test_pfd_quantities_by_hand():
    """One pixel flipping polarity every 1 ms: Mf counts the changes within the window."""
    cfg = FeatureConfig(window_us=2500, max_changes=4)
    names = feature_names(cfg)
    t = [1000, 2000, 3000, 4000, 5000]
    ev = Events.from_arrays(t, [4] * 5, [3] * 5, [1, 0, 1, 0, 1], 9, 7)
    F = FeatureExtractor(cfg, 9, 7).extract(ev)
    mf = F[:, names.index("pfd_mf")]
    # changes happen at 2000, 3000, 4000, 5000; event k sees those strictly before it within 2.5 ms
    expected_mf = [0, 0, 1, 2, 2]
    np.testing.assert_allclose(mf, [math.log1p(m) / math.log1p(4) for m in expected_mf], rtol=1e-6)
    np.testing.assert_array_equal(F[:, names.index("pfd_ne")], np.float32([0, 1 / 9, 1 / 9, 1 / 9, 1 / 9]))
    np.testing.assert_array_equal(F[:, names.index("pixel_same_polarity")], [0, -1, -1, -1, -1])
    np.testing.assert_array_equal(F[:, names.index("polarity")], [1, -1, 1, -1, 1])
    assert F[0, names.index("log_dt_global")] == 1.0
    np.testing.assert_allclose(F[1, names.index("ts_pixel_5ms")], math.exp(-1000 / 5000), rtol=1e-6)


def test_neighbour_support():
    cfg = FeatureConfig(window_us=1000)
    names = feature_names(cfg)
    # three ON neighbours and one OFF neighbour of (4, 3), then the centre event (ON)
    ev = Events.from_arrays([100, 200, 300, 400, 500], [3, 5, 4, 4, 4], [3, 3, 2, 4, 3],
                            [1, 1, 1, 0, 1], 9, 7)
    F = FeatureExtractor(cfg, 9, 7).extract(ev)
    assert F[4, names.index("support_same")] == np.float32(3 / 8)
    assert F[4, names.index("support_opposite")] == np.float32(1 / 8)
    assert F[4, names.index("pfd_ne")] == np.float32(4 / 9)
    np.testing.assert_allclose(F[4, names.index("ts_neigh_5ms")], math.exp(-100 / 5000), rtol=1e-6)


def test_time_backwards_resets_with_warning():
    ev = random_stream(5, 300)
    later = Events.from_arrays(ev.t - 500, ev.x, ev.y, ev.p, ev.width, ev.height)  # starts earlier
    fx = FeatureExtractor(FeatureConfig(), ev.width, ev.height)
    fx.extract(ev)
    with pytest.warns(RuntimeWarning, match="backwards"):
        F = fx.extract(later)
    np.testing.assert_array_equal(F, FeatureExtractor(FeatureConfig(), ev.width, ev.height).extract(later))
    # the same inside one call: the whole stream equals the two halves from fresh state
    with pytest.warns(RuntimeWarning, match="backwards"):
        G = FeatureExtractor(FeatureConfig(), ev.width, ev.height).extract(concat([ev, later]))
    np.testing.assert_array_equal(G[len(ev):], F)


def test_sensor_change_resets_with_warning():
    fx = FeatureExtractor(FeatureConfig(), 9, 7)
    fx.extract(random_stream(1, 100))
    other = random_stream(2, 100, width=11, height=5)
    with pytest.warns(RuntimeWarning, match="sensor size"):
        F = fx.extract(other)
    assert (fx.width, fx.height) == (11, 5)
    np.testing.assert_array_equal(F, FeatureExtractor(FeatureConfig(), 11, 5).extract(other))


def test_no_warning_on_normal_stream():
    fx = FeatureExtractor(FeatureConfig(), 9, 7)
    ev = random_stream(8, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fx.extract(ev[:100])
        fx.extract(ev[100:])


def test_out_of_range_raises():
    bad = Events.from_arrays([1, 2], [1, 9], [1, 1], [0, 1], 9, 7)
    with pytest.raises(EventfxError, match="event 1 .*outside"):
        FeatureExtractor(FeatureConfig(), 9, 7).extract(bad)


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(cell_px=(4, 2)),
                                 FeatureConfig(cell_px=(4,), context_px=3)])
def test_state_dict_round_trip(cfg):
    ev = random_stream(9, 500)
    whole = FeatureExtractor(cfg, 9, 7).extract(ev)
    a = FeatureExtractor(cfg, 9, 7)
    a.extract(ev[:200])
    b = FeatureExtractor(cfg, 1, 1)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.extract(ev[200:]), whole[200:])
    a.reset()
    np.testing.assert_array_equal(a.extract(ev), whole)


def test_flicker_features_by_hand():
    """Decayed cell counts and the global burst ratio, written out for a few events."""
    cfg = FeatureConfig(cell_px=(4,), cell_taus_us=(1000.0, 10_000.0))
    names = feature_names(cfg)
    k = 4 * 4 / 8.0
    # three ON events in cell (0, 0), then an OFF event in it, then an ON event in cell (1, 0)
    ev = Events.from_arrays([0, 0, 1000, 2000, 2000], [0, 1, 2, 3, 5], [0, 1, 2, 3, 0],
                            [1, 1, 1, 0, 1], 9, 7)
    F = FeatureExtractor(cfg, 9, 7).extract(ev)
    col = {n: names.index(n) for n in names}
    assert F[0, col["cell4_same_1ms"]] == 0 and F[0, col["global_burst"]] == 0
    assert F[1, col["cell4_same_1ms"]] == np.float32(1 / (1 + k))  # one ON event at dt = 0
    same_1ms = 2 * math.exp(-1)  # two ON events 1 ms before the third
    np.testing.assert_allclose(F[2, col["cell4_same_1ms"]], same_1ms / (same_1ms + k), rtol=1e-6)
    opp = (same_1ms + 1) * math.exp(-1)  # the OFF event sees three decayed ON events
    np.testing.assert_allclose(F[3, col["cell4_opposite_1ms"]], opp / (opp + k), rtol=1e-6)
    assert F[3, col["cell4_same_1ms"]] == 0
    assert F[4, col["cell4_same_10ms"]] == 0  # a fresh cell
    s, l = (2 * math.exp(-2) + math.exp(-1)) / 1000, (2 * math.exp(-0.2) + math.exp(-0.1)) / 10_000
    np.testing.assert_allclose(F[4, col["global_burst"]], s / (s + l), rtol=1e-6)


def test_flicker_features_separate_flicker_from_steady_motion():
    """A 4x4 patch flickering at 100 Hz (every pixel fires on each edge, polarity alternating)
    against the same number of events at a steady rate and one polarity: the flicker shows
    in the global burst ratio and in the cell's opposite-polarity count."""
    cfg = FeatureConfig(cell_px=(4,))
    names = feature_names(cfg)
    t, x, y, p = [], [], [], []
    for edge in range(20):  # flicker: every 5 ms all 16 pixels fire within 100 us
        for j in range(16):
            t.append(edge * 5000 + j * 6); x.append(j % 4); y.append(j // 4); p.append(edge % 2)
    flick = Events.from_arrays(t, x, y, p, 8, 4)
    tt = np.arange(320) * 312  # the same number of events, spread evenly over the same time
    steady = Events.from_arrays(tt, 4 + (np.arange(320) // 80), np.arange(320) % 4, np.ones(320, int), 8, 4)
    a = FeatureExtractor(cfg, 8, 4).extract(flick)[100:]
    b = FeatureExtractor(cfg, 8, 4).extract(steady)[100:]
    for name in ("cell4_opposite_10ms", "global_burst"):
        j = names.index(name)
        assert a[:, j].mean() > b[:, j].mean() + 0.2, name
    assert a[:, names.index("cell4_same_1ms")].mean() > b[:, names.index("cell4_same_1ms")].mean()
    np.testing.assert_allclose(b[:, names.index("global_burst")], 0.5, atol=0.05)  # steady rate


def test_config_checked():
    with pytest.raises(EventfxError):
        FeatureExtractor(FeatureConfig(window_us=0), 9, 7)
    with pytest.raises(EventfxError):
        FeatureExtractor(FeatureConfig(taus_us=()), 9, 7)
    with pytest.raises(EventfxError, match="cell_px"):
        FeatureExtractor(FeatureConfig(cell_px=(0,)), 9, 7)
    with pytest.raises(EventfxError, match="context_px"):
        FeatureExtractor(FeatureConfig(context_px=-1), 9, 7)
    with pytest.raises(EventfxError, match="cell_taus_us"):
        FeatureExtractor(FeatureConfig(cell_px=(4,), cell_taus_us=(0.0,)), 9, 7)


def test_fast_exp_matches_math_exp():
    from eventfx_core.denoiser.features.mathfn import EXP_TABLE, decay, decay_jit
    dts = np.concatenate([np.arange(0, 2000, 1.0), np.geomspace(1, 2e7, 3000)])
    for tau in (1.0, 777.0, 5000.0, 50_000.0):
        for dt in dts:
            exact = math.exp(-dt / tau)
            approx = decay(float(dt), tau, EXP_TABLE)
            assert abs(approx - exact) <= 1e-8 * exact + 1e-300 or (exact < 1e-47 and approx == 0.0)
            assert decay_jit(float(dt), tau, EXP_TABLE) == approx


def test_real_recording_split_and_reference(shared_data):
    """Real DAVIS346 events (E-MLB demo clip): split invariance on all of it, the reference on a slice."""
    dv = pytest.importorskip("dv_processing")
    rec = dv.io.MonoCameraRecording(str(shared_data / "aedat4" / "emlb_demo-01_davis346.aedat4"))
    store = dv.EventStore()
    while (batch := rec.getNextEventBatch()) is not None:
        store.add(batch)
    a = store.numpy()
    ev = Events.from_arrays(a["timestamp"], a["x"], a["y"], a["polarity"], *rec.getEventResolution())
    cfg = FeatureConfig()
    whole = FeatureExtractor(cfg, ev.width, ev.height).extract(ev)
    cuts = np.random.default_rng(0).integers(0, len(ev), 20)
    np.testing.assert_array_equal(extract_in_parts(cfg, ev, cuts), whole)
    part = ev[100_000:104_000]
    np.testing.assert_array_equal(FeatureExtractor(cfg, ev.width, ev.height).extract(part),
                                  ReferenceFeatureExtractor(cfg, ev.width, ev.height).extract(part))
    # real scenes drive the PFD quantities well away from zero
    names = feature_names(cfg)
    assert whole[:, names.index("pfd_mf")].max() > 0.5 and whole[:, names.index("pfd_ne")].mean() > 0.1


def test_fast_log_matches_math_log1p():
    from eventfx_core.denoiser.features.mathfn import log_ratio, log_ratio_jit
    cap = 1e6
    log_cap = math.log1p(cap)
    dts = np.unique(np.concatenate([np.arange(0, 3000), np.geomspace(1, 2e6, 3000).round()]))
    for dt in dts.tolist():
        exact = min(1.0, math.log1p(dt) / log_cap)
        got = log_ratio(dt, cap, log_cap)
        assert abs(got - exact) < 1e-10
        assert log_ratio_jit(dt, cap, log_cap) == got


def test_block_features_by_hand():
    """log_dt_block and block_burst with 4x4-px context cells on a 16x8 sensor: cells (0, 0),
    (1, 0) and (3, 0); cell 3 is two cells from cell 1, outside its 3x3 block."""
    cfg = FeatureConfig(cell_px=(4,), cell_taus_us=(1000.0, 10_000.0), context_px=4)
    names = feature_names(cfg)
    col = {n: names.index(n) for n in names}
    # ON at (0,0) t=0; ON at (5,1) t=1000 (next cell); ON at (13,0) t=3000 (far cell);
    # ON at (6,2) t=4000 (cell 1 again)
    ev = Events.from_arrays([0, 1000, 3000, 4000], [0, 5, 13, 6], [0, 1, 0, 2], [1, 1, 1, 1], 16, 8)
    F = FeatureExtractor(cfg, 16, 8).extract(ev)
    cap = math.log1p(cfg.global_dt_cap_us)
    assert F[0, col["log_dt_block"]] == 1.0 and F[0, col["block_burst"]] == 0
    np.testing.assert_allclose(F[1, col["log_dt_block"]], math.log1p(1000) / cap, rtol=1e-6)
    assert F[2, col["log_dt_block"]] == 1.0 and F[2, col["block_burst"]] == 0  # nothing near yet
    # event 3 sees cells 0 and 1 (3 and 4 ms ago), not the far event 1 ms ago
    np.testing.assert_allclose(F[3, col["log_dt_block"]], math.log1p(3000) / cap, rtol=1e-6)
    s = (math.exp(-4) + math.exp(-3)) / 1000
    l = (math.exp(-0.4) + math.exp(-0.3)) / 10_000
    np.testing.assert_allclose(F[3, col["block_burst"]], s / (s + l), rtol=1e-6)


def lamp_and_scene(seed: int, width: int = 64, height: int = 48):
    """A scene in the left part of the sensor and a flickering lamp in the right part (every
    pixel of an 8x8 patch fires on each 100 Hz edge), interleaved in time."""
    rng = np.random.default_rng(seed)
    n = 3000
    scene = Events.from_arrays(np.sort(rng.integers(0, 200_000, n)), rng.integers(0, 24, n),
                               rng.integers(0, height, n), rng.integers(0, 2, n), width, height)
    t, x, y, p = [], [], [], []
    for edge in range(40):
        for j in range(64):
            t.append(edge * 5000 + j * 7); x.append(54 + j % 8); y.append(20 + j // 8); p.append(edge % 2)
    lamp = Events.from_arrays(t, x, y, p, width, height)
    both = concat([scene, lamp])
    order = np.argsort(both.t, kind="stable")
    return scene, both[order], order < len(scene)


@pytest.mark.parametrize("context_px", [4, 8])
def test_local_context_lamp_far_away_changes_no_feature(context_px):
    """With local context, a lamp more than two context cells away leaves every feature of every
    scene event bit-identical (the reason for context_px: no statistic of the whole sensor)."""
    cfg = FeatureConfig(cell_px=(4, 8), context_px=context_px)
    scene, both, is_scene = lamp_and_scene(0)
    alone = FeatureExtractor(cfg, 64, 48).extract(scene)
    mixed = FeatureExtractor(cfg, 64, 48).extract(both)[is_scene]
    np.testing.assert_array_equal(mixed, alone)
    ref = ReferenceFeatureExtractor(cfg, 64, 48).extract(both[:1500])
    np.testing.assert_array_equal(FeatureExtractor(cfg, 64, 48).extract(both[:1500]), ref)


def test_shipped_local_context_far_lamp_moves_only_the_stream_gap():
    """The shipped weights' set (context_px > 0, local_dt false): a far lamp changes the stream
    gap log_dt_global of the scene events and no other column (block_burst stays local)."""
    cfg = FeatureConfig(cell_px=(4, 8), context_px=4, local_dt=False)
    names = feature_names(cfg)
    scene, both, is_scene = lamp_and_scene(0)
    alone = FeatureExtractor(cfg, 64, 48).extract(scene)
    mixed = FeatureExtractor(cfg, 64, 48).extract(both)[is_scene]
    changed = [names[j] for j in range(len(names)) if (alone[:, j] != mixed[:, j]).any()]
    assert changed == ["log_dt_global"]


def test_sensor_wide_features_feel_a_far_lamp():
    """The old sensor-wide columns (context_px = 0) do change with a lamp far away; only they."""
    cfg = FeatureConfig(cell_px=(4, 8))
    names = feature_names(cfg)
    scene, both, is_scene = lamp_and_scene(0)
    alone = FeatureExtractor(cfg, 64, 48).extract(scene)
    mixed = FeatureExtractor(cfg, 64, 48).extract(both)[is_scene]
    changed = [names[j] for j in range(len(names)) if (alone[:, j] != mixed[:, j]).any()]
    assert changed == ["log_dt_global", "global_burst"]


def test_checkpoint_keeps_its_feature_set(tmp_path):
    """The feature config travels in the checkpoint: one with local context loads with it, and
    one written before ``context_px`` existed (no such key) loads with the sensor-wide set."""
    import json
    import torch
    from eventfx_core.checkpoint import digest
    from eventfx_core.denoiser.checkpoint import load_checkpoint, write_initial_checkpoint
    from eventfx_core.denoiser.model import ModelConfig
    for context_px, extra in ((16, "log_dt_block"), (0, "log_dt_global")):
        fcfg = FeatureConfig(cell_px=(16,), context_px=context_px)
        mcfg = ModelConfig(n_features=len(feature_names(fcfg)))
        path = write_initial_checkpoint(tmp_path / f"c{context_px}.pt", seed=1, model_config=mcfg,
                                        feature_config=fcfg)
        ck = load_checkpoint(path)
        assert ck.feature_config.context_px == context_px and extra in feature_names(ck.feature_config)
    blob = torch.load(tmp_path / "c0.pt", weights_only=True)  # as written before context_px
    meta = json.loads(blob["meta"])
    del meta["input_config"]["context_px"]
    blob["meta"] = json.dumps(meta, sort_keys=True)
    blob["sha256"] = digest(blob["meta"], blob["tensors"])
    torch.save(blob, tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert old.feature_config.context_px == 0
    assert feature_names(old.feature_config)[-1] == "global_burst"


@pytest.mark.parametrize("max_gap", [30, 3000, 40_000])
def test_block_burst_running_sums_equal_the_definition(max_gap):
    """block_burst comes from running 3x3 sums on absolute-time epochs (extractor.py); it equals
    the definition written out: per event, the same-polarity events before it in the 3x3
    context cells around its own, each weighted exp(-(t - t_j) / tau), short and long tau."""
    cfg = FeatureConfig(cell_px=(4,), cell_taus_us=(1000.0, 10_000.0), context_px=3, local_dt=False)
    ev = random_stream(7, 1500, width=20, height=14, max_gap=max_gap)  # crosses many 64 ms epochs
    got = FeatureExtractor(cfg, ev.width, ev.height).extract(ev)[:, feature_names(cfg).index("block_burst")]
    t, cx, cy, p = (np.asarray(a, np.int64) for a in (ev.t, ev.x // 3, ev.y // 3, ev.p))
    want = np.zeros(len(ev))
    for i in range(len(ev)):
        j = np.flatnonzero((np.abs(cx[:i] - cx[i]) <= 1) & (np.abs(cy[:i] - cy[i]) <= 1) & (p[:i] == p[i]))
        short = np.exp(-(t[i] - t[j]) / 1000.0).sum() / 1000.0
        long = np.exp(-(t[i] - t[j]) / 10_000.0).sum() / 10_000.0
        want[i] = short / (short + long) if short + long > 0 else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
