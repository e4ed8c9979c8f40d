"""Trivial baselines: the lookup learns colour that is a function of L, the mean ab is the true mean, fitting
is seeded, capped and uses the training split only, and the verdict picks the best baseline per direction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from colorlab.baselines import (
    Baselines,
    baselines_for_run,
    fit_baselines,
    fit_on_datamodule,
    learning_verdict,
    verdict_line,
)
from colorlab.color import lab_normalized_to_rgb
from colorlab.metrics import DeltaE2000

GRAY, MEAN_AB, LOOKUP = "gray", "mean_ab", "lookup"


def _synthetic(n: int = 6, size: int = 16, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Lab batches whose ab is a fixed function of L (dark = blue-ish, bright = orange-ish)."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        L = torch.rand(4, 1, size, size, generator=generator) * 1.6 - 0.8
        ab = torch.cat([0.25 * torch.sin(3 * L), 0.3 * L], dim=1)
        batches.append({"L": L, "ab": ab})
    return batches


def test_lookup_beats_gray_when_colour_is_a_function_of_l():
    baselines = fit_baselines(_synthetic(seed=0), bins=64)
    test = _synthetic(n=2, seed=1)
    errors = {}
    for name, colorizer in baselines.colorizers().items():
        metric = DeltaE2000()
        for batch in test:
            truth = lab_normalized_to_rgb(batch["L"], batch["ab"])
            metric.update(colorizer.colorize_rgb(batch["L"]), truth)
        errors[name] = metric.compute().item()
    assert errors[LOOKUP] < 0.2 * errors[GRAY], errors
    assert errors[LOOKUP] < errors[MEAN_AB] and errors[GRAY] > 1.0
    assert baselines.colorizers()[LOOKUP].colorize(test[0]["L"]).shape == test[0]["ab"].shape


def test_mean_ab_equals_the_true_mean():
    generator = torch.Generator().manual_seed(2)
    batches = [{"L": torch.rand(3, 1, 8, 8, generator=generator) * 2 - 1,
                "ab": torch.randn(3, 2, 8, 8, generator=generator) * 0.2 + torch.tensor([0.1, -0.05]).view(1, 2, 1, 1)}
               for _ in range(5)]  # fmt: skip
    baselines = fit_baselines(batches)
    true_mean = torch.cat([b["ab"] for b in batches]).mean(dim=(0, 2, 3))
    assert torch.allclose(baselines.mean_ab, true_mean, atol=1e-6)
    assert baselines.pixels == 5 * 3 * 64 and baselines.images == 15
    out = baselines.colorizers()[MEAN_AB].colorize(torch.zeros(2, 1, 5, 7))
    assert out.shape == (2, 2, 5, 7) and torch.allclose(out[1, :, 4, 6], true_mean)
    assert baselines.colorizers()[GRAY].colorize(torch.zeros(2, 1, 5, 7)).abs().max() == 0


def test_empty_bins_take_the_nearest_filled_bin():
    L = torch.full((1, 1, 2, 2), -0.9)  # every pixel in one dark bin
    ab = torch.full((1, 2, 2, 2), 0.2)
    baselines = fit_baselines([{"L": L, "ab": ab}], bins=10)
    assert torch.allclose(baselines.lookup, torch.full((10, 2), 0.2))
    bright = baselines.colorizers()[LOOKUP].colorize(torch.ones(1, 1, 3, 3))
    assert torch.allclose(bright, torch.full_like(bright, 0.2))


def test_pixel_cap_stops_fitting():
    baselines = fit_baselines(_synthetic(n=10, size=8), max_pixels=4 * 64 * 3)
    assert baselines.images == 12 and baselines.pixels == 12 * 64


def test_degraded_input_l_is_what_the_lookup_maps():
    L, L_input = torch.full((1, 1, 2, 2), 0.9), torch.full((1, 1, 2, 2), -0.9)
    ab = torch.full((1, 2, 2, 2), 0.3)
    table = fit_baselines([{"L": L, "L_input": L_input, "ab": ab}], bins=4).lookup
    assert torch.allclose(table[0], torch.tensor([0.3, 0.3]))


def test_save_and_load_round_trip(tmp_path: Path):
    baselines = fit_baselines(_synthetic(n=2), bins=16, source="synthetic")
    loaded = Baselines.load(baselines.save(tmp_path / "baselines.json"))
    assert torch.equal(loaded.lookup, baselines.lookup) and torch.equal(loaded.mean_ab, baselines.mean_ab)
    assert (loaded.images, loaded.pixels, loaded.source) == (baselines.images, baselines.pixels, "synthetic")


def _tinted_tree(root: Path) -> Path:
    """train/ holds red photos, val/ (the test split) blue ones: a fit that peeks at the test split shows."""
    for split, colour in (("train", (200, 40, 40)), ("val", (40, 40, 200))):
        (root / split).mkdir(parents=True)
        for i in range(6):
            pixels = torch.tensor(colour, dtype=torch.uint8).view(1, 1, 3).expand(12, 12, 3).clone()
            pixels += i  # distinct files
            Image.fromarray(pixels.numpy()).save(root / split / f"{i}.png")
    return root


def test_fit_on_datamodule_uses_the_training_split_only_and_is_seeded(tmp_path: Path):
    from colorlab.data import FolderDataModule

    root = _tinted_tree(tmp_path)
    first = fit_on_datamodule(FolderDataModule(root=str(root), image_size=8), max_images=4)
    again = fit_on_datamodule(FolderDataModule(root=str(root), image_size=8), max_images=4)
    assert torch.equal(first.lookup, again.lookup) and first.images == 4
    assert first.mean_ab[0] > 0.3  # a* of red, not pulled towards the blue test photos
    assert "training items" in first.source


def test_run_folder_baselines_from_file_or_config(tmp_path: Path):
    root = _tinted_tree(tmp_path / "photos")
    run = tmp_path / "runs" / "x" / "v1"
    (run / "checkpoints").mkdir(parents=True)
    config = {"seed_everything": 3, "data": {"class_path": "colorlab.data.FolderDataModule",
                                              "init_args": {"root": str(root), "image_size": 8}}}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    fitted = baselines_for_run(run)
    assert (
        fitted.mean_ab[0] > 0.3 and fitted.images == 5
    )  # the 5 training photos left after the val carve-out
    saved = Baselines(torch.tensor([0.5, 0.5]), torch.zeros(4, 2), 1, 1, "saved")
    saved.save(run / "baselines.json")
    assert baselines_for_run(run).source == "saved"
    (run / "phase").mkdir()
    assert baselines_for_run(run / "phase").source == "saved"  # a phase folder finds its run's file
    with pytest.raises(FileNotFoundError):
        baselines_for_run(tmp_path / "empty")


def test_learning_verdict_per_direction():
    baselines = {GRAY: {"delta_e00": 15.5, "psnr": 22.0}, LOOKUP: {"delta_e00": 15.2, "psnr": 22.5}}
    verdict = learning_verdict({"delta_e00": 15.3, "psnr": 23.0}, baselines)
    assert verdict["learning"] is False and verdict["best_baseline"] == LOOKUP
    assert verdict["margin"] == pytest.approx(-0.1)
    assert "learning: no" in verdict_line(verdict)
    verdict = learning_verdict({"delta_e00": 15.3, "psnr": 23.0}, baselines, metric="psnr")
    assert verdict["learning"] is True and verdict["margin"] == pytest.approx(0.5)
    assert learning_verdict({"colorfulness": 20.0}, baselines, metric="colorfulness") is None
    assert "unknown" in verdict_line(None)


def test_experiment_report_shows_splits_baselines_and_verdict(tmp_path: Path):
    import json

    from colorlab.training.experiment import run_experiment
    from tests.tiny_experiment import tiny_config, write_photos

    photos = write_photos(tmp_path / "photos", n=6)
    config = tiny_config(tmp_path, photos, max_steps=4)
    overrides = [
        "--run.frechet_effnet=true",
        "--run.monitor=val/frechet_effnet",
        "--data.init_args.val_fraction=0.34",
    ]
    results = run_experiment([str(config)], overrides)
    run_dir = tmp_path / "runs" / "tiny" / results["version"]
    assert Baselines.load(run_dir / "baselines.json").images == 4
    assert {k: v["size"] for k, v in results["splits"].items()} == {"train": 4, "val": 2, "test": 6}
    assert set(results["reference"]) == {"gray", "mean_ab", "lookup", "truth"}
    for key in ("gray", "mean_ab", "lookup"):
        assert set(results["reference"][key]) >= {"delta_e00", "colorfulness_gap", "frechet_effnet"}
    assert results["reference"]["gray"]["colorfulness"] < 1
    assert "frechet_effnet" in results["test"] and results["selection"]["monitor"] == "val/frechet_effnet"
    # selected on Fréchet, so the lowest-val-ΔE00 checkpoint is kept beside it for like-with-like tables
    assert Path(results["delta_e00_checkpoint"]).name.startswith("val_delta_e00-")
    assert set(results["learning"]) == {"delta_e00", "frechet_effnet"}
    assert json.loads((run_dir / "results.json").read_text())["learning"] == results["learning"]
    report = (run_dir / "report.md").read_text()
    assert "learning: " in report and "**test** (6 images)" in report and "L->ab lookup (train)" in report
    assert "Fréchet EffNet" in report
    _results_script_reports_the_run(tmp_path, run_dir, photos)


def _results_script_reports_the_run(tmp_path: Path, run_dir: Path, photos: Path) -> None:
    """scripts/results.py scores the run's checkpoint with ``evaluate`` on the test folder and writes the table
    (model row with its verdict, baseline rows, the truth), the grid and the val curve with baseline levels."""
    import importlib.util
    import json
    import os
    import sys
    from unittest import mock

    spec = importlib.util.spec_from_file_location("results_script", Path(__file__).parents[1] / "scripts/results.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.REPO, script.DOCS = tmp_path, tmp_path / "docs"
    script.LOGS, script.EVALUATION = tmp_path / "results-logs", tmp_path / "results-evaluate"
    script.HEADLINE, script.STUDIES, script.EXPERIMENTS = {"tiny": []}, {}, {"tiny": []}
    script.SEEDS = (0, 7)  # the tiny run's seed_everything is 0
    script.DOCS.mkdir()
    (tmp_path / "experiments").mkdir(exist_ok=True)
    (tmp_path / "experiments" / "tiny.yaml").write_text("# the experiment of the run below\n")
    with mock.patch.dict(os.environ, {"COLORLAB_DATA": str(photos)}):  # the script's record of the run it made
        record = {"fingerprint": script.fingerprint("tiny", 0, None), "run_dir": str(run_dir.relative_to(tmp_path))}
    script.LOGS.mkdir(parents=True)
    script.record_path("tiny", 0).write_text(json.dumps(record))
    with mock.patch.dict(os.environ, {"COLORLAB_DATA": str(photos)}), mock.patch.object(
        sys, "argv", ["results.py", "--table-only"]
    ):
        script.main()
    table = (script.DOCS / "results.md").read_text()
    assert "| `tiny` | RegressionColorizer | 0 |" in table and "`val/frechet_effnet`" in table
    assert table.count("| `tiny` |") == 2 and "`val/delta_e00`" in table  # its own pick and the ΔE00 pick
    assert "- best family: `tiny`" in table and "families beating the best trivial colorizer" in table
    for label in ("gray (ab = 0)", "mean ab (train)", "L->ab lookup (train)", "ground truth"):
        assert f"| {label} |" in table
    row = table.split("| `tiny` |")[1].splitlines()[0]
    assert " (+" in row or " (-" in row  # the learning cell: yes/no and the margin to the best baseline
    assert (script.DOCS / "results_grid.png").is_file() and (script.DOCS / "results_val_delta_e00.png").is_file()


def test_val_delta_e00_ranks_the_baselines_on_the_validation_split(tmp_path: Path):
    from colorlab.baselines import val_delta_e00
    from colorlab.data import FolderDataModule

    root = _tinted_tree(tmp_path)
    datamodule = FolderDataModule(root=str(root), image_size=8, val_fraction=0.5)
    fitted = fit_on_datamodule(datamodule, max_images=4)
    scores = val_delta_e00(fitted, datamodule)
    assert set(scores) == {GRAY, MEAN_AB, LOOKUP}
    # every training and validation photo is red: the fitted tint is far closer to the truth than gray
    assert scores[MEAN_AB] < scores[GRAY] - 10 and scores[LOOKUP] < scores[GRAY] - 10


def test_curve_plot_draws_baseline_levels(tmp_path: Path):
    from colorlab.training.compare import RunLog
    from colorlab.visualize import plot_curves

    run = RunLog("a", tmp_path, {"val/delta_e00": [(0, 15.0), (100, 12.0)]})
    pngs = plot_curves([run], tmp_path / "curves", {"val/delta_e00": {"gray": 14.0, "lookup": 13.5}})
    image = Image.open(pngs["val/delta_e00"])
    assert image.size == (600, 360)
    # drawing the two levels changes the picture (the same curve without them differs)
    plain = Image.open(plot_curves([run], tmp_path / "plain")["val/delta_e00"])
    assert image.tobytes() != plain.tobytes()
