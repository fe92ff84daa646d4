"""The book and its chapter handouts printed to PDF by tools/pdf.py (`make pdf`), read back with poppler.

Prints the built site (_build/html) into _build/pdf once for the module (headless Debian Chromium, about
one to two minutes on two cores), then extracts the text with `pdftotext` (Debian's poppler-utils,
installed by `make poppler`) and checks: every chapter title is in the book and in its handout; no MyST or
LaTeX source shows, apart from what the site itself prints as code; the page counts are sane. The
pages and sizes are written to _build/reports/pdf.json.
"""

import html as htmllib
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.site

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
OUT = ROOT / "_build" / "pdf"


sys.path.insert(0, str(ROOT / "tools"))  # tools/ is a folder of scripts, as in test_structure.py
import course  # noqa: E402
import pdf  # noqa: E402

CHAPTERS = [(path, course.page_title(path)) for _, paths in course.parts(ROOT / "book") for path in paths]

#: source that must not reach the printed page (each is allowed as often as the site prints it as code)
RAW = {
    "a MyST role or directive": r"\{(?:cite(?::[pt])?|eq|ref|numref|doc|exercise|solution|code-cell|math|figure|"
                                r"note|admonition|prf:[\w-]+)\}",
    "a colon or backtick fence": r":::|```",
    "a directive option": r"^:(?:label|class|name|nonumber):",  # (patterns are matched line by line: re.M)
    "a TeX control word": r"\\[A-Za-z]+",
    "a TeX maths delimiter": r"\$|\\[()\[\]]",
}


def pdftotext(path: pathlib.Path, first: int | None = None, last: int | None = None) -> str:
    pages = (["-f", str(first)] if first else []) + (["-l", str(last)] if last else [])
    return subprocess.run(["pdftotext", "-enc", "UTF-8", *pages, str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def page_count(path: pathlib.Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def squash(text: str) -> str:
    """Text without whitespace or hyphens, so a title broken across lines (or hyphenated) still matches."""
    return re.sub(r"[\s\-\u2010\u00ad]+", "", text)


def code_text(names: list[str]) -> str:
    """What the site prints as code on those pages: its literal blocks and inline literals."""
    parts = []
    for name in names:
        html = (SITE / f"{name}.html").read_text()
        parts += re.findall(r"<pre[^>]*>(.*?)</pre>", html, re.S) + re.findall(r"<code[^>]*>(.*?)</code>", html, re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", "\n".join(parts)))


@pytest.fixture(scope="module")
def pdfs():
    assert (SITE / "index.html").is_file(), "run `make book` (make test builds the site before this test)"
    if not shutil.which("pdftotext"):
        pytest.fail("poppler-utils is missing: `make poppler` installs it")
    shutil.rmtree(OUT, ignore_errors=True)
    made = pdf.make_pdfs(SITE, OUT, log=lambda line: None)
    report = {name: {"pages": page_count(path), "mb": round(path.stat().st_size / 1e6, 2)}
              for name, path in made.items()}
    reports = ROOT / "_build" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "pdf.json").write_text(json.dumps(report, indent=1))
    print("\nPDF: " + ", ".join(f"{pathlib.Path(n).name} {r['pages']} pages {r['mb']} MB" for n, r in report.items()))
    return made


def test_every_chapter_title_is_in_the_book_and_its_handout(pdfs):
    book = squash(pdftotext(pdfs["book"]))
    assert len(pdfs) - 1 == len(CHAPTERS), "one handout per chapter of _toc.yml's numbered parts"
    for path, title in CHAPTERS:
        assert squash(title) in book, f"{title!r} is not in book.pdf"
        handout = pdfs[f"book/{path.stem}"]
        assert squash(title) in squash(pdftotext(handout, 1, 1)), f"{title!r} is not on page 1 of {handout.name}"


def raw_source(text: str, code: str) -> list[str]:
    """Each kind of source seen in ``text`` more often than the site prints it as code."""
    found = []
    for kind, pattern in RAW.items():
        seen, allowed = len(re.findall(pattern, text, re.M)), len(re.findall(pattern, code, re.M))
        if seen > allowed:
            example = re.search(rf".{{0,60}}(?:{pattern}).{{0,60}}", text, re.M).group(0)
            found.append(f"{kind}: {seen} printed, {allowed} as code; e.g. {example!r}")
    return found


def test_no_raw_myst_or_latex_is_printed(pdfs):
    problems = raw_source(pdftotext(pdfs["book"]), code_text(pdf.toc_pages()))
    for path, _ in CHAPTERS:
        name = f"book/{path.stem}"
        problems += [f"{path.stem}.pdf: {p}" for p in raw_source(pdftotext(pdfs[name]), code_text([name]))]
    assert not problems, "\n".join(problems)


def test_page_counts_are_sane(pdfs):
    handouts = {name: page_count(path) for name, path in pdfs.items() if name != "book"}
    for name, n in handouts.items():
        assert 3 <= n <= 60, f"{name}: {n} pages"
    book = page_count(pdfs["book"])
    # the chapters, plus at least one page for each other page of _toc.yml; no runaway (40 pages a chapter)
    assert sum(handouts.values()) + len(pdf.toc_pages()) - len(handouts) <= book <= 40 * len(handouts), book
    for name, path in pdfs.items():  # the figures and each explorer's default frame are in the PDF
        if name != "book":
            images = subprocess.run(["pdfimages", "-list", str(path)], check=True, capture_output=True, text=True)
            assert len(images.stdout.splitlines()) - 2 >= 3, f"{name}: fewer than 3 images"
