#!/usr/bin/env python
"""The course kit, made from the chapters in book/: one source for the book, the student and the instructor.

    python tools/course.py student OUT [COURSE]      student notebooks, lessons_lib and a README into OUT, and
                                                     the nbgrader source course into COURSE (OUT/../nbgrader)
    python tools/course.py nbgrader COURSE           only the nbgrader source course (source/, config, README)
    python tools/course.py instructor EXECUTED OUT   the executed notebooks in EXECUTED, lessons_lib, a README
    python tools/course.py hide STAGE                take the solutions out of a staged, executed book
    python tools/course.py teaching STAGE            write STAGE/book/teaching.md, the list of exercises
    python tools/course.py intro STAGE               list the parts and chapters in STAGE/book/intro.md
    python tools/course.py readme [--check]          rewrite README.md's generated lists (--check: only compare)
    python tools/course.py lint [BOOK]               list the exercise-format problems of the chapters

The exercise format (book/how-to-use.md explains it for authors):

- A markdown cell declares each exercise with a sphinx-exercise ``{exercise}`` directive that has a
  ``:label: ex-...``; the line right before it is ``% teaching: kind=conceptual|code; time=N min;
  practises=...`` (a MyST comment, invisible on the site). A ``{solution} ex-...`` directive with
  ``:class: dropdown`` answers it. The gated ``exercise-start`` form is not allowed.
- A code exercise's solution is a code cell tagged ``hide-input`` whose solution lines sit between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers); a placeholder such as
  ``answer = None`` comes before the BEGIN marker. The next cell calls ``check.<name>(...)``.

The chapters are found, not listed: ``_toc.yml`` is the one list of them, in parts, and their titles are
the notebooks' first ``# `` headings. The intro's list of chapters is written into the staged copy of the
book, and README.md's between its markers (a test fails when README.md is stale).

The student version is made with nbgrader's own ClearSolutions preprocessor (the markers are nbgrader's),
imported only when needed, so this script needs nbformat and PyYAML for everything else. It does not
import lessons_lib. Student notebooks lose the ``% teaching:`` lines, which only JupyterLab with
jupyterlab-myst hides.

The nbgrader source course (:func:`write_nbgrader`) has one assignment per chapter, named after the notebook,
with the notebook and a copy of lessons_lib. Its cells carry nbgrader's metadata (schema version 3):

- a code exercise's solution cell is an *autograded answer* (``solution``, no points), grade id
  ``<label>-answer``; the self-check cell after it becomes a locked *autograder test* (``grade``, ``locked``),
  grade id ``<label>-check``, that shows the check's verdict and asserts that it is "correct";
- a conceptual exercise gets a *manually graded answer*, a markdown cell (``solution`` and ``grade``) right
  after its ``{exercise}`` block, grade id ``<label>-answer``, holding the solution's text for the grader
  (``nbgrader generate_assignment`` replaces it with "YOUR ANSWER HERE");
- points: one per minute of the exercise's ``time=`` (an exercise with several self-checks splits them).
"""

from __future__ import annotations

import copy
import re
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDE_TAG = "hide-input"
KINDS = ("conceptual", "code")
# pages that exist only in a staged copy of the book (make stage writes them); _toc.yml lists them
GENERATED_PAGES = {"book/teaching": "teaching.md"}
# what a learner's machine needs to run the chapters (taken, pinned, from requirements.txt)
RUNTIME = ("torch", "numpy", "scipy", "matplotlib", "pillow", "tqdm", "ipykernel", "ipywidgets",
           "widgetsnbextension", "jupyterlab-widgets", "jupyterlab", "jupyterlab-myst")
NBGRADER_SCHEMA = 3  # nbgrader 0.9's cell metadata version
COURSE_ID = "optimization-dynamics"
VERDICT = "verdict"  # the name an autograder test cell binds the self-check's result to

TEACHING = re.compile(r"^%\s*teaching:\s*(?P<fields>.*?)\s*$")
TEACHING_LINE = re.compile(r"^%\s*teaching:.*(?:\n|$)", re.M)
OPEN = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>.*?)\s*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*?)\s*$")
CHECK_CALL = re.compile(r"\bcheck\.(?P<name>[A-Za-z_]\w*)\s*\(")


@dataclass(frozen=True)
class Directive:
    name: str            # exercise, solution, ...
    arg: str             # the title of an exercise, the label a solution answers
    options: dict
    first: int           # line numbers of the opening and closing fences in the cell
    last: int
    comment: str | None  # the line before the opening fence, if it is a MyST comment


@dataclass(frozen=True)
class Exercise:
    chapter: str         # notebook stem
    label: str
    title: str
    kind: str            # conceptual | code
    minutes: int
    practises: str
    check: str | None    # the self-check a code exercise calls


def directives(markdown: str) -> list[Directive]:
    """The top-level MyST directives (backtick or colon fences) in a markdown cell."""
    lines = markdown.split("\n")
    found, i = [], 0
    while i < len(lines):
        m = OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m["fence"]
        j = i + 1
        while j < len(lines) and not (lines[j].strip() and set(lines[j].strip()) == {fence[0]}
                                      and len(lines[j].strip()) >= len(fence)):
            j += 1
        options, k = {}, i + 1
        while k < j and (o := OPTION.match(lines[k])):
            options[o["key"]] = o["value"]
            k += 1
        prev = lines[i - 1].strip() if i else ""
        found.append(Directive(m["name"], m["arg"], options, i, min(j, len(lines) - 1),
                               prev if prev.startswith("%") else None))
        i = j + 1
    return found


def strip_solutions(markdown: str) -> str:
    """``markdown`` without its ``{solution}`` directives (and the blank lines they leave)."""
    lines = markdown.split("\n")
    drop = set()
    for d in directives(markdown):
        if d.name == "solution":
            drop.update(range(d.first, d.last + 1))
    text = "\n".join(line for n, line in enumerate(lines) if n not in drop)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def strip_teaching(markdown: str) -> str:
    """``markdown`` without its ``% teaching:`` lines: MyST comments, but raw text in a plain Jupyter."""
    return TEACHING_LINE.sub("", markdown)


def is_solution_cell(cell) -> bool:
    return cell.cell_type == "code" and BEGIN in cell.source


def solution_lines(nb) -> list[str]:
    """Every line of every solution: code between the markers and the bodies of solution directives."""
    out = []
    for cell in nb.cells:
        lines = cell.source.split("\n")
        if is_solution_cell(cell):
            inside = False
            for line in lines:
                if BEGIN in line:
                    inside = True
                elif END in line:
                    inside = False
                elif inside:
                    out.append(line)
        elif cell.cell_type == "markdown":
            for d in directives(cell.source):
                if d.name == "solution":
                    out.extend(ln for ln in lines[d.first + 1:d.last] if not OPTION.match(ln))
    return out


def teaching_fields(comment: str | None) -> dict:
    m = TEACHING.match(comment or "")
    if not m:
        return {}
    fields = {}
    for part in m["fields"].split(";"):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip()
    return fields


def chapter_title(nb, default: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^# (.+)$", cell.source, re.M)
            if m:
                return m[1].strip()
    return default


def read(path: Path):
    return nbformat.read(path, as_version=4)


def exercises(path: Path) -> tuple[list[Exercise], list[str]]:
    """The exercises of one chapter, in order, and the problems with their format (empty when all is well)."""
    nb, name = read(path), path.name
    found: list[dict] = []
    problems: list[str] = []
    solved: dict[str, str] = {}  # label -> class of its solution directive
    current = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            if BEGIN in cell.source or END in cell.source:
                problems.append(f"{name}: solution markers belong in code cells, not markdown")
            for d in directives(cell.source):
                if d.name in ("exercise-start", "exercise-end", "solution-start", "solution-end"):
                    problems.append(f"{name}: the gated {{{d.name}}} form is not allowed (sphinx-exercise #89)")
                elif d.name == "solution":
                    solved[d.arg] = d.options.get("class", "")
                elif d.name == "exercise":
                    label = d.options.get("label", "")
                    fields = teaching_fields(d.comment)
                    ex = dict(label=label, title=d.arg, fields=fields, check=None, solutions=0)
                    found.append(ex)
                    current = ex
                    where = f"{name}: exercise {label or d.arg!r}"
                    if not label.startswith("ex-"):
                        problems.append(f"{where} needs a ':label: ex-...' option")
                    if not fields:
                        problems.append(f"{where}: the line before it must be "
                                        "'% teaching: kind=...; time=N min; practises=...'")
                        continue
                    if fields.get("kind") not in KINDS:
                        problems.append(f"{where}: kind must be one of {KINDS}, not {fields.get('kind')!r}")
                    if not re.fullmatch(r"\d+ min", fields.get("time", "")):
                        problems.append(f"{where}: time must read like '10 min', not {fields.get('time')!r}")
                    if not fields.get("practises"):
                        problems.append(f"{where}: say what it practises (practises=...)")
        elif is_solution_cell(cell):
            if current is None:
                problems.append(f"{name}: a solution cell (cell {index}) comes before any exercise")
                continue
            current["solutions"] += 1
            if cell.source.count(BEGIN) != cell.source.count(END):
                problems.append(f"{name}: unbalanced solution markers in cell {index}")
            if HIDE_TAG not in cell.metadata.get("tags", []):
                problems.append(f"{name}: solution cell {index} must be tagged {HIDE_TAG!r}")
            after = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
            m = CHECK_CALL.search(after.source) if after is not None and after.cell_type == "code" else None
            if m is None:
                problems.append(f"{name}: the cell after solution cell {index} must call a check.<name>(...)")
            else:
                current["check"] = m["name"]
    labels = [ex["label"] for ex in found]
    for ex in found:
        where = f"{name}: exercise {ex['label']}"
        if labels.count(ex["label"]) > 1:
            problems.append(f"{where}: label used twice")
        if ex["label"] not in solved:
            problems.append(f"{where} has no {{solution}} {ex['label']} directive")
        elif "dropdown" not in solved[ex["label"]].split():
            problems.append(f"{where}: its solution needs ':class: dropdown'")
        kind = ex["fields"].get("kind")
        if kind == "code" and not ex["solutions"]:
            problems.append(f"{where} is a code exercise without a solution cell")
        if kind == "conceptual" and ex["solutions"]:
            problems.append(f"{where} is conceptual but has a solution cell: make it kind=code")
    for label in solved:
        if label not in labels:
            problems.append(f"{name}: solution {label} answers no exercise")
    result = []
    for ex in found:
        f = ex["fields"]
        if f.get("kind") in KINDS and re.fullmatch(r"\d+ min", f.get("time", "")):
            result.append(Exercise(path.stem, ex["label"], ex["title"], f["kind"], int(f["time"].split()[0]),
                                   f.get("practises", ""), ex["check"]))
    return result, problems


def chapters(book: Path) -> list[Path]:
    return sorted(book.glob("*.ipynb"))


def lint(book: Path) -> list[str]:
    return [p for path in chapters(book) for p in exercises(path)[1]]


# --- the notebook transforms ---------------------------------------------------------------------

def remove_solutions(nb, *, keep_outputs: bool):
    """A copy of ``nb`` with nbgrader's stubs for code solutions and no solution directives.

    The solution cells (now stubs) lose their outputs and their ``hide-input`` tag, so the stub shows;
    so do the self-check cells after them. Other outputs are kept if ``keep_outputs``. The ``% teaching:``
    lines go too: invisible on the site, they would show as raw text in a notebook.
    """
    from nbgrader.preprocessors import ClearSolutions  # only the course kit needs nbgrader

    nb = copy.deepcopy(nb)
    stubbed = {i for i, cell in enumerate(nb.cells) if is_solution_cell(cell)}
    checks = {i + 1 for i in stubbed}
    nb, _ = ClearSolutions(enforce_metadata=False).preprocess(nb, {})
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = strip_teaching(strip_solutions(cell.source))
        elif cell.cell_type == "code":
            if i in stubbed:
                tags = [t for t in cell.metadata.get("tags", []) if t != HIDE_TAG]
                if tags:
                    cell.metadata["tags"] = tags
                else:
                    cell.metadata.pop("tags", None)
            if not keep_outputs or i in stubbed or i in checks:
                cell.outputs = []
                cell.execution_count = None
    nb.cells = [c for c in nb.cells if c.cell_type != "markdown" or c.source.strip()]
    return nb


def nbgrader_meta(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False,
                  points: float | None = None) -> dict:
    """A cell's ``nbgrader`` metadata, as nbgrader's create-assignment toolbar writes it."""
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": NBGRADER_SCHEMA,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def solution_text(nb, label: str) -> str:
    """The body of the ``{solution} label`` directive in ``nb`` (its options left out)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.split("\n")
            for d in directives(cell.source):
                if d.name == "solution" and d.arg == label:
                    return "\n".join(ln for ln in lines[d.first + 1:d.last] if not OPTION.match(ln)).strip("\n")
    return ""


def test_cell_source(source: str, where: str) -> str:
    """A self-check cell as an autograder test: the check's result is shown, then asserted to be "correct".

    The statement that calls ``check.<name>(...)`` is bound to :data:`VERDICT` (or keeps its own name if it
    assigns one); the message of a failed assert is the check's own, which never holds the answer.
    """
    import ast

    lines = source.rstrip("\n").split("\n")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise SystemExit(f"{where}: the self-check cell must be plain Python ({exc.msg})") from None
    calls = [s for s in tree.body if CHECK_CALL.search(ast.get_source_segment(source, s) or "")]
    if not calls:
        raise SystemExit(f"{where}: no statement of the self-check cell calls check.<name>(...)")
    stmt = calls[-1]
    if isinstance(stmt, ast.Expr):
        name = VERDICT
        lines[stmt.lineno - 1] = f"{name} = {lines[stmt.lineno - 1]}"
    elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        name = stmt.targets[0].id
    else:
        raise SystemExit(f"{where}: the self-check call must be a statement of its own or `name = check...(...)`")
    return "\n".join(lines + [
        f"display({name})  # the self-check's verdict: correct, close, wrong or not attempted",
        f"assert {name}.status == \"correct\", f\"the self-check says {{{name}.status}}: {{{name}.message}}\""])


def _split_markdown(source: str, conceptual: dict[str, Exercise]) -> list[tuple[str, str | None]]:
    """``source`` cut after each conceptual ``{exercise}`` block: (text, label of the exercise it ends with)."""
    lines = source.split("\n")
    pieces, start = [], 0
    for d in directives(source):
        label = d.options.get("label", "")
        if d.name == "exercise" and label in conceptual:
            pieces.append(("\n".join(lines[start:d.last + 1]), label))
            start = d.last + 1
    pieces.append(("\n".join(lines[start:]), None))
    return pieces


def nbgrader_source(path: Path):
    """The chapter at ``path`` as an nbgrader source notebook (the module docstring gives the metadata rule)."""
    nb = read(path)
    exs, problems = exercises(path)
    if problems:
        raise SystemExit("exercise format problems:\n  " + "\n  ".join(problems))
    by_label = {ex.label: ex for ex in exs}
    conceptual = {ex.label: ex for ex in exs if ex.kind == "conceptual"}
    # which exercise each solution cell answers (the last {exercise} before it), and how many each has
    owner, current = {}, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            for d in directives(cell.source):
                if d.name == "exercise":
                    current = d.options.get("label")
        elif is_solution_cell(cell):
            owner[i] = current
    count = {label: list(owner.values()).count(label) for label in set(owner.values())}
    seen: dict[str, int] = {}
    cells = []
    for i, cell in enumerate(nb.cells):
        cell = copy.deepcopy(cell)
        if cell.cell_type == "markdown":
            for text, label in _split_markdown(cell.source, conceptual):
                text = strip_teaching(strip_solutions(text)).strip("\n")
                if text.strip():
                    cells.append(nbformat.v4.new_markdown_cell(text, metadata=copy.deepcopy(cell.metadata)))
                if label is not None:
                    ex = conceptual[label]
                    answer = nbformat.v4.new_markdown_cell(solution_text(nb, label) or "YOUR ANSWER HERE")
                    answer.metadata["nbgrader"] = nbgrader_meta(f"{label}-answer", solution=True, grade=True,
                                                                points=ex.minutes)
                    cells.append(answer)
            continue
        cell.outputs, cell.execution_count = [], None
        if i in owner:
            label = owner[i]
            seen[label] = n = seen.get(label, 0) + 1
            suffix = f"-{n}" if n > 1 else ""
            tags = [t for t in cell.metadata.get("tags", []) if t != HIDE_TAG]
            cell.metadata.pop("tags", None)
            if tags:
                cell.metadata["tags"] = tags
            cell.metadata["nbgrader"] = nbgrader_meta(f"{label}-answer{suffix}", solution=True)
        elif i - 1 in owner:
            label = owner[i - 1]
            suffix = f"-{seen[label]}" if seen[label] > 1 else ""
            minutes = by_label[label].minutes
            points = minutes // count[label] if minutes % count[label] == 0 else round(minutes / count[label], 2)
            cell.source = test_cell_source(cell.source, f"{path.name}: the self-check of {label}")
            cell.metadata["nbgrader"] = nbgrader_meta(f"{label}-check{suffix}", grade=True, locked=True,
                                                      points=points)
        cells.append(cell)
    out = copy.deepcopy(nb)
    out.cells = cells
    out.nbformat_minor = max(out.nbformat_minor, 5)
    for cell in out.cells:  # markdown cells are new (a split one would otherwise share its id)
        cell.setdefault("id", uuid.uuid4().hex[:8])
    return out


def grade_cells(nb) -> dict[str, dict]:
    """``grade_id -> nbgrader metadata`` of the cells that carry points, in order."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


NBGRADER_CONFIG = f"""# nbgrader reads this from the current folder (written by tools/course.py: edits are overwritten)
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = "{COURSE_ID}"
# a chapter's cells take seconds to a minute each at the default quick scale (nbgrader's default is 30 s)
c.Execute.timeout = 600
# the student's stub, as in `make student`
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
"""


def write_nbgrader(book: Path, out: Path, *, only: list[str] | None = None) -> list[Path]:
    """The nbgrader source course in ``out``: ``source/<chapter>/<chapter>.ipynb`` with lessons_lib, a config
    and a README (``only``: just those chapters, by notebook stem). Only ``source/`` and those two files are
    rewritten: a gradebook, releases, submissions and grades already in ``out`` are left alone."""
    import nbgrader.nbgraderformat as nbgraderformat  # only the course kit needs nbgrader

    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "source", ignore_errors=True)
    written = []
    for path in ordered_chapters(book):
        if only is not None and path.stem not in only:
            continue
        folder = out / "source" / path.stem
        folder.mkdir(parents=True)
        nb = nbgrader_source(path)
        nbgraderformat.MetadataValidator().validate_nb(nb)
        nbformat.write(nb, folder / path.name)
        copy_library(folder)
        written.append(folder / path.name)
    (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    (out / "README.md").write_text(nbgrader_readme(book))
    return written


def copy_library(out: Path) -> None:
    shutil.copytree(ROOT / "lessons_lib", out / "lessons_lib", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def runtime_requirements() -> str:
    keep = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = re.split(r"[=<>\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        if name in RUNTIME:
            keep.append(line.strip())
    return "# What the notebooks need (the versions the book is tested with)\n" + "\n".join(keep) + "\n"


def overview_table(book: Path, *, myst: bool) -> tuple[str, list[Exercise]]:
    """A markdown table per chapter of its exercises.

    ``myst`` links the exercises with ``{ref}`` and lists only the chapters in ``_toc.yml`` (the site
    builds no others, so a link into one would be a broken reference).
    """
    blocks, everything = [], []
    for path in ordered_chapters(book, toc_only=myst):
        exs, problems = exercises(path)
        if problems:
            raise SystemExit("exercise format problems:\n  " + "\n  ".join(problems))
        everything += exs
        title = chapter_title(read(path), path.stem)
        rows = ["| Exercise | Kind | Time | Practises | Self-check |", "| --- | --- | --- | --- | --- |"]
        for ex in exs:
            name = f"{{ref}}`{ex.label}`: {cell_text(ex.title)}" if myst else cell_text(ex.title)
            checker = f"`check.{ex.check}`" if ex.check else "—"
            rows.append(f"| {name} | {ex.kind} | {ex.minutes}\u00a0min | {cell_text(ex.practises)} | {checker} |")
        heading = f"## {title}" if myst else f"### {title} (`{path.name}`)"
        blocks.append(f"{heading}\n\n" + "\n".join(rows) + f"\n\n{summary(exs)}.\n")
    return "\n".join(blocks), everything


def cell_text(text: str) -> str:
    return text.replace("|", "\\|")


def ordered_chapters(book: Path, *, toc_only: bool = False) -> list[Path]:
    """The chapters in the order of ``_toc.yml`` (beside ``book/``); those not listed there come last, or not at all."""
    toc_path = book.parent / "_toc.yml"
    order = []
    if toc_path.is_file():
        toc = yaml.safe_load(toc_path.read_text())
        for part in toc.get("parts", []):
            order += [ch["file"] for ch in part.get("chapters", [])]
    rank = {f: n for n, f in enumerate(order)}
    found = [p for p in chapters(book) if not toc_only or f"book/{p.stem}" in rank]
    return sorted(found, key=lambda p: (rank.get(f"book/{p.stem}", len(rank)), p.name))


# --- the lists of chapters (the intro, README.md), from _toc.yml and the notebooks -------------------

INTRO_MARK = "% chapters: the parts and their chapters are listed here when the book is staged (tools/course.py intro)"
README_BEGIN = ("<!-- generated by `python tools/course.py readme` from _toc.yml, the notebooks' titles and the "
                "modules' docstrings: do not edit by hand -->")
README_END = "<!-- end of the generated lists -->"


def page_path(root: Path, entry: str) -> Path:
    """The source of a ``_toc.yml`` entry (``book/stability`` -> ``book/stability.ipynb`` or ``.md``)."""
    for suffix in (".ipynb", ".md"):
        if (root / f"{entry}{suffix}").is_file():
            return root / f"{entry}{suffix}"
    raise SystemExit(f"_toc.yml lists {entry}, which is neither {entry}.ipynb nor {entry}.md")


def page_title(path: Path) -> str:
    """A page's title: its first ``# `` heading (the first markdown cell's, for a notebook)."""
    if path.suffix == ".ipynb":
        return chapter_title(read(path), path.stem)
    m = re.search(r"^# (.+)$", path.read_text(), re.M)
    return m[1].strip() if m else path.stem


def parts(book: Path) -> list[tuple[str, list[Path]]]:
    """The book's parts, in order: the numbered parts of ``_toc.yml`` (beside ``book/``), each with its caption
    and its chapters' sources. Chapters are numbered on from one part to the next, as on the site."""
    root = book.parent
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [(part["caption"], [page_path(root, ch["file"]) for ch in part.get("chapters", [])])
            for part in toc.get("parts", []) if part.get("numbered")]


def intro_list(book: Path) -> str:
    """The intro's list of parts and chapters (MyST), each chapter a link titled as the chapter."""
    blocks, n = [], 0
    for caption, pages in parts(book):
        items = []
        for path in pages:
            n += 1
            items.append(f"{n}. {{doc}}`{path.stem}`")
        blocks.append(f"**{caption}**\n\n" + "\n".join(items))
    return "\n\n".join(blocks)


def write_intro(stage: Path) -> Path:
    """Put the list of chapters into the staged intro, in place of its :data:`INTRO_MARK` line."""
    target = stage / "book" / "intro.md"
    lines = target.read_text().split("\n")
    if lines.count(INTRO_MARK) != 1:
        raise SystemExit(f"{target} must hold the line {INTRO_MARK!r} exactly once")
    lines[lines.index(INTRO_MARK)] = intro_list(stage / "book")
    target.write_text("\n".join(lines))
    return target


def module_summaries(lib: Path) -> list[tuple[str, str]]:
    """``(name, first docstring line)`` of each module and subpackage of the library, by name."""
    import ast

    found = []
    for path in sorted(lib.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            name, source = f"{path.name}/", path / "__init__.py"
        elif path.suffix == ".py" and path.stem != "__init__":
            name, source = path.name, path
        else:
            continue
        doc = (ast.get_docstring(ast.parse(source.read_text())) or "").strip().split("\n")[0]
        found.append((name, re.sub(r":\w+:`([^`]+)`", r"`\1`", doc).replace("``", "`")))  # reST to markdown
    return found


def readme_lists(book: Path) -> str:
    """README.md's generated block: the chapters by part, and the library's modules."""
    lines, n = [README_BEGIN, ""], 0
    for caption, pages in parts(book):
        lines += [f"### {caption}", ""]
        for path in pages:
            n += 1
            lines.append(f"{n}. **{page_title(path)}**: `book/{path.name}`")
        lines.append("")
    lines += ["### The library, `lessons_lib/`", "",
              "Its layers, and which may import which, are in `lessons_lib/__init__.py`.", ""]
    lines += [f"- `{name}`: {summary_line}" for name, summary_line in module_summaries(book.parent / "lessons_lib")]
    return "\n".join(lines + ["", README_END])


def readme_with_lists(text: str, book: Path) -> str:
    """``text`` (README.md) with its generated block replaced by a fresh one."""
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1:
        raise SystemExit("README.md must hold the generated block's two marker lines once each")
    head, rest = text.split(README_BEGIN)
    return head + readme_lists(book) + rest.split(README_END, 1)[1]


def summary(exs: list[Exercise]) -> str:
    code = sum(ex.kind == "code" for ex in exs)
    return f"{len(exs)} exercises ({code} code, {len(exs) - code} conceptual), about {duration(exs)}"


def duration(exs: list[Exercise]) -> str:
    total = sum(ex.minutes for ex in exs)
    hours, minutes = divmod(total, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def teaching_page(book: Path, *, hidden: bool = False) -> str:
    table, everything = overview_table(book, myst=True)
    where = ("this edition of the site leaves the solutions out" if hidden
             else "its solution is collapsed under it on this site")
    return f"""# Teaching with this book

% Generated by tools/course.py from the chapters' exercises every time the book is staged: do not edit.

Every chapter ends with exercises of two kinds. A *conceptual* exercise asks for an argument or a derivation;
{where}. A *code* exercise is a cell to fill in, followed by a
self-check from `lessons_lib.check` that answers *correct*, *close* or *wrong* with a hint built from the
student's own answer, and never prints the expected one. Times are rough, for a student who has read the
chapter. The table below is made from the notebooks each time the book is built, so it always matches them.

In all: {summary(everything)}.

For a course, `make student` writes one notebook per chapter with the solutions taken out, `make instructor`
writes the executed notebooks with their solutions, and `make book HIDE_SOLUTIONS=1` builds this site
without solutions; {{doc}}`how-to-use` explains the exercise format.

{table}"""


def student_readme(book: Path) -> str:
    rows = []
    for path in ordered_chapters(book):
        exs, _ = exercises(path)
        rows.append(f"| `{path.name}` | {chapter_title(read(path), path.stem)} | {summary(exs)} |")
    return """# Optimization Dynamics: exercise notebooks

One notebook per chapter of the book. Read the chapter, run its cells, then do the exercises at its end.

- **Conceptual** exercises ask for an argument or a derivation: answer in a markdown cell or on paper.
- **Code** exercises are cells that end in `# YOUR CODE HERE` and `raise NotImplementedError()`. Replace those
  two lines with your code, run the cell, then run the self-check cell under it. The check answers *correct*,
  *close* (with the relative error) or *wrong* (with a hint built from your own answer). It never shows the
  answer, so run it as often as you like. Until you have written something it says *not attempted*.

Until you fill them in, the exercise cells stop with `NotImplementedError`; "Run all" goes on past them
(`jupyter nbconvert --execute --allow-errors` does the same on the command line).

## Setup

```bash
python -m venv .venv
. .venv/bin/activate            # Windows: .venv\\Scripts\\activate
pip install -r requirements.txt
jupyter lab
```

The notebooks import `lessons_lib`, the book's small library, from this folder. At the default quick scale every
chapter runs on a laptop CPU in under a minute.

""" + front_ends() + """

## Chapters

| Notebook | Chapter | Exercises |
| --- | --- | --- |
""" + "\n".join(rows) + "\n"


def front_ends() -> str:
    """The student README's paragraph on where the notebooks render well (MyST markdown)."""
    pinned = "jupyterlab-myst" in runtime_requirements().lower().replace("_", "-")
    how = ("`requirements.txt` installs it" if pinned else
           "install it into the same environment with `pip install jupyterlab-myst`")
    return f"""## Which Jupyter to use

The text cells are written in MyST Markdown: exercise boxes, numbered equations, cross-references and
admonitions. They render best in **JupyterLab with the jupyterlab-myst extension**: {how}, and
`jupyter lab` then shows them as in the book. Jupyter Notebook 7 uses the same extension
(`pip install jupyterlab-myst` beside `notebook`). Front ends without MyST support (VS Code, Google Colab,
the classic Notebook 6) run the notebooks just the same, but show the MyST blocks as plain text: an exercise is
the block that starts with `{{exercise}}`, and a reference such as {{eq}}`eq-...` stays as written."""


def nbgrader_readme(book: Path) -> str:
    table, everything = overview_table(book, myst=False)
    return f"""# Optimization Dynamics: the nbgrader course

An nbgrader (0.9) course with one assignment per chapter: `source/<chapter>/<chapter>.ipynb` holds the
chapter with its solutions and a copy of `lessons_lib` beside it. This folder is written by `make student`
(`tools/course.py`), which rewrites `source/`, `nbgrader_config.py` and this README and nothing else.

How it is graded:

- each **code exercise** is an autograded answer cell (grade id `<label>-answer`) followed by a locked test
  cell (`<label>-check`) that shows the self-check's verdict and asserts that it is *correct*; the test cell
  carries the points, all or nothing;
- each **conceptual exercise** is followed by a manually graded markdown answer cell (`<label>-answer`),
  which here holds the solution for the grader and in the students' copy reads "YOUR ANSWER HERE";
- **points**: one per minute of the exercise's estimated time (the Time column below).

The workflow, run from this folder (`nbgrader_config.py` is read from the current directory):

```bash
nbgrader generate_assignment stability      # release/stability/: the students' copy; the gradebook learns the cells
# hand out release/<chapter>/ (the notebook and lessons_lib); collect each student's folder into
# submitted/<student id>/<chapter>/
nbgrader autograde stability                # autograded/: every notebook executed, the test cells scored
nbgrader formgrader                         # or grade the conceptual answers in the gradebook by hand
nbgrader generate_feedback stability        # optional: feedback/ as HTML
nbgrader export --to grades.csv             # one row per student and assignment: score and max_score
```

Autograding executes the whole chapter for each student (seconds to a minute per notebook at the default
quick scale); `nbgrader_config.py` allows a cell up to 10 minutes. A blank notebook scores zero.

In all: {summary(everything)}.

## Exercises

{table}"""


def instructor_readme(book: Path) -> str:
    table, everything = overview_table(book, myst=False)
    return f"""# Optimization Dynamics: instructor notebooks

The chapters with their solutions, executed: every self-check in them reports *correct*. The outputs are those
of the website build; re-run a notebook in JupyterLab for live widgets.

In all: {summary(everything)}.

From the book's repository:

- `make student` writes the student notebooks to `_build/student/` (solution code replaced by nbgrader's stub,
  solutions of conceptual exercises removed, self-checks kept), with `lessons_lib` and a README, and the nbgrader
  course to `_build/nbgrader/` (one assignment per chapter, autograded by the self-checks; see its README);
- `make book HIDE_SOLUTIONS=1` builds the website without any solution.

## Exercises

{table}"""


def write_student(book: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters(book):
        target = out / path.name
        nbformat.write(remove_solutions(read(path), keep_outputs=False), target)
        written.append(target)
    copy_library(out)
    (out / "README.md").write_text(student_readme(book))
    (out / "requirements.txt").write_text(runtime_requirements())
    return written


def write_instructor(executed: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters(executed):
        source = ROOT / "book" / path.name
        nb = read(path)
        if not source.is_file() or [c.source for c in nb.cells] != [c.source for c in read(source).cells]:
            raise SystemExit(f"{path} is not an executed copy of book/{path.name} (stale, or solutions hidden): "
                             "run `make instructor` without HIDE_SOLUTIONS")
        if not all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
            raise SystemExit(f"{path} is not executed: run `make instructor`")
        shutil.copyfile(path, out / path.name)
        written.append(out / path.name)
    copy_library(out)
    (out / "README.md").write_text(instructor_readme(executed))
    (out / "requirements.txt").write_text(runtime_requirements())
    return written


def hide(stage: Path) -> None:
    """Switch a staged, executed book to hidden solutions, in place."""
    if (stage / "book" / GENERATED_PAGES["book/teaching"]).is_file():
        write_teaching(stage, hidden=True)  # while the exercises still have their solutions
    for path in chapters(stage / "book"):
        nbformat.write(remove_solutions(read(path), keep_outputs=True), path)
    config_path = stage / "_config.yml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    config_path.write_text("# staged by tools/course.py hide: solutions removed\n"
                           + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def write_teaching(stage: Path, *, hidden: bool = False) -> Path:
    target = stage / "book" / GENERATED_PAGES["book/teaching"]
    target.write_text(teaching_page(stage / "book", hidden=hidden))
    return target


def main(argv: list[str]) -> int:
    usage = __doc__.split("\n\n")[1]
    if not argv:
        print(usage)
        return 2
    cmd, args = argv[0], [Path(a) for a in argv[1:]]
    if cmd == "student" and len(args) in (1, 2):
        shutil.rmtree(args[0], ignore_errors=True)
        print(f"{len(write_student(ROOT / 'book', args[0]))} student notebooks in {args[0]}/")
        target = args[1] if len(args) == 2 else args[0].parent / "nbgrader"
        print(f"{len(write_nbgrader(ROOT / 'book', target))} assignments in the nbgrader course {target}/source/")
    elif cmd == "nbgrader" and len(args) == 1:
        print(f"{len(write_nbgrader(ROOT / 'book', args[0]))} assignments in the nbgrader course {args[0]}/source/")
    elif cmd == "instructor" and len(args) == 2:
        shutil.rmtree(args[1], ignore_errors=True)
        print(f"{len(write_instructor(args[0], args[1]))} instructor notebooks in {args[1]}/")
    elif cmd == "hide" and len(args) == 1:
        hide(args[0])
        print(f"solutions removed from {args[0]}/ (hide_solutions on)")
    elif cmd == "teaching" and len(args) == 1:
        print(f"wrote {write_teaching(args[0])}")
    elif cmd == "intro" and len(args) == 1:
        print(f"wrote the list of chapters into {write_intro(args[0])}")
    elif cmd == "readme" and argv[1:] in ([], ["--check"]):
        readme = ROOT / "README.md"
        text, fresh = readme.read_text(), readme_with_lists(readme.read_text(), ROOT / "book")
        if argv[1:] == ["--check"]:
            print("README.md's lists are up to date" if fresh == text else
                  "README.md's lists are stale: run python tools/course.py readme")
            return 0 if fresh == text else 1
        readme.write_text(fresh)
        print("README.md's lists " + ("were up to date" if fresh == text else "rewritten"))
    elif cmd == "lint" and len(args) <= 1:
        problems = lint(args[0] if args else ROOT / "book")
        print("\n".join(problems) or "the exercises follow the format")
        return 1 if problems else 0
    else:
        print(usage)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
