"""ChromaGAN: two-headed generator, KL to a teacher, WGAN-GP under bf16 autocast, overfitting a batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from colorlab.approaches.chromagan import ChromaGANColorizer
from colorlab.models.blocks import output_head
from colorlab.models.chromagan import ChromaGANGenerator, ScratchTrunk
from colorlab.models.critics import PatchGAN
from colorlab.models.features import ImageNetClassifier
from tests.helpers import fit_fixed_batch

TINY = {
    "trunk_channels": (8, 16, 16, 32),
    "mid_channels": (32, 16),
    "global_channels": 32,
    "fusion_hidden": (32,),
    "fusion_channels": 16,
    "class_hidden": (64,),
    "decoder_channels": (16, 16, 8, 8),
}


def tiny_chromagan(teacher: nn.Module | None = None, **kwargs) -> ChromaGANColorizer:
    torch.manual_seed(0)
    teacher = teacher if teacher is not None else ImageNetClassifier(pretrained=False, input_size=32)
    adam = lambda params: torch.optim.Adam(params, lr=3e-3, betas=(0.5, 0.999))
    critic = PatchGAN(3, base_channels=8, n_layers=2, norm="none")
    return ChromaGANColorizer(
        ChromaGANGenerator(**TINY),
        critic,
        teacher=teacher,
        generator_optimizer=adam,
        critic_optimizer=adam,
        **kwargs,
    )


def test_generator_heads_any_size():
    torch.manual_seed(0)
    ab, log_probs = ChromaGANGenerator(**TINY).eval()(torch.rand(2, 1, 37, 50) * 2 - 1)
    assert ab.shape == (2, 2, 37, 50) and ab.abs().max() <= 1
    assert log_probs.shape == (2, 1000)
    probs = log_probs.exp()
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_every_generator_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = ChromaGANGenerator(**TINY)
    torch.nn.init.normal_(output_head(net).conv.weight, std=0.1)  # past step 0 (the head starts at zero)
    ab, log_probs = net(torch.rand(2, 1, 32, 32) * 2 - 1)
    ((ab - 0.3).square().mean() - log_probs[:, 3].mean()).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in net.class_head.parameters())
    assert any(p.grad.abs().sum() > 0 for p in net.fusion_code.parameters())


def test_pretrained_timm_trunk_runs_offline():
    widths = {k: v for k, v in TINY.items() if k != "trunk_channels"}
    net = ChromaGANGenerator(encoder="efficientnet_lite0", pretrained=True, **widths)
    assert net.trunk.out_channels == 40
    ab, log_probs = net.eval()(torch.rand(1, 1, 40, 44) * 2 - 1)
    assert ab.shape == (1, 2, 40, 44) and log_probs.shape == (1, 1000)


def test_scratch_trunk_needs_four_stages():
    with pytest.raises(ValueError, match="4 stages"):
        ScratchTrunk((8, 16, 32))


def test_overfits_fixed_batch(rgb_uint8):
    module = tiny_chromagan()
    # One critic + one generator update per batch: 60 global steps are 30 batches.
    mse = fit_fixed_batch(module, rgb_uint8, steps=60, key="train/mse")
    assert len(mse) == 30
    assert sum(mse[-3:]) / 3 < 0.5 * sum(mse[:3]) / 3, mse
    logged = module.trainer.callback_metrics
    assert {"train/kl", "train/adversarial", "train/critic_gradient_penalty"} <= set(logged)


def test_loss_terms_match_reference(lab_batch_32):
    module = tiny_chromagan(mse_weight=2.0, kl_weight=0.5, adversarial_weight=0.25)
    fake = module.generate(lab_batch_32)
    losses = module.generator_loss(lab_batch_32, fake)
    ab, log_q = fake
    p = module.teacher(lab_batch_32["rgb"]).softmax(dim=1)
    kl = (p * (p.log() - log_q)).sum(dim=1).mean()
    torch.testing.assert_close(losses["kl"], kl)
    torch.testing.assert_close(losses["mse"], (ab - lab_batch_32["ab"]).square().mean())
    torch.testing.assert_close(losses["adversarial"], -module.critic(ab, lab_batch_32["L"]).mean())
    torch.testing.assert_close(losses["loss"], 2.0 * losses["mse"] + 0.5 * kl + 0.25 * losses["adversarial"])


class _RecordingTeacher(nn.Module):
    """Returns fixed logits and remembers what it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.randn(1, 1000))
        self.seen: list[torch.Tensor] = []

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        self.seen.append(rgb)
        return self.logits.expand(rgb.shape[0], -1)


@pytest.mark.parametrize("teacher_input", ["rgb", "gray"])
def test_teacher_input(teacher_input, lab_batch_32):
    teacher = _RecordingTeacher()
    module = tiny_chromagan(teacher=teacher, teacher_input=teacher_input)
    module.training_loss(lab_batch_32)
    (seen,) = teacher.seen
    if teacher_input == "rgb":
        torch.testing.assert_close(seen, lab_batch_32["rgb"])
    else:
        torch.testing.assert_close(seen[:, 0], seen[:, 2], atol=2e-3, rtol=0)  # gray: R = G = B
        assert not torch.allclose(seen, lab_batch_32["rgb"], atol=1e-2)
    assert not teacher.logits.requires_grad  # the teacher is frozen
    assert not module.train().teacher.training


def test_bf16_mixed_training_step_is_finite(rgb_uint8):
    module = tiny_chromagan(gradient_clip=1.0)
    fit_fixed_batch(module, rgb_uint8, steps=2, precision="bf16-mixed")  # one critic + one generator step
    assert module.trainer.global_step == 2
    logged = {k: v for k, v in module.trainer.callback_metrics.items() if k.startswith("train/")}
    assert {"train/loss", "train/mse", "train/kl", "train/critic_gradient_penalty"} <= set(logged)
    assert all(torch.isfinite(v) for v in logged.values()), logged


def test_refuses_batchnorm_critic():
    with pytest.raises(ValueError, match="gradient penalty"):
        ChromaGANColorizer(
            ChromaGANGenerator(**TINY), PatchGAN(3, 8, 2, norm="batch"), teacher=_RecordingTeacher()
        )


def test_colorize_returns_ab_only():
    module = tiny_chromagan().eval()
    L = torch.rand(1, 1, 33, 41) * 2 - 1
    assert module.colorize(L).shape == (1, 2, 33, 41)
    assert module.colorize_rgb(L).shape == (1, 3, 33, 41)
