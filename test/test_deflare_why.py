"""The deflarer's per-event WHY codes and flare_real's ambiguity measure (issue 14): the codes
name a rule for exactly the removed events, whatever the message cut; ``near_glare`` equals a
plain loop over the events."""
import numpy as np
from hypothesis import given, settings, strategies as st

from eventfx_core.deflarer.stage import WHY
from eventfx_core.evaluate.flare_real import near_glare, scene_loss
from eventfx_core.evaluate.glare_overlay import Lamp
from eventfx_core.events import Events
from test_deflare_gate import H, W, lamp, merge, scene
from test_deflare_lookahead import make_stage, mask_ckpt, run  # noqa: F401 (fixture)


def why_of(stage, parts):
    stage.why = []
    keep = run(stage, parts)
    return keep, np.concatenate(stage.why)


@settings(max_examples=6, deadline=None)
@given(cut=st.lists(st.integers(1, 3299), max_size=4, unique=True), thr=st.sampled_from([0.0, 0.6]))
def test_why_codes_name_exactly_the_removed_events_whatever_the_cut(mask_ckpt, cut, thr):
    """keep_threshold 0: the U-Net keeps everything, so every removed event is the streak's;
    0.6: the U-Net drops through the flicker lock, at alternating pixels and by phase."""
    ev = merge(lamp(20, 60, 120_000, hz=50.0, seed=6), scene(6, 3000, 120_000))
    kw = dict(keep_threshold=thr, flicker_lock=2, flicker_phase=0.9, flicker_streak=3, gate_each=2,
              gate_phase_bins=20, gate_phase_min=4, lookahead_windows=2)
    keep, why = why_of(make_stage(mask_ckpt, **kw), [ev])
    assert len(why) == len(ev) and ((why == 0) == keep).all() and (~keep).sum() > 30
    if thr == 0.0:
        assert (why[~keep] == WHY["streak"]).all()
    else:
        assert (why == WHY["unet_alternating"]).any() and (why == WHY["unet_phase"]).any()
        assert not (why == WHY["unet"]).any()
    edges = [0] + sorted(c for c in cut if c < len(ev)) + [len(ev)]
    keep2, why2 = why_of(make_stage(mask_ckpt, **kw), [ev[a:b] for a, b in zip(edges[:-1], edges[1:])])
    assert (keep2 == keep).all() and (why2 == why).all()


def near_reference(ev, src, dt_us):
    g = [(x, y, t) for x, y, t, s in zip(ev.x.tolist(), ev.y.tolist(), ev.t.tolist(), src.tolist()) if s]
    return np.array([any(gx == x and gy == y and abs(gt - t) <= dt_us for gx, gy, gt in g)
                     for x, y, t, s in zip(ev.x.tolist(), ev.y.tolist(), ev.t.tolist(), src.tolist()) if not s], bool)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), dt=st.sampled_from([0, 1, 50, 400]))
def test_near_glare_equals_the_plain_loop(seed, dt):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 120))
    t = np.sort(rng.integers(10**12, 10**12 + 2000, n))
    ev = Events.from_arrays(t, rng.integers(0, 3, n), rng.integers(0, 2, n), rng.integers(0, 2, n), W, H)
    src = rng.integers(0, 3, n).astype(np.uint8)
    src[0] = 0
    assert (near_glare(ev, src, dt) == near_reference(ev, src, dt)).all()


def test_scene_loss_adds_up_to_the_scene_lost():
    rng = np.random.default_rng(1)
    n = 400
    ev = Events.from_arrays(np.sort(rng.integers(0, 50_000, n)), rng.integers(0, W, n), rng.integers(0, H, n),
                            rng.integers(0, 2, n), W, H)
    src = (rng.random(n) < 0.3).astype(np.uint8) * 2
    keep = rng.random(n) < 0.8
    base = rng.random(int((src == 0).sum())) < 0.9
    why = np.where(keep, 0, rng.integers(2, 5, n)).astype(np.int8)
    r = scene_loss(ev, src, keep, base, Lamp(10.0, 10.0, vx=5.0), 0, np.full(n, -1, np.int8), ["deflare"], why)
    lost = 100 * (base & ~keep[src == 0]).sum() / base.sum()
    assert abs(sum(r["lost_by_distance_pts"].values()) - lost) < 1e-9
    assert abs(sum(r["lost_by_rule_pts"].values()) - lost) < 1e-9
    assert r["lost_near_2ms_pts"] <= r["lost_near_20ms_pts"] <= lost + 1e-9
    assert 0 <= r["ceiling_20ms"] <= r["ceiling_2ms"] <= 1


def test_glare_kept_adds_up_to_the_glare_kept_and_names_the_parts():
    """``glare_kept``: each grouping adds up to the glare kept; a lamp without rays or streak keeps
    nothing there, and glare far along a ray is the rays' part."""
    from eventfx_core.evaluate.flare_real import glare_kept
    from eventfx_core.evaluate.glare_overlay import GLARE, TERMS, glare_part, render_overlay
    lamp_ = Lamp(60.0, 40.0, "mains", 100.0, vx=-40.0, ghosts=())
    ev, lab = render_overlay(lamp_, W, H, 0, 60_000, seed=2)
    keep = np.random.default_rng(3).random(len(ev)) < 0.3
    r = glare_kept(ev, lab, keep, lamp_, 0, 20_000)
    kept = 100 * keep[lab == GLARE].sum() / (lab == GLARE).sum()
    for group in ("kept_by_part_pts", "kept_by_distance_pts"):
        assert abs(sum(r[group].values()) - kept) < 1e-9
    assert abs(r["kept_before_onset_pts"] + r["kept_after_onset_pts"] - kept) < 1e-9
    assert r["kept_by_part_pts"]["ghosts"] == 0 and r["kept_by_part_pts"]["halo"] > 0
    assert list(r["kept_by_part_pts"]) == list(TERMS)
    plain = Lamp(60.0, 40.0, "mains", 100.0, rays=0, streak_px=0.0, ghosts=())
    ev2, lab2 = render_overlay(plain, W, H, 0, 40_000, seed=2)
    assert (glare_part(plain, ev2, 0)[lab2 == GLARE] == 0).all()  # only a halo left
    far = Events.from_arrays(np.array([10_000]), np.array([60 + 30]), np.array([40]), np.array([1]), W, H)
    assert glare_part(lamp_, far, 0)[0] == TERMS.index("rays")  # on the ray at angle 0, 30 px out
