"""GPU behaviour testable on a CPU: device defaults, the unusable-GPU message, precision ``auto``, fp32 metrics,
RNG resume on another device count. CUDA is faked with monkeypatch where a decision depends on it."""

from __future__ import annotations

import logging

import pytest
import torch

from colorlab import cli
from colorlab.approaches.regression import RegressionColorizer
from colorlab.color import lab_batch
from colorlab.models.unet import UNet
from colorlab.training import devices, performance, rng
from colorlab.training.cli import lightning_main
from colorlab.training.devices import GpuUnusable, check_gpu_usable, default_devices
from colorlab.training.performance import PerformanceSettings, auto_precision
from tests.helpers import fixed_rgb_batch
from tests.tiny_experiment import tiny_config, write_photos

# ---- devices ------------------------------------------------------------------------------------------


def test_auto_devices_is_one_gpu_and_says_how_many_are_idle(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    with caplog.at_level(logging.WARNING, logger=devices.__name__):
        assert default_devices("auto", "cuda") == 1
        assert default_devices(None, "cuda") == 1
    assert "8 GPUs visible; training on 1" in caplog.text and "--trainer.devices=N" in caplog.text
    caplog.clear()
    assert default_devices(4, "cuda") == 4 and default_devices(-1, "cuda") == -1  # asked for: kept
    assert default_devices("auto", "cpu") == 1
    assert caplog.text == ""


def test_the_cli_trains_on_one_device_unless_asked(tmp_path):
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"))
    assert lightning_main(["--config", str(config)], run=False).trainer.num_devices == 1
    two = lightning_main(["--config", str(config), "--trainer.devices=2", "--trainer.strategy=ddp"], run=False)
    assert two.trainer.num_devices == 2


def fake_unusable_gpu(monkeypatch) -> None:
    monkeypatch.setattr(devices, "gpu_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_an_unusable_gpu_is_a_warning_for_auto_and_an_error_for_gpu(monkeypatch):
    fake_unusable_gpu(monkeypatch)
    with pytest.warns(UserWarning, match="GPU is present but torch .* cannot use it.*training on the CPU"):
        check_gpu_usable("auto")
    for name in ("gpu", "cuda"):
        with pytest.raises(GpuUnusable, match="driver is older than it needs; see the README's 'GPUs' section"):
            check_gpu_usable(name)
    check_gpu_usable("cpu")  # the CPU was asked for: nothing to say
    monkeypatch.setattr(devices, "gpu_present", lambda: False)
    check_gpu_usable("gpu")  # no GPU at all: Lightning's own error applies


def test_the_command_line_says_the_unusable_gpu_in_one_line(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"), accelerator="gpu")
    fake_unusable_gpu(monkeypatch)
    with pytest.raises(SystemExit, match=r"^error: an NVIDIA GPU is present but torch") as exit_info:
        cli.main(["fit", "--config", str(config)])
    assert "\n" not in str(exit_info.value)


# ---- precision ----------------------------------------------------------------------------------------


def test_auto_precision_is_native_bf16_else_fp16_on_cuda_else_fp32(monkeypatch):
    asked = []

    def bf16_supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return including_emulation  # an emulating GPU (V100, T4): "supported" only with emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    assert auto_precision("cuda") == "16-mixed" and asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert auto_precision("cuda") == "bf16-mixed"
    monkeypatch.setattr(performance, "bf16_native", lambda accelerator: False)
    assert auto_precision("cpu") is None  # no fp16 on the CPU: fp32
    assert PerformanceSettings(bf16="auto").precision("cuda") == "16-mixed"
    assert PerformanceSettings(bf16="off").precision("cuda") is None


def test_metrics_are_fp32_under_mixed_precision():
    torch.manual_seed(0)
    module = RegressionColorizer(UNet(base_channels=4, depth=2))
    batch = lab_batch(fixed_rgb_batch(4, 32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = module.validation_step(batch, 1)
    reference = module.new_metrics("val/")
    reference.update(pred.float(), module.evaluation_target(batch))
    expected = {k: v.item() for k, v in reference.compute().items()}
    assert {k: v.item() for k, v in module.val_metrics.compute().items()} == expected


# ---- RNG resume ---------------------------------------------------------------------------------------


def test_rng_state_resumes_on_fewer_gpus(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append(state))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restores every GPU's state"))
    state = rng.rng_state()
    eight = [torch.full((16,), i, dtype=torch.uint8) for i in range(8)]  # an old checkpoint from 8 GPUs
    rng.set_rng_state({**state, "cuda": eight})
    rng.set_rng_state({**state, "cuda": eight[3]})  # this version's: the saving process's own device
    assert [int(s[0]) for s in restored] == [0, 3]
