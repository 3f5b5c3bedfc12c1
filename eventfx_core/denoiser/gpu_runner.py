"""Torch inference of the denoiser on any device; on CUDA with mamba_ssm's fused SSD scan.

On a CUDA device ``mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined`` (Dao & Gu 2024,
the fused SSD kernel of state-spaces/mamba, pinned in the ``gpu`` extra) computes the scan; the
torch chunked scan (``ssd.py``) is the CPU's. The kernel is chosen by a plain function of the
device and the installed packages and handed to ``DenoiserModel.forward`` as ``scan``: the
checkpoint's model is copied to the device, never patched. mamba_ssm is imported lazily, off
the CPU path only. A CUDA device that was asked for and cannot run (no GPU, mamba_ssm missing
or broken) is a ``ConfigError`` at construction (``device.resolve_device``), never a fallback.

The real inter-event time needs no change to the kernel: it takes a per-token, per-head ``dt``.
We pass our dt_eff = softplus(dt_raw + dt_bias) * clamp(gap / unit) with ``dt_softplus=False``
and ``dt_bias=None``; the kernel forms exp(dt A) and dt * x itself, so x goes in multiplied by
zoh_input_weight(dt, A) / dt, which makes dt * x the zero-order-hold input of ``Mamba2Mixer.scan``
(dt_eff > 0 always: the gap factor is clamped). The conv, gating and projections stay in torch
(mamba_ssm's fused ``mamba_split_conv1d_scan_combined`` cannot take the real dt, nor a conv
state to continue from). Triton computes float32 products in TF32, so GPU and CPU agree on the
keep decisions (tests: >= 99.9 % of events), not to 1e-4. ``test_gpu_path.py`` checks the
adapter against a stub of the kernel's documented maths, and the parity on CUDA when one is
present; ``scripts/gpu_check.py`` ran on an H100 (README, "On a GPU": 2-10 events in a million
decided otherwise than on the CPU).
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .model import DenoiserModel, DenoiserState, zoh_input_weight

MAMBA_SSM = "mamba-ssm==2.2.4"  # the pinned version (setup.py's gpu extra, README "On a GPU")


def mamba_ssm_scan(x, dt, A, B, C, chunk_len, ssm_state):
    """``Mamba2Mixer.scan``'s arguments and results, computed by mamba_chunk_scan_combined:
    x (b, l, h, p), dt (b, l, h), A (h,), B and C (b, l, g, n), ssm_state (b, h, p, n)."""
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # CUDA only

    # the kernel forms dt * x: scale x so that this is the zero-order-hold weight * x
    x = x * (zoh_input_weight(dt, A) / dt)[..., None]
    y, final = mamba_chunk_scan_combined(x.contiguous(), dt.contiguous(), A.contiguous(),
                                         B.contiguous(), C.contiguous(), chunk_len, D=None, z=None,
                                         dt_bias=None, initial_states=ssm_state.contiguous(),
                                         dt_softplus=False, return_final_states=True)
    return y, final


def mamba_ssm_scan_error() -> str | None:
    """Why mamba_ssm's scan kernel does not load here, or None when it does."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: F401
    except Exception as exc:  # ImportError, or a CUDA extension that fails to load: reported
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return f"mamba_ssm's scan does not load ({type(exc).__name__}: {first}); pip install {MAMBA_SSM}"
    return None


class TorchDenoiser:
    """Class probabilities for one stream with ``DenoiserModel.forward`` on ``device``.

    ``scan``: the scan function (``Mamba2Mixer.scan``'s signature); None = mamba_ssm's on CUDA,
    the torch chunked scan elsewhere. ``warm_up``: on CUDA, run the model once on dummy events
    of a few lengths at construction (Triton compiles and autotunes there, not on the first
    message), then forget that state."""

    WARM_UP_LENGTHS = (1, 100, 1000, 10_000)

    def __init__(self, model: DenoiserModel, device: str | torch.device = "cpu", scan=None,
                 warm_up: bool = True):
        self.device = torch.device(device)
        self.model = copy.deepcopy(model).to(self.device).eval()  # the checkpoint's stays on the CPU
        self.cfg = model.cfg
        self.scan = scan if scan is not None else (mamba_ssm_scan if self.device.type == "cuda" else None)
        self.reset()
        if warm_up and self.device.type == "cuda":
            for n in self.WARM_UP_LENGTHS:
                self.probabilities(np.zeros((n, self.cfg.n_features), np.float32), np.ones(n, np.float32))
            torch.cuda.synchronize(self.device)
            self.reset()

    def reset(self) -> None:
        self.state: DenoiserState = self.model.initial_state(1)

    def probabilities(self, features: np.ndarray, dt_us: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            f = torch.from_numpy(np.ascontiguousarray(features, np.float32)).to(self.device)
            d = torch.from_numpy(np.ascontiguousarray(dt_us, np.float32)).to(self.device)
            logits, self.state = self.model(f[None], d[None], self.state, scan=self.scan)
            return torch.softmax(logits[0], -1).float().cpu().numpy()
