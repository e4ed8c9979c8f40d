"""colorlab's plain-torch EfficientNet-Lite0 (colorlab.models.efficientnet_lite) is timm's ``efficientnet_lite0``:
the same keys, the same initialisation from the same random numbers, the same outputs and gradients (random and
ImageNet weights, train and eval), so every checkpoint loads and colorizes as it did; and a one-shot colorize
with such a checkpoint imports neither timm nor torchvision (2.4 s of its 3 s budget), Lightning nor torchmetrics."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image

from colorlab.colorizers.loading import load_colorizer
from colorlab.models.blocks import TimmEncoder, drop_blocks_after_last_feature
from colorlab.models.efficientnet_lite import EfficientNetLite0, EfficientNetLite0Features
from colorlab.models.features import ImageNetClassHead, ImageNetClassifier, ImageNetFeatures
from colorlab.models.pretrained import load_pretrained_timm
from colorlab.models.unet import TimmUNet
from tests.helpers import fixed_rgb_batch

REPO = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted((REPO / "runs" / "unet_effnet").glob("*/checkpoints/best-*.ckpt"))
LEVELS = [(0, 1, 2, 3, 4), (2,), (1, 2, 3), (4,)]


def timm_features(out_indices=(0, 1, 2, 3, 4)) -> torch.nn.Module:
    return timm.create_model("efficientnet_lite0", features_only=True, out_indices=out_indices)


def timm_classifier() -> torch.nn.Module:
    return timm.create_model("efficientnet_lite0")


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def imagenet_input(n: int = 2, size: int = 96) -> torch.Tensor:
    """Real photo crops, ImageNet-normalised."""
    rgb = fixed_rgb_batch(n, size).float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    return (rgb - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [*[(lambda i=i: EfficientNetLite0Features(i), lambda i=i: timm_features(i)) for i in LEVELS],
     (EfficientNetLite0, timm_classifier)],
    ids=[*[f"features{i}" for i in LEVELS], "classifier"],
)
def test_same_keys_and_initialisation_from_the_same_random_numbers(ours, theirs):
    """A seeded net is timm's, bit for bit, and leaves the generator where timm did: a seeded run builds the same
    decoder after it too."""
    torch.manual_seed(7)
    expected, expected_next = theirs(), torch.rand(4)
    torch.manual_seed(7)
    net, net_next = ours(), torch.rand(4)
    assert list(net.state_dict()) == list(expected.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), expected.state_dict().values()))
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in expected.named_parameters()]  # forward order
    assert torch.equal(net_next, expected_next)
    if hasattr(net, "feature_info"):
        for query in ("channels", "reduction", "module_name"):
            assert getattr(net.feature_info, query)() == getattr(expected.feature_info, query)(), query


@pytest.mark.parametrize("levels", LEVELS, ids=str)
def test_features_gradients_and_batchnorm_statistics_equal_timms(levels):
    expected = timm_features(levels)
    net = EfficientNetLite0Features(levels)
    for module in expected.modules():  # statistics and affine weights away from their 0 / 1 start
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.running_mean, -0.5, 0.5)
            torch.nn.init.uniform_(module.running_var, 0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.5, 0.5)
    net.load_state_dict(expected.state_dict())  # strict
    x = imagenet_input()
    for training in (False, True):
        expected.train(training), net.train(training)
        x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours, theirs = net(x_ours), expected(x_theirs)
        assert len(ours) == len(theirs) == len(levels)
        for a, b in zip(ours, theirs):
            close(a, b)
        sum(f.square().mean() for f in ours).backward()
        sum(f.square().mean() for f in theirs).backward()
        close(x_ours.grad, x_theirs.grad)
        grads = dict(expected.named_parameters())
        for name, parameter in net.named_parameters():
            if grads[name].grad is None:  # past the last returned level (timm builds and runs those blocks)
                assert parameter.grad is None, name
            else:
                close(parameter.grad, grads[name].grad)
    for name, value in net.state_dict().items():  # train mode updated the same running statistics
        close(value.float(), expected.state_dict()[name].float())


def test_imagenet_weights_give_timms_features_classes_and_head():
    """The packaged ImageNet weights (mapped onto the keys by position) in both; a real photo in."""
    x = imagenet_input(2, 224)
    ours, theirs = EfficientNetLite0Features(), timm_features()
    load_pretrained_timm(ours, "efficientnet_lite0"), load_pretrained_timm(theirs, "efficientnet_lite0")
    with torch.no_grad():
        for a, b in zip(ours.eval()(x), theirs.eval()(x)):
            close(a, b)
    classifier, expected = EfficientNetLite0(), timm_classifier()
    load_pretrained_timm(classifier, "efficientnet_lite0"), load_pretrained_timm(expected, "efficientnet_lite0")
    with torch.no_grad():
        logits = classifier.eval()(x)
        close(logits, expected.eval()(x))
        head = ImageNetClassHead(pretrained=True)
        close(head(ours(x)[-1]), logits.softmax(dim=-1))
    assert logits.argmax(-1).tolist() == expected(x).argmax(-1).tolist()


def test_a_seeded_timm_unet_is_the_one_timm_built(monkeypatch):
    """Pretrained encoder, semantic prior (a second ImageNet head) and decoder: every tensor as with timm."""
    from colorlab.models import blocks, features, pretrained

    def build() -> TimmUNet:
        torch.manual_seed(11)
        return TimmUNet(pretrained=True, decoder_channels=(8,) * 5, semantic_prior=True,
                        encoder_kwargs={"frozen_stages": 3})  # fmt: skip

    ours = build()
    monkeypatch.setattr(blocks, "EfficientNetLite0Features", lambda out_indices=LEVELS[0]: timm_features(out_indices))
    monkeypatch.setattr(features, "EfficientNetLite0", timm_classifier)
    monkeypatch.setattr(pretrained, "EfficientNetLite0", timm_classifier)
    theirs = build()
    assert type(theirs.encoder.net).__module__.startswith("timm.")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert ours.encoder.frozen_parameter_names() == theirs.encoder.frozen_parameter_names()


def test_no_efficientnet_lite0_part_of_colorlab_is_built_by_timm():
    for net in (TimmEncoder().net, ImageNetFeatures(pretrained=False).net, ImageNetClassifier(pretrained=False).net):
        assert type(net).__module__ == "colorlab.models.efficientnet_lite", type(net)
    assert type(TimmEncoder("resnet18").net).__module__.startswith("timm.")  # any other encoder still is
    other_options = TimmEncoder("efficientnet_lite0", drop_path_rate=0.1).net  # and so is any other timm option
    assert type(other_options).__module__.startswith("timm.")
    with pytest.raises(ValueError, match="out_indices must be levels in 0..4"):
        EfficientNetLite0Features((5,))


def randomized(module: torch.nn.Module) -> torch.nn.Module:
    """Every weight and BatchNorm statistic random (a trained net's, not the zero-initialised head's)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.rand_like(value) + 0.5 if "running_var" in name else torch.randn_like(value) * 0.2)
    return module


def with_timm_encoder(colorizer: torch.nn.Module) -> torch.nn.Module:
    """A copy of a TimmUNet colorizer whose encoder is timm's efficientnet_lite0, as every checkpoint's was."""
    twin = copy.deepcopy(colorizer)
    encoder = twin.net.encoder
    theirs = timm_features()
    drop_blocks_after_last_feature(theirs)
    theirs.load_state_dict(encoder.net.state_dict())  # strict
    encoder.net = theirs
    return twin.eval()


def save_timm_unet_checkpoint(path: Path) -> None:
    from colorlab.approaches.regression import RegressionColorizer

    net = {"class_path": "colorlab.models.unet.TimmUNet",
           "init_args": {"encoder_name": "efficientnet_lite0", "pretrained": True,
                         "decoder_channels": [8, 8, 8, 8, 8], "encoder_kwargs": {"frozen_stages": 3}}}  # fmt: skip
    module = RegressionColorizer(TimmUNet(decoder_channels=(8, 8, 8, 8, 8), encoder_kwargs={"frozen_stages": 3}))
    randomized(module.colorizer)
    state = {"state_dict": module.state_dict(),
             "hyper_parameters": {"_class_path": "colorlab.approaches.regression.RegressionColorizer", "net": net}}
    module.on_save_checkpoint(state)
    torch.save(state, path)


def test_a_timm_unet_checkpoint_colorizes_as_with_timms_encoder(tmp_path):
    save_timm_unet_checkpoint(tmp_path / "unet_effnet.ckpt")
    colorizer = load_colorizer(tmp_path / "unet_effnet.ckpt")  # strict
    assert type(colorizer.net.encoder.net).__name__ == "EfficientNetLite0Features"
    L = torch.rand(2, 1, 75, 101) * 2 - 1
    with torch.no_grad():
        L_out, ab = colorizer.predict_lab(L)
        expected_L, expected_ab = with_timm_encoder(colorizer).predict_lab(L)
    assert ab.abs().max() > 0.05  # a real colour answer, not the untrained neutral one
    close(ab, expected_ab)
    assert torch.equal(L_out, expected_L)


@pytest.mark.skipif(not CHECKPOINTS, reason="no unet_effnet run in runs/")
def test_the_trained_unet_effnet_checkpoint_colorizes_as_with_timms_encoder(rgb_uint8):
    from colorlab.color import lab_batch

    colorizer = load_colorizer(CHECKPOINTS[-1])  # strict
    L = lab_batch(torch.nn.functional.interpolate(rgb_uint8.float(), size=160).round().byte())["L"]
    with torch.no_grad():
        ab = colorizer.predict_lab(L)[1]
        close(ab, with_timm_encoder(colorizer).predict_lab(L)[1])


def test_one_shot_colorize_imports_neither_timm_nor_the_training_stack(tmp_path):
    save_timm_unet_checkpoint(tmp_path / "unet_effnet.ckpt")
    Image.fromarray(fixed_rgb_batch(1, 64)[0].permute(1, 2, 0).numpy()).save(tmp_path / "photo.jpg")
    heavy = ("timm", "torchvision", "torch._dynamo", "lightning", "torchmetrics")
    code = ("import sys; from colorlab.cli import main; main(sys.argv[1:]); "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")  # fmt: skip
    argv = ["colorize", str(tmp_path / "photo.jpg"), "--ckpt", str(tmp_path / "unet_effnet.ckpt"),
            "-o", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
    assert (tmp_path / "out" / "photo.jpg").is_file()
