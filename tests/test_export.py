"""``python -m colorlab export``: ONNX (onnxruntime) and TorchScript (torch.jit.load) match PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from colorlab.cli import main as cli_main
from colorlab.colorizers.loading import load_colorizer
from colorlab.inference.export import METADATA_FILE, TOLERANCE, export, run_exported
from colorlab.inference.pipeline import size_multiple
from tests.test_colorize import train_tiny_checkpoint

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        return train_tiny_checkpoint(tmp_path_factory.mktemp("runs"))


def random_l(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def pytorch_ab(ckpt: Path, L: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return load_colorizer(ckpt).predict_lab(L)[1].numpy()


def test_onnx_fixed_size_matches_pytorch_and_rejects_other_sizes(ckpt, tmp_path):
    path, diff = export(ckpt, "onnx", size=40, output=tmp_path / "m.onnx")
    assert diff <= TOLERANCE
    L = random_l(3, 1, 40, 40)
    assert np.abs(run_exported(path, "onnx", L) - pytorch_ab(ckpt, L)).max() <= TOLERANCE
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["size"] == "40" and meta["colorlab_colorizer"].endswith("RegressionNet")
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run_exported(path, "onnx", random_l(1, 1, 40, 48))


def test_onnx_dynamic_matches_pytorch_at_any_size(ckpt, tmp_path):
    path, _ = export(ckpt, "onnx", size=None, output=tmp_path / "d.onnx")
    multiple = size_multiple(load_colorizer(ckpt))
    assert multiple == 4  # depth-2 U-Net
    for seed, shape in enumerate([(1, 1, 32, 48), (2, 1, 37, 61), (1, 1, 70, 9)]):
        L = random_l(*shape, seed=seed)
        ab = run_exported(path, "onnx", L)
        assert ab.shape == (shape[0], 2, *shape[2:])
        assert np.abs(ab - pytorch_ab(ckpt, L)).max() <= TOLERANCE


def test_torchscript_matches_pytorch_and_carries_the_contract(ckpt, tmp_path):
    path, diff = export(ckpt, "torchscript", size=None, output=tmp_path / "m.pt")
    assert diff <= TOLERANCE
    for seed, shape in enumerate([(1, 1, 64, 64), (2, 1, 45, 30)]):
        L = random_l(*shape, seed=seed)
        assert np.abs(run_exported(path, "torchscript", L) - pytorch_ab(ckpt, L)).max() <= TOLERANCE
    files = {METADATA_FILE: ""}
    module = torch.jit.load(str(path), _extra_files=files)
    assert "L / 50 - 1" in json.loads(files[METADATA_FILE])["input"]
    L = random_l(1, 1, 24, 24)
    L_out, _ = module(L)
    assert torch.equal(L_out, L), "a plain colorizer returns the input's L"


def test_command_line(ckpt, tmp_path, capsys):
    cli_main(
        ["export", "--ckpt", str(ckpt), "--format", "onnx", "--size", "32", "-o", str(tmp_path / "c.onnx")]
    )
    out = capsys.readouterr().out
    assert "(ok)" in out and (tmp_path / "c.onnx").is_file()
    with pytest.raises(SystemExit) as exc:
        cli_main(["export", "--ckpt", str(tmp_path / "missing.ckpt")])
    assert exc.value.code == 2 and "checkpoint not found" in capsys.readouterr().err
