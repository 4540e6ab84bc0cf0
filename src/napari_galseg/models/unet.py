"""A compact U-Net (Ronneberger et al. 2015) with padded convolutions and batch norm.

Padded 3x3 convolutions keep every level the size of its input (no cropping), so a tile's output
lines up pixel for pixel with its input, which is what tiled inference needs. The output has two
channels: a galaxy-probability logit and a logit of the normalised distance to the nearest object
border (1 at an object's core, 0 on its edge); watershed on the second one splits touching galaxies.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

#: output channel indices
FOREGROUND, DISTANCE = 0, 1


class DoubleConv(nn.Sequential):
    """Two (3x3 conv, batch norm, ReLU) blocks; bias-free convs since batch norm adds one."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net with ``depth`` resolution levels; level k has ``base_width * 2**k`` channels.

    Inputs of any size are accepted: they are padded (reflect) to a multiple of ``2**(depth-1)`` and
    the output is cropped back, so ``out.shape[-2:] == x.shape[-2:]``.
    """

    def __init__(self, in_channels: int, out_channels: int = 2, depth: int = 4, base_width: int = 16):
        super().__init__()
        if depth < 1:
            raise ValueError(f"U-Net depth must be >= 1, got {depth}")
        if base_width < 1:
            raise ValueError(f"U-Net base_width must be >= 1, got {base_width}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth, self.base_width = depth, base_width
        widths = [base_width * 2**k for k in range(depth)]
        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.down.append(DoubleConv(channels, width))
            channels = width
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(channels, width, 2, stride=2))
            self.up_conv.append(DoubleConv(2 * width, width))
            channels = width
        self.head = nn.Conv2d(channels, out_channels, 1)

    @property
    def multiple(self) -> int:
        """Spatial sizes divisible by this need no padding."""
        return 2 ** (self.depth - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ny, nx = x.shape[-2:]
        x, skips = _encode(self.down, _pad_to_multiple(x, self.multiple))
        for up, conv in zip(self.up, self.up_conv, strict=True):
            x = up(x)
            x = conv(torch.cat([skips.pop(), x], dim=1))
        return self.head(x)[..., :ny, :nx]

    def fused_for_inference(self) -> InferenceUNet:
        """The same network for inference only, faster on a CPU: see :class:`InferenceUNet`."""
        return InferenceUNet(self)

    def architecture(self) -> dict:
        """The constructor arguments, stored in a model folder's config."""
        return {
            "class": "UNet",
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "depth": self.depth,
            "base_width": self.base_width,
        }


def _encode(down: nn.ModuleList, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The encoder: each level's block after a 2x2 max pool; the deepest map and the others' maps
    (the skips, shallowest first)."""
    skips = []
    for k, block in enumerate(down):
        if k:
            x = F.max_pool2d(x, 2)
        x = block(x)
        skips.append(x)
    return skips.pop(), skips


def _pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """``x`` padded at the bottom and right (reflect, or replicate when too small) to multiples of ``m``."""
    ny, nx = x.shape[-2:]
    pad_y, pad_x = (-ny) % m, (-nx) % m
    if not (pad_y or pad_x):
        return x
    mode = "reflect" if (ny > pad_y and nx > pad_x) else "replicate"
    return F.pad(x, (0, pad_x, 0, pad_y), mode=mode)


class InferenceUNet(nn.Module):
    """A trained :class:`UNet` rearranged for inference: the same function of the input (to float
    rounding), a quarter less CPU time for this small network.

    - each batch norm is folded into the convolution before it (no pass over the feature maps);
    - each decoder block's first convolution, over ``cat([skip, upsampled])``, is split into one
      convolution of the skip and one of the upsampled map, summed: the concatenated copy of both
      maps, costly in channels-last, is never made.

    It cannot be trained (its batch norms are gone); the original network is left as it is.
    """

    def __init__(self, net: UNet):
        super().__init__()
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        net = copy.deepcopy(net).eval()
        for block in net.modules():
            if isinstance(block, DoubleConv):
                for i in range(len(block) - 1):
                    if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                        block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                        block[i + 1] = nn.Identity()
        self.multiple, self.in_channels, self.out_channels = net.multiple, net.in_channels, net.out_channels
        self.down, self.up, self.head = net.down, net.up, net.head
        self.skip_conv, self.up_first, self.up_rest = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for block in net.up_conv:
            first = block[0]
            n_skip = first.in_channels // 2  # cat([skip, upsampled]): the skip's channels come first
            skip = nn.Conv2d(n_skip, first.out_channels, 3, padding=1, bias=first.bias is not None)
            upsampled = nn.Conv2d(first.in_channels - n_skip, first.out_channels, 3, padding=1, bias=False)
            skip.weight.data = first.weight.data[:, :n_skip].clone()
            upsampled.weight.data = first.weight.data[:, n_skip:].clone()
            if first.bias is not None:
                skip.bias.data = first.bias.data.clone()
            self.skip_conv.append(skip)
            self.up_first.append(upsampled)
            self.up_rest.append(nn.Sequential(*list(block)[1:]))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ny, nx = x.shape[-2:]
        x, skips = _encode(self.down, _pad_to_multiple(x, self.multiple))
        for up, skip_conv, up_first, rest in zip(self.up, self.skip_conv, self.up_first, self.up_rest, strict=True):
            y = skip_conv(skips.pop())
            y.add_(up_first(up(x)))
            x = rest(y)
        return self.head(x)[..., :ny, :nx]
