"""The demo page in a real browser: headless Debian chromium driven by Playwright (no browser download).

Skipped when gradio, playwright or the chromium binary is missing. ``IJEPA_HUB_SCREENSHOT=path.png`` also saves a
screenshot of the page after the click (benchmarks/demo_screenshot.py uses it for the README picture).
"""
import os
import shutil
import socket
import time

import pytest

pytestmark = pytest.mark.browser

gr = pytest.importorskip("gradio")
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium binary on PATH (apt-get install chromium)", allow_module_level=True)

import ijepa_hub  # noqa: E402
from ijepa_hub.eval.demo_app import launch  # noqa: E402
from ijepa_hub.eval.explorer import Explorer  # noqa: E402
from ijepa_hub.eval.predictor_view import synthetic_images  # noqa: E402

TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    import torch
    from PIL import Image

    root = tmp_path_factory.mktemp("demo")
    torch.manual_seed(0)
    model = ijepa_hub.create_model("vit_tiny_patch16", img_size=32, patch_size=8, pred_depth=2)
    repo = ijepa_hub.save_pretrained(model, root / "model", recipe=ijepa_hub.load_recipe("default"))
    folder = root / "images"
    folder.mkdir()
    for i, pixels in enumerate(synthetic_images(4, 48, seed=11)):
        Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(folder / f"shape{i}.png")
    explorer = Explorer.load(str(repo), folder=folder)
    port = _free_port()
    app = launch(explorer, port=port, block=False)
    yield f"http://127.0.0.1:{port}/", folder
    app.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _src(page, elem_id: str) -> str:
    img = page.locator(f"#{elem_id} img")
    return img.first.get_attribute("src") if img.count() else ""


def _wait_src_change(page, elem_id: str, before: str) -> str:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        now = _src(page, elem_id)
        if now and now != before:
            return now
        page.wait_for_timeout(200)
    raise AssertionError(f"#{elem_id} did not show a new picture within {TIMEOUT_MS} ms")


def test_upload_click_and_broken_file(page_url, browser, tmp_path):
    url, folder = page_url
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator("#info").wait_for(timeout=TIMEOUT_MS)
    assert "licence" in page.locator("#info").inner_text() and "cpu" in page.locator("#info").inner_text()

    page.locator("#upload input[type=file]").set_input_files(str(folder / "shape0.png"))
    _wait_src_change(page, "pca", "")
    page.get_by_text("Showing").wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#nearest img").count() >= 1  # the folder's nearest images

    box = page.locator("#image img").bounding_box()
    page.locator("#image img").click(position={"x": box["width"] * 0.2, "y": box["height"] * 0.2})
    first = _wait_src_change(page, "similarity", "")
    page.get_by_text("Patch (").wait_for(timeout=TIMEOUT_MS)
    page.locator("#image img").click(position={"x": box["width"] * 0.8, "y": box["height"] * 0.8})
    _wait_src_change(page, "similarity", first)  # another patch: another map
    assert _src(page, "predictor")
    shot = os.environ.get("IJEPA_HUB_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    page.locator("#upload input[type=file]").set_input_files(str(broken))
    page.locator("#status").get_by_text("cannot decode the image").wait_for(timeout=TIMEOUT_MS)
    assert "Error" in page.locator("#status").inner_text()
    page.close()
