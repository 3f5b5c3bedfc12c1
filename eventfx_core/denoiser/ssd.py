"""The chunked SSD scan of Mamba2 in plain torch, starting from a given state.

Dao & Gu 2024, "Transformers are SSMs" (Listing 1, ``ssd_minimal_discrete`` in
state-spaces/mamba): the scalar-decay state space recurrence

    h_t = exp(a_t) h_{t-1} + B_t x_t^T        (a_t = dt_t * A <= 0, x_t already scaled by dt_t)
    y_t = C_t^T h_t

computed block by block: a quadratic (attention-like) form inside each chunk of ``chunk_len``
tokens, and the linear recurrence only across chunk boundaries. Exact, not an approximation;
the per-token loop ``ssd_sequential`` beside it is the test oracle.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def segsum(a: torch.Tensor) -> torch.Tensor:
    """Stable segment sums: out[..., i, j] = sum(a[..., j+1 : i+1]) for j <= i, -inf above.

    exp(segsum(a)) is the lower-triangular decay matrix from token j to token i.
    """
    length = a.size(-1)
    a = a[..., None].expand(*a.shape, length)  # (..., L, L): column j holds a[i] in row i
    strict = torch.tril(torch.ones(length, length, dtype=torch.bool, device=a.device), diagonal=-1)
    a = a.masked_fill(~strict, 0.0)
    out = torch.cumsum(a, dim=-2)
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=a.device), diagonal=0)
    return out.masked_fill(~causal, float("-inf"))


def _heads(t: torch.Tensor, nheads: int) -> torch.Tensor:
    """(b, l, g, n) -> (b, l, h, n): each of the g groups is shared by h/g consecutive heads."""
    groups = t.size(2)
    return t if groups == nheads else t.repeat_interleave(nheads // groups, dim=2)


def ssd_chunked(x: torch.Tensor, a: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                chunk_len: int, initial_state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD scan.

    x: (b, l, h, p) inputs already multiplied by dt;  a: (b, l, h) log decays dt*A (<= 0);
    B, C: (b, l, g, n);  initial_state: (b, h, p, n) or None (zeros).
    Returns y (b, l, h, p) and the final state (b, h, p, n). Any length works: the tail is
    padded with a = 0, x = 0, which changes neither the outputs nor the final state.
    """
    b, length, h, p = x.shape
    n = B.size(-1)
    B, C = _heads(B, h), _heads(C, h)
    if initial_state is None:
        initial_state = x.new_zeros(b, h, p, n)
    pad = (-length) % chunk_len
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, 0, 0, pad))
    nc = (length + pad) // chunk_len
    x = x.reshape(b, nc, chunk_len, h, p)
    B = B.reshape(b, nc, chunk_len, h, n)
    C = C.reshape(b, nc, chunk_len, h, n)
    a = a.reshape(b, nc, chunk_len, h).permute(0, 3, 1, 2)  # (b, h, c, l)
    a_cum = torch.cumsum(a, dim=-1)  # (b, h, c, l)

    # 1. Within each chunk: y_i = sum_{j<=i} C_i.B_j exp(a_{j+1}+...+a_i) x_j
    decay = torch.exp(segsum(a))  # (b, h, c, l, s)
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, decay, x)
    # 2. The state each chunk contributes at its end
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, h, c, l)
    chunk_states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_to_end, x)
    # 3. Recurrence across chunk boundaries, starting from the given state
    states = torch.cat([initial_state[:, None], chunk_states], dim=1)  # (b, c+1, h, p, n)
    decay_chunk = torch.exp(segsum(F.pad(a_cum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states, final_state = states[:, :-1], states[:, -1]
    # 4. Contribution of the state entering each chunk
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, states, torch.exp(a_cum))
    y = (y_diag + y_off).reshape(b, nc * chunk_len, h, p)[:, :length]
    return y, final_state


def ssd_sequential(x: torch.Tensor, a: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   initial_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same scan token by token (the recurrence as written above; slow, for tests)."""
    b, length, h, p = x.shape
    B, C = _heads(B, h), _heads(C, h)
    state = x.new_zeros(b, h, p, B.size(-1)) if initial_state is None else initial_state
    ys = []
    for t in range(length):
        state = state * torch.exp(a[:, t])[:, :, None, None] + x[:, t, :, :, None] * B[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, C[:, t]))
    return torch.stack(ys, dim=1), state
