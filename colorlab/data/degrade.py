"""Degradations of old photos, applied to the model's INPUT only (the target stays clean).

Every degradation maps a uint8 image ``(C, H, W)`` (C = 3 or 1) to a uint8 image of the same shape,
fires with probability ``p`` and draws its strength uniformly from a ``[low, high]`` range (a single
number fixes it). All randomness comes from the ``generator`` argument (a ``torch.Generator`` or an int
seed), so the same seed always gives the same picture; ``None`` uses torch's global RNG, which
DataLoader seeds differently in every worker and epoch. Noise amplitudes are in 0-255 pixel units.

A pipeline is a list in the experiment YAML::

    degradations:
      - class_path: colorlab.data.degrade.GaussianNoise
        init_args: {p: 0.5, sigma: [5, 25]}
      - class_path: colorlab.data.degrade.JPEG
        init_args: {p: 0.5, quality: [20, 60]}
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

Range = float | Sequence[float]
Seed = torch.Generator | int | None


# ---- helpers ------------------------------------------------------------------------------------------


def as_generator(generator: Seed) -> torch.Generator | None:
    """An int seed becomes a fresh CPU generator; a generator (or None: global RNG) passes through."""
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    return generator


def _check_range(value: Range, name: str, low: float = 0.0, high: float = math.inf) -> tuple[float, float]:
    lo, hi = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name} must be a number or [low, high] within [{low}, {high}], got {value}")
    return float(lo), float(hi)


def _uniform(bounds: tuple[float, float], generator: torch.Generator | None) -> float:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(1, generator=generator).item()


def _check_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be uint8 (3 or 1, H, W), got {image.dtype} {tuple(image.shape)}")


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a float ``(C, H, W)`` tensor; the 3-sigma kernel is capped so reflect padding fits."""
    largest = 2 * min(x.shape[-2:]) - 1
    size = min(2 * math.ceil(3 * sigma) + 1, largest if largest % 2 else largest - 1)
    return TF.gaussian_blur(x, kernel_size=[size, size], sigma=[sigma, sigma])


class Degradation(ABC):
    """Base: fires with probability ``p``; subclasses implement :meth:`apply`.

    Args:
        p: probability that the degradation is applied to an image.
    """

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.p = p

    def __call__(self, image: torch.Tensor, generator: Seed = None) -> torch.Tensor:
        """uint8 ``(C, H, W)`` -> degraded uint8 ``(C, H, W)`` (unchanged when it does not fire)."""
        _check_image(image)
        generator = as_generator(generator)
        # Always draw the coin, so the random stream does not depend on p.
        if torch.rand(1, generator=generator).item() >= self.p:
            return image
        return self.apply(image, generator)

    @abstractmethod
    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The degradation itself (always applied): uint8 ``(C, H, W)`` -> uint8 ``(C, H, W)``."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _noise_shape(image: torch.Tensor, per_channel: bool) -> tuple[int, int, int]:
    # Film grain of a gray photo is the same in every channel: shared noise only changes luminance.
    return (image.shape[0] if per_channel else 1, *image.shape[-2:])


# ---- noise --------------------------------------------------------------------------------------------


class _GaussianField(Degradation):
    """A gaussian noise field of a random standard deviation in ``sigma``, combined with the image by
    :meth:`combine`; one gray field, or one per colour channel (chroma noise)."""

    def __init__(self, p: float, sigma: Range, per_channel: bool) -> None:
        super().__init__(p)
        self.sigma = _check_range(sigma, "sigma")
        self.per_channel = per_channel

    @abstractmethod
    def combine(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The float image with the noise field applied."""

    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        sigma = _uniform(self.sigma, generator)
        noise = torch.randn(_noise_shape(image, self.per_channel), generator=generator) * sigma
        return _to_uint8(self.combine(image.float(), noise))


class GaussianNoise(_GaussianField):
    """Additive white gaussian noise.

    Args:
        p: probability of applying it.
        sigma: noise standard deviation range, in 0-255 units.
        per_channel: independent noise per colour channel (chroma noise) instead of one gray field.
    """

    def __init__(self, p: float = 1.0, sigma: Range = (5.0, 25.0), per_channel: bool = False) -> None:
        super().__init__(p, sigma, per_channel)

    def combine(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return image + noise


class SaltPepper(Degradation):
    """Impulse noise: a share ``amount`` of pixels set to white (salt) or black (pepper).

    Args:
        p: probability of applying it.
        amount: range of the share of corrupted pixels, in [0, 1].
        salt_ratio: share of the corrupted pixels that become white.
    """

    def __init__(self, p: float = 1.0, amount: Range = (0.005, 0.03), salt_ratio: float = 0.5) -> None:
        super().__init__(p)
        self.amount = _check_range(amount, "amount", high=1.0)
        if not 0.0 <= salt_ratio <= 1.0:
            raise ValueError(f"salt_ratio must be in [0, 1], got {salt_ratio}")
        self.salt_ratio = salt_ratio

    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        amount = _uniform(self.amount, generator)
        u = torch.rand(1, *image.shape[-2:], generator=generator)
        # u < amount marks a hit; its position within [0, amount) decides salt or pepper.
        salt = u < amount * self.salt_ratio
        pepper = (u >= amount * self.salt_ratio) & (u < amount)
        out = image.clone()
        out.masked_fill_(salt.expand_as(image), 255)
        out.masked_fill_(pepper.expand_as(image), 0)
        return out


class SpeckleNoise(_GaussianField):
    """Multiplicative noise ``x * (1 + n)``, ``n ~ N(0, sigma)``: stronger in bright areas.

    Args:
        p: probability of applying it.
        sigma: range of the relative noise standard deviation (0.1 = 10 % of the pixel value).
        per_channel: independent noise per colour channel.
    """

    def __init__(self, p: float = 1.0, sigma: Range = (0.05, 0.2), per_channel: bool = False) -> None:
        super().__init__(p, sigma, per_channel)

    def combine(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return image * (1.0 + noise)


class CorrelatedNoise(Degradation):
    """Spatially correlated (blotchy, grain-like) noise: a white gaussian field blurred by ``scale`` pixels,
    rescaled to standard deviation ``sigma``.

    Args:
        p: probability of applying it.
        sigma: range of the noise standard deviation, in 0-255 units.
        scale: range of the correlation length (gaussian blur sigma of the field, pixels).
        per_channel: independent fields per colour channel.
    """

    def __init__(
        self, p: float = 1.0, sigma: Range = (5.0, 20.0), scale: Range = (1.0, 3.0), per_channel: bool = False
    ) -> None:
        super().__init__(p)
        self.sigma = _check_range(sigma, "sigma")
        self.scale = _check_range(scale, "scale", low=0.1)
        self.per_channel = per_channel

    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        sigma, scale = _uniform(self.sigma, generator), _uniform(self.scale, generator)
        field = _blur(torch.randn(_noise_shape(image, self.per_channel), generator=generator), scale)
        field = field / field.std().clamp_min(1e-6)
        return _to_uint8(image.float() + field * sigma)


class StructuredNoise(Degradation):
    """Line and banding noise of scanned or worn prints: a sinusoidal band of random period, phase and
    orientation plus an independent brightness offset per scan line.

    Args:
        p: probability of applying it.
        amplitude: range of the band amplitude, in 0-255 units.
        period: range of the band period, in pixels.
        line_sigma: range of the standard deviation of the per-line offsets, in 0-255 units.
    """

    def __init__(
        self,
        p: float = 1.0,
        amplitude: Range = (4.0, 16.0),
        period: Range = (8.0, 64.0),
        line_sigma: Range = (0.0, 8.0),
    ) -> None:
        super().__init__(p)
        self.amplitude = _check_range(amplitude, "amplitude")
        self.period = _check_range(period, "period", low=1.0)
        self.line_sigma = _check_range(line_sigma, "line_sigma")

    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        amplitude, period = _uniform(self.amplitude, generator), _uniform(self.period, generator)
        phase, line_sigma = _uniform((0.0, 2 * math.pi), generator), _uniform(self.line_sigma, generator)
        rows = torch.rand(1, generator=generator).item() < 0.5
        length = image.shape[-2] if rows else image.shape[-1]
        position = torch.arange(length, dtype=torch.float32)
        profile = amplitude * torch.sin(2 * math.pi * position / period + phase)
        profile = profile + line_sigma * torch.randn(length, generator=generator)
        pattern = profile.view(1, -1, 1) if rows else profile.view(1, 1, -1)
        return _to_uint8(image.float() + pattern)


# ---- blur and compression -----------------------------------------------------------------------------


class GaussianBlur(Degradation):
    """Out-of-focus / soft lens blur (torchvision's gaussian blur).

    Args:
        p: probability of applying it.
        sigma: range of the blur standard deviation, in pixels.
    """

    def __init__(self, p: float = 1.0, sigma: Range = (0.5, 2.0)) -> None:
        super().__init__(p)
        self.sigma = _check_range(sigma, "sigma", low=0.1)

    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return _to_uint8(_blur(image.float(), _uniform(self.sigma, generator)))


class JPEG(Degradation):
    """JPEG compression artefacts (encode + decode with torchvision's libjpeg).

    Args:
        p: probability of applying it.
        quality: range of the JPEG quality, 1 (worst) to 100.
    """

    def __init__(self, p: float = 1.0, quality: Range = (20.0, 60.0)) -> None:
        super().__init__(p)
        self.quality = _check_range(quality, "quality", low=1.0, high=100.0)

    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return TF.jpeg(image, quality=round(_uniform(self.quality, generator)))


class Downscale(Degradation):
    """Loss of resolution: resize down by ``factor`` (antialiased), then back up to the original size.

    Args:
        p: probability of applying it.
        factor: range of the downscaling factor (2 = half the size).
        modes: upsampling interpolations to pick from at random (``nearest``, ``bilinear``, ``bicubic``).
    """

    def __init__(
        self, p: float = 1.0, factor: Range = (1.5, 4.0), modes: Sequence[str] = ("bilinear", "bicubic")
    ) -> None:
        super().__init__(p)
        self.factor = _check_range(factor, "factor", low=1.0)
        if not modes:
            raise ValueError("modes must name at least one interpolation")
        self.modes = [InterpolationMode(mode) for mode in modes]

    def apply(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        factor = _uniform(self.factor, generator)
        mode = self.modes[int(torch.randint(len(self.modes), (1,), generator=generator))]
        size = list(image.shape[-2:])
        small = [max(1, round(s / factor)) for s in size]
        down = TF.resize(image, small, interpolation=InterpolationMode.BILINEAR, antialias=True)
        return TF.resize(down, size, interpolation=mode, antialias=False)


# ---- super-resolution pairs ---------------------------------------------------------------------------


def shrink(image: torch.Tensor, factor: int) -> torch.Tensor:
    """The low-resolution copy of a super-resolution pair: uint8 ``(C, H, W)`` -> ``(C, H/factor, W/factor)``,
    antialiased bicubic (MATLAB ``imresize``'s kernel, the usual SR benchmark downscaler)."""
    _check_image(image)
    if factor < 1 or image.shape[-2] % factor or image.shape[-1] % factor:
        raise ValueError(f"cannot shrink {tuple(image.shape[-2:])} by {factor}: sides must divide by it")
    size = [image.shape[-2] // factor, image.shape[-1] // factor]
    return TF.resize(image, size, interpolation=InterpolationMode.BICUBIC, antialias=True)


# ---- pipeline -----------------------------------------------------------------------------------------


class Degrade:
    """A list of degradations applied in turn (or in a random order per image, as in BSRGAN).

    Args:
        degradations: the degradations, e.g. from the YAML's ``degradations:`` list.
        shuffle: apply them in a random order drawn per image.
    """

    def __init__(self, degradations: Sequence[Degradation], shuffle: bool = False) -> None:
        for item in degradations:
            if not callable(item):
                raise TypeError(f"degradations must be callables (Degradation objects), got {item!r}")
        self.degradations = list(degradations)
        self.shuffle = shuffle

    def __call__(self, image: torch.Tensor, generator: Seed = None) -> torch.Tensor:
        """uint8 ``(C, H, W)`` -> degraded uint8 ``(C, H, W)``."""
        _check_image(image)
        generator = as_generator(generator)
        order = range(len(self.degradations))
        if self.shuffle:
            order = torch.randperm(len(self.degradations), generator=generator).tolist()
        for i in order:
            image = self.degradations[i](image, generator)
        return image

    def __repr__(self) -> str:
        return f"Degrade({self.degradations}, shuffle={self.shuffle})"
