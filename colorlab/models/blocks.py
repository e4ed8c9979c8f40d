"""The pieces every colorization net is built from, written once.

The net protocol (what inference, export and the approaches rely on):

- ``forward`` takes normalised L ``(B, 1, H, W)`` of ANY H, W; a net pads internally to its ``multiple``
  (the factor its H and W must divide, declared as an ``int`` attribute) and crops back.
- Its last layer is an :class:`OutputHead`, zero-initialised, so an untrained net answers the neutral
  colour (ab 0, a zero restoration residual; approaches with other neutral answers set the head's bias).
- A pretrained encoder is a :class:`TimmEncoder` (or declares ``pretrained``), so approaches can give it its
  own learning rate (see :func:`pretrained_encoders`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorlab.models.efficientnet_lite import EfficientNetLite0Features
from colorlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, load_pretrained_timm

# ---- layers -------------------------------------------------------------------------------------------

_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "none": nn.Identity,
    None: nn.Identity,
}


def activation(name: str | None) -> nn.Module:
    """An activation by name: ``relu``, ``leaky_relu`` (slope 0.2), ``tanh`` (ab in [-1, 1]), ``sigmoid``
    (RGB in [0, 1]) or ``none``/``None``."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(map(str, _ACTIVATIONS))}")
    return _ACTIVATIONS[name]()


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel: int = 3,
    stride: int = 1,
    norm: bool = True,
    act: str | None = "relu",
) -> nn.Sequential:
    """Convolution (same padding, optionally strided), BatchNorm (``norm``), activation: the one conv unit."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=not norm)
    ]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers, activation(act))


class ConvBlock(nn.Sequential):
    """Two :func:`conv_norm_act` units (the first optionally strided)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, act: str = "relu") -> None:
        super().__init__(
            conv_norm_act(in_channels, out_channels, stride=stride, act=act),
            conv_norm_act(out_channels, out_channels, act=act),
        )


class OutputHead(nn.Sequential):
    """A net's last convolution and output activation, zero-initialised: an untrained net outputs
    ``activation(0)`` everywhere (ab 0 under ``tanh``), the neutral answer (issue 9: with default-initialised
    heads the experiment YAMLs started at a mean |ab| of up to 18 Lab units and a CIEDE2000 up to 13 worse
    than gray, on 33 validation photos at 64 px)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int = 1, final_activation: str | None = "tanh"
    ):
        conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
        super().__init__(conv, activation(final_activation))

    @property
    def conv(self) -> nn.Conv2d:
        """The output convolution (its bias sets the untrained output)."""
        return self[0]


def output_head(net: nn.Module) -> OutputHead:
    """The one :class:`OutputHead` of ``net`` (error if it has none or several)."""
    heads = [m for m in net.modules() if isinstance(m, OutputHead)]
    if len(heads) != 1:
        raise ValueError(
            f"{type(net).__name__} has {len(heads)} OutputHead layers; the approach needs exactly one"
        )
    return heads[0]


# ---- sizes --------------------------------------------------------------------------------------------


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple (so any photo size fits a strided encoder); returns the pad."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (pad_h, pad_w)


def crop_padding(x: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    pad_h, pad_w = pad
    return x[..., : x.shape[-2] - pad_h, : x.shape[-1] - pad_w]


# ---- encoders -----------------------------------------------------------------------------------------


class ImageNetNormalize(nn.Module):
    """sRGB ``(B, 3, H, W)`` in [0, 1] -> the ImageNet-normalised input of a pretrained network."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return (rgb - self.mean) / self.std


class GrayToImageNet(ImageNetNormalize):
    """Normalised L ``(B, 1, H, W)`` in [-1, 1] -> ImageNet-normalised gray RGB ``(B, 3, H, W)``.

    The gray level is ``L / 100``, a linear stand-in for the sRGB gray of L (both are perceptual lightness
    scales; an exact Lab -> sRGB conversion would cost a full colour conversion per forward pass).
    """

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        return super().forward(((L + 1) / 2).expand(-1, 3, -1, -1))


def timm_pyramid(
    encoder_name: str, pretrained: bool = False, weights_path: str | None = None, **kwargs: Any
) -> nn.Module:
    """A timm ``features_only`` model, with local ImageNet weights when ``pretrained`` (never a download).

    ``efficientnet_lite0`` (with at most ``out_indices``) is colorlab's plain-torch copy, equal to timm's in keys,
    outputs and initialisation (:mod:`colorlab.models.efficientnet_lite`): importing timm would cost ~2.4 s of
    the 3 s a one-shot ``colorize`` may take. Any other encoder imports timm here, when it is built.
    """
    if encoder_name == "efficientnet_lite0" and set(kwargs) <= {"out_indices"}:
        net: nn.Module = EfficientNetLite0Features(**kwargs)
    else:
        import timm

        net = timm.create_model(encoder_name, pretrained=False, features_only=True, **kwargs)
    if pretrained:
        load_pretrained_timm(net, encoder_name, weights_path)
    drop_blocks_after_last_feature(net)
    return net


def drop_blocks_after_last_feature(net: nn.Module) -> None:
    """Remove the blocks a feature net builds past its last returned level.

    timm's EfficientNet/MobileNet feature nets build and run every block whatever ``out_indices`` asks for, so
    ``out_indices=(2,)`` kept 99 of ChromaGAN's trunk tensors trainable but never used: wasted compute and memory,
    and DDP (which expects every trainable parameter to get a gradient) fails on them. Checkpoints saved with the
    unused blocks still load: their keys are ignored.
    """
    blocks, last = getattr(net, "blocks", None), net.feature_info.module_name()[-1]
    if not isinstance(blocks, nn.Sequential) or not last.startswith("blocks."):
        return  # timm's FeatureListNet (ResNets, ...) already stops at the last returned level
    keep = int(last.split(".")[1]) + 1
    if keep == len(blocks):
        return
    net.blocks = blocks[:keep]

    def ignore_dropped(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for key in [k for k in state_dict if k.startswith(f"{prefix}blocks.")]:
            if int(key[len(prefix) + len("blocks.") :].split(".")[0]) >= keep:
                del state_dict[key]

    net.register_load_state_dict_pre_hook(ignore_dropped)


class TimmEncoder(nn.Module):
    """THE pretrained encoder pyramid: gray L in, the features of a timm ``features_only`` net out.

    Args:
        encoder_name: any timm model that supports ``features_only`` (EfficientNet-Lite0 loads offline, and is
            built without importing timm: see :func:`timm_pyramid`).
        pretrained: load local ImageNet weights (see :mod:`colorlab.models.pretrained`).
        weights_path: explicit weight file; otherwise the offline search order applies.
        frozen_stages: keep the first N pyramid levels (stem included) at their pretrained values, BatchNorm
            statistics too, whatever ``requires_grad_`` later asks (as mmdetection's ``frozen_stages``). Their
            low-level features need no colour-specific change, and no gradient flows through the
            highest-resolution layers: 3 levels made a 128 px ``unet_effnet`` step 1.34x faster.
        **kwargs: for ``timm.create_model``, e.g. ``out_indices=(2,)`` or ``channels=[...]``.
    """

    def __init__(
        self, encoder_name: str = "efficientnet_lite0", pretrained: bool = False, weights_path: str | None = None,
        frozen_stages: int = 0, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        self.pretrained = pretrained
        self.input = GrayToImageNet()
        self.net = timm_pyramid(encoder_name, pretrained, weights_path, **kwargs)
        self.channels: list[int] = self.net.feature_info.channels()
        self.reductions: list[int] = self.net.feature_info.reduction()
        self.multiple = max(self.reductions)
        if not 0 <= frozen_stages <= len(self.channels):
            raise ValueError(f"frozen_stages must be in [0, {len(self.channels)}], got {frozen_stages}")
        self.frozen_stages = frozen_stages
        self.requires_grad_(True)

    def frozen_parameter_names(self) -> set[str]:
        """Names (in ``self.net``) of the parameters of the first ``frozen_stages`` levels and everything
        registered before them (the stem): timm nets register their layers in forward order."""
        if self.frozen_stages == 0:
            return set()
        last = self.net.feature_info.module_name()[self.frozen_stages - 1]
        names = [name for name, _ in self.net.named_parameters()]
        end = max(i for i, name in enumerate(names) if name.startswith(f"{last}."))
        return set(names[: end + 1])

    def requires_grad_(self, requires_grad: bool = True) -> TimmEncoder:
        """As ``nn.Module.requires_grad_``, but the frozen stages stay frozen."""
        super().requires_grad_(requires_grad)
        frozen = self.frozen_parameter_names()
        for name, parameter in self.net.named_parameters():
            if name in frozen:
                parameter.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> TimmEncoder:
        """As ``nn.Module.train``, but BatchNorm layers with frozen weights keep their statistics (eval)."""
        super().train(mode)
        for module in self.net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None:
                module.train(mode and module.weight.requires_grad)
        return self

    def forward(self, L: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 1, H, W)`` normalised L (H, W multiples of ``multiple``) -> feature maps, shallow to deep."""
        return self.net(self.input(L))


class ConvEncoder(nn.Module):
    """An encoder pyramid trained from scratch: a full-resolution :class:`ConvBlock`, then one stage per
    further width that halves H and W (``pool``: max-pool then a ConvBlock, the classic U-Net; ``stride``:
    a ConvBlock whose first conv has stride 2).

    Args:
        in_channels: input channels.
        widths: channels of each level, full resolution first.
        downsample: ``pool`` or ``stride``.
        act: activation of every conv unit (``relu`` or ``leaky_relu``).
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int], downsample: str = "pool", act: str = "relu"
    ) -> None:
        super().__init__()
        if downsample not in ("pool", "stride"):
            raise ValueError(f"downsample must be 'pool' or 'stride', got {downsample!r}")
        stages: list[nn.Module] = [ConvBlock(in_channels, widths[0], act=act)]
        for cin, cout in pairwise(widths):
            if downsample == "pool":
                stages.append(nn.Sequential(nn.MaxPool2d(2), ConvBlock(cin, cout, act=act)))
            else:
                stages.append(ConvBlock(cin, cout, stride=2, act=act))
        self.stages = nn.ModuleList(stages)
        self.channels = list(widths)
        self.multiple = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, C, H, W)`` -> one feature map per level, full resolution first."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def pretrained_encoders(module: nn.Module) -> list[nn.Module]:
    """The submodules of ``module`` that hold pretrained encoder weights (``pretrained`` set to True)."""
    return [m for m in module.modules() if getattr(m, "pretrained", None) is True and m is not module]


# ---- the U-Net skeleton -------------------------------------------------------------------------------


def _is_nhwc(t: torch.Tensor) -> bool:
    """Whether ``t`` is a 4-d map stored channels-last by its strides (channel stride 1, as a 1-channel
    channels-last tensor has; a contiguous 1-channel map counts as both layouts to torch)."""
    return t.dim() == 4 and t.stride(1) == 1 and t.is_contiguous(memory_format=torch.channels_last)


def cat_channels(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(tensors, dim=1)``, channels-last when any input is.

    ``torch.cat`` returns NCHW when one input's layout is ambiguous (a 1-channel skip such as L, a broadcast
    latent), and the next conv then copies it to channels-last and back: the full-resolution stage of the
    128 px ``unet_effnet`` ran 2x slower forward + backward. Exported graphs (ONNX, TorchScript) have no
    layout, so tracing gets the plain ``torch.cat``.
    """
    exporting = torch.jit.is_tracing() or torch.compiler.is_exporting()
    if not exporting and any(_is_nhwc(t) and t.shape[1] > 1 for t in tensors):
        tensors = [t if _is_nhwc(t) else torch.empty_like(t, memory_format=torch.channels_last).copy_(t)
                   for t in tensors]  # fmt: skip
    return torch.cat(list(tensors), dim=1)


class UpBlock(nn.Module):
    """Upsample to the skip's size, concatenate the skip, then a ConvBlock (a U-Net decoder stage)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBlock(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(cat_channels([x, skip]))


def input_skip_widths(
    channels: Sequence[int], decoder_channels: Sequence[int], in_channels: int
) -> tuple[list[int], list[int]]:
    """For a pyramid whose shallowest level is already downsampled (a timm net's), the input and skip widths of
    each decoder stage, deepest first, when the input itself is the last, full-resolution skip."""
    if len(decoder_channels) != len(channels):
        raise ValueError(f"decoder_channels needs {len(channels)} entries (one per encoder level)")
    return [channels[-1], *decoder_channels[:-1]], [*channels[-2::-1], in_channels]


class UNetSkeleton(nn.Module):
    """The one U-Net: pad -> encoder pyramid -> [bottleneck] -> decoder stages with skips -> head -> crop.

    ``encode(x)`` returns feature maps shallow to deep; the deepest starts the decoder, the others are its
    skips, deepest first. Each decoder stage is called ``stage(y, skip, *condition)`` and the bottleneck
    ``bottleneck(y, *condition)``, so a latent code (VAE) or a style vector (BigColor) reaches every scale.

    Args:
        encoder: a pyramid (:class:`ConvEncoder`, :class:`TimmEncoder`) with a ``multiple``.
        decoder: one stage per skip.
        head: the :class:`OutputHead` (possibly after other layers).
        bottleneck: optional module applied to the deepest features.
        input_skip: the input itself leads the feature maps: the full-resolution skip of a pyramid whose first
            level is already downsampled (see :func:`input_skip_widths`), so fine edges follow it.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: Sequence[nn.Module],
        head: nn.Module,
        bottleneck: nn.Module | None = None,
        input_skip: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.bottleneck = bottleneck
        self.decoder = nn.ModuleList(decoder)
        self.head = head
        self.input_skip = input_skip
        self.multiple: int = encoder.multiple

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps, shallow to deep (led by the input itself with ``input_skip``)."""
        return [x, *self.encoder(x)] if self.input_skip else self.encoder(x)

    def forward(self, x: torch.Tensor, *condition: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` for any H, W (and the condition, if any) -> ``(B, out_channels, H, W)``."""
        x, pad = pad_to_multiple(x, self.multiple)
        skips = self.encode(x)
        y = skips.pop()
        if self.bottleneck is not None:
            y = self.bottleneck(y, *condition)
        for stage in self.decoder:
            y = stage(y, skips.pop(), *condition)
        return crop_padding(self.head(y), pad)
