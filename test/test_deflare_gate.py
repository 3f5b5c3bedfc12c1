"""The light-source gate of the deflarer: plain reference, split invariance, locality, no harm."""
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import random_unet_checkpoint
from eventfx_core.config import from_dict
from eventfx_core.deflarer.gate import FlareGate, GateSpec, gate_reference
from eventfx_core.deflarer.stage import DeflareStage
from eventfx_core.events import Events, concat

W, H = 128, 96


def lamp(x0, y0, t_end, hz=100.0, per_flip=3, size=3, seed=0):
    """A flickering lamp: a size x size patch whose pixels fire ``per_flip`` events of one
    polarity at every half period (ON, OFF, ON, ...)."""
    rng = np.random.default_rng(seed)
    half = int(5e5 / hz)
    t, x, y, p = [], [], [], []
    for k, start in enumerate(range(0, t_end, half)):
        for dy in range(size):
            for dx in range(size):
                ts = start + np.sort(rng.integers(0, half // 4, per_flip))
                t += ts.tolist()
                x += [x0 + dx] * per_flip
                y += [y0 + dy] * per_flip
                p += [k % 2] * per_flip
    return Events.from_arrays(t, x, y, p, W, H)


def steady_lamp(x0, y0, t_end, size=6, per_window=3, seed=0):
    """A steady (not flickering) bright core: a size x size patch whose pixels fire
    ``per_window`` events of one polarity in every 20 ms window (a bright blob that drifts)."""
    rng = np.random.default_rng(seed)
    n = size * size * per_window * (t_end // 20_000)
    t = np.sort(np.repeat(np.arange(0, t_end, 20_000), size * size * per_window)
                + rng.integers(0, 20_000, n))
    pix = np.tile(np.repeat(np.arange(size * size), per_window), t_end // 20_000)
    return Events.from_arrays(t, x0 + pix % size, y0 + pix // size, np.ones(n, np.int64), W, H)


def scene(seed, n, t_end):
    rng = np.random.default_rng(seed)
    return Events.from_arrays(np.sort(rng.integers(0, t_end, n)), rng.integers(0, W, n), rng.integers(0, H, n),
                              rng.integers(0, 2, n), W, H)


def merge(*parts):
    ev = concat(list(parts), W, H)
    o = np.argsort(ev.t, kind="stable")
    return ev[o]


@pytest.fixture(scope="module")
def mask_ckpt(tmp_path_factory):
    return random_unet_checkpoint(tmp_path_factory.mktemp("ck") / "mask.pt", (W, H), seed=3,
                                  in_channels=2, mask_head=True)


def make_stage(ckpt, **kw):
    cfg = from_dict(DeflareStage.Config, {"checkpoint": str(ckpt), "keep_threshold": 0.6,
                                          "gate_radius_px": 24, "gate_ghost_radius_px": 8,
                                          "tile_px": 32, "tile_margin_px": 8, **kw}, "deflare")
    return DeflareStage(cfg, sensor=(W, H))


def run(stage, parts):
    return np.concatenate([stage.push(p) for p in parts] + [stage.flush()])


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), hz=st.sampled_from([50.0, 100.0, 120.0, 150.0]),
       rate=st.integers(2, 20), flicker=st.integers(2, 8), cluster=st.integers(1, 5),
       gap=st.booleans(), steady=st.integers(0, 3), steady_cluster=st.integers(1, 12),
       contrast=st.sampled_from([0.0, 2.0, 10.0]), runs=st.integers(1, 3), each=st.integers(0, 3),
       each_windows=st.integers(1, 4), phase_bins=st.sampled_from([0, 1, 7, 20]), phase_min=st.integers(0, 6),
       core_px=st.sampled_from([0.0, 2.5, 6.0]), lock_z=st.sampled_from([0.0, 0.5, 2.0]),
       lock_decay=st.sampled_from([0.0, 0.5, 1.0]), track_burst=st.sampled_from([0, 1, 2]),
       track_pixels=st.integers(1, 6))
def test_gate_equals_the_plain_reference(seed, hz, rate, flicker, cluster, gap, steady, steady_cluster,
                                         contrast, runs, each, each_windows, phase_bins, phase_min, core_px,
                                         lock_z, lock_decay, track_burst, track_pixels):
    rng = np.random.default_rng(seed)
    ev = merge(lamp(int(rng.integers(0, W - 3)), int(rng.integers(0, H - 3)), 120_000, hz, seed=seed),
               steady_lamp(int(rng.integers(0, W - 6)), int(rng.integers(0, H - 6)), 120_000, seed=seed),
               scene(seed, 3000, 120_000))
    if gap:  # a window without events: no alternation spans it
        ev = ev[(ev.t < 40_000) | (ev.t >= 60_000)]
    spec = GateSpec(rate=rate, flicker=flicker, cluster=cluster, block_px=8, hold=2, radius_px=20,
                    ghost_radius_px=6, ghost_reach=1.25, steady=steady, steady_cluster=steady_cluster,
                    steady_contrast=contrast, steady_windows=runs, each=each, each_windows=each_windows,
                    phase_bins=phase_bins, phase_min=phase_min, core_px=core_px,
                    lock_z=lock_z if phase_bins else 0.0, lock_decay=lock_decay, track_burst=track_burst,
                    track_pixels=track_pixels, track_halo=0.0, track_z=0.0, track_windows=2, track_reach_px=30.0,
                    track_core_px=3.0)
    gate = FlareGate(spec, (W, H))
    idx = ev.t // 20_000
    fast, per_event, windows, glare = [], [], [], []
    for w in np.unique(idx):
        m = idx == w
        fast.append(gate.update(int(w), ev.x[m], ev.y[m], ev.p[m], ev.t[m]))
        per_event.append((gate.alternations, gate.streak, gate.phase, gate.core))
        glare.append(gate.steady_glare)
        windows.append((int(w), list(zip(ev.x[m].tolist(), ev.y[m].tolist(), ev.p[m].tolist(), ev.t[m].tolist()))))
    ref_events, ref_glare = [], []
    for a, b in zip(fast, gate_reference(windows, spec, (W, H), per_event=ref_events, steady_glare=ref_glare)):
        np.testing.assert_array_equal(a, b)
    assert len(glare) == len(ref_glare)
    for got, want in zip(glare, ref_glare):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(per_event, ref_events):
        assert len(got) == len(want) == 4
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)


def test_a_lamp_is_found_and_a_scene_without_one_is_not():
    spec = GateSpec()
    quiet = scene(1, 20_000, 100_000)
    gate = FlareGate(spec, (W, H))
    idx = quiet.t // 20_000
    assert not any(gate.update(int(w), quiet.x[idx == w], quiet.y[idx == w], quiet.p[idx == w]).any()
                   for w in np.unique(idx))
    ev = lamp(90, 20, 100_000)
    gate = FlareGate(spec, (W, H))
    idx = ev.t // 20_000
    blocks = [gate.update(int(w), ev.x[idx == w], ev.y[idx == w], ev.p[idx == w]) for w in np.unique(idx)]
    assert not blocks[0].any()  # one window holds 3 alternations: not yet locked to a period
    assert blocks[-1][20 // 16, 90 // 16]  # the lamp's block ...
    ghost = (H - 20) // 16, (W - 90) // 16  # ... and its mirror through the centre are gated
    assert blocks[-1][ghost]


def blocks_of(spec, ev):
    gate = FlareGate(spec, (W, H))
    idx = ev.t // 20_000
    return [gate.update(int(w), ev.x[idx == w], ev.y[idx == w], ev.p[idx == w]) for w in np.unique(idx)]


def test_a_steady_core_is_found_and_a_uniformly_busy_scene_is_not():
    spec = GateSpec(steady=2, steady_cluster=8, steady_contrast=10.0)
    blocks = blocks_of(spec, steady_lamp(90, 20, 100_000))  # no flicker, under gate_rate
    assert not blocks[0].any()  # one window: not yet persistent
    assert blocks[-1][20 // 16, 90 // 16] and blocks[-1][(H - 20) // 16, (W - 90) // 16]
    assert not any(b.any() for b in blocks_of(GateSpec(), steady_lamp(90, 20, 100_000)))  # steady: 0, off
    later = blocks_of(replace(spec, steady_windows=3), steady_lamp(90, 20, 100_000))
    assert not later[2].any() and later[3].any()  # bright in windows 1, 2, 3 (window 0 has no last)
    busy = scene(2, 200_000, 100_000)  # every pixel fires about 3 times a window, all over the sensor,
    busy = Events.from_arrays(busy.t, busy.x, busy.y, np.ones(len(busy), np.int64), W, H)  # one sign
    assert not any(b.any() for b in blocks_of(spec, busy))
    both = merge(busy, steady_lamp(90, 20, 100_000))  # the core stands out of a quiet ring only
    assert not any(b.any() for b in blocks_of(spec, both))
    assert blocks_of(spec, merge(scene(2, 2000, 100_000), steady_lamp(90, 20, 100_000)))[-1].any()


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 1000), cuts=st.lists(st.integers(0, 6000), max_size=8))
def test_gated_decisions_do_not_depend_on_the_message_cut(mask_ckpt, seed, cuts):
    ev = merge(lamp(20, 60, 100_000, seed=seed), scene(seed, 4000, 100_000))
    whole = run(make_stage(mask_ckpt), [ev])
    bounds = [0] + sorted(c % len(ev) for c in cuts) + [len(ev)]
    parts = [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(run(make_stage(mask_ckpt), parts), whole)
    assert 0 < whole.sum() < len(ev)


def test_no_source_no_forward_pass_and_everything_kept(mask_ckpt):
    stage = make_stage(mask_ckpt)

    def no_forward(*a, **k):
        raise AssertionError("the U-Net ran without a light source")

    stage._forward = no_forward
    ev = scene(2, 8000, 100_000)
    assert run(stage, [ev]).all() and stage.tiles_run == 0


def test_a_lamp_changes_no_decision_far_from_it(mask_ckpt):
    """Events outside the lamp's reach and its ghost line are decided alike with and without
    the lamp (kept); events near it are decided by the U-Net on tiles there only."""
    base = scene(3, 6000, 100_000)
    light = lamp(8, 8, 100_000)
    both = merge(base, light)
    keep = run(make_stage(mask_ckpt), [both])
    alone = run(make_stage(mask_ckpt), [base])
    assert alone.all()
    far = (both.x >= 64) & (both.y < 48)  # neither near (8, 8) nor on its ghost line (to 132, 97)
    assert far.sum() > 1000 and keep[far].all()
    assert not keep.all()  # the random model removes something near the lamp


def test_every_gate_setting_reaches_the_gate_by_name():
    """Each ``deflare.gate_NAME`` sets ``GateSpec.NAME`` (not by position), with the same default."""
    from dataclasses import fields

    from eventfx_core.deflarer.stage import DeflareConfig

    default = DeflareConfig()
    assert default.gate_spec() == GateSpec()
    for f in fields(GateSpec):
        value = f.default * 2 + 1  # distinct per field and valid for every field here
        spec = replace(default, **{"gate_" + f.name: value}).gate_spec()
        assert getattr(spec, f.name) == value, f.name
        assert all(getattr(spec, g.name) == g.default for g in fields(GateSpec) if g is not f)


def test_gate_config_errors():
    from eventfx_core.errors import ConfigError
    with pytest.raises(ConfigError, match="gate_rate"):
        from_dict(DeflareStage.Config, {"gate_rate": 0}, "deflare").check("deflare")
    with pytest.raises(ConfigError, match="gate_steady_cluster"):
        from_dict(DeflareStage.Config, {"gate_steady_cluster": 0}, "deflare").check("deflare")
    with pytest.raises(ConfigError, match="gate_steady_windows"):
        from_dict(DeflareStage.Config, {"gate_steady_windows": 0}, "deflare").check("deflare")
    with pytest.raises(ConfigError, match="gate_steady_contrast"):
        from_dict(DeflareStage.Config, {"gate_steady_contrast": -1.0}, "deflare").check("deflare")
    with pytest.raises(ConfigError, match="tile_px"):
        from_dict(DeflareStage.Config, {"tile_px": 30}, "deflare").check("deflare")


def plain_alternations(ev, window_us=20_000):
    """Per event: its pixel's polarity alternations over its window and the window before
    (none across a window without events), counted event by event."""
    out = np.zeros(len(ev), np.int64)
    idx = (ev.t // window_us).tolist()
    last_p, alt_prev, alt, prev_w = {}, {}, {}, None
    members: list = []
    for i, (w, x, y, p) in enumerate(zip(idx, ev.x.tolist(), ev.y.tolist(), ev.p.tolist())):
        if w != prev_w:
            for j in members:
                key = (int(ev.x[j]), int(ev.y[j]))
                out[j] = alt.get(key, 0) + alt_prev.get(key, 0)
            alt_prev = alt if prev_w is not None and w == prev_w + 1 else {}
            if prev_w is not None and w != prev_w + 1:
                last_p = {}
            alt, members, prev_w = {}, [], w
        if (x, y) in last_p and last_p[(x, y)] != p:
            alt[(x, y)] = alt.get((x, y), 0) + 1
        last_p[(x, y)] = p
        members.append(i)
    for j in members:
        key = (int(ev.x[j]), int(ev.y[j]))
        out[j] = alt.get(key, 0) + alt_prev.get(key, 0)
    return out


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 1000), cuts=st.lists(st.integers(0, 6000), max_size=6), lock=st.integers(1, 4))
def test_flicker_lock_drops_only_flickering_pixels_whatever_the_cut(mask_ckpt, seed, cuts, lock):
    ev = merge(lamp(20, 60, 100_000, seed=seed, per_flip=2), scene(seed, 4000, 100_000))
    ev = ev[(ev.t < 40_000) | (ev.t >= 60_000)]  # with a window gap
    plain = run(make_stage(mask_ckpt), [ev])
    whole = run(make_stage(mask_ckpt, flicker_lock=lock), [ev])
    np.testing.assert_array_equal(whole, plain | (plain_alternations(ev) < lock))
    bounds = [0] + sorted(c % len(ev) for c in cuts) + [len(ev)]
    parts = [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(run(make_stage(mask_ckpt, flicker_lock=lock), parts), whole)
    assert not whole.all()


def test_a_50hz_lamp_is_found_by_flicker_in_each_window_and_a_busy_scene_is_not():
    """50 Hz: two alternations per 20 ms window, too few for ``flicker`` (6 over two windows),
    but window after window: ``each`` 2 in each of 3 windows finds it in the fourth window (the
    first holds one: its first event has nothing before it)."""
    slow = lamp(90, 20, 120_000, hz=50.0)
    assert not any(b.any() for b in blocks_of(GateSpec(), slow))
    spec = GateSpec(each=2, each_windows=3)
    blocks = blocks_of(spec, slow)
    assert not blocks[2].any() and blocks[3][20 // 16, 90 // 16]
    assert not any(b.any() for b in blocks_of(spec, scene(4, 20_000, 120_000)))


def test_phase_agreement_follows_the_lamp_and_not_an_edge_out_of_step():
    """Pixels near a flickering lamp that fire once per half period with its sign agree (+1),
    ones that fire with the opposite sign disagree (-1); no agreement far from a source."""
    core = lamp(40, 40, 100_000, hz=100.0, per_flip=3)
    half = 5000
    t = np.arange(0, 100_000, half) + 200  # in the lamp's ON / OFF half periods
    sign = (np.arange(len(t)) % 2)  # the lamp's polarity in each half period
    glare = Events.from_arrays(t, np.full(len(t), 60), np.full(len(t), 40), sign, W, H)
    edge = Events.from_arrays(t + 1, np.full(len(t), 20), np.full(len(t), 40), 1 - sign, W, H)
    far = Events.from_arrays(t + 2, np.full(len(t), 120), np.full(len(t), 90), sign, W, H)
    ev = merge(core, glare, edge, far)
    gate = FlareGate(GateSpec(radius_px=32, ghost_reach=0.0, phase_bins=20, phase_min=4), (W, H))
    idx = ev.t // 20_000
    phase = np.concatenate([(gate.update(int(w), ev.x[m], ev.y[m], ev.p[m], ev.t[m]), gate.phase)[1]
                            for w in np.unique(idx) for m in [idx == w]])
    late = ev.t >= 40_000  # the lamp is a source from its second window on
    at = lambda x, y: late & (ev.x == x) & (ev.y == y)  # noqa: E731
    assert (phase[at(60, 40)] > 0.9).all() and (phase[at(20, 40)] < -0.9).all()
    assert (phase[at(120, 90)] == 0).all()


@pytest.mark.parametrize("kw", [dict(flicker_streak=3, gate_each=2),
                                dict(flicker_lock=2, flicker_phase=0.5, gate_phase_bins=20, gate_phase_min=2, gate_each=2),
                                dict(flicker_lock=2, flicker_phase=0.5, gate_phase_bins=20, gate_phase_min=2, gate_each=2,
                                     gate_lock_z=1.0, gate_lock_decay=0.5)])
def test_streak_and_phase_decisions_do_not_depend_on_the_cut_and_stay_near_the_lamp(mask_ckpt, kw):
    ev = merge(lamp(20, 60, 120_000, hz=50.0, seed=5), scene(5, 6000, 120_000))
    whole = run(make_stage(mask_ckpt, **kw), [ev])
    rng = np.random.default_rng(5)
    for _ in range(3):
        bounds = [0] + sorted(rng.integers(0, len(ev), 6).tolist()) + [len(ev)]
        parts = [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        np.testing.assert_array_equal(run(make_stage(mask_ckpt, **kw), parts), whole)
    far = (ev.x >= 64) & (ev.y >= 64)  # neither near (20, 60) nor on its ghost line (to 119, 33)
    assert far.sum() > 500 and whole[far].all()
    assert not whole.all()


def test_flicker_streak_drops_a_lamp_flickering_window_after_window_whatever_the_unet(mask_ckpt):
    """keep_threshold 0: the U-Net removes nothing; the streak alone drops the lamp's pixels from
    the window where they have alternated twice in each of three windows running."""
    light = lamp(20, 60, 120_000, hz=50.0, seed=6)
    busy = scene(6, 3000, 120_000)
    busy = busy[~((busy.x >= 20) & (busy.x < 23) & (busy.y >= 60) & (busy.y < 63))]  # (an event of
    ev = merge(light, busy)  # the scene at a lamp pixel can break its run of alternations)
    keep = run(make_stage(mask_ckpt, keep_threshold=0.0, flicker_streak=3, gate_each=2), [ev])
    lit = (ev.x >= 20) & (ev.x < 23) & (ev.y >= 60) & (ev.y < 63)
    assert keep[lit & (ev.t < 60_000)].all() and not keep[lit & (ev.t >= 60_000)].any()
    assert keep[~lit].mean() > 0.99
    assert run(make_stage(mask_ckpt, keep_threshold=0.0), [ev]).all()


def test_the_lamp_core_is_kept_and_its_glare_dropped(mask_ckpt):
    """``gate_core_px``: the events within it of the centre of a lamp's flickering events are the
    light source and kept; the flickering glare around it is still dropped by the streak."""
    core = lamp(40, 40, 120_000, hz=50.0, size=3, seed=7)
    ring = concat([lamp(40 + dx, 40 + dy, 120_000, hz=50.0, size=1, seed=8 + i)
                   for i, (dx, dy) in enumerate([(-8, 1), (10, 1), (1, -8), (1, 10)])], W, H)
    ev = merge(core, ring)
    kw = dict(keep_threshold=0.0, flicker_streak=3, gate_each=2)
    plain = run(make_stage(mask_ckpt, **kw), [ev])
    kept = run(make_stage(mask_ckpt, gate_core_px=3.0, **kw), [ev])
    late = ev.t >= 60_000
    centre = (np.abs(ev.x.astype(int) - 41) <= 1) & (np.abs(ev.y.astype(int) - 41) <= 1)
    assert not plain[late].any()  # without it the streak drops the lamp too
    assert kept[late & centre].all() and not kept[late & ~centre].any()


def test_the_phase_lock_gates_the_glare_blocks_and_not_a_scene_block_beside_them():
    """Within the lamp's reach, a block whose events fire in step with the lamp stays gated and a
    block of scene events of either polarity at their own times leaves the gate (lock_z > 0);
    without the lock both are gated."""
    core = lamp(40, 40, 200_000, hz=100.0, per_flip=3)
    half = 5000
    t = np.arange(0, 200_000, half)
    sign = np.arange(len(t)) % 2  # the lamp's polarity in each half period
    glare = Events.from_arrays(np.repeat(t + 300, 4), np.tile([56, 57, 58, 59], len(t)), np.full(4 * len(t), 40),
                               np.repeat(sign, 4), W, H)
    rng = np.random.default_rng(1)
    n = 1200
    moving = Events.from_arrays(np.sort(rng.integers(0, 200_000, n)), rng.integers(16, 32, n), rng.integers(48, 64, n),
                                rng.integers(0, 2, n), W, H)  # about 23 px from the lamp: inside its 32 px reach
    ev = merge(core, glare, moving)
    idx = ev.t // 20_000
    for lock_z, scene_gated in ((0.0, True), (3.0, False)):
        gate = FlareGate(GateSpec(radius_px=32, ghost_reach=0.0, phase_bins=20, phase_min=4, lock_z=lock_z), (W, H))
        blocks = [gate.update(int(w), ev.x[m], ev.y[m], ev.p[m], ev.t[m]) for w in np.unique(idx) for m in [idx == w]]
        late = blocks[3:]  # the lamp is a source, the lock sums have run for a few windows
        assert all(b[40 // 16, 56 // 16] for b in late)  # the glare block
        assert all(b[48 // 16, 16 // 16] == scene_gated for b in late)  # the scene block
