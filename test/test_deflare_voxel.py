"""Voxel encoding and the two decodes of the deflarer (eventfx_core.deflarer.voxel / decode)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eventfx_core.deflarer.decode import (event_flare_share, flare_share, keep_mask, keep_mask_from_share,
                                         keep_mask_from_share_reference, keep_mask_reference, mask_share,
                                         sample_decode)
from eventfx_core.deflarer.voxel import (VoxelSpec, events_to_count_voxel, events_to_voxel,
                                        events_to_voxel_reference, input_grids, voxel_to_events)
from eventfx_core.events import Events


def random_events(rng, n, w=17, h=11, t0=0, span=20000):
    t = np.sort(rng.integers(t0 - 500, t0 + span + 500, n))
    return Events.from_arrays(t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n), w, h)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 300), bins=st.sampled_from([1, 3, 8]),
       t0=st.sampled_from([0, 40000, -20000, 123457]), cell=st.sampled_from([1, 2, 4, 5]))
def test_fast_voxel_equals_reference_and_preserves_sums(seed, n, bins, t0, cell):
    rng = np.random.default_rng(seed)
    spec = VoxelSpec(20000, bins, cell)
    ev = random_events(rng, n, t0=t0)
    fast = events_to_voxel(ev, t0, spec)
    ref = events_to_voxel_reference(ev, t0, spec)
    rows, cols = -(-11 // cell), -(-17 // cell)  # partial last cells included
    assert fast.dtype == np.float32 and fast.shape == (bins, rows, cols) == spec.grid_shape(17, 11)
    np.testing.assert_array_equal(fast, ref)
    inside = (ev.t >= t0) & (ev.t < t0 + spec.window_us)
    signed = np.where(ev.p[inside] > 0, 1.0, -1.0)
    # the grid sum is the signed count; per cell too (bilinear weights sum to one)
    assert abs(fast.sum() - signed.sum()) < 1e-3
    per_cell = np.zeros((rows, cols))
    np.add.at(per_cell, (ev.y[inside] // cell, ev.x[inside] // cell), signed)
    np.testing.assert_allclose(fast.sum(axis=0), per_cell, atol=1e-4)
    # a cell is the sum of its pixels' per-pixel grid
    if cell > 1 and n:
        px = events_to_voxel(ev, t0, VoxelSpec(20000, bins, 1))
        padded = np.zeros((bins, rows * cell, cols * cell), np.float32)
        padded[:, :11, :17] = px
        np.testing.assert_allclose(fast, padded.reshape(bins, rows, cell, cols, cell).sum(axis=(2, 4)), atol=1e-4)


def test_bilinear_split_between_bin_centres():
    spec = VoxelSpec(8000, 8, 1)  # 1 ms bins, centres at 500, 1500, ...; per-pixel cells
    ev = Events.from_arrays([500, 1000, 7900], [0, 1, 2], [0, 0, 0], [1, 0, 1], 3, 1)
    v = events_to_voxel(ev, 0, spec)
    assert v[0, 0, 0] == 1.0  # exactly on the first centre
    assert v[0, 0, 1] == -0.5 and v[1, 0, 1] == -0.5  # half-way between centres 0 and 1
    assert v[7, 0, 2] == 1.0  # after the last centre: all to the last bin


@pytest.mark.parametrize("cell,sensor", [(1, None), (4, None), (4, (35, 22))])
def test_round_trip_through_sampling_decode_keeps_counts_per_bin(cell, sensor):
    rng = np.random.default_rng(3)
    spec = VoxelSpec(20000, 8, cell)
    # integer voxel -> events -> voxel: whole events per cell, re-binned by their bin only
    vox = rng.integers(-3, 4, (8, 6, 9)).astype(np.float32)
    ev = voxel_to_events(vox, 1000 * spec.window_us, spec, seed=1, sensor=sensor)
    assert (ev.width, ev.height) == (sensor or (9 * cell, 6 * cell))
    assert len(ev) == int(np.abs(vox).sum())
    assert np.all(np.diff(ev.t) >= 0) and ev.x.max() < ev.width and ev.y.max() < ev.height
    b = (ev.t - 1000 * spec.window_us) // 2500
    counts = np.zeros_like(vox)
    np.add.at(counts, (b, ev.y // cell, ev.x // cell), np.where(ev.p > 0, 1, -1))
    np.testing.assert_array_equal(counts, vox)
    # the re-encoded grid has the same total and per-pixel sums
    re = events_to_voxel(ev, 1000 * spec.window_us, spec)
    np.testing.assert_allclose(re.sum(axis=0), vox.sum(axis=0), atol=1e-4)
    assert sample_decode(vox, 0, spec, seed=1, sensor=sensor).equals(
        voxel_to_events(vox, 0, spec, seed=1, sensor=sensor))


def test_flare_share_rules():
    vin = np.array([4.0, 4.0, -2.0, 0.0, 2.0, 1e-5], np.float32)
    pred = np.array([1.0, 5.0, -2.0, 3.0, -1.0, 0.0], np.float32)
    np.testing.assert_allclose(flare_share(vin, pred), [0.75, 0.0, 0.0, 0.0, 1.0, 0.0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 200), thr=st.sampled_from([0.1, 0.37, 0.5, 0.9]),
       cell=st.sampled_from([1, 3, 4]))
def test_keep_mask_is_a_subset_with_exact_events_and_matches_reference(seed, n, thr, cell):
    rng = np.random.default_rng(seed)
    spec = VoxelSpec(20000, 8, cell)
    ev = random_events(rng, n, t0=0, span=19999)
    ev = ev[(ev.t >= 0) & (ev.t < 20000)]
    vin = events_to_voxel(ev, 0, spec)
    vpred = vin * rng.random(vin.shape).astype(np.float32)  # some cells emptied, some kept
    keep = keep_mask(ev, 0, vin, vpred, thr, spec)
    ref = keep_mask_reference(ev, 0, vin, vpred, thr, spec)
    share = event_flare_share(ev, 0, flare_share(vin, vpred), spec)
    close = np.abs(share - thr) < 1e-5  # float32 vs float64 on the boundary: not compared
    np.testing.assert_array_equal(keep[~close], ref[~close])
    kept = ev[keep]
    # a subset of the input with exact t/x/y/p, in input order
    idx = np.flatnonzero(keep)
    assert np.array_equal(kept.t, ev.t[idx]) and np.array_equal(kept.x, ev.x[idx])
    assert np.array_equal(kept.y, ev.y[idx]) and np.array_equal(kept.p, ev.p[idx])
    # identity prediction keeps everything; an all-zero prediction drops every event of a non-cancelled cell
    assert keep_mask(ev, 0, vin, vin, thr, spec).all()


def test_keep_decode_reads_the_events_cell():
    spec = VoxelSpec(20000, 1, 4)
    # two events in cell (0, 0), one in cell (0, 1); the prediction empties cell (0, 1) only
    ev = Events.from_arrays([10, 20, 30], [0, 3, 4], [0, 3, 0], [1, 1, 1], 8, 4)
    vin = events_to_voxel(ev, 0, spec)
    assert vin.shape == (1, 1, 2) and vin[0, 0, 0] == 2 and vin[0, 0, 1] == 1
    vpred = vin * np.array([1.0, 0.0], np.float32)
    np.testing.assert_array_equal(keep_mask(ev, 0, vin, vpred, 0.5, spec), [True, True, False])
    np.testing.assert_array_equal(keep_mask_reference(ev, 0, vin, vpred, 0.5, spec), [True, True, False])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 300), bins=st.sampled_from([1, 8]),
       cell=st.sampled_from([1, 4, 5]))
def test_count_voxel_equals_reference_and_counts_events(seed, n, bins, cell):
    rng = np.random.default_rng(seed)
    spec = VoxelSpec(20000, bins, cell)
    ev = random_events(rng, n)
    count = events_to_count_voxel(ev, 0, spec)
    np.testing.assert_allclose(count, events_to_voxel_reference(ev, 0, spec, signed=False), atol=1e-5)
    inside = int(((ev.t >= 0) & (ev.t < 20000)).sum())
    assert count.sum() == pytest.approx(inside, abs=1e-3) and count.min() >= 0
    signed = events_to_voxel(ev, 0, spec)
    assert (np.abs(signed) <= count + 1e-5).all()  # ON and OFF cancel only in the signed grid
    grids = input_grids(ev, 0, spec, 2, 3.0)
    assert grids.shape == (2, *signed.shape) and grids.max() <= 3.0
    np.testing.assert_array_equal(grids[1], np.clip(count, -3, 3))
    np.testing.assert_array_equal(input_grids(ev, 0, spec, 1, 3.0)[0], np.clip(signed, -3, 3))


def test_flicker_cancels_in_the_signed_grid_not_in_the_count():
    spec = VoxelSpec(20000, 1, 4)
    ev = Events.from_arrays([10, 20, 30, 40], [0, 1, 2, 3], [0, 0, 0, 0], [1, 0, 1, 0], 4, 4)
    assert events_to_voxel(ev, 0, spec)[0, 0, 0] == 0 and events_to_count_voxel(ev, 0, spec)[0, 0, 0] == 4


def test_mask_share_is_the_sigmoid_without_overflow():
    z = np.array([-1e4, -4.0, 0.0, 2.0, 1e4], np.float32)
    with np.errstate(all="raise"):
        s = mask_share(z)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-np.clip(z.astype(np.float64), -60, 60))), atol=1e-6)
    assert s.dtype == np.float32


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 200), thr=st.sampled_from([0.1, 0.5, 0.7, 1.0]),
       cell=st.sampled_from([1, 3, 4]))
def test_keep_mask_from_share_is_a_subset_and_matches_reference(seed, n, thr, cell):
    rng = np.random.default_rng(seed)
    spec = VoxelSpec(20000, 8, cell)
    ev = random_events(rng, n)  # also events outside the window: they read the end bins
    share = mask_share(rng.normal(0, 3, spec.grid_shape(ev.width, ev.height)).astype(np.float32))
    keep = keep_mask_from_share(ev, 0, share, thr, spec)
    ref = keep_mask_from_share_reference(ev, 0, share, thr, spec)
    np.testing.assert_array_equal(keep, ref)
    assert keep.sum() > 0 or n < 20  # a random share map keeps some ...
    assert keep.sum() < len(ev) or n < 20 or thr == 1.0  # ... and drops some
    idx = np.flatnonzero(keep)
    kept = ev[keep]
    assert np.array_equal(kept.t, ev.t[idx]) and np.array_equal(kept.x, ev.x[idx]) and np.array_equal(kept.p, ev.p[idx])
    assert keep_mask_from_share(ev, 0, np.zeros_like(share), thr, spec).all()
    assert not keep_mask_from_share(ev, 0, np.ones_like(share), thr, spec).any()


def test_keep_mask_from_share_reads_bilinear_in_time():
    spec = VoxelSpec(20000, 2, 4)  # bin centres at 5000 and 15000 us
    share = np.zeros((2, 1, 1), np.float32)
    share[1] = 1.0
    ev = Events.from_arrays([1000, 9000, 11000, 19000], [0, 1, 2, 3], [0, 0, 0, 0], [1, 1, 1, 1], 4, 4)
    # event shares 0, 0.4, 0.6, 1
    np.testing.assert_array_equal(keep_mask_from_share(ev, 0, share, 0.5, spec), [True, True, False, False])


def test_voxel_spec_checks():
    from eventfx_core.errors import ConfigError
    with pytest.raises(ConfigError, match="cell_px"):
        VoxelSpec(20000, 8, 0).check()
