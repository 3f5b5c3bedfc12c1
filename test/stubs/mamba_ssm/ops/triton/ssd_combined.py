"""Test stand-in for ``mamba_ssm.ops.triton.ssd_combined`` (state-spaces/mamba, Dao & Gu 2024):
``mamba_chunk_scan_combined`` with the real one's signature, computing what it documents, token
by token in float64, on any device. ``CALLS`` counts the calls (a test checks it was used)."""
import torch
import torch.nn.functional as F

CALLS = []


def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None,
                              initial_states=None, seq_idx=None, cu_seqlens=None, dt_softplus=False,
                              dt_limit=(0.0, float("inf")), return_final_states=False,
                              return_varlen_states=False):
    """x (batch, seqlen, nheads, headdim), dt (batch, seqlen, nheads), A (nheads,),
    B and C (batch, seqlen, ngroups, dstate), D (nheads, headdim) or (nheads,),
    z like x, dt_bias (nheads,), initial_states (batch, nheads, headdim, dstate).
    dt <- clamp(softplus?(dt + dt_bias), dt_limit); per head and token
    h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T,  y_t = h_t C_t + D x_t,  y_t *= silu(z_t).
    Returns y (like x), and the final state when ``return_final_states``."""
    if seq_idx is not None or cu_seqlens is not None or return_varlen_states:
        raise NotImplementedError("stub: variable-length batches are not modelled")
    CALLS.append(tuple(x.shape))
    batch, seqlen, nheads, headdim = x.shape
    ngroups, dstate = B.shape[2], B.shape[3]
    assert dt.shape == (batch, seqlen, nheads) and A.shape == (nheads,) and C.shape == B.shape
    f64 = torch.float64
    dt = dt.to(f64) + (dt_bias.to(f64) if dt_bias is not None else 0.0)
    if dt_softplus:
        dt = F.softplus(dt)
    dt = dt.clamp(dt_limit[0], dt_limit[1])
    per_group = nheads // ngroups
    Bh = B.to(f64).repeat_interleave(per_group, dim=2)  # (b, l, h, n)
    Ch = C.to(f64).repeat_interleave(per_group, dim=2)
    xs, A = x.to(f64), A.to(f64)
    h = (initial_states.to(f64).clone() if initial_states is not None
         else xs.new_zeros(batch, nheads, headdim, dstate))
    ys = []
    for t in range(seqlen):
        h = (h * torch.exp(dt[:, t] * A)[:, :, None, None]
             + (dt[:, t, :, None] * xs[:, t])[..., None] * Bh[:, t, :, None, :])
        y = torch.einsum("bhpn,bhn->bhp", h, Ch[:, t])
        if D is not None:
            y = y + (D.to(f64)[:, None] if D.dim() == 1 else D.to(f64)) * xs[:, t]
        if z is not None:
            y = y * F.silu(z[:, t].to(f64))
        ys.append(y)
    out = torch.stack(ys, dim=1).to(x.dtype)
    return (out, h.to(x.dtype)) if return_final_states else out
