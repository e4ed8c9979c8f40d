"""Degradations: each changes the picture, keeps shape/dtype, is seeded; the pipeline; the degraded data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from PIL import Image

from colorlab.data.datamodule import LabDataModule
from colorlab.data.degrade import (
    JPEG,
    CorrelatedNoise,
    Degrade,
    Downscale,
    GaussianBlur,
    GaussianNoise,
    SaltPepper,
    SpeckleNoise,
    StructuredNoise,
)
from colorlab.data.degraded import DegradedFolderDataModule

ALL = {
    "gaussian": lambda: GaussianNoise(sigma=(5, 25)),
    "salt_pepper": lambda: SaltPepper(amount=(0.01, 0.03)),
    "speckle": lambda: SpeckleNoise(sigma=(0.05, 0.2)),
    "correlated": lambda: CorrelatedNoise(sigma=(5, 20), scale=(1, 3)),
    "structured": lambda: StructuredNoise(amplitude=(4, 16), period=(8, 32), line_sigma=(1, 8)),
    "blur": lambda: GaussianBlur(sigma=(0.8, 2.0)),
    "jpeg": lambda: JPEG(quality=(10, 40)),
    "downscale": lambda: Downscale(factor=(2, 4)),
}


@pytest.fixture
def image(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """One real 32x32 photo crop, uint8 (3, 32, 32)."""
    return rgb_uint8[0]


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [3, 1])
def test_changes_input_and_keeps_shape_dtype(name, channels, image):
    image = image[:channels].contiguous()
    out = ALL[name]()(image, 0)
    assert out.shape == image.shape and out.dtype == torch.uint8
    assert _diff(out, image) > 0.3, f"{name} barely changed the picture"


@pytest.mark.parametrize("name", ALL)
def test_seeded_determinism(name, image):
    degradation = ALL[name]()
    assert torch.equal(degradation(image, 7), degradation(image, 7))
    assert torch.equal(degradation(image, torch.Generator().manual_seed(7)), degradation(image, 7))
    assert not torch.equal(degradation(image, 7), degradation(image, 8))


@pytest.mark.parametrize("name", ALL)
def test_probability_zero_is_identity(name, image):
    degradation = ALL[name]()
    degradation.p = 0.0
    assert torch.equal(degradation(image, 0), image)


def test_probability_fires_at_rate(image):
    noise = GaussianNoise(p=0.3, sigma=10)
    generator = torch.Generator().manual_seed(0)
    fired = sum(not torch.equal(noise(image, generator), image) for _ in range(400))
    assert 90 < fired < 150


@pytest.mark.parametrize(
    ("weak", "strong"),
    [
        (GaussianNoise(sigma=3), GaussianNoise(sigma=30)),
        (CorrelatedNoise(sigma=3), CorrelatedNoise(sigma=30)),
        (GaussianBlur(sigma=0.6), GaussianBlur(sigma=3.0)),
        (JPEG(quality=90), JPEG(quality=5)),
        (Downscale(factor=1.5), Downscale(factor=4)),
    ],
    ids=["gaussian", "correlated", "blur", "jpeg", "downscale"],
)
def test_strength_range_controls_damage(weak, strong, image):
    assert _diff(strong(image, 0), image) > 1.5 * _diff(weak(image, 0), image)


def test_salt_pepper_hits_the_share_asked(image):
    big = image.repeat(1, 8, 8)
    out = SaltPepper(amount=0.05)(big, 0)
    hit = (out != big).any(0)
    assert 0.03 < hit.float().mean() < 0.06
    assert set(out[:, hit].unique().tolist()) <= {0, 255}


def test_gray_noise_is_shared_across_channels(image):
    gray = image[:1].expand(3, -1, -1).contiguous()
    out = GaussianNoise(sigma=20)(gray, 0)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    chroma = GaussianNoise(sigma=20, per_channel=True)(gray, 0)
    assert not torch.equal(chroma[0], chroma[1])


def test_bad_inputs_are_rejected(image):
    with pytest.raises(ValueError, match="uint8"):
        GaussianNoise()(image.float(), 0)
    with pytest.raises(ValueError, match=r"\(3 or 1, H, W\)"):
        GaussianNoise()(image[None], 0)
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(sigma=(20, 5))
    with pytest.raises(ValueError, match="quality"):
        JPEG(quality=(0, 50))
    with pytest.raises(ValueError, match="probability"):
        GaussianBlur(p=1.5)


def test_pipeline_is_seeded_and_shuffles(image):
    steps = [GaussianBlur(sigma=1.5), Downscale(factor=3), GaussianNoise(sigma=10), JPEG(quality=20)]
    fixed = Degrade(steps)
    assert torch.equal(fixed(image, 3), fixed(image, 3))
    assert _diff(fixed(image, 3), image) > max(_diff(step(image, 3), image) for step in steps[:2])
    shuffled = Degrade(steps, shuffle=True)
    outs = {tuple(shuffled(image, seed).flatten().tolist()) for seed in range(6)}
    assert len(outs) == 6
    assert torch.equal(shuffled(image, 4), shuffled(image, 4))


# ---- the degraded data module -------------------------------------------------------------------------


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """train/ (4) and val/ (2) folders of real 48x48 photo crops."""
    from tests.helpers import fixed_rgb_batch

    crops = fixed_rgb_batch(6, 48).permute(0, 2, 3, 1).numpy()
    for split, indices in (("train", range(4)), ("val", range(4, 6))):
        (tmp_path / split).mkdir()
        for i in indices:
            Image.fromarray(crops[i]).save(tmp_path / split / f"{i}.png")
    return tmp_path


def _datamodule(root: Path, **kwargs) -> DegradedFolderDataModule:
    steps = [GaussianNoise(sigma=(10, 20)), JPEG(p=0.5, quality=(20, 50))]
    return DegradedFolderDataModule(degradations=steps, root=str(root), batch_size=2, image_size=32, **kwargs)


def test_degraded_datamodule_yields_degraded_input_and_clean_target(photo_folder):
    dm = _datamodule(photo_folder, hflip=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_rgb"].shape == batch["rgb"].shape and batch["input_rgb"].dtype == torch.uint8
    assert _diff(batch["input_rgb"], batch["rgb"]) > 3
    out = dm.on_after_batch_transfer(batch, 0)
    assert set(out) >= {"L", "ab", "rgb", "L_input"}
    assert out["L_input"].shape == out["L"].shape and out["L_input"].abs().max() <= 1
    assert (out["L_input"] - out["L"]).abs().mean() > 0.02
    # The target is the clean crop: the plain folder module gives the very same rgb for the same crop.
    val_clean = DegradedFolderDataModule(root=str(photo_folder), image_size=32)
    val_clean.setup("fit")
    assert torch.equal(dm.val_set[0]["rgb"], val_clean.val_set[0]["rgb"])
    assert torch.equal(val_clean.val_set[0]["input_rgb"], val_clean.val_set[0]["rgb"]), "no degradations"


def test_validation_is_repeatable_training_is_fresh(photo_folder):
    dm, again = _datamodule(photo_folder), _datamodule(photo_folder)
    dm.setup("fit"), again.setup("fit")
    assert torch.equal(dm.val_set[1]["input_rgb"], again.val_set[1]["input_rgb"])
    assert not torch.equal(dm.val_set[0]["input_rgb"], dm.val_set[1]["input_rgb"])
    other_seed = _datamodule(photo_folder, seed=5)
    other_seed.setup("fit")
    assert not torch.equal(dm.val_set[0]["input_rgb"], other_seed.val_set[0]["input_rgb"])
    torch.manual_seed(0)
    first = dm.train_set[0]
    second = dm.train_set[0]
    assert not torch.equal(first["input_rgb"], second["input_rgb"])


def test_degrading_training_inputs_only_leaves_evaluation_clean(photo_folder):
    dm = _datamodule(photo_folder, degrade_evaluation=False)
    dm.setup("fit")
    dm.setup("test")
    assert _diff(dm.train_set[0]["input_rgb"], dm.train_set[0]["rgb"]) > 3  # augmentation: a degraded input
    for split in (dm.val_set, dm.test_set):  # scored on the clean picture: no L_input, the model reads L
        batch = dm.on_after_batch_transfer({key: value[None] for key, value in split[0].items()}, 0)
        assert "input_rgb" not in split[0] and "L_input" not in batch
    with pytest.raises(ValueError, match="needs scale 1"):
        _datamodule(photo_folder, degrade_evaluation=False, scale=2)


def test_degradations_come_from_yaml(photo_folder):
    config = yaml.safe_load(
        f"""
        data:
          class_path: colorlab.data.degraded.DegradedFolderDataModule
          init_args:
            root: {photo_folder}
            image_size: 32
            degradations:
              - class_path: colorlab.data.degrade.GaussianNoise
                init_args: {{p: 0.5, sigma: [5, 25]}}
              - class_path: colorlab.data.degrade.JPEG
                init_args: {{quality: 30}}
        """
    )
    parser = ArgumentParser()
    parser.add_subclass_arguments(LabDataModule, "data")
    dm = parser.instantiate_classes(parser.parse_object(config)).data
    assert isinstance(dm, DegradedFolderDataModule)
    noise, jpeg = dm.degrade.degradations
    assert isinstance(noise, GaussianNoise) and noise.p == 0.5 and noise.sigma == (5.0, 25.0)
    assert isinstance(jpeg, JPEG) and jpeg.quality == (30.0, 30.0)


def test_the_experiments_share_one_degradation_list_read_beside_their_yaml(tmp_path, monkeypatch):
    from colorlab.training.config import load_config

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    monkeypatch.chdir(tmp_path)  # the nested file is found beside the experiment YAML, not in the working folder
    shared = yaml.safe_load((experiments / "degradations" / "old_print.yaml").read_text())
    for name in ("unet_effnet", "restore_colorize", "restore_then_colorize"):
        degradations = load_config([experiments / f"{name}.yaml"])["data.init_args.degradations"]
        assert [d["class_path"] for d in degradations] == [d["class_path"] for d in shared], name
        assert len(degradations) == 8 and degradations[-1]["init_args"]["quality"] == [30, 80], name
    upscale = [load_config([experiments / f"upscale_x{s}.yaml"])["data.init_args.degradations"] for s in (2, 4)]
    assert upscale[0] == upscale[1] and [d["class_path"].rsplit(".", 1)[1] for d in upscale[0]] == [
        "GaussianBlur", "GaussianNoise", "JPEG"]  # fmt: skip
