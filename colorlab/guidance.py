"""Guidance for colorizers: colour hints (points the user colours) and reference photos.

Hint format (``--hints hints.json``, the web page): a JSON list of ``{"x": X, "y": Y, "color": C}`` in
*picture* pixels (``0 <= x < width``, ``0 <= y < height``; (0, 0) is the top-left pixel), the colour as
``"#rrggbb"`` or as Lab ``[L, a, b]``. Only the colour's ab is used: lightness always comes from the photo.

A model sees hints as a :class:`HintMap`: normalised ab ``(B, 2, h, w)`` and a mask ``(B, 1, h, w)`` in
*model* pixels. :func:`rasterize` maps each hint exactly: picture pixel ``(x, y)`` lands on the model pixel
whose footprint holds its centre, ``floor((x + 0.5) * w / W)``, the same convention (``align_corners=False``)
the pipeline uses to upsample ab back, so a hint is where the person clicked at any size and aspect.
Each hint covers a ``patch x patch`` square of model pixels around that pixel.

Training simulates hints from the truth with Zhang et al. 2017's recipe (:func:`simulate_hints`), and
``evaluate --hints N`` samples N seeded hints from the truth (:func:`sample_picture_hints`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from colorlab.color import lab_to_rgb, normalize_ab, rgb_to_lab

MAX_HINTS = 1000
MAX_PATCH = 31
DEFAULT_PATCH = 3
# Zhang et al. 2017: hint count ~ Geometric(1/8), patches 1-9 px wide, centres ~ N(centre, (side/4)^2).
HINT_P = 1 / 8
PATCH_RANGE = (1, 9)
CENTRE_SIGMA = 0.25
GAMUT_TOLERANCE = 1e-3
# A reference photo is decoded whole before it is shrunk: this bounds its memory.
MAX_REFERENCE_MEGAPIXELS = 50.0
REFERENCE_MIN_CHROMA = 2.0


class GuidanceError(ValueError):
    """Hints or a reference that cannot be used, with a one-line message for the person who gave them."""


class HintMap(NamedTuple):
    """Hints in model pixels: normalised ab ``(B, 2, h, w)`` (0 where no hint) and mask ``(B, 1, h, w)`` in {0, 1}."""

    ab: torch.Tensor
    mask: torch.Tensor

    def channels(self) -> torch.Tensor:
        """The net's extra input channels ``(B, 3, h, w)``: ab (zero outside hints) and the mask."""
        return torch.cat([self.ab * self.mask, self.mask], dim=1)


@dataclass(frozen=True)
class Hint:
    """One hint: a picture pixel and the Lab colour the person wants there (``L`` is informative only)."""

    x: float
    y: float
    L: float
    a: float
    b: float


def refuse_guidance(
    owner: object, hints: Any, reference: Any, hints_ok: bool = False, reference_ok: bool = False
) -> None:
    """Raise :class:`GuidanceError` naming ``owner`` when it is given guidance it cannot use."""
    name = getattr(owner, "guidance_name", type(owner).__name__)
    if hints is not None and not hints_ok:
        raise GuidanceError(f"{name} cannot use colour hints; use a hint model (experiments/guided_hints.yaml) "
                            "or the classical --ckpt levin")  # fmt: skip
    if reference is not None and not reference_ok:
        raise GuidanceError(f"{name} cannot use a reference photo; use --ckpt reinhard, --ckpt welsh "
                            "or a guided_hints model")  # fmt: skip


# ---- parsing ------------------------------------------------------------------------------------------


def parse_color(color: Any, where: str) -> tuple[float, float, float]:
    """``"#rrggbb"`` or ``[L, a, b]`` -> Lab; raises :class:`GuidanceError` for malformed or out-of-gamut colours."""
    if isinstance(color, str):
        text = color.strip().lstrip("#")
        if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise GuidanceError(f"{where}: colour {color!r} is not '#rrggbb'")
        rgb = torch.tensor([int(text[i : i + 2], 16) / 255 for i in (0, 2, 4)]).view(1, 3, 1, 1)
        L, a, b = rgb_to_lab(rgb).flatten().tolist()
        return L, a, b
    if (
        isinstance(color, (list, tuple)) and len(color) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in color)
    ):  # fmt: skip
        lab = torch.tensor([float(v) for v in color]).view(1, 3, 1, 1)
        rgb = lab_to_rgb(lab, clip=False)
        if not 0 <= color[0] <= 100 or (rgb < -GAMUT_TOLERANCE).any() or (rgb > 1 + GAMUT_TOLERANCE).any():
            raise GuidanceError(f"{where}: Lab colour {list(color)} is outside the sRGB gamut")
        return float(color[0]), float(color[1]), float(color[2])
    raise GuidanceError(f"{where}: colour must be '#rrggbb' or [L, a, b], got {color!r}")


def parse_hints(data: Any, size: tuple[int, int], max_hints: int = MAX_HINTS) -> list[Hint]:
    """A JSON value (list of ``{x, y, color}``) -> hints checked against the picture ``size`` ``(H, W)``."""
    if not isinstance(data, list):
        raise GuidanceError(
            f"hints must be a JSON list of {{x, y, color}} objects, got {type(data).__name__}"
        )
    if len(data) > max_hints:
        raise GuidanceError(f"{len(data)} hints is more than the cap of {max_hints}")
    height, width = size
    hints = []
    for i, item in enumerate(data):
        where = f"hint {i}"
        if not isinstance(item, dict) or not {"x", "y", "color"} <= item.keys():
            raise GuidanceError(
                f"{where}: expected an object with x, y and color, got {json.dumps(item)[:80]}"
            )
        x, y = item["x"], item["y"]
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)
        ):
            raise GuidanceError(f"{where}: x and y must be numbers, got {x!r}, {y!r}")
        if not (0 <= x < width and 0 <= y < height):
            raise GuidanceError(f"{where}: ({x}, {y}) is outside the {width}x{height} picture")
        hints.append(Hint(float(x), float(y), *parse_color(item["color"], where)))
    return hints


def load_hints(text: str, size: tuple[int, int], max_hints: int = MAX_HINTS) -> list[Hint]:
    """Hints from JSON text (a file's contents or a form field), checked as :func:`parse_hints` does."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GuidanceError(
            f"hints are not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_hints(data, size, max_hints)


def check_patch(patch: int) -> int:
    """A patch side in model pixels, checked."""
    if not isinstance(patch, int) or not 1 <= patch <= MAX_PATCH:
        raise GuidanceError(f"the hint patch must be 1 to {MAX_PATCH} model pixels, got {patch!r}")
    return patch


# ---- mapping picture pixels -> model pixels ----------------------------------------------------------------


def model_pixel(x: float, y: float, size: tuple[int, int], model_size: tuple[int, int]) -> tuple[int, int]:
    """The model pixel ``(col, row)`` whose footprint holds the centre of picture pixel ``(x, y)``."""
    (height, width), (h, w) = size, model_size
    col = min(w - 1, math.floor((math.floor(x) + 0.5) * w / width))
    row = min(h - 1, math.floor((math.floor(y) + 0.5) * h / height))
    return col, row


def rasterize(
    hints: Sequence[Hint], size: tuple[int, int], model_size: tuple[int, int], patch: int = DEFAULT_PATCH,
    device: torch.device | str = "cpu",
) -> HintMap:  # fmt: skip
    """Hints in picture pixels of a ``size`` ``(H, W)`` picture -> a :class:`HintMap` ``(1, *, h, w)`` for a model
    running at ``model_size``; each hint fills a ``patch``-wide square (later hints win where they overlap)."""
    check_patch(patch)
    h, w = model_size
    ab = torch.zeros(1, 2, h, w, device=device)
    mask = torch.zeros(1, 1, h, w, device=device)
    before = (patch - 1) // 2
    for hint in hints:
        col, row = model_pixel(hint.x, hint.y, size, model_size)
        rows = slice(max(0, row - before), min(h, row - before + patch))
        cols = slice(max(0, col - before), min(w, col - before + patch))
        ab[0, :, rows, cols] = normalize_ab(torch.tensor([hint.a, hint.b], device=device)).view(2, 1, 1)
        mask[0, :, rows, cols] = 1.0
    return HintMap(ab, mask)


def footprint(hint: Hint, size: tuple[int, int], model_size: tuple[int, int], patch: int) -> tuple[slice, slice]:
    """The picture pixels ``(rows, cols)`` under a hint: those whose model pixel lies in the hint's
    ``patch``-wide square (the inverse of :func:`model_pixel`), always including the hint's own pixel."""
    (height, width), (h, w) = size, model_size
    col, row = model_pixel(hint.x, hint.y, size, model_size)
    before = (patch - 1) // 2

    def first(m: int, n: int, big: int) -> int:  # the first picture pixel whose model pixel is >= m
        return max(0, math.ceil(m * big / n - 0.5))

    r0, r1 = max(0, row - before), min(h, row - before + patch)
    c0, c1 = max(0, col - before), min(w, col - before + patch)
    y, x = int(hint.y), int(hint.x)
    rows = slice(min(first(r0, h, height), y), max(first(r1, h, height), y + 1))
    cols = slice(min(first(c0, w, width), x), max(first(c1, w, width), x + 1))
    return rows, cols


def pin_hints(
    rgb: np.ndarray, hints: Sequence[Hint], model_size: tuple[int, int], patch: int = DEFAULT_PATCH
) -> np.ndarray:
    """THE hint rule at full resolution: the picture pixels under each hint (:func:`footprint`) take the hint's
    ab with their own L, in place; ``rgb`` ``(H, W, 3)`` is uint8 or float in [0, 1]. A hint is a constraint
    where it was given, as in Levin et al.; the model colours everything else."""
    for hint in hints:
        rows, cols = footprint(hint, rgb.shape[:2], model_size, patch)
        block = torch.from_numpy(np.ascontiguousarray(rgb[rows, cols])).float()
        block = block / 255.0 if rgb.dtype == np.uint8 else block
        lab = rgb_to_lab(block.permute(2, 0, 1)[None])
        lab[:, 1], lab[:, 2] = hint.a, hint.b
        pinned = lab_to_rgb(lab)[0].permute(1, 2, 0).numpy()
        rgb[rows, cols] = (pinned * 255.0 + 0.5).astype(np.uint8) if rgb.dtype == np.uint8 else pinned
    return rgb


# ---- hints from the truth -----------------------------------------------------------------------------------


def simulate_hints(
    ab: torch.Tensor, generator: torch.Generator | None = None, p: float = HINT_P,
    patch_range: tuple[int, int] = PATCH_RANGE, count: int | None = None,
) -> HintMap:  # fmt: skip
    """Zhang et al. 2017's training hints from the true normalised ab ``(B, 2, H, W)``: per picture a
    Geometric(``p``) number of hints (0 included; ``count`` fixes it), each a square patch of uniform side in
    ``patch_range`` centred on a Gaussian around the picture's middle (sigma a quarter of each side), holding
    the patch's mean true ab."""
    batch, _, height, width = ab.shape
    device = ab.device
    out_ab = torch.zeros_like(ab)
    mask = torch.zeros(batch, 1, height, width, device=device, dtype=ab.dtype)
    for i in range(batch):
        if count is None:
            # Geometric on {0, 1, ...}: floor(log U / log(1 - p)).
            u = torch.rand((), generator=generator).clamp_min(1e-12)
            n = math.floor(math.log(u.item()) / math.log(1 - p))
        else:
            n = count
        n = min(n, MAX_HINTS)
        if n == 0:
            continue
        sides = torch.randint(patch_range[0], patch_range[1] + 1, (n,), generator=generator).tolist()
        centre = torch.randn(n, 2, generator=generator) * CENTRE_SIGMA + 0.5
        for side, (cy, cx) in zip(sides, centre.tolist()):
            side = min(side, height, width)
            top = min(max(0, round(cy * height - side / 2)), height - side)
            left = min(max(0, round(cx * width - side / 2)), width - side)
            rows, cols = slice(top, top + side), slice(left, left + side)
            out_ab[i, :, rows, cols] = ab[i, :, rows, cols].mean(dim=(1, 2), keepdim=True)
            mask[i, :, rows, cols] = 1.0
    return HintMap(out_ab, mask)


def sample_picture_hints(lab: np.ndarray, count: int, seed: int = 0, window: int = 1) -> list[Hint]:
    """``count`` hints sampled from a true picture's Lab ``(H, W, 3)`` with a fixed seed: centres from the same
    Gaussian as training (clipped to the picture), colour the truth's mean over a ``window``-wide square."""
    height, width = lab.shape[:2]
    rng = np.random.default_rng(seed)
    hints = []
    for cy, cx in rng.normal(0.5, CENTRE_SIGMA, size=(count, 2)):
        x = int(np.clip(cx * width, 0, width - 1))
        y = int(np.clip(cy * height, 0, height - 1))
        half = window // 2
        block = lab[max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1].reshape(-1, 3)
        L, a, b = block.mean(0).tolist()
        hints.append(Hint(x, y, L, a, b))
    return hints


# ---- reference photos ------------------------------------------------------------------------------------


def check_reference(rgb: np.ndarray) -> np.ndarray:
    """A reference photo ``(H, W, 3)`` uint8, refused when it holds no colour to lend (a gray photo)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise GuidanceError(
            f"a reference must be an RGB photo, got an array of shape {rgb.shape} ({rgb.dtype})"
        )
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / 65536)))
    sample = torch.tensor(rgb[::step, ::step]).permute(2, 0, 1)[None].float() / 255
    chroma = rgb_to_lab(sample)[:, 1:].norm(dim=1).mean().item()
    if chroma < REFERENCE_MIN_CHROMA:
        raise GuidanceError(
            f"the reference photo is gray (mean chroma {chroma:.1f}): it has no colours to lend"
        )
    return rgb


def reference_tensor(rgb: np.ndarray, side: int | None = None) -> torch.Tensor:
    """A checked reference ``(H, W, 3)`` uint8 -> float RGB ``(1, 3, h, w)`` in [0, 1], its shorter side at most
    ``side`` (antialiased) so matching costs the same whatever the photo's size."""
    check_reference(rgb)
    tensor = torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255
    if side is not None and min(rgb.shape[:2]) > side:
        scale = side / min(rgb.shape[:2])
        size = (max(1, round(rgb.shape[0] * scale)), max(1, round(rgb.shape[1] * scale)))
        tensor = F.interpolate(tensor, size=size, mode="bilinear", antialias=True).clamp(0, 1)
    return tensor
