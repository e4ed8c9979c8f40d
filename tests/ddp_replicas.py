"""Train every GAN family a few steps under 2-process CPU DDP (gloo) with different local losses per rank.

``python tests/ddp_replicas.py OUT``: Lightning's DDP launcher re-runs this script for rank 1. Each rank sees
its own share of the images, and rank 1's loss terms are shifted by a constant (+3 or -3, alternating by step)
that leaves the gradients alone but puts its local losses on the other side of NoGAN's switch thresholds.
Each rank then saves its parameters (and BigColor's EMA weights) to ``OUT/replicas.rank<R>.pt``; the test
asserts the two ranks hold bitwise-equal weights.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from colorlab.approaches.adversarial import AdversarialColorizer
from colorlab.approaches.nogan import NoGANColorizer
from colorlab.models.critics import PatchGAN
from colorlab.models.unet import UNet
from tests.helpers import FixedBatchDataModule, fixed_rgb_batch
from tests.test_bigcolor import tiny_bigcolor
from tests.test_chromagan import tiny_chromagan
from tests.test_pix2pix import tiny_pix2pix
from tests.test_upscale import sr_pair, tiny_net

STEPS = 6  # optimizer steps per family (manual optimization counts each net's step)
SHIFT = 3.0  # rank 1's loss offset; NoGAN's thresholds sit between the two ranks' local losses


def tiny_nogan() -> NoGANColorizer:
    """NoGAN's gan phase with thresholds that rank 0's loss is below and rank 1's shifted loss is not."""
    torch.manual_seed(0)
    return NoGANColorizer(
        UNet(base_channels=8, depth=2), PatchGAN(3, base_channels=8, n_layers=2), phase="gan",
        critic_threshold=SHIFT - 1, generator_threshold=SHIFT - 1,
    )  # fmt: skip


def tiny_upscaler() -> AdversarialColorizer:
    from colorlab.approaches.upscale import AdversarialUpscaler

    torch.manual_seed(0)
    return AdversarialUpscaler(tiny_net(zero_last=True), PatchGAN(2, base_channels=8, n_layers=2), gan_loss="lsgan")


def shift_losses(module: AdversarialColorizer, rank: int) -> None:
    """Add ``rank * SHIFT * (-1)**step`` to both nets' losses: other local loss values, the same gradients."""
    for name in ("generator_loss", "critic_loss"):
        original = getattr(module, name)

        def shifted(batch, fake, original=original):
            losses = dict(original(batch, fake))
            losses["loss"] = losses["loss"] + rank * SHIFT * (-1) ** module.global_step
            return losses

        setattr(module, name, shifted)


def weights(module: AdversarialColorizer) -> dict[str, torch.Tensor]:
    """Every parameter, plus the whole state of an EMA generator (BigColor's deployed colorizer), whose BatchNorm
    statistics are averaged over the ranks (the live nets' statistics are each rank's own, as in plain DDP)."""
    out = {name: p.detach().clone() for name, p in module.named_parameters()}
    if hasattr(module, "ema"):
        out.update({f"colorizer.{k}": v.clone() for k, v in module.colorizer.state_dict().items()})
    return out


def families() -> dict[str, tuple[Callable[[], AdversarialColorizer], FixedBatchDataModule]]:
    """Each GAN family's tiny module builder and its data (four different images: two per rank)."""
    rgb = fixed_rgb_batch(4, 32)
    hr, lr = sr_pair(32, 2, n=4)
    return {
        "nogan": (tiny_nogan, FixedBatchDataModule(rgb, steps_per_epoch=STEPS)),
        "pix2pix": (tiny_pix2pix, FixedBatchDataModule(rgb, steps_per_epoch=STEPS)),
        "chromagan": (tiny_chromagan, FixedBatchDataModule(rgb, steps_per_epoch=STEPS)),
        "bigcolor": (tiny_bigcolor, FixedBatchDataModule(rgb, steps_per_epoch=STEPS)),
        "adversarial_upscaler": (
            tiny_upscaler, FixedBatchDataModule(hr, steps_per_epoch=STEPS, extra={"input_rgb": lr})
        ),
    }  # fmt: skip


def main(out: Path) -> None:
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    results: dict[str, dict] = {}
    for name, (build, data) in families().items():
        module = build()
        shift_losses(module, rank)
        trainer = L.Trainer(
            accelerator="cpu", devices=2, strategy="ddp", max_steps=STEPS, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, limit_val_batches=0,
        )  # fmt: skip
        trainer.fit(module, data)
        results[name] = {"weights": weights(module), "switches": getattr(module, "switches", None)}
    torch.save(results, out / f"replicas.rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
