"""BigColor-style colorization: z-conditioned generator, MSE + perceptual + adversarial, EMA generator.

The generator (:class:`colorlab.models.bigcolor.BigColorGenerator`) is trained against a critic with
the shared manual-optimization loop of :class:`AdversarialColorizer`, a fresh ``z ~ N(0, I)`` per
batch. An exponential moving average of its weights and BatchNorm statistics (timm's ``ModelEmaV3``)
is updated after every generator step and is the network that validation, test, ``colorize``,
``sample`` and export use: it is the generator of the deployed colorizer, saved under ``colorizer.generator.*``,
so :func:`colorlab.colorizers.loading.load_colorizer` gives back the EMA generator.

EMA decay warm-up: a fixed decay of 0.999 averages over ~1000 steps, so in a run of a few hundred
steps the EMA would still be mostly the first weights. With ``ema_warmup_power`` the decay at update
t (the first copies) is ``min(ema_decay, 1 - t ** -power)`` (timm, after @crowsonkb): with power 3/4
~0.95 at update 50, ~0.99 at 500, 0.999 from ~10k, so short CPU runs and long GPU runs both get a useful EMA.

Perceptual term: ``efficientnet`` = :class:`colorlab.losses.FeatureLoss` on the offline ImageNet
EfficientNet-Lite0 features; ``lpips`` = real LPIPS built from a local VGG/AlexNet file
(``lpips_backbone_path``), a clear error when the file is missing, never a random network.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from timm.utils import ModelEmaV3
from torch import nn

from colorlab.approaches.adversarial import AdversarialColorizer
from colorlab.color import lab_normalized_to_rgb
from colorlab.colorizers.generative import ConditionalGeneratorNet
from colorlab.losses import FeatureLoss
from colorlab.models.bigcolor import BigColorGenerator
from colorlab.models.features import ImageNetClassifier, ImageNetFeatures, build_lpips

Perceptual = Literal["efficientnet", "lpips"]


class BigColorColorizer(AdversarialColorizer):
    """``mse_weight * MSE(ab) + perceptual_weight * perceptual(RGB) + adversarial_weight * GAN``, EMA generator.

    Logs ``train/mse``, ``train/perceptual``, ``train/adversarial``, ``train/loss`` and the critic's terms.

    Args:
        generator: the z-conditioned generator.
        critic: the critic, e.g. :class:`colorlab.models.critics.PatchGAN` (3 input channels: L + ab).
        ema_decay: the (final) decay of the generator's weight EMA (BigColor: 0.999); 0 makes it a plain copy.
        ema_warmup_power: power of the decay warm-up (see the module docstring); None: ``ema_decay`` from
            the second update on.
        mse_weight, perceptual_weight, adversarial_weight: loss coefficients (BigColor: 1.0, 0.2, 0.03).
        perceptual: ``efficientnet`` (offline ImageNet features) or ``lpips`` (needs ``lpips_backbone_path``).
        perceptual_features: the feature pyramid for ``efficientnet`` (default pretrained EfficientNet-Lite0).
        lpips_net: LPIPS backbone, ``vgg`` or ``alex``.
        lpips_backbone_path: local torchvision backbone file for LPIPS (else ``$COLORLAB_WEIGHTS`` / torch cache).
        classifier: frozen ImageNet classifier whose prediction on the gray input is the class condition
            (as BigColor does at inference); requires a generator built with ``num_classes=1000``.
        **kwargs: gan_loss, gp_weight, critic/generator updates, optimizers... (see :class:`AdversarialColorizer`).
    """

    colorizer_class = ConditionalGeneratorNet
    legacy_keys = (
        ("generator.", "trained_generator."),
        ("generator_ema.module.", "colorizer.generator."),
        ("classifier.", "colorizer.classifier."),
    )

    def __init__(
        self,
        generator: BigColorGenerator,
        critic: nn.Module,
        ema_decay: float = 0.999,
        ema_warmup_power: float | None = 0.75,
        mse_weight: float = 1.0,
        perceptual_weight: float = 0.2,
        adversarial_weight: float = 0.03,
        perceptual: Perceptual = "efficientnet",
        perceptual_features: ImageNetFeatures | None = None,
        lpips_net: Literal["vgg", "alex"] = "vgg",
        lpips_backbone_path: str | None = None,
        classifier: ImageNetClassifier | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, critic, **kwargs)
        if perceptual not in ("efficientnet", "lpips"):
            raise ValueError(f"unknown perceptual loss {perceptual!r}; choose efficientnet or lpips")
        if not 0 <= ema_decay <= 1 or (ema_warmup_power is not None and ema_warmup_power <= 0):
            raise ValueError(
                f"need 0 <= ema_decay <= 1 and ema_warmup_power > 0, got {ema_decay}, {ema_warmup_power}"
            )
        if (classifier is not None) != (generator.num_classes > 0):
            raise ValueError("a classifier needs a class-conditional generator (num_classes > 0) and vice versa; "
                             f"got classifier={type(classifier).__name__}, num_classes={generator.num_classes}")  # fmt: skip
        self.trained_generator = generator
        self.mse_weight = mse_weight
        self.perceptual_weight = perceptual_weight
        self.adversarial_weight = adversarial_weight
        self.perceptual = perceptual
        self.perceptual_loss = self._build_perceptual(
            perceptual, perceptual_features, lpips_net, lpips_backbone_path
        )
        warmup = ema_warmup_power is not None
        ema = ModelEmaV3(
            generator, decay=ema_decay, use_warmup=warmup, warmup_power=ema_warmup_power if warmup else 1.0
        )
        ema.requires_grad_(False)
        # The deployed colorizer is the EMA copy. timm's wrapper updates that copy in place; it stays out of the
        # module tree so the EMA weights are saved once, under ``colorizer.generator``.
        self.__dict__["ema"] = ema
        self.colorizer = ConditionalGeneratorNet(ema.module, classifier)
        # Generator steps folded into the EMA so far (drives the warm-up; saved, so resuming continues it).
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def _build_perceptual(
        self, kind: Perceptual, features: ImageNetFeatures | None, lpips_net: str, backbone_path: str | None
    ) -> nn.Module | None:
        if self.perceptual_weight == 0:
            rank_zero_info("BigColor perceptual loss: off (perceptual_weight = 0)")
            return None
        if kind == "efficientnet":
            loss = FeatureLoss(features)
            weights = "ImageNet" if loss.features.pretrained else "RANDOM (pretrained=False)"
            name = loss.features.encoder_name
            rank_zero_info(f"BigColor perceptual loss: FeatureLoss on {name} features, {weights} weights")
            return loss
        if features is not None:
            raise ValueError("perceptual_features only applies to perceptual='efficientnet'")
        rank_zero_info(
            f"BigColor perceptual loss: LPIPS-{lpips_net}, backbone {backbone_path or 'from the search path'}"
        )
        return build_lpips(lpips_net, backbone_path)

    # ---- generation -------------------------------------------------------------------------------

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The live generator's ab for a training batch, with a fresh ``z ~ N(0, I)``."""
        L = self.model_input(batch)
        z = torch.randn(L.shape[0], self.generator.z_dim, device=L.device, dtype=L.dtype)
        return self.generator(L, z, self.colorizer.labels(L))

    def sample(self, L: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` colorizations per image by the EMA generator (see :meth:`ConditionalGeneratorNet.sample`)."""
        return self.colorizer.sample(L, n, generator)

    # ---- losses -----------------------------------------------------------------------------------

    def generator_loss(
        self, batch: dict[str, torch.Tensor], fake_ab: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(fake_ab, batch["ab"])
        adversarial = self.adversarial(batch, fake_ab)
        losses = {"mse": mse, "adversarial": adversarial}
        loss = self.mse_weight * mse + self.adversarial_weight * adversarial
        if self.perceptual_loss is not None:
            # Unclipped RGB keeps gradients for out-of-gamut predictions; the truth's L isolates the colour error.
            fake_rgb = lab_normalized_to_rgb(batch["L"], fake_ab, clip=False)
            losses["perceptual"] = self.perceptual_distance(fake_rgb, batch["rgb"])
            loss = loss + self.perceptual_weight * losses["perceptual"]
        return {"loss": loss, **losses}

    def perceptual_distance(self, pred_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        """The configured perceptual distance between sRGB images in [0, 1], averaged over the batch."""
        if self.perceptual == "lpips":
            return self.perceptual_loss(pred_rgb, target_rgb, normalize=True).mean()
        return self.perceptual_loss(pred_rgb, target_rgb)

    # ---- EMA --------------------------------------------------------------------------------------

    @torch.no_grad()
    def update_ema(self) -> None:
        """Fold the live generator into the EMA (the first update copies it)."""
        self.ema_updates += 1
        self.ema.update(self.generator, step=int(self.ema_updates))
        self._average_ema_buffers()

    def _average_ema_buffers(self) -> None:
        """Under DDP, average the EMA's BatchNorm statistics over the ranks. Its weights follow the generator's,
        identical on every rank, but the statistics come from each rank's own batches."""
        trainer = self._trainer
        if trainer is None or trainer.world_size < 2:
            return
        for buffer in self.colorizer.generator.buffers():
            if buffer.is_floating_point():
                buffer.copy_(trainer.strategy.reduce(buffer.clone(), reduce_op="mean"))

    def configure_optimizers(self) -> Any:
        configs = super().configure_optimizers()
        # A post-step hook on the generator's optimizer updates the EMA after *each* generator step,
        # whatever generator_updates is, and not when mixed precision skips a step with inf gradients.
        configs[0]["optimizer"].register_step_post_hook(lambda *_: self.update_ema())
        return configs

    @property
    def generator(self) -> nn.Module:
        """The live generator the optimizer trains (the colorizer deploys its EMA copy)."""
        return self.trained_generator
