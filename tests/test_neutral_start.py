"""Every experiment YAML's model starts at the neutral answer: at step 0 its colours are ~gray.

The model is built from the YAML's own ``model:`` section (its real approach, nets, widths and heads) and run
in eval mode on real colour photos: 16 of ``../shared/data/photos/val`` when present, else the photos bundled
with scikit-image. Two promises (issue 9): the mean |ab| of the
prediction is under 2 Lab units, and its CIEDE2000 to the truth is within 0.5 of the gray picture's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.cli import LightningArgumentParser

from colorlab.approaches.base import ColorizationModule
from colorlab.color import denormalize_ab, denormalize_l, lab_batch, lab_normalized_to_rgb, rgb_to_lab
from colorlab.data.datasets import SAMPLE_TRAIN, SAMPLE_VAL, build_transform, load_samples, to_chw
from colorlab.data.images import list_images, load_rgb
from colorlab.metrics import delta_e_ciede2000
from colorlab.training.config import load_config
from tests.conftest import PHOTOS

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))
SIZE = 64
MAX_ABS_AB = 2.0
MAX_DELTA_E_GAP = 0.5
PHOTO_COUNT = 16


def photos(size: int = SIZE) -> torch.Tensor:
    """Real colour photos as uint8 ``(N, 3, size, size)`` center crops (the shared val split, else samples)."""
    folder = PHOTOS / "val"
    if folder.is_dir():
        images = [to_chw(load_rgb(path)) for path in list_images(folder)[:PHOTO_COUNT]]
    else:
        images = load_samples(SAMPLE_TRAIN + SAMPLE_VAL)
    transform = build_transform(size, train=False, resize=size)
    return torch.stack([transform(image) for image in images])


def build_model(config: Path) -> ColorizationModule:
    """The approach of an experiment YAML (after its ``config:`` base, if any), built from its ``model:`` section."""
    spec = load_config([config])["model"]
    parser = LightningArgumentParser()
    parser.add_subclass_arguments(ColorizationModule, "model")
    cfg = parser.parse_object({"model": spec})
    return parser.instantiate_classes(cfg).model


@torch.no_grad()
def step0_scores(model: ColorizationModule, rgb_uint8: torch.Tensor) -> dict[str, float]:
    """Mean |ab| (Lab units) of the untrained model's output, its CIEDE2000 and the gray picture's."""
    batch = lab_batch(rgb_uint8)
    L_out, ab = model.eval().predict_lab(batch["L"])
    truth = rgb_to_lab(batch["rgb"])
    pred = rgb_to_lab(lab_normalized_to_rgb(L_out, ab))
    gray = rgb_to_lab(lab_normalized_to_rgb(batch["L"], torch.zeros_like(batch["ab"])))
    return {
        "mean_abs_ab": denormalize_ab(ab).abs().mean().item(),
        "mean_abs_dL": (denormalize_l(L_out) - denormalize_l(batch["L"])).abs().mean().item(),
        "delta_e00": delta_e_ciede2000(pred, truth).mean().item(),
        "gray_delta_e00": delta_e_ciede2000(gray, truth).mean().item(),
    }


@pytest.fixture(scope="module")
def real_photos() -> torch.Tensor:
    return photos()


@pytest.mark.parametrize("config", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_step0_is_the_neutral_answer(config: Path, real_photos: torch.Tensor):
    torch.manual_seed(0)
    model = build_model(config)
    L = lab_batch(real_photos[:2])["L"]
    L_out, ab = model.eval().predict_lab(L)
    if L_out.shape != L.shape:  # an upscaler (upscale_x*.yaml): gray by construction, ab is 0 at any step
        assert not ab.any()
        return
    scores = step0_scores(model, real_photos)
    assert scores["mean_abs_ab"] < MAX_ABS_AB, scores
    assert abs(scores["delta_e00"] - scores["gray_delta_e00"]) < MAX_DELTA_E_GAP, scores
