"""Find a folder's unreadable images once: in parallel, remembered per file, shared by every rank.

A photo folder is screened by decoding every file cheaply (:func:`colorlab.data.images.check_decodes`). That is
~2 ms a photo, so ImageNet's 1.28 M files would take 40 minutes in one process, and it used to happen on every
rank at every start. Now a pool of threads screens (PIL decodes outside the GIL), and the verdicts go to a
cache file keyed by each file's size and modification time: a later start, or another rank, only lists the
folder and re-screens the files that changed. The cache lives in ``$COLORLAB_CACHE`` (default
``~/.cache/colorlab``), never in the data folder, which may be read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from colorlab.data.images import IMAGE_EXTENSIONS, check_decodes, list_images

CACHE_ENV = "COLORLAB_CACHE"


def cache_dir() -> Path:
    """``$COLORLAB_CACHE``, else ``$XDG_CACHE_HOME/colorlab`` or ``~/.cache/colorlab``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "colorlab"


def screen_files(files: list[Path], workers: int | None = None) -> dict[Path, str]:
    """``{path: reason}`` for the ``files`` that do not decode, checked by ``workers`` threads (default: CPUs)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(files) < 2:
        reasons = map(check_decodes, files)
        return {path: reason for path, reason in zip(files, reasons) if reason is not None}
    with ThreadPoolExecutor(workers) as pool:
        reasons = pool.map(check_decodes, files, chunksize=max(1, min(256, len(files) // (4 * workers))))
        return {path: reason for path, reason in zip(files, reasons) if reason is not None}


def _cache_file(folder: Path) -> Path:
    key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "screened" / f"{key}.json"


def _signature(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def screen_folder(
    folder: str | os.PathLike, workers: int | None = None, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> tuple[list[Path], dict[Path, str]]:
    """The image files under ``folder`` split into (decodable, ``{unreadable: reason}``), screening only the
    files the cache has no verdict for (new or changed since), then saving the verdicts."""
    folder = Path(folder)
    files = list_images(folder, extensions)
    cache = _cache_file(folder)
    try:
        known = json.loads(cache.read_text())["files"]
    except (OSError, ValueError, KeyError):
        known = {}
    verdicts: dict[str, list] = {}
    todo = []
    for path in files:
        rel, signature = str(path.relative_to(folder)), _signature(path)
        entry = known.get(rel)
        if entry is not None and entry[:2] == signature:
            verdicts[rel] = entry
        else:
            verdicts[rel] = [*signature, None]
            todo.append(path)
    for path, reason in screen_files(todo, workers).items():
        verdicts[str(path.relative_to(folder))][2] = reason
    if todo or len(known) != len(verdicts):
        _write_atomically(cache, {"folder": str(folder.resolve()), "files": verdicts})
    bad = {folder / rel: entry[2] for rel, entry in verdicts.items() if entry[2] is not None}
    return [path for path in files if path not in bad], bad


def _write_atomically(path: Path, content: dict) -> None:
    """Write JSON so that a reader (another rank) sees the old file or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(content, f)
        os.replace(f.name, path)
    except OSError as exc:  # screening still worked; the next start screens again
        warnings.warn(
            f"could not cache the screening results in {path} ({exc}); set ${CACHE_ENV}", stacklevel=2
        )
