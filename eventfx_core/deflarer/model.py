"""A small residual 3D U-Net on voxel grids: output = input + learned residual.

After E-DeflareNet (Han et al., "Learning to Remove Lens Flare in Event Camera", arXiv
2512.09016), a residual 3D U-Net on 20 ms / 8-bin voxel grids. The last layer starts at zero,
so the untrained model returns its input exactly and training only has to learn to subtract
the flare. The output is real-valued (no sigmoid/softmax: a signed voxel grid lives on the
whole real line). An optional second head gives per-cell-bin flare logits (see
:class:`ResidualUNet3D`).

Input and output: float32 ``(N, C, bins, H, W)`` (C: ``in_channels`` in, 1 or 2 out) where H, W count voxel *cells* (see
``voxel.VoxelSpec.cell_px``). Pooling halves only H and W (8 bins are too few to pool), so
H and W are zero-padded (zero = no event) up to a multiple of ``stem * 2**levels`` and the
output is cropped back: any sensor size works.

Speed (``eventfx bench --deflare``: ~10-16 ms per 346x260 window on one CPU thread, was
~6 s with per-pixel grids): every 3x3x3 convolution goes through oneDNN (:class:`Conv3d`).
PyTorch's own dispatcher sends a batch-1 float32 3D convolution with a 3x3x3 kernel and few
channels to its im2col fallback ``slow_conv3d`` (its oneDNN heuristic only looks at batch,
kernel and the product of the first four sizes), which is about 10x slower here. The first
layer is a space-to-depth ``stem`` (see :class:`ResidualUNet3D`), so no convolution runs
with 1-4 channels at full cell resolution. Pooling is an elementwise max of the four
strided views (``F.max_pool3d`` also computes indices, 10x slower). Upsampling is a 1x1x1 convolution at the coarse level followed by nearest
2x spatial repetition (the two commute, so this equals a 1x1x1 conv after upsampling at a
quarter of the cost), instead of a transposed convolution that also has no fast CPU path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import ConfigError


@dataclass(frozen=True)
class UNet3DConfig:
    # feature maps per level, full (cell) resolution first; each further entry is one 2x
    # spatial pooling. Few maps at full resolution (where a conv costs most), more below.
    channels: tuple[int, ...] = (8, 16, 32)
    stem: int = 2  # space-to-depth factor of the first layer (1 = none): the U-Net runs at 1/stem of the cell grid
    input_clip: float = 32.0  # |voxel| values above this are clipped before the network (a 4x4 cell sums 16 pixels)
    in_channels: int = 1  # 1 = signed voxel grid; 2 = signed grid + unsigned event count per cell-bin
    mask_head: bool = False  # second output channel: per-cell-bin flare logits (False: residual share decode)

    @property
    def levels(self) -> int:
        """Number of 2x spatial poolings (encoder depth)."""
        return len(self.channels) - 1

    def check(self, where: str = "model") -> None:
        if not 1 <= len(self.channels) <= 6 or min(self.channels) < 1:
            raise ConfigError(f"{where}.channels: 1 to 6 positive widths, got {list(self.channels)}")
        if not 1 <= self.stem <= 4:
            raise ConfigError(f"{where}.stem: must be in 1..4, got {self.stem}")
        if self.in_channels not in (1, 2):
            raise ConfigError(f"{where}.in_channels: must be 1 (signed grid) or 2 (+ event count), got {self.in_channels}")
        if not self.input_clip > 0:
            raise ConfigError(f"{where}.input_clip: must be > 0, got {self.input_clip}")


def _use_onednn(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available() \
        and torch.backends.mkldnn.enabled


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (zero padding, no groups) that calls oneDNN directly on the CPU.

    Same parameters, same result up to float rounding; works with autograd. Elsewhere
    (GPU, float16, oneDNN disabled) it is plain ``nn.Conv3d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (_use_onednn(x) and self.groups == 1 and self.padding_mode == "zeros"
                and self.kernel_size != (1, 1, 1)):  # 1x1x1 is a plain matmul in PyTorch, faster
            return torch.ops.aten.mkldnn_convolution(x.contiguous(), self.weight, self.bias,
                                                     list(self.padding), list(self.stride),
                                                     list(self.dilation), 1)
        return super().forward(x)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3x3 convolutions with LeakyReLU (no batch norm: one window is one sample)."""
    return nn.Sequential(
        Conv3d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
        Conv3d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
    )


def maxpool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 spatial max pooling of (N, C, T, H, W), H and W even (10x faster than
    ``F.max_pool3d`` on the CPU, which also computes indices)."""
    return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                         torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest 2x spatial upsampling of (N, C, T, H, W)."""
    n, c, t, h, w = x.shape
    return x[:, :, :, :, None, :, None].expand(n, c, t, h, 2, w, 2).reshape(n, c, t, 2 * h, 2 * w)


def space_to_depth(x: torch.Tensor, s: int) -> torch.Tensor:
    """(N, C, T, H, W) -> (N, C*s*s, T, H/s, W/s): each s x s patch becomes channels."""
    if s == 1:
        return x
    n, c, t, h, w = x.shape
    x = x.reshape(n, c, t, h // s, s, w // s, s).permute(0, 1, 4, 6, 2, 3, 5)
    return x.reshape(n, c * s * s, t, h // s, w // s)


def depth_to_space(x: torch.Tensor, s: int) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`."""
    if s == 1:
        return x
    n, cs, t, h, w = x.shape
    c = cs // (s * s)
    x = x.reshape(n, c, s, s, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)
    return x.reshape(n, c, t, h * s, w * s)


MASK_BIAS_INIT = -4.0  # untrained flare-mask head: sigmoid(-4) = 0.018, far below any keep threshold


class ResidualUNet3D(nn.Module):
    """``forward(v) = v + residual(v)``; ``residual`` is exactly zero before training.

    ``residual``: space-to-depth by ``stem`` (a stride-``stem`` first layer that loses no
    input: each ``stem x stem`` patch of cells becomes ``stem**2`` channels), a 3D U-Net with
    ``channels`` feature maps per level (3x3x3 convolutions, 2x spatial max pooling,
    upsampling + skip concatenation), a zero-initialised 1x1x1 head to ``stem**2`` channels,
    depth-to-space back to full cell resolution. Running the U-Net at 1/``stem`` resolution
    with 8+ channels keeps oneDNN's vector units busy; 1-4 channel convolutions at full
    resolution cost as much time for a fraction of the work.

    Optional (``config.mask_head``): a second 1x1x1 head on the same decoder features gives
    per-cell-bin flare logits (output channel 1; the decode applies the sigmoid). It starts
    with zero weights and bias ``MASK_BIAS_INIT``, so the untrained model flags no flare.
    ``config.in_channels == 2`` adds the unsigned event count as a second input channel
    (ON and OFF events of a flickering source cancel in the signed grid, not in the count).
    """

    def __init__(self, config: UNet3DConfig = UNet3DConfig()):
        super().__init__()
        self.config = config
        widths = [int(c) for c in config.channels]
        s2 = config.stem ** 2
        self.down = nn.ModuleList([_block(config.in_channels * s2, widths[0])] +
                                  [_block(widths[i - 1], widths[i]) for i in range(1, len(widths))])
        # 1x1x1 channel reduction at the coarse level, then nearest 2x upsampling
        self.up = nn.ModuleList([Conv3d(widths[i], widths[i - 1], 1)
                                 for i in range(len(widths) - 1, 0, -1)])
        self.merge = nn.ModuleList([_block(2 * widths[i - 1], widths[i - 1])
                                    for i in range(len(widths) - 1, 0, -1)])
        self.head = Conv3d(widths[0], s2, 1)
        nn.init.zeros_(self.head.weight)  # zero-initialised residual: identity at the start
        nn.init.zeros_(self.head.bias)
        self.flare_head = Conv3d(widths[0], s2, 1) if config.mask_head else None
        if self.flare_head is not None:
            nn.init.zeros_(self.flare_head.weight)
            nn.init.constant_(self.flare_head.bias, MASK_BIAS_INIT)

    @property
    def multiple(self) -> int:
        """H and W of ``residual``'s input must be multiples of this."""
        return self.config.stem * 2 ** self.config.levels

    @property
    def out_channels(self) -> int:
        """1 (clean grid) or 2 (clean grid, flare logits)."""
        return 2 if self.config.mask_head else 1

    def features(self, v: torch.Tensor) -> torch.Tensor:
        """Decoder features at 1/``stem`` resolution for ``v`` (N, in_channels, bins, H, W)."""
        x = space_to_depth(v.clamp(-self.config.input_clip, self.config.input_clip), self.config.stem)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = maxpool2(x)
            x = block(x)
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([upsample2(up(x)), skip], dim=1))
        return x

    def residual(self, v: torch.Tensor) -> torch.Tensor:
        """The learned correction for ``v`` (N, in_channels, bins, H, W); H, W multiples of ``multiple``."""
        return depth_to_space(self.head(self.features(v)), self.config.stem)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """(N, out_channels, bins, H, W) for ``v`` (N, in_channels, bins, H, W), any H and W
        (padded and cropped here): channel 0 the clean grid ``v[:, :1] + residual``, channel 1
        (mask head only) the flare logits."""
        h, w = v.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(v, (0, pw, 0, ph)) if (ph or pw) else v
        feats = self.features(x)
        out = x[:, :1] + depth_to_space(self.head(feats), self.config.stem)
        if self.flare_head is not None:
            out = torch.cat([out, depth_to_space(self.flare_head(feats), self.config.stem)], dim=1)
        return out[..., :h, :w] if (ph or pw) else out
