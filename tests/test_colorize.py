"""``python -m colorlab colorize``: full resolution, every input mode, several models, bad files, no overwrite."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorlab.cli import main as cli_main
from colorlab.color import rgb_to_lab
from colorlab.commands.colorize import main
from colorlab.data.datasets import load_samples
from colorlab.data.images import to_rgb
from colorlab.inference.folders import COMPARE_DIR, comparison_strip
from colorlab.inference.pictures import read_picture
from colorlab.inference.pipeline import Colorizer, model_names, training_side

REPO = Path(__file__).resolve().parents[1]


def train_tiny_checkpoint(root: Path, name: str = "tiny", seed: int = 0) -> Path:
    """A real checkpoint of the quickstart U-Net shrunk to 4 channels, trained 10 steps on 32 px crops (from the neutral start, enough to leave gray)."""
    cli_main([
        "fit", "--config", str(REPO / "experiments" / "quickstart.yaml"), f"--seed_everything={seed}",
        f"--run.root={root}", f"--run.name={name}", "--run.version=v", "--run.wandb=disabled",
        "--trainer.accelerator=cpu", "--trainer.max_steps=10", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.num_sanity_val_steps=0",
        "--model.init_args.net.init_args.base_channels=4", "--model.init_args.net.init_args.depth=2",
        "--data.init_args.batch_size=4", "--data.init_args.image_size=32", "--data.init_args.resize=48",
        "--data.init_args.crops_per_epoch=8", "--data.init_args.val_crops=4",
    ])  # fmt: skip
    return root / name / "v" / "checkpoints" / "last.ckpt"


def small_photo(width: int = 96, height: int = 64) -> np.ndarray:
    """scikit-image's ``coffee`` photo (held out from the quickstart's training) at ``width x height``."""
    coffee = load_samples(["coffee.png"])[0].permute(1, 2, 0).numpy()
    return np.array(Image.fromarray(coffee).resize((width, height), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        return [train_tiny_checkpoint(root, "alpha", 0), train_tiny_checkpoint(root, "beta", 1)]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real 96x64 colour photo, uint8 (64, 96, 3)."""
    return small_photo()


def lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L in [0, 100] of uint8 RGB (H, W, 3)."""
    return rgb_to_lab(torch.tensor(rgb).permute(2, 0, 1).float()[None] / 255)[0, 0].numpy()


def run(*argv: str | Path) -> int:
    """``main(argv)`` -> its exit status."""
    try:
        main([str(a) for a in [*argv, "--no-progress"]])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_full_resolution_output_keeps_size_and_detail(ckpts, photo, tmp_path):
    big = np.array(Image.fromarray(photo).resize((3000, 2000), Image.Resampling.BICUBIC))
    big[::8] = big[::8] // 2  # 1 px dark lines every 8 rows: gone if L were ever resized to the model's 48 px
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    assert run(tmp_path / "big.jpg", "--ckpt", ckpts[0], "-o", tmp_path / "out") == 0
    out = np.array(Image.open(tmp_path / "out" / "big.jpg"))
    assert out.shape == (2000, 3000, 3)
    window = (slice(800, 1200), slice(1300, 1700))  # a 400 px window keeps the Lab check fast
    L_in = lightness(np.array(Image.open(tmp_path / "big.jpg"))[window])
    L_out = lightness(out[window])
    # Gamut clipping may move L where a colour cannot exist at that lightness; most pixels keep it exactly.
    assert np.median(np.abs(L_out - L_in)) < 1.0
    line_contrast = L_out[1::8].mean() - L_out[::8].mean()
    assert line_contrast > 0.8 * (L_in[1::8].mean() - L_in[::8].mean()) > 5
    chroma = np.abs(out.astype(int) - out.mean(axis=2, keepdims=True)).mean()
    assert chroma > 0.5, "the colour photo went in gray and came back coloured"


def test_training_scale_is_read_from_the_run_and_size_overrides(ckpts):
    assert training_side(ckpts[0]) == 48  # the run's data resize
    assert Colorizer.load(ckpts[0]).side == 48
    assert Colorizer.load(ckpts[0], side=80).side == 80
    assert Colorizer.load(ckpts[0]).model_size(2000, 3000) == (48, 72), "shorter side 48, multiple of 4"


def _write_modes(folder: Path, photo: np.ndarray) -> dict[str, Image.Image]:
    """One file per awkward mode; returns the upright RGB each should look like."""
    rgb = Image.fromarray(photo)
    gray16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    alpha = np.tile(np.linspace(0, 255, photo.shape[1], dtype=np.uint8), (photo.shape[0], 1))
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(alpha))
    files = {
        "gray.png": rgb.convert("L"),
        "rgba.png": rgba,
        "cmyk.jpg": rgb.convert("CMYK"),
        "palette.png": rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
        "sixteen.png": Image.fromarray(gray16),  # mode I;16
    }
    for name, img in files.items():
        img.save(folder / name)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90 degrees clockwise
    rgb.save(folder / "rotated.jpg", exif=exif, quality=95)
    expected = {name: to_rgb(img) for name, img in files.items()}
    expected["rgba.png"] = rgb  # colours under the alpha are colorized as they are, not flattened
    expected["rotated.jpg"] = rgb.transpose(Image.Transpose.ROTATE_270)
    return expected


def test_every_mode_comes_back_upright_full_size_same_format(ckpts, photo, tmp_path):
    (tmp_path / "in").mkdir()
    expected = _write_modes(tmp_path / "in", photo)
    assert run(tmp_path / "in", "--ckpt", ckpts[0], "-o", tmp_path / "out") == 0
    for name, want in expected.items():
        out = Image.open(tmp_path / "out" / name)
        assert out.format == Image.open(tmp_path / "in" / name).format, name
        assert out.size == want.size, name
        got = np.asarray(out.convert("RGB"))
        tolerance = 2.0 if name.endswith(".jpg") else 1.0  # JPEG re-encoding adds its own error
        # Median: gamut clipping may lift L where the predicted colour cannot exist (very dark reds).
        assert np.median(np.abs(lightness(got) - lightness(np.asarray(want)))) < tolerance, name
    rgba_in, rgba_out = Image.open(tmp_path / "in" / "rgba.png"), Image.open(tmp_path / "out" / "rgba.png")
    assert rgba_out.mode == "RGBA"
    assert np.array_equal(np.asarray(rgba_out.getchannel("A")), np.asarray(rgba_in.getchannel("A")))


def test_rotated_jpeg_is_decoded_upright(photo, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(tmp_path / "r.jpg", exif=exif, quality=95)
    picture = read_picture(tmp_path / "r.jpg")
    assert picture.rgb.shape == (photo.shape[1], photo.shape[0], 3)
    assert picture.alpha is None and picture.format == "jpg"


def test_format_option_and_alpha_flattened_for_jpeg(ckpts, photo, tmp_path):
    rgba = Image.fromarray(photo)
    rgba.putalpha(0)  # fully transparent: flattened onto white
    rgba.save(tmp_path / "clear.png")
    assert run(tmp_path / "clear.png", "--ckpt", ckpts[0], "-o", tmp_path / "out", "--format", "jpg") == 0
    out = Image.open(tmp_path / "out" / "clear.jpg")
    assert out.format == "JPEG" and out.mode == "RGB" and np.asarray(out).min() > 240
    assert run(tmp_path / "clear.png", "--ckpt", ckpts[0], "-o", tmp_path / "out", "--format", "webp") == 0
    assert Image.open(tmp_path / "out" / "clear.webp").mode == "RGBA"


def test_several_models_give_one_output_each_and_a_labelled_strip(ckpts, photo, tmp_path):
    Image.fromarray(photo).save(tmp_path / "p.jpg")
    assert run(tmp_path / "p.jpg", "--ckpt", ckpts[0], "--ckpt", ckpts[1], "-o", tmp_path / "out") == 0
    names = model_names(ckpts)
    assert names == ["alpha", "beta"], "named after their runs"
    outputs = [np.asarray(Image.open(tmp_path / "out" / n / "p.jpg")) for n in names]
    assert all(o.shape == photo.shape for o in outputs)
    # Each output is its own model's: the same as that model run alone, and the two differ.
    for ckpt, name, output in zip(ckpts, names, outputs):
        assert run(tmp_path / "p.jpg", "--ckpt", ckpt, "-o", tmp_path / "alone" / name) == 0
        assert np.array_equal(np.asarray(Image.open(tmp_path / "alone" / name / "p.jpg")), output)
    assert not np.array_equal(outputs[0], outputs[1]), "two different models, two results"
    strip = Image.open(tmp_path / "out" / COMPARE_DIR / "p.jpg")
    assert strip.width >= 3 * photo.shape[1] and strip.height > photo.shape[0]


def test_all_models_from_a_folder(ckpts, photo, tmp_path):
    Image.fromarray(photo).save(tmp_path / "p.png")
    folder = ckpts[0].parents[3]
    assert run(tmp_path / "p.png", "--ckpt-dir", folder, "--all-models", "-o", tmp_path / "out") == 0
    strip = np.asarray(Image.open(tmp_path / "out" / COMPARE_DIR / "p.png"))
    assert strip.shape[1] >= 5 * photo.shape[1], "gray + best and last of each of the two runs"


def test_comparison_strip_labels_each_panel():
    panels = [(name, np.full((40, 30, 3), 128, np.uint8)) for name in ("gray", "model")]
    strip = comparison_strip(panels)
    assert strip.shape[1] == 2 * 30 + 4 and strip.shape[0] > 40
    label_rows = strip[: strip.shape[0] - 40]
    assert (label_rows < 100).any(), "names are written above the pictures"


def test_bad_files_are_reported_and_the_rest_still_done(ckpts, photo, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "good.jpg")
    (folder / "notes.jpg").write_text("not an image")
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    status = run(folder, tmp_path / "missing.png", "--ckpt", ckpts[0], "-o", tmp_path / "out")
    assert status == 1
    assert (tmp_path / "out" / "good.jpg").is_file()
    errors = capsys.readouterr().err
    for name in ("notes.jpg", "truncated.jpg", "missing.png"):
        assert name in errors
    assert "3 input(s) failed" in errors


def test_never_writes_onto_an_input(ckpts, photo, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "p.jpg")
    before = (folder / "p.jpg").read_bytes()
    assert run(folder, "--ckpt", ckpts[0], "-o", folder) == 2
    assert run(folder, "--ckpt", ckpts[0], "-o", folder / "colour") == 2
    assert "inside the input folder" in capsys.readouterr().err
    assert run(folder / "p.jpg", "--ckpt", ckpts[0], "-o", folder) == 0
    assert f"{folder / 'p.jpg'} exists: wrote {folder / 'p-1.jpg'} instead" in capsys.readouterr().err
    assert (folder / "p.jpg").read_bytes() == before
    assert sorted(folder.iterdir()) == [folder / "p-1.jpg", folder / "p.jpg"]
    (tmp_path / "other").mkdir()
    Image.fromarray(photo[::-1]).save(tmp_path / "other" / "p.jpg")
    assert (
        run(folder / "p.jpg", tmp_path / "other" / "p.jpg", "--ckpt", ckpts[0], "-o", tmp_path / "out") == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p-1.jpg", "p.jpg"], (
        "two inputs, two files"
    )


def test_an_unrelated_file_with_the_output_name_is_not_replaced(ckpts, photo, tmp_path, capsys):
    folder = tmp_path / "dir"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "photo.jpg")
    Image.new("RGB", (5, 5), "blue").save(folder / "photo.png")  # someone's own, unrelated picture
    mine = (folder / "photo.png").read_bytes()
    assert run(folder / "photo.jpg", "--ckpt", ckpts[0], "-o", folder, "--format", "png") == 0
    assert (folder / "photo.png").read_bytes() == mine
    assert Image.open(folder / "photo-1.png").size == (photo.shape[1], photo.shape[0])
    err = capsys.readouterr().err
    assert "photo.png exists: wrote" in err and "1 name(s) were taken" in err


def test_empty_folder_huge_picture_and_animation_are_reported(ckpts, photo, tmp_path, capsys):
    from tests.test_pictures import png_header_only

    (tmp_path / "empty").mkdir()
    assert run(tmp_path / "empty", "--ckpt", ckpts[0], "-o", tmp_path / "out") == 2
    assert "no pictures in" in capsys.readouterr().err
    (tmp_path / "bomb.png").write_bytes(png_header_only(12000, 12000))
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1])]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert run(tmp_path / "bomb.png", tmp_path / "anim.gif", "--ckpt", ckpts[0], "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "bomb.png: 12000 x 12000 = 144.0 megapixels is over the 50 megapixel limit" in err
    assert "anim.gif: animated (2 frames): only the first frame was colorized" in err
    assert Image.open(tmp_path / "out" / "anim.png").size == (photo.shape[1], photo.shape[0])


def test_clear_errors_for_missing_model(tmp_path, capsys):
    assert run(tmp_path, "-o", tmp_path / "out") == 2
    assert "--ckpt" in capsys.readouterr().err
    assert run(tmp_path, "--ckpt", tmp_path / "none.ckpt", "-o", tmp_path / "out") == 2
    assert "checkpoint not found" in capsys.readouterr().err
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    assert run(tmp_path, "--ckpt", tmp_path / "notes.ckpt", "-o", tmp_path / "out") == 2
    assert "notes.ckpt" in capsys.readouterr().err  # the loader's own message (tests/test_reliability.py)


def test_flip_tta_from_the_command_line(ckpts, photo, tmp_path):
    """The option is wired through (the averaging itself: tests/test_inference.py)."""
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(photo[:, ::-1].copy()).save(tmp_path / "mirror.png")
    assert run(tmp_path / "p.png", tmp_path / "mirror.png", "--ckpt", ckpts[0], "--flip-tta", "-o", tmp_path / "o") == 0
    out = np.array(Image.open(tmp_path / "o" / "p.png")).astype(int)
    mirror = np.array(Image.open(tmp_path / "o" / "mirror.png")).astype(int)[:, ::-1]
    # averaged over both orientations, a photo and its mirror image get the same colours (up to rounding)
    assert out.shape == photo.shape and np.abs(out - mirror).max() <= 2
