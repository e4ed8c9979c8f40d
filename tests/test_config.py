"""load_config: the values a run would see, read without running anything; YAMLs that start from another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import yaml

from colorlab.data import FolderDataModule
from colorlab.training.config import load_config, override_args

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
LR = "model.init_args.optimizer.init_args.lr"


def test_later_files_and_overrides_win_and_defaults_are_filled():
    config = load_config([EXPERIMENTS / "unet_l1.yaml", EXPERIMENTS / "results" / "photos_4min.yaml"],
                         ["--trainer.max_epochs=2", f"--{LR}=0.005"])  # fmt: skip
    assert config.run.name == "unet_l1" and config["trainer.max_epochs"] == 2 and config[LR] == 0.005
    assert config["trainer.max_time"] == "00:00:04:00"  # from the second file
    assert config["model.init_args.optimizer.init_args.weight_decay"] == 0.0001  # from the first file
    assert config["run.monitor"] == "val/delta_e00"  # a default of the run: section
    assert config["model.init_args.net"]["class_path"] == "colorlab.models.unet.UNet"  # nested as plain dicts
    with pytest.raises(KeyError, match="no 'model.init_args.nope'"):
        config["model.init_args.nope"]
    assert config.get("model.init_args.nope", 3) == 3


def test_nothing_is_built_seeded_or_written(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    # the YAML seeds 42 and names a prior file that does not exist: fine, nothing is built
    config = load_config([EXPERIMENTS / "zhang_cic.yaml"], [f"--run.root={tmp_path / 'runs'}"])
    assert torch.equal(torch.rand(1), expected), "parsing must not reseed the global generators"
    assert not (tmp_path / "runs").exists() and config.run.version is None
    data = config.build_data()
    assert isinstance(data, FolderDataModule) and data.image_size == config["data.init_args.image_size"]


def test_bad_overrides_are_rejected_like_the_cli_does():
    with pytest.raises(SystemExit):
        load_config([EXPERIMENTS / "unet_l1.yaml"], ["--trainer.max_epochs=many"])
    with pytest.raises(SystemExit):
        load_config([EXPERIMENTS / "unet_l1.yaml"], ["--model.init_args.no_such_argument=1"])


def test_dump_reads_back_to_the_same_config(tmp_path):
    config = load_config(
        [EXPERIMENTS / "nogan_stable.yaml"], override_args({LR: 0.01, "trainer.max_epochs": 3})
    )
    path = tmp_path / "dumped.yaml"
    path.write_text(config.dump())
    assert load_config([path]).as_dict() == config.as_dict()


SPACES = {
    "rgb": {"target_space": "rgb", "keep_input_l": True, "out_channels": 3},
    "rgb_as_is": {"target_space": "rgb", "keep_input_l": False, "out_channels": 3},
    "yuv": {"target_space": "yuv"},
    "ycbcr": {"target_space": "ycbcr"},
    "hsv": {"target_space": "hsv"},
}


@pytest.mark.parametrize("space", SPACES)
def test_colorspace_files_only_override_the_lab_base(space, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the base is found next to the file, from any working directory
    base = load_config([EXPERIMENTS / "colorspace_lab.yaml"]).as_dict()
    config = load_config([EXPERIMENTS / f"colorspace_{space}.yaml"]).as_dict()
    changed = SPACES[space]
    assert config["run"]["name"] == f"colorspace_{space}"
    args, net = config["model"]["init_args"], config["model"]["init_args"]["net"]["init_args"]
    assert args["target_space"] == changed["target_space"] and args["keep_input_l"] == changed.get(
        "keep_input_l", True
    )
    assert net["out_channels"] == changed.get("out_channels", 2)
    # everything else is the base's: same net, data, trainer, optimizer
    for section in (config, base):
        section["run"].pop("name")
        section["model"]["init_args"].pop("target_space")
        section["model"]["init_args"].pop("keep_input_l")
        section["model"]["init_args"]["net"]["init_args"].pop("out_channels")
    assert config == base
    # a thin file holds dotted overrides after naming its base, nothing more
    raw = yaml.safe_load((EXPERIMENTS / f"colorspace_{space}.yaml").read_text())
    assert raw["config"] == "colorspace_lab.yaml" and all("." in key for key in raw if key != "config")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }


def test_library_code_does_not_depend_on_commands():
    package = REPO / "colorlab"
    for path in package.rglob("*.py"):
        # commands/options.py and commands/arguments.py are the commands' shared argument helpers, not commands.
        shared = {"colorlab.commands.options", "colorlab.commands.arguments"}
        commands = {name for name in _imports(path) if name.startswith("colorlab.commands")} - shared
        assert not commands, f"{path.relative_to(REPO)} imports command modules {commands}"
    for path in (package / "approaches").glob("*.py"):
        training = {name for name in _imports(path) if name.startswith("colorlab.training")}
        assert not training, f"{path.relative_to(REPO)} imports the training package: {training}"
