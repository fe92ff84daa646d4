"""Open the built chapter in headless Debian Chromium and move the explorer's slider.

Playwright drives the system browser (/usr/bin/chromium, installed by `make chromium`); its own
browser download is not needed. Every request is recorded, and any that leaves localhost fails.
"""

import pathlib
import shutil
import sys
from urllib.parse import urlparse

import pytest
import yaml

pytestmark = pytest.mark.site

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
# every chapter, and every page of the book, as _toc.yml lists them (a new chapter is tested without an edit here)
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("*.ipynb"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
sys.path.insert(0, str(ROOT / "tools"))
import pdf  # noqa: E402

PAGES = [TOC["root"]] + [ch["file"] for part in TOC["parts"] for ch in part["chapters"]]
LOCAL = {"127.0.0.1", "localhost", "::1"}
#: How long a page may take to load and fall quiet. These tests are about where requests go, not speed; `make test`
#: runs them beside the site builds of tests/test_site.py and tests/test_course.py on two cores, and a page's
#: MathJax and frames then once took over Playwright's default 30 s to settle (the page passed in 4 s alone).
LOAD_TIMEOUT_MS = 120_000
RAW_WIDGET = ("FloatSlider(", "FloatLogSlider(", "Output()", "HBox(", "VBox(", "IntProgress(")


@pytest.fixture(scope="module")
def server():
    httpd = pdf.serve(SITE)  # the quiet local server tools/pdf.py prints the site from
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is missing: `make chromium` installs it"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


def open_page(browser, url):
    page = browser.new_page()
    requests, errors = [], []

    def route(r):
        requests.append(r.request.url)
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith("data:") or host in LOCAL:
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_MS)
    return page, requests, errors


def off_localhost(requests):
    return [u for u in requests if not u.startswith("data:") and urlparse(u).hostname not in LOCAL]


def test_index_opens_on_the_intro(server, browser):
    page, requests, errors = open_page(browser, server + "/index.html")
    page.wait_for_url("**/book/intro.html")
    assert "Optimization Dynamics" in page.title()
    nav = page.locator("nav.bd-docs-nav").inner_text()
    assert "Learning rate and curvature" in nav and "Bibliography" in nav
    assert not off_localhost(requests) and not errors
    page.close()


def test_chapter_explorer_responds_offline(server, browser):
    page, requests, errors = open_page(browser, server + "/book/learning-rate-and-curvature.html")
    explorer = page.locator(".lessons-explorer").first
    explorer.wait_for()
    assert "lx-ready" in explorer.get_attribute("class")  # its inline script ran
    img = explorer.locator("img.lx-frame")
    slider = explorer.locator('input[type="range"]').first
    label = explorer.locator("output").first
    src0, label0 = img.get_attribute("src"), label.inner_text()
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    src1, label1 = img.get_attribute("src"), label.inner_text()
    assert src1 != src0, "moving the slider did not change the frame"
    assert label1 != label0, "the slider's value label did not update"
    assert img.get_attribute("data-frame")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert img.get_attribute("src") == src0, "moving back did not restore the first frame"
    # maths rendered by the locally served MathJax
    page.wait_for_function("document.querySelectorAll('mjx-container').length > 10", timeout=20_000)
    text = page.locator("article").inner_text()
    for raw in RAW_WIDGET:
        assert raw not in text
    assert "Traceback" not in text
    assert not off_localhost(requests), off_localhost(requests)
    assert any("/_static/mathjax/" in u for u in requests)
    assert not errors, errors
    page.close()


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_explorer_control_swaps_the_frame(server, browser, name):
    page, requests, errors = open_page(browser, f"{server}/book/{name}.html")
    explorers = page.locator(".lessons-explorer")
    assert explorers.count() >= 1
    for i in range(explorers.count()):
        ex = explorers.nth(i)
        img = ex.locator("img.lx-frame")
        controls = ex.locator("[data-control]")
        for j in range(controls.count()):
            ctrl = controls.nth(j)
            before = img.get_attribute("src")
            size = img.bounding_box()
            # an accessible name: the <label> it sits in, or aria-label
            assert ctrl.evaluate("el => el.labels.length > 0 || !!el.getAttribute('aria-label')"), (i, j)
            tag = ctrl.evaluate("el => el.tagName")
            ctrl.focus()  # every control is moved from the keyboard, as a reader without a mouse would
            if tag == "SELECT":
                page.keyboard.press("ArrowUp" if ctrl.evaluate("el => el.selectedIndex > 0") else "ArrowDown")
            elif ctrl.get_attribute("type") == "checkbox":
                page.keyboard.press("Space")
            else:
                page.keyboard.press("ArrowLeft" if ctrl.evaluate("el => +el.value > 0") else "ArrowRight")
            assert img.get_attribute("src") != before, f"explorer {i}, control {j} did not swap the frame"
            after = img.bounding_box()
            assert (after["width"], after["height"]) == (size["width"], size["height"]), "the frame changed size"
    assert not off_localhost(requests) and not errors
    page.close()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_stays_on_localhost(server, browser, name):
    page, requests, errors = open_page(browser, f"{server}/{name}.html")
    page.wait_for_load_state("networkidle", timeout=LOAD_TIMEOUT_MS)
    assert requests and not off_localhost(requests), off_localhost(requests)
    assert not errors, errors
    page.close()


def test_default_frame_shows_without_javascript(server, browser):
    ctx = browser.new_context(java_script_enabled=False)
    page = ctx.new_page()
    page.goto(server + "/book/learning-rate-and-curvature.html")
    img = page.locator(".lessons-explorer img.lx-frame").first
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("(el) => el.naturalWidth", img.element_handle()) > 100
    ctx.close()
