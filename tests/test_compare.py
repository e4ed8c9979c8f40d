"""Comparing runs from their CSV logs: right last/best values, one curve PNG per metric, a readable report."""

from __future__ import annotations

import csv
import json

import pytest
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from colorlab.commands.compare import main
from colorlab.report import higher_is_better
from colorlab.training.compare import find_runs, read_run


def write_run(root, version: str, delta_e: list[float], psnr: list[float], test: dict | None = None):
    """A run folder written by Lightning's CSVLogger: per epoch a train loss and validation metrics."""
    logger = CSVLogger(save_dir=str(root), name="exp", version=version)
    for epoch, (d, p) in enumerate(zip(delta_e, psnr)):
        logger.log_metrics({"train/loss": 1.0 / (epoch + 1), "epoch": epoch}, step=epoch * 10 + 5)
        logger.log_metrics({"val/delta_e00": d, "val/psnr": p, "val/colorfulness": 20.0 + epoch, "epoch": epoch},
                           step=epoch * 10 + 9)  # fmt: skip
    if test is not None:
        logger.log_metrics({f"test/{k}": v for k, v in test.items()}, step=len(delta_e) * 10)
    logger.save()
    return root / "exp" / version


def test_reads_last_and_best_values(tmp_path):
    folder = write_run(tmp_path, "a", delta_e=[12.0, 9.0, 10.0], psnr=[20.0, 23.0, 22.0], test={"psnr": 22.5})
    run = read_run(folder)
    assert run.name == "exp/a" and run.epochs == 3 and run.steps == 30
    assert run.last("val/delta_e00") == 10.0 and run.best("val/delta_e00") == 9.0
    assert run.last("val/psnr") == 22.0 and run.best("val/psnr") == 23.0
    assert run.best("val/colorfulness") is None  # neither direction is better
    assert run.series["train/loss"] == [(5, 1.0), (15, 0.5), (25, pytest.approx(1 / 3))]
    assert run.test == {"psnr": 22.5}
    (folder / "results.json").write_text(json.dumps({"test": {"psnr": 24.0, "ssim": 0.9}}))
    assert read_run(folder).test == {"psnr": 24.0, "ssim": 0.9}  # the experiment report wins


def test_directions():
    assert higher_is_better("val/psnr") and higher_is_better("test/ssim")
    assert higher_is_better("val/delta_e00") is False and higher_is_better("train/loss") is False
    assert higher_is_better("val/colorfulness") is None and higher_is_better("lr-AdamW") is None
    assert higher_is_better("train/loss_critic") is None  # an adversary's loss is not "better" when low


def test_cli_report_with_curves_and_table(tmp_path):
    write_run(tmp_path, "a", delta_e=[12.0, 9.0], psnr=[20.0, 23.0])
    write_run(tmp_path, "b", delta_e=[15.0, 14.0, 13.0], psnr=[18.0, 19.0, 19.5], test={"delta_e00": 13.2})
    assert [p.name for p in find_runs([tmp_path / "exp"])] == ["a", "b"]
    out = tmp_path / "report"
    paths = main(
        [str(tmp_path / "exp" / "a"), str(tmp_path / "exp" / "b"), "--names", "unet", "gan", "-o", str(out)]
    )
    curves = sorted(p.name for p in (out / "curves").iterdir())
    assert curves == ["train_loss.png", "val_colorfulness.png", "val_delta_e00.png", "val_psnr.png"]
    assert Image.open(out / "curves" / "val_psnr.png").size[0] > 300
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["run"] for r in rows] == ["unet", "gan"]
    assert rows[0]["val/delta_e00 last / best"] == "9.000 / 9.000"
    assert rows[1]["val/psnr last / best"] == "19.500 / 19.500" and rows[1]["test/delta_e00"] == "13.2"
    assert rows[0]["test/delta_e00"] == ""  # run a was never tested
    markdown = paths["markdown"].read_text()
    assert "| gan | 3 | 30 |" in markdown and "](curves/val_delta_e00.png)" in markdown
    assert "<img src='curves/val_psnr.png'" in paths["html"].read_text()


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        main([str(tmp_path)])
    with pytest.raises(SystemExit, match="2 runs found but 1 names"):
        write_run(tmp_path, "a", [1.0], [2.0])
        write_run(tmp_path, "b", [1.0], [2.0])
        main([str(tmp_path / "exp"), "--names", "x", "-o", str(tmp_path / "out")])
