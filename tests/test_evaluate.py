"""Evaluation: same numbers as Lightning's test stage, a gray baseline row, reports a person can open."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from colorlab.commands.evaluate import main
from colorlab.data.images import list_images
from colorlab.inference.evaluation import GRAY, TRUTH, class_agreement, evaluate
from colorlab.inference.pipeline import Colorizer, model_names
from tests.tiny_experiment import SIZE, tiny_config, write_photos


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A briefly trained tiny checkpoint, its CLI and the photo folder it was trained on."""
    from colorlab.training.cli import lightning_main

    root = tmp_path_factory.mktemp("evaluate")
    photos = write_photos(root / "photos")
    cli = lightning_main(["fit", "--config", str(tiny_config(root, photos))])
    return cli, Path(cli.trainer.checkpoint_callback.best_model_path), photos


def test_same_numbers_as_lightning_test_stage(tiny_run, tmp_path):
    cli, ckpt, photos = tiny_run
    tested = cli.trainer.test(cli.model, cli.datamodule, ckpt_path=str(ckpt), verbose=False)[0]
    files = list_images(photos / "val")
    result = evaluate([Colorizer.load(ckpt, SIZE, name="tiny")], files, tmp_path, grid_images=0)
    for metric in ("psnr", "ssim", "delta_e00", "colorfulness"):
        # Same images, same preprocessing, one image at a time instead of batches of 3: float32 rounding only.
        assert result["means"]["tiny"][metric] == pytest.approx(tested[f"test/{metric}"], rel=1e-4, abs=1e-4)


def test_cli_writes_tables_and_a_page_whose_links_resolve(tiny_run, tmp_path, monkeypatch):
    _, ckpt, photos = tiny_run
    monkeypatch.setenv("COLORLAB_WEIGHTS", str(tmp_path / "no-weights"))
    out = tmp_path / "report"
    result = main(["--ckpt", str(ckpt), str(ckpt), "--names", "a", "b", "--data", str(photos / "val"),
                   "--size", str(SIZE), "-o", str(out)])  # fmt: skip
    baselines = [GRAY, "mean ab (train)", "L->ab lookup (train)"]  # fitted on the run's training split
    assert result["models"] == [*baselines, "a", "b"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 4 * 6 + 6  # (3 baselines, a, b, truth) per image, then one mean row each
    means = {r["model"]: r for r in rows if r["image"] == "mean"}
    assert means["a"] == {**means["b"], "model": "a"}  # the same checkpoint twice scores the same
    assert float(means[GRAY]["colorfulness"]) < 0.5 < float(means[TRUTH]["colorfulness"])
    summary = (out / "summary.md").read_text()
    assert f"| {GRAY} |" in summary and "| a |" in summary and "| L->ab lookup (train) |" in summary
    assert "a: learning: " in summary and "baselines fitted on" in summary
    assert {"a", "b"} == set(json.loads((out / "evaluation.json").read_text())["learning"])
    assert "Fréchet EffNet" in summary and float(means["a"]["frechet_effnet"]) >= 0
    assert ("LPIPS skipped" in summary) != ("lpips" in rows[0])  # computed only from local weights
    assert "FID skipped" in summary or "fid" in rows[0]
    page = (out / "index.html").read_text()
    links = re.findall(r"(?:href|src)='([^']+)'", page)
    assert len(links) == 2 * 4 * 6 and all((out / link).is_file() for link in links)
    assert Image.open(out / "images" / "model1" / "full" / "0000_crop0.jpg").size == (SIZE, SIZE)
    assert (out / "grid.png").is_file()


def test_model_runs_at_its_training_scale(tiny_run, tmp_path):
    _, ckpt, _ = tiny_run
    assert Colorizer.load(ckpt).side == SIZE  # the tiny run trained on native-size crops: its image_size
    config = ckpt.parent.parent / "config.yaml"
    run_config = yaml.safe_load(config.read_text())
    run_config["data"]["init_args"]["resize"] = 96
    copy = tmp_path / "run" / "checkpoints" / ckpt.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(ckpt.read_bytes())
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(run_config))
    colorizer = Colorizer.load(copy)
    assert colorizer.model_size(300, 450) == (96, 144)  # the shorter side at the training resize
    assert Colorizer.load(copy, side=64).model_size(300, 450) == (64, 96)


def test_checkpoint_names_are_run_names_made_unique():
    assert model_names(["runs/unet/v1/checkpoints/best.ckpt", "runs/gan/v1/checkpoints/last.ckpt"]) == [
        "unet",
        "gan",
    ]
    assert model_names(["runs/unet/v1/checkpoints/best.ckpt", "runs/unet/v2/checkpoints/best.ckpt"]) == [
        "unet/v1/best", "unet/v2/best"]  # fmt: skip
    assert model_names(["runs/u/v1/checkpoints/a.ckpt", "runs/u/v1/checkpoints/b.ckpt"]) == ["u/a", "u/b"]
    assert model_names(["x/model.ckpt", "y/other.ckpt"]) == ["model", "other"]


def test_class_agreement():
    truth = torch.tensor([[0.0, 5.0, 1.0, 0, 0, 0, 0], [3.0, 0.0, 1.0, 0, 0, 0, 0]])
    pred = torch.tensor([[0.0, 4.0, 9.0, 0, 0, 0, 0], [0.0, 1.0, 2.0, 3, 4, 5, 9]])
    scores = class_agreement(pred, truth)
    assert scores["top1_agree"].tolist() == [0.0, 0.0]
    assert scores["top5_agree"].tolist() == [1.0, 0.0]
    assert class_agreement(truth, truth)["top1_agree"].tolist() == [1.0, 1.0]


class _ColourStats(torch.nn.Module):
    """A stand-in FID feature extractor: per-channel mean and spread of uint8 pictures."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().flatten(2)
        return torch.cat([x.mean(-1), x.std(-1)], dim=1)


class _MeanAbs(torch.nn.Module):
    """A stand-in LPIPS with the lpips package's call signature: ``(B, 1, 1, 1)`` distances."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        assert normalize  # colorlab passes [0, 1] images and lets LPIPS rescale them
        return (x - y).abs().mean(dim=(1, 2, 3), keepdim=True)


def test_fid_and_lpips_are_computed_with_given_networks(tiny_run, tmp_path):
    _, ckpt, photos = tiny_run
    files = list_images(photos / "val")
    result = evaluate([Colorizer.load(ckpt, SIZE, name="tiny")], files, tmp_path,
                      lpips=_MeanAbs(), fid_extractor=_ColourStats(), grid_images=0)  # fmt: skip
    fid = {name: result["means"][name]["fid"] for name in (GRAY, "tiny")}
    assert all(value > 0 and math.isfinite(value) for value in fid.values()), fid
    assert "fid" not in result["means"][TRUTH]
    assert all(0 < result["means"][name]["lpips"] < 1 for name in (GRAY, "tiny"))
    assert len([r for r in result["rows"] if "lpips" in r]) == 2 * len(files)


def test_transparent_photos_are_scored_on_white_and_unreadable_files_skipped(tiny_run, tmp_path):
    _, ckpt, photos = tiny_run
    data = tmp_path / "data"
    data.mkdir()
    clear = Image.open(next((photos / "val").iterdir())).convert("RGBA")
    clear.putalpha(0)  # a viewer shows a white page: so does every method, whatever its colours
    clear.save(data / "clear.png")
    (data / "notes.png").write_text("not an image")
    files = sorted(data.iterdir())
    result = evaluate(
        [Colorizer.load(ckpt, SIZE, name="tiny")], files, tmp_path / "out", grid_images=0, frechet=False
    )
    assert list(result["skipped"]) == [data / "notes.png"]
    assert "not a readable image" in result["skipped"][data / "notes.png"]
    assert {r["model"] for r in result["rows"]} == {GRAY, "tiny", TRUTH}
    assert all(r["delta_e00"] < 1e-3 for r in result["rows"] if r["model"] != TRUTH)
    with pytest.raises(ValueError, match="none of the 1 files could be read"):
        evaluate([], [data / "notes.png"], tmp_path / "out2", grid_images=0, frechet=False)
