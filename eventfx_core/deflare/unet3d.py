"""A small residual 3D U-Net on voxel grids: output = input + learned residual.

After E-DeflareNet (Han et al., "Learning to Remove Lens Flare in Event Camera", arXiv
2512.09016), a residual 3D U-Net on 20 ms / 8-bin voxel grids. The last layer starts at zero,
so the untrained model returns its input exactly and training only has to learn to subtract
the flare. The output is real-valued (no sigmoid/softmax: a signed voxel grid lives on the
whole real line).

Input and output: float32 ``(N, 1, bins, H, W)``. Pooling halves only H and W (8 bins are
too few to pool), so H and W are zero-padded (zero = no event) up to a multiple of
``2**levels`` and the output is cropped back: any sensor size works.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import ConfigError


@dataclass(frozen=True)
class UNet3DConfig:
    base_channels: int = 8  # feature maps at full resolution; doubled at each level
    levels: int = 2  # number of spatial 2x poolings (encoder depth)
    input_clip: float = 16.0  # |voxel| values above this are clipped before the network

    def check(self, where: str = "model") -> None:
        if self.base_channels < 1:
            raise ConfigError(f"{where}.base_channels: must be >= 1, got {self.base_channels}")
        if not 0 <= self.levels <= 5:
            raise ConfigError(f"{where}.levels: must be in 0..5, got {self.levels}")
        if not self.input_clip > 0:
            raise ConfigError(f"{where}.input_clip: must be > 0, got {self.input_clip}")


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3x3 convolutions with LeakyReLU (no batch norm: one window is one sample)."""
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv3d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
    )


class ResidualUNet3D(nn.Module):
    """``forward(v) = v + residual(v)``; ``residual`` is exactly zero before training."""

    def __init__(self, config: UNet3DConfig = UNet3DConfig()):
        super().__init__()
        self.config = config
        c = config.base_channels
        widths = [c * 2 ** i for i in range(config.levels + 1)]
        self.down = nn.ModuleList([_block(1, widths[0])] +
                                  [_block(widths[i - 1], widths[i]) for i in range(1, len(widths))])
        self.up = nn.ModuleList([nn.ConvTranspose3d(widths[i], widths[i - 1], (1, 2, 2), stride=(1, 2, 2))
                                 for i in range(len(widths) - 1, 0, -1)])
        self.merge = nn.ModuleList([_block(2 * widths[i - 1], widths[i - 1])
                                    for i in range(len(widths) - 1, 0, -1)])
        self.head = nn.Conv3d(widths[0], 1, 1)
        nn.init.zeros_(self.head.weight)  # zero-initialised residual: identity at the start
        nn.init.zeros_(self.head.bias)

    def residual(self, v: torch.Tensor) -> torch.Tensor:
        """The learned correction for ``v`` (N, 1, bins, H, W); H, W multiples of 2**levels."""
        x = v.clamp(-self.config.input_clip, self.config.input_clip)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool3d(x, (1, 2, 2))
            x = block(x)
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Clean grid for ``v`` (N, 1, bins, H, W), any H and W (padded and cropped here)."""
        h, w = v.shape[-2:]
        m = 2 ** self.config.levels
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(v, (0, pw, 0, ph)) if (ph or pw) else v
        out = x + self.residual(x)
        return out[..., :h, :w]
