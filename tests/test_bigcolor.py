"""BigColor-style generator with EMA: overfit, several z, EMA used for colorize and checkpoints, gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from colorlab.approaches.bigcolor import BigColorColorizer
from colorlab.colorizers.generative import ConditionalGeneratorNet
from colorlab.colorizers.loading import load_colorizer
from colorlab.models.bigcolor import BigColorGenerator
from colorlab.models.critics import PatchGAN
from colorlab.models.features import ImageNetClassifier, ImageNetFeatures
from colorlab.training.cli import lightning_main
from tests.helpers import fit_fixed_batch

REPO = Path(__file__).resolve().parents[1]


def tiny_bigcolor(**kwargs) -> BigColorColorizer:
    torch.manual_seed(0)
    generator = kwargs.pop("generator", None) or BigColorGenerator(base_channels=8, depth=2, z_dim=8)
    kwargs.setdefault("generator_optimizer", lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.5, 0.999)))
    kwargs.setdefault("critic_optimizer", lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.999)))
    kwargs.setdefault("perceptual_features", ImageNetFeatures(pretrained=False, levels=(1, 2)))
    return BigColorColorizer(generator, PatchGAN(base_channels=8, n_layers=2, norm="spectral"), **kwargs)


def max_param_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ---- training -----------------------------------------------------------------------------------------


def test_overfits_fixed_batch(rgb_uint8):
    module = tiny_bigcolor(ema_decay=0.9, gan_loss="hinge")
    # Manual optimization: every batch takes a critic and a generator step, i.e. two global steps.
    mse = fit_fixed_batch(module, rgb_uint8, steps=80, key="train/mse")
    assert len(mse) == 40
    assert sum(mse[-5:]) / 5 < 0.5 * sum(mse[:5]) / 5, mse


def test_forward_backward_reaches_every_parameter(lab_batch_32):
    module = tiny_bigcolor()
    fake = module.generate(lab_batch_32)
    generator_losses = module.generator_loss(lab_batch_32, fake)
    assert set(generator_losses) == {"loss", "mse", "adversarial", "perceptual"}
    critic_losses = module.critic_loss(lab_batch_32, fake)
    (generator_losses["loss"] + critic_losses["loss"]).backward()
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    assert {n.split(".")[0] for n, _ in trainable} == {"trained_generator", "critic"}
    for name, param in trainable:
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    assert all(p.grad is None for p in module.colorizer.generator.parameters())


def test_ema_differs_from_live_weights_and_is_what_colorize_uses(rgb_uint8, lab_batch_32):
    module = tiny_bigcolor(ema_decay=0.9)
    fit_fixed_batch(module, rgb_uint8, steps=20)
    assert module.ema_updates.item() == 10  # one update per generator step
    assert max_param_difference(module.generator, module.colorizer.generator) > 1e-4
    module.eval()
    L = lab_batch_32["L"]
    with torch.no_grad():
        ab = module.colorize(L)
        torch.testing.assert_close(ab, module.colorizer.generator(L))
        assert (ab - module.generator(L)).abs().max() > 1e-4


@pytest.mark.parametrize(
    ("warmup_power", "moves"),
    # the first update copies; then each moves the EMA (1 - decay_t) of the way to the live weights
    [(None, [1.0, 0.25, 0.25, 0.25]), (1.0, [1.0, 1 / 2, 1 / 3, 0.25]), (0.5, [1.0, 2**-0.5, 3**-0.5, 0.5])],
    ids=["fixed", "warmup-power-1", "warmup-power-0.5"],
)
def test_ema_follows_decay_and_warmup(warmup_power, moves):
    module = tiny_bigcolor(ema_decay=0.75, ema_warmup_power=warmup_power, perceptual_weight=0.0)
    with torch.no_grad():
        for p in module.colorizer.generator.parameters():
            p.zero_()
    for step, move in enumerate(moves, start=1):
        with torch.no_grad():
            for p in module.generator.parameters():
                p.fill_(float(step))
        before = [p.detach().clone() for p in module.colorizer.generator.parameters()]
        module.update_ema()
        for old, new in zip(before, module.colorizer.generator.parameters()):
            torch.testing.assert_close(new, old + move * (step - old), msg=f"update {step}")
    assert module.ema_updates.item() == len(moves)
    with pytest.raises(ValueError, match="ema_decay"):
        tiny_bigcolor(ema_decay=1.5)


# ---- sampling -----------------------------------------------------------------------------------------


def test_several_z_give_several_colorizations(rgb_uint8, lab_batch_32):
    module = tiny_bigcolor(ema_decay=0.5)
    fit_fixed_batch(module, rgb_uint8, steps=10)
    module.eval()
    with torch.no_grad():
        samples = module.sample(lab_batch_32["L"], 3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, *lab_batch_32["ab"].shape)
    assert samples.abs().max() <= 1
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert (samples[i] - samples[j]).abs().mean() > 1e-4, (i, j)
    with pytest.raises(ValueError, match="n must be"):
        module.sample(lab_batch_32["L"], 0)


def test_class_conditional_generator_uses_the_classifier(lab_batch_32):
    generator = BigColorGenerator(base_channels=8, depth=2, z_dim=4, num_classes=1000, class_dim=8)
    # a random classifier, named as such: only the wiring is under test here
    classifier = ImageNetClassifier(pretrained=False, input_size=32)
    module = tiny_bigcolor(generator=generator, classifier=classifier, perceptual_weight=0.0).eval()
    L = lab_batch_32["L"]
    labels = module.colorizer.labels(L)
    assert labels.shape == (4,) and labels.dtype == torch.long
    with torch.no_grad():
        torch.testing.assert_close(module.colorize(L), module.colorizer.generator(L, None, labels))
        assert module.sample(L, 2).shape == (2, 4, 2, 32, 32)
    with pytest.raises(ValueError, match="pass labels"):
        generator(L)
    with pytest.raises(ValueError, match="needs a class-conditional generator"):
        tiny_bigcolor(classifier=classifier)


# ---- configuration ------------------------------------------------------------------------------------


def test_lpips_without_a_local_backbone_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        tiny_bigcolor(
            perceptual="lpips", perceptual_features=None, lpips_backbone_path=str(tmp_path / "none.pth")
        )
    with pytest.raises(ValueError, match="unknown perceptual loss"):
        tiny_bigcolor(perceptual="vgg")


def test_colorize_any_size_and_bad_latent():
    module = tiny_bigcolor(perceptual_weight=0.0).eval()
    L = torch.rand(2, 1, 37, 53) * 2 - 1
    assert module.colorize(L).shape == (2, 2, 37, 53)
    with pytest.raises(ValueError, match="z must have shape"):
        module.generator(L, torch.zeros(2, 3))


def test_checkpoint_round_trip_gives_the_ema_generator(tmp_path, rgb_uint8, monkeypatch):
    """Built from the experiment YAML by the CLI, trained a few steps, saved, reloaded by load_colorizer."""
    monkeypatch.setattr(sys, "argv", ["colorlab"])
    for split in ("train", "val"):
        (tmp_path / "photos" / split).mkdir(parents=True)
        for i, image in enumerate(rgb_uint8):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "photos" / split / f"{i}.png")
    cli = lightning_main(
        [
            "--config", str(REPO / "experiments" / "bigcolor_ema.yaml"),
            "--run.wandb=disabled", f"--run.root={tmp_path / 'runs'}",
            "--trainer.accelerator=cpu", "--trainer.max_steps=6", "--trainer.enable_progress_bar=false",
            "--trainer.num_sanity_val_steps=0", "--trainer.limit_val_batches=1",
            "--model.init_args.generator.init_args.base_channels=8",
            "--model.init_args.generator.init_args.depth=2",
            "--model.init_args.critic.init_args.base_channels=8",
            "--model.init_args.ema_decay=0.5",
            f"--data.init_args.root={tmp_path / 'photos'}", "--data.init_args.batch_size=4",
            "--data.init_args.image_size=32", "--data.init_args.resize=32", "--data.init_args.num_workers=0",
        ],
        run=False,
    )  # fmt: skip
    cli.trainer.fit(cli.model, cli.datamodule)
    path = tmp_path / "model.ckpt"
    cli.trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    assert any(k.startswith("colorizer.generator.") for k in checkpoint["state_dict"])

    trained = cli.model.eval()
    loaded = load_colorizer(path)
    assert isinstance(loaded, ConditionalGeneratorNet)
    assert max_param_difference(trained.generator, trained.colorizer.generator) > 1e-5
    L = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.colorize(L), trained.colorize(L))
        torch.testing.assert_close(loaded.colorize(L), trained.colorizer.generator(L))
