"""The shared GAN base: update ratio, per-epoch LR decay, gradient clipping, GAN losses, gradient penalty."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from colorlab.approaches.pix2pix import Pix2PixColorizer
from colorlab.losses import gradient_penalty
from colorlab.models.critics import PatchGAN
from colorlab.models.unet import UNet
from tests.helpers import FixedBatchDataModule, fit_fixed_batch


def tiny_gan(norm: str = "batch", **kwargs) -> Pix2PixColorizer:
    torch.manual_seed(0)
    return Pix2PixColorizer(
        UNet(base_channels=4, depth=2), PatchGAN(3, base_channels=4, n_layers=2, norm=norm), **kwargs
    )


def adam_steps(optimizer: torch.optim.Optimizer) -> int:
    """How many times ``optimizer`` stepped (Adam counts per parameter)."""
    return int(next(iter(optimizer.state.values()))["step"])


@pytest.mark.parametrize(("critic_updates", "generator_updates"), [(1, 2), (2, 1), (1, 1)])
def test_update_ratio_is_honoured(critic_updates, generator_updates, rgb_uint8):
    module = tiny_gan(critic_updates=critic_updates, generator_updates=generator_updates)
    batches = 3
    fit_fixed_batch(module, rgb_uint8, steps=batches * (critic_updates + generator_updates))
    opt_generator, opt_critic = module.trainer.optimizers
    assert {id(p) for p in opt_generator.state} == {id(p) for p in module.generator.parameters()}
    assert adam_steps(opt_generator) == batches * generator_updates
    assert adam_steps(opt_critic) == batches * critic_updates
    assert module.trainer.global_step == batches * (critic_updates + generator_updates)


class _RecordLR(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        self.lrs.append(tuple(opt.param_groups[0]["lr"] for opt in trainer.optimizers))


def test_lr_decays_per_epoch(rgb_uint8):
    def scheduler(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    module = tiny_gan(
        generator_optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
        critic_optimizer=lambda p: torch.optim.Adam(p, lr=4e-3),
        generator_scheduler=scheduler,
        critic_scheduler=scheduler,
    )
    recorder = _RecordLR()
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=[recorder])  # fmt: skip
    trainer.fit(module, FixedBatchDataModule(rgb_uint8, steps_per_epoch=2))
    expected = [(1e-3 * 0.5**epoch, 4e-3 * 0.5**epoch) for epoch in range(3) for _ in range(2)]
    torch.testing.assert_close(
        torch.tensor(recorder.lrs, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64)
    )
    assert [opt.param_groups[0]["lr"] for opt in trainer.optimizers] == pytest.approx([1.25e-4, 5e-4])


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_gradient_clipping_is_applied(clip, rgb_uint8):
    # With plain SGD at lr 1, one step moves the weights by exactly the (clipped) gradient.
    module = tiny_gan(
        gradient_clip=clip,
        generator_optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
        critic_optimizer=lambda p: torch.optim.SGD(p, lr=1.0),
    )
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in
              (("generator", module.generator), ("critic", module.critic))}  # fmt: skip
    fit_fixed_batch(module, rgb_uint8, steps=2)  # one critic and one generator step
    for name, net in (("generator", module.generator), ("critic", module.critic)):
        moved = torch.cat(
            [(p.detach() - p0).flatten() for p, p0 in zip(net.parameters(), before[name])]
        ).norm()
        if clip is None:
            assert moved > 1e-2, name
        else:
            assert 0 < moved <= clip * 1.001, (name, float(moved))


@pytest.mark.parametrize("kind", ["vanilla", "lsgan", "hinge", "wgan"])
def test_every_gan_loss_trains(kind, rgb_uint8):
    gp = {"gp_weight": 10.0, "norm": "instance"} if kind == "wgan" else {}
    module = tiny_gan(gan_loss=kind, generator_updates=2, **gp)
    l1 = fit_fixed_batch(module, rgb_uint8, steps=30, key="train/l1")
    logged = module.trainer.callback_metrics
    expected = {"train/loss", "train/adversarial", "train/l1", "train/critic_loss", "train/critic_real_score"}
    assert expected <= set(logged)
    assert ("train/critic_gradient_penalty" in logged) == (kind == "wgan")
    assert all(torch.isfinite(value) for key, value in logged.items() if key.startswith("train/"))
    assert l1[-1] < l1[0]


def test_gradient_penalty_refuses_batchnorm_critic():
    with pytest.raises(ValueError, match="norm 'instance' or 'none'"):
        tiny_gan(norm="batch", gan_loss="wgan", gp_weight=10.0)


class _LinearCritic(nn.Module):
    """critic(ab, L) = <w, [L, ab]> + b: its gradient w.r.t. ab is w's ab part everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 8)

    def forward(self, ab: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([L, ab], dim=1))


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_gradient_penalty_matches_reference(autocast):
    torch.manual_seed(0)
    critic = _LinearCritic()
    real, fake, L_ = torch.randn(4, 2, 8, 8), torch.randn(4, 2, 8, 8), torch.randn(4, 1, 8, 8)
    expected = (critic.conv.weight[:, 1:].norm() - 1) ** 2
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        penalty = gradient_penalty(critic, real, fake, L_)
    assert penalty.dtype == torch.float32 and torch.isfinite(penalty)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()  # create_graph: the penalty trains the critic
    assert critic.conv.weight.grad is not None and critic.conv.weight.grad[:, 1:].abs().sum() > 0
