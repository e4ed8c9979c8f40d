"""The speed switches take effect (threads, loader workers, channels_last, bf16 autocast, compile) and
``make bench --quick`` writes every field. Behaviour only: no timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colorlab.data import datamodule as datamodule_module
from colorlab.data.datamodule import FolderDataModule, default_loader_workers
from colorlab.training import performance
from colorlab.training.cli import lightning_main
from colorlab.training.performance import PerformanceSettings, default_threads, thread_count
from tests.tiny_experiment import tiny_config, write_photos

REPO = Path(__file__).resolve().parents[1]
NO_LOGS = ["--trainer.logger=false", "--trainer.enable_checkpointing=false"]


# ---- thread and worker defaults -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "workers", "processes", "threads"),
    [(2, 0, 1, 2), (2, 1, 1, 1), (2, 2, 1, 1), (16, 0, 1, 16), (16, 4, 1, 12), (16, 2, 2, 6), (2, 0, 2, 1)],
)
def test_threads_plus_workers_never_exceed_the_cores(cores, workers, processes, threads):
    assert default_threads(cores, workers, processes) == threads
    # never oversubscribed unless one thread per process is already too many
    assert processes * (threads + workers) <= cores or threads == 1


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (4, 1), (8, 2), (16, 4), (64, 4)])
def test_auto_loader_workers_follow_the_cores(cores, workers):
    assert default_loader_workers(cores) == workers


def test_thread_override_order(monkeypatch):
    monkeypatch.setattr(performance, "usable_cores", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_count(PerformanceSettings(), workers=4) == 12
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_count(PerformanceSettings(), workers=4) == 3
    assert thread_count(PerformanceSettings(threads=5), workers=4) == 5
    with pytest.raises(ValueError, match="at least 1"):
        PerformanceSettings(threads=0)
    with pytest.raises(ValueError, match="auto, on or off"):
        PerformanceSettings(bf16="yes")


def test_num_workers_auto_and_persistent_workers(monkeypatch, tmp_path):
    photos = write_photos(tmp_path / "photos")
    monkeypatch.setattr(datamodule_module, "usable_cores", lambda: 16)
    data = FolderDataModule(root=str(photos), num_workers="auto", image_size=32, batch_size=2)
    assert data.num_workers == 4 and data.persistent_workers
    data.setup("fit")
    assert data.train_dataloader().persistent_workers
    assert not FolderDataModule(root=str(photos), num_workers=0).persistent_workers


def test_colorlab_makes_openmp_wait_passively_unless_told_otherwise():
    code = "import colorlab, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": str(REPO)}
    run = lambda env: (
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        ).stdout
    )
    assert run(env).strip() == "PASSIVE"
    assert run({**env, "OMP_WAIT_POLICY": "ACTIVE"}).strip() == "ACTIVE"


# ---- switches in a real fit through the CLI -----------------------------------------------------------


def fit(tmp_path: Path, *overrides: str):
    """A 2-step fit of the tiny experiment through the same CLI as ``make experiment``; returns the CLI."""
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"), max_steps=2, limit_val_batches=0)
    cli = lightning_main(["--config", str(config), *NO_LOGS, *overrides], run=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    return cli


def conv_weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in module.parameters() if p.dim() == 4]


def test_defaults_make_conv_weights_channels_last_and_set_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(performance, "usable_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        cli = fit(tmp_path)
        assert torch.get_num_threads() == 2  # 2 cores, no loader worker
    finally:
        torch.set_num_threads(before)
    weights = conv_weights(cli.model)
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert all(w.grad is None or torch.isfinite(w.grad).all() for w in weights)
    assert cli.trainer.precision == "32-true"  # bf16 is off unless asked for


def test_channels_last_can_be_switched_off(tmp_path):
    cli = fit(tmp_path, "--performance.channels_last=false")
    assert all(w.is_contiguous() for w in conv_weights(cli.model))


def record_autocast(cli) -> list[tuple[bool, torch.dtype]]:
    seen: list[tuple[bool, torch.dtype]] = []
    loss = cli.model.training_loss

    def recording(batch):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return loss(batch)

    cli.model.training_loss = recording
    return seen


def test_bf16_switch_trains_under_bf16_autocast(tmp_path):
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"), max_steps=2, limit_val_batches=0)
    cli = lightning_main(["--config", str(config), *NO_LOGS, "--performance.bf16=on"], run=False)
    seen = record_autocast(cli)
    cli.trainer.fit(cli.model, cli.datamodule)
    assert cli.trainer.precision == "bf16-mixed"
    assert seen and all(enabled and dtype == torch.bfloat16 for enabled, dtype in seen)
    assert all(p.dtype == torch.float32 for p in cli.model.parameters())  # weights stay fp32


def test_explicit_trainer_precision_wins_over_bf16(tmp_path):
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"))
    argv = ["--config", str(config), "--performance.bf16=on", "--trainer.precision=32-true"]
    assert lightning_main(argv, run=False).trainer.precision == "32-true"


def test_bf16_auto_follows_the_hardware(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"))
    for native, expected in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(performance, "bf16_native", lambda accelerator, native=native: native)
        cli = lightning_main(["--config", str(config), "--performance.bf16=auto"], run=False)
        assert cli.trainer.precision == expected


def test_compile_switch_compiles_the_nets_in_place(tmp_path):
    cli = fit(tmp_path, "--performance.compile=true", "--performance.compile_options={backend: eager}")
    net = cli.model.net
    assert net._compiled_call_impl is not None
    assert not any("_orig_mod" in key for key in cli.model.state_dict())  # checkpoints keep their keys


def test_bf16_on_cpu_runs_depthwise_convs_in_fp32_and_keeps_checkpoint_keys(tmp_path):
    net = {"class_path": "colorlab.models.unet.TimmUNet",
           "init_args": {"decoder_channels": [16, 8, 8, 8, 8], "encoder_kwargs": {"frozen_stages": 1}}}  # fmt: skip
    keys_before = set(lightning_main(["--config", str(tiny_config(tmp_path, write_photos(tmp_path / "photos"))),
                                      f"--model.init_args.net={json.dumps(net)}"], run=False).model.state_dict())  # fmt: skip
    cli = fit(tmp_path, "--performance.bf16=on", f"--model.init_args.net={json.dumps(net)}")
    depthwise = [m for m in cli.model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise and all(isinstance(m, performance.CpuFp32DepthwiseConv2d) for m in depthwise)
    plain = [m for m in cli.model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1]
    assert plain and all(type(m) is torch.nn.Conv2d for m in plain)
    assert set(cli.model.state_dict()) == keys_before
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


def test_fp32_depthwise_conv_is_fp32_under_cpu_autocast_and_plain_otherwise():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=8)
    pointwise = torch.nn.Conv2d(8, 4, 1)
    model = torch.nn.Sequential(conv, pointwise)
    x = torch.randn(2, 8, 16, 16)
    expected = conv(x)
    assert performance.depthwise_convs_in_fp32(model) == 1  # the pointwise conv is left alone
    assert type(pointwise) is torch.nn.Conv2d and isinstance(conv, performance.CpuFp32DepthwiseConv2d)
    assert torch.equal(conv(x), expected)  # no autocast: exactly a Conv2d
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
        assert pointwise(out).dtype == torch.bfloat16  # the rest of the net still runs in bf16
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32


# ---- the benchmark --------------------------------------------------------------------------------------


def test_quick_bench_writes_every_field(tmp_path):
    photos = write_photos(tmp_path / "photos", n=6, size=48)
    out = tmp_path / "bench.json"
    env = {**os.environ, "COLORLAB_DATA": str(photos), "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"usable_cores", "torch_threads", "OMP_NUM_THREADS", "bf16_native"} <= results["machine"].keys()
    assert set(results["training"]) == {"unet_effnet", "pix2pix", "vae_unet"}
    unet_effnet = results["training"]["unet_effnet"]
    assert {"images_per_second", "old_defaults", "speedup", "workers_auto_vs_2"} <= unet_effnet.keys()
    assert all(row["images_per_second"] > 0 for row in results["training"].values())
    assert {"0", "1"} <= set(results["loader"]["folder"]) and "shards" in results["loader"]
    assert set(results["loader"]["folder_full_decode"]) == {"0", "1"}
    startup = results["startup"]
    assert startup["files"] == 1000 and startup["cached"]["rank1"]["file_stats"] == 0
    plain = results["lightning_vs_plain"]
    assert {"ratio", "lightning_images_per_second", "plain_images_per_second"} <= plain.keys()
    colorize = results["colorize"]
    assert {"megapixels", "command_seconds", "peak_rss_bytes", "pipeline_seconds", "onnx", "import_seconds",
            "seconds_per_further_photo"} <= colorize.keys()  # fmt: skip
    assert colorize["peak_rss_bytes"] > 0 and colorize["onnx"]["speed_vs_torch"] > 0
    # The one-shot checkpoint command loads the deployable colorizer only: no Lightning, no torchmetrics.
    assert "lightning" not in colorize["heavy_modules_loaded"] and "torchmetrics" not in colorize["heavy_modules_loaded"]
    assert colorize["onnx"]["command_seconds"] > 0 and colorize["onnx"]["peak_rss_bytes"] > 0
    assert set(results["headline"]) == {"unet_effnet_speedup", "colorize_12mp_seconds", "lightning_vs_plain",
                                        "colorize_12mp_seconds_per_further_photo"}  # fmt: skip
    assert "targets" in done.stdout


# ---- ONNX Runtime backend -------------------------------------------------------------------------------


def tiny_colorizer() -> torch.nn.Module:
    from colorlab.approaches.regression import RegressionColorizer
    from colorlab.models.unet import UNet

    torch.manual_seed(0)
    return RegressionColorizer(UNet(base_channels=4, depth=2)).eval()


@pytest.mark.parametrize("size", [None, 32])
def test_onnx_backend_matches_pytorch_through_the_pipeline(tmp_path, size):
    pytest.importorskip("onnxruntime")
    from colorlab.inference.export import export_onnx
    from colorlab.inference.onnx_runtime import OnnxColorizer
    from colorlab.inference.pipeline import colorize_full_resolution
    from tests.helpers import fixed_rgb_batch

    model = tiny_colorizer()
    backend = OnnxColorizer(export_onnx(model, tmp_path / "tiny.onnx", size), threads=1)
    picture = fixed_rgb_batch(2, 96)[:, :, :70, :90]  # not square, not a multiple of the net's 4
    expected = colorize_full_resolution(model, picture, 32)
    got = colorize_full_resolution(backend, picture, 32)
    assert got.shape == expected.shape == (2, 3, 70, 90)
    if size is None:  # the same graph: only op order differs
        assert (got - expected).abs().max() < 1e-3
    else:  # a 32 x 32 export on a 32 x 32 input is exactly the model
        L = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
        assert (backend.predict_lab(L)[1] - model.predict_lab(L)[1]).abs().max() < 1e-3
    assert expected[:, 1:].std() > 0  # the comparison is not between two blank outputs


def test_onnx_backend_refuses_missing_and_foreign_files(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from colorlab.inference.onnx_runtime import OnnxColorizer

    with pytest.raises(FileNotFoundError, match="not found"):
        OnnxColorizer(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        OnnxColorizer(tmp_path / "junk.onnx")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["L"], ["ab"])], "foreign",
        [onnx.helper.make_tensor_value_info("L", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
        [onnx.helper.make_tensor_value_info("ab", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "f.onnx")
    with pytest.raises(ValueError, match="not exported by colorlab"):
        OnnxColorizer(tmp_path / "f.onnx")


def test_colorize_command_runs_an_onnx_export_like_its_checkpoint(tmp_path):
    pytest.importorskip("onnxruntime")
    import numpy as np
    from PIL import Image

    from colorlab.cli import main as cli_main
    from colorlab.colorizers.loading import load_colorizer
    from colorlab.inference.export import export_onnx
    from tests.helpers import fixed_rgb_batch

    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"), max_steps=2, limit_val_batches=0)
    cli = lightning_main(["--config", str(config), "--run.version=v"], run=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    ckpt = tmp_path / "runs" / "tiny" / "v" / "checkpoints" / "last.ckpt"
    model = export_onnx(load_colorizer(ckpt), ckpt.with_suffix(".onnx"), None, ckpt)
    (tmp_path / "in").mkdir()
    Image.fromarray(fixed_rgb_batch(1, 96)[0, :, :60, :90].permute(1, 2, 0).numpy()).save(
        tmp_path / "in" / "p.png"
    )
    out = tmp_path / "out"
    cli_main(["colorize", str(tmp_path / "in"), "--ckpt", str(ckpt), "--onnx", str(model), "-o", str(out),
              "--no-progress", "--device", "cpu"])  # fmt: skip
    torch_rgb = np.asarray(Image.open(out / "tiny" / "p.png")).astype(int)
    onnx_rgb = np.asarray(Image.open(out / "tiny-onnx" / "p.png")).astype(int)
    assert torch_rgb.shape == onnx_rgb.shape == (60, 90, 3)
    assert np.abs(torch_rgb - onnx_rgb).max() <= 1  # uint8 rounding of outputs within 1e-3
