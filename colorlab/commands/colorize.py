"""``python -m colorlab colorize INPUT... --ckpt MODEL.ckpt -o OUTDIR``: colorize real photos at full resolution.

Any input (files or folders, recursive; colour photos are turned gray first; grayscale, RGBA, CMYK,
palette, 16-bit, EXIF-rotated) comes back at its own size and sharpness: the model runs at its training
resolution and only its ab is upsampled (:func:`colorlab.inference.pipeline.colorize_full_resolution`). Several
models give one output each plus a labelled ``gray | model A | model B`` strip. A bad file is reported
and skipped; no input file is ever written to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import yaml
from PIL import Image, ImageDraw, ImageFont, ImageOps
from tqdm import tqdm

from colorlab.approaches.base import ColorizationModule
from colorlab.color import float_to_uint8, l_to_gray_rgb
from colorlab.data.images import IMAGE_EXTENSIONS, list_images, to_rgb
from colorlab.inference.checkpoints import CheckpointError, load_colorizer
from colorlab.inference.onnx_runtime import OnnxColorizer
from colorlab.inference.pipeline import colorize_full_resolution, input_l

DEFAULT_SIZE = 256
# Output formats: the name users type -> (PIL format, file suffixes, keeps alpha).
FORMATS = {
    "jpg": ("JPEG", (".jpg", ".jpeg"), False),
    "png": ("PNG", (".png",), True),
    "webp": ("WEBP", (".webp",), True),
    "bmp": ("BMP", (".bmp",), False),
    "tif": ("TIFF", (".tif", ".tiff"), True),
}
_FORMAT_OF_PIL = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
COMPARE_DIR = "compare"


# ---- models -------------------------------------------------------------------------------------------


@dataclass
class Colorizer:
    """A loaded model, the name it is shown under and the longer side (px) it runs at."""

    name: str
    path: Path
    module: ColorizationModule
    size: int


def training_size(ckpt: Path) -> int | None:
    """The image size a checkpoint's run trained at, from the run's ``config.yaml`` (None if not found)."""
    for config in (ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml"):
        if config.is_file():
            data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
            args = data.get("init_args", data) if isinstance(data, dict) else {}
            sizes = [args.get(k) for k in ("resize", "image_size") if isinstance(args.get(k), int)]
            return max(sizes) if sizes else None
    return None


def _name_candidates(path: Path) -> list[str]:
    """Names for a checkpoint, least to most specific: ``run``, ``run/stem``, ``run/version/stem`` for
    one inside a run folder (``runs/NAME/VERSION/checkpoints/X.ckpt``), else ``stem``, ``parent/stem``..."""
    path = path.resolve()
    if path.parent.name == "checkpoints" and len(path.parents) > 3:
        version, run = path.parents[1].name, path.parents[2].name
        return [run, f"{run}/{path.stem}", f"{run}/{version}/{path.stem}"]
    return [
        "/".join([*[p.name for p in path.parents[:depth]][::-1], path.stem])
        for depth in range(len(path.parents))
    ]


def model_names(paths: Sequence[Path]) -> list[str]:
    """Short unique names for checkpoints, e.g. the experiment name of each run (more when that clashes)."""
    candidates = [_name_candidates(p) for p in paths]
    for level in range(max(map(len, candidates))):
        names = [c[min(level, len(c) - 1)] for c in candidates]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def find_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Every ``*.ckpt`` under ``ckpt_dir`` (recursive, sorted)."""
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {ckpt_dir}")
    found = sorted(ckpt_dir.rglob("*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no .ckpt files under {ckpt_dir}")
    return found


def load_colorizers(ckpts: Sequence[Path], size: int | None = None, device: str = "cpu") -> list[Colorizer]:
    """Load each checkpoint; ``size`` overrides the training size read from its run folder.

    Raises FileNotFoundError for a missing file and ValueError (naming the file) for one that will not load.
    """
    colorizers = []
    for name, path in zip(model_names(ckpts), ckpts):
        try:
            module = load_colorizer(path, map_location=device)
        except (FileNotFoundError, CheckpointError):
            raise
        except Exception as exc:  # stale or foreign checkpoints fail in many ways (state dict, pickle...)
            raise ValueError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
        colorizers.append(Colorizer(name, path, module, size or training_size(path) or DEFAULT_SIZE))
    return colorizers


def load_onnx_colorizers(
    paths: Sequence[Path], size: int | None = None, taken: Sequence[str] = ()
) -> list[Colorizer]:
    """Exported models run by ONNX Runtime; the training size comes from the run folder of the model (or of
    the checkpoint it was exported from). A name in ``taken`` (a checkpoint's) gets ``-onnx`` appended."""
    colorizers = []
    names = [f"{n}-onnx" if n in taken else n for n in model_names(paths)] if paths else []
    for name, path in zip(names, paths):
        backend = OnnxColorizer(path)
        trained = training_size(path) or (backend.checkpoint and training_size(Path(backend.checkpoint)))
        colorizers.append(Colorizer(name, path, backend, size or trained or DEFAULT_SIZE))  # type: ignore[arg-type]
    return colorizers


# ---- pictures -----------------------------------------------------------------------------------------


@dataclass
class Picture:
    """A decoded input: RGB ``(H, W, 3)`` uint8, its alpha ``(H, W)`` uint8 or None, and its file format."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    format: str


def read_picture(path: str | Path | BinaryIO) -> Picture:
    """Decode any image file (or file object) to RGB upright (EXIF), keeping its alpha apart; raises if bad."""
    with Image.open(path) as img:
        img.load()
        fmt = _FORMAT_OF_PIL.get(img.format or "", "png")
        img = ImageOps.exif_transpose(img)
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        alpha = None
        if img.mode in _ALPHA_MODES:
            rgba = img.convert("RGBA")
            alpha = np.array(rgba.getchannel("A"))
            # Drop alpha without compositing: the colours under transparent pixels stay as they were.
            img = rgba.convert("RGB")
        return Picture(np.array(to_rgb(img)), alpha, fmt)


def as_batch(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> uint8 ``(1, 3, H, W)``."""
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


def to_uint8_image(rgb: torch.Tensor) -> np.ndarray:
    """Float sRGB ``(1, 3, H, W)`` in [0, 1] -> uint8 ``(H, W, 3)``."""
    return float_to_uint8(rgb[0]).permute(1, 2, 0).cpu().numpy()


def colorize_picture(colorizer: Colorizer, picture: Picture, restore: bool = False) -> np.ndarray:
    """Colorize one picture at its full resolution -> uint8 RGB ``(H, W, 3)``."""
    rgb = colorize_full_resolution(
        colorizer.module, as_batch(picture.rgb), size=colorizer.size, restore=restore
    )
    return to_uint8_image(rgb)


def gray_picture(picture: Picture) -> np.ndarray:
    """The model's view of the picture: its L with ab = 0, as uint8 RGB."""
    return to_uint8_image(l_to_gray_rgb(input_l(as_batch(picture.rgb))))


def to_image(rgb: np.ndarray, alpha: np.ndarray | None, keep_alpha: bool) -> Image.Image:
    """uint8 RGB (+ alpha) -> PIL image; without ``keep_alpha`` transparency is flattened onto white."""
    img = Image.fromarray(rgb, "RGB")
    if alpha is None:
        return img
    img.putalpha(Image.fromarray(alpha, "L"))
    if keep_alpha:
        return img
    return Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")


def save_image(img: Image.Image, path: Path, fmt: str) -> None:
    """Write ``img`` in ``fmt`` (a :data:`FORMATS` key), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if fmt in ("jpg", "webp") else {}
    img.save(path, format=FORMATS[fmt][0], **options)


def comparison_strip(panels: Sequence[tuple[str, np.ndarray]], max_height: int = 512) -> np.ndarray:
    """Labelled pictures side by side (``gray | model A | ...``), each scaled to at most ``max_height`` px."""
    height = min(max_height, panels[0][1].shape[0])
    scaled = []
    for _, image in panels:
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        scaled.append(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))
    font_size = max(12, height // 20)
    label_height, gap = font_size + 10, 4
    strip = Image.new(
        "RGB", (sum(im.width for im in scaled) + gap * (len(scaled) - 1), height + label_height), "white"
    )
    draw, font, x = ImageDraw.Draw(strip), ImageFont.load_default(size=font_size), 0
    for (name, _), image in zip(panels, scaled):
        strip.paste(image, (x, label_height))
        draw.text((x + 4, 4), name, fill="black", font=font)
        x += image.width + gap
    return np.asarray(strip)


# ---- files --------------------------------------------------------------------------------------------


def collect_inputs(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``(file, path relative to the output folder)`` for every file given and every image under folders."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += [(path, path.relative_to(item)) for path in list_images(item, IMAGE_EXTENSIONS)]
        else:
            found.append((item, Path(item.name)))  # a missing file is reported when it is read
    return found


def output_suffix(source: Path, fmt: str) -> str:
    """Keep the input's own suffix when it already names ``fmt`` (``.jpeg`` stays ``.jpeg``)."""
    suffixes = FORMATS[fmt][1]
    return source.suffix.lower() if source.suffix.lower() in suffixes else suffixes[0]


def check_output_dir(out_dir: Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an output folder that is an input folder or lies inside one (outputs would become inputs)."""
    out = out_dir.resolve()
    for item in map(Path, inputs):
        if item.is_dir() and (out == item.resolve() or item.resolve() in out.parents):
            raise ValueError(f"output folder {out_dir} is inside the input folder {item}; choose another -o")


def planned_outputs(
    rel: Path, source: Path, fmt: str, out_dir: Path, names: Sequence[str]
) -> dict[str, Path]:
    """Where each model's result (and, for several models, the strip) of one input goes."""
    name = rel.with_suffix(output_suffix(source, fmt))
    if len(names) == 1:
        return {names[0]: out_dir / name}
    return {**{n: out_dir / n / name for n in names}, COMPARE_DIR: out_dir / COMPARE_DIR / name}


def colorize_files(
    inputs: Sequence[str | Path],
    colorizers: Sequence[Colorizer],
    out_dir: str | Path,
    fmt: str | None = None,
    restore: bool = False,
    progress: bool = True,
) -> tuple[list[Path], dict[Path, str]]:
    """Colorize every input with every model; returns (written files, {input: error} for those that failed).

    Raises ValueError before any work if ``out_dir`` is (inside) an input folder. An input whose output
    would land on an input file, or on another input's result (same name from two places), fails alone.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, inputs)
    jobs = collect_inputs(inputs)
    input_paths = {source.resolve() for source, _ in jobs}
    names = [c.name for c in colorizers]
    written, failed = [], {}
    for source, rel in tqdm(jobs, desc="colorize", unit="img", disable=not progress):
        try:
            picture = read_picture(source)
            out_fmt = fmt or picture.format
            targets = planned_outputs(rel, source, out_fmt, out_dir, names)
            clash = [t for t in targets.values() if t.resolve() in input_paths]
            if clash:
                raise ValueError(f"would overwrite the input file {clash[0]}; choose another -o")
            if any(t in written for t in targets.values()):
                raise ValueError(f"another input already wrote {targets[names[0]]}; rename one of them")
            keep_alpha = FORMATS[out_fmt][2]
            results = [(c.name, colorize_picture(c, picture, restore)) for c in colorizers]
            for name, rgb in results:
                save_image(to_image(rgb, picture.alpha, keep_alpha), targets[name], out_fmt)
                written.append(targets[name])
            if len(results) > 1:
                panels = [("gray", gray_picture(picture)), *results]
                if picture.alpha is not None:
                    panels = [
                        (n, np.asarray(to_image(p, picture.alpha, keep_alpha=False))) for n, p in panels
                    ]
                save_image(Image.fromarray(comparison_strip(panels)), targets[COMPARE_DIR], out_fmt)
                written.append(targets[COMPARE_DIR])
        except Exception as exc:  # noqa: BLE001 - one bad file (not an image, truncated...) must not stop the batch
            failed[source] = f"{type(exc).__name__}: {exc}"
            tqdm.write(f"error: {source}: {failed[source]}", file=sys.stderr)
    return written, failed


# ---- command line -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``colorize`` command's options."""
    parser = argparse.ArgumentParser(prog="python -m colorlab colorize", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument(
        "--ckpt", action="append", default=[], type=Path, help="a model checkpoint (repeatable)"
    )
    parser.add_argument("--ckpt-dir", type=Path, help="folder of checkpoints (every *.ckpt, recursive)")
    parser.add_argument(
        "--onnx", action="append", default=[], type=Path, help="an exported .onnx model, run by ONNX Runtime"
    )
    parser.add_argument("--all-models", action="store_true", help="use every checkpoint under --ckpt-dir")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="output folder (never an input folder)"
    )
    parser.add_argument("--size", type=int, help="longer side the model runs at (default: its training size)")
    parser.add_argument("--format", choices=sorted(FORMATS), help="output format (default: the input's)")
    parser.add_argument("--restore", action="store_true", help="keep the L a restoration model returns")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def checkpoints_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Path]:
    """The checkpoints named by ``--ckpt`` and (with ``--all-models`` or ``--ckpt-dir``) the folder."""
    ckpts = list(args.ckpt)
    if args.all_models and args.ckpt_dir is None:
        parser.error("--all-models needs --ckpt-dir FOLDER")
    if args.ckpt_dir is not None:
        ckpts += find_checkpoints(args.ckpt_dir)
    if not ckpts and not args.onnx:
        parser.error(
            "give a model: --ckpt MODEL.ckpt (repeatable), --ckpt-dir FOLDER --all-models or --onnx M.onnx"
        )
    return list({path.resolve(): path for path in ckpts}.values())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m colorlab colorize``; exits 1 if any input failed."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ckpts = checkpoints_from_args(args, parser)
        colorizers = load_colorizers(ckpts, args.size, args.device) if ckpts else []
        colorizers += load_onnx_colorizers(args.onnx, args.size, [c.name for c in colorizers])
        for c in colorizers:
            print(
                f"model {c.name}: {c.path} ({type(c.module).__name__}, runs at {c.size} px)", file=sys.stderr
            )
        written, failed = colorize_files(
            args.inputs, colorizers, args.output, args.format, args.restore, progress=not args.no_progress
        )
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"wrote {len(written)} file(s) to {args.output}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} input(s) failed:", file=sys.stderr)
        for path, reason in failed.items():
            print(f"  {path}: {reason}", file=sys.stderr)
        raise SystemExit(1)
