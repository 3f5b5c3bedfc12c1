"""Where the model stages run: ``cpu``, ``cuda[:n]`` or ``auto``, resolved once, at construction.

``auto`` picks CUDA when torch sees a GPU, else the CPU (the denoiser also needs mamba_ssm's
scan to load, ``gpu.mamba_ssm_scan_error``; without it its CPU fast path is the faster one).
A device the user names is checked now: ``cuda`` on a machine without one, or without a working
mamba_ssm for the denoiser, is a ``ConfigError`` with the reason, never a silent fallback
(the kernel path is a plain function of the device and the installed packages, as
state-spaces/mamba selects it).
"""
from __future__ import annotations

import torch

from .errors import ConfigError


def check_device_name(name: str, where: str) -> None:
    """Syntax only (no CUDA probe): ``""`` (the pipeline's), ``auto``, ``cpu``, ``cuda``, ``cuda:n``."""
    if name in ("", "auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return
    raise ConfigError(f"{where}: expected auto, cpu, cuda or cuda:<n>, got {name!r}")


def cuda_error(device: torch.device) -> str | None:
    """Why ``device`` (a CUDA one) cannot be used here, or None when it can."""
    if not torch.cuda.is_available():
        build = "has no CUDA build" if torch.version.cuda is None else "sees no GPU"
        return f"torch {torch.__version__} {build}"
    index = device.index or 0
    if index >= torch.cuda.device_count():
        return f"there is no GPU {index} (torch sees {torch.cuda.device_count()})"
    return None


def resolve_device(name: str, where: str, needs_mamba_ssm: bool = False) -> torch.device:
    """The torch device for ``name`` (``auto`` resolved); ``ConfigError`` when a named CUDA
    device cannot run (``needs_mamba_ssm``: the denoiser's scan kernel must load too)."""
    check_device_name(name, where)
    if name in ("", "cpu"):
        return torch.device("cpu")
    device = torch.device("cuda" if name == "auto" else name)
    reason = cuda_error(device)
    if reason is None and needs_mamba_ssm:
        from .denoiser.gpu_runner import mamba_ssm_scan_error  # probes the import only off the CPU path

        reason = mamba_ssm_scan_error()
    if reason is None:
        return device
    if name == "auto":
        return torch.device("cpu")
    raise ConfigError(f"{where}: {name} asked for, but {reason}; set device: cpu or auto, or "
                      f"install the GPU stack (README, 'On a GPU')")
