"""The Fréchet EfficientNet-Lite0 distance: zero for identical sets, grows with a colour shift, equals the
closed form computed with scipy, and is logged as val/ and test/frechet_effnet by the run's callback."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from colorlab.color import lab_batch, lab_normalized_to_rgb
from colorlab.metrics import FrechetEffNetDistance
from colorlab.models.features import PooledImageNetFeatures
from tests.helpers import fixed_rgb_batch


@pytest.fixture(scope="module")
def effnet() -> PooledImageNetFeatures:
    """The real offline feature net (ImageNet weights from the installed package) at a small input."""
    return PooledImageNetFeatures(input_size=64)


@pytest.fixture(scope="module")
def photos() -> dict[str, torch.Tensor]:
    """27 crops (48 px) of the bundled photos as a Lab batch."""
    rgb = torch.cat([fixed_rgb_batch(9, 48, seed=s) for s in range(3)])
    return lab_batch(rgb)


def _distance(features: nn.Module, preds: torch.Tensor, target: torch.Tensor, batch: int = 8) -> float:
    metric = FrechetEffNetDistance(features)
    for i in range(0, len(preds), batch):
        metric.update(preds[i : i + batch], target[i : i + batch])
    return metric.compute().item()


def test_pooled_features_shape(effnet: PooledImageNetFeatures):
    assert effnet.num_features == 320
    assert effnet(torch.rand(2, 3, 40, 56)).shape == (2, 320)


def test_identical_sets_are_at_distance_zero(effnet, photos):
    shifted = lab_normalized_to_rgb(photos["L"], photos["ab"] + torch.tensor([0.0, 0.3]).view(1, 2, 1, 1))
    assert abs(_distance(effnet, photos["rgb"], photos["rgb"])) < 1e-3 * _distance(
        effnet, shifted, photos["rgb"]
    )


def test_distance_grows_with_a_colour_shift(effnet, photos):
    distances = []
    for shift in (0.0, 0.1, 0.25, 0.5):  # a yellow cast of 0, 11, 27, 55 b* units
        tinted = lab_normalized_to_rgb(
            photos["L"], photos["ab"] + torch.tensor([0.0, shift]).view(1, 2, 1, 1)
        )
        distances.append(_distance(effnet, tinted, photos["rgb"]))
    assert distances == sorted(distances) and distances[0] < 1e-3 < distances[1]
    gray = lab_normalized_to_rgb(photos["L"], torch.zeros_like(photos["ab"]))
    assert _distance(effnet, gray, photos["rgb"]) > distances[1]


class _Flatten(nn.Module):
    """Features = the pixels themselves (tiny images), so the distance can be checked in closed form."""

    num_features = 12

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb.flatten(1)


def test_matches_scipy_closed_form():
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(200, 3, 2, 2, generator=generator)
    b = (torch.rand(200, 3, 2, 2, generator=generator) ** 2) * 0.8 + 0.1
    got = _distance(_Flatten(), b, a, batch=37)

    fa, fb = a.flatten(1).double().numpy(), b.flatten(1).double().numpy()
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    cov_a, cov_b = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert got == pytest.approx(expected, rel=1e-4)


def test_frozen_target_keeps_the_truth_statistics():
    generator = torch.Generator().manual_seed(1)
    truth, pred = torch.rand(20, 3, 2, 2, generator=generator), torch.rand(20, 3, 2, 2, generator=generator)
    metric = FrechetEffNetDistance(_Flatten())
    metric.update(pred, truth)
    first = metric.compute().item()
    metric.freeze_target()
    metric.reset()
    metric.update(pred, torch.zeros_like(truth))  # the truth is no longer read
    assert metric.compute().item() == pytest.approx(first)
    assert int(metric.real_features_num_samples) == 20


def test_a_single_image_gives_nan_not_a_crash():
    metric = FrechetEffNetDistance(_Flatten())
    metric.update(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2))
    with pytest.warns(UserWarning, match="at least 2"):
        assert metric.compute().isnan()


def test_run_logs_val_and_test_distance(tmp_path):
    import lightning as L

    from colorlab.approaches.regression import RegressionColorizer
    from colorlab.models.unet import UNet
    from colorlab.training.frechet import FrechetEffNetCallback
    from tests.helpers import FixedBatchDataModule

    data = FixedBatchDataModule(fixed_rgb_batch(4, 32), steps_per_epoch=2)
    callback = FrechetEffNetCallback(input_size=32)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[callback])  # fmt: skip
    model = RegressionColorizer(UNet(base_channels=4, depth=2))
    trainer.fit(model, data)
    assert "val/frechet_effnet" in trainer.callback_metrics
    val_truths = int(callback.metrics["val"].real_features_num_samples)
    assert val_truths == 4  # the 4 validation images, read in the first epoch only (not 8 after two epochs)
    test = trainer.test(model, data, verbose=False)[0]
    assert test["test/frechet_effnet"] > 0


def test_monitor_on_a_disabled_distance_is_refused():
    from colorlab.training.runs import RunSettings

    with pytest.raises(ValueError, match="frechet_effnet"):
        RunSettings(monitor="val/frechet_effnet")
    names = [type(c).__name__ for c in RunSettings(monitor="val/frechet_effnet", frechet_effnet=True,
                                                   wandb="disabled", version="v").callbacks()]  # fmt: skip
    assert "FrechetEffNetCallback" in names
