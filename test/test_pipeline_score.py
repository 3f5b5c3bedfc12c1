"""The pipeline score (eventfx_core.pipeline_score): the lexicographic (depth, graded) order, on
a hand-built stream whose order is known, against the plain definition, and on real recordings:
its threshold n/(n+1) is the pipeline's keep decision, and thresholds inside the STCF level
are STCF with a lower k."""
from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st

from eventfx_core.events import Events, concat
from eventfx_core.io import Packet, open_source
from eventfx_core.pipeline import REMOVED_RANGE, Pipeline
from eventfx_core.pipeline_config import load_denoise_config, parse_params
from eventfx_core.pipeline_score import SQUASH, compose, reference_order

REPO = Path(__file__).resolve().parents[1]
DEMO_BAG = REPO / "data" / "demo" / "emlb_demo_evt3"


def classic_pipeline(sensor, k=2, window=1000):
    _, cfg = parse_params({"stages": ["hot_pixel", "stcf"],
                           "hot_pixel": {"window_us": 1000, "max_rate_hz": 3000.0, "busy_share": 0.0},
                           "stcf": {"time_window_us": window, "k": k}})
    return Pipeline(cfg, sensor=sensor)


def decide(pipe, parts):
    out = []
    for p in parts:
        out += pipe.push(p)
    out += pipe.flush()
    return (np.concatenate([d.keep for d in out]), np.concatenate([d.score for d in out]),
            np.concatenate([d.removed_by for d in out]))


def test_hand_built_stream_ranks_by_stage_reached_then_by_support():
    #            cluster (STCF support 0, 1, 2, 3)   hot pixel (12, 2): 5 events, limit 3
    t = np.array([10, 20, 30, 40, 50, 51, 52, 53, 54])
    x = np.array([5, 6, 5, 6, 12, 12, 12, 12, 12])
    y = np.array([5, 5, 6, 6, 2, 2, 2, 2, 2])
    ev = Events.from_arrays(t, x, y, np.ones(9), 16, 8)
    keep, score, removed_by = decide(classic_pipeline((16, 8)), [ev])
    assert keep.tolist() == [False, False, True, True, False, False, False, False, False]
    assert removed_by.tolist() == [1, 1, -1, -1, 1, 1, 1, 0, 0]
    level = lambda depth, support: np.float32((depth + SQUASH * support / 8) / 3)  # noqa: E731
    expected = [level(1, 0), level(1, 1), level(2, 2), level(2, 3), level(1, 0), level(1, 0),
                level(1, 0), 0.0, 0.0]
    np.testing.assert_allclose(score, np.array(expected, np.float32), rtol=0, atol=1e-7)
    # hot-pixel removals < STCF removals by support < kept by support
    assert score[7] < score[0] < score[1] < score[2] < score[3]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(-0.5, 1.5), st.just(float("nan"))), st.integers(-1, 4)),
                min_size=1, max_size=40), st.booleans())
def test_compose_follows_the_lexicographic_definition(rows, with_outside):
    graded = np.array([g for g, _ in rows], np.float32)
    removed_by = np.array([r for _, r in rows], np.int64)
    if with_outside:
        removed_by[0] = REMOVED_RANGE
    n = 5
    score = compose(graded, removed_by, n, REMOVED_RANGE)
    order = reference_order(graded, removed_by, n, REMOVED_RANGE)
    s = score[order]
    assert np.all(np.diff(s) >= 0)  # the reference's order, never reversed
    keep = removed_by == -1
    assert np.array_equal(score >= compose(np.zeros(1), np.array([-1]), n, REMOVED_RANGE)[0], keep)
    assert np.all((score >= 0) & (score <= 1))


def test_stcf_level_thresholds_are_stcf_with_lower_k_on_a_real_recording():
    packets = [p.events for p in open_source(DEMO_BAG) if isinstance(p, Packet)][:60]
    stream = concat(packets)
    keep, score, _ = decide(classic_pipeline(stream.sensor_size, k=4, window=20_000), packets)
    assert 0.2 < keep.mean() < 0.95
    assert np.array_equal(score >= compose(np.zeros(1), np.array([-1]), 2, REMOVED_RANGE)[0], keep)
    for k in (1, 2, 3):
        keep_k, _, _ = decide(classic_pipeline(stream.sensor_size, k=k, window=20_000), packets)
        at = compose(np.array([k / 8]), np.array([1]), 2, REMOVED_RANGE)[0]
        assert np.array_equal(score >= at, keep_k), k


def test_default_operating_point_lies_on_the_curve_of_the_default_pipeline():
    cfg = load_denoise_config(REPO / "config" / "denoise.yaml")
    packets = [p.events for p in open_source(DEMO_BAG) if isinstance(p, Packet)][:40]  # 40 ms
    stream = concat(packets)
    keep, score, removed_by = decide(Pipeline(cfg.pipeline, stream.sensor_size, cfg.base_dir), packets)
    n = len(cfg.pipeline.stages)
    assert 0.05 < keep.mean() < 0.999
    assert {1, 2} <= set(removed_by.tolist())  # STCF and the model both removed some
    assert np.array_equal(score >= np.float32(n / (n + 1)), keep)
    # every STCF removal ranks below every event the model saw, which rank by the model's score
    assert score[removed_by == 1].max() < score[removed_by == 2].min()
    assert score[removed_by == 2].max() < score[keep].min()


def test_reordering_interleaves_removals_by_cell_share_and_keeps_the_keep_decision():
    from eventfx_core.evaluate.metrics import roc_auc
    from eventfx_core.evaluate.score_order import BINS, cells, reordered, signal_share
    # 2 stages: stage 0 removes mostly signal (graded 0.9), stage 1 mostly noise (graded 0.1);
    # the lexicographic order puts stage 0's removals lowest, a fitted order lifts them.
    depth = np.array([0] * 10 + [1] * 10 + [2] * 10)
    graded = np.array([0.9] * 10 + [0.1] * 10 + [0.6] * 10)
    positive = np.array([1] * 8 + [0] * 2 + [1] * 2 + [0] * 8 + [1] * 9 + [0] * 1, bool)
    share = signal_share(cells(depth, graded), positive, 3 * BINS)
    assert share[cells([0], [0.9])[0]] == (8 + 0.5) / 11 and share[0] == 0.5  # empty cell: 1/2
    s = reordered(depth, graded, share, 2)
    assert s[depth == 2].min() > s[depth < 2].max()  # kept on top: the operating point stays
    assert s[depth == 0].min() > s[depth == 1].max()  # stage 0's removals now above stage 1's
    lexi = compose(graded, np.where(depth == 2, -1, depth), 2, REMOVED_RANGE)
    assert roc_auc(s, positive) > roc_auc(lexi, positive) + 0.1
    # within a cell the graded order stays (a threshold there is the stage's own threshold)
    g2 = np.array([0.30, 0.31, 0.32])
    s2 = reordered(np.ones(3, int), g2, np.full(3 * BINS, 0.5), 2)
    assert np.all(np.diff(s2) > 0)
