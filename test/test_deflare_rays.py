"""A flickering lamp's rays (``gate_ray_*``, deflarer/rays.py): the fast path equals the plain
reference, alone and inside the gate; rays are found and the scene around them is not; the
stage's decisions do not depend on the message cut."""
import numpy as np
from hypothesis import given, settings, strategies as st

from eventfx_core.deflarer.gate import GateSpec
from eventfx_core.deflarer.rays import diamond, ray_glare, ray_glare_reference
from eventfx_core.deflarer.stage import WHY
from eventfx_core.evaluate.glare_overlay import GLARE, Lamp, render_overlay
from test_deflare_gate import H, W, scene
from test_deflare_lookahead import make_stage, mask_ckpt, run  # noqa: F401 (mask_ckpt: fixture)
from test_deflare_steady import gate_field_equals_reference, with_labels

RAYS = dict(ray_sectors=90, ray_inner_px=25.0, ray_peak=4.0, ray_z=8.0, ray_phase=0.9)


def rays_and_scene(seed, centre=(64.0, 48.0), rays=6, per_ray=200, n_scene=600):
    """Events on ``rays`` lines through ``centre`` from 25 to 45 px, in step with the lamp
    (agreement 1), over scene events all around (agreement uniform in [-1, 1]); labels 1 = ray."""
    rng = np.random.default_rng(seed)
    ang = np.repeat(np.arange(rays) * 2 * np.pi / rays + 0.3, per_ray)
    r = rng.uniform(25, 45, len(ang))
    rx, ry = np.round(centre[0] + r * np.cos(ang)), np.round(centre[1] + r * np.sin(ang))
    sx, sy = rng.uniform(0, W, n_scene).round(), rng.uniform(0, H, n_scene).round()
    x = np.concatenate([rx, sx]).astype(np.int64)
    y = np.concatenate([ry, sy]).astype(np.int64)
    phase = np.concatenate([np.ones(len(rx)), rng.uniform(-1, 1, n_scene)]).astype(np.float32)
    return x, y, phase, np.concatenate([np.ones(len(rx), bool), np.zeros(n_scene, bool)])


def test_diamond_angle_is_monotone_in_the_angle():
    a = np.linspace(-np.pi, np.pi, 721)[:-1]
    d = diamond(np.cos(a), np.sin(a))
    order = np.argsort(np.mod(a, 2 * np.pi), kind="stable")
    assert (np.diff(d[order]) > 0).all() and d.min() >= 0 and d.max() < 4


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), sectors=st.sampled_from([0, 8, 90]), peak=st.sampled_from([1.0, 4.0]),
       z=st.sampled_from([0.0, 8.0]), min_phase=st.sampled_from([0.0, 0.9]), centres=st.integers(0, 2))
def test_ray_glare_equals_the_plain_reference(seed, sectors, peak, z, min_phase, centres):
    x, y, phase, _ = rays_and_scene(seed)
    phase[np.random.default_rng(seed).random(len(x)) < 0.2] = 0  # no lamp phase known there
    cs = [(64.0, 48.0), (30.5, 20.25)][:centres]
    got = ray_glare(cs, x, y, phase, 25.0, 60.0, sectors, peak, z, min_phase)
    want = ray_glare_reference(cs, list(zip(x.tolist(), y.tolist())), phase.tolist(), 25.0, 60.0, sectors, peak, z,
                               min_phase)
    np.testing.assert_array_equal(got, want)


def test_rays_are_found_and_the_scene_beside_them_is_not():
    x, y, phase, is_ray = rays_and_scene(1)
    got = ray_glare([(64.0, 48.0)], x, y, phase, 25.0, 60.0, 90, 4.0, 8.0, 0.9)
    assert got[is_ray].mean() >= 0.9
    r = np.hypot(x - 64.0, y - 48.0)
    assert not got[~is_ray & ((r < 25) | (r >= 60))].any()  # nothing outside the ring
    assert got[~is_ray].mean() < 0.05  # scene only where it shares a ray's sector and agrees
    x, y, phase, is_ray = rays_and_scene(1, rays=0, n_scene=2000)  # scene only: no sector stands out
    assert not ray_glare([(64.0, 48.0)], x, y, phase, 25.0, 60.0, 90, 4.0, 8.0, 0.9).any()


def moving_lamp_with_rays(t_end, seed=0):
    lamp = Lamp(70.0, 40.0, "mains", 100.0, vx=-60.0, vy=30.0, halo_px=6.0, ray_px=30.0, streak_px=0.0, ghosts=())
    return render_overlay(lamp, W, H, 0, t_end, seed=seed)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), lookahead=st.integers(0, 2), inner=st.sampled_from([10.0, 25.0]),
       peak=st.sampled_from([1.0, 4.0]), z=st.sampled_from([0.0, 8.0]))
def test_gate_rays_equal_the_plain_reference(seed, lookahead, inner, peak, z):
    glare, lab = moving_lamp_with_rays(120_000, seed=seed)
    ev, _ = with_labels(glare, lab, seed, n=2000, t_end=120_000)
    spec = GateSpec(block_px=8, radius_px=40, ghost_radius_px=6, each=2, phase_bins=20, phase_min=4, core_px=3.0,
                    core_shift=2, **dict(RAYS, ray_inner_px=inner, ray_peak=peak, ray_z=z))
    fast = gate_field_equals_reference(spec, ev, lookahead, "ray_glare")
    assert any(g.any() for g in fast) or peak > 1.0 or z > 0  # the loosest setting finds some


RAYS_SMALL = dict(ray_sectors=45, ray_inner_px=12.0, ray_peak=3.0, ray_z=5.0, ray_phase=0.9)  # a 128x96 sensor's lamp
STAGE = dict(keep_threshold=0.6, flicker_lock=2, flicker_phase=0.9, flicker_streak=3, gate_each=2, gate_phase_bins=20,
             gate_phase_min=4, gate_core_px=3.0, gate_core_shift=2, gate_radius_px=48, gate_block_px=8,
             lookahead_windows=2)


@settings(max_examples=4, deadline=None)
@given(cuts=st.lists(st.integers(0, 40_000), max_size=6))
def test_ray_decisions_do_not_depend_on_the_message_cut(mask_ckpt, cuts):
    glare, lab = moving_lamp_with_rays(160_000)
    ev, src = with_labels(glare, lab, seed=4, n=3000)
    kw = dict(STAGE, **{f"gate_{k}": v for k, v in RAYS_SMALL.items()})
    stage = make_stage(mask_ckpt, **kw)
    stage.why = []
    whole = run(stage, [ev])
    why = np.concatenate(stage.why)
    off = run(make_stage(mask_ckpt, **STAGE), [ev])
    assert (why == WHY["ray"]).any()  # the rays removed some glare nothing else did ...
    assert (off & ~whole)[src == GLARE].sum() > (off & ~whole)[src == 0].sum()  # ... mostly glare
    assert (whole <= off).all() and ((why == WHY["ray"]) == (off & ~whole)).all()
    bounds = [0] + sorted(c % len(ev) for c in cuts) + [len(ev)]
    np.testing.assert_array_equal(run(make_stage(mask_ckpt, **kw), [ev[a:b] for a, b in zip(bounds[:-1], bounds[1:])]),
                                  whole)


def test_no_rays_without_a_lamp(mask_ckpt):
    ev = scene(5, 6000, 160_000)
    kw = dict(STAGE, **{f"gate_{k}": v for k, v in RAYS_SMALL.items()})
    assert run(make_stage(mask_ckpt, **kw), [ev]).all()


def test_nothing_near_any_centre_is_a_ray():
    """A second centre found in a lamp's wide glare (30 px away) sees the lamp and its near glare
    as one dense in-step angle; they are within ``inner_px`` of the lamp's own centre: kept."""
    rng = np.random.default_rng(2)
    lx, ly = rng.normal(64.0, 3.0, 800).round(), rng.normal(48.0, 3.0, 800).round()  # a lamp and its near glare
    sx, sy = rng.uniform(0, W, 600).round(), rng.uniform(0, H, 600).round()
    x, y = np.concatenate([lx, sx]).astype(np.int64), np.concatenate([ly, sy]).astype(np.int64)
    phase = np.concatenate([np.ones(len(lx)), rng.uniform(-1, 1, len(sx))]).astype(np.float32)
    lone = ray_glare([(94.0, 48.0)], x, y, phase, 20.0, 60.0, 90, 4.0, 8.0, 0.9)
    assert lone[:len(lx)].mean() > 0.5  # seen from the second centre alone: a "ray"
    both = ray_glare([(64.0, 48.0), (94.0, 48.0)], x, y, phase, 20.0, 60.0, 90, 4.0, 8.0, 0.9)
    near = np.hypot(x - 64.0, y - 48.0) < 20.0
    assert near.sum() > 700 and not both[near].any()
    np.testing.assert_array_equal(both, ray_glare_reference([(64.0, 48.0), (94.0, 48.0)], list(zip(x.tolist(), y.tolist())),
                                                            phase.tolist(), 20.0, 60.0, 90, 4.0, 8.0, 0.9))
