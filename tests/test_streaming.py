"""LitData shards: `data pack` screens and shrinks, the streaming DataModule trains and resumes mid-epoch,
and two real processes read disjoint halves of an epoch."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from PIL import Image

pytest.importorskip("litdata")

from colorlab.approaches.regression import RegressionColorizer
from colorlab.cli import main as colorlab_main
from colorlab.data.streaming import ShardItems, StreamingDataModule
from colorlab.models.unet import UNet
from tests.helpers import fixed_rgb_batch

REPO = Path(__file__).resolve().parents[1]
N = 8  # photos in the packed set; batches of 2 -> 4 steps an epoch


def fingerprint(image: torch.Tensor) -> str:
    """Stable across processes (unlike hash(), which each interpreter salts)."""
    return hashlib.sha1(image.numpy().tobytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N distinct 32 px real-photo crops as PNG, plus a corrupt JPEG and a text file named .png."""
    folder = tmp_path_factory.mktemp("pack_src")
    for i, image in enumerate(fixed_rgb_batch(N, 32, seed=2)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    (folder / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    (folder / "notes.png").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def shards(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "train"
    colorlab_main(["data", "pack", str(photos), str(out), "--workers", "1"])
    return out


def test_pack_skips_unreadable_files_and_keeps_every_photo(shards: Path, photos: Path):
    items = ShardItems(str(shards), transform=lambda image: image)
    assert len(items) == N  # the corrupt JPEG and the text file were screened out
    originals = {fingerprint(image) for image in fixed_rgb_batch(N, 32, seed=2)}
    assert {fingerprint(items[i]["rgb"]) for i in range(N)} == originals  # PNG bytes kept as they were


def test_pack_shrinks_to_max_side(tmp_path: Path):
    src = tmp_path / "big"
    src.mkdir()
    Image.fromarray(fixed_rgb_batch(1, 96)[0].permute(1, 2, 0).numpy()).resize((300, 120)).save(
        src / "wide.jpg"
    )
    Image.fromarray(fixed_rgb_batch(1, 32)[0].permute(1, 2, 0).numpy()).save(src / "small.png")
    colorlab_main(["data", "pack", str(src), str(tmp_path / "out"), "--max-side", "64", "--workers", "1"])
    items = ShardItems(str(tmp_path / "out"), lambda image: image)
    sizes = sorted(tuple(items[i]["rgb"].shape[1:]) for i in range(len(items)))
    assert sizes == [(26, 64), (32, 32)]  # 300x120 -> 64x26 (aspect kept); the small one untouched


class _Seen(L.Callback):
    def __init__(self) -> None:
        self.fingerprints: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # The batch is already on the device as Lab + float sRGB; back to the uint8 the shards hold.
        self.fingerprints += [
            fingerprint(image) for image in (batch["rgb"] * 255).round().to(torch.uint8).cpu()
        ]


def _fit(
    shards: Path,
    root: Path,
    max_steps: int,
    ckpt_path: str | None = None,
    max_epochs: int = 1,
    models: list | None = None,
) -> list[str]:
    """Fit a tiny regression model on the shards; the batches it saw (``models`` receives the model)."""
    torch.manual_seed(0)
    data = StreamingDataModule(train_dir=str(shards), batch_size=2, image_size=32, hflip=False,
                               cache_dir=str(root / "cache"))  # fmt: skip
    seen = _Seen()
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=root / "ckpt", every_n_train_steps=1, save_last=True
    )
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, max_epochs=max_epochs, logger=False,
                        limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[seen, checkpoint])  # fmt: skip
    # weights_only=False: the checkpoint was written by this test (its hparams name the optimizer class).
    model = RegressionColorizer(UNet(base_channels=4, depth=2))
    if models is not None:
        models.append(model)
    trainer.fit(model, data, ckpt_path=ckpt_path, weights_only=False)
    return seen.fingerprints


def test_fit_resumes_mid_epoch_where_it_stopped(shards: Path, tmp_path: Path):
    before = _fit(shards, tmp_path, max_steps=2)  # half an epoch, then "crash"
    after = _fit(shards, tmp_path, max_steps=4, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert len(before) == len(after) == N // 2
    everything = {fingerprint(image) for image in fixed_rgb_batch(N, 32, seed=2)}
    assert set(before) | set(after) == everything  # the resumed half is the other half, no repeats


def test_a_fit_resumed_mid_epoch_equals_an_uninterrupted_one_bit_for_bit(shards: Path, tmp_path: Path):
    """Stopped half-way through epoch 0 or 1 of 3 (4 steps each), then resumed: the same batches in the same
    order and the same final weights (``torch.equal``) as one uninterrupted fit; no epoch is lost."""
    models: list = []
    expected = _fit(shards, tmp_path / "whole", -1, max_epochs=3, models=models)
    assert len(expected) == 3 * N
    for stop in (2, 6):
        run = tmp_path / f"stop{stop}"
        before = _fit(shards, run, stop, max_epochs=3)
        after = _fit(shards, run, -1, str(run / "ckpt" / "last.ckpt"), max_epochs=3, models=models)
        assert before + after == expected, f"stopped at step {stop}"
        for key, value in models[0].state_dict().items():
            assert torch.equal(value, models[-1].state_dict()[key]), (stop, key)


def test_two_processes_read_disjoint_halves(shards: Path, tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
         str(REPO / "tests" / "streaming_ranks.py"), str(shards), str(tmp_path)],
        check=False, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == N // 2
    assert not set(ranks[0]) & set(ranks[1])
    assert set(ranks[0]) | set(ranks[1]) == {fingerprint(image) for image in fixed_rgb_batch(N, 32, seed=2)}
