"""The web page end to end in headless Chromium, plus the server's own checks and the cleanup of results."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from colorlab.inference.pipeline import Colorizer
from colorlab.inference.server import create_app
from tests.test_colorize import small_photo, train_tiny_checkpoint

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
uvicorn = pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app: object) -> Iterator[str]:
    """``app`` served by uvicorn on a free localhost port, in a thread; yields its base URL."""
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started and time.time() < deadline:
        time.sleep(0.05)
    assert uv.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{uv.config.port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The app with two tiny models on a free localhost port: (base URL, app)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "disabled")
        ckpts = [train_tiny_checkpoint(root, "alpha", 0), train_tiny_checkpoint(root, "beta", 1)]
    colorizers = [Colorizer.load(ckpt, name=name) for ckpt, name in zip(ckpts, ["alpha", "beta"])]
    app = create_app(colorizers, keep_seconds=600, max_files=3, max_megabytes=1, max_megapixels=40)
    with serving(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (Debian: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(server[0])
    page.wait_for_selector("body[data-ready=true]")
    yield page
    page.close()


def decode(url: str) -> np.ndarray:
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def chroma(rgb: np.ndarray) -> float:
    return float(np.abs(rgb.astype(int) - rgb.mean(axis=2, keepdims=True)).mean())


def test_page_colorizes_an_upload_with_all_models(page, server, tmp_path):
    photo = small_photo(150, 100)
    Image.fromarray(photo).save(tmp_path / "coffee.jpg", quality=95)
    page.set_input_files("#files", str(tmp_path / "coffee.jpg"))
    assert page.locator("#picked li").count() == 1
    page.select_option("#model", "all")
    page.click("#go")
    page.wait_for_selector(".card.result .compare img.after")
    page.wait_for_function("() => [...document.images].every((img) => img.complete && img.naturalWidth > 0)")
    assert page.locator(".model-name").all_inner_texts() == ["alpha", "beta"]
    assert page.locator(".card.result .size").inner_text() == "150 × 100"
    gray = decode(server[0] + page.get_attribute(".compare img.before", "src"))
    assert gray.shape == photo.shape and chroma(gray) < 0.5
    for href in page.locator("a.download").evaluate_all("links => links.map((a) => a.getAttribute('href'))"):
        result = decode(server[0] + href)
        assert result.shape == photo.shape, "full resolution, same size as the upload"
        assert chroma(result) > 1.0, "a colour result, not gray"
    page.locator(".model-result img").nth(1).click()  # the slider now shows the second model
    assert page.locator(".compare .tag.right").inner_text() == "beta"


def test_page_shows_errors_for_non_images(page, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    page.set_input_files("#files", str(tmp_path / "notes.txt"))
    assert "notes.txt: not a supported image" in page.locator("#errors").inner_text()
    assert page.locator("#go").is_disabled()
    # A text file that claims to be a PNG passes the page's check; the server rejects it on its card.
    (tmp_path / "fake.png").write_text("not an image either")
    page.set_input_files("#files", str(tmp_path / "fake.png"))
    page.select_option("#model", "alpha")
    page.click("#go")
    page.wait_for_selector(".card.error")
    assert "fake.png: not a readable image" in page.locator(".card.error").inner_text()


def test_page_refuses_too_many_files(page, tmp_path):
    paths = []
    for i in range(4):
        Image.fromarray(small_photo(40, 30)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    page.set_input_files("#files", paths)
    assert "at most 3 at a time" in page.locator("#errors").inner_text()
    assert page.locator("#go").is_disabled()


def _png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(small_photo(width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_server_checks_requests_itself(server):
    url = server[0] + "/api/colorize"
    many = [("files", (f"{i}.png", _png(), "image/png")) for i in range(4)]
    assert httpx.post(url, files=many, data={"model": "all"}).status_code == 413
    assert httpx.post(url, files=many[:1], data={"model": "nope"}).status_code == 422
    noise = np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")  # incompressible: over the 1 MB limit
    huge = io.BytesIO()
    Image.new("L", (9000, 5000)).save(huge, format="PNG")  # 45 MP of one gray: a few KB, refused undecoded
    big = [
        ("files", ("big.png", buffer.getvalue(), "image/png")),
        ("files", ("huge.png", huge.getvalue(), "image/png")),
        many[0],
    ]
    results = httpx.post(url, files=big, data={"model": "all"}, timeout=60).json()["results"]
    size_mb = len(buffer.getvalue()) / 2**20
    assert results[0]["error"] == f"big.png: {size_mb:.1f} MB is over the 1 MB limit", (
        "the real size, not the cap"
    )
    assert results[1]["error"] == "huge.png: 9000 x 5000 = 45.0 megapixels is over the 40 megapixel limit"
    assert "error" not in results[2] and len(results[2]["outputs"]) == 2


def test_results_are_deleted_after_the_configured_time(server):
    base, app = server
    entry = httpx.post(base + "/api/colorize", files=[("files", ("a.png", _png(), "image/png"))],
                       data={"model": "alpha"}, timeout=60).json()["results"][0]  # fmt: skip
    url = base + entry["outputs"][0]["url"]
    assert httpx.get(url).status_code == 200
    store = app.state.store
    assert store.purge() == 0, "younger than the keep time: kept"
    assert store.purge(now=time.time() + store.keep_seconds + 1) >= 1
    assert httpx.get(url).status_code == 404
    assert httpx.get(base + "/api/result/not-a-job/a.png").status_code == 404


def test_stale_job_folders_of_a_killed_server_are_removed_at_start_up(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from colorlab.inference.server import ResultStore

    code = (
        "import sys, time; from pathlib import Path; from colorlab.inference.server import ResultStore\n"
        "store = ResultStore(600, Path(sys.argv[1])); job, folder = store.new_job()\n"
        "(folder / 'upload_gray.png').write_bytes(b'x'); print(store.root, flush=True); time.sleep(600)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})  # fmt: skip
    stale = Path(child.stdout.readline().strip())
    live = ResultStore(600, tmp_path)  # another server still running: its folder must survive
    assert stale.is_dir() and live.removed_stale == []
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert stale.is_dir(), "kill -9 leaves the uploads behind"
    fresh = ResultStore(600, tmp_path)
    assert fresh.removed_stale == [stale] and not stale.exists()
    assert live.root.is_dir() and fresh.root.is_dir()


def test_serve_skips_a_checkpoint_that_will_not_load(server, tmp_path, capsys):
    from colorlab.commands.options import checkpoints, load_models
    from colorlab.commands.serve import build_parser

    def serve_models(argv: list[str]) -> list:
        args = build_parser().parse_args(argv)
        return load_models(args, checkpoints(args), skip_broken_in_dir=True)

    folder = tmp_path / "ckpts"
    folder.mkdir()
    good = server[1].state.colorizers[0].path
    (folder / "good.ckpt").write_bytes(good.read_bytes())
    (folder / "broken.ckpt").write_bytes(b"")
    models = serve_models(["--ckpt-dir", str(folder)])
    assert [m.path.name for m in models] == ["good.ckpt"]
    assert f"warning: skipping {folder / 'broken.ckpt'}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"broken\.ckpt is empty"):  # named on its own: an error
        serve_models(["--ckpt-dir", str(folder), "--ckpt", str(folder / "broken.ckpt")])
    (folder / "good.ckpt").unlink()
    with pytest.raises(ValueError, match="none of the 1 checkpoints"):
        serve_models(["--ckpt-dir", str(folder)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .ckpt files under"):
        serve_models(["--ckpt-dir", str(tmp_path / "empty")])


class _SlowCounting(torch.nn.Module):
    """A stand-in model that counts how many forward passes run at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.lock = threading.Lock()
        self.running = self.most = 0

    def predict_lab(self, L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.3)  # long enough for the other requests to arrive; nothing asserts on time
        with self.lock:
            self.running -= 1
        return L, torch.zeros(L.shape[0], 2, *L.shape[-2:])


@pytest.mark.parametrize("max_jobs", [1, 2])
def test_concurrent_jobs_are_limited(tmp_path, max_jobs):
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    model = _SlowCounting()
    app = create_app([Colorizer(model, side=16, name="slow")], max_jobs=max_jobs, tmp_root=tmp_path)
    with TestClient(app) as client, ThreadPoolExecutor(4) as pool:

        def post(i: int) -> int:
            files = [("files", (f"{i}.png", _png(), "image/png"))]
            return client.post("/api/colorize", files=files, data={"model": "slow"}).status_code

        assert list(pool.map(post, range(4))) == [200] * 4
    assert model.most == max_jobs


def test_animated_gif_upload_says_only_its_first_frame_was_used(server):
    frames = [Image.fromarray(small_photo(40, 30)), Image.fromarray(small_photo(40, 30)[::-1])]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    results = httpx.post(server[0] + "/api/colorize", files=[("files", ("a.gif", buffer.getvalue(), "image/gif"))],
                         data={"model": "alpha"}, timeout=60).json()["results"]  # fmt: skip
    assert results[0]["note"] == "animated (2 frames): only the first frame was colorized"
    assert results[0]["outputs"][0]["file"].endswith(".png")
