"""Colorization metrics on tensors: PSNR and SSIM from torchmetrics, CIEDE2000, colorfulness (and its gap to
the truth's) here, and a Fréchet distance on offline EfficientNet-Lite0 features.

Every metric reads sRGB images in [0, 1], shape ``(B, 3, H, W)``: the colorized picture a person sees
(L from the input, predicted ab, clipped to the sRGB gamut) against the ground truth.
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure
from torchmetrics.image.fid import FrechetInceptionDistance

from colorlab.color import rgb_to_lab


def delta_e_ciede2000(lab1: torch.Tensor, lab2: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """CIEDE2000 colour difference (Sharma et al. 2005, kL = kC = kH = 1) per pixel.

    Args:
        lab1: CIE Lab ``(*, 3, H, W)`` with L in [0, 100].
        lab2: CIE Lab of the same shape.
        eps: floor under the square roots (and gray below it gets hue 0 without atan2's gradient): > 0 keeps
            gradients finite where two colours are equal or gray, as a loss needs; 0 is the exact metric.

    Returns:
        ``(*, H, W)`` delta E 2000.
    """
    def root(x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x.clamp_min(eps))

    def hue(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        if eps == 0:
            return torch.remainder(torch.atan2(b, a), 2 * math.pi)
        gray = a * a + b * b < eps  # atan2's gradient is 0/0 at the origin: gray gets hue 0, as in the metric
        angle = torch.atan2(torch.where(gray, torch.zeros_like(b), b), torch.where(gray, torch.ones_like(a), a))
        return torch.remainder(torch.where(gray, torch.zeros_like(angle), angle), 2 * math.pi)

    L1, a1, b1 = lab1.unbind(-3)
    L2, a2, b2 = lab2.unbind(-3)
    c_mean = 0.5 * (root(a1 * a1 + b1 * b1) + root(a2 * a2 + b2 * b2))
    c7 = c_mean**7
    g = 0.5 * (1 - root(c7 / (c7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1, c2 = root(a1p * a1p + b1 * b1), root(a2p * a2p + b2 * b2)
    h1, h2 = hue(b1, a1p), hue(b2, a2p)

    l_mean = 0.5 * (L1 + L2)
    sl = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    l_term = (L2 - L1) / sl

    cp_mean = 0.5 * (c1 + c2)
    c_term = (c2 - c1) / (1 + 0.045 * cp_mean)

    cc = c1 * c2
    h_diff = h2 - h1
    dh = h_diff - 2 * math.pi * (h_diff > math.pi).to(h_diff) + 2 * math.pi * (h_diff < -math.pi).to(h_diff)
    dh = torch.where(cc == 0, torch.zeros_like(dh), dh)
    dh_term = 2 * root(cc) * torch.sin(dh / 2)

    h_sum = h1 + h2
    wrap = (cc != 0) & (h_diff.abs() > math.pi)
    h_mean = h_sum + 2 * math.pi * (wrap & (h_sum < 2 * math.pi)).to(h_sum)
    h_mean = h_mean - 2 * math.pi * (wrap & (h_sum >= 2 * math.pi)).to(h_sum)
    h_mean = torch.where(cc == 0, h_mean * 2, h_mean) * 0.5
    t = (
        1
        - 0.17 * torch.cos(h_mean - math.radians(30))
        + 0.24 * torch.cos(2 * h_mean)
        + 0.32 * torch.cos(3 * h_mean + math.radians(6))
        - 0.20 * torch.cos(4 * h_mean - math.radians(63))
    )
    h_term = dh_term / (1 + 0.015 * cp_mean * t)

    cp7 = cp_mean**7
    rc = 2 * root(cp7 / (cp7 + 25.0**7))
    dtheta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_mean) - 275) / 25) ** 2))
    r_term = -torch.sin(2 * dtheta) * rc * c_term * h_term
    return root(l_term**2 + c_term**2 + h_term**2 + r_term)


def colorfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colorfulness M of sRGB images ``(B, 3, H, W)`` in [0, 1] -> ``(B,)``.

    Computed on the 0-255 scale as in the paper: ``sigma_rgyb + 0.3 * mu_rgyb``.
    """
    r, g, b = (rgb.clamp(0, 1) * 255.0).flatten(-2).unbind(-2)
    rg = r - g
    yb = 0.5 * (r + g) - b
    sigma = torch.sqrt(rg.var(-1, unbiased=False) + yb.var(-1, unbiased=False))
    mu = torch.sqrt(rg.mean(-1) ** 2 + yb.mean(-1) ** 2)
    return sigma + 0.3 * mu


class _BatchMean(Metric):
    """Mean over images of a per-image score; subclasses define ``score(preds, target) -> (B,)``."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @abstractmethod
    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image score ``(B,)``."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        values = self.score(preds.float(), target.float())
        self.total += values.double().sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp_min(1)).float()


def delta_e00_per_image(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean CIEDE2000 of each image ``(B,)`` between sRGB ``(B, 3, H, W)`` pictures in [0, 1]."""
    return delta_e_ciede2000(rgb_to_lab(preds), rgb_to_lab(target)).flatten(1).mean(1)


def colorfulness_gap_per_image(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``|colorfulness(pred) - colorfulness(truth)|`` per image ``(B,)``: a desaturated (sepia) or an
    over-saturated result both score badly, a plausible one well, whatever hue it picks."""
    return (colorfulness(preds) - colorfulness(target)).abs()


class DeltaE2000(_BatchMean):
    """Mean CIEDE2000 between predicted and true sRGB images (lower is better)."""

    higher_is_better = False

    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return delta_e00_per_image(preds, target)


class Colorfulness(_BatchMean):
    """Mean Hasler-Suesstrunk colorfulness of the predicted images (compare with the truth's)."""

    higher_is_better = True

    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return colorfulness(preds)


class ColorfulnessGap(_BatchMean):
    """Mean per-image colorfulness gap to the truth (lower is better, see :func:`colorfulness_gap_per_image`)."""

    higher_is_better = False

    def score(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return colorfulness_gap_per_image(preds, target)


# ---- the registry ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric's vocabulary, defined once: stable name, column title, direction and per-image score.

    ``higher_is_better`` is None for a metric with no direction (colorfulness: compare it with the truth's);
    ``per_image`` maps sRGB ``(B, 3, H, W)`` prediction and truth in [0, 1] to ``(B,)``, None for metrics
    that need a network or a whole set (LPIPS, Fréchet distances, classifier agreement).
    """

    name: str
    title: str
    higher_is_better: bool | None
    per_image: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    @property
    def column(self) -> str:
        """The title with its direction: ``ΔE00 ↓``."""
        return self.title + {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]


FRECHET_KEY = "frechet_effnet"
# In report column order. The per-image scores are the definitions the ``val/``/``test/`` metrics average.
METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("psnr", "PSNR (dB)", True,
                   lambda p, t: peak_signal_noise_ratio(p, t, data_range=1.0, dim=(1, 2, 3), reduction="none")),
        MetricSpec("ssim", "SSIM", True,
                   lambda p, t: structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")),
        MetricSpec("delta_e00", "ΔE00", False, delta_e00_per_image),
        MetricSpec("lpips", "LPIPS", False),
        MetricSpec("colorfulness", "colorfulness", None, lambda p, t: colorfulness(p)),
        MetricSpec("colorfulness_gap", "colorfulness gap", False, colorfulness_gap_per_image),
        MetricSpec(FRECHET_KEY, "Fréchet EffNet", False),
        MetricSpec("top1_agree", "top-1 agree", True),
        MetricSpec("top5_agree", "top-5 agree", True),
        MetricSpec("fid", "FID", False),
    )
}  # fmt: skip
# Whether a larger value is better, per metric name (metrics with no direction are left out).
HIGHER_IS_BETTER = {name: spec.higher_is_better for name, spec in METRICS.items() if spec.higher_is_better is not None}
METRIC_TITLES = {name: spec.column for name, spec in METRICS.items()}


def image_scores(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every per-image score of the registry for sRGB ``(B, 3, H, W)`` in [0, 1] against the truth, each ``(B,)``."""
    pred, truth = pred.float(), truth.float()
    return {name: spec.per_image(pred, truth) for name, spec in METRICS.items() if spec.per_image is not None}


class FrechetEffNetDistance(FrechetInceptionDistance):
    """Fréchet distance between Gaussians fitted to the pooled EfficientNet-Lite0 features of the predicted and
    the true images (lower is better). FID's formula on an offline ImageNet net, so NOT comparable with FID.

    torchmetrics supplies the feature statistics and the distance; this class only swaps in the network and
    takes ``update(preds, target)`` like every other colorlab metric.

    Args:
        features: ``(B, 3, H, W)`` sRGB in [0, 1] -> ``(B, D)``, with a ``num_features`` attribute; default
            :class:`colorlab.models.features.PooledImageNetFeatures` (ImageNet weights, local files only).
        input_size: side the images are resized to for the default feature net.
    """

    higher_is_better = False

    def __init__(self, features: nn.Module | None = None, input_size: int = 128, **kwargs) -> None:
        if features is None:
            from colorlab.models.features import PooledImageNetFeatures

            features = PooledImageNetFeatures(input_size=input_size)
        super().__init__(feature=features, normalize=True, reset_real_features=True, **kwargs)
        self.target_frozen = False

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predictions and their true images (the truth is skipped once frozen)."""
        if not self.target_frozen:
            super().update(target.float(), real=True)
        super().update(preds.float(), real=False)

    def compute(self) -> torch.Tensor:
        """The distance; NaN (with a warning) when either side has fewer than 2 images (no covariance)."""
        if min(int(self.real_features_num_samples), int(self.fake_features_num_samples)) < 2:
            warnings.warn("frechet_effnet needs at least 2 images per set; reporting NaN", stacklevel=2)
            return torch.tensor(float("nan"), device=self.device)
        return super().compute()

    def freeze_target(self) -> None:
        """Keep the true images' statistics from now on: for a fixed evaluation set (same images every epoch)
        the truth's features need computing once, which halves the cost of later epochs."""
        self.target_frozen = True
        self.reset_real_features = False


def colorization_metrics(prefix: str, sync: bool = True) -> MetricCollection:
    """The shared metric set, keyed ``{prefix}psnr``, ``ssim``, ``delta_e00``, ``colorfulness`` and
    ``colorfulness_gap`` (the Fréchet distance needs a feature net, so it is added where enabled).

    ``sync=False`` computes on this process's updates alone, even under DDP (an evaluation on rank 0 only).
    """
    return MetricCollection(
        {
            "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), sync_on_compute=sync),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0, sync_on_compute=sync),
            "delta_e00": DeltaE2000(sync_on_compute=sync),
            "colorfulness": Colorfulness(sync_on_compute=sync),
            "colorfulness_gap": ColorfulnessGap(sync_on_compute=sync),
        },
        prefix=prefix,
    )


def luminance_metrics(prefix: str, sync: bool = True) -> MetricCollection:
    """PSNR and SSIM only, keyed ``{prefix}psnr`` and ``ssim``: for approaches scored on the gray picture of L
    (super-resolution), where colour metrics say nothing. ``sync`` as in :func:`colorization_metrics`."""
    return MetricCollection(
        {
            "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), sync_on_compute=sync),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0, sync_on_compute=sync),
        },
        prefix=prefix,
    )
