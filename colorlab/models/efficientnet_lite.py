"""EfficientNet-Lite0 in plain torch: timm's ``efficientnet_lite0`` classifier and its ``features_only`` pyramid.

Why hand-written: importing timm costs about 2.4 s, 1.65 s of it torchvision (``timm.layers`` imports
``torchvision.ops.misc`` unguarded, and ``torchvision.ops.roi_align`` imports ``torch._dynamo``), and the one-shot
``colorize`` of a 12 MP photo with the ``unet_effnet`` checkpoint has a 3 s budget. EfficientNet-Lite0 is the
encoder colorlab ships weights for, and it is ~100 lines: ReLU6, symmetric padding, no squeeze-excite.

Equal to timm's, which the tests check against timm itself: the same module names and state-dict keys (every
checkpoint and the packaged ImageNet file load unchanged, strict), the same outputs, and the same initialisation
drawing the same random numbers in the same order (a seeded run builds the same net as it did with timm).
Any other encoder name, or a timm option beyond ``out_indices``, is still built by timm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# One row per stage: block kind, repeats, kernel, stride of the first block, expansion, output channels
# (timm's arch_def ds_r1_k3_s1_e1_c16, ir_r2_k3_s2_e6_c24, ...; depth and width multipliers 1.0).
STAGES = [("ds", 1, 3, 1, 1, 16), ("ir", 2, 3, 2, 6, 24), ("ir", 2, 5, 2, 6, 40), ("ir", 3, 3, 2, 6, 80),
          ("ir", 3, 5, 1, 6, 112), ("ir", 4, 5, 2, 6, 192), ("ir", 1, 3, 1, 6, 320)]  # fmt: skip
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
FEATURE_STAGES = (0, 1, 2, 4, 6)  # the last stage of each stride 2, 4, 8, 16, 32: the pyramid's 5 levels


# ---- layers -------------------------------------------------------------------------------------------


def conv(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """Bias-free convolution with timm's symmetric padding (``k // 2`` for the odd kernels used here)."""
    return nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False)


class BatchNormReLU6(nn.BatchNorm2d):
    """BatchNorm then ReLU6 in one layer: timm's ``BatchNormAct2d`` (a BatchNorm2d subclass, so its keys are a
    BatchNorm's and code that looks for BatchNorm layers finds it)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class DepthwiseSeparable(nn.Module):
    """Depthwise conv, BatchNorm + ReLU6, pointwise conv, BatchNorm (timm's ``DepthwiseSeparableConv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = conv(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.bn1 = BatchNormReLU6(in_channels)
        self.conv_pw = conv(in_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.bn1(self.conv_dw(x))))
        return y + x if self.has_skip else y


class InvertedResidual(nn.Module):
    """MobileNetV2's block: pointwise expansion, depthwise conv, linear pointwise projection (+ the input when
    the shape is kept), as timm's ``InvertedResidual`` without squeeze-excite."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = in_channels * expansion
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_pw = conv(in_channels, mid)
        self.bn1 = BatchNormReLU6(mid)
        self.conv_dw = conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = BatchNormReLU6(mid)
        self.conv_pwl = conv(mid, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv_pwl(self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))))
        return y + x if self.has_skip else y


def init_weights(net: nn.Module) -> None:
    """timm's EfficientNet initialisation (TensorFlow's): conv weights normal with std sqrt(2 / fan_out),
    fan_out counted per group; BatchNorm 1 and 0; the classifier uniform in +-1/sqrt(out_features)."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.weight.shape[0])
            nn.init.uniform_(module.weight, -bound, bound)
            nn.init.zeros_(module.bias)


# ---- nets ---------------------------------------------------------------------------------------------


class FeatureInfo:
    """What colorlab reads of timm's ``FeatureInfo``: per returned level, channels, stride and module name."""

    def __init__(self, levels: Sequence[tuple[int, int, str]]) -> None:
        self.levels = list(levels)

    def channels(self) -> list[int]:
        return [c for c, _, _ in self.levels]

    def reduction(self) -> list[int]:
        return [r for _, r, _ in self.levels]

    def module_name(self) -> list[str]:
        return [m for _, _, m in self.levels]


class _Trunk(nn.Module):
    """Stem (``conv_stem``, ``bn1``) and the 7 stages (``blocks.0`` ... ``blocks.6``), registered in forward
    order (frozen stages are counted in that order, see :class:`colorlab.models.blocks.TimmEncoder`)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_stem = conv(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = BatchNormReLU6(STEM_CHANNELS)
        # timm's builder builds and discards a squeeze-excite probe here (two 8 -> 8 1x1 convs with bias): drawing
        # the same random numbers keeps a seeded net, and whatever is initialised after it, identical to timm's.
        nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)
        stages, channels, stride_so_far = [], STEM_CHANNELS, 2
        self.stage_strides: list[int] = []  # the output stride of each stage
        for kind, repeats, kernel, stride, expansion, out in STAGES:
            blocks: list[nn.Module] = []
            for i in range(repeats):
                block_stride = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(channels, out, kernel, block_stride))
                else:
                    blocks.append(InvertedResidual(channels, out, kernel, block_stride, expansion))
                channels = out
            stages.append(nn.Sequential(*blocks))
            stride_so_far *= stride
            self.stage_strides.append(stride_so_far)
        self.blocks = nn.Sequential(*stages)


class EfficientNetLite0Features(_Trunk):
    """``timm.create_model("efficientnet_lite0", features_only=True, out_indices=...)`` in plain torch.

    ImageNet-normalised RGB ``(B, 3, H, W)`` -> the feature maps of the levels in ``out_indices``, shallow to
    deep; level ``i`` has stride ``2 ** (i + 1)`` and 16, 24, 40, 112, 320 channels for ``i`` = 0 ... 4.
    """

    def __init__(self, out_indices: Sequence[int] = (0, 1, 2, 3, 4)) -> None:
        super().__init__()
        if not out_indices or any(i not in range(len(FEATURE_STAGES)) for i in out_indices):
            raise ValueError(f"out_indices must be levels in 0..{len(FEATURE_STAGES) - 1}, got {out_indices}")
        stages = [FEATURE_STAGES[i] for i in sorted(set(out_indices))]
        channels = [STAGES[s][-1] for s in stages]
        levels = [(c, self.stage_strides[s], f"blocks.{s}") for c, s in zip(channels, stages)]
        self.feature_info = FeatureInfo(levels)
        self.out_stages = set(stages)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        features = []
        # fewer than 7 stages when the blocks past the last level were dropped (blocks.drop_blocks_after_last_feature)
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if i in self.out_stages:
                features.append(x)
        return features


class EfficientNetLite0(_Trunk):
    """``timm.create_model("efficientnet_lite0")`` in plain torch: ImageNet-normalised RGB ``(B, 3, H, W)`` ->
    1000 ImageNet logits; the head (``conv_head``, ``bn2``, ``global_pool``, ``classifier``) as timm names it."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv_head = conv(STAGES[-1][-1], HEAD_CHANNELS)
        self.bn2 = BatchNormReLU6(HEAD_CHANNELS)
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.bn1(self.conv_stem(x)))
        return self.classifier(self.global_pool(self.bn2(self.conv_head(x))))
