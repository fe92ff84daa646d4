#!/usr/bin/env python
"""The planning pages of the book, written into a staged copy at build time from the chapters and _toc.yml.

    python tools/planning.py STAGE          write STAGE/book/planning.md, projects.md and the dependency graph
    python tools/planning.py lint [BOOK]    list what the chapters lack for the planning pages

Nothing here is committed under book/: the pages are made from the notebooks every time the book is staged, so
they cannot drift from them. What a page says about a chapter comes from the chapter itself:

- its title, part and number from ``_toc.yml`` and the notebook's first heading;
- its learning goals from the ``**Learning goals.**`` list of the first markdown cell;
- its prerequisites and times from the two paragraphs that end that cell::

      **Prerequisites.** {doc}`learning-rate-and-curvature` (the 2/eta threshold); eigenvalues of a symmetric matrix.

      **Time.** About 30 min to read and 1 h 10 min for the exercises; the notebook runs in about 40 s on two CPU
      cores.

  (the chapters linked there are the edges of the dependency graph, and the exercise time must be the sum of the
  exercises' ``time=`` fields);
- its exercises from tools/course.py (the ``% teaching:`` lines);
- its discussion prompts and projects from the notebook's metadata, ``metadata.course``::

      {"discuss": ["a prompt built on the chapter's 'What did not reproduce' section", ...],
       "projects": [{"title": ..., "size": "1 day" | "1 week" | "2-3 weeks", "goal": ..., "start": ...,
                     "success": ...}, ...]}

The two worked plans (a 13-week module and a 5-day course) are computed: chapters keep the order of ``_toc.yml``
and are grouped so that the heaviest week (reading, exercises and running time) is as light as it can be.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import course  # noqa: E402

PAGES = {"book/planning": "planning.md", "book/projects": "projects.md"}
GRAPH = "figures/chapter-graph.png"  # relative to the staged book/
SIZES = ("1 day", "1 week", "2-3 weeks")
PROJECT_FIELDS = ("title", "size", "goal", "start", "success")

GOALS = re.compile(r"\*\*Learning goals\.\*\*[^\n]*\n(?P<list>(?:\s*\n)?(?:[ \t]*[*-] .*\n?(?:[ \t]+\S.*\n?)*)+)")
PREREQ = re.compile(r"^\*\*Prerequisites\.\*\*[ \t]*(?P<text>.+?)\s*(?=\n\s*\n|\Z)", re.M | re.S)
TIME = re.compile(r"^\*\*Time\.\*\*\s+About\s+(?P<read>\d+)\s+min\s+to\s+read\s+and\s+(?P<ex>\d+\s+h\s+\d\d\s+min|"
                  r"\d+\s+min)\s+for\s+the\s+exercises;\s+the\s+notebook\s+runs\s+in\s+about\s+(?P<run>\d+)\s+s\s+on\s+"
                  r"two\s+CPU\s+cores\.", re.M)  # a paragraph may wrap anywhere
DOC = re.compile(r"\{doc\}`(?:[^`<]*<)?(?P<stem>[\w-]+)>?`")
HOURS_PER_WEEK = 8.0        # a project week's work for a student, besides lectures
PAPER_MIN = 120             # reading a chapter's paper (or the part of it the chapter follows)


@dataclass
class Chapter:
    path: Path
    number: int
    part: str
    title: str
    goals: list[str] = field(default_factory=list)
    prereq_text: str = ""
    prereqs: list[str] = field(default_factory=list)     # stems of earlier chapters
    read_min: int = 0
    run_s: int = 0
    exercises: list[course.Exercise] = field(default_factory=list)
    papers: list[str] = field(default_factory=list)     # bibliography keys: what to read beside the chapter
    discuss: list[str] = field(default_factory=list)
    projects: list[dict] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def exercise_min(self) -> int:
        return sum(ex.minutes for ex in self.exercises)

    @property
    def load_min(self) -> float:
        """A student's time on the chapter: reading, exercises and running it once."""
        return self.read_min + self.exercise_min + self.run_s / 60


def _goals(text: str) -> list[str]:
    m = GOALS.search(text)
    if not m:
        return []
    items, current = [], None
    for line in m["list"].split("\n"):
        if re.match(r"[ \t]*[*-] ", line):
            current = re.sub(r"^[ \t]*[*-] ", "", line).strip()
            items.append(current)
        elif line.strip() and items:
            items[-1] += " " + line.strip()
    return items


def read_chapters(book: Path) -> tuple[list[Chapter], list[str]]:
    """Every chapter of ``_toc.yml`` with what the planning pages need, and the problems found (empty: all well)."""
    found, problems, number = [], [], 0
    for caption, pages in course.parts(book):
        for path in pages:
            number += 1
            nb = course.read(path)
            first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
            ch = Chapter(path=path, number=number, part=caption, title=course.chapter_title(nb, path.stem))
            where = path.name
            ch.goals = _goals(first)
            if not ch.goals:
                problems.append(f"{where}: the first cell needs a '**Learning goals.**' list")
            m = PREREQ.search(first)
            if m:
                ch.prereq_text = " ".join(m["text"].split())
                ch.prereqs = list(dict.fromkeys(DOC.findall(ch.prereq_text)))
            else:
                problems.append(f"{where}: the first cell must end with a '**Prerequisites.**' paragraph")
            m = TIME.search(first)
            exs, ex_problems = course.exercises(path)
            problems += ex_problems
            ch.exercises = exs
            if m:
                ch.read_min, ch.run_s = int(m["read"]), int(m["run"])
                if " ".join(m["ex"].split()) != course.duration(exs):
                    problems.append(f"{where}: the exercises take {course.duration(exs)} by their time= fields, "
                                    f"not {m['ex']}")
            else:
                problems.append(f"{where}: the first cell must end with a '**Time.** About R min to read and E "
                                "for the exercises; the notebook runs in about S s on two CPU cores.' paragraph")
            meta = nb.metadata.get("course", {})
            ch.papers = list(meta.get("papers", []))
            ch.discuss = list(meta.get("discuss", []))
            ch.projects = [dict(p) for p in meta.get("projects", [])]
            if not ch.papers:
                problems.append(f"{where}: metadata.course.papers needs the key of at least one paper to read")
            if len(ch.discuss) < 2:
                problems.append(f"{where}: metadata.course.discuss needs at least two prompts")
            if not 1 <= len(ch.projects) <= 2:
                problems.append(f"{where}: metadata.course.projects needs one or two projects")
            for p in ch.projects:
                missing = [k for k in PROJECT_FIELDS if not str(p.get(k, "")).strip()]
                if missing:
                    problems.append(f"{where}: project {p.get('title', '?')!r} lacks {', '.join(missing)}")
                if p.get("size") not in SIZES:
                    problems.append(f"{where}: project {p.get('title', '?')!r}: size must be one of {SIZES}")
            found.append(ch)
    seen: set[str] = set()
    for ch in found:
        for stem in ch.prereqs:
            if stem not in seen:
                problems.append(f"{ch.path.name}: prerequisite {stem!r} is not an earlier chapter of _toc.yml")
        seen.add(ch.stem)
    return found, problems


# --- grouping chapters into weeks or days ---------------------------------------------------------------

def partition(loads: list[float], groups: int) -> list[list[int]]:
    """Split ``loads`` (in order) into at most ``groups`` consecutive, non-empty runs whose largest sum is as small
    as it can be (the linear partition problem, by dynamic programming). Returns the indices of each run."""
    n = len(loads)
    if n == 0:
        return []
    k = min(groups, n)
    prefix = [0.0]
    for x in loads:
        prefix.append(prefix[-1] + x)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]   # best[g][i]: first i items in g groups
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for g in range(1, k + 1):
        for i in range(g, n + 1):
            for j in range(g - 1, i):
                cost = max(best[g - 1][j], prefix[i] - prefix[j])
                if cost < best[g][i] - 1e-12:
                    best[g][i], cut[g][i] = cost, j
    runs, i = [], n
    for g in range(k, 0, -1):
        j = cut[g][i]
        runs.append(list(range(j, i)))
        i = j
    return runs[::-1]


def spread(chapters: list[Chapter], slots: int) -> list[list[tuple[Chapter, str]]]:
    """``slots`` consecutive slots (weeks) of (chapter, what) pairs. With fewer chapters than slots the heaviest
    chapters get a second slot (first: reading and conceptual exercises; second: code exercises and discussion);
    with more, consecutive chapters share a slot."""
    if len(chapters) >= slots:
        return [[(chapters[i], "all") for i in run] for run in partition([c.load_min for c in chapters], slots)]
    extra = slots - len(chapters)
    twice = set(sorted(range(len(chapters)), key=lambda i: (-chapters[i].load_min, i))[:extra])
    out: list[list[tuple[Chapter, str]]] = []
    for i, ch in enumerate(chapters):
        if i in twice:
            out += [[(ch, "first")], [(ch, "second")]]
        else:
            out.append([(ch, "all")])
    return out


def _exercises_for(ch: Chapter, what: str) -> list[course.Exercise]:
    if what == "first":
        return [ex for ex in ch.exercises if ex.kind == "conceptual"]
    if what == "second":
        return [ex for ex in ch.exercises if ex.kind == "code"]
    return ch.exercises


def _hours(minutes: float) -> str:
    return f"{minutes / 60:.1f}\u00a0h"


def _refs(exs: list[course.Exercise]) -> str:
    return ", ".join(f"{{ref}}`{ex.label}` ({ex.kind}, {ex.minutes}\u00a0min)" for ex in exs) or "—"


def _depth(ch: Chapter, by_stem: dict[str, Chapter]) -> int:
    return 1 + max((_depth(by_stem[s], by_stem) for s in ch.prereqs if s in by_stem), default=-1)


def capstone(chapters: list[Chapter], size: str) -> tuple[Chapter, dict] | None:
    """The project of the given size whose chapter builds on the most (deepest in the graph, then latest)."""
    by_stem = {c.stem: c for c in chapters}
    options = [(_depth(c, by_stem), c.number, c, p) for c in chapters for p in c.projects if p.get("size") == size]
    if not options:
        return None
    _, _, ch, project = max(options, key=lambda o: (o[0], o[1]))
    return ch, project


def _project_line(found: tuple[Chapter, dict] | None) -> str:
    if found is None:
        return "no project of that size is listed yet"
    ch, p = found
    return f"**{p['title']}** (from {{doc}}`{ch.stem}`; {{ref}}`project-{ch.stem}-{_slug(p['title'])}`)"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


def _papers(ch: Chapter) -> str:
    return " and ".join(f"{{cite:t}}`{key}`" for key in ch.papers)


def _prompts(ch: Chapter) -> str:
    return f"{{ref}}`prompts <discuss-{ch.stem}>` of chapter {ch.number}" if ch.discuss else "—"


# project milestones of the module, by week: choosing, proposing, then two weeks of work and the presentations
MILESTONES = {5: "choose a project from {doc}`projects`",
              8: "hand in a one-page proposal: goal, starting point, what success looks like"}


def module_plan(chapters: list[Chapter]) -> str:
    """A 13-week graduate module: 10 weeks of chapters, two of project work, one of presentations."""
    weeks = spread(chapters, 10)
    rows = ["| Week | Chapter | Read | Assign | Discuss | Project | Student hours |",
            "|--:|:--|:--|:--|:--|:--|--:|"]
    for w, slot in enumerate(weeks, 1):
        names, reading, assign, talk, load = [], [], [], [], 0.0
        for ch, what in slot:
            names.append(f"{ch.number}. {{doc}}`{ch.stem}`" + {"first": " (1/2)", "second": " (2/2)"}.get(what, ""))
            exs = _exercises_for(ch, what)
            if what in ("all", "first"):
                reading.append(f"the chapter ({ch.read_min}\u00a0min), run once")
                load += ch.read_min + ch.run_s / 60
            if what in ("all", "second"):
                reading.append(f"{_papers(ch)} (about {PAPER_MIN // 60}\u00a0h)")
                load += PAPER_MIN
                talk.append(_prompts(ch))
            assign.append(_refs(exs))
            load += sum(ex.minutes for ex in exs)
        rows.append(f"| {w} | {'<br>'.join(names)} | {'<br>'.join(reading)} | {'<br>'.join(assign)} | "
                    f"{'<br>'.join(talk) or 'the conceptual exercises, worked at the board'} | "
                    f"{MILESTONES.get(w, '')} | {_hours(load)} |")
    project = _project_line(capstone(chapters, "2-3 weeks"))
    start = len(weeks) + 1
    rows.append(f"| {start}–{start + 1} | Project | — | — | progress check-ins | {course.cell_text(project)}, or the "
                f"student's own choice | {_hours(2 * HOURS_PER_WEEK * 60)} |")
    rows.append(f"| {start + 2} | Presentations | — | — | each student presents what reproduced and what did not | "
                "report due | — |")
    return "\n".join(rows)


def course_plan(chapters: list[Chapter]) -> str:
    """A 5-day short course: four days of chapters (reading in the morning, exercises after lunch), a project day."""
    days = partition([c.load_min for c in chapters], 4)
    rows = ["| Day | Morning: chapters | Afternoon: exercises | Discussion | Student hours |", "|--:|:--|:--|:--|--:|"]
    for d, run in enumerate(days, 1):
        chs = [chapters[i] for i in run]
        exs = [ex for ch in chs for ex in ch.exercises if ex.kind == "code"]
        concept = [ex for ch in chs for ex in ch.exercises if ex.kind == "conceptual"]
        budget = 180 - sum(ex.minutes for ex in exs)
        for ex in sorted(concept, key=lambda e: e.minutes):
            if ex.minutes <= budget:
                exs.append(ex)
                budget -= ex.minutes
        load = sum(c.read_min + c.run_s / 60 for c in chs) + sum(ex.minutes for ex in exs)
        rows.append(f"| {d} | {'<br>'.join(f'{c.number}. {{doc}}`{c.stem}`' for c in chs)} | {_refs(exs)} | "
                    f"{'<br>'.join(_prompts(c) for c in chs)} | {_hours(load)} |")
    rows.append(f"| {len(days) + 1} | Project | {course.cell_text(_project_line(capstone(chapters, '1 day')))} | "
                "results and what did not reproduce, in five minutes each | 6.0\u00a0h |")
    return "\n".join(rows)


# --- the dependency graph ---------------------------------------------------------------------------------

def _needs(stem: str, by_stem: dict[str, Chapter]) -> set[str]:
    """Every chapter that ``stem`` needs, directly or through its prerequisites."""
    out: set[str] = set()
    for s in by_stem[stem].prereqs if stem in by_stem else []:
        out |= {s} | _needs(s, by_stem)
    return out


def reduced_prereqs(ch: Chapter, by_stem: dict[str, Chapter]) -> list[str]:
    """The prerequisites of ``ch`` that no other prerequisite already needs (the transitive reduction): the
    arrows worth drawing."""
    return [s for s in ch.prereqs if not any(s in _needs(o, by_stem) for o in ch.prereqs if o != s)]


def draw_graph(chapters: list[Chapter], target: Path) -> Path:
    """The chapters as boxes in columns by depth (a chapter sits right of everything it needs), arrows from
    prerequisite to chapter. Written as a PNG for the planning page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_stem = {c.stem: c for c in chapters}
    depth = {c.stem: _depth(c, by_stem) for c in chapters}
    columns: dict[int, list[Chapter]] = {}
    for c in chapters:
        columns.setdefault(depth[c.stem], []).append(c)
    rows = max((len(v) for v in columns.values()), default=1)
    fig, ax = plt.subplots(figsize=(2.6 * max(len(columns), 1) + 0.4, 0.9 * rows + 0.8), dpi=110, layout="none")
    pos: dict[str, tuple[float, float]] = {}
    for x, col in sorted(columns.items()):   # each column ordered by where its prerequisites sit (fewer crossings)
        col.sort(key=lambda c: (sum(pos[s][1] for s in c.prereqs if s in pos) / max(len(c.prereqs), 1), c.number),
                 reverse=True)
        for r, c in enumerate(col):
            pos[c.stem] = (x, (len(col) - 1) / 2 - r)
    boxes = {}
    for c in chapters:
        x, y = pos[c.stem]
        label = f"{c.number}. " + "\n".join(textwrap.wrap(c.title.split(":")[0], 22))
        boxes[c.stem] = ax.text(x, y, label, ha="center", va="center", fontsize=8, zorder=3,
                                bbox=dict(boxstyle="round,pad=0.4", fc="#EAF2FB", ec="#0072B2"))
    fig.canvas.draw()  # the boxes' patches get their size here, so arrows can stop at their edges
    for c in chapters:
        for s in reduced_prereqs(c, by_stem):
            if s in pos:
                skip = pos[c.stem][0] - pos[s][0] > 1
                ax.annotate("", xy=pos[c.stem], xytext=pos[s], zorder=4,
                            arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.0, shrinkA=2, shrinkB=3,
                                            mutation_scale=12,
                                            patchA=boxes[s].get_bbox_patch(), patchB=boxes[c.stem].get_bbox_patch(),
                                            connectionstyle=f"arc3,rad={-0.25 if skip else 0.0}"))
    ax.set_xlim(-0.6, max(len(columns) - 1, 0) + 0.6)
    ax.set_ylim(-rows / 2 - 0.2, rows / 2 + 0.2)
    ax.axis("off")
    ax.set_title("Each chapter builds on the chapters to its left (arrows: direct prerequisite → chapter)", fontsize=9)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, bbox_inches="tight")
    plt.close(fig)
    return target


# --- the pages ----------------------------------------------------------------------------------------------

def chapter_card(ch: Chapter) -> str:
    goals = "\n".join(f"  - {g}" for g in ch.goals)
    return (f"### {ch.number}. {ch.title}\n\n"
            f"{{doc}}`Open the chapter <{ch.stem}>` · {ch.part}\n\n"
            f"- **Prerequisites.** {ch.prereq_text}\n"
            f"- **Time.** {ch.read_min}\u00a0min to read, {course.duration(ch.exercises)} of exercises, "
            f"{ch.run_s}\u00a0s to run on two CPU cores.\n"
            f"- **Learning goals.**\n{goals}\n"
            f"- **Exercises.** {course.summary(ch.exercises)}: {_refs(ch.exercises)}.\n")


def planning_page(book: Path, chapters: list[Chapter]) -> str:
    edges = [f"{{doc}}`{s}` → {{doc}}`{c.stem}`" for c in chapters for s in c.prereqs]
    total_read = sum(c.read_min for c in chapters)
    total_ex = [ex for c in chapters for ex in c.exercises]
    discuss = "\n\n".join(
        f"(discuss-{c.stem})=\n### {c.number}. {c.title}\n\nBuilt on the chapter's section *What did not "
        f"reproduce*; the paper to read beside it: {_papers(c)}.\n\n"
        + "\n".join(f"{i}. {q}" for i, q in enumerate(c.discuss, 1)) for c in chapters)
    cards = "\n".join(chapter_card(c) for c in chapters)
    return f"""# Planning a course

% Generated by tools/planning.py from the chapters and _toc.yml every time the book is staged: do not edit.

This page is for an instructor planning a term or a short course. Everything on it is read from the chapters
themselves each time the book is built: their learning goals, the prerequisites and times stated at the top of each
chapter, their exercises and the discussion prompts and projects each chapter carries. The
{{doc}}`teaching` page lists every exercise in one table, and {{doc}}`projects` the project-sized assignments.

In all, the {len(chapters)} chapters take about {_hours(total_read)} of reading and {course.summary(total_ex)}.
The slowest runs in about {max((c.run_s for c in chapters), default=0)} s on two CPU cores at the default scale.

## How the chapters depend on each other

```{{figure}} {GRAPH}
:alt: The chapter dependency graph. {'; '.join(f'{s} before {c.stem}' for c in chapters for s in c.prereqs)}.
:width: 100%

The chapters' own prerequisites: an arrow runs from a chapter to one that uses it, and a chapter also needs
what its prerequisites need (arrows implied that way are left out). Chapters in the same column can be taught
in either order.
```

The edges, as links: {', '.join(edges) or 'none'}.

## A 13-week graduate module

Ten weeks of chapters, two weeks of project work and a week of presentations. Chapters keep the book's order; where
there are fewer chapters than weeks, the heaviest chapters get two weeks (the chapter and its conceptual exercises
first, then the paper, the code exercises and the discussion); where there are more, neighbouring chapters share a
week, grouped so that the heaviest week is as light as it can be. Student hours count reading the chapter and the
paper, running the notebook and the exercises, not lectures.

{module_plan(chapters)}

## A 5-day short course

Four days of chapters (reading and a lecture in the morning; the code exercises, then as many conceptual ones as fit
in three hours, after lunch) and a project day.

{course_plan(chapters)}

## Grading

- **Code exercises** are graded automatically: `make student` writes an nbgrader source course in which each code
  exercise is an autograded cell whose test is its self-check ({{doc}}`how-to-use` gives the workflow).
- **Conceptual exercises** are graded by hand. The collapsed solution under each one is the model answer: full marks
  for the right mechanism with the derivation, half for the right result without it.
- **A suggested weighting:** code exercises 30 %, conceptual exercises 20 %, discussion 10 %, project 40 %. A
  project is marked on its stated goal, on the evidence (a figure or a test for each claim) and on an honest
  account of what did not reproduce, the same standard the chapters hold themselves to.

## Discussion prompts

Each chapter ends with what did not reproduce. These prompts turn that section into a class discussion.

{discuss}

## The chapters at a glance

{cards}
## References

```{{bibliography}}
:filter: docname in docnames
```
"""


def projects_page(chapters: list[Chapter]) -> str:
    blocks = []
    for c in chapters:
        items = []
        for p in c.projects:
            items.append(f"(project-{c.stem}-{_slug(p['title'])})=\n### {p['title']}\n\n"
                         f"*{p['size']}* · from {{doc}}`{c.stem}`\n\n"
                         f"- **Goal.** {p['goal']}\n- **Starting point.** {p['start']}\n"
                         f"- **Success looks like.** {p['success']}\n")
        blocks.append(f"## {c.number}. {c.title}\n\n" + "\n".join(items))
    return ("# Projects\n\n% Generated by tools/planning.py from the chapters' metadata every time the book is "
            "staged: do not edit.\n\n"
            "Each chapter offers one or two project-sized assignments. Most start where the chapter's *What did not "
            "reproduce* section stops: the paper's full setting, a case the toy model leaves out, or a claim the "
            "chapter could not check. Each names its goal, where to start in `lessons_lib`, and what success "
            "looks like. Sizes: *1 day* fits the last day of a short course, *2-3 weeks* a module's project.\n\n"
            + "\n".join(blocks))


def write(stage: Path) -> list[Path]:
    book = stage / "book"
    chapters, problems = read_chapters(book)
    if problems:
        raise SystemExit("the chapters lack what the planning pages need:\n  " + "\n  ".join(problems))
    out = [draw_graph(chapters, book / GRAPH)]
    for key, text in (("book/planning", planning_page(book, chapters)), ("book/projects", projects_page(chapters))):
        target = book / PAGES[key]
        target.write_text(text)
        out.append(target)
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["lint"] and len(argv) <= 2:
        _, problems = read_chapters(Path(argv[1]) if len(argv) == 2 else course.ROOT / "book")
        print("\n".join(problems) or "the chapters have what the planning pages need")
        return 1 if problems else 0
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1])
        return 2
    for path in write(Path(argv[0])):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
