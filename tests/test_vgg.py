"""VGG16 transfer colorizer: shapes on CIFAR-sized inputs, frozen encoder, offline weights, a short fit."""

from __future__ import annotations

import pytest
import torch

from colorlab.approaches.regression import RegressionColorizer
from colorlab.models.vgg import VGG16_FILE, VGG16Colorizer, vgg16_features
from tests.helpers import fit_fixed_batch


@pytest.mark.parametrize(("blocks", "code"), [(3, (256, 4, 4)), (4, (512, 2, 2))])
def test_shapes_32x32(blocks, code):
    net = VGG16Colorizer(blocks=blocks)
    L = torch.rand(2, 1, 32, 32) * 2 - 1
    assert net.encoder(L.expand(-1, 3, -1, -1)).shape[1:] == code
    ab = net(L)
    assert ab.shape == (2, 2, 32, 32)
    assert ab.abs().max() <= 1


def test_any_size_and_gradients_reach_only_the_decoder():
    net = VGG16Colorizer(blocks=2, decoder_channels=(16, 8))
    ab = net(torch.rand(1, 1, 37, 53) * 2 - 1)
    assert ab.shape == (1, 2, 37, 53) and torch.isfinite(ab).all()
    ab.square().mean().backward()
    assert all(p.grad is None for p in net.encoder.parameters())
    assert all(p.grad is not None for p in net.decoder.parameters())


def test_encoder_matches_torchvision_layout():
    import torchvision

    ours = vgg16_features(blocks=5)
    reference = torchvision.models.vgg16(weights=None).features
    assert [type(m) for m in ours] == [type(m) for m in reference]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_missing_weights_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("COLORLAB_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=VGG16_FILE):
        VGG16Colorizer(pretrained=True)


def test_local_weights_are_loaded(tmp_path, monkeypatch):
    # A torchvision-style file ("features.N.*" keys; the classifier is left out to keep the test small).
    source = vgg16_features(blocks=5)
    torch.save({f"features.{k}": v for k, v in source.state_dict().items()}, tmp_path / VGG16_FILE)
    monkeypatch.setenv("COLORLAB_WEIGHTS", str(tmp_path))
    net = VGG16Colorizer(blocks=3, pretrained=True)
    for name, tensor in net.encoder.state_dict().items():
        assert torch.equal(tensor, source.state_dict()[name])


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="blocks must be in 1..5"):
        VGG16Colorizer(blocks=6)
    with pytest.raises(ValueError, match="decoder_channels needs 3 entries"):
        VGG16Colorizer(blocks=3, decoder_channels=(8, 8))


def test_overfits_fixed_batch(rgb_uint8):
    torch.manual_seed(0)
    net = VGG16Colorizer(blocks=2, decoder_channels=(32, 16))
    module = RegressionColorizer(net, loss="mse", optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    losses = fit_fixed_batch(module, rgb_uint8, steps=50)
    assert len(losses) == 50
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
