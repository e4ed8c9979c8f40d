"""Restore, colorize, upscale: the old-photo chain behind ``python -m colorlab restore-colorize-upscale``.

A gray, small, noisy scan goes through up to three models, each on what it is for:

1. **restore** (optional, its own checkpoint): a restoration approach cleans L;
2. **colorize**: any approach predicts ab (a restore+colorize checkpoint also returns the restored L);
3. **upscale** (optional): an :class:`colorlab.colorizers.upscale.UpscaleNet` enlarges L ``k`` times, in
   overlapping tiles so memory stays bounded whatever the picture's size; without one, a factor ``k``
   upscales L bicubically. ab is upsampled bilinearly to the final size (colour is smooth, detail lives in
   L) and merged with the upscaled L in strips, as the one pipeline does for colorize.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from colorlab.colorizers.loading import load_colorizer
from colorlab.colorizers.upscale import UpscaleNet, bicubic_l
from colorlab.inference.folders import ColorizeReport, Job, Outputs, process_files
from colorlab.inference.pictures import MAX_MEGAPIXELS, Output, Picture, output_suffix
from colorlab.inference.pipeline import STRIP_PIXELS, Colorizer, merge, picture_l, restored_l, tensor_tile
from colorlab.inference.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, upscale_tiled
from colorlab.models.rrdb import rrdbnet_from_weights


def upscale_l(
    L: torch.Tensor, upscaler: UpscaleNet | None, factor: int, tile: int, overlap: int
) -> torch.Tensor:
    """L enlarged by the upscaler (tiled) when there is one, else bicubically ``factor`` times."""
    if upscaler is not None:
        return upscale_tiled(upscaler, L, tile, overlap)
    return L if factor == 1 else bicubic_l(L, factor)


def load_upscaler(path: str | os.PathLike, device: str | torch.device = "cpu") -> UpscaleNet:
    """An upscaler from a colorlab checkpoint, or from a published ESRGAN / Real-ESRGAN ``.pth`` weight file
    (used as published: it predicts the whole picture); a clear error for anything else."""
    if Path(path).suffix == ".pth":
        return UpscaleNet(rrdbnet_from_weights(path), residual=False).to(device).eval()
    module = load_colorizer(path, map_location=device)
    if not hasattr(module, "upscale_l"):
        raise ValueError(
            f"{path} is a colour model ({type(module).__name__}), given as the upscaler: upscalers are "
            "colorlab.approaches.upscale runs; pass a colour model with --ckpt"
        )
    return module


@dataclass
class Chain:
    """Restore -> colorize -> upscale, one picture at a time.

    Attributes:
        colorizer: the colour stage (its ``restore`` flag keeps a restoration model's L).
        restorer: an optional separate restoration stage, run first (its L replaces the picture's).
        upscaler: an optional upscaling model; ``factor`` must then be 1 or its scale.
        factor: the enlargement without an upscaler (bicubic); 1 keeps the size.
        tile / overlap: the upscaler's tiles, in input pixels (bounds memory, see :func:`upscale_tiled`).
        strip_pixels: pixels per merge strip of the final picture.
    """

    colorizer: Colorizer
    restorer: Colorizer | None = None
    upscaler: UpscaleNet | None = None
    factor: int = 1
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    strip_pixels: int = STRIP_PIXELS

    def __post_init__(self) -> None:
        if self.factor < 1:
            raise ValueError(f"the upscaling factor must be a positive integer, got {self.factor}")
        if self.upscaler is not None and self.factor not in (1, self.upscaler.scale):
            raise ValueError(f"the upscale model enlarges x{self.upscaler.scale}; asked for x{self.factor}")

    @property
    def scale(self) -> int:
        """How many times larger the output is than the input."""
        return self.upscaler.scale if self.upscaler is not None else self.factor

    @torch.inference_mode()
    def __call__(self, picture: Picture) -> np.ndarray:
        """One picture -> uint8 RGB ``(k*H, k*W, 3)``: restored, colorized and upscaled (alpha not applied)."""
        size = picture.size
        L = picture_l(picture.on_white(), self.colorizer.device)
        if self.restorer is not None:
            L_restored, _ = self.restorer.predict(self.restorer.model_input(L))
            L = restored_l(L_restored.to(L.device), size)
        # Without a restorer the colorizer sees the photo as `colorize` shows it (resized as in training).
        L_in = (
            self.colorizer.model_input(L)
            if self.restorer is not None
            else self.colorizer.picture_input(picture)
        )
        L_out, ab = self.colorizer.predict(L_in)
        if self.colorizer.restore:
            L = restored_l(L_out.to(L.device), size)
        L = upscale_l(L, self.upscaler, self.factor, self.tile, self.overlap)
        out = torch.empty(*L.shape[-2:], 3, dtype=torch.uint8)
        return merge(partial(tensor_tile, L), ab, tuple(L.shape[-2:]), out, self.strip_pixels).numpy()

    def alpha(self, picture: Picture) -> np.ndarray | None:
        """The picture's alpha at the output size (bicubic), or None for an opaque picture."""
        if picture.alpha is None or self.scale == 1:
            return picture.alpha
        height, width = picture.size
        image = Image.fromarray(picture.alpha, "L").resize((width * self.scale, height * self.scale),
                                                            Image.Resampling.BICUBIC)  # fmt: skip
        return np.asarray(image)


def output_name(rel: Path, scale: int) -> Path:
    """``photo.jpg`` -> ``photo_x2.jpg``: the size change shows in the name (nothing for ×1)."""
    return rel if scale == 1 else rel.with_name(f"{rel.stem}_x{scale}{rel.suffix}")


def chain_files(
    inputs: Sequence[str | os.PathLike],
    chain: Chain,
    out_dir: str | os.PathLike,
    fmt: str | None = None,
    max_megapixels: float = MAX_MEGAPIXELS,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: tqdm.write(message, file=sys.stderr),
) -> ColorizeReport:
    """Run the chain on every input into ``out_dir`` (``REL`` -> ``REL_xK``), one picture at a time, on the
    one file loop (:func:`colorlab.inference.folders.process_files`: failures reported, nothing replaced).
    ``max_megapixels`` caps the *output*: inputs over ``cap / k²`` are refused before decoding.
    """
    out_dir = Path(out_dir)

    def render(batch: list[Job]) -> list[Outputs]:
        return [
            [(out_dir / output_name(job.rel, chain.scale).with_suffix(output_suffix(job.source, job.fmt)),
              Output.of(chain(job.picture), chain.alpha(job.picture)))]
            for job in batch
        ]  # fmt: skip

    return process_files(inputs, out_dir, render, fmt, max_megapixels / chain.scale**2, batch_pixels=0,
                         desc="restore-colorize-upscale", progress=progress, log=log)  # fmt: skip
