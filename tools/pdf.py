"""Print the built site to PDF with headless Chromium (the browser the tests use), no LaTeX.

    python tools/pdf.py [SITE [OUT]]      (`make pdf`: _build/html -> _build/pdf)

Writes OUT/chapters/<chapter>.pdf, one handout per chapter (the numbered parts of _toc.yml), and
OUT/book.pdf, every page of _toc.yml in its order (the root first) joined by poppler's `pdfunite`.
Each page is served from SITE on 127.0.0.1 and printed as a reader would see it: MathJax (served by the
site) has typeset every formula, web fonts and images are loaded, and each explorer shows its default
frame with its controls' values as text (the sliders are not printed). A request off localhost is
refused, so the PDF is made offline. It fails if a page has maths that MathJax did not typeset.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlparse

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import course  # noqa: E402  (tools/course.py: the parts and chapters of _toc.yml)

ROOT = pathlib.Path(__file__).resolve().parents[1]
LOCAL = {"127.0.0.1", "localhost", "::1"}

#: print rules added to every page: no sliders (their values stay, as text), no navigation, no
#: "copy" buttons; figures and explorers are not split across pages
PRINT_CSS = """
@media print {
  .lessons-explorer input[type=range] { display: none !important; }
  .lessons-explorer .lx-controls output::before { content: "= "; }
  .lessons-explorer, .cell_output img, figure { break-inside: avoid; }
  pre { white-space: pre-wrap !important; overflow-wrap: anywhere; overflow: visible !important; font-size: 0.8em; }
  .bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .prev-next-area, .bd-footer, .bd-footer-article,
  .header-article, .copybtn, .headerlink, #pst-back-to-top { display: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; }
}
"""

#: resolves once MathJax has typeset the page and every image and web font has loaded
SETTLE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await Promise.all([...document.images].map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; })));
  await document.fonts.ready;
  return {
    maths: document.querySelectorAll('.math').length,
    typeset: document.querySelectorAll('.math mjx-container, mjx-container').length,
    untypeset: [...document.querySelectorAll('.math')].filter(m => !m.querySelector('mjx-container'))
                   .map(m => m.textContent.trim().slice(0, 80)),
    explorers: document.querySelectorAll('.lessons-explorer').length,
    ready: document.querySelectorAll('.lessons-explorer.lx-ready').length,
  };
}"""

#: the footer: the book's title and the chapter's number (not its title: the test finds each title in the text),
#: then the page within this page's PDF
FOOTER = ('<div style="font-size:8px; width:100%; padding:0 12mm; display:flex; justify-content:space-between;'
          ' color:#555;"><span>{label}</span><span><span class="pageNumber"></span> / '
          '<span class="totalPages"></span></span></div>')


def toc_pages(root: pathlib.Path = ROOT) -> list[str]:
    """Every page of _toc.yml, in order: the root, then each part's chapters (``book/stability``...)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [toc["root"]] + [ch["file"] for part in toc.get("parts", []) for ch in part.get("chapters", [])]


def chapter_pages(root: pathlib.Path = ROOT) -> list[str]:
    """The chapters: the pages of the numbered parts of _toc.yml, in order (tools/course.py reads the parts)."""
    return [f"book/{path.stem}" for _, paths in course.parts(root / "book") for path in paths]


def serve(site: pathlib.Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def print_page(browser, url: str, target: pathlib.Path, label: str) -> dict:
    page = browser.new_page(viewport={"width": 1200, "height": 1600})
    refused = []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith("data:") or host in LOCAL:
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load")
    page.add_style_tag(content=PRINT_CSS)
    page.emulate_media(media="print")
    state = page.evaluate(SETTLE)
    if state["untypeset"]:
        raise SystemExit(f"{url}: MathJax did not typeset {len(state['untypeset'])} formula(s), e.g. "
                         f"{state['untypeset'][0]!r}")
    if state["ready"] != state["explorers"]:
        raise SystemExit(f"{url}: {state['explorers'] - state['ready']} explorer(s) did not start")
    safe = label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page.pdf(path=str(target), format="A4", print_background=True, display_header_footer=True,
             header_template="<span></span>", footer_template=FOOTER.format(label=safe),
             margin={"top": "14mm", "bottom": "16mm", "left": "12mm", "right": "12mm"})
    page.close()
    return {**state, "refused": refused}


def make_pdfs(site: pathlib.Path, out: pathlib.Path, *, root: pathlib.Path = ROOT,
              log=print) -> dict[str, pathlib.Path]:
    """Print every page of the book; return {"book": book.pdf, <chapter page>: its handout}."""
    from playwright.sync_api import sync_playwright

    if not (site / "index.html").is_file():
        raise SystemExit(f"no site in {site}: run `make book` first")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    unite = shutil.which("pdfunite")
    if not exe or not unite:
        raise SystemExit("needs Debian's chromium and poppler-utils (pdfunite): `make chromium poppler` installs them")
    pages, chapters = toc_pages(root), {name: n for n, name in enumerate(chapter_pages(root), 1)}
    book_title = yaml.safe_load((root / "_config.yml").read_text()).get("title", "")
    (out / "chapters").mkdir(parents=True, exist_ok=True)
    httpd = serve(site)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    made: dict[str, pathlib.Path] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            printed = []
            for name in pages:
                t0 = time.perf_counter()
                html = site / f"{name}.html"
                if not html.is_file():
                    raise SystemExit(f"{html} is missing: is the site built from this _toc.yml?")
                label = book_title + (f" · Chapter {chapters[name]}" if name in chapters else "")
                target = pathlib.Path(tmp) / f"{len(printed):02d}.pdf"
                state = print_page(browser, f"{base}/{name}.html", target, label)
                printed.append(target)
                if name in chapters:
                    made[name] = out / "chapters" / f"{pathlib.Path(name).name}.pdf"
                    shutil.copyfile(target, made[name])
                log(f"{name}: {state['typeset']} formulas, {state['explorers']} explorers, "
                    f"{target.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s"
                    + (f", {len(state['refused'])} remote request(s) refused" if state["refused"] else ""))
            browser.close()
            made["book"] = out / "book.pdf"
            subprocess.run([unite, *map(str, printed), str(made["book"])], check=True)
    finally:
        httpd.shutdown()
    return made


def main(argv: list[str]) -> int:
    site = pathlib.Path(argv[0]) if argv else ROOT / "_build" / "html"
    out = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "_build" / "pdf"
    made = make_pdfs(site, out)
    print(f"{out / 'book.pdf'} ({made['book'].stat().st_size / 1e6:.1f} MB) and {len(made) - 1} chapter handouts "
          f"in {out / 'chapters'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
