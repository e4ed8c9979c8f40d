"""Every approach family under real 2-process CPU DDP (gloo), launched as a user would launch it.

Each launch is a subprocess (Lightning's DDP launcher re-runs the command for rank 1), so the pytest process
never joins a process group. One launch per test: the regression test drives the README's command itself,
the family test runs one YAML per family in one launch (both ranks run each YAML), shrunk to 2 steps at 32 px.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from colorlab.approaches.base import load_approach
from colorlab.baselines import Baselines
from colorlab.data.datamodule import FolderDataModule
from colorlab.runs.folder import BASELINES_FILE, RunFolder
from colorlab.training.experiment import reference_metrics
from tests.ddp_run import DDP, tiny_overrides
from tests.tiny_experiment import SIZE, tiny_config, write_photos

REPO = Path(__file__).resolve().parents[1]

# One YAML per family (regression runs through the README command in its own test).
FAMILIES = [
    "zhang_cic",
    "nogan_stable",
    "pix2pix",
    "vae_unet",
    "bigcolor_ema",
    "chromagan",
    "restore_colorize",
]


def launch(args: list[str], cwd: Path, data: Path) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` from ``cwd`` as its own process tree (one thread per process, W&B offline)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "WANDB_MODE": "offline",
           "COLORLAB_DATA": str(data)}  # fmt: skip
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_PORT", "COLORLAB_RUN_VERSION"):
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, *args], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def assert_same_weights_on_both_ranks(out: Path, stem: str) -> None:
    """The two ranks of a run written by tests/ddp_run.py ended with bitwise-equal weights."""
    ranks = [torch.load(out / f"{stem}.weights.rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0], stem
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), f"{stem}: {key} differs between ranks"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 real-photo crops in train/ and val/: an odd test set, so 2 ranks get uneven shares."""
    return write_photos(tmp_path_factory.mktemp("ddp_photos"), n=5)


def single_process_test(checkpoint: Path, photos: Path) -> dict[str, float]:
    """The test metrics of ``checkpoint`` on the photos' val/ folder, in this one process."""
    model = load_approach(checkpoint)
    data = FolderDataModule(root=str(photos), image_size=SIZE, batch_size=4, hflip=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    return {k.removeprefix("test/"): float(v) for k, v in trainer.test(model, data, verbose=False)[0].items()}


def test_readme_ddp_command_one_run_resumes_after_a_crash_and_tests_exactly(tmp_path: Path, photos: Path):
    config = tiny_config(tmp_path, photos, name="tiny", max_epochs=2, max_steps=-1, log_every_n_steps=1)
    command = ["-m", "colorlab", "experiment", "--config", str(config), *DDP, "--data.init_args.batch_size=2"]
    crash = [{"class_path": "tests.helpers.CrashAtEpoch", "init_args": {"epoch": 1}}]
    with pytest.raises(AssertionError, match="simulated crash"):
        launch([*command, f"--trainer.callbacks={json.dumps(crash)}"], REPO, photos)
    runs = RunFolder.runs_of(tmp_path / "runs", "tiny")
    assert len(runs) == 1, [r.path for r in runs]  # both ranks agreed on the version: one folder
    run = runs[0]
    assert run.last_checkpoint and not run.finished

    resumed = launch([*command, "--resume"], REPO, photos)
    assert [r.path for r in RunFolder.runs_of(tmp_path / "runs", "tiny")] == [run.path]
    assert resumed.stdout.count("run folder:") == 1  # printed by rank 0 only
    assert "Traceback" not in resumed.stderr  # rank 1 ended cleanly too
    assert (run.path / "report.md").is_file() and run.metrics_csv.is_file()
    results = run.results
    assert results["epochs"] == 2
    # 5 test photos on 2 ranks: a padded sampler would count one twice; these metrics are the exact set's.
    alone = single_process_test(Path(results["best_checkpoint"]), photos)
    for metric, value in alone.items():
        assert math.isclose(results["test"][metric], value, rel_tol=1e-5), (metric, results["test"], alone)
    # The baselines are scored on the same 5 photos (rank 0's share would be 3), so the verdict compares like
    # with like.
    data = FolderDataModule(root=str(photos), image_size=SIZE, batch_size=4, hflip=False)
    model = load_approach(Path(results["best_checkpoint"]))
    reference = reference_metrics(data, model, Baselines.load(run.path / BASELINES_FILE), None)
    assert reference.keys() == results["reference"].keys()
    for key, values in reference.items():
        for metric, value in values.items():
            assert math.isclose(results["reference"][key][metric], value, rel_tol=1e-5), (key, metric)


def test_every_family_trains_validates_and_tests_under_ddp(tmp_path: Path, photos: Path):
    configs = [str(REPO / "experiments" / f"{name}.yaml") for name in FAMILIES]
    launch([str(REPO / "tests" / "ddp_run.py"), str(tmp_path), *configs], REPO, photos)
    for name in FAMILIES:
        ranks = [json.loads((tmp_path / f"{name}.rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0]["test"] == ranks[1]["test"], name  # metrics synced over the two shares
        assert all(math.isfinite(v) for v in ranks[0]["test"].values()), (name, ranks[0]["test"])
        runs = RunFolder.runs_of(tmp_path / "runs", name)
        assert len(runs) == 1 and runs[0].finished, (name, [r.path for r in runs])
        assert runs[0].version == ranks[0]["version"] == ranks[1]["version"]
    phases = RunFolder.runs_of(tmp_path / "runs", "nogan_stable")[0].phases
    assert list(phases["finished"]) == ["generator_64", "generator_128", "critic", "gan"]
    for name in FAMILIES:  # BigColor's EMA generator included (its ema.* entries)
        assert_same_weights_on_both_ranks(tmp_path, name)


OTHERS = sorted(p for p in (REPO / "experiments").glob("*.yaml") if p.stem not in FAMILIES)


@pytest.mark.slow
def test_every_other_experiment_yaml_runs_under_ddp(tmp_path: Path, photos: Path):
    launch([str(REPO / "tests" / "ddp_run.py"), str(tmp_path), *map(str, OTHERS)], REPO, photos)
    for config in OTHERS:
        ranks = [json.loads((tmp_path / f"{config.stem}.rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0]["test"] == ranks[1]["test"], config.stem
        runs = RunFolder.runs_of(tmp_path / "runs", ranks[0]["name"])
        assert len(runs) == 1 and runs[0].finished, (config.stem, [r.path for r in runs])
        assert_same_weights_on_both_ranks(tmp_path, config.stem)


@pytest.mark.slow
def test_nogan_phases_resume_under_ddp_after_a_crash(tmp_path: Path, photos: Path):
    config = REPO / "experiments" / "nogan_stable.yaml"
    tiny = tiny_overrides(config, tmp_path) + [*DDP, "--trainer.max_epochs=2", "--trainer.max_steps=-1"]
    crash = [{"class_path": "tests.helpers.CrashAtEpoch", "init_args": {"epoch": 1}}]
    command = ["-m", "colorlab", "experiment", "--config", str(config), *tiny]
    with pytest.raises(AssertionError, match="simulated crash"):
        launch([*command, f"--trainer.callbacks={json.dumps(crash)}"], REPO, photos)
    run = RunFolder.runs_of(tmp_path / "runs", "nogan_stable")[0]
    assert run.phases["finished"] == {}  # the first phase crashed after its first epoch
    launch([*command, "--resume"], REPO, photos)
    assert [r.path for r in RunFolder.runs_of(tmp_path / "runs", "nogan_stable")] == [run.path]
    assert list(run.phases["finished"]) == ["generator_64", "generator_128", "critic", "gan"]
    assert run.finished


def test_every_gan_family_keeps_bitwise_equal_replicas_when_the_ranks_losses_differ(tmp_path: Path):
    # Rank 1's losses are shifted across NoGAN's thresholds: a decision taken on a local loss would step
    # different optimizers on the two ranks and the weights would part.
    launch([str(REPO / "tests" / "ddp_replicas.py"), str(tmp_path)], REPO, tmp_path)
    ranks = [torch.load(tmp_path / f"replicas.rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() == {"nogan", "pix2pix", "chromagan", "bigcolor", "adversarial_upscaler"}
    for family, result in ranks[0].items():
        other = ranks[1][family]
        assert result["weights"].keys() == other["weights"].keys()
        for name, tensor in result["weights"].items():
            assert torch.equal(tensor, other["weights"][name]), f"{family}: {name} differs between the ranks"
        assert result["switches"] == other["switches"], family
    assert ranks[0]["nogan"]["switches"] > 0  # the mean loss crossed the thresholds: turns did change
