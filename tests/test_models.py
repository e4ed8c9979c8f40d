"""The net protocol (``models/blocks.py``) and the one optimizer builder (``approaches/base.py``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from colorlab.approaches.base import ColorizationModule
from colorlab.approaches.chromagan import ChromaGANColorizer
from colorlab.approaches.nogan import NoGANColorizer
from colorlab.approaches.pix2pix import Pix2PixColorizer
from colorlab.approaches.regression import RegressionColorizer
from colorlab.approaches.restoration import RestoreThenColorize
from colorlab.color import lab_batch
from colorlab.losses import FeatureLoss
from colorlab.models.bigcolor import BigColorGenerator
from colorlab.models.blocks import (
    GrayToImageNet,
    UNetSkeleton,
    cat_channels,
    conv_norm_act,
    output_head,
    pretrained_encoders,
)
from colorlab.models.chromagan import ChromaGANGenerator
from colorlab.models.critics import DeOldifyCritic, PatchGAN
from colorlab.models.features import ImageNetClassifier, ImageNetFeatures
from colorlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD
from colorlab.models.simple_cnn import SimpleCNN
from colorlab.models.unet import TimmUNet, UNet
from colorlab.models.vae_unet import VAEUNet
from colorlab.models.vgg import VGG16Colorizer
from tests.helpers import FixedBatchDataModule

TINY_CHROMA = {
    "trunk_channels": (4, 4, 4, 4), "mid_channels": (4, 4), "global_channels": 4, "fusion_hidden": (4,),
    "fusion_channels": 4, "class_hidden": (4,), "num_classes": 5, "decoder_channels": (4, 4, 4, 4),
}  # fmt: skip
NETS = {
    "simple_cnn": lambda: SimpleCNN(widths=(8, 8, 8)),
    "unet": lambda: UNet(base_channels=4, depth=2),
    "timm_unet": lambda: TimmUNet(decoder_channels=(8, 8, 8, 8, 8)),
    "timm_unet_semantic": lambda: TimmUNet(decoder_channels=(8, 8, 8, 8, 8), semantic_prior=True),
    "vae_unet": lambda: VAEUNet(base_channels=4, depth=2, latent_dim=3),
    "bigcolor": lambda: BigColorGenerator(base_channels=4, depth=2, z_dim=3),
    "chromagan": lambda: ChromaGANGenerator(**TINY_CHROMA),
    # timm's EfficientNet feature nets build every block whatever out_indices asks: the unused ones must go
    "chromagan_timm": lambda: ChromaGANGenerator(encoder="efficientnet_lite0", **TINY_CHROMA),
    "vgg16": lambda: VGG16Colorizer(blocks=2, decoder_channels=(8, 8), freeze_encoder=False),
}


def ab_of(net: torch.nn.Module, L: torch.Tensor) -> torch.Tensor:
    """The ab of any net in NETS (VAE: its training pass on a zero target; ChromaGAN: the ab head)."""
    out = net(L, torch.zeros(L.shape[0], 2, *L.shape[-2:])) if isinstance(net, VAEUNet) else net(L)
    return out[0] if isinstance(out, tuple) else out


# ---- the net protocol ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NETS)
def test_any_size_declared_multiple_and_neutral_start(name):
    torch.manual_seed(0)
    net = NETS[name]()
    assert isinstance(net.multiple, int) and net.multiple > 1
    for size in ((37, 53), (net.multiple * 3, net.multiple * 2 + 1)):
        ab = ab_of(net, torch.rand(2, 1, *size) * 2 - 1)
        assert ab.shape == (2, 2, *size)
        assert not ab.any(), "an untrained net answers ab = 0 (its OutputHead starts at zero)"


@pytest.mark.parametrize("name", NETS)
def test_every_trainable_parameter_gets_a_gradient_past_step0(name):
    torch.manual_seed(0)
    net = NETS[name]()
    torch.nn.init.normal_(output_head(net).conv.weight, std=0.1)  # one step in: the head is no longer zero
    ab = ab_of(net, torch.rand(2, 1, 32, 32) * 2 - 1)
    (ab - 0.3).square().mean().backward()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    for param_name, param in trainable:
        if name.startswith("chromagan") and param_name.startswith("class_head"):
            continue  # the class head is trained by its own loss (test_chromagan)
        assert param.grad is not None and torch.isfinite(param.grad).all(), param_name
    assert torch.isfinite(ab).all()


def test_the_semantic_prior_reads_the_photo_as_the_imagenet_classifier_does(rgb_uint8):
    net = TimmUNet(pretrained=True, decoder_channels=(8, 8, 8, 8, 8), semantic_prior=True).eval()
    L = lab_batch(torch.nn.functional.interpolate(rgb_uint8[:2].float(), size=224).round().byte())["L"]
    probs = net.bottleneck.classes(net.encoder(L)[-1])
    gray = ((L + 1) / 2).expand(-1, 3, -1, -1)  # what the encoder's GrayToImageNet feeds the trunk
    expected = ImageNetClassifier(pretrained=True)(gray).softmax(dim=-1)
    assert torch.allclose(probs, expected, atol=1e-5)
    assert not net.bottleneck.classes.train().training  # frozen BatchNorm, whatever the net's mode
    assert not any(p.requires_grad for p in net.bottleneck.classes.parameters())


def test_simple_cnn_pads_a_full_hd_frame():
    net = SimpleCNN(widths=(4, 4, 4))
    assert net(torch.zeros(1, 1, 540, 960)).shape == (1, 2, 540, 960)


def test_one_unet_skeleton():
    for name in ("unet", "timm_unet", "vae_unet", "bigcolor"):
        assert isinstance(NETS[name](), UNetSkeleton), name


def test_gray_to_imagenet_input():
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    L = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1)
    gray = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1).expand(3, 3, 1, 1)
    torch.testing.assert_close(GrayToImageNet()(L), (gray - mean) / std)


def test_cat_channels_keeps_channels_last_with_a_one_channel_or_broadcast_input():
    features = torch.randn(2, 8, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    L = torch.randn(2, 1, 6, 6, requires_grad=True)  # contiguous: torch.cat alone would return NCHW
    z = torch.randn(2, 3, 1, 1).expand(-1, -1, 6, 6)
    assert not torch.cat([features, L], 1).is_contiguous(memory_format=torch.channels_last)
    out = cat_channels([features, L, z])
    torch.testing.assert_close(out, torch.cat([features, L, z], 1), rtol=0, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last) and out.stride(1) == 1
    out.sum().backward()
    assert torch.equal(L.grad, torch.ones_like(L)) and torch.equal(features.grad, torch.ones_like(features))
    nchw = cat_channels([features.detach().contiguous(), L])  # no channels-last input: plain torch.cat
    assert nchw.is_contiguous()


def test_a_channels_last_unet_decodes_channels_last_through_the_one_channel_skip():
    net = NETS["timm_unet"]().to(memory_format=torch.channels_last)
    layouts = []
    for conv in (m for m in [*net.decoder.modules(), *net.head.modules()] if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_pre_hook(lambda _, args: layouts.append(args[0].stride(1) == 1))
    net(torch.randn(2, 1, 64, 64).to(memory_format=torch.channels_last))
    assert layouts and all(layouts)


def test_conv_norm_act_unit():
    unit = conv_norm_act(3, 5, kernel=3, stride=2, act="leaky_relu")
    assert [type(m).__name__ for m in unit] == ["Conv2d", "BatchNorm2d", "LeakyReLU"]
    assert unit[0].bias is None and unit(torch.zeros(1, 3, 8, 8)).shape == (1, 5, 4, 4)
    assert [type(m).__name__ for m in conv_norm_act(3, 5, norm=False)] == ["Conv2d", "ReLU"]
    with pytest.raises(ValueError, match="unknown activation"):
        conv_norm_act(3, 5, act="swish")


def test_pretrained_encoders_are_found_only_when_pretrained():
    assert pretrained_encoders(TimmUNet(pretrained=False, decoder_channels=(8,) * 5)) == []
    net = TimmUNet(pretrained=True, decoder_channels=(8,) * 5)
    assert pretrained_encoders(net) == [net.encoder]
    assert pretrained_encoders(VGG16Colorizer(blocks=1, pretrained=False)) == []


def test_an_approach_must_name_its_deployable_colorizer():
    class Nothing(ColorizationModule):
        def training_loss(self, batch):
            return {}

    with pytest.raises(TypeError, match="colorizer_class"):
        Nothing()


# ---- the optimizer builder ----------------------------------------------------------------------------


def _held(optimizer: torch.optim.Optimizer) -> set[int]:
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def _ids(module: torch.nn.Module) -> set[int]:
    return {id(p) for p in module.parameters()}


def test_pretrained_encoder_trains_at_its_fraction_of_the_rate():
    net = TimmUNet(pretrained=True, decoder_channels=(8,) * 5)
    module = RegressionColorizer(net, optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3), encoder_lr_mult=0.1)
    optimizer = module.configure_optimizers()["optimizer"]
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert groups["net"]["lr"] == pytest.approx(1e-3)
    assert groups["pretrained_encoder"]["lr"] == pytest.approx(1e-4)
    assert {id(p) for p in groups["pretrained_encoder"]["params"]} == _ids(net.encoder)
    assert _held(optimizer) == _ids(net)


def test_frozen_parameters_are_not_in_the_optimizer():
    vgg = VGG16Colorizer(blocks=2, decoder_channels=(8, 8), freeze_encoder=True)
    optimizer = RegressionColorizer(vgg).configure_optimizers()["optimizer"]
    assert _held(optimizer) == _ids(vgg.decoder)

    restorer, colorizer = UNet(out_channels=1, base_channels=4, depth=1), UNet(base_channels=4, depth=1)
    module = RestoreThenColorize(restorer, colorizer, train_stages=["colorize"])
    assert _held(module.configure_optimizers()["optimizer"]) == _ids(colorizer)

    generator, critic = UNet(base_channels=4, depth=1), PatchGAN(base_channels=4, n_layers=1)
    features = ImageNetFeatures(pretrained=False)
    pix2pix = Pix2PixColorizer(generator, critic, feature_loss=FeatureLoss(features))
    gen_opt, critic_opt = (config["optimizer"] for config in pix2pix.configure_optimizers())
    assert _held(gen_opt) == _ids(generator) and _held(critic_opt) == _ids(critic)

    teacher = ImageNetClassifier(pretrained=False)
    chroma = ChromaGANColorizer(ChromaGANGenerator(**TINY_CHROMA), PatchGAN(base_channels=4, norm="none"),
                                teacher=teacher)  # fmt: skip
    held = set().union(*(_held(c["optimizer"]) for c in chroma.configure_optimizers()))
    assert not held & _ids(teacher)


def test_gan_generators_get_the_encoder_fraction_too():
    generator = TimmUNet(pretrained=True, decoder_channels=(8,) * 5)
    module = Pix2PixColorizer(generator, PatchGAN(base_channels=4, n_layers=1), encoder_lr_mult=0.25,
                              generator_optimizer=lambda p: torch.optim.Adam(p, lr=2e-3))  # fmt: skip
    gen_opt, critic_opt = (config["optimizer"] for config in module.configure_optimizers())
    assert {g["name"]: g["lr"] for g in gen_opt.param_groups} == pytest.approx(
        {"net": 2e-3, "pretrained_encoder": 5e-4}
    )
    assert [g["name"] for g in critic_opt.param_groups] == ["net"]


class _Scalar(RegressionColorizer):
    """A regression module around one scalar weight, to read the rate of each step off its update."""

    def __init__(self, **kwargs) -> None:
        super().__init__(UNet(base_channels=1, depth=1), **kwargs)
        self.w = torch.nn.Parameter(torch.zeros(()))


def _steps(optimizer: torch.optim.Optimizer, w: torch.nn.Parameter, n: int, scheduler=None) -> list[float]:
    """The update of ``w`` at each of ``n`` SGD steps with gradient 1 (= the rate used)."""
    updates = []
    for _ in range(n):
        before = w.item()
        optimizer.zero_grad()
        w.grad = torch.ones(())
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        updates.append(before - w.item())
    return updates


def test_warmup_is_linear_per_group_and_composes_with_a_scheduler():
    module = _Scalar(warmup_steps=4)
    config = module.build_optimizer(
        lambda p: torch.optim.SGD(p, lr=1.0),
        module,
        lambda o: torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.5),
    )
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    updates = _steps(optimizer, module.w, 6, scheduler)
    # warm-up factors 1/4, 2/4, 3/4, 1, 1, 1 times the scheduler's 1, 1/2, 1/4, ...
    expected = [w * 0.5**i for i, w in enumerate([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])]
    assert updates == pytest.approx(expected)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5**6)  # the scheduler never saw the warm-up

    # The counters live in the param groups: a resumed optimizer continues the warm-up where it stopped.
    fresh = _Scalar(warmup_steps=4)
    config = fresh.build_optimizer(lambda p: torch.optim.SGD(p, lr=1.0), fresh)
    half = _Scalar(warmup_steps=4)
    half_config = half.build_optimizer(lambda p: torch.optim.SGD(p, lr=1.0), half)
    _steps(half_config["optimizer"], half.w, 2)
    config["optimizer"].load_state_dict(half_config["optimizer"].state_dict())
    assert _steps(config["optimizer"], fresh.w, 3) == pytest.approx([0.75, 1.0, 1.0])


# ---- NoGAN unfreezes its encoder mid-run ----------------------------------------------------------------


class _Groups(L.Callback):
    """Records, per training batch, the generator optimizer's groups and whether it holds the encoder."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, list[str], bool, dict[str, float]]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        optimizer = trainer.optimizers[0]
        holds = bool(_held(optimizer) & _ids(pl_module.generator.encoder))
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        self.rows.append((trainer.current_epoch, [g["name"] for g in optimizer.param_groups], holds, lrs))


def _nogan(pretrained: bool = True) -> NoGANColorizer:
    torch.manual_seed(0)
    return NoGANColorizer(
        TimmUNet(pretrained=pretrained, decoder_channels=(8,) * 5),
        DeOldifyCritic(base_channels=8, n_blocks=2, dropout=0.0),
        unfreeze_at_epoch=1,
        encoder_lr_mult=0.1,
        warmup_steps=2,
        generator_optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
    )


def _trainer(tmp_path: Path, epochs: int, callback: L.Callback) -> L.Trainer:
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    return L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0, callbacks=[checkpoint, callback])  # fmt: skip


def test_nogan_adds_the_encoder_group_at_unfreeze_and_resumes(tmp_path, rgb_uint8):
    module, watch = _nogan(), _Groups()
    start = [p.detach().clone() for p in module.generator.encoder.parameters()]
    _trainer(tmp_path, 2, watch).fit(module, FixedBatchDataModule(rgb_uint8, steps_per_epoch=2))
    assert [(epoch, names, holds) for epoch, names, holds, _ in watch.rows] == [
        (0, ["net"], False), (0, ["net"], False),
        (1, ["net", "pretrained_encoder"], True), (1, ["net", "pretrained_encoder"], True),
    ]  # fmt: skip
    assert watch.rows[-1][3] == pytest.approx({"net": 1e-3, "pretrained_encoder": 1e-4})
    moved = [not torch.equal(a, b) for a, b in zip(start, module.generator.encoder.parameters())]
    assert any(moved), "the unfrozen encoder trains"
    encoder_group = module.trainer.optimizers[0].param_groups[1]
    assert encoder_group["warmup_done"] == 2, "the encoder group warms up from its own first step"

    # Resume after the unfreeze: the checkpoint's two groups load into the rebuilt optimizer. (This test's own
    # checkpoint: built outside the CLI, its hparams hold the default optimizer classes, hence weights_only=False.)
    resumed, watch = _nogan(), _Groups()
    _trainer(tmp_path, 3, watch).fit(resumed, FixedBatchDataModule(rgb_uint8, steps_per_epoch=2),
                                     ckpt_path=str(tmp_path / "last.ckpt"), weights_only=False)  # fmt: skip
    assert [(epoch, names, holds) for epoch, names, holds, _ in watch.rows] == [
        (2, ["net", "pretrained_encoder"], True), (2, ["net", "pretrained_encoder"], True),
    ]  # fmt: skip
    assert resumed.trainer.optimizers[0].param_groups[1]["warmup_done"] == 4


def test_frozen_stages_keep_pretrained_values_and_statistics_through_training_and_unfreezing():
    torch.manual_seed(0)
    net = TimmUNet(
        pretrained=False, decoder_channels=(32, 16, 16, 16, 8), encoder_kwargs={"frozen_stages": 2}
    )
    encoder = net.encoder.net
    frozen = net.encoder.frozen_parameter_names()
    assert "conv_stem.weight" in frozen and any(n.startswith("blocks.1.") for n in frozen)
    assert not any(n.startswith("blocks.2.") for n in frozen)
    net.set_encoder_trainable(False)
    net.set_encoder_trainable(True)  # NoGAN's unfreeze must not thaw the frozen stages
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and not trainable & frozen
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    module = RegressionColorizer(net)
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    module.train()
    batch = lab_batch(torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8))
    for _ in range(2):
        optimizer.zero_grad()
        module.training_loss(batch)["loss"].backward()
        optimizer.step()
    after = encoder.state_dict()
    stem_state = [k for k in before if k.startswith(("conv_stem", "bn1", "blocks.0.", "blocks.1."))]
    assert any("running_mean" in k for k in stem_state)
    assert all(torch.equal(before[k], after[k]) for k in stem_state)  # weights and BatchNorm statistics
    assert not torch.equal(before["blocks.2.0.conv_pw.weight"], after["blocks.2.0.conv_pw.weight"])


def test_frozen_stages_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="frozen_stages must be in"):
        TimmUNet(pretrained=False, encoder_kwargs={"frozen_stages": 9})


def test_feature_nets_drop_the_blocks_past_their_last_level_and_old_checkpoints_still_load():
    import timm

    from colorlab.models.blocks import TimmEncoder

    pruned = TimmEncoder("efficientnet_lite0", out_indices=(2,))
    full = timm.create_model("efficientnet_lite0", features_only=True, out_indices=(2,))
    assert len(pruned.net.blocks) == 3 < len(full.blocks)
    pruned.net.load_state_dict(full.state_dict())  # strict: the dropped blocks' keys are ignored, nothing missing
    L = torch.rand(1, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(pruned.eval()(L)[-1], full.eval()(pruned.input(L))[-1])
    assert len(TimmEncoder("efficientnet_lite0").net.blocks) == len(full.blocks)  # every level used: all kept


def test_the_semantic_prior_refuses_an_encoder_without_an_efficientnet_head():
    with pytest.raises(ValueError, match="no EfficientNet-style head"):
        TimmUNet(encoder_name="resnet18", decoder_channels=(8, 8, 8, 8, 8), semantic_prior=True)


def test_an_unfrozen_random_encoder_gets_its_own_group_name(tmp_path, rgb_uint8):
    """nogan_artistic's encoder is not pretrained, so it joins at the base rate: as a second group, named apart
    (Lightning's LearningRateMonitor stopped the run at the unfreeze epoch on two groups called "net")."""
    module, watch = _nogan(pretrained=False), _Groups()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=CSVLogger(tmp_path), enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, enable_checkpointing=False,
                        callbacks=[watch, LearningRateMonitor()])  # fmt: skip
    trainer.fit(module, FixedBatchDataModule(rgb_uint8, steps_per_epoch=2))
    assert [names for _, names, _, _ in watch.rows] == [["net"], ["net"], ["net", "net_2"], ["net", "net_2"]]
    assert watch.rows[-1][2]  # the optimizer holds the encoder


def test_a_run_saved_after_a_random_encoder_joined_resumes(tmp_path, rgb_uint8):
    """Resuming rebuilds the optimizer in the layout it was saved in: the encoder as the later group "net_2", not
    inside "net" (built that way, the saved state's two groups did not load into one)."""
    module = _nogan(pretrained=False)
    _trainer(tmp_path, 2, _Groups()).fit(module, FixedBatchDataModule(rgb_uint8, steps_per_epoch=2))
    saved = module.trainer.optimizers[0].state_dict()["param_groups"]
    resumed, watch = _nogan(pretrained=False), _Groups()
    _trainer(tmp_path, 3, watch).fit(resumed, FixedBatchDataModule(rgb_uint8, steps_per_epoch=2),
                                     ckpt_path=str(tmp_path / "last.ckpt"), weights_only=False)  # fmt: skip
    assert [(epoch, names, holds) for epoch, names, holds, _ in watch.rows] == [
        (2, ["net", "net_2"], True), (2, ["net", "net_2"], True),
    ]  # fmt: skip
    groups = resumed.trainer.optimizers[0].param_groups
    assert [len(g["params"]) for g in groups] == [len(g["params"]) for g in saved]
    assert groups[1]["warmup_done"] == 4  # its warm-up state came back with it
