#!/usr/bin/env python
"""The planning pages of the book, written into a staged copy at build time from the chapters and _toc.yml.

    python tools/planning.py STAGE      write STAGE/book/planning.md and STAGE/book/projects.md

Nothing here is committed under book/: the pages are made from the notebooks every time the book is staged, so
they cannot drift from them (tests/test_planning.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402

PAGES = {"book/planning": "planning.md", "book/projects": "projects.md"}


def planning_page(book: Path) -> str:
    rows = [f"| {i} | {{doc}}`{p.stem}` |" for i, p in enumerate(course.ordered_chapters(book, toc_only=True), 1)]
    return "# Planning a course\n\n| # | Chapter |\n|--:|:--|\n" + "\n".join(rows) + "\n"


def projects_page(book: Path) -> str:
    return "# Projects\n"


def write(stage: Path) -> list[Path]:
    book = stage / "book"
    out = []
    for key, text in (("book/planning", planning_page(book)), ("book/projects", projects_page(book))):
        target = book / PAGES[key]
        target.write_text(text)
        out.append(target)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1])
        return 2
    for path in write(Path(argv[0])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
