"""The gate's moving-steady-lamp tracker (``gate_track_*``, deflarer/steady.py): plain
reference, any message cut, its glare dropped and its core kept, no track without a lamp."""
import numpy as np
from hypothesis import given, settings, strategies as st

from eventfx_core.deflarer.gate import FlareGate, GateSpec, gate_reference
from eventfx_core.evaluate.glare_overlay import CORE, GLARE, Lamp, render_overlay
from eventfx_core.events import Events
from test_deflare_gate import H, W, make_stage, mask_ckpt, merge, run, scene  # noqa: F401 (mask_ckpt: fixture)
from test_deflare_lookahead import judged_in_stage_order

TRACK = dict(track_burst=2, track_pixels=6, track_halo=0.15, track_z=8.0, track_windows=3, track_match_px=4.0,
             track_reach_px=50.0, track_core_px=5.0)


def moving_lamp(t_end, x=90.0, y=30.0, vx=-60.0, vy=30.0, seed=0):
    """A steady lamp drifting across the sensor (the benchmark's overlay): its events and labels."""
    lamp = Lamp(x, y, "steady", vx=vx, vy=vy, ghosts=())
    return render_overlay(lamp, W, H, 0, t_end, seed=seed)


def windows_of(ev):
    idx = ev.t // 20_000
    return [(int(w), list(zip(ev.x[m].tolist(), ev.y[m].tolist(), ev.p[m].tolist(), ev.t[m].tolist())))
            for w in np.unique(idx) for m in [idx == w]]


def gate_field_equals_reference(spec, ev, lookahead, field):
    """The gate's per-event ``field`` of every window, judged in the stage's order, asserted equal
    to ``gate_reference``'s (its keyword argument of that name); returned."""
    fast = [g for _, g in judged_in_stage_order(spec, ev, lookahead, fields=(field,))]
    ref: list = []
    gate_reference(windows_of(ev), spec, (W, H), lookahead=lookahead, **{field: ref})
    assert len(fast) == len(ref)
    for got, want in zip(fast, ref):
        np.testing.assert_array_equal(got, want)
    return fast


def with_labels(glare, lab, seed, n=3000, t_end=160_000):
    """The lamp over a random scene, and per event its label (0 scene)."""
    sc = scene(seed, n, t_end)
    t = np.concatenate([glare.t, sc.t])
    o = np.argsort(t, kind="stable")
    ev = Events.from_arrays(t[o], np.concatenate([glare.x, sc.x])[o], np.concatenate([glare.y, sc.y])[o],
                            np.concatenate([glare.p, sc.p])[o], W, H)
    return ev, np.concatenate([lab, np.zeros(len(sc), np.uint8)])[o]


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), lookahead=st.integers(0, 3), burst=st.integers(1, 3), pixels=st.integers(1, 8),
       windows=st.integers(1, 4), halo=st.sampled_from([0.0, 0.15]), z=st.sampled_from([0.0, 8.0]),
       gap=st.booleans())
def test_tracker_equals_the_plain_reference_with_look_ahead(seed, lookahead, burst, pixels, windows, halo, z, gap):
    rng = np.random.default_rng(seed)
    glare, _ = moving_lamp(160_000, x=float(rng.uniform(30, W - 30)), y=float(rng.uniform(20, H - 20)),
                           vx=float(rng.uniform(-150, 150)), vy=float(rng.uniform(-150, 150)), seed=seed)
    ev = merge(glare, scene(seed, 3000, 160_000))
    if gap:  # a window without events: no track spans it
        ev = ev[(ev.t < 60_000) | (ev.t >= 80_000)]
    spec = GateSpec(block_px=8, radius_px=20, ghost_radius_px=6, track_burst=burst, track_pixels=pixels,
                    track_halo=halo, track_z=z, track_windows=windows, track_reach_px=30.0, track_core_px=3.0)
    fast = gate_field_equals_reference(spec, ev, lookahead, "steady_glare")
    assert any(g.any() for g in fast) or burst > 1 or pixels > 1 or windows > 1  # the loosest setting finds it


def test_a_moving_steady_lamp_is_tracked_its_glare_dropped_and_its_core_kept(mask_ckpt):
    glare, lab = moving_lamp(160_000)
    ev, src = with_labels(glare, lab, seed=1)
    on = run(make_stage(mask_ckpt, lookahead_windows=2, **{f"gate_{k}": v for k, v in TRACK.items()}), [ev])
    off = run(make_stage(mask_ckpt, lookahead_windows=2), [ev])
    assert off[src == GLARE].mean() == 1.0  # no flicker: the gate alone finds no lamp
    assert 1 - on[src == GLARE].mean() >= 0.3  # ON ahead and OFF behind the drifting core: dropped
    assert on[src == CORE].mean() == 1.0  # the lamp itself is kept
    s = ev.t * 1e-6  # the lamp starts at (90, 30) and drifts by (-60, 30) px/s
    far = (src == 0) & (np.hypot(ev.x - (90 - 60 * s), ev.y - (30 + 30 * s)) > 60)
    assert far.sum() > 100 and on[far].all()  # nothing is dropped beyond the glare's reach


def test_no_track_in_a_scene_without_a_lamp(mask_ckpt):
    """A bright bar sweeping the sensor at 1 px/ms (a passing edge: at each pixel a burst of 3 ON
    events as it arrives and of 3 OFF as it leaves 5 ms later) over random events: no lamp, every
    event kept."""
    t0 = np.arange(0, 150_000, 1000)  # the bar's front reaches column (t0 // 1000) % W at t0
    ys = np.arange(20, 60)
    t, x, y, p = [], [], [], []
    for start in t0:
        for k in range(3):
            for dt, pol in ((0, 1), (5000, 0)):
                t.append(np.full(len(ys), start + dt + 100 * k))
                x.append(np.full(len(ys), (start // 1000) % W))
                y.append(ys)
                p.append(np.full(len(ys), pol))
    bar = Events.from_arrays(*(np.concatenate(v) for v in (t, x, y, p)), W, H)
    ev = merge(bar, scene(2, 5000, 160_000))
    spec = GateSpec(**TRACK)
    out = judged_in_stage_order(spec, ev, 2)
    gate = FlareGate(spec, (W, H))
    idx = ev.t // 20_000
    for w in np.unique(idx):
        m = idx == w
        gate.update(int(w), ev.x[m], ev.y[m], ev.p[m], ev.t[m])
        assert not gate.steady_glare.any()
    assert len(out) == len(np.unique(idx))
    keep = run(make_stage(mask_ckpt, lookahead_windows=2, **{f"gate_{k}": v for k, v in TRACK.items()}), [ev])
    assert keep.all()


@settings(max_examples=4, deadline=None)
@given(cuts=st.lists(st.integers(0, 20000), max_size=8))
def test_steady_decisions_do_not_depend_on_the_message_cut(mask_ckpt, cuts):
    glare, lab = moving_lamp(160_000)
    ev, src = with_labels(glare, lab, seed=1)  # tracked (test above)
    kw = dict(lookahead_windows=2, **{f"gate_{k}": v for k, v in TRACK.items()})
    whole = run(make_stage(mask_ckpt, **kw), [ev])
    bounds = [0] + sorted(c % len(ev) for c in cuts) + [len(ev)]
    np.testing.assert_array_equal(run(make_stage(mask_ckpt, **kw), [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]),
                                  whole)
    assert 0 < whole.sum() < len(ev) and not whole[src == GLARE].all()
