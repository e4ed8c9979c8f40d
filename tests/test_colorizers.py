"""The deployable colorizers: rebuilt from a checkpoint without Lightning, and checkpoints written before the
colorizers split (tests/data/legacy, made by the previous code from the experiment YAMLs, shrunk as in
tests/test_contract.py) still load and colorize exactly as they did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colorlab.colorizers.base import instantiate
from colorlab.colorizers.loading import load_colorizer, remap_legacy_keys
from colorlab.runs.checkpoints import CheckpointError

LEGACY = Path(__file__).parent / "data" / "legacy"
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.stem for p in LEGACY.glob("*.ckpt")))
def test_legacy_checkpoint_predicts_what_the_old_code_did(name):
    expected = torch.load(LEGACY / f"{name}.expected.pt")
    colorizer = load_colorizer(LEGACY / f"{name}.ckpt")
    assert isinstance(colorizer, torch.nn.Module) and not colorizer.training
    with torch.no_grad():
        L_out, ab = colorizer.predict_lab(expected["L"])
    torch.testing.assert_close(L_out, expected["L_out"], rtol=0, atol=1e-6)
    torch.testing.assert_close(ab, expected["ab"], rtol=0, atol=1e-6)


def test_legacy_checkpoint_resumes_into_the_lightning_module():
    """Lightning's own load (resume, phases) renames the old keys too (on_load_checkpoint)."""
    from colorlab.approaches.restoration import RestoreThenColorize
    from colorlab.runs.checkpoints import allowed_globals

    with allowed_globals():
        module = RestoreThenColorize.load_from_checkpoint(LEGACY / "restore_then_colorize.ckpt", weights_only=True)
    expected = torch.load(LEGACY / "restore_then_colorize.expected.pt")
    with torch.no_grad():
        torch.testing.assert_close(module.eval().predict_lab(expected["L"])[1], expected["ab"], rtol=0, atol=1e-6)


def test_loading_a_checkpoint_imports_neither_lightning_nor_torchmetrics(tmp_path):
    """A checkpoint written now is rebuilt from its stored config alone: the deployable modules only."""
    from colorlab.approaches.regression import RegressionColorizer
    from colorlab.models.unet import UNet

    module = RegressionColorizer(UNet(base_channels=4, depth=2))
    state = {"state_dict": module.state_dict(),
             "hyper_parameters": {"_class_path": "colorlab.approaches.regression.RegressionColorizer",
                                  "net": {"class_path": "colorlab.models.unet.UNet",
                                          "init_args": {"base_channels": 4, "depth": 2}}}}  # fmt: skip
    module.on_save_checkpoint(state)
    torch.save(state, tmp_path / "new.ckpt")
    code = (
        "import sys, torch\n"
        "from colorlab.colorizers.loading import load_colorizer\n"
        f"m = load_colorizer({str(tmp_path / 'new.ckpt')!r})\n"
        "print(type(m).__name__, m.predict_lab(torch.zeros(1, 1, 16, 16))[1].abs().max().item())\n"
        "print(sorted(k for k in ('lightning', 'torchmetrics', 'pytorch_lightning') if k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.splitlines() == ["RegressionNet 0.0", "[]"], out.stdout + out.stderr


def test_a_checkpoint_config_cannot_build_arbitrary_objects():
    with pytest.raises(ValueError, match="refusing to build os.system"):
        instantiate({"class_path": "os.system", "init_args": {"command": "true"}})


def test_weights_that_do_not_fit_the_config_get_a_clear_error(tmp_path):
    state = torch.load(LEGACY / "quickstart.ckpt", weights_only=False)
    state["hyper_parameters"]["net"]["init_args"]["base_channels"] = 8
    torch.save(state, tmp_path / "wrong.ckpt")
    with pytest.raises(CheckpointError, match="do not fit the RegressionNet"):
        load_colorizer(tmp_path / "wrong.ckpt")


def test_remap_takes_the_longest_old_prefix():
    state = {"generator.w": 1, "generator_ema.module.w": 2, "critic.w": 3}
    legacy = {"generator.": "trained_generator.", "generator_ema.module.": "colorizer.generator."}
    assert remap_legacy_keys(state, legacy) == {
        "trained_generator.w": 1, "colorizer.generator.w": 2, "critic.w": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("command", "banned"),
    [
        ("colorize", ("lightning", "torchmetrics")),
        ("serve", ("lightning", "torchmetrics")),
        ("export", ("lightning", "torchmetrics")),
        ("restore_colorize_upscale", ("lightning", "torchmetrics")),
        ("evaluate", ("lightning",)),  # it scores with torchmetrics' PSNR and SSIM
    ],
)
def test_model_commands_do_not_import_the_training_stack(command, banned):
    code = (f"import sys, colorlab.commands.{command}, colorlab.colorizers.loading\n"
            f"print(sorted(m for m in {banned!r} if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout
