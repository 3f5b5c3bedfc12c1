"""Fast CPU inference of ``DenoiserModel`` for one stream, state carried across calls.

Same maths as ``mamba2.py`` (Dao & Gu 2024 Mamba2/SSD with the real-time step), arranged for a
CPU: the projections (embedding, in_proj, out_proj, head) are one ``torch.matmul`` over a
tile of events, and so is the discretisation (softplus/exp/expm1 vectorised by torch); the
per-token work -- causal conv, the sequential SSM scan, gating and the grouped RMSNorm -- is
one numba loop per layer, float32, with the SSM state stored as
(d_state, d_inner) so the innermost loop runs over channels and vectorises, and a polynomial
exp (llvmlite from PyPI has no vector exp). Long messages are cut into tiles of ``tile``
events so the working set stays in cache. ``DenoiserModel.forward`` is the oracle.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from .mamba2 import DenoiserModel, DenoiserState

_LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(0.6931471805599453)


@numba.njit(cache=True, error_model="numpy", inline="always")
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


@numba.njit(cache=True, error_model="numpy", inline="always")
def _silu(v):
    e = _exp_neg(abs(v))
    sig = np.float32(1.0) / (np.float32(1.0) + e) if v >= 0 else e / (np.float32(1.0) + e)
    return v * sig


@numba.njit(cache=True, error_model="numpy")
def _conv_silu(zxbcdt, d_inner, conv_wt, conv_b, conv_state, xbc):
    """Causal depthwise conv + silu over the tile, continuing from the last K inputs.
    conv_state (K, conv_dim): row K-1 is the latest input; updated in place."""
    L = zxbcdt.shape[0]
    conv_dim = conv_b.shape[0]
    K = conv_wt.shape[0]
    for t in range(L):
        for c in range(conv_dim):
            xbc[t, c] = conv_b[c]
        for k in range(K):
            src = t + k - (K - 1)  # input index in this tile; < 0: from the state
            if src >= 0:
                for c in range(conv_dim):
                    xbc[t, c] += conv_wt[k, c] * zxbcdt[src, d_inner + c]
            else:
                for c in range(conv_dim):
                    xbc[t, c] += conv_wt[k, c] * conv_state[K + src, c]
        for c in range(conv_dim):
            xbc[t, c] = _silu(xbc[t, c])
    last = np.empty((K, conv_dim), np.float32)
    for k in range(K):
        src = L - K + k
        for c in range(conv_dim):
            last[k, c] = zxbcdt[src, d_inner + c] if src >= 0 else conv_state[K + src, c]
    conv_state[:, :] = last


@numba.njit(cache=True, error_model="numpy")
def _scan(xbc, dt_in, decay, D, headdim, ssm_state, y):
    """Sequential scan: s[n, i] = s[n, i] * decay + B[n] * dt_in * x[i];  y[i] = C . s[:, i] + D x[i]
    with B and C of the channel's group. ssm_state (ngroups, d_state, group); y (L, ngroups, group).
    Inputs are first spread to channels so the inner loop runs over contiguous channels."""
    L, ngroups, group = y.shape
    d_state = ssm_state.shape[1]
    d_inner = ngroups * group
    heads_per_group = group // headdim
    xdt = np.empty((L, ngroups, group), np.float32)
    da = np.empty((L, ngroups, group), np.float32)
    for t in range(L):
        for g in range(ngroups):
            for hg in range(heads_per_group):
                h = g * heads_per_group + hg
                w, dec, d = dt_in[t, h], decay[t, h], D[h]
                for q in range(headdim):
                    j = hg * headdim + q
                    x = xbc[t, g * group + j]
                    xdt[t, g, j] = x * w
                    da[t, g, j] = dec
                    y[t, g, j] = d * x
    for t in range(L):
        for g in range(ngroups):
            b0 = d_inner + g * d_state
            c0 = d_inner + (ngroups + g) * d_state
            for n in range(d_state):
                bn = xbc[t, b0 + n]
                cn = xbc[t, c0 + n]
                for j in range(group):
                    v = ssm_state[g, n, j] * da[t, g, j] + bn * xdt[t, g, j]
                    ssm_state[g, n, j] = v
                    y[t, g, j] += cn * v


@numba.njit(cache=True, error_model="numpy")
def _gate_norm(zxbcdt, norm_w, eps, y):
    """Gated grouped RMSNorm in place: rmsnorm(y * silu(z)) * w, y (L, ngroups, group)."""
    L, ngroups, group = y.shape
    for t in range(L):
        for g in range(ngroups):
            for j in range(group):  # vectorises (no reduction in this loop)
                y[t, g, j] *= _silu(zxbcdt[t, g * group + j])
            ms = np.float32(0.0)
            for j in range(group):
                ms += y[t, g, j] * y[t, g, j]
            r = np.float32(1.0) / np.sqrt(ms / np.float32(group) + eps)
            for j in range(group):
                y[t, g, j] *= r * norm_w[g * group + j]


@numba.njit(cache=True, error_model="numpy")
def rmsnorm_rows(h, w, eps, out):
    """out[t] = h[t] / sqrt(mean(h[t]^2) + eps) * w (one fused pass instead of six torch ops)."""
    d = h.shape[1]
    for t in range(h.shape[0]):
        ms = np.float32(0.0)
        for j in range(d):
            ms += h[t, j] * h[t, j]
        r = np.float32(1.0) / np.sqrt(ms / np.float32(d) + eps)
        for j in range(d):
            out[t, j] = h[t, j] * r * w[j]


@numba.njit(cache=True, error_model="numpy")
def mixer_tile(zxbcdt, dt_in, decay, conv_wt, conv_b, D, norm_w, headdim, ngroups, eps,
               conv_state, ssm_state, y):
    """One Mamba2 mixer over L events, after in_proj and before out_proj.

    zxbcdt (L, 2*d_inner + 2*ngroups*d_state + nheads) float32; dt_in, decay (L, nheads): the
    input weight and the decay of each event (from ``_discretise``); conv_wt (d_conv, conv_dim);
    conv_state (d_conv, conv_dim) and ssm_state (ngroups, d_state, d_inner / ngroups) are
    updated in place; y (L, d_inner) receives rmsnorm(y * silu(z)) * w.
    """
    L = zxbcdt.shape[0]
    d_inner = norm_w.shape[0]
    xbc = np.empty((L, conv_b.shape[0]), np.float32)
    _conv_silu(zxbcdt, d_inner, conv_wt, conv_b, conv_state, xbc)
    y3 = y.reshape(L, ngroups, d_inner // ngroups)
    _scan(xbc, dt_in, decay, D, headdim, ssm_state, y3)
    _gate_norm(zxbcdt, norm_w, eps, y3)


def _discretise(dt_raw: torch.Tensor, dt_bias: torch.Tensor, A: torch.Tensor, scale: torch.Tensor):
    """dt_eff = softplus(dt_raw + dt_bias) * scale -> (input weight (1 - e^{dt A}) / -A, decay
    e^{dt A}), both (L, nheads), with torch's vectorised softplus/exp/expm1."""
    u = torch.nn.functional.softplus(dt_raw + dt_bias) * scale[:, None] * A
    return (torch.expm1(u) / A).numpy(), torch.exp(u).numpy()


def _rmsnorm(h: torch.Tensor, w: np.ndarray, eps: np.float32) -> torch.Tensor:
    out = np.empty(tuple(h.shape), np.float32)
    rmsnorm_rows(h.numpy(), w, eps, out)
    return torch.from_numpy(out)


class FastDenoiser:
    """Class logits for one event stream, message by message, on the CPU."""

    def __init__(self, model: DenoiserModel, tile: int = 4096):
        cfg = model.cfg
        self.cfg, self.tile = cfg, int(tile)
        with torch.no_grad():
            f32 = lambda t: t.detach().float().cpu().contiguous()  # noqa: E731
            # fold the feature standardisation into the embedding: W (f - m)/s + b
            w = f32(model.embed.weight) / f32(model.feature_std)
            self.embed_wt = w.t().contiguous()
            self.embed_b = f32(model.embed.bias) - w @ f32(model.feature_mean)
            self.layers = []
            for block in model.layers:
                mx = block.mixer
                self.layers.append(dict(
                    norm_w=f32(block.norm.weight).numpy(), norm_eps=np.float32(block.norm.eps), in_wt=f32(mx.in_proj.weight).t().contiguous(),
                    out_wt=f32(mx.out_proj.weight).t().contiguous(),
                    conv_wt=f32(mx.conv1d.weight[:, 0, :]).t().contiguous().numpy(),
                    conv_b=f32(mx.conv1d.bias).numpy(), dt_bias=f32(mx.dt_bias),
                    A=-torch.exp(f32(mx.A_log)), D=f32(mx.D).numpy(),
                    mix_norm_w=f32(mx.norm.weight).numpy(), eps=np.float32(mx.norm.eps)))
            self.norm_f_w = f32(model.norm_f.weight).numpy()
            self.norm_f_eps = np.float32(model.norm_f.eps)
            self.head_wt = f32(model.head.weight).t().contiguous()
            self.head_b = f32(model.head.bias)
        self.reset()

    def reset(self) -> None:
        c = self.cfg
        self.conv_state = np.zeros((c.n_layers, c.d_conv, c.conv_dim), np.float32)
        group = c.d_inner // c.ngroups
        self.ssm_state = np.zeros((c.n_layers, c.ngroups, c.d_state, group), np.float32)

    def set_state(self, state: DenoiserState) -> None:
        """Take a (batch 1) torch state: ssm (layers, 1, h, p, n) -> (layers, g, n, h*p/g)."""
        c = self.cfg
        self.conv_state = state.conv[:, 0].detach().float().transpose(1, 2).contiguous().numpy()
        ssm = state.ssm[:, 0].detach().float().reshape(c.n_layers, c.ngroups, -1, c.d_state)
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
            out[a:b] = self._tile(features[a:b], dt_us[a:b])
        return out

    def probabilities(self, features: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(torch.from_numpy(self.logits(features, dt_us)), -1).numpy()

    def _tile(self, features: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
        c = self.cfg
        scale = torch.from_numpy(np.clip(np.asarray(dt_us, np.float32) / np.float32(c.dt_unit_us),
                                         np.float32(c.dt_scale_min), np.float32(c.dt_scale_max)))
        first_dt = c.d_inner + c.conv_dim
        with torch.no_grad():
            h = torch.from_numpy(np.ascontiguousarray(features, np.float32)) @ self.embed_wt + self.embed_b
            y = np.empty((len(features), c.d_inner), np.float32)
            yt = torch.from_numpy(y)
            for i, L in enumerate(self.layers):
                zxbcdt = _rmsnorm(h, L["norm_w"], L["norm_eps"]) @ L["in_wt"]
                dt_in, decay = _discretise(zxbcdt[:, first_dt:], L["dt_bias"], L["A"], scale)
                mixer_tile(zxbcdt.numpy(), dt_in, decay, L["conv_wt"], L["conv_b"], L["D"],
                           L["mix_norm_w"], c.headdim, c.ngroups, L["eps"],
                           self.conv_state[i], self.ssm_state[i], y)
                h = h + yt @ L["out_wt"]
            return (_rmsnorm(h, self.norm_f_w, self.norm_f_eps) @ self.head_wt + self.head_b).numpy()
