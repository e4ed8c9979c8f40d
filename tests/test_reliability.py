"""Nothing lost, nothing run: hostile checkpoints are refused before they execute, resume continues the right
run bitwise, a broken last.ckpt falls back, seeded sweeps continue instead of repeating, dead workers' trials
are failed, and bad inputs get messages that name the file."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from colorlab.colorizers.loading import load_colorizer
from colorlab.runs.checkpoints import CheckpointError, UnsafeCheckpointError, load_checkpoint
from colorlab.runs.folder import NothingToResume, RunFolder
from colorlab.training.experiment import run_experiment
from colorlab.training.runs import RunSettings
from tests.tiny_experiment import tiny_config, write_photos

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


class Evil:
    """Unpickled unsafely, it runs ``touch MARKER`` (pickling it runs nothing)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def colorlab(*args: str) -> subprocess.Popen:
    """Start ``python -m colorlab ARGS`` (several may run at once); ``finish`` collects it."""
    return subprocess.Popen([sys.executable, "-m", "colorlab", *args], env=ENV, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """Wait for ``process``; its return code and stdout + stderr."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


@pytest.fixture
def evil_ckpt(tmp_path: Path) -> tuple[Path, Path]:
    """A .ckpt whose pickle runs ``touch MARKER`` when unpickled unsafely; (checkpoint, marker)."""
    folder, marker = tmp_path / "models", tmp_path / "MARKER"
    folder.mkdir()
    hparams = {"_class_path": "colorlab.approaches.regression.RegressionColorizer"}
    torch.save({"hyper_parameters": hparams, "state_dict": {}, "payload": Evil(marker)}, folder / "evil.ckpt")
    assert not marker.exists()
    return folder / "evil.ckpt", marker


# ---- 1. checkpoints are data ---------------------------------------------------------------------------


def test_library_loader_refuses_a_code_carrying_checkpoint(evil_ckpt):
    ckpt, marker = evil_ckpt
    for load in (load_checkpoint, load_colorizer):
        with pytest.raises(
            UnsafeCheckpointError, match=r"refused to load .*evil\.ckpt: it asks for `posix\.system`"
        ):
            load(ckpt)
    assert not marker.exists()


def test_commands_refuse_a_code_carrying_checkpoint(evil_ckpt, tmp_path):
    ckpt, marker = evil_ckpt
    photos = write_photos(tmp_path / "photos", n=1)
    runs = {  # all three at once
        "colorize": colorlab(
            "colorize", str(photos / "val" / "crop0.png"), "--ckpt", str(ckpt), "-o", str(tmp_path)
        ),
        "evaluate": colorlab(
            "evaluate", "--ckpt", str(ckpt), "--data", str(photos / "val"), "-o", str(tmp_path / "e")
        ),
        "export": colorlab("export", "--ckpt", str(ckpt)),
    }
    for command, process in runs.items():
        code, output = finish(process)
        assert code != 0, command
        assert "refused to load" in output and "posix.system" in output, (command, output[-800:])
        assert "Traceback" not in output, (command, output[-800:])
    assert not marker.exists()


def test_serve_refuses_a_code_carrying_checkpoint_in_its_folder(evil_ckpt, tmp_path):
    ckpt, marker = evil_ckpt
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen([sys.executable, "-m", "colorlab", "serve", "--ckpt-dir", str(ckpt.parent),
                                   "--port", str(port)], env=ENV, cwd=REPO, stdout=sink, stderr=sink)  # fmt: skip
        # It exits, or (a server that skips unloadable checkpoints) says so and serves: stop it then.
        deadline = time.monotonic() + 120
        while server.poll() is None and "refused" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    output = log.read_text()
    assert "refused to load" in output and "posix.system" in output, output[-800:]
    assert not marker.exists()


def test_checkpoints_of_every_kind_load_as_data_only(tmp_path):
    """Lightning's full resume checkpoint (loops, optimizer, callbacks incl. RNG and loader state) needs no
    global beyond the allow-list; a Python-built module's checkpoint (optimizer class in hparams) too."""
    from tests.helpers import FixedBatchDataModule, fixed_rgb_batch

    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"))
    run_experiment([str(config)], ["--trainer.max_steps=2"])
    for path in (tmp_path / "runs").rglob("*.ckpt"):
        checkpoint = load_checkpoint(path)
        assert {"state_dict", "loops", "callbacks", "optimizer_states"} <= set(checkpoint)
        assert any("RngState" in key for key in checkpoint["callbacks"])
        assert checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["batches"] >= 0

    from colorlab.approaches.regression import RegressionColorizer
    from colorlab.models.unet import UNet

    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(
        RegressionColorizer(net=UNet(base_channels=4, depth=2)),
        FixedBatchDataModule(fixed_rgb_batch(2, 32), 1),
    )
    trainer.save_checkpoint(tmp_path / "python.ckpt")
    assert "state_dict" in load_checkpoint(tmp_path / "python.ckpt")


# ---- 9. clear errors -----------------------------------------------------------------------------------


def test_clear_errors_for_empty_weightless_and_truncated_checkpoints(tmp_path, capsys):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt is empty \(0 bytes\)"):
        load_colorizer(tmp_path / "empty.ckpt")
    hparams = {"_class_path": "colorlab.approaches.regression.RegressionColorizer"}
    torch.save({"hyper_parameters": hparams}, tmp_path / "weightless.ckpt")
    with pytest.raises(
        CheckpointError,
        match=r"weightless\.ckpt names the approach .*RegressionColorizer but holds no weights",
    ):
        load_colorizer(tmp_path / "weightless.ckpt")
    torch.save({"hyper_parameters": hparams, "state_dict": {"w": torch.zeros(1000)}}, tmp_path / "full.ckpt")
    data = (tmp_path / "full.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt is truncated or not a PyTorch checkpoint"):
        load_colorizer(tmp_path / "cut.ckpt")
    from colorlab.commands.export import main as export

    with pytest.raises(SystemExit) as exit_info:
        export(["--ckpt", str(tmp_path / "empty.ckpt")])
    assert exit_info.value.code == 2 and "is empty (0 bytes)" in capsys.readouterr().err


def test_an_empty_val_folder_is_named(tmp_path):
    from colorlab.data.datamodule import FolderDataModule

    photos = write_photos(tmp_path / "photos", n=2)
    for path in (photos / "val").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=rf"no readable images in {photos / 'val'}"):
        FolderDataModule(root=str(photos), image_size=16).file_lists()


# ---- 2. resume picks an interrupted run, never a finished one ----------------------------------------


class HangAtTrainStart(L.Callback):
    """Writes ``ready`` into the run folder and waits to be killed (a run lost before its first checkpoint)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        Path(trainer.log_dir, "ready").write_text("")
        time.sleep(600)


def tree_digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_resume_never_touches_a_finished_run(tmp_path):
    photos = write_photos(tmp_path / "photos")
    config = tiny_config(tmp_path, photos)
    run_experiment([str(config)], [])
    (finished,) = RunFolder.runs_of(tmp_path / "runs", "tiny")
    assert finished.finished
    before = tree_digest(finished.path)

    hang = {"class_path": f"{__name__}.HangAtTrainStart"}
    hanging = tiny_config(tmp_path, photos, name="tiny", callbacks=[hang])
    worker = subprocess.Popen([sys.executable, "-m", "colorlab", "experiment", "--config", str(hanging)], env=ENV,
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list((tmp_path / "runs" / "tiny").glob("*/ready")) and time.monotonic() < deadline:
            assert worker.poll() is None, "the run ended before it could be killed"
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed = RunFolder.runs_of(tmp_path / "runs", "tiny")[-1]
    assert killed.path != finished.path and killed.resume_checkpoint() is None

    code, output = finish(colorlab("experiment", "--config", str(config), "--resume"))
    assert code != 0
    assert "nothing to resume" in output and str(killed.path) in output, output[-800:]
    assert tree_digest(finished.path) == before
    shutil.rmtree(killed.path)  # with only the finished run left there is still nothing to resume
    with pytest.raises(NothingToResume, match="all 1 run"):
        RunSettings(name="tiny", root=str(tmp_path / "runs")).latest_resumable()


# ---- 3. a resumed run equals an uninterrupted one, bitwise -----------------------------------------------


class CrashAfterStep(L.Callback):
    """Raises once ``step`` optimizer steps are done (before that step's checkpoint is written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError(f"simulated crash after step {self.step}")


def final_weights(run: RunFolder) -> dict[str, torch.Tensor]:
    return load_checkpoint(run.last_checkpoint)["state_dict"]


def metric_rows(run: RunFolder) -> list[dict[str, str]]:
    return list(csv.DictReader(run.metrics_csv.open()))


def test_a_run_resumed_mid_epoch_equals_an_uninterrupted_one(tmp_path):
    photos = write_photos(tmp_path / "photos", n=9)  # 8 train + 1 val: 4 batches of 2 per epoch
    trainer = {"max_steps": 9, "log_every_n_steps": 1, "limit_val_batches": 1}
    run = {"checkpoint_every_n_steps": 3}  # the crash comes 2 steps after the last checkpoint
    straight = tiny_config(tmp_path, photos, name="straight", **trainer)
    crashing = tiny_config(tmp_path, photos, name="resumed", callbacks=[
        {"class_path": f"{__name__}.CrashAfterStep", "init_args": {"step": 5}}], **trainer).rename(tmp_path / "crash.yaml")  # fmt: skip
    resumed = tiny_config(tmp_path, photos, name="resumed", **trainer)
    for path in (straight, crashing, resumed):
        config = yaml.safe_load(path.read_text())
        config["run"].update(run)
        config["data"]["init_args"].update(batch_size=2, hflip=True)
        path.write_text(yaml.safe_dump(config))

    run_experiment([str(straight)], [])
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment([str(crashing)], [])
    (interrupted,) = RunFolder.runs_of(tmp_path / "runs", "resumed")
    assert load_checkpoint(interrupted.last_checkpoint)["global_step"] == 3  # 4 batches per epoch: mid-epoch
    assert "3" in [row["step"] for row in metric_rows(interrupted) if row["train/loss"]]  # to be logged again
    run_experiment([str(resumed)], [], resume=True)

    (a,), (b,) = (
        RunFolder.runs_of(tmp_path / "runs", "straight"),
        RunFolder.runs_of(tmp_path / "runs", "resumed"),
    )
    assert load_checkpoint(b.last_checkpoint)["global_step"] == 9  # last.ckpt every 3 steps: the end
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]

    rows_a, rows_b = metric_rows(a), metric_rows(b)
    steps = [row["step"] for row in rows_b if row["train/loss"]]
    assert steps == [str(step) for step in range(9)]  # each training step once
    assert rows_a == rows_b  # and the same numbers as the uninterrupted run


# ---- 4. a broken last.ckpt falls back to the newest readable checkpoint ---------------------------------


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_broken_last_checkpoint_falls_back_with_a_message(tmp_path, damage, caplog):
    folder = tmp_path / "runs" / "x" / "v1" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.ones(4096)}, "global_step": 3}, folder / "best-000-000003.ckpt")
    time.sleep(0.05)
    torch.save({"state_dict": {"w": torch.ones(4096)}, "global_step": 5}, folder / "last.ckpt")
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 3] if damage == "truncated" else b"")

    settings = RunSettings(name="x", root=str(tmp_path / "runs"))
    with caplog.at_level("WARNING"):
        assert settings.latest_resumable() == folder / "best-000-000003.ckpt"
    assert (
        "skipping" in caplog.text
        and "last.ckpt" in caplog.text
        and "resuming from best-000-000003.ckpt" in caplog.text
    )

    (folder / "best-000-000003.ckpt").write_bytes(b"")
    with pytest.raises(NothingToResume, match="readable checkpoint"):
        settings.latest_resumable()


# ---- 5. sweeps -------------------------------------------------------------------------------------------

SWEEP_WORKER = """
import json, sys
from pathlib import Path
from colorlab.training.sweep import DEFAULTS, create_study, suggest
out = Path(sys.argv[1])
spec = {**DEFAULTS, "study_name": "s", "output": out, "storage": f"sqlite:///{out / 'study.db'}",
        "sampler": {"type": "tpe", "seed": 0}, "pruner": {"type": "none"},
        "params": {"lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
                   "depth": {"type": "int", "low": 1, "high": 4}}}
study = create_study(spec)
for _ in range(2):
    trial = study.ask()
    values = suggest(trial, spec["params"])
    study.tell(trial, values["lr"] * values["depth"])
"""


def test_a_rerun_of_a_seeded_sweep_continues_the_search(tmp_path):
    import optuna

    for _ in range(2):  # two worker processes, one after the other
        subprocess.run([sys.executable, "-c", SWEEP_WORKER, str(tmp_path)], check=True, env=ENV, cwd=REPO)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(params) == 4 and len(set(params)) == 4, params


def test_a_dead_workers_running_trial_is_failed_with_a_note(tmp_path, capsys):
    from colorlab.training.sweep import DEFAULTS, create_study, write_summary

    spec = {**DEFAULTS, "study_name": "s", "output": tmp_path, "storage": f"sqlite:///{tmp_path / 'study.db'}",
            "experiment": "unused.yaml",
            "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"}, "heartbeat_seconds": 1,
            "params": {"lr": {"type": "float", "low": 1e-3, "high": 3e-2}}}  # fmt: skip
    study = create_study(dict(spec))
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna expects heartbeats from optimize() only
        trial = study.ask()  # a worker takes a trial, beats once, and dies (no more heartbeats)
    study._storage.record_heartbeat(trial._trial_id)
    time.sleep(3.5)  # SQLite's clock has whole seconds

    study = create_study(dict(spec))  # the next worker starts
    assert study.trials[0].state.name == "FAIL"
    assert "trial 0 left RUNNING by a worker that stopped" in capsys.readouterr().err
    write_summary(study, spec)
    (row,) = csv.DictReader((tmp_path / "trials.csv").open())
    assert row["state"] == "FAIL" and "no heartbeat" in row["note"]
