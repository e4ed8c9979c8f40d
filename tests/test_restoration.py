"""Restoration approaches: overfit degraded batches, restore L, score the final picture, freeze stages."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from colorlab.approaches.restoration import RestoreColorizer, RestoreThenColorize
from colorlab.color import ab_gamut_bins, lab_batch, rgb_to_gray_l, uint8_to_float
from colorlab.data.degrade import Degrade, GaussianBlur, GaussianNoise
from colorlab.data.prior import save_prior
from colorlab.metrics import colorization_metrics
from colorlab.models.blocks import output_head
from colorlab.models.unet import UNet
from colorlab.training.experiment import run_experiment
from tests.helpers import FixedBatchDataModule, fit_fixed_batch

REPO = Path(__file__).resolve().parents[1]

NETS = ("restorer", "colorizer")
# Where each stage lives in the deployed RestoreThenColorizeNet.
STAGE_ATTRS = {"restorer": "restorer", "colorizer": "colorizer_net"}


@pytest.fixture
def degraded(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """The fixed batch with seeded blur and strong noise, uint8 (4, 3, 32, 32)."""
    pipeline = Degrade([GaussianBlur(sigma=1.0), GaussianNoise(sigma=40)])
    return torch.stack([pipeline(img, i) for i, img in enumerate(rgb_uint8)])


def _adam(lr: float = 3e-3):
    return lambda params: torch.optim.Adam(params, lr=lr)


def _two_stage(**kwargs) -> RestoreThenColorize:
    return RestoreThenColorize(
        UNet(out_channels=1, base_channels=8, depth=2),
        UNet(out_channels=2, base_channels=8, depth=2),
        **kwargs,
    )


def _l_error(module, rgb_uint8, degraded) -> tuple[float, float]:
    """Mean |L - clean L| of the module's restored L and of the degraded input."""
    clean, L_in = lab_batch(rgb_uint8)["L"], rgb_to_gray_l(uint8_to_float(degraded))
    with torch.no_grad():
        L_out, _ = module.eval().predict_lab(L_in)
    return (L_out - clean).abs().mean().item(), (L_in - clean).abs().mean().item()


def test_restore_colorize_overfits_and_restores(rgb_uint8, degraded):
    torch.manual_seed(0)
    module = RestoreColorizer(UNet(out_channels=3, base_channels=8, depth=2), optimizer=_adam())
    losses = fit_fixed_batch(module, rgb_uint8, steps=50, extra={"input_rgb": degraded})
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    restored, degraded_error = _l_error(module, rgb_uint8, degraded)
    assert restored < 0.75 * degraded_error, (restored, degraded_error)


def test_restore_then_colorize_joint_overfits_and_restores(rgb_uint8, degraded):
    torch.manual_seed(0)
    module = _two_stage(optimizer=_adam())
    losses = fit_fixed_batch(module, rgb_uint8, steps=50, extra={"input_rgb": degraded})
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    ab_losses = fit_fixed_batch(
        module, rgb_uint8, steps=5, key="train/loss_ab", extra={"input_rgb": degraded}
    )
    assert ab_losses[-1] < 0.1
    restored, degraded_error = _l_error(module, rgb_uint8, degraded)
    assert restored < 0.75 * degraded_error, (restored, degraded_error)


@pytest.mark.parametrize(("stages", "frozen"), [(["restore"], "colorizer"), (["colorize"], "restorer")])
def test_one_stage_trains_the_other_is_frozen(stages, frozen, rgb_uint8, degraded):
    torch.manual_seed(0)
    module = _two_stage(train_stages=stages, optimizer=_adam())
    trained = "restorer" if frozen == "colorizer" else "colorizer"
    before = {name: {k: v.clone() for k, v in getattr(module.colorizer, STAGE_ATTRS[name]).state_dict().items()} for name in NETS}
    losses = fit_fixed_batch(module, rgb_uint8, steps=20, extra={"input_rgb": degraded})
    assert losses[-1] < losses[0]
    after = {name: getattr(module.colorizer, STAGE_ATTRS[name]).state_dict() for name in NETS}
    # Weights and BatchNorm running statistics of the frozen stage are untouched.
    assert all(torch.equal(before[frozen][k], v) for k, v in after[frozen].items())
    assert not all(torch.equal(before[trained][k], v) for k, v in after[trained].items())


def test_stage_wise_phases_hand_the_restorer_on(tiny_photos, tmp_path, monkeypatch):
    """The YAML's phases: ``restore`` trains the restorer only, ``colorize`` starts from its checkpoint and trains
    the colorizer only; both checkpoints are tested."""
    monkeypatch.setenv("COLORLAB_DATA", str(tiny_photos))
    nets = [f"--model.init_args.{net}.init_args.{key}={value}" for net in NETS
            for key, value in (("base_channels", 4), ("depth", 2))]  # fmt: skip
    results = run_experiment([str(REPO / "experiments" / "restore_then_colorize.yaml")], [
        f"--run.root={tmp_path}", "--run.wandb=disabled", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--data.init_args.num_workers=0", "--data.init_args.batch_size=2", "--data.init_args.image_size=32",
        "--data.init_args.resize=48", *nets,
    ])  # fmt: skip
    restore, colorize = results["phases"]
    assert [restore["name"], colorize["name"]] == ["restore", "colorize"]
    first, second = (
        torch.load(p["handover_checkpoint"], weights_only=False)["state_dict"] for p in (restore, colorize)
    )
    assert all(torch.equal(second[k], v) for k, v in first.items() if k.startswith("colorizer.restorer."))
    assert not all(
        torch.equal(second[k], v)
        for k, v in first.items()
        if k.startswith("colorizer.") and v.is_floating_point()
    )
    assert results["test"] == colorize["test"] and restore["test"]["delta_e00"] > 0


def test_validation_scores_the_restored_picture(rgb_uint8, degraded):
    torch.manual_seed(0)
    module = RestoreColorizer(UNet(out_channels=3, base_channels=8, depth=2))
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = trainer.validate(
        module, FixedBatchDataModule(rgb_uint8, extra={"input_rgb": degraded}), verbose=False
    )
    L_in = rgb_to_gray_l(uint8_to_float(degraded))
    expected = colorization_metrics("val/")
    with torch.no_grad():
        expected.update(module.eval().colorize_rgb(L_in), lab_batch(rgb_uint8)["rgb"])
    for name, value in expected.compute().items():
        assert logged[0][name] == pytest.approx(value.item(), rel=1e-4), name


def test_predict_lab_starts_neutral_and_returns_restored_l_in_range(degraded):
    module = RestoreColorizer(UNet(out_channels=3, base_channels=4, depth=1)).eval()
    L_in = rgb_to_gray_l(uint8_to_float(degraded))
    L_out, ab = module.predict_lab(L_in)
    assert torch.equal(L_out, L_in) and not ab.any()  # untrained: zero residual, ab 0 (the neutral answer)
    torch.nn.init.normal_(output_head(module.net).conv.weight, std=3.0)  # a net that overshoots
    L_out, ab = module.predict_lab(L_in)
    assert L_out.shape == L_in.shape and ab.shape == (4, 2, 32, 32)
    assert L_out.abs().max() <= 1 and not torch.equal(L_out, L_in)
    with pytest.raises(NotImplementedError, match="predict_lab"):  # the contract runs one way
        module.colorize(L_in)


def test_bad_configurations_are_explained():
    with pytest.raises(ValueError, match="train_stages"):
        _two_stage(train_stages=["denoise"])
    with pytest.raises(ValueError, match="train_stages"):
        _two_stage(train_stages=[])
    with pytest.raises(ValueError, match="3 channels"):
        RestoreColorizer(UNet(out_channels=2, base_channels=4, depth=1)).predict_lab(torch.zeros(1, 1, 8, 8))


def test_rebalanced_delta_e00_on_ab_overfits_and_reads_its_prior_when_fitting(rgb_uint8, degraded, tmp_path):
    torch.manual_seed(0)
    prior = torch.rand(len(ab_gamut_bins())) + 0.01
    module = RestoreColorizer(UNet(out_channels=3, base_channels=8, depth=2), optimizer=_adam(), ab_loss="delta_e00",
                              prior_path=str(save_prior(prior, tmp_path / "p.npy")), rebalance_lambda=0.7)  # fmt: skip
    assert torch.all(module.ab_criterion.bin_weights == 1)  # not read until fitting starts
    ab_losses = fit_fixed_batch(module, rgb_uint8, steps=50, key="train/loss_ab", extra={"input_rgb": degraded})
    assert not torch.all(module.ab_criterion.bin_weights == 1)
    assert sum(ab_losses[-5:]) / 5 < 0.6 * sum(ab_losses[:5]) / 5, ab_losses
    assert not any("bin_" in key for key in module.state_dict())  # rebuilt from the file, not saved
    restored, degraded_error = _l_error(module, rgb_uint8, degraded)  # L keeps its own (L1) loss
    assert restored < degraded_error, (restored, degraded_error)
