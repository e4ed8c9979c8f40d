"""The page's guided colorization in headless Chromium: click to add hints, pick colours, drag, remove,
upload a reference, re-colorize, download."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from colorlab.inference.pipeline import Colorizer
from colorlab.inference.server import create_app
from tests.test_colorize import small_photo
from tests.test_web import browser, serving  # noqa: F401  (browser: the shared Chromium fixture)

uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The app with the classical Levin (hints) and Welsh (reference) methods on a free localhost port."""
    app = create_app([Colorizer.load("levin"), Colorizer.load("welsh")], max_megabytes=1)
    with serving(app) as url:
        yield url


@pytest.fixture
def page(browser, server, tmp_path):  # noqa: F811 - browser is the imported shared fixture
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page.goto(server)
    page.wait_for_selector("body[data-ready=true]")
    Image.fromarray(small_photo(150, 100)).save(tmp_path / "coffee.png")
    page.set_input_files("#files", str(tmp_path / "coffee.png"))
    page.wait_for_function("() => $('guide-photo').complete && $('guide-photo').naturalWidth === 150")
    yield page
    page.close()


def _near(page, expected: list[tuple[int, int]]) -> bool:
    """The page's hints are at ``expected`` picture pixels, give or take the browser's 1 px pointer rounding."""
    got = page.evaluate("() => hints.map((h) => [h.x, h.y])")
    return len(got) == len(expected) and all(
        abs(gx - ex) <= 1 and abs(gy - ey) <= 1 for (gx, gy), (ex, ey) in zip(got, expected)
    )


def _dot_centre(page, index: int) -> tuple[float, float]:
    box = page.locator(".hint-dot").nth(index).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_hints_are_added_coloured_dragged_removed_and_recolorize_downloads(page, tmp_path):
    assert page.locator("#guide").is_visible()
    photo = page.locator("#guide-photo")
    photo.click(position={"x": 30.5, "y": 20.5})  # shown at its own size: element pixels = picture pixels
    photo.click(position={"x": 120.5, "y": 80.5})
    assert _near(page, [(30, 20), (120, 80)])
    page.locator(".hint-color").nth(0).fill("#00c000")
    x, y = _dot_centre(page, 1)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 10, y - 15, steps=4)
    page.mouse.up()
    assert _near(page, [(30, 20), (110, 65)])
    page.locator(".hint-remove").nth(1).click()
    assert page.locator(".hint-dot").count() == 1
    page.select_option("#model", "levin")
    page.click("#recolorize")
    page.wait_for_selector("#guided-figure:not([hidden])")
    page.wait_for_function("() => $('guided-result').complete && $('guided-result').naturalWidth > 0")
    assert page.locator("#guided-model").inner_text() == "levin, 1 hint(s)"
    with page.expect_download() as download:
        page.click("#guided-download")
    result = np.asarray(Image.open(download.value.path()).convert("RGB")).astype(int)
    assert result.shape == (100, 150, 3)
    r, g, b = result[20, 30]
    assert g > r + 20 and g > b + 20, "green where the green hint is (one Levin hint tints the whole photo)"


def test_a_reference_recolorizes_and_bad_guidance_is_shown(page, tmp_path):
    page.select_option("#model", "welsh")
    page.locator("#guide-photo").click(position={"x": 10, "y": 10})
    page.click("#recolorize")
    page.wait_for_selector("#guide-errors p")
    assert "welsh cannot use colour hints" in page.locator("#guide-errors").inner_text()
    page.locator(".hint-remove").nth(0).click()
    gray = tmp_path / "gray.png"
    Image.fromarray(small_photo(60, 40)).convert("L").save(gray)
    page.set_input_files("#reference", str(gray))
    page.click("#recolorize")
    page.wait_for_function("() => $('guide-errors').innerText.includes('gray')")
    reference = tmp_path / "reference.png"
    Image.fromarray(small_photo(80, 60)).save(reference)
    page.set_input_files("#reference", str(reference))
    page.click("#recolorize")
    page.wait_for_selector("#guided-figure:not([hidden])")
    url = page.get_attribute("#guided-download", "href")
    response = httpx.get(page.url.rstrip("/") + url)
    result = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    assert result.shape == (100, 150, 3)
    assert np.abs(result - result.mean(2, keepdims=True)).mean() > 2, "the reference's colours came through"


def test_the_guided_route_checks_its_input(server):
    png = io.BytesIO()
    Image.fromarray(small_photo(40, 30)).save(png, format="PNG")
    files = {"file": ("a.png", png.getvalue(), "image/png")}
    url = server + "/api/guided"
    bad = httpx.post(
        url, files=files, data={"model": "levin", "hints": '[{"x": 40, "y": 0, "color": "#ff0000"}]'}
    )
    assert bad.status_code == 422 and "outside the 40x30 picture" in bad.json()["detail"]
    assert httpx.post(url, files=files, data={"model": "nope"}).status_code == 422
    assert (
        "not valid JSON"
        in httpx.post(url, files=files, data={"model": "levin", "hints": "[{"}).json()["detail"]
    )
    ok = httpx.post(
        url, files=files, data={"model": "levin", "hints": '[{"x": 3, "y": 4, "color": [50, 20, 10]}]'}
    )
    assert ok.status_code == 200 and ok.json()["hints"] == 1
    assert Path(ok.json()["file"]).suffix == ".png"
