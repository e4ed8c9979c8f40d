"""The shared full-resolution pipeline: the model sees a small L, the output keeps the input's L."""

from __future__ import annotations

import pytest
import torch

from colorlab.approaches.base import ColorizationModule
from colorlab.color import float_to_uint8, normalize_ab, rgb_to_lab, rgb_to_lab_normalized
from colorlab.inference.pipeline import colorize_full_resolution, input_l, model_size


class _ConstantColour(ColorizationModule):
    """Predicts one fixed ab everywhere and remembers the L size it was given."""

    def __init__(self, ab: tuple[float, float] = (20.0, -30.0), restored_l: float | None = None) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.ab = normalize_ab(torch.tensor(ab)).view(1, 2, 1, 1)
        self.restored_l = restored_l
        self.seen: list[tuple[int, int]] = []

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(L.shape[-2:]))
        return self.ab.expand(L.shape[0], 2, *L.shape[-2:]) + 0 * self.weight

    def predict_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L_out, ab = super().predict_lab(L)
        return (L_out if self.restored_l is None else torch.full_like(L, self.restored_l)), ab

    def training_loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.weight}


def _gray_photo(h: int, w: int) -> torch.Tensor:
    """A detailed gray picture (checkerboard + ramp) as normalised L ``(1, 1, h, w)``."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    gray = 0.3 + 0.4 * ((yy // 3 + xx // 3) % 2) * (xx / w)
    return rgb_to_lab_normalized(gray.expand(1, 3, h, w).float())[0]


def test_model_size_keeps_aspect() -> None:
    assert model_size(2000, 3000, 256) == (171, 256)
    assert model_size(300, 200, None) == (300, 200)
    with pytest.raises(ValueError, match="positive"):
        model_size(10, 10, 0)


def test_output_is_full_resolution_with_input_l_and_model_ab() -> None:
    model = _ConstantColour()
    L = _gray_photo(90, 150)
    rgb = colorize_full_resolution(model, L, size=32)
    assert model.seen == [(19, 32)]
    assert rgb.shape == (1, 3, 90, 150)
    lab = rgb_to_lab(rgb)
    L_in = (L + 1) * 50
    assert (lab[:, :1] - L_in).abs().mean() < 0.5  # fine checkerboard detail survives: L was never resized
    assert torch.allclose(lab[:, 1:].mean(dim=(2, 3)), torch.tensor([[20.0, -30.0]]), atol=1.5)


def test_restore_uses_the_models_l() -> None:
    model = _ConstantColour(ab=(0.0, 0.0), restored_l=0.0)  # L_n = 0 -> L = 50
    rgb = colorize_full_resolution(model, _gray_photo(40, 60), size=20, restore=True)
    assert rgb.shape == (1, 3, 40, 60)
    assert torch.allclose(rgb_to_lab(rgb)[:, 0], torch.full((1, 40, 60), 50.0), atol=0.5)


@pytest.mark.parametrize("to_picture", [lambda rgb: rgb, lambda rgb: float_to_uint8(rgb)], ids=["float", "uint8"])
def test_rgb_input_gives_the_same_picture_as_its_l(to_picture) -> None:
    rgb = torch.rand(2, 3, 24, 40)
    picture = to_picture(rgb)
    rgb_in = picture.float() / 255 if picture.dtype == torch.uint8 else picture
    expected = colorize_full_resolution(_ConstantColour(), rgb_to_lab_normalized(rgb_in)[0], size=16)
    assert torch.allclose(colorize_full_resolution(_ConstantColour(), picture, size=16), expected, atol=1e-5)


def test_uint8_gray_input_is_its_lightness() -> None:
    gray = torch.full((1, 1, 8, 8), 119, dtype=torch.uint8)  # sRGB 119 is L = 50.0
    assert torch.allclose(input_l(gray), torch.zeros(1, 1, 8, 8), atol=0.01)
    assert input_l(torch.zeros(1, 1, 4, 4)).eq(0).all()  # float 1-channel input is already normalised L


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 2, 8, 8)])
def test_rejects_wrong_shape(shape) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        colorize_full_resolution(_ConstantColour(), torch.zeros(shape))
