"""The one inference pipeline (colorize, evaluate, serve): one size rule, one alpha rule, one full-resolution merge.

* **Size rule.** The model sees the photo scaled so that its *shorter* side is the run's training scale:
  ``data.init_args.resize`` of the run's ``config.yaml`` (the shorter side its photos were resized to before
  cropping), else its ``image_size``, else :data:`DEFAULT_SIDE`. The longer side is capped at
  :data:`MAX_ASPECT` times that, and both sides are rounded to the net's size ``multiple``.
* **Alpha rule.** The model sees a transparent picture composited onto white (as a viewer shows it); the
  output keeps the picture's own L under its own alpha, so it composites correctly onto any background.
* **Merge.** Colour is smooth, detail lives in L: the model's ab is upsampled bilinearly and merged with the
  picture's own full-resolution L, so a 4000 px photo comes back at 4000 px and as sharp as it went in.
  Upsampling and Lab -> RGB run in square tiles of about ``strip_pixels`` pixels (whatever the aspect), so
  memory grows with the picture's own bytes only (uint8 in, uint8 out), not with float copies of it. A result
  that is only written (:meth:`Colorizer.outputs`) is merged piece by piece as the writer asks for it, so it
  never exists whole.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorlab.color import float_to_uint8, lab_normalized_to_rgb, rgb_to_gray_l, uint8_rgb_to_gray_l
from colorlab.colorizers.classical import CLASSICAL, classical_colorizer
from colorlab.colorizers.loading import load_colorizer
from colorlab.guidance import DEFAULT_PATCH, Hint, HintMap, pin_hints, rasterize
from colorlab.inference.pictures import Output, Picture
from colorlab.runs.checkpoints import CheckpointError
from colorlab.runs.folder import CHECKPOINT_DIR, RunFolder

if TYPE_CHECKING:
    from colorlab.colorizers.base import DeployableColorizer

DEFAULT_SIDE = 256
MAX_ASPECT = 4
STRIP_PIXELS = 1 << 18


def size_multiple(module: nn.Module) -> int:
    """The factor H and W must be multiples of inside ``module``: the lcm of its nets' ``multiple`` (1 if none)."""
    multiples = [m.multiple for m in module.modules() if isinstance(getattr(m, "multiple", None), int)]
    return math.lcm(1, *multiples)


def model_size(height: int, width: int, side: int | None, multiple: int = 1) -> tuple[int, int]:
    """The ``(h, w)`` the model runs at for a ``height x width`` picture (see the size rule above).

    ``side`` is the shorter side (None: the picture's own size, unrounded).
    """
    if side is None:
        return height, width
    if side < 1:
        raise ValueError(f"the model size must be a positive number of pixels, got {side}")
    scale = side / min(height, width)
    scale = min(scale, MAX_ASPECT * side / max(height, width))

    def rounded(n: int) -> int:
        return max(multiple, round(n * scale / multiple) * multiple)

    return rounded(height), rounded(width)


def training_side(ckpt: str | os.PathLike) -> int | None:
    """The shorter side a checkpoint's run trained at: its data ``resize``, else ``image_size`` (None: unknown)."""
    run = RunFolder.of(ckpt)
    for key in ("resize", "image_size"):
        value = run.data_arg(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _name_candidates(path: Path) -> list[str]:
    """Names for a checkpoint, least to most specific: ``run``, ``run/stem``, ``run/version/stem`` for one in a
    run folder (``runs/NAME/VERSION/checkpoints/X.ckpt``), else ``stem``, ``parent/stem``..."""
    path = path.resolve()
    if path.parent.name == CHECKPOINT_DIR and len(path.parents) > 3:
        version, run = path.parents[1].name, path.parents[2].name
        return [run, f"{run}/{path.stem}", f"{run}/{version}/{path.stem}"]
    return [
        "/".join([*[p.name for p in path.parents[:depth]][::-1], path.stem])
        for depth in range(len(path.parents))
    ]


def model_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short unique names for checkpoints: the experiment name of each run (more of the path when that clashes)."""
    candidates = [_name_candidates(Path(p)) for p in paths]
    for level in range(max(map(len, candidates), default=0)):
        names = [c[min(level, len(c) - 1)] for c in candidates]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def input_l(image: torch.Tensor) -> torch.Tensor:
    """Any picture batch -> normalised L ``(B, 1, H, W)`` in [-1, 1].

    Accepts RGB ``(B, 3, H, W)`` (uint8, or float in [0, 1]), a uint8 gray picture ``(B, 1, H, W)``, or
    normalised L ``(B, 1, H, W)`` (float, returned as is).
    """
    if image.dim() != 4 or image.shape[1] not in (1, 3):
        raise ValueError(
            f"expected L or a gray picture (B, 1, H, W) or an RGB picture (B, 3, H, W), got {tuple(image.shape)}"
        )
    if image.shape[1] == 1 and image.dtype != torch.uint8:
        return image
    if image.dtype == torch.uint8:
        return uint8_rgb_to_gray_l(image.expand(-1, 3, -1, -1))
    return rgb_to_gray_l(image.float().expand(-1, 3, -1, -1))


def picture_l(
    rgb: np.ndarray, device: torch.device | str = "cpu", strip_pixels: int = STRIP_PIXELS
) -> torch.Tensor:
    """uint8 RGB ``(H, W, 3)`` -> normalised L ``(1, 1, H, W)`` float32, converted tile by tile (the float
    RGB copies of a whole 24 MP photo would take over 1 GB)."""
    height, width = rgb.shape[:2]
    L = torch.empty(1, 1, height, width, device=device)
    for rows, cols in pixel_tiles(height, width, strip_pixels):
        # torch.tensor copies the tile: pictures decoded by PIL are read-only arrays.
        L[..., rows, cols] = input_l(torch.tensor(rgb[rows, cols], device=device).permute(2, 0, 1)[None])
    return L


def upsample_rows(ab: torch.Tensor, height: int, rows: slice, dim: int = -2) -> torch.Tensor:
    """Rows ``rows`` of ``ab (B, C, h, W)`` bilinearly resized to ``height`` rows (``align_corners=False``);
    ``dim=-1`` does the same for columns.

    The same weights as :func:`torch.nn.functional.interpolate` computes for the whole picture, for a strip
    of its rows only: a strip-by-strip merge equals the whole-picture one (tested to 1e-4).
    """
    h = ab.shape[dim]
    y = torch.arange(rows.start, rows.stop, device=ab.device, dtype=torch.float64)
    src = ((y + 0.5) * (h / height) - 0.5).clamp(min=0.0)
    top = src.floor().long().clamp(max=h - 1)
    bottom = (top + 1).clamp(max=h - 1)
    shape = [1] * ab.dim()
    shape[dim] = -1
    weight = (src - top).to(ab.dtype).view(shape)
    return _select(ab, dim, top) * (1 - weight) + _select(ab, dim, bottom) * weight


def _select(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``x.index_select(dim, index)``; along the last dim through a 2-D view, which torch 2.14 on CPU does up
    to 20x faster (1 x 262,144 px merge tiles: 0.85 ms instead of 16 ms, the same values)."""
    if dim % x.dim() != x.dim() - 1:
        return x.index_select(dim, index)
    return x.reshape(-1, x.shape[-1]).index_select(1, index).view(*x.shape[:-1], -1)


def tiles(height: int, width: int, side: int, pixels: int | None = None) -> Iterator[tuple[slice, slice]]:
    """``(rows, cols)`` of tiles covering a ``height x width`` picture, row by row: ``side`` rows at most, and
    ``pixels // rows`` columns (default ``side``), so a tile holds at most ``max(side², pixels)`` pixels
    whatever the picture's aspect, and a 2-row strip is cut into few wide tiles rather than many tiny ones."""
    rows = min(height, side)
    cols = max(1, (pixels or side * side) // max(1, rows))
    for top in range(0, height, rows):
        for left in range(0, width, cols):
            yield slice(top, min(height, top + rows)), slice(left, min(width, left + cols))


def pixel_tiles(height: int, width: int, pixels: int) -> Iterator[tuple[slice, slice]]:
    """Tiles of at most ``pixels`` pixels (about square, wider for pictures under ``sqrt(pixels)`` rows)."""
    return tiles(height, width, max(1, math.isqrt(max(1, pixels))), pixels)


def tensor_tile(L: torch.Tensor, rows: slice, cols: slice = slice(None)) -> torch.Tensor:
    """``L[..., rows, cols]``: the tile reader :func:`merge` takes for an L already in memory."""
    return L[..., rows, cols]


def _picture_rows(
    picture: Picture, device: torch.device | str, rows: slice, cols: slice = slice(None)
) -> torch.Tensor:
    return picture_l(picture.rgb[rows, cols], device)


def merge_tile(
    L_of_rows: Callable[[slice, slice], torch.Tensor], ab: torch.Tensor, size: tuple[int, int], rows: slice,
    cols: slice,
) -> torch.Tensor:  # fmt: skip
    """sRGB ``(len(rows), len(cols), 3)`` in [0, 1] of one tile of the merge (see :func:`merge`)."""
    height, width = size
    ab_tile = upsample_rows(upsample_rows(ab, height, rows, -2), width, cols, -1)
    return lab_normalized_to_rgb(L_of_rows(rows, cols).to(ab.device), ab_tile)[0].permute(1, 2, 0)


def merge(
    L_of_rows: Callable[[slice, slice], torch.Tensor],
    ab: torch.Tensor,
    size: tuple[int, int],
    out: torch.Tensor,
    strip_pixels: int = STRIP_PIXELS,
) -> torch.Tensor:
    """Write the full-resolution picture into ``out`` ``(H, W, 3)`` (uint8, or float in [0, 1]), tile by tile.

    ``L_of_rows(rows, cols)`` gives normalised L ``(1, 1, len(rows), len(cols))`` of that tile; ``ab``
    ``(1, 2, h, w)`` is upsampled to ``size`` one tile at a time. Tiles are squares of about ``strip_pixels``
    pixels whatever the picture's aspect (a 2 x 24,000,000 px strip too), and no float copy of ab or L at
    the picture's width or height is ever made: only ``h`` x tile-width and one tile exist at a time.
    """
    for rows, cols in pixel_tiles(*size, strip_pixels):
        rgb = merge_tile(L_of_rows, ab, size, rows, cols)
        out[rows, cols] = (float_to_uint8(rgb) if out.dtype == torch.uint8 else rgb).to(out.device)
    return out


def merged_output(
    L_of_rows: Callable[[slice, slice], torch.Tensor], ab: torch.Tensor, size: tuple[int, int],
    alpha: np.ndarray | None,
) -> Output:  # fmt: skip
    """The merge as an :class:`Output`: each tile is merged when the writer asks for it, so the full-resolution
    picture never exists whole (a 2 x 24,000,000 px result is written without its 144 MB)."""

    @torch.inference_mode()
    def tile(rows: slice, cols: slice) -> np.ndarray:
        return float_to_uint8(merge_tile(L_of_rows, ab, size, rows, cols)).cpu().numpy()

    return Output(size, tile, alpha)


NEUTRAL_AB = torch.zeros(1, 2, 1, 1)


@torch.inference_mode()
def gray_picture(picture: Picture, dtype: torch.dtype = torch.uint8) -> np.ndarray:
    """The picture's own L with ab = 0 (what a colorizer starts from), RGB ``(H, W, 3)``; alpha not applied."""
    out = torch.empty(*picture.size, 3, dtype=dtype)
    return merge(partial(_picture_rows, picture, "cpu"), NEUTRAL_AB, picture.size, out).numpy()


def gray_output(picture: Picture) -> Output:
    """:func:`gray_picture` with the picture's alpha, merged tile by tile as it is written."""
    return merged_output(partial(_picture_rows, picture, "cpu"), NEUTRAL_AB, picture.size, picture.alpha)


@dataclass
class Colorizer:
    """A model plus the rules above: pictures in, full-resolution colour pictures out.

    Attributes:
        module: any colorlab approach (its ``predict_lab`` is used), in eval mode.
        side: the shorter side the model runs at (None: each picture at its own size).
        name: how it is shown (tables, folders, the web page).
        path: the checkpoint it came from, if any.
        source: where ``side`` came from, for messages (e.g. ``its training resize``).
        restore: use the L the model returns (restoration approaches) instead of the picture's own L.
        strip_pixels: about how many output pixels one merge strip holds (bounds memory).
        flip: test-time augmentation: average the prediction with that of the mirrored picture (mirrored back);
            twice the model's work.
    """

    module: DeployableColorizer
    side: int | None = DEFAULT_SIDE
    name: str = "model"
    path: Path | None = None
    source: str = "default"
    restore: bool = False
    strip_pixels: int = STRIP_PIXELS
    flip: bool = False

    @classmethod
    def load(
        cls,
        ckpt: str | os.PathLike,
        side: int | None = None,
        device: str | torch.device = "cpu",
        name: str | None = None,
        restore: bool = False,
        flip: bool = False,
    ) -> Colorizer:
        """Load ``ckpt``; ``side`` overrides the training scale read from its run folder; ``flip``: see the class.

        Raises FileNotFoundError for a missing file and ValueError (naming the file) for one that will not load.
        A classical method's name (``levin``, ``reinhard``, ``welsh``; no such file) loads that method.
        """
        if str(ckpt) in CLASSICAL and not Path(ckpt).exists():
            return cls(classical_colorizer(str(ckpt)), side or DEFAULT_SIDE, name or str(ckpt), None, "given"
                       if side else "default", flip=flip)  # fmt: skip
        try:
            module = load_colorizer(ckpt, map_location=device)
        except (FileNotFoundError, CheckpointError):  # their messages already say what is wrong
            raise
        except Exception as exc:  # stale or foreign checkpoints fail in many ways (state dict, pickle...)
            raise ValueError(f"cannot load {ckpt}: {type(exc).__name__}: {exc}") from exc
        if hasattr(module, "upscale_l"):  # an upscaler's ab is 0: as the colour model it returns gray, "done"
            raise ValueError(
                f"{ckpt} is an upscaler ({type(module).__name__}), given as the colour model: colour models "
                "are colorization runs; pass an upscaler with --upscale-ckpt"
            )
        trained = training_side(ckpt)
        source = "given" if side else ("its training scale" if trained else "default")
        return cls(
            module, side or trained or DEFAULT_SIDE, name or Path(ckpt).stem, Path(ckpt), source, restore, flip=flip
        )

    @property
    def multiple(self) -> int:
        """What the net's input sides must be multiples of."""
        return size_multiple(self.module)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters(), torch.empty(0)).device

    def describe(self) -> str:
        """How the model's input size is chosen, for messages and reports."""
        if self.side is None:
            return "each picture at its own size"
        return f"shorter side {self.side} px ({self.source}), longer side at most {MAX_ASPECT * self.side} px"

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(h, w)`` the model sees a ``height x width`` picture at.

        A size the user gave (``--size``) that would show the model more pixels than the picture has runs it at
        the picture's own size: enlarging the gray input adds no detail and multiplies memory (``--size 2000``
        on a 276 px photo asked for 3.9 GB). The run's own training scale still applies to small pictures.
        """
        size = model_size(height, width, self.side, self.multiple)
        if self.source == "given" and size[0] * size[1] > height * width:
            size = model_size(height, width, min(height, width), self.multiple)
        return size

    def model_input(self, L: torch.Tensor) -> torch.Tensor:
        """Full-resolution normalised L ``(B, 1, H, W)`` -> the model's view of it (antialiased downsizing)."""
        small = self.model_size(*L.shape[-2:])
        if small == tuple(L.shape[-2:]):
            return L
        # Antialiased: plain bilinear would alias fine texture into the model's input.
        return F.interpolate(L, size=small, mode="bilinear", antialias=True)

    def picture_input(self, picture: Picture) -> torch.Tensor:
        """The model's view of a picture: its on-white RGB resized to the model size, then its L ``(1, 1, h, w)``.

        Resizing the uint8 RGB first (antialiased bilinear) is what training's ``resize`` did to the photos
        the model learnt from, and skips the full-resolution L: 0.02 s instead of 0.2 s for 12 MP.
        """
        small = self.model_size(*picture.size)
        if small == picture.size:
            return picture_l(picture.on_white(), self.device, self.strip_pixels)
        with warnings.catch_warnings():  # PIL's arrays are read-only; interpolate only reads: no 144 MB copy
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            rgb = torch.from_numpy(picture.on_white()).permute(2, 0, 1)[None]
        return input_l(F.interpolate(rgb, size=small, mode="bilinear", antialias=True).to(self.device))

    def predict(
        self, L_small: torch.Tensor, hints: HintMap | None = None, reference: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model on a batch of model-size L ``(B, 1, h, w)``, with optional guidance: (L_out, ab), float32."""
        L_small = L_small.to(self.device).float()
        hints = hints and HintMap(*(x.to(self.device) for x in hints))
        reference = None if reference is None else reference.to(self.device)

        def predict_lab(L: torch.Tensor, hints: HintMap | None) -> tuple[torch.Tensor, torch.Tensor]:
            if hints is None and reference is None:
                return self.module.predict_lab(L)
            return self.module.predict_lab(L, hints=hints, reference=reference)

        if not self.flip:
            L_out, ab = predict_lab(L_small, hints)
            return L_out.float(), ab.float()
        # the picture and its mirror image in one batch; the mirror's answer is mirrored back and averaged
        L_out, ab = predict_lab(torch.cat([L_small, L_small.flip(-1)]),
                                hints and HintMap(*(torch.cat([x, x.flip(-1)]) for x in hints)))  # fmt: skip
        n = len(L_small)
        return ((L_out[:n] + L_out[n:].flip(-1)) / 2).float(), ((ab[:n] + ab[n:].flip(-1)) / 2).float()

    @torch.inference_mode()
    def guided(
        self, picture: Picture, hints: Sequence[Hint] = (), patch: int = DEFAULT_PATCH,
        reference: torch.Tensor | None = None, dtype: torch.dtype = torch.uint8,
    ) -> np.ndarray:  # fmt: skip
        """One picture colorized at full resolution with hints (picture pixels, mapped exactly to the model's
        pixels by :func:`colorlab.guidance.rasterize`) and/or a reference RGB ``(1, 3, h, w)`` in [0, 1]. The
        pixels under each hint keep the hint's colour (:func:`colorlab.guidance.pin_hints`)."""
        L_small = self.picture_input(picture)
        model_size = tuple(L_small.shape[-2:])
        hint_map = rasterize(hints, picture.size, model_size, patch) if hints else None
        L_out, ab = self.predict(L_small, hint_map, reference)
        return pin_hints(self.full_resolution(picture, L_out, ab, dtype).numpy(), hints, model_size, patch)

    @torch.inference_mode()
    def predictions(self, pictures: Sequence[Picture]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The model's ``(L_out, ab)`` for each picture at its model size; pictures whose model sizes match
        share one forward pass."""
        inputs = [self.picture_input(p) for p in pictures]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, L_small in enumerate(inputs):
            groups.setdefault(tuple(L_small.shape[-2:]), []).append(index)
        predictions: list[tuple[torch.Tensor, torch.Tensor]] = [None] * len(pictures)  # type: ignore[list-item]
        for indices in groups.values():
            L_out, ab = self.predict(torch.cat([inputs[i] for i in indices]))
            for row, index in enumerate(indices):
                predictions[index] = (L_out[row : row + 1], ab[row : row + 1])
        return predictions

    @torch.inference_mode()
    def __call__(self, pictures: Sequence[Picture], dtype: torch.dtype = torch.uint8) -> list[np.ndarray]:
        """Colorize pictures at their full resolution -> one RGB ``(H, W, 3)`` each (uint8, or float in [0, 1]).

        Alpha is not applied: pair each result with its picture's alpha when writing it.
        """
        return [self.full_resolution(picture, L_out, ab, dtype).numpy()
                for picture, (L_out, ab) in zip(pictures, self.predictions(pictures))]  # fmt: skip

    @torch.inference_mode()
    def outputs(self, pictures: Sequence[Picture]) -> list[Output]:
        """Colorize pictures for writing: the model runs now, each full-resolution merge tile by tile as its
        :class:`Output` is written (with the picture's alpha)."""
        return [merged_output(self._L_of_rows(picture, L_out), ab, picture.size, picture.alpha)
                for picture, (L_out, ab) in zip(pictures, self.predictions(pictures))]  # fmt: skip

    def _L_of_rows(self, picture: Picture, L_out: torch.Tensor) -> Callable[[slice, slice], torch.Tensor]:
        if self.restore:
            return partial(tensor_tile, restored_l(L_out, picture.size))
        return partial(_picture_rows, picture, self.device)

    def full_resolution(
        self, picture: Picture, L_out: torch.Tensor, ab: torch.Tensor, dtype: torch.dtype = torch.uint8
    ) -> torch.Tensor:
        """A prediction ``(L_out, ab)`` of :meth:`predict` merged at the picture's size ``(H, W, 3)``."""
        out = torch.empty(*picture.size, 3, dtype=dtype)
        return merge(self._L_of_rows(picture, L_out), ab, picture.size, out, self.strip_pixels)

    @torch.inference_mode()
    def colorize_l(self, L: torch.Tensor) -> torch.Tensor:
        """Tensor version: normalised L (or a picture :func:`input_l` converts) ``(B, *, H, W)`` -> sRGB
        ``(B, 3, H, W)`` in [0, 1] (no alpha), on the model's device."""
        L = input_l(L.to(self.device)).float()
        size = tuple(L.shape[-2:])
        L_out, ab = self.predict(self.model_input(L))
        results = []
        for i in range(L.shape[0]):
            L_i = restored_l(L_out[i : i + 1], size) if self.restore else L[i : i + 1]
            out = torch.empty(*size, 3, device=self.device)
            merged = merge(partial(tensor_tile, L_i), ab[i : i + 1], size, out, self.strip_pixels)
            results.append(merged.permute(2, 0, 1))
        return torch.stack(results)


def restored_l(L_model: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A restoration model's L ``(1, 1, h, w)`` at the picture's size (bicubic, clamped to [-1, 1])."""
    if tuple(L_model.shape[-2:]) == tuple(size):
        return L_model
    return F.interpolate(L_model, size=size, mode="bicubic", align_corners=False).clamp(-1.0, 1.0)


def colorize_full_resolution(
    model: DeployableColorizer, image: torch.Tensor, size: int | None = DEFAULT_SIDE, restore: bool = False
) -> torch.Tensor:
    """Colorize a picture batch at full resolution with :class:`Colorizer`'s rules (``size``: shorter side).

    Args:
        model: any colorlab approach.
        image: normalised L ``(B, 1, H, W)`` in [-1, 1], or a picture that :func:`input_l` converts.
        size: the shorter side the model runs at; None runs it at ``H x W``.
        restore: use the L the model returns instead of the input's L.

    Returns:
        sRGB ``(B, 3, H, W)`` in [0, 1] on the model's device, clipped to the gamut.
    """
    return Colorizer(model, size, restore=restore).colorize_l(image)


def find_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Every ``*.ckpt`` under ``ckpt_dir`` (recursive, sorted); an error for a missing or empty folder."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {ckpt_dir}")
    found = sorted(ckpt_dir.rglob("*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no .ckpt files under {ckpt_dir}")
    return found
