"""The planning pages (tools/planning.py): what each chapter must state for them, the week and day plans, the
dependency graph, and the pages on the built site."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402
import planning  # noqa: E402

SITE = ROOT / "_build" / "html"


@pytest.fixture(scope="module")
def chapters():
    found, problems = planning.read_chapters(ROOT / "book")
    assert problems == [], "\n".join(problems)
    return found


@pytest.fixture
def stage(tmp_path):
    shutil.copytree(ROOT / "book", tmp_path / "book")
    shutil.copy(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    return tmp_path


def test_every_chapter_states_what_the_planning_pages_need(chapters):
    toc = [p.stem for _, pages in course.parts(ROOT / "book") for p in pages]
    assert [c.stem for c in chapters] == toc
    for c in chapters:
        assert c.goals and c.prereq_text and c.read_min > 0 and c.run_s > 0, c.stem
        assert c.run_s <= 45, f"{c.stem} says it runs in {c.run_s} s, over the 45 s a chapter may take"
        assert len(c.discuss) >= 2 and 1 <= len(c.projects) <= 2


def test_the_first_chapter_needs_no_chapter_and_every_other_needs_one(chapters):
    assert chapters[0].prereqs == []
    assert all(c.prereqs for c in chapters[1:]), [c.stem for c in chapters[1:] if not c.prereqs]


def test_the_graph_draws_only_arrows_no_other_prerequisite_implies(chapters):
    by_stem = {c.stem: c for c in chapters}
    for c in chapters:
        drawn = planning.reduced_prereqs(c, by_stem)
        assert set(drawn) <= set(c.prereqs) and (drawn or not c.prereqs)
        for s in set(c.prereqs) - set(drawn):  # every left-out arrow is implied by a drawn path
            assert any(s in planning._needs(o, by_stem) for o in drawn), (c.stem, s)


def _brute_force(loads, groups):
    n, best = len(loads), float("inf")
    for k in range(1, min(groups, n) + 1):
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = (0, *cuts, n)
            best = min(best, max(sum(loads[a:b]) for a, b in zip(bounds, bounds[1:])))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_partition_is_optimal_ordered_and_complete(seed):
    rng = random.Random(seed)
    loads = [rng.uniform(0.5, 5) for _ in range(rng.randint(1, 9))]
    groups = rng.randint(1, 5)
    runs = planning.partition(loads, groups)
    assert [i for run in runs for i in run] == list(range(len(loads)))
    assert all(runs) and len(runs) == min(groups, len(loads))
    assert max(sum(loads[i] for i in run) for run in runs) == pytest.approx(_brute_force(loads, groups))


def test_spread_fills_exactly_the_slots_and_doubles_the_heaviest(chapters):
    slots = len(chapters) + 3  # three more slots than chapters: the three heaviest get two each
    weeks = planning.spread(chapters, slots)
    assert len(weeks) == slots
    doubled = [slot[0][0].stem for slot in weeks if slot[0][1] == "first"]
    assert len(doubled) == 3
    lightest_doubled = min(c.load_min for c in chapters if c.stem in doubled)
    assert all(c.load_min <= lightest_doubled for c in chapters if c.stem not in doubled)
    # every exercise is assigned once
    assigned = [ex.label for slot in weeks for ch, what in slot for ex in planning._exercises_for(ch, what)]
    assert sorted(assigned) == sorted(ex.label for c in chapters for ex in c.exercises)
    many = [chapters[i % len(chapters)] for i in range(25)]
    assert len(planning.spread(many, 10)) == 10
    # the book's own 10 chapter weeks: with more chapters than weeks, neighbours share a week, in order
    shared = planning.spread(chapters, 10)
    assert len(shared) == min(10, len(chapters)) or len(chapters) < 10
    assert [ch.stem for slot in shared for ch, _ in slot if _ in ("all", "first")] == [c.stem for c in chapters]


def test_the_pages_list_every_chapter_exercise_and_project(stage, chapters):
    written = planning.write(stage)
    planning_md = (stage / "book" / "planning.md").read_text()
    projects_md = (stage / "book" / "projects.md").read_text()
    graph = stage / "book" / planning.GRAPH
    assert graph in written and graph.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for c in chapters:
        assert c.title in planning_md and f"{{doc}}`{c.stem}`" in planning_md
        for ex in c.exercises:
            assert f"{{ref}}`{ex.label}`" in planning_md
        for q in c.discuss:
            assert q in planning_md
        for p in c.projects:
            assert p["title"] in projects_md and p["success"] in projects_md
    module = planning_md.split("## A 13-week graduate module")[1].split("## A 5-day")[0]
    weeks = [line for line in module.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [w.split("|")[1].strip() for w in weeks] == [str(i) for i in range(1, 11)] + ["11–12", "13"]
    short = planning_md.split("## A 5-day short course")[1].split("## Grading")[0]
    days = [line for line in short.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(days) == 5 and "Project" in days[-1]
    assert "no project of that size" not in planning_md


def _set_first_cell(stage: Path, stem: str, edit) -> None:
    path = stage / "book" / f"{stem}.ipynb"
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    first["source"] = edit("".join(first["source"]))
    path.write_text(json.dumps(nb))


@pytest.mark.parametrize("change, expected", [
    ("no-time", "'**Time.**"),
    ("wrong-exercise-time", "by their time= fields"),
    ("later-prerequisite", "is not an earlier chapter"),
    ("no-projects", "needs one or two projects"),
    ("bad-size", "size must be one of"),
])
def test_lint_catches_what_it_should(stage, change, expected):
    stem = "stability"
    if change == "no-time":
        _set_first_cell(stage, stem, lambda s: s.replace("**Time.**", "Time:"))
    elif change == "wrong-exercise-time":
        _set_first_cell(stage, stem, _wrong_time)
    elif change == "later-prerequisite":
        _set_first_cell(stage, "learning-rate-and-curvature",
                        lambda s: s.replace("**Prerequisites.**", "**Prerequisites.** {doc}`drift`;", 1))
    else:
        path = stage / "book" / f"{stem}.ipynb"
        nb = json.loads(path.read_text())
        if change == "no-projects":
            nb["metadata"]["course"]["projects"] = []
        else:
            nb["metadata"]["course"]["projects"][0]["size"] = "a while"
        path.write_text(json.dumps(nb))
    _, problems = planning.read_chapters(stage / "book")
    assert any(expected in p for p in problems), problems
    with pytest.raises(SystemExit):
        planning.write(stage)


def _wrong_time(text: str) -> str:
    import re

    return re.sub(r"(min to read and )(.+?)( for the exercises)", r"\g<1>9 h 59 min\3", text, count=1)


@pytest.mark.site
def test_the_site_has_the_planning_pages_with_the_graph():
    page = (SITE / "book" / "planning.html").read_text()
    assert "chapter-graph.png" in page and (SITE / "_images").exists()
    assert any(p.name.startswith("chapter-graph") for p in (SITE / "_images").iterdir())
    assert "13-week" in page and "5-day" in page and "Discussion prompts" in page
    projects = (SITE / "book" / "projects.html").read_text()
    assert "Success looks like" in projects
