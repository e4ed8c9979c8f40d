"""Data: image decoding of every mode, bad files skipped with one warning, splits, DataModules, CIFAR."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorlab.data import CIFARDataModule, FolderDataModule, SamplesDataModule
from colorlab.data.datamodule import seeded_split
from colorlab.data.images import load_rgb, split_decodable
from tests.helpers import fake_cifar


@pytest.fixture
def photo() -> np.ndarray:
    """A real 48x64 photo crop as (H, W, 3) uint8."""
    from tests.helpers import fixed_rgb_batch

    return fixed_rgb_batch(1, 64)[0, :, :48].permute(1, 2, 0).numpy()


@pytest.fixture
def messy_folder(tmp_path: Path, photo: np.ndarray) -> Path:
    """A folder tree with good files of every awkward mode and three bad files."""
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "plain.jpg", quality=95)
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:8, :8, 3] = 0  # a transparent corner
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sub" / "rgba.png")
    gray16 = (photo.mean(axis=2) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "sub" / "gray16.png")
    Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "sub" / "deeper" / "pal.png")
    Image.fromarray(photo).convert("L").save(tmp_path / "sub" / "deeper" / "gray.webp")
    Image.fromarray(photo).save(tmp_path / "sub" / "deeper" / "photo.bmp")
    Image.fromarray(photo).save(tmp_path / "photo.tiff")
    good = (tmp_path / "plain.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (tmp_path / "notes.jpg").write_text("this is a text file, not a JPEG")
    (tmp_path / "readme.txt").write_text("ignored: not an image extension")
    return tmp_path


def test_every_mode_decodes_to_rgb(messy_folder: Path, photo: np.ndarray):
    cmyk = load_rgb(messy_folder / "cmyk.jpg")
    assert cmyk.shape == photo.shape and cmyk.dtype == np.uint8
    assert np.abs(cmyk.astype(int) - photo).mean() < 6  # JPEG + naive CMYK round trip
    rgba = load_rgb(messy_folder / "sub" / "rgba.png")
    assert (rgba[:8, :8] == 255).all(), "transparent pixels are composited over white"
    assert np.array_equal(rgba[8:, 8:], photo[8:, 8:])
    gray16 = load_rgb(messy_folder / "sub" / "gray16.png")
    assert np.abs(gray16[..., 0].astype(int) - photo.mean(axis=2)).max() <= 1, "16-bit scaled, not clipped"
    assert gray16.std() > 10
    palette = load_rgb(messy_folder / "sub" / "deeper" / "pal.png")
    assert palette.shape == photo.shape and np.abs(palette.astype(int) - photo).mean() < 10
    gray = load_rgb(messy_folder / "sub" / "deeper" / "gray.webp")
    assert np.array_equal(gray[..., 0], gray[..., 2])


def test_exif_orientation_is_applied(tmp_path: Path, photo: np.ndarray):
    image = Image.fromarray(photo)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    assert load_rgb(tmp_path / "rotated.jpg").shape == (photo.shape[1], photo.shape[0], 3)


def test_bad_files_are_reported_not_fatal(messy_folder: Path):
    good, bad = split_decodable(sorted(messy_folder.rglob("*.*")))
    assert {p.name for p in bad} == {"truncated.jpg", "corrupt.png", "notes.jpg", "readme.txt"}
    assert len(good) == 8


def test_folder_datamodule_skips_bad_files_with_one_warning(messy_folder: Path):
    dm = FolderDataModule(root=str(messy_folder), batch_size=3, image_size=32, val_fraction=0.25)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.setup("fit")
    ours = [w for w in caught if "not readable images" in str(w.message)]
    assert len(ours) == 1
    message = str(ours[0].message)
    for name in ("truncated.jpg", "corrupt.png", "notes.jpg"):
        assert name in message
    assert "readme.txt" not in message  # not an image extension: never considered
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 8
    batches = list(dm.train_dataloader()) + list(dm.val_dataloader()) + list(dm.test_dataloader())
    for batch in batches:
        assert batch["rgb"].dtype == torch.uint8 and batch["rgb"].shape[1:] == (3, 32, 32)
    lab = dm.on_after_batch_transfer(batches[0], 0)
    assert lab["L"].shape[1] == 1 and lab["ab"].shape[1] == 2 and lab["rgb"].dtype == torch.float32


def test_file_that_breaks_mid_epoch_is_replaced(tmp_path: Path, photo: np.ndarray):
    from colorlab.data.datasets import ImageFiles, build_transform

    for i in range(2):
        Image.fromarray(photo).save(tmp_path / f"{i}.png")
    files = sorted(tmp_path.glob("*.png"))
    dataset = ImageFiles(files, build_transform(32, train=False))
    files[0].write_bytes(b"deleted after screening")
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        item = dataset[0]
    assert item["rgb"].shape == (3, 32, 32)


def test_train_val_subfolders_are_used(tmp_path: Path, photo: np.ndarray):
    for split, n in (("train", 10), ("val", 2)):
        (tmp_path / split).mkdir()
        for i in range(n):
            Image.fromarray(photo).save(tmp_path / split / f"{i}.png")
    dm = FolderDataModule(root=str(tmp_path), image_size=32, val_fraction=0.2)
    dm.setup("fit")
    # val/ is the test set; validation is carved out of train/
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (8, 2, 2)


def test_root_from_environment(tmp_path: Path, photo: np.ndarray, monkeypatch):
    for i in range(3):
        Image.fromarray(photo).save(tmp_path / f"{i}.png")
    monkeypatch.setenv("COLORLAB_DATA", str(tmp_path))
    dm = FolderDataModule(image_size=32, val_fraction=0.34)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (1, 1, 1)


def test_missing_root_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("COLORLAB_DATA", raising=False)
    with pytest.raises(ValueError, match="COLORLAB_DATA"):
        FolderDataModule().setup("fit")


def test_seeded_split_is_repeatable_and_disjoint():
    a = seeded_split(100, 0.1, seed=3)
    assert a == seeded_split(100, 0.1, seed=3)
    assert a != seeded_split(100, 0.1, seed=4)
    train, val = a
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 100


def test_samples_datamodule_is_offline_and_repeatable():
    dm = SamplesDataModule(batch_size=4, image_size=48, resize=96, crops_per_epoch=8, val_crops=4)
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))["rgb"]
    assert train.shape == (4, 3, 48, 48) and train.dtype == torch.uint8
    val1 = next(iter(dm.val_dataloader()))["rgb"]
    val2 = next(iter(dm.val_dataloader()))["rgb"]
    assert torch.equal(val1, val2), "validation crops are fixed"
    assert not torch.equal(val1[0], val1[2]), "but varied"


def test_cifar_reads_local_files(tmp_path: Path):
    fake_cifar(tmp_path, "cifar100")
    dm = CIFARDataModule(variant="cifar100", root=str(tmp_path), download=False, batch_size=4, val_fraction=0.2)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (16, 4, 20)
    assert next(iter(dm.train_dataloader()))["rgb"].shape == (4, 3, 32, 32)


def test_cifar_offline_error_says_what_to_put_where(tmp_path: Path):
    dm = CIFARDataModule(variant="cifar10", root=str(tmp_path / "none"), download=False)
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        dm.setup("fit")


def test_real_photos_train_a_few_steps(photos_dir: Path):
    import lightning as L

    from colorlab.approaches.regression import RegressionColorizer
    from colorlab.models.unet import UNet

    dm = FolderDataModule(root=str(photos_dir), batch_size=4, image_size=48, resize=64, max_images=16)
    model = RegressionColorizer(UNet(base_channels=4, depth=2))
    trainer = L.Trainer(max_steps=3, limit_val_batches=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, accelerator="cpu")  # fmt: skip
    trainer.fit(model, dm)
    assert trainer.global_step == 3
    metrics = trainer.validate(model, dm, verbose=False)[0]
    assert 5 < metrics["val/psnr"] < 60


def test_datamodules_load_on_first_use_and_unknown_names_fail():
    import colorlab.data

    assert colorlab.data.FolderDataModule is FolderDataModule
    assert "DegradedFolderDataModule" in colorlab.data.__all__
    with pytest.raises(AttributeError, match="no attribute 'FolderDataModul'"):
        colorlab.data.FolderDataModul  # noqa: B018


def _stripe_period(crop: torch.Tensor) -> float:
    """Mean length of the runs of one shade along the first row of a striped crop (pixels)."""
    row = crop[0, 0] > 127
    changes = int((row[1:] != row[:-1]).sum())
    return len(row) / (changes + 1)


def test_scale_jitter_draws_the_training_scale_and_leaves_evaluation_alone():
    # vertical stripes 4 px wide on a 64 px photo: after resizing its shorter side to S, stripes are 4 S / 64 wide
    stripes = ((torch.arange(64) // 4) % 2 * 255).to(torch.uint8).expand(3, 64, 64).contiguous()
    module = FolderDataModule(root=".", image_size=32, resize=64, scale_jitter=(1.0, 2.0))
    assert module.train_resize_range == (64, 128)
    torch.manual_seed(0)
    widths = [_stripe_period(module.transform(True)(stripes)) for _ in range(40)]
    assert min(widths) < 5 and max(widths) > 6, widths  # zoomed by 1x up to 2x: stripes 4 to 8 px wide
    assert all(3.5 < w < 9 for w in widths), widths
    assert _stripe_period(module.transform(False)(stripes)) == pytest.approx(4, abs=0.5)  # val: resize only
    plain = FolderDataModule(root=".", image_size=32, resize=64)
    assert plain.train_resize_range is None
    assert {round(_stripe_period(plain.transform(True)(stripes))) for _ in range(10)} == {4}


@pytest.mark.parametrize("options", [{"scale_jitter": (1.5, 1.0)}, {"scale_jitter": (0.0, 1.0)}, {"resize": None}])
def test_bad_scale_jitter_is_explained(options):
    with pytest.raises(ValueError, match="scale_jitter needs resize"):
        FolderDataModule(root=".", image_size=32, **{"resize": 64, "scale_jitter": (1.0, 2.0), **options})
