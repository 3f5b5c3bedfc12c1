"""The default pipeline (hot pixels -> STCF -> Mamba denoiser -> voxel deflarer, shipped weights) on a
real recording: cutting the stream into messages differently does not change which events
survive (the model's float scores agree within tolerance)."""
from pathlib import Path

import numpy as np

from eventfx_core.events import concat
from eventfx_core.io import Packet, open_source
from eventfx_core.pipeline import Pipeline
from eventfx_core.pipeline_config import load_denoise_config

REPO = Path(__file__).resolve().parents[1]
DEMO_BAG = REPO / "data" / "demo" / "emlb_demo_evt3"


def run(pipe, parts):
    out = []
    for p in parts:
        out += pipe.push(p)
    out += pipe.flush()
    return np.concatenate([d.keep for d in out]), np.concatenate([d.score for d in out])


def test_default_pipeline_is_split_invariant_on_a_real_recording():
    cfg = load_denoise_config(REPO / "config" / "denoise.yaml")
    assert cfg.pipeline.stages == ["hot_pixel", "stcf", "mamba", "deflare"]
    packets = [p.events for p in open_source(DEMO_BAG) if isinstance(p, Packet)][:120]  # 120 ms
    stream = concat(packets)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, len(stream)), 40, replace=False))
    bounds = [0, *cuts.tolist(), len(stream)]
    recut = [stream[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    keep_a, score_a = run(Pipeline(cfg.pipeline, stream.sensor_size, cfg.base_dir), packets)
    keep_b, score_b = run(Pipeline(cfg.pipeline, stream.sensor_size, cfg.base_dir), recut)
    keep_c, score_c = run(Pipeline(cfg.pipeline, stream.sensor_size, cfg.base_dir), [stream])

    assert len(keep_a) == len(stream)
    assert 0.05 < keep_a.mean() < 0.999  # the pipeline does remove something, not everything
    for keep, score in ((keep_b, score_b), (keep_c, score_c)):
        np.testing.assert_allclose(score, score_a, atol=1e-4)
        assert np.array_equal(keep, keep_a)
