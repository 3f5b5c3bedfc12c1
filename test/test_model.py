"""The Mamba2 denoiser: SSD scan vs the paper's recurrence, chunked == step == any split,
the numba fast path == torch, the stage plumbing and its decisions against the plain
reference (the GPU path and the mamba_ssm guard: test_gpu_path.py)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from eventfx_core.events import Events
from eventfx_core.denoiser.cpu_runner import FastDenoiser
from eventfx_core.denoiser.gpu_runner import TorchDenoiser
from eventfx_core.denoiser.model import DenoiserModel, DenoiserState, ModelConfig
from eventfx_core.denoiser.ssd import ssd_chunked, ssd_sequential


def paper_reference(x, dt, A, B, C, D, h0):
    """Dao & Gu 2024 in float64, one token at a time, written from the equations:
    h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,  y_t = C_t h_t + D x_t  (per head, scalar A)."""
    b, length, nh, p = x.shape
    n = B.shape[-1]
    h = h0.clone()
    y = torch.zeros_like(x)
    for bi in range(b):
        for hd in range(nh):
            for t in range(length):
                for pi in range(p):
                    for ni in range(n):
                        h[bi, hd, pi, ni] = (np.exp(float(dt[bi, t, hd] * A[hd])) * h[bi, hd, pi, ni]
                                             + dt[bi, t, hd] * B[bi, t, 0, ni] * x[bi, t, hd, pi])
                    y[bi, t, hd, pi] = (C[bi, t, 0] * h[bi, hd, pi]).sum() + D[hd] * x[bi, t, hd, pi]
    return y, h


def test_ssd_scan_matches_paper_recurrence():
    g = torch.Generator().manual_seed(1)
    b, length, nh, p, n = 1, 13, 2, 3, 4
    x = torch.randn(b, length, nh, p, generator=g, dtype=torch.float64)
    dt = torch.rand(b, length, nh, generator=g, dtype=torch.float64) * 0.5
    A = -torch.rand(nh, generator=g, dtype=torch.float64) * 3
    B = torch.randn(b, length, 1, n, generator=g, dtype=torch.float64)
    C = torch.randn(b, length, 1, n, generator=g, dtype=torch.float64)
    D = torch.randn(nh, generator=g, dtype=torch.float64)
    h0 = torch.randn(b, nh, p, n, generator=g, dtype=torch.float64)
    y_ref, h_ref = paper_reference(x, dt, A, B, C, D, h0)
    for chunk in (1, 4, 5, 16):
        y, h = ssd_chunked(x * dt[..., None], dt * A, B, C, chunk, h0)
        y = y + x * D[:, None]
        assert torch.allclose(y, y_ref, atol=1e-10), chunk
        assert torch.allclose(h, h_ref, atol=1e-10), chunk
    y2, h2 = ssd_sequential(x * dt[..., None], dt * A, B, C, h0)
    assert torch.allclose(y2 + x * D[:, None], y_ref, atol=1e-10)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("n_layers", 2)  # residual stacking and per-layer state covered
    cfg = ModelConfig(n_features=5, chunk_len=8, **kw)
    m = DenoiserModel(cfg).double().eval()
    with torch.no_grad():  # non-trivial standardisation and norms
        m.feature_mean.uniform_(-0.5, 0.5)
        m.feature_std.uniform_(0.5, 2.0)
    return m


def _stream(n, b=1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, n, 5, generator=g, dtype=dtype)
    dt = torch.randint(0, 3000, (b, n), generator=g).to(dtype)  # gaps 0..3 ms, zeros included
    return f, dt


@pytest.mark.parametrize("ngroups,mlp_hidden", [(1, 0), (2, 0), (1, 10)])
def test_chunked_forward_equals_step_by_step(ngroups, mlp_hidden):
    m = _model(ngroups=ngroups, mlp_hidden=mlp_hidden)
    f, dt = _stream(40, b=2)
    with torch.no_grad():
        logits, state = m(f, dt)
        s = m.initial_state(2)
        steps = []
        for t in range(f.size(1)):
            o, s = m.step(f[:, t], dt[:, t], s)
            steps.append(o)
    assert torch.allclose(torch.stack(steps, 1), logits, atol=1e-10)
    assert torch.allclose(s.ssm, state.ssm, atol=1e-10) and torch.allclose(s.conv, state.conv, atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 59), max_size=6))
def test_any_split_into_messages_gives_the_same_logits(cuts):
    m = _model(seed=3)
    f, dt = _stream(60, seed=4)
    bounds = [0, *sorted(set(cuts)), 60]
    with torch.no_grad():
        whole, _ = m(f, dt)
        state, parts = None, []
        for a, b in zip(bounds[:-1], bounds[1:]):
            out, state = m(f[:, a:b], dt[:, a:b], state)
            parts.append(out)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-10)


def test_real_time_step_decays_state_with_wall_clock_gaps():
    """The gap, not the event count, drives decay: after a long pause the SSM memory is
    forgotten (same result as with a zeroed SSM state; the short conv window is per event),
    after a short one it is not; the input weight after a pause stays bounded (zero-order hold)."""
    m = _model(seed=5)
    f, dt = _stream(30, seed=6)
    nxt = f[:, :1]
    gap = lambda us: torch.full((1, 1), float(us), dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        _, s = m(f, dt)
        _, short = m(nxt, gap(1), s)
        _, long = m(nxt, gap(1e6), s)
        wiped = DenoiserState(s.conv, torch.zeros_like(s.ssm))
        _, fresh_long = m(nxt, gap(1e6), wiped)
        _, fresh_short = m(nxt, gap(1), wiped)
    assert torch.allclose(long.ssm, fresh_long.ssm, atol=1e-9)
    assert (short.ssm - fresh_short.ssm).abs().max() > 1e-3
    assert long.ssm.abs().max() < 10 * s.ssm.abs().max() + 10


@pytest.mark.parametrize("ngroups,tile,mlp_hidden", [(1, 4096, 0), (2, 7, 0), (1, 64, 24)])
def test_fast_path_matches_torch_and_float64(ngroups, tile, mlp_hidden):
    m64 = _model(seed=7, ngroups=ngroups, mlp_hidden=mlp_hidden)
    m32 = _model(seed=7, ngroups=ngroups, mlp_hidden=mlp_hidden).float()
    f, dt = _stream(500, seed=8)
    with torch.no_grad():
        ref64, st64 = m64(f, dt)
        ref32, _ = m32(f.float(), dt.float())
    fast = FastDenoiser(m32, tile=tile)
    got = np.concatenate([fast.logits(f[0, a:b].float().numpy(), dt[0, a:b].float().numpy())
                          for a, b in [(0, 1), (1, 200), (200, 213), (213, 500)]])
    assert np.abs(got - ref32[0].numpy()).max() < 1e-4
    assert np.abs(got - ref64[0].numpy()).max() < 1e-4
    st = fast.get_state()
    assert torch.allclose(st.ssm.double(), st64.ssm, atol=1e-5)
    assert torch.allclose(st.conv.double(), st64.conv, atol=1e-5)
    # the state round-trips through the torch layout
    fast2 = FastDenoiser(m32, tile=tile)
    fast2.set_state(st)
    more_f, more_dt = _stream(50, seed=9)
    a = fast.logits(more_f[0].float().numpy(), more_dt[0].float().numpy())
    b = fast2.logits(more_f[0].float().numpy(), more_dt[0].float().numpy())
    assert np.array_equal(a, b)


@pytest.mark.parametrize("mlp_hidden", [0, 12])
def test_torch_runner_matches_fast_runner(mlp_hidden):
    m = _model(seed=11, mlp_hidden=mlp_hidden).float()
    f, dt = _stream(300, seed=12, dtype=torch.float32)
    fast, slow = FastDenoiser(m), TorchDenoiser(m, "cpu")
    pa = np.concatenate([fast.probabilities(f[0, :100].numpy(), dt[0, :100].numpy()),
                         fast.probabilities(f[0, 100:].numpy(), dt[0, 100:].numpy())])
    pb = np.concatenate([slow.probabilities(f[0, :150].numpy(), dt[0, :150].numpy()),
                         slow.probabilities(f[0, 150:].numpy(), dt[0, 150:].numpy())])
    assert np.abs(pa - pb).max() < 1e-5


def _events(n, seed=0, w=64, h=48):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 200, n))
    return Events.from_arrays(t, rng.integers(0, w, n), rng.integers(0, h, n),
                              rng.integers(0, 2, n), w, h)


def test_stage_is_split_invariant_and_resets_on_backwards_time(tmp_path):
    from eventfx_core.denoiser.checkpoint import write_initial_checkpoint
    from eventfx_core.denoiser.stage import MambaDenoiserStage
    from eventfx_core.stages import stage_class

    assert stage_class("mamba") is MambaDenoiserStage
    write_initial_checkpoint(tmp_path / "w.pt", seed=2)
    cfg = MambaDenoiserStage.Config(checkpoint="w.pt", threshold=0.4)
    ev = _events(3000)
    whole = MambaDenoiserStage(cfg, sensor=(64, 48), base_dir=tmp_path).process(ev)
    stage = MambaDenoiserStage(cfg, sensor=(64, 48), base_dir=tmp_path)
    parts = [stage.process(ev[a:b]) for a, b in [(0, 1), (1, 1), (1, 1000), (1000, 3000)]]
    assert np.array_equal(np.concatenate([p.keep for p in parts]), whole.keep)
    assert np.allclose(np.concatenate([p.score for p in parts]), whole.score, atol=1e-6)
    assert whole.keep.dtype == bool and whole.score.dtype == np.float32
    # score = 1 - P(noise), flare = P(flare | not noise); the keep rule of a 3-class model
    # (signal, noise, flare; removing noise and flare) is P(signal) = score * (1 - flare) >= 0.4
    p_signal = whole.score.astype(np.float64) * (1 - whole.flare)
    clear = np.abs(p_signal - 0.4) > 1e-5
    assert clear.mean() > 0.99 and np.array_equal(whole.keep[clear], (p_signal >= 0.4)[clear])
    assert np.allclose(np.concatenate([p.flare for p in parts]), whole.flare, atol=1e-5)
    # replaying the stream from the start: a warning, and the same decisions as a fresh stage
    with pytest.warns(RuntimeWarning, match="backwards"):
        again = stage.process(ev[:500])
    assert np.array_equal(again.keep, whole.keep[:500])


def test_stage_remove_classes(tmp_path):
    """keep = 1 - P(removed classes) >= threshold: removing fewer classes keeps a superset;
    classes the checkpoint does not have are a config error."""
    from eventfx_core.errors import ConfigError
    from eventfx_core.denoiser.features import FeatureConfig, FeatureExtractor, feature_names
    from eventfx_core.denoiser.checkpoint import write_initial_checkpoint
    from eventfx_core.denoiser.stage import MambaDenoiserStage

    fcfg = FeatureConfig(cell_px=(8,))
    mcfg = ModelConfig(n_features=len(feature_names(fcfg)),
                       class_names=["signal", "noise", "flare", "light_source"])
    write_initial_checkpoint(tmp_path / "w.pt", seed=3, model_config=mcfg, feature_config=fcfg)
    ev = _events(2000)
    run = lambda remove: MambaDenoiserStage(MambaDenoiserStage.Config(  # noqa: E731
        checkpoint="w.pt", threshold=0.6, remove=remove), sensor=(64, 48), base_dir=tmp_path).process(ev).keep
    both, noise_only = run(["noise", "flare"]), run(["noise"])
    assert (noise_only >= both).all() and noise_only.sum() > both.sum()
    # against the model's own class probabilities (torch forward over the whole stream)
    import torch
    stage = MambaDenoiserStage(MambaDenoiserStage.Config(checkpoint="w.pt", threshold=0.6, remove=["noise"]),
                               sensor=(64, 48), base_dir=tmp_path)
    res = stage.process(ev)
    feats = FeatureExtractor(fcfg, 64, 48).extract(ev)
    dt = np.diff(ev.t, prepend=ev.t[0]).astype(np.float32)
    with torch.no_grad():
        logits, _ = stage.checkpoint.model(torch.from_numpy(feats)[None], torch.from_numpy(dt)[None])
    probs = torch.softmax(logits[0], -1).double().numpy()
    assert np.allclose(res.score, 1 - probs[:, 1], atol=1e-4)
    assert np.allclose(res.flare, probs[:, 2] / (1 - probs[:, 1]), atol=1e-4)
    assert np.array_equal(res.keep, res.score >= 0.6)
    with pytest.raises(ConfigError, match="not among"):
        run(["glare"])
    with pytest.raises(ConfigError, match="remove"):
        run(["signal"])


def test_stage_default_checkpoint_loads(tmp_path):
    from eventfx_core.denoiser.stage import MambaDenoiserStage

    stage = MambaDenoiserStage(MambaDenoiserStage.Config(), sensor=(64, 48))
    res = stage.process(_events(100))
    assert res.keep.shape == (100,)


def _reference_decisions(stage, events):
    """The plain path: features of the whole stream in one call, ``DenoiserModel.forward`` in
    float64, the keep rule in numpy."""
    from eventfx_core.denoiser.features import FeatureExtractor

    feats = FeatureExtractor(stage.checkpoint.feature_config, events.width, events.height).extract(events)
    dt = np.diff(events.t, prepend=events.t[0]).astype(np.float64)
    model = stage.checkpoint.model.double()
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(feats).double()[None], torch.from_numpy(dt)[None])
    stage.checkpoint.model.float()
    probs = torch.softmax(logits[0], -1).numpy()
    return probs[:, stage.keep_classes].sum(1), 1 - probs[:, stage.noise_class]


@pytest.mark.parametrize("threads,chunk,tile", [(1, 1024, 4096), (2, 64, 4096), (2, 300, 7)])
def test_fast_stage_decides_as_the_plain_reference(threads, chunk, tile):
    """The shipped checkpoint on a busy stream (bars and noise, 640x480), cut into 1 ms messages:
    the fast stage (one numba call per message, the two-thread overlap, any tile) keeps exactly
    the events the float64 torch reference keeps, except events within 1e-3 of the threshold
    (float32 against float64 over 120k events of carried state: probabilities differ by < 3e-4)."""
    from eventfx_core.bench.stages import cut_messages, synthetic_stream
    from eventfx_core.events import concat
    from eventfx_core.denoiser.stage import MambaDenoiserStage

    msgs = cut_messages(synthetic_stream(seed=5, duration_us=20_000), 1000)
    cfg = MambaDenoiserStage.Config(threads=threads, chunk=chunk, tile=tile)
    stage = MambaDenoiserStage(cfg, sensor=msgs[0].sensor_size)
    res = [stage.process(m) for m in msgs]
    keep = np.concatenate([r.keep for r in res])
    score = np.concatenate([r.score for r in res])
    p_keep, p_score = _reference_decisions(stage, concat(msgs))
    assert len(keep) > 50_000 and 0.05 < keep.mean() < 0.95
    clear = np.abs(p_keep - cfg.threshold) > 1e-3
    assert clear.mean() > 0.995
    assert np.array_equal(keep[clear], p_keep[clear] >= cfg.threshold)
    assert np.abs(score - p_score).max() < 3e-4


def test_threads_2_feature_thread_ends_when_the_pipeline_closes(tmp_path):
    """``mamba.threads: 2`` starts a feature thread on the first long message; closing the
    pipeline (as ``eventfx denoise`` and the node do at the end) ends it."""
    from eventfx_core.denoiser.checkpoint import write_initial_checkpoint
    from eventfx_core.denoiser.stage import MambaDenoiserStage
    from eventfx_core.pipeline import Pipeline
    from eventfx_core.pipeline_config import PipelineConfig

    write_initial_checkpoint(tmp_path / "w.pt", seed=2)
    cfg = MambaDenoiserStage.Config(checkpoint=str(tmp_path / "w.pt"), threads=2, chunk=64)
    pipe = Pipeline(PipelineConfig(stages=["mamba"], stage_configs={"mamba": cfg}), (64, 48))
    pipe.push(_events(1000))
    pipe.flush()
    workers = list(pipe.stages[0]._pool._threads)  # the executor's own threads
    assert workers and all(t.is_alive() and t.name.startswith("eventfx-features") for t in workers)
    pipe.close()
    assert pipe.stages[0]._pool is None and not any(t.is_alive() for t in workers)
