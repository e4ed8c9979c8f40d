"""ESRGAN's RRDBNet super-resolution generator (Wang et al. 2018), ×2 and ×4.

The module names and parameter keys follow the published RRDBNet of BasicSR / Real-ESRGAN (``conv_first``,
``body.N.rdb1.conv1``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so their
weight files load with :func:`load_rrdb_weights`; ×2 reads a pixel-unshuffled input as Real-ESRGAN's ×2
does. The defaults are CPU-sized (4 blocks of 32 features instead of 23 of 64).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# The original ESRGAN repository's names for the same tensors (RRDB_ESRGAN_x4.pth and its descendants).
_ESRGAN_RENAMES = (
    (r"^RRDB_trunk\.", "body."),
    (r"\.RDB(\d)\.", r".rdb\1."),
    (r"^trunk_conv\.", "conv_body."),
    (r"^upconv1\.", "conv_up1."),
    (r"^upconv2\.", "conv_up2."),
    (r"^HRconv\.", "conv_hr."),
)


def _scale_init(modules: list[nn.Module], factor: float) -> None:
    # ESRGAN's residual scaling at init: Kaiming-normal weights times 0.1 keep a deep residual stack stable.
    for module in modules:
        nn.init.kaiming_normal_(module.weight)
        module.weight.data.mul_(factor)
        nn.init.zeros_(module.bias)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions; the output is scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        _scale_init([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(self.lrelu(conv(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """RRDB generator: ``(B, C_in, H, W)`` in [0, 1] -> ``(B, C_out, scale*H, scale*W)``.

    Args:
        num_in_ch: input channels (1 for gray L, 3 for the published RGB weights).
        num_out_ch: output channels.
        scale: 2 or 4; ×2 pixel-unshuffles its input (H and W must be even: see ``multiple``).
        num_feat: feature channels (published: 64).
        num_block: RRDB blocks (published: 23; Real-ESRGAN's anime model: 6).
        num_grow_ch: growth channels of the dense blocks (published: 32).
        zero_last: start ``conv_last`` at zero, so a residual wrapper begins at its baseline (bicubic).
    """

    def __init__(
        self,
        num_in_ch: int = 1,
        num_out_ch: int = 1,
        scale: int = 2,
        num_feat: int = 32,
        num_block: int = 4,
        num_grow_ch: int = 16,
        zero_last: bool = False,
    ) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"RRDBNet scale must be 2 or 4, got {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        # Input sides must divide by this (the ×2 model folds 2x2 pixels into channels).
        self.multiple = 2 if scale == 2 else 1
        self.conv_first = nn.Conv2d(num_in_ch * self.multiple**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        if zero_last:
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(f"RRDBNet expects (B, {self.num_in_ch}, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"RRDBNet x2 needs even H and W, got {tuple(x.shape[-2:])}; pad first")
        feat = F.pixel_unshuffle(x, 2) if self.scale == 2 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def rrdb_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The RRDBNet weights in a local ESRGAN / Real-ESRGAN file, under the published key names.

    Reads ``params_ema`` (Real-ESRGAN's EMA weights) before ``params``, else the file's own dict; strips a
    ``module.`` (DataParallel) prefix and renames the original ESRGAN keys (``RRDB_trunk.0.RDB1``...).
    Raises FileNotFoundError naming the file when it is missing.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"RRDBNet weight file not found: {path} (colorlab never downloads weights; "
                                "put the .pth file there or fix the path)")  # fmt: skip
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("params_ema", "params", "state_dict"):
        if isinstance(data, dict) and key in data:
            data = data[key]
            break
    state = {}
    for key, value in data.items():
        key = key.removeprefix("module.")
        for pattern, replacement in _ESRGAN_RENAMES:
            key = re.sub(pattern, replacement, key)
        state[key] = value
    return state


def load_rrdb_weights(net: RRDBNet, path: str | os.PathLike) -> RRDBNet:
    """Load a local ESRGAN / Real-ESRGAN weight file into ``net`` (strict: the sizes must match).

    Raises FileNotFoundError naming a missing file, ValueError naming a file whose layout differs.
    """
    try:
        net.load_state_dict(rrdb_state_dict(path))
    except RuntimeError as exc:
        layout = f"scale={net.scale}, num_in_ch={net.num_in_ch}, num_feat={net.conv_first.out_channels}, " \
                 f"num_block={len(net.body)}"  # fmt: skip
        raise ValueError(f"{path} does not fit RRDBNet({layout}): {exc}") from exc
    return net


def rrdbnet_from_weights(path: str | os.PathLike) -> RRDBNet:
    """An :class:`RRDBNet` sized like the weight file at ``path`` (×2 or ×4), with its weights loaded."""
    state = rrdb_state_dict(path)
    try:
        first, grow = state["conv_first.weight"], state["body.0.rdb1.conv1.weight"]
        blocks = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("body."))
        out_ch = state["conv_last.weight"].shape[0]
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{path} does not hold RRDBNet weights (missing {exc})") from exc
    # ×4 reads the picture itself; ×2 a pixel-unshuffled one with 4 times the channels.
    scale = 4 if first.shape[1] == out_ch else 2
    in_ch = first.shape[1] if scale == 4 else first.shape[1] // 4
    net = RRDBNet(in_ch, out_ch, scale, num_feat=first.shape[0], num_block=blocks, num_grow_ch=grow.shape[0])
    return load_rrdb_weights(net, path)
