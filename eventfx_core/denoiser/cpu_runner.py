"""Fast CPU inference of ``DenoiserModel`` for one stream, state carried across calls.

Same maths as ``model.py`` (Dao & Gu 2024 Mamba2/SSD with the real-time step and the
zero-order-hold input), arranged for a CPU, all in numba over tiles of ``tile`` events, float32:
dense layers (embedding, in_proj, out_proj, head) four events at a time (register blocking),
the discretisation, the causal conv, the sequential SSM scan with the state stored as
(d_state, channels) so the innermost loop runs over contiguous channels, gating and the grouped
RMSNorm. What made it fast here (measured): no torch ops in the loop (two torch threads on
tiny tensors were 10x slower), unsigned index offsets (numba's negative-index wraparound check
blocks vectorisation), polynomial exp/log1p (PyPI's llvmlite has no vector exp), local
accumulators (no aliasing checks), one numba call per message for the whole model (``forward``:
no Python between layers and tiles) and ``nogil`` everywhere, so the feature extractor of the
next chunk runs beside it on the other core (``stage.py``). ``DenoiserModel.forward`` is the
oracle (tests: 1e-4 on the logits, and the stage's keep decisions).
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from .model import DenoiserModel, DenoiserState

_LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(0.6931471805599453)


@numba.njit(cache=True, error_model="numpy", inline="always", fastmath=True)
def _exp_neg(a):
    """exp(-a) for a >= 0 (float32, about 1e-7 relative; exp(-20) for any a > 20)."""
    a = min(a, np.float32(20.0))
    k = np.int32(a * _LOG2E + np.float32(0.5))
    r = a - np.float32(k) * _LN2  # in [-ln2/2, ln2/2]
    # Taylor series of exp(-r) to degree 6 (|error| < 2e-7 on that interval)
    p = np.float32(1.0) - r * (np.float32(1.0) - r * (np.float32(0.5) - r * (
        np.float32(1.0 / 6.0) - r * (np.float32(1.0 / 24.0) - r * (
            np.float32(1.0 / 120.0) - r * np.float32(1.0 / 720.0))))))
    return p / np.float32(np.int32(1) << k)


@numba.njit(cache=True, error_model="numpy", inline="always", fastmath=True)
def _log1p_unit(x):
    """log(1 + x) for x in [0, 1]: 2 atanh(s), s = x / (2 + x) <= 1/3, odd series to s^15
    (error < 1e-9; inline, unlike the libm call)."""
    s = x / (np.float32(2.0) + x)
    s2 = s * s
    p = np.float32(1.0 / 15.0)
    p = p * s2 + np.float32(1.0 / 13.0)
    p = p * s2 + np.float32(1.0 / 11.0)
    p = p * s2 + np.float32(1.0 / 9.0)
    p = p * s2 + np.float32(1.0 / 7.0)
    p = p * s2 + np.float32(1.0 / 5.0)
    p = p * s2 + np.float32(1.0 / 3.0)
    p = p * s2 + np.float32(1.0)
    return np.float32(2.0) * s * p


@numba.njit(cache=True, error_model="numpy", inline="always", fastmath=True)
def _silu(v):
    e = _exp_neg(abs(v))
    sig = np.float32(1.0) / (np.float32(1.0) + e) if v >= 0 else e / (np.float32(1.0) + e)
    return v * sig


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def silu_rows(v):
    """v = silu(v) in place, (L, n)."""
    for t in range(v.shape[0]):
        for j in range(v.shape[1]):
            v[t, j] = _silu(v[t, j])


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def _conv_silu(zxbcdt, d_inner, conv_wt, conv_b, conv_state, xbc):
    """Causal depthwise conv + silu over the tile, continuing from the last K inputs.
    conv_state (K, conv_dim): row K-1 is the latest input; updated in place."""
    L = zxbcdt.shape[0]
    conv_dim = conv_b.shape[0]
    K = conv_wt.shape[0]
    acc = np.empty(conv_dim, np.float32)  # a local row: no aliasing checks in the inner loops
    off = np.uint64(d_inner)
    for t in range(L):
        for c in range(conv_dim):
            acc[c] = conv_b[c]
        for k in range(K):
            src = t + k - (K - 1)  # input index in this tile; < 0: from the state
            if src >= 0:
                s = np.uint64(src)  # unsigned indices: no negative-index wraparound, so it vectorises
                for c in range(conv_dim):
                    acc[c] += conv_wt[k, c] * zxbcdt[s, off + np.uint64(c)]
            else:
                for c in range(conv_dim):
                    acc[c] += conv_wt[k, c] * conv_state[K + src, c]
        for c in range(conv_dim):
            xbc[t, c] = _silu(acc[c])
    last = np.empty((K, conv_dim), np.float32)
    for k in range(K):
        src = L - K + k
        for c in range(conv_dim):
            last[k, c] = zxbcdt[src, d_inner + c] if src >= 0 else conv_state[K + src, c]
    conv_state[:, :] = last


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def _scan(xbc, dt_in, decay, D, headdim, ngroups, ssm_state, y):
    """Sequential scan: s[n, i] = s[n, i] * decay + B[n] * dt_in * x[i];  y[i] = C . s[:, i] + D x[i]
    with B and C of the channel's group. Channels are cut into blocks (a multiple of the
    groups; independent in the scan): ssm_state (blocks, d_state, block); y (L, blocks, block).
    Inputs are first spread to channels so the inner loop runs over contiguous channels."""
    L, nblk, blk = y.shape
    d_state = ssm_state.shape[1]
    d_inner = nblk * blk
    per_group = nblk // ngroups
    xdt = np.empty((L, nblk, blk), np.float32)
    da = np.empty((L, nblk, blk), np.float32)
    for b in range(nblk):  # numba.prange here measured slower on 2 shared cores
        g = b // per_group
        b0 = d_inner + g * d_state
        c0 = d_inner + (ngroups + g) * d_state
        for t in range(L):
            for j in range(blk):
                i = np.uint64(b * blk + j)  # unsigned: no wraparound check
                h = i // np.uint64(headdim)
                x = xbc[t, i]
                xdt[t, b, j] = x * dt_in[t, h]
                da[t, b, j] = decay[t, h]
                y[t, b, j] = D[h] * x
        t = 0
        while t + 2 <= L:  # two events per pass: the state is loaded and stored once for both
            for n in range(d_state):
                b1 = xbc[t, b0 + n]
                c1 = xbc[t, c0 + n]
                b2 = xbc[t + 1, b0 + n]
                c2 = xbc[t + 1, c0 + n]
                for j in range(blk):
                    v = ssm_state[b, n, j] * da[t, b, j] + b1 * xdt[t, b, j]
                    y[t, b, j] += c1 * v
                    v = v * da[t + 1, b, j] + b2 * xdt[t + 1, b, j]
                    y[t + 1, b, j] += c2 * v
                    ssm_state[b, n, j] = v
            t += 2
        if t < L:  # an odd last event
            for n in range(d_state):
                bn = xbc[t, b0 + n]
                cn = xbc[t, c0 + n]
                for j in range(blk):
                    v = ssm_state[b, n, j] * da[t, b, j] + bn * xdt[t, b, j]
                    ssm_state[b, n, j] = v
                    y[t, b, j] += cn * v


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def _gate_norm(zxbcdt, norm_w, eps, y):
    """Gated grouped RMSNorm in place: rmsnorm(y * silu(z)) * w, y (L, ngroups, group)."""
    L, ngroups, group = y.shape
    for t in range(L):
        for g in range(ngroups):
            base = np.uint64(g * group)  # unsigned offsets: no wraparound check, so it vectorises
            for j in range(group):  # vectorises (no reduction in this loop)
                y[t, g, j] *= _silu(zxbcdt[t, base + np.uint64(j)])
            ms = np.float32(0.0)
            for j in range(group):
                ms += y[t, g, j] * y[t, g, j]
            r = np.float32(1.0) / np.sqrt(ms / np.float32(group) + eps)
            for j in range(group):
                y[t, g, j] *= r * norm_w[base + np.uint64(j)]


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def rmsnorm_rows(h, w, eps, out):
    """out[t] = h[t] / sqrt(mean(h[t]^2) + eps) * w."""
    d = h.shape[1]
    for t in range(h.shape[0]):
        ms = np.float32(0.0)
        for j in range(d):
            ms += h[t, j] * h[t, j]
        r = np.float32(1.0) / np.sqrt(ms / np.float32(d) + eps)
        for j in range(d):
            out[t, j] = h[t, j] * r * w[j]


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def mixer_tile(zxbcdt, dt_in, decay, conv_wt, conv_b, D, norm_w, headdim, ngroups, eps,
               conv_state, ssm_state, y):
    """One Mamba2 mixer over L events, after in_proj and before out_proj.

    zxbcdt (L, 2*d_inner + 2*ngroups*d_state + nheads) float32; dt_in, decay (L, nheads): the
    input weight and the decay of each event (from ``discretise``); conv_wt (d_conv, conv_dim);
    conv_state (d_conv, conv_dim) and ssm_state (blocks, d_state, d_inner / blocks; blocks a
    multiple of ngroups) are updated in place; y (L, d_inner) receives rmsnorm(y * silu(z)) * w.
    """
    L = zxbcdt.shape[0]
    d_inner = norm_w.shape[0]
    xbc = np.empty((L, conv_b.shape[0]), np.float32)
    _conv_silu(zxbcdt, d_inner, conv_wt, conv_b, conv_state, xbc)
    nblk = ssm_state.shape[0]
    _scan(xbc, dt_in, decay, D, headdim, ngroups, ssm_state, y.reshape(L, nblk, d_inner // nblk))
    _gate_norm(zxbcdt, norm_w, eps, y.reshape(L, ngroups, d_inner // ngroups))


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def discretise(zxbcdt, col, scale, dt_bias, A, dt_in, decay):
    """dt_eff = softplus(dt_raw + dt_bias) * scale -> the decay exp(dt A) and the input weight
    (1 - exp(dt A)) / -A (zero-order hold), both (L, nheads)."""
    for t in range(zxbcdt.shape[0]):
        for h in range(A.shape[0]):
            v = zxbcdt[t, np.uint64(col + h)] + dt_bias[h]
            sp = max(v, np.float32(0.0)) + _log1p_unit(_exp_neg(abs(v)))  # softplus
            u = sp * scale[t] * -A[h]  # >= 0
            decay[t, h] = _exp_neg(u)
            if u < np.float32(0.1):  # 1 - exp(-u) by its series: no cancellation for small u
                one_minus = u * (np.float32(1.0) - u * np.float32(0.5) * (np.float32(1.0) - u / np.float32(3.0) * (
                    np.float32(1.0) - u * np.float32(0.25) * (np.float32(1.0) - u * np.float32(0.2)))))
            else:
                one_minus = np.float32(1.0) - decay[t, h]
            dt_in[t, h] = one_minus / -A[h]


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def dense(x, wt, b, out, accumulate):
    """out = x @ wt + b (or out += ...) for a small dense layer, wt (n_in, n_out) = W.T.
    Four events at a time: each weight row is loaded once per four events and the four output
    rows are written once (BLAS's register blocking, small enough for numba to vectorise over
    the outputs); the summation order over inputs is the plain one, k = 0 .. n_in - 1."""
    L, n_in = x.shape
    n_out = wt.shape[1]
    a0 = np.empty(n_out, np.float32)  # local rows: no aliasing checks in the inner loop
    a1 = np.empty(n_out, np.float32)
    a2 = np.empty(n_out, np.float32)
    a3 = np.empty(n_out, np.float32)
    t = 0
    while t + 4 <= L:
        for j in range(n_out):
            a0[j] = b[j]
            a1[j] = b[j]
            a2[j] = b[j]
            a3[j] = b[j]
        for k in range(n_in):
            x0 = x[t, k]
            x1 = x[t + 1, k]
            x2 = x[t + 2, k]
            x3 = x[t + 3, k]
            for j in range(n_out):
                w = wt[k, j]
                a0[j] += x0 * w
                a1[j] += x1 * w
                a2[j] += x2 * w
                a3[j] += x3 * w
        if accumulate:
            for j in range(n_out):
                out[t, j] += a0[j]
                out[t + 1, j] += a1[j]
                out[t + 2, j] += a2[j]
                out[t + 3, j] += a3[j]
        else:
            for j in range(n_out):
                out[t, j] = a0[j]
                out[t + 1, j] = a1[j]
                out[t + 2, j] = a2[j]
                out[t + 3, j] = a3[j]
        t += 4
    while t < L:  # the last 0-3 events
        for j in range(n_out):
            a0[j] = b[j]
        for k in range(n_in):
            x0 = x[t, k]
            for j in range(n_out):
                a0[j] += x0 * wt[k, j]
        for j in range(n_out):
            out[t, j] = out[t, j] + a0[j] if accumulate else a0[j]
        t += 1


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def softmax_rows(z):
    """z = softmax(z) per row, in place."""
    for t in range(z.shape[0]):
        m = z[t, 0]
        for j in range(1, z.shape[1]):
            m = max(m, z[t, j])
        s = np.float32(0.0)
        for j in range(z.shape[1]):
            e = np.float32(np.exp(z[t, j] - m))
            z[t, j] = e
            s += e
        r = np.float32(1.0) / s
        for j in range(z.shape[1]):
            z[t, j] *= r


@numba.njit(cache=True, error_model="numpy", fastmath=True, nogil=True)
def forward(features, dt_us, tile, dt_unit, dt_min, dt_max, embed_wt, embed_b,
            norm_w, norm_eps, in_wt, conv_wt, conv_b, dt_bias, A, D, mix_norm_w, mix_eps, out_wt,
            has_mlp, mlp_norm_w, mlp_eps, mlp_in_wt, mlp_in_b, mlp_out_wt, mlp_out_b,
            norm_f_w, norm_f_eps, head_wt, head_b, headdim, ngroups, conv_state, ssm_state,
            probabilities, out):
    """The whole model over a message, tile by tile, without the GIL: per-layer weights are
    stacked on a leading layer axis (``FastDenoiser`` builds them), states updated in place;
    out (n, classes) receives logits, or class probabilities when ``probabilities``."""
    n = features.shape[0]
    n_layers = in_wt.shape[0]
    d_model = embed_wt.shape[1]
    d_inner = mix_norm_w.shape[1]
    nheads = A.shape[1]
    conv_dim = conv_b.shape[1]
    col_dt = d_inner + conv_dim
    zero_b = np.zeros(max(in_wt.shape[2], d_model), np.float32)
    m = min(n, tile)
    scale = np.empty(m, np.float32)
    h = np.empty((m, d_model), np.float32)
    normed = np.empty((m, d_model), np.float32)
    zxbcdt = np.empty((m, in_wt.shape[2]), np.float32)
    y = np.empty((m, d_inner), np.float32)
    dt_in = np.empty((m, nheads), np.float32)
    decay = np.empty((m, nheads), np.float32)
    hidden = np.empty((m, mlp_in_wt.shape[1]), np.float32)
    for a in range(0, n, tile):
        b = min(n, a + tile)
        L = b - a
        for t in range(L):
            scale[t] = min(max(np.float32(dt_us[a + t]) / np.float32(dt_unit), dt_min), dt_max)
        hs, ns = h[:L], normed[:L]
        dense(features[a:b], embed_wt, embed_b, hs, False)
        for i in range(n_layers):
            rmsnorm_rows(hs, norm_w[i], norm_eps[i], ns)
            dense(ns, in_wt[i], zero_b[:in_wt.shape[2]], zxbcdt[:L], False)
            discretise(zxbcdt[:L], col_dt, scale, dt_bias[i], A[i], dt_in[:L], decay[:L])
            mixer_tile(zxbcdt[:L], dt_in[:L], decay[:L], conv_wt[i], conv_b[i], D[i], mix_norm_w[i],
                       headdim, ngroups, mix_eps[i], conv_state[i], ssm_state[i], y[:L])
            dense(y[:L], out_wt[i], zero_b[:d_model], hs, True)  # residual: h += out_proj(y)
        if has_mlp:  # h += out_proj(silu(in_proj(rmsnorm(h))))
            rmsnorm_rows(hs, mlp_norm_w, mlp_eps, ns)
            dense(ns, mlp_in_wt, mlp_in_b, hidden[:L], False)
            silu_rows(hidden[:L])
            dense(hidden[:L], mlp_out_wt, mlp_out_b, hs, True)
        rmsnorm_rows(hs, norm_f_w, norm_f_eps, ns)
        dense(ns, head_wt, head_b, out[a:b], False)
        if probabilities:
            softmax_rows(out[a:b])


@numba.njit(cache=True, error_model="numpy", nogil=True)  # no fastmath: numpy's float32 operations
def decide(probs, keep_classes, noise_class, flare_class, threshold, keep, score, flare):
    """The Mamba stage's rule on class probabilities (n, classes), in one pass:
    keep = sum of probs[keep_classes] (left to right) >= threshold (float32), score = 1 - P(noise)
    (1 without a noise class), flare = P(flare) / max(score, 1e-6) (flare_class >= 0 only)."""
    one = np.float32(1.0)
    for t in range(probs.shape[0]):
        s = np.float32(0.0)
        for c in keep_classes:
            s += probs[t, c]
        keep[t] = s >= threshold
        nn = one - probs[t, noise_class] if noise_class >= 0 else one
        score[t] = nn
        if flare_class >= 0:
            flare[t] = probs[t, flare_class] / max(nn, np.float32(1e-6))


class FastDenoiser:
    """Class logits for one event stream, message by message, on the CPU (numba only: no torch
    threads in the loop, so it runs the same whatever ``torch.set_num_threads`` says). One call
    of ``forward`` per message, without the GIL, so another thread (the feature extractor of the
    next tile) runs beside it."""

    def __init__(self, model: DenoiserModel, tile: int = 512):
        cfg = model.cfg
        self.cfg, self.tile = cfg, int(tile)
        with torch.no_grad():
            f32 = lambda t: t.detach().float().cpu().contiguous()  # noqa: E731
            np32 = lambda t: f32(t).numpy().copy()  # noqa: E731
            stack = lambda get: np.ascontiguousarray(np.stack([np32(get(b)) for b in model.layers]))  # noqa: E731
            # fold the feature standardisation into the embedding: W (f - m)/s + b
            w = f32(model.embed.weight) / f32(model.feature_std)
            self.embed_wt = w.t().contiguous().numpy().copy()
            self.embed_b = (f32(model.embed.bias) - w @ f32(model.feature_mean)).numpy().copy()
            layers = dict(  # per-layer weights on a leading layer axis; dense layers as W.T
                norm_w=stack(lambda b: b.norm.weight),
                norm_eps=np.array([b.norm.eps for b in model.layers], np.float32),
                in_wt=stack(lambda b: b.mixer.in_proj.weight.t()),
                conv_wt=stack(lambda b: b.mixer.conv1d.weight[:, 0, :].t()),
                conv_b=stack(lambda b: b.mixer.conv1d.bias),
                dt_bias=stack(lambda b: b.mixer.dt_bias),
                A=stack(lambda b: -torch.exp(b.mixer.A_log.float())),
                D=stack(lambda b: b.mixer.D),
                mix_norm_w=stack(lambda b: b.mixer.norm.weight),
                mix_eps=np.array([b.mixer.norm.eps for b in model.layers], np.float32),
                out_wt=stack(lambda b: b.mixer.out_proj.weight.t()))
            m = model.mlp
            if m is not None:
                mlp = (True, np32(m.norm.weight), np.float32(m.norm.eps), np32(m.in_proj.weight.t()),
                       np32(m.in_proj.bias), np32(m.out_proj.weight.t()), np32(m.out_proj.bias))
            else:  # placeholders of the right dtype and rank, never read
                z1, z2 = np.zeros(1, np.float32), np.zeros((1, 1), np.float32)
                mlp = (False, z1, np.float32(1e-5), z2, z1, z2, z1)
            head = (np32(model.norm_f.weight), np.float32(model.norm_f.eps),
                    np32(model.head.weight.t()), np32(model.head.bias))
        self._weights = (self.embed_wt, self.embed_b, *layers.values(), *mlp, *head)
        self.blocks = cfg.ngroups  # channel blocks of the scan (a multiple of ngroups)
        self.reset()

    def reset(self) -> None:
        c = self.cfg
        self.conv_state = np.zeros((c.n_layers, c.d_conv, c.conv_dim), np.float32)
        self.ssm_state = np.zeros((c.n_layers, self.blocks, c.d_state, c.d_inner // self.blocks),
                                  np.float32)

    def set_state(self, state: DenoiserState) -> None:
        """Take a (batch 1) torch state: conv (layers, 1, conv_dim, K) -> (layers, K, conv_dim),
        ssm (layers, 1, h, p, n) -> (layers, blocks, n, h*p/blocks)."""
        c = self.cfg
        self.conv_state = state.conv[:, 0].detach().float().transpose(1, 2).contiguous().numpy().copy()
        ssm = state.ssm[:, 0].detach().float().reshape(c.n_layers, self.blocks, -1, c.d_state)
        self.ssm_state = ssm.transpose(2, 3).contiguous().numpy().copy()

    def get_state(self) -> DenoiserState:
        c = self.cfg
        ssm = torch.from_numpy(self.ssm_state.copy()).transpose(2, 3)
        ssm = ssm.reshape(c.n_layers, 1, c.nheads, c.headdim, c.d_state)
        conv = torch.from_numpy(self.conv_state.copy()).transpose(1, 2)[:, None]
        return DenoiserState(conv, ssm)

    def _run(self, features: np.ndarray, dt_us: np.ndarray, probabilities: bool) -> np.ndarray:
        c = self.cfg
        out = np.empty((len(features), c.n_classes), np.float32)
        if len(features):
            forward(np.ascontiguousarray(features, np.float32), np.ascontiguousarray(dt_us, np.float32),
                    self.tile, np.float32(c.dt_unit_us), np.float32(c.dt_scale_min),
                    np.float32(c.dt_scale_max), *self._weights, c.headdim, c.ngroups,
                    self.conv_state, self.ssm_state, probabilities, out)
        return out

    def logits(self, features: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
        """features float32 [n, F], dt_us [n] real gaps -> float32 [n, classes]."""
        return self._run(features, dt_us, False)

    def probabilities(self, features: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax of ``logits``), float32 [n, classes]."""
        return self._run(features, dt_us, True)
