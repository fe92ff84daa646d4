"""The course kit: one exercise format, student and instructor notebooks, hidden solutions, self-checks.

Everything runs over every chapter in book/, so a new chapter is covered as soon as it lands.

- format and coverage: the exercise format of tools/course.py, >= 3 exercises and >= 1 code exercise with a
  self-check per chapter;
- student notebooks: stubs in place, no line of any solution left (leaks), the placeholder rule, no
  ``% teaching:`` lines; the nbgrader source notebooks' cell metadata (tests/test_nbgrader.py runs nbgrader);
- self-checks: for every check function, a wrong value gets a hint built from it, a near one "close", the
  right one "correct", odd input a friendly message, and the expected value is never shown (each check's
  case is the ``CHECK_CASES`` entry at the end of its chapter's tests/test_<topic>.py, collected here);
- marker ``course``: student notebooks executed top to bottom (errors only in the exercise cells, every
  self-check "not attempted"), instructor notebooks in _build/instructor (every self-check "correct");
- marker ``site``: the site rebuilt from the executed _stage with HIDE_SOLUTIONS's transform holds no
  solution line in any file; the teaching page of the default site lists every exercise.
"""

from __future__ import annotations

import ast
import functools
import html
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import yaml
from checkcases import Case, shown
from checkcases import leaks as leaks_expected
from collect import collect

from lessons_lib import check

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))
STAGE = ROOT / "_stage"
SITE = ROOT / "_build" / "html"
INSTRUCTOR = ROOT / "_build" / "instructor"
MIN_CHARS = 12  # shorter solution lines ("return xs", "```") are shared with stubs and prose

_spec = importlib.util.spec_from_file_location("course", ROOT / "tools" / "course.py")
course = sys.modules.setdefault("course", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(course)


def norm(text: str) -> str:
    return " ".join(text.split())


def read(path):
    return nbformat.read(path, as_version=4)


def public_lines(nb) -> set[str]:
    """Lines a chapter shows outside its solutions (a solution line that is also one of these is no secret)."""
    out = set()
    for cell in nb.cells:
        lines = cell.source.split("\n")
        if cell.cell_type == "markdown":
            hidden = set()
            for d in course.directives(cell.source):
                if d.name == "solution":
                    hidden.update(range(d.first, d.last + 1))
            out.update(norm(ln) for n, ln in enumerate(lines) if n not in hidden)
        elif course.is_solution_cell(cell):
            inside = False
            for ln in lines:
                inside = (inside or course.BEGIN in ln) and course.END not in ln
                if not inside:
                    out.add(norm(ln))
        else:
            out.update(norm(ln) for ln in lines)
    return out


@functools.lru_cache(maxsize=None)
def secrets() -> dict[str, tuple[str, ...]]:
    """Per chapter, its solution lines that a leak test looks for (whitespace-normalised, >= MIN_CHARS)."""
    public = set().union(*(public_lines(read(p)) for p in CHAPTERS))
    found = {}
    for path in CHAPTERS:
        lines = {norm(ln) for ln in course.solution_lines(read(path))}
        found[path.stem] = tuple(sorted(ln for ln in lines if len(ln) >= MIN_CHARS and ln not in public))
    return found


def alnum(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")


@functools.lru_cache(maxsize=None)
def fingerprints() -> dict[str, tuple[str, ...]]:
    """The solution lines as a rendered page shows them: letters and digits only, split at roles.

    Rendering turns ``$x$`` into ``\\(x\\)``, splits code into highlighted tokens and a role such as
    {eq}`eq-x` into a number; what survives all of that is the run of letters and digits between roles.
    Fragments under 20 of them, or found in the chapters' text outside solutions, are left out.
    """
    public = alnum(" ".join("\n".join(sorted(public_lines(read(p)))) for p in CHAPTERS))
    return {chapter: tuple(sorted({a for ln in lines for frag in ROLE.split(ln)
                                   if len(a := alnum(frag)) >= 20 and a not in public}))
            for chapter, lines in secrets().items()}


def leaks(text: str, only: str | None = None) -> list[str]:
    """Solution lines (literal, whitespace-normalised) or their fingerprints that occur in ``text``."""
    flat, letters = norm(text), alnum(text)
    found = [f"{c}: {ln}" for c, lines in secrets().items() if only in (None, c) for ln in lines if ln in flat]
    found += [f"{c}: ~{fp}" for c, fps in fingerprints().items() if only in (None, c) for fp in fps if fp in letters]
    return found


def notebook_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") if isinstance(out.get("text", ""), str) else "".join(out["text"]))
            for value in out.get("data", {}).values():
                parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


def page_text(raw: str) -> str:
    """A page's markup and its text (tags dropped, and tags turned into spaces), unescaped."""
    return "\n".join((raw, html.unescape(re.sub(r"<[^>]+>", "", raw)), html.unescape(re.sub(r"<[^>]+>", " ", raw))))


# --- format and coverage ---------------------------------------------------------------------------

def test_every_chapter_follows_the_exercise_format():
    assert CHAPTERS
    assert course.lint(BOOK) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_coverage_three_exercises_and_a_self_checked_code_exercise(path):
    exs, problems = course.exercises(path)
    assert not problems
    assert len(exs) >= 3, f"{path.name} has {len(exs)} exercises, needs at least 3"
    code = [ex for ex in exs if ex.kind == "code" and ex.check]
    assert code, f"{path.name} needs a code exercise with a self-check"
    for ex in code:
        assert callable(getattr(check, ex.check, None)), f"{path.name}: check.{ex.check} does not exist"


def test_labels_are_unique_across_the_book():
    labels = [ex.label for path in CHAPTERS for ex in course.exercises(path)[0]]
    assert len(labels) == len(set(labels))


@pytest.mark.parametrize("change", ["drop-teaching", "bad-kind", "gated", "no-dropdown", "no-check", "no-tag",
                                    "marker-in-markdown"])
def test_the_format_checker_catches_what_it_should(tmp_path, change):
    nb = read(BOOK / "learning-rate-and-curvature.ipynb")
    md = next(c for c in nb.cells if c.cell_type == "markdown" and "{exercise}" in c.source)
    sol = next(i for i, c in enumerate(nb.cells) if course.is_solution_cell(c))
    nbformat.write(nb, tmp_path / "control.ipynb")
    assert course.exercises(tmp_path / "control.ipynb")[1] == []
    if change == "drop-teaching":
        md.source = re.sub(r"^% teaching:.*\n", "", md.source, count=1, flags=re.M)
    elif change == "bad-kind":
        md.source = md.source.replace("kind=conceptual", "kind=essay", 1)
    elif change == "gated":
        md.source += "\n\n```{exercise-start}\n:label: ex-gated\n```\n"
    elif change == "no-dropdown":
        for c in nb.cells:
            c.source = c.source.replace(":class: dropdown", "", 1) if c.cell_type == "markdown" else c.source
    elif change == "no-check":
        nb.cells[sol + 1].source = "print('no check here')"
    elif change == "no-tag":
        nb.cells[sol].metadata["tags"] = []
    elif change == "marker-in-markdown":
        md.source += "\n\n### BEGIN SOLUTION\nsecret\n### END SOLUTION\n"
    nbformat.write(nb, tmp_path / f"{change}.ipynb")
    assert course.exercises(tmp_path / f"{change}.ipynb")[1], change


# --- student notebooks (made here with the same function `make student` calls) ---------------------

@pytest.fixture(scope="session")
def student_kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    course.write_student(BOOK, out)
    return out


def test_student_kit_has_every_chapter_the_library_and_a_readme(student_kit):
    assert sorted(p.name for p in student_kit.glob("*.ipynb")) == [p.name for p in CHAPTERS]
    def library(root):  # every module, packages (lessons_lib/check/) included
        return sorted(p.relative_to(root).as_posix() for p in (root / "lessons_lib").rglob("*.py"))

    assert "lessons_lib/check/core.py" in library(ROOT) and library(student_kit) == library(ROOT)
    readme = (student_kit / "README.md").read_text()
    assert "YOUR CODE HERE" in readme and all(p.name in readme for p in CHAPTERS)
    reqs = (student_kit / "requirements.txt").read_text()
    assert "torch==" in reqs and "jupyterlab==" in reqs and "-e ." not in reqs


def test_student_notebooks_hide_the_teaching_lines_and_the_readme_names_jupyterlab_myst(student_kit):
    for nb_path in sorted(student_kit.glob("*.ipynb")):
        assert "% teaching:" not in "\n".join(c.source for c in read(nb_path).cells), nb_path.name
    readme = (student_kit / "README.md").read_text()
    assert "jupyterlab-myst" in readme and "JupyterLab" in readme and "VS Code" in readme
    pinned = "jupyterlab-myst" in (ROOT / "requirements.txt").read_text().lower().replace("_", "-")
    assert ("jupyterlab-myst" in (student_kit / "requirements.txt").read_text().lower().replace("_", "-")) == pinned


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_nbgrader_source_notebook_metadata(path):
    """Each code exercise: an autograded answer then a locked test cell with points that asserts the check's
    verdict; each conceptual exercise: a manually graded markdown answer; nbgrader's validator accepts it."""
    from nbgrader.nbgraderformat import MetadataValidator

    nb = course.nbgrader_source(path)
    MetadataValidator().validate_nb(nb)
    exs = {ex.label: ex for ex in course.exercises(path)[0]}
    cells = course.grade_cells(nb)
    assert sum(m["points"] for m in cells.values()) == sum(ex.minutes for ex in exs.values())
    for i, cell in enumerate(nb.cells):
        m = cell.metadata.get("nbgrader")
        if not m:
            assert course.BEGIN not in cell.source and "% teaching:" not in cell.source
            continue
        assert m["schema_version"] == 3 and m["task"] is False
        label = re.sub(r"-(answer|check)(-\d+)?$", "", m["grade_id"])
        if cell.cell_type == "code" and m["solution"]:
            assert (m["grade"], m["locked"]) == (False, False) and "points" not in m
            assert course.BEGIN in cell.source and course.HIDE_TAG not in cell.metadata.get("tags", [])
            test = nb.cells[i + 1]
            tm = test.metadata["nbgrader"]
            assert (tm["grade"], tm["solution"], tm["locked"]) == (True, False, True)
            assert tm["grade_id"] == m["grade_id"].replace("-answer", "-check") and tm["points"] > 0
            assert course.CHECK_CALL.search(test.source)
            assert test.source.rstrip().split("\n")[-1].startswith("assert verdict.status == \"correct\"")
            assert exs[label].kind == "code"
        elif cell.cell_type == "markdown":
            assert (m["grade"], m["solution"], m["locked"]) == (True, True, False)
            assert m["points"] == exs[label].minutes and exs[label].kind == "conceptual"
            assert "{exercise}" in nb.cells[i - 1].source and f":label: {label}" in nb.cells[i - 1].source
        else:
            assert m["grade"] and m["locked"] and not m["solution"]
    labels = {re.sub(r"-(answer|check)(-\d+)?$", "", gid) for gid in cells}
    assert labels == set(exs)


def test_nbgrader_test_cell_shows_then_asserts_the_verdict():
    cell = course.test_cell_source("check.critical_lr(answer, a=4.0)", "here")
    assert cell.split("\n")[0] == "verdict = check.critical_lr(answer, a=4.0)"
    namespace = {"check": check, "answer": 0.5, "display": lambda v: None}
    exec(cell, namespace)
    assert namespace["verdict"].status == "correct"
    namespace["answer"] = None
    with pytest.raises(AssertionError, match="not attempted"):
        exec(cell, namespace)
    kept = course.test_cell_source("res = check.critical_lr(\n    answer, a=4.0)\nprint('done')", "here")
    assert kept.endswith('assert res.status == "correct", f"the self-check says {res.status}: {res.message}"')
    with pytest.raises(SystemExit):
        course.test_cell_source("print('no check')", "here")


def test_no_solution_line_in_any_student_notebook(student_kit):
    assert all(secrets().values()), f"chapters without any solution line to look for: {secrets()}"
    for nb_path in sorted(student_kit.glob("*.ipynb")):
        assert not leaks(notebook_text(read(nb_path))), nb_path.name


def test_the_leak_detector_finds_every_solution_line_in_the_source():
    for path in CHAPTERS:  # a test that cannot fail is worse than none
        found = leaks(notebook_text(read(path)), only=path.stem)
        assert len(found) == len(secrets()[path.stem]) + len(fingerprints()[path.stem]), path.stem


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_stubs_code_drops_solutions_keeps_checks(student_kit, path):
    src, stu = read(path), read(student_kit / path.name)
    src_code = [c for c in src.cells if c.cell_type == "code"]
    stu_code = [c for c in stu.cells if c.cell_type == "code"]
    assert len(src_code) == len(stu_code)
    n_solutions = 0
    for a, b in zip(src_code, stu_code):
        if course.is_solution_cell(a):
            n_solutions += 1
            assert "# YOUR CODE HERE" in b.source and "raise NotImplementedError()" in b.source
            assert course.BEGIN not in b.source and course.END not in b.source
            assert course.HIDE_TAG not in b.metadata.get("tags", [])
            assert b.source.split("# YOUR CODE HERE")[0].rstrip() == a.source.split(course.BEGIN)[0].rstrip()
        else:
            assert a.source == b.source  # self-checks and everything else are kept
        assert b.outputs == [] and b.execution_count is None
    assert n_solutions >= 1
    md = "\n".join(c.source for c in stu.cells if c.cell_type == "markdown")
    assert "{solution}" not in md
    assert md.count("{exercise}") == "\n".join(c.source for c in src.cells).count("{exercise}")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_placeholder_rule_stub_defines_what_the_check_reads(student_kit, path):
    """A name the solution binds and the self-check reads must be bound by the stub too (e.g. ``answer = None``
    before ``### BEGIN SOLUTION``), so the student's check says "not attempted" instead of NameError."""
    def bound(source):
        tree = ast.parse("\n".join(ln for ln in source.split("\n") if not ln.lstrip().startswith(("%", "!"))))
        names = set()
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                names.add(node.name)
        return names

    src_code = [c for c in read(path).cells if c.cell_type == "code"]
    stu_code = [c for c in read(student_kit / path.name).cells if c.cell_type == "code"]
    for i, cell in enumerate(src_code):
        if course.is_solution_cell(cell):
            reads = {n.id for n in ast.walk(ast.parse(src_code[i + 1].source)) if isinstance(n, ast.Name)}
            missing = reads & (bound(cell.source) - bound(stu_code[i].source))
            assert not missing, f"{path.name}: put e.g. `{sorted(missing)[0]} = None` before {course.BEGIN}"


def test_requirements_course_pins_nbgrader_on_top_of_the_book():
    lines = [ln.strip() for ln in (ROOT / "requirements-course.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "-r requirements.txt"
    assert any(ln.startswith("nbgrader==") for ln in lines)
    assert all("==" in ln for ln in lines[1:])


def test_generated_pages_are_in_the_toc_and_not_committed(tmp_path):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {ch["file"] for part in toc["parts"] for ch in part["chapters"]}
    for page, name in course.GENERATED_PAGES.items():
        assert page in files
        assert not (BOOK / name).exists(), f"book/{name} is generated at stage time; do not commit it"
    stage = tmp_path / "stage"
    shutil.copytree(BOOK, stage / "book", ignore=shutil.ignore_patterns("_ext", ".ipynb_checkpoints"))
    shutil.copy(ROOT / "_toc.yml", stage)
    page = course.write_teaching(stage).read_text()
    listed = {f"book/{p.stem}" for p in CHAPTERS} & files
    for path in CHAPTERS:
        for ex in course.exercises(path)[0]:
            assert (f"{{ref}}`{ex.label}`" in page) == (f"book/{path.stem}" in listed), ex.label
            row = next(ln for ln in page.splitlines() if ex.label in ln) if f"book/{path.stem}" in listed else ""
            assert not row or (ex.kind in row and f"{ex.minutes}\u00a0min" in row and course.cell_text(ex.title) in row
                              and course.cell_text(ex.practises) in row)


# --- self-checks: every check function, with the cases that each chapter's tests/test_<topic>.py holds ---

GENERIC = ("not right yet", "re-read the question")
def collect_check_cases() -> dict[str, tuple[str, Case]]:
    """``CHECK_CASES`` of every tests/test_*.py that defines one: check name -> (test file stem, case)."""
    found = collect("CHECK_CASES", skip=("test_course",))
    for name, (stem, case) in found.items():
        assert isinstance(case, Case), f"{stem}.py: CHECK_CASES[{name!r}] is not a checkcases.Case"
    return found


CHECK_CASES = collect_check_cases()


def call(name: str, value):
    return getattr(check, name)(value, **CHECK_CASES[name][1].args)


def test_every_check_function_has_a_behaviour_case_in_its_chapters_tests():
    checks = check.index()
    assert checks, "no self-checks found in lessons_lib/check/"
    missing = sorted(set(checks) - set(CHECK_CASES))
    assert not missing, (f"add a Case (right, close, two wrong values) for check.{missing} to CHECK_CASES at the "
                         "end of tests/test_<topic>.py")
    stale = sorted(set(CHECK_CASES) - set(checks))
    assert not stale, f"CHECK_CASES for checks that do not exist: {stale}"
    for name, (stem, _) in CHECK_CASES.items():
        assert stem == f"test_{checks[name]}", f"the case of check.{name} belongs in test_{checks[name]}.py"


def test_the_collector_finds_a_new_chapters_cases(tmp_path, monkeypatch):
    (tmp_path / "test_newtopic.py").write_text(
        "from checkcases import Case\nCHECK_CASES = {'new_check': Case(1.0, None, (2.0, 3.0), [1.0])}\n")
    (tmp_path / "test_other.py").write_text("raise RuntimeError('files without CHECK_CASES are not imported')\n")
    monkeypatch.setattr(sys.modules["collect"], "TESTS", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(collect_check_cases()) == ["new_check"]
    sys.modules.pop("test_newtopic", None)


@pytest.mark.parametrize("name", sorted(CHECK_CASES))
def test_self_check_verdicts_and_hints(name):
    case = CHECK_CASES[name][1]
    right = call(name, case.right)
    assert right.status == "correct" and bool(right)
    assert not leaks_expected(right, case)
    if case.close is not None:
        close = call(name, case.close)
        assert close.status == "close", close
        assert re.search(r"\d", close.message), "close says how close (a relative error)"
        assert not leaks_expected(close, case, case.close)
    messages = []
    for value in case.wrong:
        res = call(name, value)
        assert res.status == "wrong" and not bool(res), (value, res)
        assert not any(g in res.message for g in GENERIC), f"no hint for {value!r}: {res}"
        assert not leaks_expected(res, case, value), (value, res)
        messages.append(res.message)
    assert len(messages) >= 2 and len(set(messages)) == len(messages), "the hint must come from the learner's value"
    if isinstance(case.right, (float, complex)) and case.close_rtol is not None and case.close is not None:
        for side in (1, -1):
            assert call(name, case.right * (1 + side * 0.995 * case.close_rtol)).status == "close"
            assert call(name, case.right * (1 + side * 1.005 * case.close_rtol)).status == "wrong"
            assert call(name, case.right * (1 + side * 0.995 * case.rtol)).status == "correct"
            assert call(name, case.right * (1 + side * 1.005 * case.rtol)).status == "close"
    for value, words in case.hints:  # each diagnosed mistake gets its own hint
        res = call(name, value)
        assert res.status == "wrong" and words in res.message, (value, words, res.message)
        assert not leaks_expected(res, case, value), (value, res)


@pytest.mark.parametrize("name", sorted(CHECK_CASES))
def test_self_check_odd_input_gets_a_message_not_a_traceback(name):
    case = CHECK_CASES[name][1]

    def todo(*args, **kwargs):
        raise NotImplementedError()

    def crashes(*args, **kwargs):
        return 1 / 0

    if case.function:
        missing = [None, todo, lambda *a, **k: None]
        odd = [lambda *a, **k: np.ones((2, 2)), crashes, "my_function", 3.0]
    else:
        missing = [None, ...]
        odd = [[1.0, 2.0, 3.0], np.ones((2, 2)), "0.5", object(), float("inf")]
    for value in missing:
        res = call(name, value)
        assert res.status == "not attempted", (value, res)
    for value in [case.nan] + odd:  # never a traceback, never "correct", never the answer
        res = call(name, value)
        assert res.status in ("wrong", "not attempted"), (value, res)
        assert res.message and "Traceback" not in shown(res)
        assert not leaks_expected(res, case, value), (value, res)
    nan = call(name, case.nan)
    assert nan.status == "wrong" and ("NaN" in nan.message or "pick one of" in nan.message), nan


# --- executed notebooks (marker course) ---------------------------------------------------------------

@pytest.mark.course
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_notebook_runs_with_errors_only_in_exercise_cells(student_kit, path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LESSONS_WARM", "0")  # live explorers nobody moves: no idle-time warm-up of their grids
    nb = read(student_kit / path.name)
    stubs = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "raise NotImplementedError()" in c.source
             and "# YOUR CODE HERE" in c.source}
    nb.cells.append(nbformat.v4.new_code_cell(
        "import pathlib, lessons_lib\nprint('library:', pathlib.Path(lessons_lib.__file__).resolve().parent)"))
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(student_kit)}}).execute()
    assert stubs
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if i in stubs:
            # a stub raises NotImplementedError, or defines a function that raises it when the check calls it
            assert [e.ename for e in errors] in ([], ["NotImplementedError"]), (i, cell.source)
            after = "".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[i + 1].outputs)
            assert "not attempted" in after, (nb.cells[i + 1].source, after)
        else:
            assert not errors, (i, cell.source, errors and errors[0].evalue)
    text = notebook_text(nb)
    assert "✓ correct" not in text and "✗ wrong" not in text
    assert f"library: {student_kit.resolve() / 'lessons_lib'}" in text  # the kit's own copy


@pytest.mark.course
def test_instructor_notebooks_are_executed_and_every_check_is_correct():
    assert INSTRUCTOR.is_dir(), "run `make instructor` first (make test does)"
    assert sorted(p.name for p in INSTRUCTOR.glob("*.ipynb")) == [p.name for p in CHAPTERS]
    assert (INSTRUCTOR / "lessons_lib" / "check" / "core.py").is_file() and (INSTRUCTOR / "README.md").is_file()
    for path in CHAPTERS:
        nb = read(INSTRUCTOR / path.name)
        assert [c.source for c in nb.cells] == [c.source for c in read(path).cells], f"{path.name} is stale"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{path.name} is not executed"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"]
        checks = [nb.cells[i + 1] for i, c in enumerate(nb.cells) if course.is_solution_cell(c)]
        assert checks
        for cell in checks:
            said = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            assert said.startswith("✓ correct"), (path.name, cell.source, said)


# --- the sites (marker site: after `make book`) -------------------------------------------------------

@pytest.fixture(scope="module")
def hidden_site(tmp_path_factory):
    """The site as `make book HIDE_SOLUTIONS=1` builds it, from the already executed _stage (one build)."""
    assert (STAGE / "_config.yml").is_file(), "run `make book` first (make test does)"
    staged = sorted(p.name for p in (STAGE / "book").glob("*.ipynb"))
    assert staged == [p.name for p in CHAPTERS], "_stage is stale: run `make book`"
    work = tmp_path_factory.mktemp("hidden")
    shutil.copytree(STAGE, work / "stage")
    course.hide(work / "stage")
    build = subprocess.run([str(pathlib.Path(sys.executable).parent / "jupyter-book"), "build", str(work / "stage"),
                            "--path-output", str(work / "out"), "-W", "-n", "--keep-going"],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return work / "out" / "_build" / "html"


def site_texts(site: pathlib.Path):
    for path in sorted(site.rglob("*")):
        if path.suffix == ".ipynb":
            yield path, notebook_text(read(path))
        elif path.suffix in (".html", ".txt", ".js", ".md", ".json"):
            yield path, page_text(path.read_text(errors="ignore"))


@pytest.mark.site
def test_hidden_site_holds_no_solution_line_in_any_file(hidden_site):
    checked = 0
    for path, text in site_texts(hidden_site):
        checked += 1
        assert not leaks(text), path.relative_to(hidden_site)
    assert checked > 20


@pytest.mark.site
def test_hidden_site_keeps_exercises_and_shows_stubs(hidden_site):
    for path in CHAPTERS:
        page = (hidden_site / "book" / f"{path.stem}.html").read_text()
        assert 'class="solution' not in page
        for ex in course.exercises(path)[0]:
            assert f'id="{ex.label}"' in page, ex.label
        assert "YOUR CODE HERE" in page
        assert "✓ correct" not in page  # the checks' outputs went with the solutions
    assert "leaves the solutions out" in (hidden_site / "book" / "teaching.html").read_text()


@pytest.mark.site
def test_default_site_keeps_solutions_collapsed_and_the_detector_sees_them():
    for path in CHAPTERS:
        page = (SITE / "book" / f"{path.stem}.html").read_text()
        assert re.search(r'class="solution[^"]*dropdown', page), path.stem
        # the detector that finds nothing on the hidden site finds (nearly) every solution on this one
        found = {f.split("~", 1)[1] for f in leaks(page_text(page), only=path.stem) if "~" in f}
        wanted = set(fingerprints()[path.stem])
        assert len(found) >= 0.9 * len(wanted), sorted(wanted - found)


@pytest.mark.site
def test_teaching_page_lists_every_exercise():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {ch["file"] for part in toc["parts"] for ch in part["chapters"]}
    page = (SITE / "book" / "teaching.html").read_text()
    assert "Teaching with this book" in page
    for path in CHAPTERS:
        if f"book/{path.stem}" in listed:
            for ex in course.exercises(path)[0]:
                assert re.search(rf'href="{re.escape(path.stem)}\.html#{re.escape(ex.label)}"', page), ex.label
