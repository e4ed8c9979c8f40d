"""The contract every experiment YAML keeps (timm-style): a tiny version of its model trains a step, survives a
checkpoint round trip, colorizes an odd-sized photo at full resolution, is evaluated on that photo at the same
model size as ``colorize`` ran it, and exports with dynamic H, W.

The YAMLs' own model sections are used with their widths shrunk (``TINY``); the expensive parts (building,
``colorize``, ``evaluate``) run once for all YAMLs in a module fixture, and each YAML's test reads its share.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from colorlab.color import float_to_uint8, lab_normalized_to_rgb, upsample_ab
from colorlab.colorizers.loading import load_colorizer
from colorlab.commands.colorize import main as colorize_main
from colorlab.commands.evaluate import main as evaluate_main
from colorlab.commands.export import main as export_main
from colorlab.inference.export import TOLERANCE, ExportableColorizer, run_exported
from colorlab.inference.pipeline import Colorizer, picture_l, size_multiple
from colorlab.metrics import image_scores
from colorlab.training.cli import lightning_main
from colorlab.training.config import load_config
from tests.helpers import FixedBatchDataModule, fixed_rgb_batch
from tests.test_colorize import lightness, small_photo

REPO = Path(__file__).resolve().parents[1]
# Every colorization YAML. Upscalers map small L to large L, not L to ab: their contract (shapes, published
# weights, tiled == untiled, the restore-colorize-upscale pipeline end to end) is tests/test_upscale.py's.
EXPERIMENTS = sorted(
    path
    for path in (REPO / "experiments").glob("*.yaml")
    if "colorlab.approaches.upscale." not in path.read_text()
)
WIDTH, HEIGHT = 67, 45  # odd, and a multiple of no net's downsampling factor
# Scalar init_args set to a tiny value wherever they appear in a model section, and list ones whose every
# entry becomes 8: the YAML's structure (classes, depth of lists, target spaces, losses) stays as written.
TINY = {"base_channels": 4, "depth": 2, "z_dim": 8, "latent_dim": 8, "n_layers": 2, "n_blocks": 1,
        "global_channels": 8, "fusion_channels": 8, "stem_width": 8, "pretrained": False}  # fmt: skip
TINY_LISTS = {"widths", "decoder_channels", "mid_channels", "fusion_hidden", "class_hidden", "channels"}


def shrink(node: Any) -> Any:
    """A model section with the :data:`TINY` widths."""
    if isinstance(node, dict):
        return {
            key: TINY[key] if key in TINY and not isinstance(value, (dict, list))
            else [8] * len(value) if key in TINY_LISTS and isinstance(value, list)
            else shrink(value)
            for key, value in node.items()
        }  # fmt: skip
    if isinstance(node, list):
        return [shrink(v) for v in node]
    return node


def build_tiny(experiment: Path, root: Path, rgb: torch.Tensor) -> tuple[Path, L.LightningModule]:
    """The experiment's model, shrunk, built by the CLI, trained 1 step on ``rgb`` and saved in a run folder."""
    # Through load_config: a YAML that starts from another (config: base.yaml) comes out whole.
    config = yaml.safe_load(load_config([str(experiment)]).dump())
    config["model"] = shrink(config["model"])
    args = config["model"]["init_args"]
    if args.get("prior_path"):
        args["prior_path"] = str(REPO / args["prior_path"])
    run = root / experiment.stem / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump(config)
    )  # what the run folder holds: read by the size rule
    cli = lightning_main(["--config", str(run / "config.yaml"), f"--run.root={root / 'cli'}", "--run.version=v",
                          "--run.wandb=disabled"], run=False)  # fmt: skip
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)  # fmt: skip
    trainer.fit(cli.model, FixedBatchDataModule(rgb, steps_per_epoch=1))
    ckpt = run / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt, cli.model.eval()


def commands_exit(main: Any, argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every YAML built and saved, then one ``colorize`` and one ``evaluate`` over all of them on one photo."""
    root = tmp_path_factory.mktemp("contract")
    (root / "photos").mkdir()
    photo = small_photo(WIDTH, HEIGHT)
    Image.fromarray(photo).save(root / "photos" / "odd.png")
    rgb = fixed_rgb_batch(2, 32)
    built: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setenv("WANDB_MODE", "disabled")
        for experiment in EXPERIMENTS:
            try:
                built[experiment.stem] = build_tiny(experiment, root, rgb)
            except Exception as exc:  # noqa: BLE001 - reported by that YAML's own test
                built[experiment.stem] = exc
        ckpts = [str(b[0]) for b in built.values() if isinstance(b, tuple)]
        # Every command reaches the model through Colorizer.predict: record the size each model ran at.
        seen: dict[str, list[tuple[str, tuple[int, int]]]] = {"colorize": [], "evaluate": []}
        stage = ["colorize"]
        original = Colorizer.predict

        def recording(self: Colorizer, L_small: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            seen[stage[0]].append((self.path.parents[2].name, tuple(L_small.shape[-2:])))
            return original(self, L_small)

        mp.setattr(Colorizer, "predict", recording)
        argv = [
            str(root / "photos" / "odd.png"),
            *(a for c in ckpts for a in ("--ckpt", c)),
            "-o",
            str(root / "out"),
        ]
        colorize_status = commands_exit(colorize_main, [*argv, "--no-progress", "--device", "cpu"])
        stage[0] = "evaluate"
        mp.setenv("COLORLAB_WEIGHTS", str(root / "no-weights"))  # no LPIPS/FID networks: not what is tested
        evaluation = evaluate_main(["--ckpt", *ckpts, "--data", str(root / "photos"), "-o", str(root / "eval"),
                                    "--device", "cpu"])  # fmt: skip
    return {"root": root, "photo": photo, "built": built, "colorize_status": colorize_status,
            "seen": {k: dict(v) for k, v in seen.items()}, "evaluation": evaluation}  # fmt: skip


def built_or_fail(contract: dict[str, Any], name: str) -> tuple[Path, L.LightningModule]:
    result = contract["built"][name]
    if isinstance(result, Exception):
        pytest.fail(f"{name}: the tiny model did not build, train or save: {result!r}")
    return result


@pytest.mark.parametrize("name", [e.stem for e in EXPERIMENTS])
def test_checkpoint_round_trip(contract, name):
    ckpt, trained = built_or_fail(contract, name)
    loaded = load_colorizer(ckpt)  # the deployable colorizer, rebuilt without Lightning
    assert type(loaded) is type(trained.colorizer) is trained.colorizer_class
    expected = trained.colorizer.state_dict()
    assert expected.keys() == loaded.state_dict().keys()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
    L_in = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded.predict_lab(L_in)[1], trained.predict_lab(L_in)[1], atol=1e-6)


@pytest.mark.parametrize("name", [e.stem for e in EXPERIMENTS])
def test_full_resolution_colorize_at_an_odd_size(contract, name):
    ckpt, model = built_or_fail(contract, name)
    assert contract["colorize_status"] == 0
    out = np.asarray(Image.open(contract["root"] / "out" / name / "odd.png").convert("RGB"))
    assert out.shape == (HEIGHT, WIDTH, 3), "the output has the input's size"
    # The output is the photo's own full-resolution L merged with the model's upsampled ab: recomputed here for
    # the whole picture at once (the pipeline works in strips), it matches to 8-bit rounding.
    colorizer = Colorizer.load(ckpt)
    L_photo = picture_l(contract["photo"])
    with torch.no_grad():
        ab = colorizer.predict(colorizer.model_input(L_photo))[1]
    expected = float_to_uint8(lab_normalized_to_rgb(L_photo, upsample_ab(ab, (HEIGHT, WIDTH))))[0].permute(
        1, 2, 0
    )
    assert np.abs(out.astype(int) - expected.numpy()).max() <= 1
    # Where the colour exists at that lightness (no channel clipped to the gamut), L is the photo's.
    unclipped = ((out > 0) & (out < 255)).all(axis=-1)
    assert np.abs(lightness(out) - lightness(contract["photo"]))[unclipped].max(initial=0) < 1.0
    h, w = contract["seen"]["colorize"][name]
    multiple = size_multiple(model)
    assert h % multiple == 0 and w % multiple == 0, f"model size {h}x{w} is not a multiple of {multiple}"
    assert Colorizer.load(ckpt).model_size(HEIGHT, WIDTH) == (h, w), "the size rule, from the run's config"


@pytest.mark.parametrize("name", [e.stem for e in EXPERIMENTS])
def test_evaluate_runs_the_model_at_the_same_size_as_colorize(contract, name):
    built_or_fail(contract, name)
    assert contract["seen"]["evaluate"][name] == contract["seen"]["colorize"][name]
    row = next(r for r in contract["evaluation"]["rows"] if r["model"] == name)
    written = np.asarray(Image.open(contract["root"] / "out" / name / "odd.png").convert("RGB"))
    as_batch = [
        torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() / 255
        for x in (written, contract["photo"])
    ]
    # The same picture (colorize's is rounded to 8 bits): the same scores.
    assert float(image_scores(*as_batch)["psnr"]) == pytest.approx(row["psnr"], abs=0.05)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("name", [e.stem for e in EXPERIMENTS])
def test_export_with_dynamic_size(contract, name, fmt, capsys):
    ckpt, model = built_or_fail(contract, name)
    check_dynamic_export(ckpt, model, contract["root"] / f"{name}.{fmt}", capsys, fmt)

def check_dynamic_export(
    ckpt: Path, model: L.LightningModule, path: Path, capsys: pytest.CaptureFixture, fmt: str = "torchscript"
) -> None:
    """``export --dynamic`` succeeds and the graph equals PyTorch at an odd size and a multiple."""
    status = commands_exit(export_main, ["--ckpt", str(ckpt), "--format", fmt, "--dynamic", "-o", str(path)])
    output = capsys.readouterr()
    assert status == 0 and "(ok)" in output.out, output
    multiple = size_multiple(model)
    for seed, (h, w) in enumerate([(HEIGHT, WIDTH), (2 * multiple, 3 * multiple)]):
        L_in = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        with torch.no_grad():
            # At an odd size the graph pads before predict_lab (as its contract says); at a multiple of the
            # nets' factor nothing is padded and the graph is predict_lab itself.
            reference = (
                ExportableColorizer(model.float())(L_in)
                if (h, w) == (HEIGHT, WIDTH)
                else model.predict_lab(L_in)
            )
        assert np.abs(run_exported(path, fmt, L_in) - reference[1].numpy()).max() <= TOLERANCE
