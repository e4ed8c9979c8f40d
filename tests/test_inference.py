"""The shared full-resolution pipeline: the model sees a small L, the output keeps the input's L."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorlab.color import (
    float_to_uint8,
    lab_normalized_to_rgb,
    normalize_ab,
    rgb_to_lab,
    rgb_to_lab_normalized,
    upsample_ab,
)
from colorlab.colorizers.base import DeployableColorizer
from colorlab.inference.chain import Chain
from colorlab.inference.pictures import Picture
from colorlab.inference.pipeline import (
    MAX_ASPECT,
    Colorizer,
    colorize_full_resolution,
    input_l,
    model_size,
    picture_l,
    training_side,
)


class _ConstantColour(DeployableColorizer):
    """Predicts one fixed ab everywhere and remembers the L (and its size) it was given."""

    def __init__(self, ab: tuple[float, float] = (20.0, -30.0), restored_l: float | None = None) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.ab = normalize_ab(torch.tensor(ab)).view(1, 2, 1, 1)
        self.restored_l = restored_l
        self.seen: list[tuple[int, int]] = []
        self.inputs: list[torch.Tensor] = []

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(L.shape[-2:]))
        self.inputs.append(L.clone())
        return self.ab.expand(L.shape[0], 2, *L.shape[-2:]) + 0 * self.weight

    def predict_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L_out, ab = super().predict_lab(L)
        return (L_out if self.restored_l is None else torch.full_like(L, self.restored_l)), ab


def _gray_photo(h: int, w: int) -> torch.Tensor:
    """A detailed gray picture (checkerboard + ramp) as normalised L ``(1, 1, h, w)``."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    gray = 0.3 + 0.4 * ((yy // 3 + xx // 3) % 2) * (xx / w)
    return rgb_to_lab_normalized(gray.expand(1, 3, h, w).float())[0]


def test_model_size_is_the_shorter_side_rounded_to_the_multiple() -> None:
    assert model_size(2000, 3000, 256) == (256, 384)
    assert model_size(3000, 2000, 256, multiple=32) == (384, 256)
    assert model_size(45, 67, 48, multiple=8) == (48, 72)
    assert model_size(100, 1000, 16) == (6, MAX_ASPECT * 16), "a panorama: longer side capped, aspect kept"
    assert model_size(300, 200, None) == (300, 200)
    with pytest.raises(ValueError, match="positive"):
        model_size(10, 10, 0)


def test_output_is_full_resolution_with_input_l_and_model_ab() -> None:
    model = _ConstantColour()
    L = _gray_photo(90, 150)
    rgb = colorize_full_resolution(model, L, size=32)
    assert model.seen == [(32, 53)]
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


@pytest.mark.parametrize(
    "to_picture", [lambda rgb: rgb, lambda rgb: float_to_uint8(rgb)], ids=["float", "uint8"]
)
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


def test_strip_merge_equals_the_whole_picture_merge() -> None:
    torch.manual_seed(0)
    L = torch.rand(1, 1, 53, 71) * 2 - 1
    ab = (torch.rand(1, 2, 9, 13) - 0.5) * 1.6

    class _Fixed(_ConstantColour):
        def colorize(self, L_small: torch.Tensor) -> torch.Tensor:
            return ab + 0 * self.weight

    whole = lab_normalized_to_rgb(L, upsample_ab(ab, (53, 71)))
    for strip_pixels in (1, 71 * 5 + 3, 10**9):  # one row per strip, strips of 5 rows, one strip
        colorizer = Colorizer(_Fixed(), side=9, strip_pixels=strip_pixels)
        assert (colorizer.colorize_l(L) - whole).abs().max() < 1e-4


def test_pictures_of_one_model_size_share_a_forward_pass() -> None:
    model = _ConstantColour()
    colorizer = Colorizer(model, side=16)
    pictures = [
        Picture(np.full((h, w, 3), 90, np.uint8), None, "png") for h, w in [(40, 60), (20, 30), (30, 30)]
    ]
    outputs = colorizer(pictures)
    assert sorted(model.seen) == [(16, 16), (16, 24)], "two sizes, two forward passes for three pictures"
    assert [o.shape for o in outputs] == [(40, 60, 3), (20, 30, 3), (30, 30, 3)]
    assert all(o.dtype == np.uint8 for o in outputs)


def test_the_model_sees_a_photo_as_training_resized_it() -> None:
    """Training resized the uint8 photo (torchvision, antialiased) before taking L; so does inference."""
    from torchvision.transforms import v2

    rgb = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
    resized, full = _ConstantColour(), _ConstantColour()
    Colorizer(resized, side=30)([Picture(rgb, None, "jpeg")])
    training_view = v2.Resize(30, antialias=True)(torch.tensor(rgb).permute(2, 0, 1))
    torch.testing.assert_close(resized.inputs[0], input_l(training_view[None]))
    Colorizer(full, side=None)([Picture(rgb, None, "jpeg")])  # no resizing: the picture's own L
    torch.testing.assert_close(full.inputs[0], picture_l(rgb))
    chained = _ConstantColour()  # restore-colorize-upscale without a restorer shows it the same
    Chain(Colorizer(chained, side=30))(Picture(rgb, None, "jpeg"))
    torch.testing.assert_close(chained.inputs[0], resized.inputs[0])


def test_alpha_rule_model_sees_white_output_keeps_the_pictures_own_l() -> None:
    model = _ConstantColour()
    rgb = np.full((8, 8, 3), 119, np.uint8)  # L = 50 gray under full transparency
    picture = Picture(rgb, np.zeros((8, 8), np.uint8), "png")
    out = Colorizer(model, side=None)([picture], dtype=torch.float32)[0]
    seen = model.inputs
    assert torch.allclose(seen[0], torch.ones_like(seen[0]), atol=1e-3), "the model saw white (L = 100)"
    out_l = picture_l(np.rint(out * 255).astype(np.uint8))
    assert torch.allclose(out_l, picture_l(rgb), atol=0.02), "the output keeps the picture's own L"


def test_training_side_comes_from_the_run_folder(tmp_path) -> None:
    import yaml

    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert training_side(ckpt) is None
    config = {"data": {"class_path": "x", "init_args": {"image_size": 64}}}
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config))
    assert training_side(ckpt) == 64
    config["data"]["init_args"]["resize"] = 192
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config))
    assert training_side(ckpt) == 192, "the training resize is the scale the model learned"


def test_model_sizes_are_rounded_to_the_nets_multiple() -> None:
    model = _ConstantColour()
    model.multiple = 8
    Colorizer(model, side=21)([Picture(np.zeros((45, 67, 3), np.uint8), None, "png")])
    assert model.seen == [(24, 32)]


class _LeftToRight(DeployableColorizer):
    """A net that is not mirror-symmetric: ab grows from left to right whatever the picture."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def colorize(self, L: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-0.5, 0.5, L.shape[-1]).expand(L.shape[0], 2, *L.shape[-2:])
        return ramp + 0.2 * L + 0 * self.weight


def test_flip_tta_averages_the_prediction_with_the_mirrored_pictures_mirrored_back() -> None:
    L = _gray_photo(24, 32)
    plain = Colorizer(_LeftToRight(), side=None).predict(L)[1]
    flipped = Colorizer(_LeftToRight(), side=None, flip=True).predict(L)[1]
    # the ramp and its mirror cancel; what depends on the picture itself stays
    assert torch.allclose(flipped, 0.2 * L.expand(-1, 2, -1, -1), atol=1e-6)
    assert not torch.allclose(plain, flipped)
    symmetric = _ConstantColour()  # a mirror-symmetric net: flip averaging changes nothing
    assert torch.equal(Colorizer(symmetric, side=None, flip=True).predict(L)[1], Colorizer(symmetric, side=None).predict(L)[1])
    out = colorize_full_resolution(_LeftToRight(), L, size=None)
    assert out.shape == (1, 3, 24, 32)
