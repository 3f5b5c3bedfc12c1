"""The stateful Mamba2 (SSD) event denoiser in plain torch.

Mamba2 blocks after Dao & Gu 2024, "Transformers are SSMs: Generalized Models and Efficient
Algorithms Through Structured State Space Duality" (ICML 2024). ``Mamba2Mixer`` keeps the
parameter names and shapes of ``mamba_ssm.modules.mamba2.Mamba2`` (in_proj, conv1d, dt_bias,
A_log, D, norm.weight, out_proj; rmsnorm=True, norm_before_gate=False, no biases on the
projections, bias on the conv), so one checkpoint runs here, in ``cpu_runner.py`` and on mamba_ssm's
CUDA kernels (``gpu_runner.py`` hands its scan to ``forward``).

One change to Mamba2: events arrive at irregular times, so the discretisation step uses the
real inter-event interval, as S5 and "State Space Models for Event Cameras" (Zubic et al.,
CVPR 2024) do with variable step sizes:

    dt_eff = softplus(dt_raw + dt_bias) * clamp(dt_event_us / dt_unit_us, dt_scale_min, dt_scale_max)

so the state decays with wall-clock time, not with the event count, and a model trained at one
event rate is not tied to it. The input enters with the zero-order-hold weight
(1 - exp(dt_eff A)) / -A (S5, Smith et al. ICLR 2023) instead of Mamba2's dt_eff: the same for
the short gaps Mamba2 is built for, bounded for long pauses. Time stamps are whole microseconds, so a zero gap (same stamp)
is clamped up to ``dt_scale_min`` (default: 1 us at a 1 ms unit).

Model: per-event features -> linear embedding -> n pre-norm residual Mamba2 blocks -> RMSNorm
-> linear head with one logit per class (signal, noise, flare).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..labels import LABEL_NAMES, LIGHT_SOURCE, SIGNAL
from .ssd import ssd_chunked

CLASS_NAMES = LABEL_NAMES[:LIGHT_SOURCE]  # signal, noise, flare (the light source trains as signal)


@dataclass
class ModelConfig:
    n_features: int = 16  # F: per-event features in (set from the feature spec; 16 = default set)
    d_model: int = 16  # width of the residual stream (16-32 is what a CPU keeps up with)
    n_layers: int = 1  # Mamba2 blocks (1 keeps the CPU stage near 1 M events/s; 2 halves it)
    d_state: int = 16  # N: SSM state size per head
    d_conv: int = 4  # causal depthwise conv width
    expand: int = 2  # d_inner = expand * d_model
    headdim: int = 8  # P: channels per head (nheads = d_inner / headdim)
    ngroups: int = 1  # groups sharing B and C
    class_names: list[str] = field(default_factory=lambda: list(CLASS_NAMES))  # head outputs
    mlp_hidden: int = 0  # per-event feed-forward block after the Mamba blocks (hidden width; 0 = none)
    chunk_len: int = 64  # SSD chunk length of the torch forward (speed only, not results)
    dt_unit_us: float = 1000.0  # the real inter-event gap is measured in this unit (1 ms)
    dt_scale_min: float = 1e-3  # smallest gap factor (1 us / 1 ms: stamps are whole us)
    dt_scale_max: float = 1e3  # largest gap factor (1 s): longer pauses forget as much as 1 s

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def nheads(self) -> int:
        return self.d_inner // self.headdim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.ngroups * self.d_state

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def check(self, where: str = "model") -> None:
        for name in ("n_features", "d_model", "n_layers", "d_state", "d_conv", "expand",
                     "headdim", "ngroups", "chunk_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if self.mlp_hidden < 0:
            raise ConfigError(f"{where}.mlp_hidden must be >= 0, got {self.mlp_hidden}")
        if self.d_inner % self.headdim:
            raise ConfigError(f"{where}: expand*d_model={self.d_inner} is not a multiple of "
                              f"headdim={self.headdim}")
        if self.nheads % self.ngroups:
            raise ConfigError(f"{where}: nheads={self.nheads} is not a multiple of ngroups={self.ngroups}")
        if "signal" not in self.class_names or len(self.class_names) < 2:
            raise ConfigError(f"{where}.class_names must contain 'signal' and another class")
        if not 0 < self.dt_scale_min <= self.dt_scale_max or self.dt_unit_us <= 0:
            raise ConfigError(f"{where}: need 0 < dt_scale_min <= dt_scale_max and dt_unit_us > 0")


class DenoiserState(NamedTuple):
    """Everything the model remembers between messages (one stream per batch row)."""

    conv: torch.Tensor  # (n_layers, b, conv_dim, d_conv): the last d_conv conv inputs
    ssm: torch.Tensor  # (n_layers, b, nheads, headdim, d_state): mamba_ssm's layout

    def detach(self) -> "DenoiserState":
        return DenoiserState(self.conv.detach(), self.ssm.detach())


def zoh_input_weight(dt: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """(1 - exp(dt A)) / -A: the zero-order-hold weight of the input (S4/S5). It equals dt for
    small dt (Mamba2's dt * B x) but saturates at 1/|A| for long gaps, so the first event
    after a pause does not swamp the state."""
    return torch.expm1(dt * A) / A


def time_scale(dt_us: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Real inter-event gap (us) -> the factor on softplus(dt_raw + dt_bias), clamped."""
    return (dt_us / cfg.dt_unit_us).clamp(cfg.dt_scale_min, cfg.dt_scale_max)


class RMSNormGated(nn.Module):
    """mamba_ssm's gated RMSNorm with norm_before_gate=False: rmsnorm(y * silu(z)) * weight,
    the RMS taken over groups of ``group_size`` channels."""

    def __init__(self, hidden: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.group_size, self.eps = group_size, eps

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        g = y * F.silu(z)
        grouped = g.unflatten(-1, (-1, self.group_size))
        grouped = grouped * torch.rsqrt(grouped.square().mean(-1, keepdim=True) + self.eps)
        return grouped.flatten(-2) * self.weight


class Mamba2Mixer(nn.Module):
    """One Mamba2 mixer (mamba_ssm's ``Mamba2`` names and shapes) with a real-time step."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d_in_proj = 2 * cfg.d_inner + 2 * cfg.ngroups * cfg.d_state + cfg.nheads  # [z, xBC, dt]
        self.in_proj = nn.Linear(cfg.d_model, d_in_proj, bias=False)
        self.conv1d = nn.Conv1d(cfg.conv_dim, cfg.conv_dim, kernel_size=cfg.d_conv,
                                groups=cfg.conv_dim, padding=cfg.d_conv - 1, bias=True)
        # dt_bias, A_log, D initialised as in mamba_ssm (dt in [1e-3, 0.1], A in [1, 16])
        dt = torch.exp(torch.rand(cfg.nheads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        dt = dt.clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.empty(cfg.nheads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(cfg.nheads))
        self.norm = RMSNormGated(cfg.d_inner, group_size=cfg.d_inner // cfg.ngroups)
        self.out_proj = nn.Linear(cfg.d_inner, cfg.d_model, bias=False)

    @staticmethod
    def scan(x, dt, A, B, C, chunk_len, ssm_state):
        """SSD scan with per-token dt (b, l, h) and the zero-order-hold input weight
        dt_in = (1 - exp(dt A)) / -A: the torch chunked form. On CUDA ``gpu_runner.py`` passes
        mamba_ssm's ``mamba_chunk_scan_combined`` instead (same arguments, same result) as the
        ``scan`` argument of ``forward``."""
        return ssd_chunked(x * zoh_input_weight(dt, A)[..., None], dt * A, B, C, chunk_len, ssm_state)

    def _split(self, zxbcdt: torch.Tensor):
        c = self.cfg
        return torch.split(zxbcdt, [c.d_inner, c.conv_dim, c.nheads], dim=-1)

    def forward(self, u: torch.Tensor, scale: torch.Tensor, conv_state: torch.Tensor,
                ssm_state: torch.Tensor, scan=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (b, l, d_model), scale (b, l) from ``time_scale``; states as in ``DenoiserState``
        (one layer); ``scan``: a function with ``scan``'s signature (None: ``scan``).
        Returns out (b, l, d_model) and the new conv and ssm states."""
        c = self.cfg
        b, length, _ = u.shape
        z, xbc, dt_raw = self._split(self.in_proj(u))
        # causal depthwise conv continuing from the last d_conv inputs of the previous call
        seq = torch.cat([conv_state, xbc.transpose(1, 2)], dim=2)  # (b, conv_dim, d_conv + l)
        new_conv_state = seq[:, :, -c.d_conv:]
        conv = F.conv1d(seq[:, :, 1:], self.conv1d.weight, self.conv1d.bias, groups=c.conv_dim)
        xbc = F.silu(conv.transpose(1, 2))  # (b, l, conv_dim)
        x, B, C = torch.split(xbc, [c.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state], -1)
        dt = F.softplus(dt_raw + self.dt_bias) * scale[..., None]  # (b, l, h)
        A = -torch.exp(self.A_log.float())  # (h,)
        x = x.reshape(b, length, c.nheads, c.headdim)
        y, new_ssm_state = (scan or self.scan)(x, dt, A, B.reshape(b, length, c.ngroups, c.d_state),
                                     C.reshape(b, length, c.ngroups, c.d_state), c.chunk_len,
                                     ssm_state)
        y = y + x * self.D[:, None]
        y = self.norm(y.reshape(b, length, c.d_inner), z)
        return self.out_proj(y), new_conv_state, new_ssm_state

    def step(self, u: torch.Tensor, scale: torch.Tensor, conv_state: torch.Tensor,
             ssm_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token per stream: u (b, d_model), scale (b,). Mirrors ``Mamba2.step``."""
        c = self.cfg
        z, xbc, dt_raw = self._split(self.in_proj(u))
        conv_state = torch.cat([conv_state[:, :, 1:], xbc[:, :, None]], dim=2)
        xbc = F.silu((conv_state * self.conv1d.weight[:, 0]).sum(-1) + self.conv1d.bias)
        x, B, C = torch.split(xbc, [c.d_inner, c.ngroups * c.d_state, c.ngroups * c.d_state], -1)
        dt = F.softplus(dt_raw + self.dt_bias) * scale[:, None]  # (b, h)
        A = -torch.exp(self.A_log.float())
        dA = torch.exp(dt * A)  # (b, h)
        dt_in = zoh_input_weight(dt, A)  # (b, h)
        x = x.reshape(-1, c.nheads, c.headdim)
        rep = c.nheads // c.ngroups
        B = B.reshape(-1, c.ngroups, c.d_state).repeat_interleave(rep, dim=1)  # (b, h, n)
        C = C.reshape(-1, c.ngroups, c.d_state).repeat_interleave(rep, dim=1)
        ssm_state = ssm_state * dA[:, :, None, None] + (dt_in[:, :, None] * x)[..., None] * B[:, :, None, :]
        y = torch.einsum("bhpn,bhn->bhp", ssm_state, C) + self.D[:, None] * x
        y = self.norm(y.reshape(-1, c.d_inner), z)
        return self.out_proj(y), conv_state, ssm_state


class ResidualBlock(nn.Module):
    """Pre-norm residual: h + mixer(rmsnorm(h))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.mixer = Mamba2Mixer(cfg)


class FeedForward(nn.Module):
    """Pre-norm per-event feed-forward: out_proj(silu(in_proj(rmsnorm(h)))), added to h by the
    caller (the Transformer block's second half, as in the Mamba language models)."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=1e-5)
        self.in_proj = nn.Linear(d_model, hidden)
        self.out_proj = nn.Linear(hidden, d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out_proj(F.silu(self.in_proj(self.norm(h))))


class DenoiserModel(nn.Module):
    """features (b, l, F) + real gaps dt_us (b, l) + state -> class logits (b, l, classes) + state."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        # Feature standardisation (set from training data; part of the checkpoint).
        self.register_buffer("feature_mean", torch.zeros(cfg.n_features))
        self.register_buffer("feature_std", torch.ones(cfg.n_features))
        self.embed = nn.Linear(cfg.n_features, cfg.d_model)
        self.layers = nn.ModuleList(ResidualBlock(cfg) for _ in range(cfg.n_layers))
        self.mlp = FeedForward(cfg.d_model, cfg.mlp_hidden) if cfg.mlp_hidden else None
        self.norm_f = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)

    def initial_state(self, batch: int = 1) -> DenoiserState:
        c, p = self.cfg, self.head.weight
        return DenoiserState(
            p.new_zeros(c.n_layers, batch, c.conv_dim, c.d_conv),
            p.new_zeros(c.n_layers, batch, c.nheads, c.headdim, c.d_state))

    def _embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.embed((features - self.feature_mean) / self.feature_std)

    def _readout(self, h: torch.Tensor) -> torch.Tensor:
        """Class logits from the last block's output (through the feed-forward block if any)."""
        if self.mlp is not None:
            h = h + self.mlp(h)
        return self.head(self.norm_f(h))

    def forward(self, features: torch.Tensor, dt_us: torch.Tensor,
                state: DenoiserState | None = None, scan=None) -> tuple[torch.Tensor, DenoiserState]:
        """``scan``: the SSD scan the mixers use (None: the torch chunked scan; ``gpu_runner.py``
        passes mamba_ssm's kernel on CUDA)."""
        if state is None:
            state = self.initial_state(features.size(0))
        scale = time_scale(dt_us.to(features.dtype), self.cfg)
        h = self._embed(features)
        convs, ssms = [], []
        for i, block in enumerate(self.layers):
            out, conv, ssm = block.mixer(block.norm(h), scale, state.conv[i], state.ssm[i], scan)
            h = h + out
            convs.append(conv)
            ssms.append(ssm)
        return self._readout(h), DenoiserState(torch.stack(convs), torch.stack(ssms))

    def step(self, features: torch.Tensor, dt_us: torch.Tensor, state: DenoiserState
             ) -> tuple[torch.Tensor, DenoiserState]:
        """One event per stream: features (b, F), dt_us (b,) -> logits (b, classes), state."""
        scale = time_scale(dt_us.to(features.dtype), self.cfg)
        h = self._embed(features)
        convs, ssms = [], []
        for i, block in enumerate(self.layers):
            out, conv, ssm = block.mixer.step(block.norm(h), scale, state.conv[i], state.ssm[i])
            h = h + out
            convs.append(conv)
            ssms.append(ssm)
        return self._readout(h), DenoiserState(torch.stack(convs), torch.stack(ssms))


def keep_class_indices(class_names) -> list[int]:
    """Classes whose probability counts as 'keep': signal, and the light source if modelled."""
    return [i for i, n in enumerate(class_names) if n in (LABEL_NAMES[SIGNAL], LABEL_NAMES[LIGHT_SOURCE])]
