"""The command line end to end: fit then test, experiment reports, resume, seeds, errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colorlab.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "experiments" / "quickstart.yaml")


def tiny(root: Path, *extra: str) -> list[str]:
    """Overrides that shrink the quickstart experiment to a few seconds."""
    return [
        "--config", QUICKSTART,
        f"--run.root={root}", "--run.wandb=disabled",
        "--trainer.accelerator=cpu", "--trainer.max_epochs=3", "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=1",
        "--model.init_args.net.init_args.base_channels=4", "--model.init_args.net.init_args.depth=2",
        "--data.init_args.batch_size=4", "--data.init_args.image_size=32", "--data.init_args.resize=64",
        "--data.init_args.crops_per_epoch=8", "--data.init_args.val_crops=4",
        *extra,
    ]  # fmt: skip


def test_help_and_colorize_start_without_lightning_or_timm():
    """Each of them costs seconds at start-up; ``--help`` needs neither, ``colorize --onnx`` neither (a
    checkpoint imports timm only for an encoder other than EfficientNet-Lite0: tests/test_efficientnet_lite.py)."""
    heavy = ("lightning", "timm", "torchvision", "torchmetrics")
    code = (
        "import sys, colorlab.cli, colorlab.commands.colorize\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    done = subprocess.run([sys.executable, "-m", "colorlab", "--help"], capture_output=True, text=True, check=True)
    assert "colorize" in done.stdout


def test_the_program_freezes_the_imported_libraries_out_of_the_garbage_collector():
    """``python -m colorlab CMD`` (argv from sys.argv) freezes what the command's import made; a call from Python
    (tests, notebooks) keeps its collector as it was. The collector runs in both afterwards."""
    code = (
        "import gc, sys\n"
        "from colorlab.cli import main\n"
        "as_program = sys.argv[1] == 'program'\n"
        "sys.argv = ['colorlab', 'colorize', '--help']\n"
        "try:\n"
        "    main() if as_program else main(['colorize', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(gc.get_freeze_count() > 0, gc.isenabled())"
    )
    for how, frozen in (("program", "True"), ("call", "False")):
        done = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True, check=True)
        assert done.stdout.strip().splitlines()[-1] == f"{frozen} True", how


def test_fit_then_test_from_the_command_line(tmp_path: Path):
    env_python = [sys.executable, "-m", "colorlab"]
    fit = subprocess.run([*env_python, "fit", *tiny(tmp_path), "--run.version=v1"],
                         check=False, capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-3000:]
    run_dir = tmp_path / "quickstart" / "v1"
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and list(run_dir.glob("checkpoints/best-*.ckpt"))
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
    assert list((run_dir / "images").glob("val_grid_*.png")), "the image grid reaches the CSV logger's folder"
    test = subprocess.run([*env_python, "test", *tiny(tmp_path), "--run.version=v1", f"--ckpt_path={last}"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
    assert "test/delta_e00" in test.stdout + test.stderr


def test_experiment_writes_report_grid_and_metrics(tmp_path: Path, capsys):
    results = main(["experiment", *tiny(tmp_path)])
    run_dir = tmp_path / "quickstart" / results["version"]
    for name in ("report.md", "test_metrics.csv", "results.json", "test_grid.png"):
        assert (run_dir / name).is_file(), name
    printed = capsys.readouterr().out
    assert str(run_dir / "report.md") in printed and str(run_dir / "test_grid.png") in printed
    rows = {row["model"]: row for row in csv.DictReader((run_dir / "test_metrics.csv").open())}
    baselines = {"gray (ab = 0)", "mean ab (train)", "L->ab lookup (train)"}
    assert set(rows) == {"quickstart (best checkpoint)", *baselines, "ground truth"}
    assert float(rows["gray (ab = 0)"]["colorfulness"]) < 1
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["epochs"] == 3
    assert set(saved["test"]) == {"psnr", "ssim", "delta_e00", "colorfulness", "colorfulness_gap"}
    # A single-phase run is a run of one phase: the same schema, no phases.json, the test logged in its CSV.
    (phase,) = saved["phases"]
    assert phase["name"] == "quickstart" and phase["test"] == saved["test"]
    assert saved["best_checkpoint"] == phase["handover_checkpoint"] and saved["run_dir"] == str(run_dir)
    assert not (run_dir / "phases.json").exists()
    assert any(row.get("test/delta_e00") for row in csv.DictReader((run_dir / "metrics.csv").open()))
    from PIL import Image

    grid = Image.open(run_dir / "test_grid.png")
    assert grid.width > 3 * 32 and grid.mode == "RGB"


def test_interrupted_run_resumes_to_the_same_end(tmp_path: Path):
    full = main(["experiment", *tiny(tmp_path / "a")])
    crash = ["--trainer.callbacks+=tests.helpers.CrashAtEpoch", "--trainer.callbacks.init_args.epoch=2"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["experiment", *tiny(tmp_path / "b", *crash)])
    run_dirs = list((tmp_path / "b" / "quickstart").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "checkpoints" / "last.ckpt").is_file()
    resumed = main(["experiment", "--resume", *tiny(tmp_path / "b")])
    assert resumed["version"] == run_dirs[0].name, "resume continues the same run folder"
    assert (resumed["epochs"], resumed["steps"]) == (full["epochs"], full["steps"])
    epochs = {row["epoch"] for row in csv.DictReader((run_dirs[0] / "metrics.csv").open()) if row["val/psnr"]}
    assert epochs == {"0", "1", "2"}, "validation of every epoch is in one log"


def test_resume_without_a_previous_run_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SystemExit, match="nothing to resume"):
        main(["experiment", "--resume", *tiny(tmp_path)])


def test_same_seed_same_weights_on_cpu(tmp_path: Path):
    def final_weights(root: Path) -> dict[str, torch.Tensor]:
        result = main(["experiment", *tiny(root, "--trainer.max_epochs=1", "--seed_everything=7")])
        checkpoint = root / "quickstart" / result["version"] / "checkpoints" / "last.ckpt"
        return torch.load(checkpoint, weights_only=False)["state_dict"]

    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_help_and_unknown_command(capsys):
    main([])
    assert "experiment" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["nonsense"])


@pytest.mark.parametrize("form", [["-m", "colorlab.sweep"], ["-m", "colorlab", "sweep"]])
def test_both_sweep_forms_run_the_sweep_command(form, tmp_path):
    """The design card's ``python -m colorlab.sweep`` and the dispatcher's ``python -m colorlab sweep``."""
    out = subprocess.run([sys.executable, *form, "--help"], capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    assert "--config" in out.stdout and "sweep" in out.stdout
    missing = subprocess.run([sys.executable, *form, "--config", str(tmp_path / "none.yaml")],
                             capture_output=True, text=True, cwd=REPO, check=False)  # fmt: skip
    assert missing.returncode != 0 and "none.yaml" in missing.stderr
