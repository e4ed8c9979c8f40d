"""Hostile inputs, round two (issue 24): each test is one reproduction that used to lose data, give a wrong
result silently or end in a raw traceback, and now gets the right result or a one-line message."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from colorlab.commands.colorize import main as colorize_main
from colorlab.commands.data import main as data_main
from colorlab.commands.evaluate import main as evaluate_main
from colorlab.commands.export import main as export_main
from colorlab.commands.options import checkpoints, load_models
from colorlab.commands.restore_colorize_upscale import main as chain_main
from colorlab.commands.serve import build_parser as serve_parser
from colorlab.inference.pipeline import Colorizer
from tests.helpers import fixed_rgb_batch
from tests.test_colorize import small_photo
from tests.test_contract import build_tiny, commands_exit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_photos: Path) -> dict[str, Path]:
    """Tiny checkpoints in run folders: a colour model (quickstart), Zhang's classifier, an x2 upscaler."""
    from tests.test_upscale import fit_tiny

    root = tmp_path_factory.mktemp("models")
    rgb = fixed_rgb_batch(2, 32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        built = {name: build_tiny(REPO / "experiments" / f"{name}.yaml", root, rgb)[0]
                 for name in ("quickstart", "zhang_cic")}  # fmt: skip
        up = ["--model.init_args.net.init_args.num_block=1", "--model.init_args.net.init_args.num_feat=8"]
        built["upscale_x2"] = fit_tiny(root, "up", "upscale_x2.yaml", up, tiny_photos)
    return built


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(small_photo(48, 40)).save(folder / "photo.png")
    return folder


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-2000:]


# ---- row 14 and the lower-severity numbers: checked when parsed --------------------------------------


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (colorize_main, ["x.png", "--ckpt", "m.ckpt", "-o", "out", "--size", "0"], "outside 1..4096"),
        (colorize_main, ["x.png", "--ckpt", "m.ckpt", "-o", "out", "--size", "-5"], "outside 1..4096"),
        (colorize_main, ["x.png", "--ckpt", "m.ckpt", "-o", "out", "--size", "100000"], "outside 1..4096"),
        (colorize_main, ["x.png", "--ckpt", "m.ckpt", "-o", "out", "--max-megapixels", "nan"], "finite"),
        (evaluate_main, ["--ckpt", "m.ckpt", "--data", "d", "--limit", "-1"], "not a positive number"),
        (evaluate_main, ["--ckpt", "m.ckpt", "--data", "d", "--size", "0"], "outside 1..4096"),
        (evaluate_main, ["--ckpt", "m.ckpt", "--data", "d", "--max-megapixels", "inf"], "finite"),
        (export_main, ["--ckpt", "m.ckpt", "--size", "0"], "outside 1..4096"),
        (chain_main, ["x.png", "-o", "out", "--ckpt", "m.ckpt", "--size", "0"], "outside 1..4096"),
    ],
)
def test_bad_numbers_are_refused_when_parsed(main, argv, message, capsys):
    assert commands_exit(main, argv) == 2
    err = capsys.readouterr().err
    assert message in err
    no_traceback(err)
    with pytest.raises(SystemExit):
        serve_parser().parse_args(["--ckpt", "m.ckpt", "--max-megapixels", "nan"])


def test_a_size_above_the_picture_runs_the_model_at_the_pictures_size(models):
    """``--size 2000`` on a 276 px photo asked for 3.9 GB: the model never sees more than the picture."""
    colorizer = Colorizer.load(models["quickstart"], side=2000)
    assert colorizer.model_size(276, 400) == (276, 400)
    assert colorizer.model_size(3000, 4000)[0] == 2000  # below the picture: as asked
    trained = Colorizer.load(models["quickstart"])  # the run's own scale still applies to small photos
    assert min(trained.model_size(20, 30)) == trained.side


# ---- rows 6 and 11: damaged run folders and checkpoints of the wrong kind ---------------------------


@pytest.mark.parametrize(
    "damage", [b"model: [unclosed\n  - : :", b"\x89PNG\x00\xff\xfe binary", b"- a list\n"]
)
def test_a_damaged_config_beside_a_good_checkpoint_is_named(models, photos, tmp_path, capsys, damage):
    run = tmp_path / "copy"
    shutil.copytree(models["quickstart"].parents[1], run)
    (run / "config.yaml").write_bytes(damage)
    ckpt = run / "checkpoints" / "last.ckpt"
    assert commands_exit(colorize_main, [str(photos), "--ckpt", str(ckpt), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.yaml'} is damaged" in err
    no_traceback(err)
    # serve --ckpt-dir skips the damaged run and serves the others
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copytree(run, folder / "bad")
    shutil.copytree(models["quickstart"].parents[1], folder / "good")
    args = serve_parser().parse_args(["--ckpt-dir", str(folder), "--device", "cpu"])
    loaded = load_models(args, checkpoints(args), skip_broken_in_dir=True)
    assert [c.path for c in loaded] == [folder / "good" / "checkpoints" / "last.ckpt"]
    assert "config.yaml is damaged" in capsys.readouterr().err


def test_a_checkpoint_of_the_wrong_kind_is_refused_naming_both(models, photos, tmp_path, capsys):
    up, colour = str(models["upscale_x2"]), str(models["quickstart"])
    assert commands_exit(colorize_main, [str(photos), "--ckpt", up, "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "is an upscaler (UpscaleNet), given as the colour model" in err and up in err
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.png")), "no gray 'results'"
    argv = [str(photos), "-o", str(tmp_path / "b"), "--ckpt", colour, "--upscale-ckpt", colour]
    assert commands_exit(chain_main, argv) == 2
    err = capsys.readouterr().err
    assert "is a colour model (RegressionNet), given as the upscaler" in err
    no_traceback(err)


# ---- rows 9 and 10: every export either matches PyTorch or is refused --------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"), [("zhang_cic", "onnx"), ("upscale_x2", "torchscript"), ("upscale_x2", "onnx")]
)
def test_exports_that_used_to_fail_or_crop_match_pytorch(models, tmp_path, capsys, name, fmt):
    from colorlab.colorizers.loading import load_colorizer
    from colorlab.inference.export import TOLERANCE, ExportableColorizer, run_exported_outputs

    path = tmp_path / f"{name}.{fmt}"
    status = commands_exit(
        export_main, ["--ckpt", str(models[name]), "--format", fmt, "--dynamic", "-o", str(path)]
    )
    out = capsys.readouterr()
    assert status == 0 and "(ok)" in out.out, out
    model = load_colorizer(models[name])
    scale = getattr(model, "scale", 1)
    for h, w in [(37, 45), (32, 64)]:
        L = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(h)) * 2 - 1
        L_out, ab = run_exported_outputs(path, fmt, L)
        assert L_out.shape == (1, 1, scale * h, scale * w), "the whole result, not its top-left corner"
        with torch.no_grad():
            reference = ExportableColorizer(model)(L)
        assert np.abs(L_out - reference[0].numpy()).max() <= TOLERANCE
        assert np.abs(ab - reference[1].numpy()).max() <= TOLERANCE


def test_export_never_replaces_a_file(models, tmp_path, capsys):
    target = tmp_path / "model.pt"
    target.write_bytes(b"the user's file")
    argv = ["--ckpt", str(models["quickstart"]), "--format", "torchscript", "--size", "32", "-o", str(target)]
    assert commands_exit(export_main, argv) == 0
    assert target.read_bytes() == b"the user's file"
    assert (tmp_path / "model-1.pt").is_file() and "model-1.pt" in capsys.readouterr().out


# ---- rows 2, 12, 13 and lower severity: evaluate -----------------------------------------------------


def test_evaluate_skips_a_tiny_photo_and_scores_the_rest(models, photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLORLAB_WEIGHTS", str(tmp_path / "no-weights"))
    Image.new("RGB", (1, 1), (200, 30, 30)).save(photos / "dot.png")
    Image.new("RGB", (40, 5), (200, 30, 30)).save(photos / "line.png")
    result = evaluate_main(["--ckpt", str(models["quickstart"]), "--data", str(photos), "-o", str(tmp_path / "e"),
                            "--device", "cpu", "--no-frechet"])  # fmt: skip
    assert {p.name for p in result["skipped"]} == {"dot.png", "line.png"}
    assert "too small to score" in result["skipped"][photos / "dot.png"]
    assert {r["image"] for r in result["rows"]} == {"photo.png"}
    assert (tmp_path / "e" / "evaluation.json").is_file()


def test_evaluate_never_writes_into_its_data(models, photos, tmp_path, capsys):
    before = sorted(photos.rglob("*"))
    for out in (photos, photos / "report"):
        argv = ["--ckpt", str(models["quickstart"]), "--data", str(photos), "-o", str(out), "--device", "cpu"]
        assert commands_exit(evaluate_main, argv) == 2
        err = capsys.readouterr().err
        assert "inside the input folder" in err
        no_traceback(err)
    assert sorted(photos.rglob("*")) == before


def test_evaluate_names_missing_and_empty_data_and_warns_on_gray_truth(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLORLAB_WEIGHTS", str(tmp_path / "no-weights"))
    ckpt = str(models["quickstart"])
    (tmp_path / "empty").mkdir()
    for data in ("gone", "empty"):
        argv = ["--ckpt", ckpt, "--data", str(tmp_path / data), "-o", str(tmp_path / "e"), "--device", "cpu"]
        assert commands_exit(evaluate_main, argv) == 2
        err = capsys.readouterr().err
        assert str(tmp_path / data) in err
        no_traceback(err)
    gray = tmp_path / "gray"
    gray.mkdir()
    Image.fromarray(small_photo(40, 32)).convert("L").convert("RGB").save(gray / "g.png")
    result = evaluate_main(["--ckpt", ckpt, "--data", str(gray), "-o", str(tmp_path / "g"), "--device", "cpu",
                            "--no-frechet"])  # fmt: skip
    assert result["gray_truths"] == 1
    assert "1 of 1 photos are gray themselves" in capsys.readouterr().err
    assert "gray themselves" in (tmp_path / "g" / "summary.md").read_text()


# ---- row 3 and row 8: data pack -------------------------------------------------------------------------


def test_data_pack_refuses_a_folder_that_holds_files(photos, tmp_path, capsys):
    pytest.importorskip("litdata")
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    (project / "chunk-0-0.bin").write_bytes(b"also mine")
    assert commands_exit(data_main, ["pack", str(photos), str(project)]) == 2
    err = capsys.readouterr().err
    assert "is not an empty folder" in err and "nothing was written or deleted" in err
    assert (project / "notes.txt").read_text() == "mine" and (project / "chunk-0-0.bin").is_file()
    assert commands_exit(data_main, ["pack", str(tmp_path / "gone"), str(tmp_path / "new")]) == 2
    assert "photo folder not found" in capsys.readouterr().err


def test_data_pack_refuses_a_non_empty_s3_prefix_before_writing(photos, monkeypatch):
    pytest.importorskip("litdata")
    from litdata.streaming import resolver

    from colorlab.data import streaming

    asked = []

    class Provider:
        def is_empty(self, url: str) -> bool:
            asked.append(url)
            return False

    monkeypatch.setattr(resolver, "_get_fs_provider", lambda url, options: Provider())
    monkeypatch.setattr(streaming, "optimize", lambda **kwargs: pytest.fail("optimize must not run"))
    with pytest.raises(ValueError, match=r"s3://bucket/photos is not empty"):
        streaming.pack_folder(photos, "s3://bucket/photos")
    assert asked == ["s3://bucket/photos"]


def test_pack_workers_die_with_their_parent(tmp_path):
    """kill -9 of ``data pack`` left LitData's worker processes running (about 1 GB each)."""
    script = textwrap.dedent("""
        import multiprocessing, sys, time
        from colorlab.data.streaming import die_with_parent
        def work():
            die_with_parent()
            time.sleep(120)
        if __name__ == "__main__":
            child = multiprocessing.get_context("fork").Process(target=work)
            child.start()
            print(child.pid, flush=True)
            time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})  # fmt: skip
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the child has set its death signal
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"worker {child} outlived its killed parent")


# ---- rows 5 and 7, copied runs, damaged results.json --------------------------------------------------


def test_two_runs_started_in_one_second_get_two_folders(tmp_path):
    from colorlab.training.runs import RunSettings

    first, second = RunSettings("x", str(tmp_path)), RunSettings("x", str(tmp_path))
    versions = {first.new_version(), second.new_version()}
    assert len(versions) == 2
    assert all((tmp_path / "x" / v).is_dir() for v in versions), "each folder is claimed by creating it"


def test_a_new_study_never_writes_into_another_studys_trial_folder(tmp_path):
    from colorlab.training.sweep import claim_trial_folder

    trial = tmp_path / "study" / "trial-0000"
    assert claim_trial_folder(trial, "old-study")
    (trial / "last.ckpt").write_bytes(b"old")
    assert claim_trial_folder(trial, "old-study"), "the same study may come back to its folder"
    assert not claim_trial_folder(trial, "new-study"), "a study after study.db was deleted may not"
    assert (trial / "last.ckpt").read_bytes() == b"old"


def test_a_copied_run_reports_its_own_best_checkpoint(tmp_path):
    from colorlab.training.experiment import own_best_checkpoint

    original, copy = tmp_path / "a" / "checkpoints", tmp_path / "b" / "checkpoints"
    for folder in (original, copy):
        folder.mkdir(parents=True)
        (folder / "best-epoch=001.ckpt").write_bytes(b"")
    trainer = SimpleNamespace(checkpoint_callback=SimpleNamespace(
        best_model_path=str(original / "best-epoch=001.ckpt"), dirpath=str(copy)))  # fmt: skip
    assert own_best_checkpoint(trainer) == str(copy / "best-epoch=001.ckpt")
    trainer.checkpoint_callback.dirpath = str(original)
    assert own_best_checkpoint(trainer) == str(original / "best-epoch=001.ckpt")


def test_a_damaged_results_json_on_resume_is_a_message(tmp_path, capsys):
    from colorlab.commands.experiment import main as experiment_main
    from tests.tiny_experiment import tiny_config, write_photos

    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"))
    name = yaml.safe_load(Path(config).read_text())["run"]["name"]
    run = tmp_path / "runs" / name / "20260101-000000"
    run.mkdir(parents=True)
    (run / "results.json").write_text('{"truncated": ')
    with pytest.raises(SystemExit) as exit_info:
        experiment_main(["--config", str(config), "--resume", f"--run.root={tmp_path / 'runs'}"])
    assert "results.json is not valid JSON" in str(exit_info.value.code)


# ---- sweeps: bad spaces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model.init_args.lr": {"type": "float", "low": 1e-3, "hihg": 1e-2}}, "unknown key(s) hihg"),
        ({"model.init_args.lr": {"type": "float", "low": 1e-2, "high": 1e-3}}, "is above high"),
        (
            {"model.init_args.lr": {"type": "float", "low": 0, "high": 1, "log": True}},
            "log scale needs low > 0",
        ),
        ({"model.init_args.lr": {"type": "categorical", "choices": []}}, "non-empty list"),
        ({"model.init_args.lr": [1, 2]}, "must be a mapping"),
    ],
)
def test_bad_sweep_spaces_are_named(tmp_path, capsys, params, message):
    from colorlab.commands.sweep import main as sweep_main

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "experiments/unet_l1.yaml", "params": params}))
    assert commands_exit(sweep_main, ["--config", str(spec)]) == 2
    err = capsys.readouterr().err
    assert message in err
    no_traceback(err)


def test_a_trial_the_experiment_refuses_is_failed_not_left_running(tmp_path, capsys, monkeypatch):
    optuna = pytest.importorskip("optuna")
    from colorlab.commands.sweep import main as sweep_main
    from tests.tiny_experiment import tiny_config, write_photos

    monkeypatch.setenv("WANDB_MODE", "disabled")
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"))
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "experiment": str(config), "n_trials": 1, "study_name": "typo", "output": str(tmp_path / "sweep"),
        "params": {"model.init_args.no_such_key": {"type": "float", "low": 0.1, "high": 0.2}},
    }))  # fmt: skip
    assert commands_exit(sweep_main, ["--config", str(spec)]) == 2
    assert "refused the trial's values" in capsys.readouterr().err
    study = optuna.load_study(study_name="typo", storage=f"sqlite:///{tmp_path / 'sweep' / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"]


# ---- serve: the upload limit while streaming, no empty job folders, no bare 500 -------------------------


def _png(side: int, noise: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8) if noise else small_photo(side, side)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_serve_keeps_at_most_the_limit_of_an_upload_and_leaves_no_empty_job(models, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient
    from starlette.datastructures import UploadFile

    from colorlab.inference import server

    written = []
    original = UploadFile.write

    async def counting(self, data: bytes) -> None:
        written.append(len(data))
        await original(self, data)

    monkeypatch.setattr(UploadFile, "write", counting)
    app = server.create_app([Colorizer.load(models["quickstart"])], max_megabytes=1, tmp_root=tmp_path)
    big = _png(1200, noise=True)  # about 4 MB, incompressible
    with TestClient(app) as client:
        response = client.post("/api/colorize", files=[("files", ("big.png", big, "image/png"))])
        assert response.status_code == 200
        assert (
            response.json()["results"][0]["error"]
            == f"big.png: {len(big) / 2**20:.1f} MB is over the 1 MB limit"
        )
        assert sum(written) <= 2**20, "bytes over the limit are never stored"
        assert not [p for p in app.state.store.root.iterdir() if p.is_dir()], "no empty job folder"

        def fail(*args, **kwargs):
            raise MemoryError("simulated")

        monkeypatch.setattr(server, "colorize_upload", fail)
        response = client.post("/api/colorize", files=[("files", ("a.png", _png(32), "image/png"))])
        assert response.status_code == 200
        assert response.json()["results"][0]["error"] == "a.png: could not be colorized (MemoryError)"


def test_a_nan_pixel_cap_refuses_instead_of_disabling_the_check():
    from colorlab.inference.pictures import PictureError, check_pixels

    with pytest.raises(PictureError, match="over the nan megapixel limit"):
        check_pixels(10, 10, float("nan"))
    check_pixels(10, 10, 1.0)


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_a_missing_or_empty_data_folder_is_one_line(tmp_path, folder):
    from colorlab.commands.experiment import main as experiment_main
    from tests.tiny_experiment import tiny_config

    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    config = tiny_config(tmp_path, tmp_path / folder)
    with pytest.raises(SystemExit) as exit_info:
        experiment_main(["--config", str(config)])
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and str(tmp_path / folder) in message
