"""The learned hint model (Zhang et al. 2017) and guided colorize / evaluate end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorlab.approaches.guided import GuidedColorizer
from colorlab.approaches.regression import RegressionColorizer
from colorlab.cli import main as cli_main
from colorlab.color import rgb_to_lab
from colorlab.colorizers.guided import GuidedNet
from colorlab.colorizers.loading import load_colorizer
from colorlab.commands.evaluate import main as evaluate_main
from colorlab.guidance import HintMap, simulate_hints
from colorlab.models.hint_unet import HintUNet
from colorlab.models.unet import TimmUNet
from tests.helpers import fit_fixed_batch
from tests.test_colorize import run, small_photo

REPO = Path(__file__).resolve().parents[1]
SMALL = {"pretrained": False, "decoder_channels": [16, 16, 8, 8, 8]}


def small_net() -> HintUNet:
    return HintUNet(TimmUNet(**SMALL))


def test_the_hint_model_starts_equal_to_its_automatic_parent(tmp_path, lab_batch_32):
    torch.manual_seed(0)
    parent = RegressionColorizer(net=TimmUNet(**SMALL))
    for p in parent.net.head.parameters():  # a parent that is not at the neutral start
        torch.nn.init.normal_(p, std=0.2)
    state = {"state_dict": parent.state_dict(),
             "hyper_parameters": {"_class_path": "colorlab.approaches.regression.RegressionColorizer"}}  # fmt: skip
    parent.on_save_checkpoint(state)  # as Lightning saves it: the colorizer's class path and colorizer.* keys
    torch.save(state, tmp_path / "parent.ckpt")
    guided = GuidedColorizer(net=small_net(), parent_ckpt=str(tmp_path / "parent.ckpt")).eval()
    parent.eval()
    L = lab_batch_32["L"][:, :, :29, :31]  # odd sizes: padding must match too
    hints = simulate_hints(lab_batch_32["ab"][:, :, :29, :31], torch.Generator().manual_seed(0), count=10)
    expected = parent.predict_lab(L)[1]
    assert expected.abs().max() > 0.01
    assert torch.equal(guided.predict_lab(L)[1], expected)
    assert torch.allclose(guided.predict_lab(L, hints=hints)[1], expected, atol=1e-6)
    assert "parent_ckpt" not in guided.hparams, "its checkpoints must not need the parent file"


def test_a_parent_of_another_net_is_refused(tmp_path):
    parent = RegressionColorizer(net=TimmUNet(pretrained=False, decoder_channels=[8, 8, 8, 8, 8]))
    torch.save({"state_dict": parent.state_dict()}, tmp_path / "other.ckpt")
    with pytest.raises((ValueError, RuntimeError)):
        GuidedColorizer(net=small_net(), parent_ckpt=str(tmp_path / "other.ckpt"))


def test_the_hint_model_overfits_a_tiny_batch_and_learns_to_use_hints(rgb_uint8):
    """Two copies of each photo, tinted red and blue: the same L, so only hints can tell which colour is meant."""
    from colorlab.color import lab_batch, lab_to_rgb, rgb_to_lab

    torch.manual_seed(0)
    lab = rgb_to_lab(rgb_uint8[:2].float() / 255).repeat(2, 1, 1, 1)
    lab[:, 1:] = torch.tensor([[25.0, 10.0], [-10.0, -25.0]]).repeat_interleave(2, 0).view(4, 2, 1, 1)
    batch = (lab_to_rgb(lab) * 255).round().to(torch.uint8)  # same L, two colours
    model = GuidedColorizer(net=small_net(), hint_p=0.5,
                            optimizer=lambda params: torch.optim.Adam(params, lr=3e-3))  # fmt: skip
    losses = fit_fixed_batch(model, batch, steps=60)
    # Without hints half of the answer is a guess (same L, two colours), so the loss falls less than usual.
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
    model.eval()
    lab = lab_batch(batch)
    L, ab = lab["L"], lab["ab"]
    hints = simulate_hints(ab, torch.Generator().manual_seed(1), count=20, patch_range=(5, 5))
    with torch.no_grad():
        hinted = (model.predict_lab(L, hints=hints)[1] - ab).abs().mean()
        plain = (model.predict_lab(L)[1] - ab).abs().mean()
    assert hinted < 0.8 * plain, ("the hints tell the red copies from the blue ones", hinted, plain)


def test_reference_hints_come_from_matching_features():
    torch.manual_seed(0)
    model = GuidedColorizer(net=small_net(), reference_hints=16, reference_threshold=-1.0).eval()
    rgb = torch.rand(1, 3, 40, 56)
    from colorlab.color import rgb_to_lab_normalized

    L, _ = rgb_to_lab_normalized(rgb)
    hints = model.colorizer.hints_from_reference(L, rgb)
    assert hints.mask.shape == (1, 1, 40, 56) and hints.mask.sum() == 16 * 9
    assert model.predict_lab(L, reference=rgb)[1].shape == (1, 2, 40, 56)
    given = HintMap(torch.full((1, 2, 40, 56), 0.3), torch.ones(1, 1, 40, 56))
    assert model.predict_lab(L, hints=given, reference=rgb)[1].shape == (1, 2, 40, 56)


# ---- command line end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guided_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of experiments/guided_hints.yaml, shrunk and trained 4 steps on tiny crops."""
    from tests.helpers import fixed_rgb_batch

    root = tmp_path_factory.mktemp("runs")
    photos = tmp_path_factory.mktemp("photos")
    crops = fixed_rgb_batch(6, 48).permute(0, 2, 3, 1).numpy()
    for split in ("train", "val"):
        (photos / split).mkdir()
        for i, crop in enumerate(crops):
            Image.fromarray(crop).save(photos / split / f"{i}.jpg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        mp.setenv("COLORLAB_DATA", str(photos))
        cli_main([
            "fit", "--config", str(REPO / "experiments" / "guided_hints.yaml"), f"--run.root={root}",
            "--run.name=g", "--run.version=v", "--run.wandb=disabled", "--trainer.accelerator=cpu",
            "--trainer.max_steps=4", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--trainer.num_sanity_val_steps=0",
            "--data.init_args.batch_size=2", "--data.init_args.image_size=32", "--data.init_args.resize=40",
            "--data.init_args.num_workers=0",
        ])  # fmt: skip
    return root / "g" / "v" / "checkpoints" / "last.ckpt"


def test_a_guided_checkpoint_loads_as_the_guided_approach(guided_ckpt):
    assert isinstance(load_colorizer(guided_ckpt), GuidedNet)


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "photo.png"
    Image.fromarray(small_photo(97, 61)).save(path)
    return path


def _hints(tmp_path: Path, hints: object) -> Path:
    path = tmp_path / "hints.json"
    path.write_text(json.dumps(hints))
    return path


def test_colorize_with_hints_puts_the_colour_where_it_was_asked(photo_file, tmp_path):
    hints = _hints(
        tmp_path, [{"x": 10, "y": 50, "color": "#e02020"}, {"x": 90, "y": 5, "color": [60, -40, 30]}]
    )
    assert (
        run(photo_file, "--ckpt", "levin", "--hints", hints, "--hint-patch", "1", "-o", tmp_path / "out") == 0
    )
    out = np.array(Image.open(tmp_path / "out" / "photo.png"))
    assert out.shape == (61, 97, 3)
    lab = rgb_to_lab(torch.tensor(out).permute(2, 0, 1)[None].float() / 255)[0]
    assert lab[1, 50, 10] > 20, "red (a > 0) at the red hint"
    assert lab[1, 5, 90] < -15 and lab[2, 5, 90] > 10, "green-yellow at the Lab hint"


def test_colorize_with_the_guided_model_takes_hints_and_a_reference(guided_ckpt, photo_file, tmp_path):
    hints = _hints(tmp_path, [{"x": 10, "y": 50, "color": "#e02020"}])
    reference = tmp_path / "ref.jpg"
    Image.fromarray(small_photo(80, 80)[::-1].copy()).save(reference)
    assert run(photo_file, "--ckpt", guided_ckpt, "--hints", hints, "-o", tmp_path / "a") == 0
    assert run(photo_file, "--ckpt", guided_ckpt, "--reference", reference, "-o", tmp_path / "b") == 0
    assert run(photo_file, "--ckpt", "welsh", "--reference", reference, "-o", tmp_path / "c") == 0
    for folder in ("a", "b", "c"):
        assert np.array(Image.open(tmp_path / folder / "photo.png")).shape == (61, 97, 3)


def test_colorize_refuses_bad_guidance_clearly(guided_ckpt, photo_file, tmp_path, capsys):
    outside = _hints(tmp_path, [{"x": 97, "y": 0, "color": "#e02020"}])
    assert run(photo_file, "--ckpt", "levin", "--hints", outside, "-o", tmp_path / "o") == 2
    assert "outside the 97x61 picture" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[{")
    assert run(photo_file, "--ckpt", "levin", "--hints", tmp_path / "bad.json", "-o", tmp_path / "o") == 2
    assert "not valid JSON" in capsys.readouterr().err
    gray = tmp_path / "gray.png"
    Image.fromarray(small_photo(40, 40)).convert("L").save(gray)
    assert run(photo_file, "--ckpt", guided_ckpt, "--reference", gray, "-o", tmp_path / "o") == 2
    assert "gray" in capsys.readouterr().err
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    assert (
        run(photo_file, "--ckpt", "welsh", "--reference", tmp_path / "broken.jpg", "-o", tmp_path / "o") == 2
    )
    assert "reference photo: not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.png"))


def test_evaluate_writes_the_hint_curve_and_reference_scores(guided_ckpt, photo_file, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i, size in enumerate([(97, 61), (64, 80)]):
        Image.fromarray(small_photo(*size)).save(data / f"{i}.png")
    evaluate_main(["--ckpt", str(guided_ckpt), "levin", "--data", str(data), "--hints", "0", "2", "5",
                   "-o", str(tmp_path / "curve")])  # fmt: skip
    rows = (tmp_path / "curve" / "hint_curve.csv").read_text().splitlines()
    assert rows[0].startswith("model,hints,images,delta_e00,psnr") and len(rows) == 1 + 2 * 3
    assert (tmp_path / "curve" / "hint_curve.png").stat().st_size > 0
    levin = [r.split(",") for r in rows[1:] if r.startswith("levin")]
    assert float(levin[2][3]) < float(levin[0][3]), "Levin with 5 true hints beats Levin with none (gray)"
    evaluate_main(["--ckpt", "welsh", "--data", str(data), "--reference", "-o", str(tmp_path / "ref")])
    table = (tmp_path / "ref" / "reference_scores.csv").read_text()
    assert "welsh,truth,2" in table and "welsh,same kind,2" in table
