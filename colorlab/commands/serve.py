"""``python -m colorlab serve --ckpt MODEL.ckpt`` (or ``--ckpt-dir FOLDER``): a local web page to compare models.

A person drops up to five photos, picks one model or all of them, and gets a before/after slider per
photo, the models side by side, and full-resolution downloads. Everything stays on this machine: the
server binds 127.0.0.1 by default, the page loads no external asset, uploads are decoded in memory and
only the gray input and the results are written to a private temporary folder, deleted after
``--keep-minutes`` (10) by a cleanup task and all at once when the server stops.

FastAPI + a hand-written page rather than Gradio: Gradio is not installed here and is a large dependency
tree to vet offline (and its page fetches assets unless configured otherwise); this needs three routes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image

from colorlab.commands.colorize import (
    Colorizer,
    Picture,
    checkpoints_from_args,
    colorize_picture,
    gray_picture,
    load_colorizers,
    read_picture,
    save_image,
    to_image,
)

WEB_DIR = Path(__file__).parent.parent / "web"
ALL_MODELS = "all"
# Formats a browser shows in <img>; others (TIFF, BMP) come back as PNG.
WEB_FORMATS = ("jpg", "png", "webp")
ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")


class ResultStore:
    """Per-request folders under a private temporary root, purged once older than ``keep_seconds``."""

    def __init__(self, keep_seconds: float, root: Path | None = None) -> None:
        self.keep_seconds = keep_seconds
        self.root = Path(tempfile.mkdtemp(prefix="colorlab-serve-", dir=root))

    def new_job(self) -> tuple[str, Path]:
        """A fresh job id and its (empty) folder."""
        job = uuid.uuid4().hex
        folder = self.root / job
        folder.mkdir()
        return job, folder

    def file(self, job: str, name: str) -> Path | None:
        """The stored file ``name`` of ``job``, or None (unknown, expired, or a name that is not ours)."""
        if not re.fullmatch(r"[0-9a-f]{32}", job) or Path(name).name != name:
            return None
        path = self.root / job / name
        return path if path.is_file() else None

    def purge(self, now: float | None = None) -> int:
        """Delete every job folder older than ``keep_seconds``; returns how many went."""
        limit = (time.time() if now is None else now) - self.keep_seconds
        expired = [p for p in self.root.iterdir() if p.is_dir() and p.stat().st_mtime < limit]
        for folder in expired:
            shutil.rmtree(folder, ignore_errors=True)
        return len(expired)

    def close(self) -> None:
        """Delete everything."""
        shutil.rmtree(self.root, ignore_errors=True)


def safe_stem(filename: str) -> str:
    """A file-system-safe stem of an uploaded file's name (never a path)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename or "image").stem).strip("._")
    return stem[:60] or "image"


def decode_upload(data: bytes, max_bytes: int, max_megapixels: float) -> Picture:
    """Check and decode uploaded bytes like the command line decodes a file (alpha kept, EXIF, CMYK...).

    Raises ValueError with a message for the person who uploaded it.
    """
    if len(data) > max_bytes:
        raise ValueError(f"{len(data) / 2**20:.1f} MB is over the {max_bytes / 2**20:g} MB limit")
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only: refuse huge pictures undecoded
            megapixels = img.width * img.height / 1e6
        if megapixels > max_megapixels:
            raise ValueError(f"{megapixels:.0f} megapixels is over the {max_megapixels:g} megapixel limit")
        return read_picture(io.BytesIO(data))
    except ValueError:
        raise
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, DecompressionBombError...)
        raise ValueError(f"not a readable image ({exc})") from exc


def colorize_upload(
    colorizers: Sequence[Colorizer], picture: Picture, stem: str, folder: Path, restore: bool
) -> dict[str, Any]:
    """Write the gray input and one result per model into ``folder``; returns their names and sizes."""
    fmt = picture.format if picture.format in WEB_FORMATS else "png"
    keep_alpha = fmt != "jpg"
    gray_name = f"{stem}_gray.{fmt}"
    save_image(to_image(gray_picture(picture), picture.alpha, keep_alpha), folder / gray_name, fmt)
    outputs = []
    for colorizer in colorizers:
        name = f"{stem}_{safe_stem(colorizer.name)}.{fmt}"
        rgb = colorize_picture(colorizer, picture, restore)
        save_image(to_image(rgb, picture.alpha, keep_alpha), folder / name, fmt)
        outputs.append({"model": colorizer.name, "file": name})
    height, width = picture.rgb.shape[:2]
    return {"gray": gray_name, "outputs": outputs, "width": width, "height": height}


def create_app(
    colorizers: Sequence[Colorizer],
    keep_seconds: float = 600,
    max_files: int = 5,
    max_megabytes: float = 20,
    max_megapixels: float = 40,
    restore: bool = False,
    tmp_root: Path | None = None,
) -> FastAPI:
    """The web app: the page, ``GET /api/config``, ``POST /api/colorize``, ``GET /api/result/JOB/FILE``."""
    if not colorizers:
        raise ValueError("the web page needs at least one model")
    by_name = {c.name: c for c in colorizers}
    max_bytes = int(max_megabytes * 1024 * 1024)
    store = ResultStore(keep_seconds, tmp_root)
    model_lock = threading.Lock()  # one inference at a time: torch already uses every core

    async def cleanup_loop() -> None:
        while True:
            await asyncio.sleep(max(1.0, min(60.0, keep_seconds / 4)))
            store.purge()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(cleanup_loop())
        try:
            yield
        finally:
            task.cancel()
            store.close()

    app = FastAPI(title="colorlab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    def run_models(choice: str, uploads: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        chosen = list(colorizers) if choice == ALL_MODELS else [by_name[choice]]
        job, folder = store.new_job()
        results, stems = [], set()
        for filename, data in uploads:
            try:
                picture = decode_upload(data, max_bytes, max_megapixels)
            except ValueError as exc:
                results.append({"name": filename, "error": f"{filename}: {exc}"})
                continue
            stem = safe_stem(filename)
            while stem in stems:
                stem += "_"
            stems.add(stem)
            with model_lock:
                done = colorize_upload(chosen, picture, stem, folder, restore)
            url = f"/api/result/{job}/"
            outputs = [
                {"model": o["model"], "url": url + o["file"], "file": o["file"]} for o in done["outputs"]
            ]
            results.append(
                {"name": filename, "width": done["width"], "height": done["height"], "gray": url + done["gray"],
                 "outputs": outputs}
            )  # fmt: skip
        return results

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {
            "models": [c.name for c in colorizers],
            "all": ALL_MODELS,
            "max_files": max_files,
            "max_bytes": max_bytes,
            "types": list(ACCEPTED_TYPES),
            "keep_minutes": keep_seconds / 60,
        }

    @app.post("/api/colorize")
    async def colorize(
        files: Annotated[list[UploadFile], File()], model: Annotated[str, Form()] = ALL_MODELS
    ) -> JSONResponse:
        if model != ALL_MODELS and model not in by_name:
            raise HTTPException(
                422, f"unknown model {model!r}; choose one of {sorted(by_name)} or {ALL_MODELS!r}"
            )
        if len(files) > max_files:
            raise HTTPException(413, f"{len(files)} files: at most {max_files} at a time")
        # Read one byte past the limit: enough to say "too big" without holding a huge upload in memory.
        uploads = [(f.filename or "image", await f.read(max_bytes + 1)) for f in files]
        results = await run_in_threadpool(run_models, model, uploads)
        return JSONResponse({"results": results})

    @app.get("/api/result/{job}/{name}")
    def result(job: str, name: str) -> FileResponse:
        path = store.file(job, name)
        if path is None:
            raise HTTPException(404, "no such result (results are deleted after a while; colorize again)")
        return FileResponse(path, filename=name)

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="page")
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m colorlab serve``."""
    parser = argparse.ArgumentParser(prog="python -m colorlab serve", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ckpt", action="append", default=[], type=Path, help="a model checkpoint (repeatable)"
    )
    parser.add_argument("--ckpt-dir", type=Path, help="folder of checkpoints (every *.ckpt, recursive)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--keep-minutes", type=float, default=10, help="delete uploads' results after this")
    parser.add_argument("--max-files", type=int, default=5, help="photos per request")
    parser.add_argument("--max-mb", type=float, default=20, help="size limit per photo")
    parser.add_argument(
        "--size", type=int, help="longer side the models run at (default: their training size)"
    )
    parser.add_argument("--restore", action="store_true", help="keep the L a restoration model returns")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    args = parser.parse_args(argv)
    args.all_models = args.ckpt_dir is not None
    try:
        colorizers = load_colorizers(checkpoints_from_args(args, parser), args.size, args.device)
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    import uvicorn

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {args.host}: other machines can upload photos to this server")
    app = create_app(colorizers, args.keep_minutes * 60, args.max_files, args.max_mb, restore=args.restore)
    print(f"colorlab: {len(colorizers)} model(s) at http://{args.host}:{args.port}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
