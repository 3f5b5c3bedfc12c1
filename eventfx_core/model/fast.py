"""Fast CPU inference of ``DenoiserModel`` for one stream, state carried across calls.

Same maths as ``mamba2.py`` (Dao & Gu 2024 Mamba2/SSD with the real-time step and the
zero-order-hold input), arranged for a CPU, all in numba over tiles of ``tile`` events, float32:
dense layers (embedding, in_proj, out_proj, head) vectorised over outputs or inputs by shape,
the discretisation, the causal conv, the sequential SSM scan with the state stored as
(d_state, channels) so the innermost loop runs over contiguous channels, gating and the grouped
RMSNorm. What made it fast here (measured): no torch ops in the loop (two torch threads on
tiny tensors were 10x slower), unsigned index offsets (numba's negative-index wraparound check
blocks vectorisation), polynomial exp/log1p (PyPI's llvmlite has no vector exp), local
accumulators (no aliasing checks). ``DenoiserModel.forward`` is the oracle (tests: 1e-4).
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from .mamba2 import DenoiserModel, DenoiserState

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


@numba.njit(cache=True, error_model="numpy", fastmath=True)
def silu_rows(v):
    """v = silu(v) in place, (L, n)."""
    for t in range(v.shape[0]):
        for j in range(v.shape[1]):
            v[t, j] = _silu(v[t, j])


@numba.njit(cache=True, error_model="numpy", fastmath=True)
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


@numba.njit(cache=True, error_model="numpy", fastmath=True)
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
        for t in range(L):
            for n in range(d_state):
                bn = xbc[t, b0 + n]
                cn = xbc[t, c0 + n]
                for j in range(blk):
                    v = ssm_state[b, n, j] * da[t, b, j] + bn * xdt[t, b, j]
                    ssm_state[b, n, j] = v
                    y[t, b, j] += cn * v


@numba.njit(cache=True, error_model="numpy", fastmath=True)
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


@numba.njit(cache=True, error_model="numpy", fastmath=True)
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


@numba.njit(cache=True, error_model="numpy", fastmath=True)
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


@numba.njit(cache=True, error_model="numpy", fastmath=True)
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


@numba.njit(cache=True, error_model="numpy", fastmath=True)
def linear(x, w, wt, b, out, accumulate):
    """out = x @ w.T + b (or out += x @ w.T + b) for a small dense layer w (n_out, n_in), wt = w.T.
    Wide outputs: row of x times columns, accumulated in a local row (vectorises over outputs);
    narrow outputs: one dot product per output (vectorises over inputs)."""
    n_out, n_in = w.shape
    if n_out > n_in:
        acc = np.empty(n_out, np.float32)
        for t in range(x.shape[0]):
            for j in range(n_out):
                acc[j] = b[j]
            for k in range(n_in):
                a = x[t, k]
                for j in range(n_out):
                    acc[j] += a * wt[k, j]
            if accumulate:
                for j in range(n_out):
                    out[t, j] += acc[j]
            else:
                for j in range(n_out):
                    out[t, j] = acc[j]
    else:
        for t in range(x.shape[0]):
            for j in range(n_out):
                s = b[j]
                for k in range(n_in):
                    s += x[t, k] * w[j, k]
                out[t, j] = out[t, j] + s if accumulate else s


class FastDenoiser:
    """Class logits for one event stream, message by message, on the CPU (numba only: no torch
    threads in the loop, so it runs the same whatever ``torch.set_num_threads`` says)."""

    def __init__(self, model: DenoiserModel, tile: int = 4096):
        cfg = model.cfg
        self.cfg, self.tile = cfg, int(tile)
        with torch.no_grad():
            f32 = lambda t: t.detach().float().cpu().contiguous()  # noqa: E731
            np32 = lambda t: f32(t).numpy().copy()  # noqa: E731
            # fold the feature standardisation into the embedding: W (f - m)/s + b
            w = f32(model.embed.weight) / f32(model.feature_std)
            self.embed_w = w.contiguous().numpy().copy()
            self.embed_wt = w.t().contiguous().numpy().copy()
            self.embed_b = (f32(model.embed.bias) - w @ f32(model.feature_mean)).numpy().copy()
            self.layers = []
            for block in model.layers:
                mx = block.mixer
                self.layers.append(dict(
                    norm_w=np32(block.norm.weight), norm_eps=np.float32(block.norm.eps),
                    in_w=np32(mx.in_proj.weight), in_wt=np32(mx.in_proj.weight.t()), in_b=np.zeros(mx.in_proj.out_features, np.float32),
                    out_w=np32(mx.out_proj.weight), out_wt=np32(mx.out_proj.weight.t()), out_b=np.zeros(cfg.d_model, np.float32),
                    conv_wt=np32(mx.conv1d.weight[:, 0, :].t()), conv_b=np32(mx.conv1d.bias),
                    dt_bias=np32(mx.dt_bias), A=np32(-torch.exp(mx.A_log.float())), D=np32(mx.D),
                    mix_norm_w=np32(mx.norm.weight), mix_eps=np.float32(mx.norm.eps)))
            self.mlp = None
            if model.mlp is not None:
                m = model.mlp
                self.mlp = dict(norm_w=np32(m.norm.weight), eps=np.float32(m.norm.eps),
                                in_w=np32(m.in_proj.weight), in_wt=np32(m.in_proj.weight.t()), in_b=np32(m.in_proj.bias),
                                out_w=np32(m.out_proj.weight), out_wt=np32(m.out_proj.weight.t()), out_b=np32(m.out_proj.bias))
            self.norm_f_w = np32(model.norm_f.weight)
            self.norm_f_eps = np.float32(model.norm_f.eps)
            self.head_w = np32(model.head.weight)
            self.head_wt = np32(model.head.weight.t())
            self.head_b = np32(model.head.bias)
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
        self.conv_state = state.conv[:, 0].detach().float().transpose(1, 2).contiguous().numpy()
        ssm = state.ssm[:, 0].detach().float().reshape(c.n_layers, self.blocks, -1, c.d_state)
        self.ssm_state = ssm.transpose(2, 3).contiguous().numpy().copy()

    def get_state(self) -> DenoiserState:
        c = self.cfg
        ssm = torch.from_numpy(self.ssm_state.copy()).transpose(2, 3)
        ssm = ssm.reshape(c.n_layers, 1, c.nheads, c.headdim, c.d_state)
        conv = torch.from_numpy(self.conv_state.copy()).transpose(1, 2)[:, None]
        return DenoiserState(conv, ssm)

    def logits(self, features: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
        """features float32 [n, F], dt_us [n] real gaps -> float32 [n, classes]."""
        n = len(features)
        out = np.empty((n, self.cfg.n_classes), np.float32)
        for a in range(0, n, self.tile):
            b = min(n, a + self.tile)
            self._tile(np.ascontiguousarray(features[a:b], np.float32), dt_us[a:b], out[a:b])
        return out

    def probabilities(self, features: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
        z = self.logits(features, dt_us)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def _tile(self, features: np.ndarray, dt_us: np.ndarray, out: np.ndarray) -> None:
        c = self.cfg
        L = len(features)
        scale = np.clip(np.asarray(dt_us, np.float32) / np.float32(c.dt_unit_us),
                        np.float32(c.dt_scale_min), np.float32(c.dt_scale_max)).astype(np.float32)
        h = np.empty((L, c.d_model), np.float32)
        linear(features, self.embed_w, self.embed_wt, self.embed_b, h, False)
        normed = np.empty_like(h)
        zxbcdt = np.empty((L, self.layers[0]["in_w"].shape[0]), np.float32) if self.layers else None
        y = np.empty((L, c.d_inner), np.float32)
        dt_in = np.empty((L, c.nheads), np.float32)
        decay = np.empty((L, c.nheads), np.float32)
        for i, P in enumerate(self.layers):
            rmsnorm_rows(h, P["norm_w"], P["norm_eps"], normed)
            linear(normed, P["in_w"], P["in_wt"], P["in_b"], zxbcdt, False)
            discretise(zxbcdt, c.d_inner + c.conv_dim, scale, P["dt_bias"], P["A"], dt_in, decay)
            mixer_tile(zxbcdt, dt_in, decay, P["conv_wt"], P["conv_b"], P["D"], P["mix_norm_w"],
                       c.headdim, c.ngroups, P["mix_eps"], self.conv_state[i], self.ssm_state[i], y)
            linear(y, P["out_w"], P["out_wt"], P["out_b"], h, True)  # residual: h += out_proj(y)
        if self.mlp is not None:  # h += out_proj(silu(in_proj(rmsnorm(h))))
            M = self.mlp
            rmsnorm_rows(h, M["norm_w"], M["eps"], normed)
            hidden = np.empty((L, M["in_w"].shape[0]), np.float32)
            linear(normed, M["in_w"], M["in_wt"], M["in_b"], hidden, False)
            silu_rows(hidden)
            linear(hidden, M["out_w"], M["out_wt"], M["out_b"], h, True)
        rmsnorm_rows(h, self.norm_f_w, self.norm_f_eps, normed)
        linear(normed, self.head_w, self.head_wt, self.head_b, out, False)
