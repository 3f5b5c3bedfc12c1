"""The deflarer's look-ahead (``lookahead_windows``): a window decided with what the gate found in
the windows after it, exactly (plain reference, any message cut, flush, time going backwards)."""
import logging

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core.deflarer.gate import FlareGate, GateSpec, gate_reference
from eventfx_core.errors import ConfigError
from eventfx_core.events import Events, concat
from test_deflare_gate import H, W, lamp, make_stage, mask_ckpt, merge, scene, steady_lamp  # noqa: F401 (mask_ckpt: fixture)


def run(stage, parts, advance=False):
    """Decisions of ``parts`` pushed one by one (with ``advance``, the stream clock is also
    moved to the start of the next part after each, as the pipeline does), then flushed."""
    out = []
    for i, part in enumerate(parts):
        out.append(stage.push(part))
        if advance and i + 1 < len(parts) and len(parts[i + 1]):
            out.append(stage.advance(int(parts[i + 1].t[0])))
    return np.concatenate(out + [stage.flush()])


def lamp_cores(source, x, y, flickering, block_px, core_px, shift=0, contrast=0.0):
    """The gate's two steps: the lamps' centres, then the events of their cores."""
    from eventfx_core.deflarer.phase import core_events, lamp_centres
    return core_events(lamp_centres(source, x, y, flickering, block_px, core_px, shift), x, y, core_px, contrast)


def judged_in_stage_order(spec, ev, lookahead, fields=("alternations", "streak", "phase", "core")):
    """FlareGate as the stage drives it: each window judged once ``lookahead`` later windows have
    been observed, before any newer one is; per window (gated blocks, *the gate's ``fields``)."""
    gate, held, out = FlareGate(spec, (W, H)), [], []

    def release(open_index):
        while held and (open_index is None or held[0].index + lookahead < open_index):
            obs = held.pop(0)
            blocks = gate.judge(obs, list(held))
            out.append((blocks, *(getattr(gate, f) for f in fields)))

    idx = ev.t // 20_000
    for w in np.unique(idx):
        m = idx == w
        release(int(w))
        held.append(gate.observe(int(w), ev.x[m], ev.y[m], ev.p[m], ev.t[m]))
    release(None)
    return out


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), hz=st.sampled_from([50.0, 100.0, 150.0]), lookahead=st.integers(0, 3),
       gap=st.booleans(), each=st.integers(0, 3), each_windows=st.integers(1, 4), hold=st.integers(1, 4),
       steady=st.integers(0, 3), phase_bins=st.sampled_from([0, 20]), core_px=st.sampled_from([0.0, 1.5, 4.0]),
       core_shift=st.integers(0, 4), core_contrast=st.sampled_from([0.0, 1.0, 2.5]))
def test_lookahead_gate_equals_the_plain_reference(seed, hz, lookahead, gap, each, each_windows, hold, steady,
                                                   phase_bins, core_px, core_shift, core_contrast):
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, 3)) * 20_000  # the lamp switches on in the first windows
    light = lamp(int(rng.integers(0, W - 3)), int(rng.integers(0, H - 3)), 140_000, hz, seed=seed)
    light = Events.from_arrays(light.t + start, light.x, light.y, light.p, W, H)
    ev = merge(light[light.t < 160_000], steady_lamp(int(rng.integers(0, W - 6)), int(rng.integers(0, H - 6)),
                                                     160_000, seed=seed), scene(seed, 3000, 160_000))
    if gap:  # a window without events: no alternation or streak spans it
        ev = ev[(ev.t < 60_000) | (ev.t >= 80_000)]
    spec = GateSpec(rate=8, flicker=4, cluster=2, block_px=8, hold=hold, radius_px=20, ghost_radius_px=6,
                    steady=steady, steady_cluster=4, steady_contrast=2.0, each=each, each_windows=each_windows,
                    phase_bins=phase_bins, phase_min=2, core_px=core_px, core_shift=core_shift,
                    core_contrast=core_contrast)
    fast = judged_in_stage_order(spec, ev, lookahead)
    idx = ev.t // 20_000
    windows = [(int(w), list(zip(ev.x[m].tolist(), ev.y[m].tolist(), ev.p[m].tolist(), ev.t[m].tolist())))
               for w in np.unique(idx) for m in [idx == w]]
    ref_events: list = []
    ref = gate_reference(windows, spec, (W, H), per_event=ref_events, lookahead=lookahead)
    assert len(fast) == len(ref) == len(windows)
    for (blocks, *got), want_blocks, want in zip(fast, ref, ref_events):
        np.testing.assert_array_equal(blocks, want_blocks)
        for g, r in zip(got, want):
            np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)


def test_a_lamp_found_later_gates_its_earlier_windows():
    """A 50 Hz lamp alternates once in its 1st window and twice in every later one, so it is found
    (each 2 in 3 windows running) in its 4th; with look-ahead 2 its 2nd window is gated too."""
    spec = GateSpec(radius_px=24, ghost_reach=0.0, each=2, each_windows=3)
    ev = merge(lamp(20, 60, 120_000, hz=50.0, seed=5))
    plain, ahead = judged_in_stage_order(spec, ev, 0), judged_in_stage_order(spec, ev, 2)
    assert [b.any() for b, *_ in plain][:4] == [False, False, False, True]
    assert [b.any() for b, *_ in ahead][:4] == [False, True, True, True]
    assert [int(s.max()) for _, _, s, _, _ in plain][:4] == [0, 1, 2, 3]
    assert [int(s.max()) for _, _, s, _, _ in ahead][:4] == [0, 3, 4, 5]


def test_a_lamp_found_later_keeps_its_core_from_its_first_window():
    """A 50 Hz lamp alternates only once in its first window, so that window alone shows no
    flickering pixel to centre the lamp on; with look-ahead 3 the window is gated (the lamp is
    found in the 4th), and the next window's centre keeps the lamp's own events there. Equal to
    the plain reference."""
    spec = GateSpec(radius_px=24, ghost_reach=0.0, each=2, each_windows=3, phase_bins=20, phase_min=2,
                    core_px=3.0, core_shift=2)
    ev = merge(lamp(20, 60, 120_000, hz=50.0, seed=5), scene(5, 2000, 120_000))
    on_lamp = (ev.x >= 20) & (ev.x < 23) & (ev.y >= 60) & (ev.y < 63)
    first = ev.t < 20_000
    fast = judged_in_stage_order(spec, ev, 3, fields=("streak", "core"))
    blocks, streak, core = fast[0]
    assert blocks[60 // 16, 20 // 16] and not (streak[on_lamp[first]] > 0).any()
    assert core[on_lamp[first]].all()
    assert not core[~on_lamp[first]].any()
    idx = ev.t // 20_000
    windows = [(int(w), list(zip(ev.x[m].tolist(), ev.y[m].tolist(), ev.p[m].tolist(), ev.t[m].tolist())))
               for w in np.unique(idx) for m in [idx == w]]
    per_event: list = []
    gate_reference(windows, spec, (W, H), per_event=per_event, lookahead=3)
    for (_, _, got), (_, _, _, want) in zip(fast, per_event):
        np.testing.assert_array_equal(got, want)


def test_the_next_windows_centres_join_only_far_from_this_windows():
    """A centre of the next window joins when it lies more than core_px from every centre of this
    window; two such next-window centres close to each other both join (the cores are a union)."""
    from eventfx_core.deflarer.phase import with_next_centres
    got = with_next_centres([(0.0, 0.0)], [(1.0, 0.0), (10.0, 0.0), (11.0, 0.0), (0.0, 3.0)], 3.0)
    assert got == [(0.0, 0.0), (10.0, 0.0), (11.0, 0.0)]


def streak_oracle(ev, lookahead, flicker_streak, core_px, **spec_kw):
    """Decisions of a stage that never trusts the U-Net (keep_threshold 0), from the plain
    reference: drop a gated event whose pixel's streak (look-ahead included) reaches
    ``flicker_streak``, unless it is a lamp core."""
    spec = GateSpec(radius_px=24, ghost_radius_px=8, core_px=core_px, **spec_kw)
    idx = ev.t // 20_000
    windows = [(int(w), list(zip(ev.x[m].tolist(), ev.y[m].tolist(), ev.p[m].tolist(), ev.t[m].tolist())))
               for w in np.unique(idx) for m in [idx == w]]
    per_event: list = []
    blocks = gate_reference(windows, spec, (W, H), per_event=per_event, lookahead=lookahead)
    out = []
    for (_, events), gate, (_, streak, _, core) in zip(windows, blocks, per_event):
        gated = np.array([gate[y // spec.block_px, x // spec.block_px] for x, y, *_ in events], bool)
        out.append(~(gated & (streak >= flicker_streak)) | core)
    return np.concatenate(out)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 1000), cuts=st.lists(st.integers(0, 6000), max_size=8), lookahead=st.integers(1, 3),
       advance=st.booleans())
def test_lookahead_decisions_follow_the_reference_whatever_the_cut(mask_ckpt, seed, cuts, lookahead, advance):
    ev = merge(lamp(20, 60, 140_000, hz=50.0, seed=seed), lamp(90, 20, 140_000, hz=120.0, seed=seed + 1),
               scene(seed, 3000, 140_000))
    kw = dict(gate_each=2, gate_each_windows=3, gate_core_px=0.5, flicker_streak=3)
    want = streak_oracle(ev, lookahead, 3, 0.5, each=2, each_windows=3)
    assert 0 < want.sum() < len(ev)
    bounds = [0] + sorted(c % len(ev) for c in cuts) + [len(ev)]
    parts = [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    stage = make_stage(mask_ckpt, keep_threshold=0.0, lookahead_windows=lookahead, **kw)
    np.testing.assert_array_equal(run(stage, parts, advance), want)
    # the same cut with the U-Net deciding too: the cut changes nothing
    whole = run(make_stage(mask_ckpt, lookahead_windows=lookahead, **kw), [ev])
    np.testing.assert_array_equal(run(make_stage(mask_ckpt, lookahead_windows=lookahead, **kw), parts, advance),
                                  whole)


def test_lookahead_drops_a_lamp_from_its_first_flickering_window(mask_ckpt):
    """The streak rule, 50 Hz lamp: without look-ahead its pixels are dropped from the window in
    which they have alternated twice in each of three windows (the 4th); with 2 windows of
    look-ahead from the first in which they alternate twice (the 2nd)."""
    light = lamp(20, 60, 120_000, hz=50.0, seed=6)
    busy = scene(6, 3000, 120_000)
    busy = busy[~((busy.x >= 20) & (busy.x < 23) & (busy.y >= 60) & (busy.y < 63))]
    ev = merge(light, busy)
    lit = (ev.x >= 20) & (ev.x < 23) & (ev.y >= 60) & (ev.y < 63)
    kw = dict(keep_threshold=0.0, flicker_streak=3, gate_each=2)
    plain = run(make_stage(mask_ckpt, **kw), [ev])
    ahead = run(make_stage(mask_ckpt, lookahead_windows=2, **kw), [ev])
    assert plain[lit & (ev.t < 60_000)].all() and not plain[lit & (ev.t >= 60_000)].any()
    assert ahead[lit & (ev.t < 20_000)].all() and not ahead[lit & (ev.t >= 20_000)].any()
    assert ahead[~lit].mean() > 0.99


def test_lookahead_holds_each_window_until_its_later_windows_close(mask_ckpt):
    stage = make_stage(mask_ckpt, lookahead_windows=2)
    ev = Events.from_arrays([100, 25_000, 45_000, 61_000, 101_000], [1, 2, 3, 4, 5], [1, 1, 1, 1, 1],
                            [1, 0, 1, 1, 0], W, H)
    assert len(stage.push(ev[:3])) == 0 and stage.pending == 3  # windows 0, 1 closed, 2 open: held
    assert len(stage.push(ev[3:4])) == 1 and stage.pending == 3  # window 3 opens: window 0 decided
    assert len(stage.advance(79_999)) == 0
    assert len(stage.advance(80_000)) == 1 and stage.pending == 2  # window 4 opens: window 1 decided
    assert len(stage.push(ev[4:])) == 1 and stage.pending == 2  # window 5 opens: window 2 decided
    assert len(stage.flush()) == 2 and stage.pending == 0  # the end decides what is held
    assert len(stage.flush()) == 0
    # without the gate there is nothing to look ahead for: decided as the window closes
    plain = make_stage(mask_ckpt, lookahead_windows=2, gate=False)
    assert len(plain.push(ev[:3])) == 2


def test_time_going_backwards_decides_what_is_held_then_resets(mask_ckpt, caplog):
    ev = merge(lamp(20, 60, 100_000, hz=50.0, seed=9), scene(9, 2000, 100_000))
    kw = dict(lookahead_windows=2, gate_each=2, flicker_streak=3)
    first = run(make_stage(mask_ckpt, **kw), [ev])
    stage = make_stage(mask_ckpt, **kw)
    with caplog.at_level(logging.WARNING, logger="eventfx_core.deflarer.stage"):
        out = run(stage, [ev[:1500], concat([ev[1500:], ev], W, H)])
    assert "time goes backwards" in caplog.text and stage.resets == 1
    assert len(out) == 2 * len(ev)  # every event exactly one decision
    np.testing.assert_array_equal(out[len(ev):], first)
    assert stage.pending == 0


def test_lookahead_must_not_be_negative(mask_ckpt):
    with pytest.raises(ConfigError, match="lookahead_windows"):
        make_stage(mask_ckpt, lookahead_windows=-1)


def test_mean_shift_centres_the_core_on_the_lamp():
    """The 3x3-block centroid of a lamp whose halo the blocks cut off lies off the lamp; a few
    mean-shift steps bring it back, so a small ``core_px`` keeps the lamp and drops the halo."""
    from eventfx_core.deflarer.phase import lamp_cores_reference
    rng = np.random.default_rng(1)
    n = 4000  # a lamp at (20, 20) near the sensor's corner, its halo decaying over 6 px
    r, a = rng.exponential(6.0, n), rng.uniform(0, 2 * np.pi, n)
    x = np.clip(np.round(20 + r * np.cos(a)), 0, W - 1).astype(np.int64)
    y = np.clip(np.round(20 + r * np.sin(a)), 0, H - 1).astype(np.int64)
    x = np.concatenate([x, rng.integers(36, 48, 1500)])  # a busy flickering patch in the next blocks
    y = np.concatenate([y, rng.integers(0, 48, 1500)])
    source = np.zeros((H // 16, W // 16), bool)
    source[:3, :3] = True
    flick = np.ones(len(x), bool)
    lamp_px = (x == 20) & (y == 20)
    plain = lamp_cores(source, x, y, flick, 16, 2.0)
    shifted = lamp_cores(source, x, y, flick, 16, 2.0, shift=6)
    assert not plain[lamp_px].any() and shifted[lamp_px].all()
    assert shifted[np.hypot(x - 20, y - 20) > 3].sum() == 0
    events = list(zip(x.tolist(), y.tolist()))
    np.testing.assert_array_equal(lamp_cores_reference(source, events, flick.tolist(), 16, 2.0, 6), shifted)


def test_out_of_step_keeps_a_scene_event_at_a_glare_pixel_and_drops_the_glare(mask_ckpt):
    """``out_of_step``: at a pixel of a 50 Hz lamp, events of the opposite polarity to the lamp's
    in the same 1 ms (a scene edge there) are kept; the lamp's own events are still dropped."""
    light = lamp(20, 60, 120_000, hz=50.0, seed=11)
    late = light.t >= 60_000
    odd = Events.from_arrays(light.t[late][::9] + 1, light.x[late][::9], light.y[late][::9],
                             1 - light.p[late][::9], W, H)  # out of step with the lamp
    ev = merge(light, odd)
    is_odd = np.zeros(len(ev), bool)
    key = set(zip(odd.t.tolist(), odd.x.tolist(), odd.y.tolist(), odd.p.tolist()))
    is_odd[:] = [(t, x, y, p) in key for t, x, y, p in zip(ev.t.tolist(), ev.x.tolist(), ev.y.tolist(), ev.p.tolist())]
    kw = dict(keep_threshold=0.0, flicker_streak=3, gate_each=2, gate_phase_bins=20, gate_phase_min=4)
    plain = run(make_stage(mask_ckpt, **kw), [ev])
    kept = run(make_stage(mask_ckpt, out_of_step=0.0, **kw), [ev])
    assert is_odd.sum() >= 15 and not plain[is_odd].any() and kept[is_odd].all()
    assert not kept[~is_odd & (ev.t >= 60_000)].any()
    assert (kept >= plain).all()
    with pytest.raises(ConfigError, match="out_of_step"):
        make_stage(mask_ckpt, out_of_step=1.5)


def test_core_contrast_keeps_a_wide_source_and_not_a_smooth_halo():
    """``contrast``: a source 6 px wide (pixels firing 5 times each) over a sparse glare (once
    each) is kept whole with a 3 px ``core_px``; a smooth halo (counts falling slowly) is not."""
    from eventfx_core.deflarer.phase import lamp_cores_reference
    yy, xx = np.mgrid[0:H, 0:W]
    r = np.hypot(xx - 60, yy - 40)
    source = np.zeros((H // 16, W // 16), bool)
    source[1:4, 2:5] = True

    def events(counts):
        n = counts.ravel()
        return np.repeat(xx.ravel(), n), np.repeat(yy.ravel(), n)

    wide = np.where(r <= 6, 5, np.where(r <= 12, 1, 0))
    smooth = np.where(r <= 12, np.maximum(1, np.round(5 * np.exp(-r / 8))).astype(int), 0)
    for counts, want_kept in ((wide, r <= 6), (smooth, r <= 3)):
        x, y = events(counts)
        flick = np.ones(len(x), bool)
        got = lamp_cores(source, x, y, flick, 16, 3.0, shift=3, contrast=2.5)
        inside = want_kept[y, x]
        assert got[inside].all() and not got[~inside].any()
        assert not lamp_cores(source, x, y, flick, 16, 3.0, shift=3)[np.hypot(x - 60, y - 40) > 3].any()
        np.testing.assert_array_equal(
            lamp_cores_reference(source, list(zip(x.tolist(), y.tolist())), flick.tolist(), 16, 3.0, 3, 2.5), got)
