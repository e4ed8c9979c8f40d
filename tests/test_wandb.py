"""W&B without an account: an offline run holds everything `wandb sync` would upload (full config, group,
default tags, the per-image validation table, the best checkpoint as an artifact)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from colorlab.training.callbacks import WandbRunInfo, WandbValidationTable, approach_tag, dataset_tag
from colorlab.training.runs import RunSettings
from tests.tiny_experiment import tiny_config, write_photos

_BLOCK = 32768  # the .wandb file is a LevelDB-style log of protobuf records in 32 KiB blocks


def wandb_records(path: Path) -> Iterator[object]:
    """The ``wandb_internal_pb2.Record`` messages of an offline run file, as `wandb sync` reads them."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # a block's tail too short for a header is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):  # a full record, or the first chunk of one
            pending = chunk
        elif kind in (3, 4):  # middle and last chunks
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_offline_run_can_be_synced_later(tmp_path, monkeypatch):
    import wandb

    from colorlab.training.cli import lightning_main

    monkeypatch.setenv("WANDB_MODE", "offline")
    config = tiny_config(tmp_path, write_photos(tmp_path / "photos"))
    cli = lightning_main(["fit", "--config", str(config), "--run.wandb=offline", "--run.wandb_log_model=true",
                          "--trainer.max_steps=2", "--trainer.val_check_interval=1", "--trainer.limit_val_batches=1"])  # fmt: skip
    wandb.finish()
    run_dir = cli.config_init["fit"]["run"].run_dir
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, list(run_dir.rglob("*"))
    assert (run_dir / "metrics.csv").is_file()  # the CSV log is kept alongside

    records = list(wandb_records(files[0]))
    kinds = {r.WhichOneof("record_type") for r in records}
    assert {"run", "config", "history", "artifact", "exit"} <= kinds
    runs = [r.run for r in records if r.HasField("run")]
    assert runs[-1].run_group == "tiny" and set(runs[-1].tags) == {"regression", "photos"}
    config_items = {i.key: json.loads(i.value_json) for r in records if r.HasField("config") for i in r.config.update}
    assert config_items["model"]["class_path"] == "colorlab.approaches.regression.RegressionColorizer"
    assert config_items["data"]["init_args"]["image_size"] == 32 and config_items["run"]["name"] == "tiny"
    history_keys = {i.key or "/".join(i.nested_key) for r in records if r.HasField("history") for i in r.history.item}
    assert {"val/per_image/_type", "val/delta_e00", "val/grid/_type"} <= history_keys
    artifacts = [r.artifact for r in records if r.HasField("artifact")]
    model = [a for a in artifacts if a.type == "model"]
    assert len(model) == 1 and "best" in model[0].aliases


def test_disabled_stays_disabled_and_environment_switches_modes(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    disabled = RunSettings(wandb="disabled", version="v")
    assert disabled.wandb == "disabled" and len(disabled.loggers()) == 1
    assert not any(isinstance(c, (WandbRunInfo, WandbValidationTable)) for c in disabled.callbacks())
    online = RunSettings(wandb="online", version="v", wandb_tags=["mine"])
    assert online.wandb == "offline"
    info = next(c for c in online.callbacks() if isinstance(c, WandbRunInfo))
    assert info.tags == ["mine"] and info.log_model is False


def test_default_tags(tmp_path):
    from colorlab.approaches.regression import RegressionColorizer
    from colorlab.data import CIFARDataModule, FolderDataModule, SamplesDataModule
    from colorlab.models.unet import UNet

    assert approach_tag(RegressionColorizer(UNet(base_channels=4, depth=1))) == "regression"
    assert dataset_tag(FolderDataModule(root=str(tmp_path / "my_photos"))) == "my_photos"
    assert dataset_tag(CIFARDataModule(variant="cifar100")) == "cifar100"
    assert dataset_tag(SamplesDataModule()) == "samples"
    assert dataset_tag(None) is None


@pytest.mark.parametrize("env", ["", "/somewhere/photos"])
def test_folder_tag_follows_the_data_environment(env, monkeypatch):
    from colorlab.data import FolderDataModule

    monkeypatch.setenv("COLORLAB_DATA", env)
    assert dataset_tag(FolderDataModule()) == ("photos" if env else "folder")
