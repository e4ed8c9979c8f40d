"""The web page's server: a FastAPI app around :class:`colorlab.inference.pipeline.Colorizer`.

Everything stays on this machine: uploads are decoded in memory (size and pixel count checked before
decoding) and only the gray input and the results are written, to a private temporary folder that is
deleted after ``keep_seconds``, when the server stops, or, after a crash (kill -9), when the next server
starts. At most ``max_jobs`` requests colorize at once; the others wait their turn, holding no decoded
picture. FastAPI + a hand-written page rather than Gradio: Gradio is not installed here and is a large
dependency tree to vet offline (its page fetches assets unless configured otherwise); this needs three routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile

from colorlab.colorizers.upscale import UpscaleNet
from colorlab.guidance import DEFAULT_PATCH, GuidanceError, check_patch, load_hints
from colorlab.inference.chain import Chain
from colorlab.inference.folders import ColorizeReport, write_outputs
from colorlab.inference.guides import read_reference
from colorlab.inference.pictures import (
    MAX_MEGAPIXELS,
    Output,
    Picture,
    PictureError,
    read_picture,
)
from colorlab.inference.pipeline import Colorizer, gray_output
from colorlab.inference.uploads import MultiPartException, read_limited_form

WEB_DIR = Path(__file__).parent.parent / "web"
ALL_MODELS = "all"
# Formats a browser shows in <img>; others (TIFF, BMP, GIF) come back as PNG.
WEB_FORMATS = ("jpg", "png", "webp")
ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
STORE_PREFIX = "colorlab-serve-"
OWNER_FILE = "owner.pid"
MB = 2**20


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_stores(parent: Path) -> list[Path]:
    """Delete the result folders that servers which died without cleaning up (kill -9) left in ``parent``.

    A folder is stale when the process named in its ``owner.pid`` is gone (or it names none); folders of
    live servers and of other users are left alone. Returns the folders deleted.
    """
    removed = []
    for folder in parent.glob(f"{STORE_PREFIX}*"):
        if not folder.is_dir() or folder.stat().st_uid != os.getuid():
            continue
        try:
            pid = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            pid = None
        if pid is None or not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class ResultStore:
    """Per-request folders under a private temporary root, purged once older than ``keep_seconds``.

    Creating one first removes the stale roots of dead servers beside it (see :func:`remove_stale_stores`).
    """

    def __init__(self, keep_seconds: float, parent: Path | None = None) -> None:
        self.keep_seconds = keep_seconds
        parent = Path(parent or tempfile.gettempdir())
        self.removed_stale = remove_stale_stores(parent)
        self.root = Path(tempfile.mkdtemp(prefix=STORE_PREFIX, dir=parent))
        (self.root / OWNER_FILE).write_text(str(os.getpid()))

    def new_job(self) -> tuple[str, Path]:
        """A fresh job id and its (empty) folder."""
        job = uuid.uuid4().hex
        folder = self.root / job
        folder.mkdir()
        return job, folder

    def drop_if_empty(self, folder: Path) -> None:
        """Remove a job folder nothing was written into (every file of the request was refused)."""
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty

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


def size_error(size: int, max_bytes: int) -> str | None:
    """The message for an upload of ``size`` bytes over ``max_bytes`` (None when it fits)."""
    if size <= max_bytes:
        return None
    return f"{size / MB:.1f} MB is over the {max_bytes / MB:g} MB limit"


def colorize_upload(
    colorizers: Sequence[Colorizer],
    picture: Picture,
    stem: str,
    folder: Path,
    upscaler: UpscaleNet | None = None,
) -> dict[str, Any]:
    """Write the gray input and one result per model (upscaled by ``upscaler`` when given) into ``folder``;
    returns their names and the size.

    Without an upscaler no full-size picture is built: the gray input and each result are merged piece by piece
    as they are written (:class:`colorlab.inference.pictures.Output`), one at a time.
    """
    fmt = picture.format if picture.format in WEB_FORMATS else "png"
    outputs = [(folder / f"{stem}_gray.{fmt}", gray_output(picture))]
    for colorizer in colorizers:
        if upscaler is None:
            output, suffix = colorizer.outputs([picture])[0], ""
        else:
            chain = Chain(colorizer, upscaler=upscaler)
            output, suffix = Output.of(chain(picture), chain.alpha(picture)), f"_x{chain.scale}"
        outputs.append((folder / f"{stem}_{safe_stem(colorizer.name)}{suffix}.{fmt}", output))
    report = ColorizeReport()
    write_outputs(outputs, fmt, report, log=lambda _: None)
    gray, *results = report.written
    height, width = picture.size
    return {"gray": gray.name, "outputs": [{"model": c.name, "file": path.name} for c, path in zip(colorizers, results)],
            "width": width, "height": height}  # fmt: skip


def guided_upload(
    colorizer: Colorizer, data: bytes, reference: bytes | None, hints_json: str, patch: int, stem: str,
    folder: Path, max_megapixels: float = MAX_MEGAPIXELS,
) -> dict[str, Any]:  # fmt: skip
    """Colorize one upload with hints (JSON, picture pixels) and/or a reference photo into ``folder``; returns
    the written file's name and the size. Raises PictureError / GuidanceError with the person's message."""
    picture = read_picture(data, max_megapixels)
    hints = load_hints(hints_json, picture.size)
    ref = read_reference(reference) if reference else None
    rgb = colorizer.guided(picture, hints, check_patch(patch), ref)
    fmt = picture.format if picture.format in WEB_FORMATS else "png"
    target = folder / f"{stem}_{safe_stem(colorizer.name)}_guided.{fmt}"
    report = ColorizeReport()
    write_outputs([(target, Output.of(rgb, picture.alpha))], fmt, report, log=lambda _: None)
    height, width = picture.size
    return {"file": report.written[0].name, "width": width, "height": height, "hints": len(hints)}


def create_app(
    colorizers: Sequence[Colorizer],
    keep_seconds: float = 600,
    max_files: int = 5,
    max_megabytes: float = 20,
    max_megapixels: float = MAX_MEGAPIXELS,
    max_jobs: int = 1,
    tmp_root: Path | None = None,
    upscaler: UpscaleNet | None = None,
) -> FastAPI:
    """The web app: the page, ``GET /api/config``, ``POST /api/colorize``, ``GET /api/result/JOB/FILE``.

    With an ``upscaler`` the page offers "upscale ×k": the colorized results come back k times larger (and
    the pixel limit applies to them, so inputs over ``max_megapixels / k²`` are refused).
    """
    if not colorizers:
        raise ValueError("the web page needs at least one model")
    if max_jobs < 1:
        raise ValueError(f"max_jobs must be at least 1, got {max_jobs}")
    by_name = {c.name: c for c in colorizers}
    max_bytes = int(max_megabytes * MB)
    store = ResultStore(keep_seconds, tmp_root)
    jobs = asyncio.Semaphore(max_jobs)

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
    app.state.colorizers = list(colorizers)

    def process(
        chosen: list[Colorizer], data: bytes, stem: str, folder: Path, url: str, upscale: bool
    ) -> dict[str, Any]:
        scale = upscaler.scale if upscale and upscaler is not None else 1
        picture = read_picture(data, max_megapixels / scale**2)
        done = colorize_upload(chosen, picture, stem, folder, upscaler if scale > 1 else None)
        outputs = [{"model": o["model"], "url": url + o["file"], "file": o["file"]} for o in done["outputs"]]
        result = {
            "width": done["width"],
            "height": done["height"],
            "gray": url + done["gray"],
            "outputs": outputs,
        }
        return {**result, "note": picture.note} if picture.note else result

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {
            "models": [c.name for c in colorizers],
            "all": ALL_MODELS,
            "max_files": max_files,
            "max_bytes": max_bytes,
            "types": list(ACCEPTED_TYPES),
            "keep_minutes": keep_seconds / 60,
            "upscale": upscaler.scale if upscaler is not None else None,
        }

    @app.post("/api/colorize")
    async def colorize(request: Request) -> JSONResponse:
        try:  # each file is cut off at the limit while it streams in (see colorlab.inference.uploads)
            form, uploads = await read_limited_form(request.headers, request.stream(), max_bytes, max_files)
        except MultiPartException as exc:
            status = 413 if "Too many files" in exc.message else 422
            message = f"at most {max_files} files at a time" if status == 413 else exc.message
            raise HTTPException(status, message) from None
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        model = str(form.get("model") or ALL_MODELS)
        upscale = str(form.get("upscale") or "").lower() in ("1", "true", "on", "yes")
        if not files:
            raise HTTPException(422, "no photo sent (field 'files')")
        if upscale and upscaler is None:
            raise HTTPException(422, "no upscale model is loaded (start serve with --upscale-ckpt)")
        if model != ALL_MODELS and model not in by_name:
            raise HTTPException(
                422, f"unknown model {model!r}; choose one of {sorted(by_name)} or {ALL_MODELS!r}"
            )
        chosen = list(colorizers) if model == ALL_MODELS else [by_name[model]]
        results, stems = [], set()
        async with jobs:  # waiting requests hold only their (size-capped) uploads, no decoded picture
            job, folder = store.new_job()
            for upload in files:
                name = upload.filename or "image"
                too_big = size_error(uploads.size(upload), max_bytes)
                if too_big:
                    results.append({"name": name, "error": f"{name}: {too_big}"})
                    continue
                stem = safe_stem(name)
                while stem in stems:
                    stem += "_"
                stems.add(stem)
                data = await upload.read()  # one upload in memory at a time
                try:
                    done = await run_in_threadpool(
                        process, chosen, data, stem, folder, f"/api/result/{job}/", upscale
                    )
                except PictureError as exc:
                    results.append({"name": name, "error": f"{name}: {exc}"})
                    continue
                except Exception as exc:  # noqa: BLE001 - one photo's failure must not cost the others (no bare 500)
                    print(f"serve: {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                    results.append({"name": name, "error": f"{name}: could not be colorized ({type(exc).__name__})"})
                    continue
                finally:
                    del data
                results.append({"name": name, **done})
            store.drop_if_empty(folder)
        return JSONResponse({"results": results})

    @app.post("/api/guided")
    async def guided(request: Request) -> JSONResponse:
        try:  # the photo and the reference, each cut off at the limit while it streams in
            form, uploads = await read_limited_form(request.headers, request.stream(), max_bytes, 2)
        except MultiPartException as exc:
            raise HTTPException(422, exc.message) from None
        file, reference = form.get("file"), form.get("reference")
        model = str(form.get("model") or "")
        if not isinstance(file, UploadFile):
            raise HTTPException(422, "no photo sent (field 'file')")
        if model not in by_name:
            raise HTTPException(422, f"unknown model {model!r}; choose one of {sorted(by_name)}")
        try:
            patch = int(str(form.get("patch") or DEFAULT_PATCH))
        except ValueError:
            raise HTTPException(422, f"patch must be a whole number of pixels, got {form.get('patch')!r}") from None
        reference = reference if isinstance(reference, UploadFile) else None
        for upload in (file, reference):
            too_big = upload is not None and size_error(uploads.size(upload), max_bytes)
            if too_big:
                raise HTTPException(413, f"{upload.filename}: {too_big}")
        async with jobs:
            job, folder = store.new_job()
            data = await file.read()
            ref = await reference.read() if reference is not None else None
            try:
                done = await run_in_threadpool(guided_upload, by_name[model], data, ref, str(form.get("hints") or "[]"),
                                               patch, safe_stem(file.filename or "image"), folder, max_megapixels)  # fmt: skip
            except (PictureError, GuidanceError) as exc:
                store.drop_if_empty(folder)
                raise HTTPException(422, str(exc)) from None
        return JSONResponse({**done, "url": f"/api/result/{job}/{done['file']}", "model": model})

    @app.get("/api/result/{job}/{name}")
    def result(job: str, name: str) -> FileResponse:
        path = store.file(job, name)
        if path is None:
            raise HTTPException(404, "no such result (results are deleted after a while; colorize again)")
        return FileResponse(path, filename=name)

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="page")
    return app
