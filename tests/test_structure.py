"""Repository-wide rules: layout, stripped notebooks, import direction, labels, citations, pins, generated lists."""

import ast
import json
import pathlib
import re
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIB = ROOT / "lessons_lib"
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
import course  # noqa: E402  (tools/course.py: the generated lists of chapters)

# The layers of lessons_lib (its __init__ docstring): imports only go down.
CORE = {"backend", "run", "descent", "quadratic", "curvature", "landscapes", "schedules", "models", "measure",
        "distributed"}
PRESENTATION = {"plotting", "explore"}  # the only ones that may import matplotlib/ipywidgets; they import backend only
CHECK = "check"                         # exercise self-checks: may import core and topic modules
GUI = {"matplotlib", "ipywidgets"}


def layer(top: str) -> str:
    """The layer of a lessons_lib module, given its name inside the package (``stability``, ``check``)."""
    if top in CORE or top == "__init__":
        return "core"
    if top in PRESENTATION:
        return "presentation"
    return "check" if top == CHECK else "topic"


def imported(module: str, source: str, *, package: bool = False) -> tuple[set[str], set[str]]:
    """What ``source`` (the code of lessons_lib module ``module``, e.g. ``lessons_lib.check.core``) imports,
    anywhere in it (lazy imports inside functions too): the lessons_lib modules, by their top-level name
    inside the package (``stability``, ``check``), and the other top-level packages (``torch``)."""
    here = module.split(".") if package else module.split(".")[:-1]  # the package the module sits in
    local, other = set(), set()

    def add(dotted: str) -> None:
        parts = dotted.split(".")
        if parts[0] != "lessons_lib":
            other.add(parts[0])
        elif len(parts) > 1:
            local.add(parts[1])

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            if target == "lessons_lib" or (node.level and not node.module):
                for alias in node.names:  # from . import x / from lessons_lib import x: x is a module
                    add(f"{target}.{alias.name}")
            add(target)
    return local, other


def import_violations(module: str, source: str, *, package: bool = False) -> list[str]:
    """The import rule's violations in ``source``, the code of lessons_lib module ``module``.

    Topic modules import only the core; core modules import only the core; ``plotting``/``explore`` import only
    ``backend`` (and their own package); ``check`` imports core and topic modules. Only presentation imports
    matplotlib or ipywidgets.
    """
    own = module.split(".")[1] if module.count(".") else "__init__"
    kind = layer(own)
    local, other = imported(module, source, package=package)
    local.discard(own)  # a module of a subpackage (check.core, explore.live) may import its own package
    allowed = {"core": lambda m: layer(m) == "core",
               "topic": lambda m: layer(m) == "core",
               "presentation": lambda m: m == "backend",
               "check": lambda m: layer(m) in ("core", "topic")}[kind]
    found = [f"{module} ({kind}) imports {layer(m)} module {m}" for m in sorted(local) if not allowed(m)]
    if kind != "presentation":
        found += [f"{module} ({kind}) imports {g}" for g in sorted(other & GUI)]
    return found


def library_modules() -> list[tuple[str, pathlib.Path]]:
    """Every module of lessons_lib, subpackages included, as (dotted name, path)."""
    found = []
    for path in sorted(LIB.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def notebook_text(nb_path, kind=None) -> str:
    nb = json.loads(nb_path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if kind is None or c["cell_type"] == kind)


def test_layout_exists():
    for rel in ["README.md", "Makefile", "requirements.txt", "pyproject.toml", "_config.yml", "_toc.yml",
                ".ci/run", ".gitignore", "book/intro.md", "book/notation.md", "book/how-to-use.md",
                "book/references.bib", "book/bibliography.md", ".github/workflows/book.yml"]:
        assert (ROOT / rel).is_file(), rel


def test_notebooks_are_committed_without_outputs():
    assert NOTEBOOKS, "no chapters found"
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [], f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"


@pytest.mark.parametrize("module, path", library_modules(), ids=[m for m, _ in library_modules()])
def test_import_direction(module, path):
    assert not import_violations(module, path.read_text(), package=path.name == "__init__.py")


def test_every_layer_has_modules():
    layers = {layer(m.split(".")[1]) for m, _ in library_modules() if m.count(".")}
    assert layers == {"core", "topic", "presentation", "check"}, layers
    assert CORE <= {p.stem for p in LIB.glob("*.py")}, CORE - {p.stem for p in LIB.glob("*.py")}


@pytest.mark.parametrize("module, source, expected", [
    # planted violations: topic -> topic (every spelling, lazily too), topic -> check, core -> topic,
    # presentation -> topic, check -> presentation, GUI outside presentation
    ("lessons_lib.stability", "from . import drift", ["stability (topic) imports topic module drift"]),
    ("lessons_lib.stability", "from .drift import modified_flow", ["imports topic module drift"]),
    ("lessons_lib.stability", "import lessons_lib.drift", ["imports topic module drift"]),
    ("lessons_lib.stability", "from lessons_lib import run, drift", ["imports topic module drift"]),
    ("lessons_lib.stability", "def f():\n    from .saddles import x\n", ["imports topic module saddles"]),
    ("lessons_lib.stability", "from .check import compare", ["imports check module check"]),
    ("lessons_lib.run", "from .stability import x", ["run (core) imports topic module stability"]),
    ("lessons_lib.plotting", "from . import cbo", ["plotting (presentation) imports topic module cbo"]),
    ("lessons_lib.check.cbo", "from ..plotting import color", ["imports presentation module plotting"]),
    ("lessons_lib.wsd", "import matplotlib.pyplot as plt", ["wsd (topic) imports matplotlib"]),
    # allowed: topic -> core, check -> topic and core and itself, presentation -> backend
    ("lessons_lib.stability", "from . import run, models\nfrom .quadratic import gd_quadratic\nimport torch", []),
    ("lessons_lib.check.cbo", "from .. import cbo\nfrom .core import compare\nfrom lessons_lib import backend", []),
    ("lessons_lib.explore", "from .backend import static_build\nimport matplotlib", []),
])
def test_the_import_rule_catches_planted_imports(module, source, expected):
    found = import_violations(module, source, package=False)
    assert len(found) == len(expected), found
    for message, part in zip(found, expected):
        assert part in message, (message, part)


def test_the_package_declares_what_the_library_imports():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() for d in project["project"]["dependencies"]}
    dist = {"PIL": "pillow", "sklearn": "scikit-learn", "IPython": "ipython"}
    third_party = set()
    for module, path in library_modules():
        third_party |= imported(module, path.read_text(), package=path.name == "__init__.py")[1]
    third_party -= set(sys.stdlib_module_names) | {"lessons_lib", "__future__"}
    assert third_party and {dist.get(m, m).lower() for m in third_party} <= declared, (third_party, declared)
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["lessons_lib", "lessons_lib.*"]


def test_no_topic_module_imports_gui_at_runtime():  # a Python process importing every module: 2 s
    # the import-direction rule, checked on the imported modules too (catches indirect imports)
    import subprocess
    import sys

    topics = [p.stem for p in LIB.glob("*.py") if p.stem not in PRESENTATION | {"__init__"}]
    code = ("import sys\n" + "".join(f"import lessons_lib.{t}\n" for t in topics)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'ipywidgets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_equation_labels_cited_in_the_library_exist_in_the_book():
    defined = set()
    for path in list(BOOK.glob("*.md")) + NOTEBOOKS:
        text = path.read_text() if path.suffix == ".md" else notebook_text(path, "markdown")
        defined.update(re.findall(r"\$\$\s*\((eq-[a-z0-9-]+)\)", text))
    cited = set()
    for path in LIB.rglob("*.py"):
        cited.update(re.findall(r"\b(eq-[a-z0-9]+(?:-[a-z0-9]+)+)\b", path.read_text()))
    assert cited, "the library cites no equation labels"
    assert cited <= defined, f"labels cited in lessons_lib but not defined in book/: {sorted(cited - defined)}"


def test_every_chapter_follows_the_house_order():
    for path in NOTEBOOKS:
        text = notebook_text(path)
        marks = ["Learning goals", "$$", "explore(", "## What did not reproduce", "## Summary", "## Exercises",
                 "### BEGIN SOLUTION", "## References"]
        positions = [text.find(m) for m in marks]
        assert all(p >= 0 for p in positions), f"{path.name} misses {[m for m, p in zip(marks, positions) if p < 0]}"
        assert positions == sorted(positions), f"{path.name}: sections out of order"
        assert re.search(r"```\{exercise\}", text) and re.search(r"```\{solution\}", text)
        assert "check." in text.split("### END SOLUTION", 1)[1], f"{path.name}: code exercise without self-check"


# words that point at something a reader of the book cannot see: the project's own files and process
UNRESOLVABLE = re.compile(r"\bthe brief\b|\bthe issue\b|\bissue #\d+|\bthe tests\b|\bcalibration runs?\b|"
                          r"\bthe chapter's budget\b|\bpreliminary study\b", re.I)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapters_speak_only_of_what_a_reader_can_see(path):
    found = sorted({m.group(0) for m in UNRESOLVABLE.finditer(notebook_text(path, "markdown"))})
    assert not found, f"{path.name} says {found}: say what was measured instead"


def test_the_unresolvable_words_rule_catches_them():
    assert UNRESOLVABLE.search("as in the brief") and UNRESOLVABLE.search("our calibration runs showed")
    assert not UNRESOLVABLE.search("the test error and the briefest run")


def explorer_prompts(nb: dict) -> list[tuple[int, str]]:
    """(cell index, the markdown just before it) for every code cell that calls ``explore(``."""
    found, last_md = [], ""
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            last_md = source
        elif re.search(r"\bexplore\(", source):
            found.append((i, last_md))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_explorer_has_a_predict_then_move_prompt(path):
    prompts = explorer_prompts(json.loads(path.read_text()))
    assert prompts, f"{path.name} has no explorer"
    missing = [i for i, md in prompts if not re.search(r"\bpredict", md, re.I)]
    assert not missing, f"{path.name}: the markdown before the explorer in cell(s) {missing} asks for no prediction"


def test_toc_lists_every_page_and_only_existing_ones():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc["parts"]:
        files.update(ch["file"] for ch in part["chapters"])
    on_disk = {f"book/{p.stem}" for p in BOOK.iterdir() if p.suffix in (".md", ".ipynb")}
    # pages that tools/course.py and tools/planning.py write into _stage at build time (generated from the notebooks,
    # so they cannot go stale); tests/test_course.py and test_planning.py check that they are generated
    generated = {"book/teaching", "book/planning", "book/projects"}
    assert files == on_disk | generated and not on_disk & generated
    assert any(part.get("numbered") for part in toc["parts"])


def test_bibliography_has_every_paper_and_every_citation():
    import pybtex.database

    bib_text = (BOOK / "references.bib").read_text()
    papers = [int(n) for n in re.findall(r"^% paper (\d+)$", bib_text, re.M)]
    assert sorted(papers) == list(range(1, 31))
    bib = pybtex.database.parse_string(bib_text, "bibtex")
    for key, entry in bib.entries.items():
        assert entry.persons.get("author"), key
        assert entry.fields.get("title") and entry.fields.get("year"), key
    cited = set()
    for path in list(BOOK.glob("*.md")) + NOTEBOOKS:
        for group in re.findall(r"\{cite(?::[pt])?\}`([^`]+)`", path.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= set(bib.entries), sorted(cited - set(bib.entries))


def test_requirements_are_pinned():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert "torch==2.13.0" in lines
    assert "-e ." in lines
    for ln in lines:
        assert ln == "-e ." or "==" in ln, f"unpinned requirement: {ln}"
    jb = [ln for ln in lines if ln.lower().startswith("jupyter-book")]
    assert jb and jb[0].split("==")[1].startswith("1.")


def test_ci_runs_make_test_and_workflow_has_gpu_job():
    assert "make test" in (ROOT / ".ci/run").read_text()
    wf = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())
    jobs = wf["jobs"]
    cpu = [j for j in jobs.values() if any("make test" in s.get("run", "") for s in j["steps"])]
    gpu = [j for j in jobs.values() if "gpu" in json.dumps(j.get("runs-on"))]
    assert cpu and gpu
    gpu_runs = " ".join(s.get("run", "") for s in gpu[0]["steps"])
    assert "nvidia-smi" in gpu_runs and "LESSONS_SCALE=full" in json.dumps(gpu[0]) + gpu_runs
    assert ("LESSONS_DEVICE=cuda" in json.dumps(gpu[0]) + gpu_runs
            or gpu[0].get("env", {}).get("LESSONS_DEVICE") == "cuda")


def test_readme_lists_are_generated_from_the_toc():
    text = (ROOT / "README.md").read_text()
    stale = "README.md's lists are stale: run python tools/course.py readme"
    assert text == course.readme_with_lists(text, BOOK), stale
    for _, pages in course.parts(BOOK):
        for path in pages:
            assert f"`book/{path.name}`" in text


def test_intro_lists_every_chapter_when_staged(tmp_path):
    intro = (BOOK / "intro.md").read_text()
    assert intro.count(course.INTRO_MARK) == 1
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text(intro)
    (tmp_path / "_toc.yml").write_text((ROOT / "_toc.yml").read_text())
    for path in NOTEBOOKS:
        (tmp_path / "book" / path.name).write_text(path.read_text())
    staged = course.write_intro(tmp_path).read_text()
    assert course.INTRO_MARK not in staged
    chapters = [p.stem for _, pages in course.parts(BOOK) for p in pages]
    links = re.findall(r"^(\d+)\. \{doc\}`([\w-]+)`$", staged, re.M)
    assert [stem for _, stem in links] == chapters and [int(n) for n, _ in links] == list(range(1, len(chapters) + 1))
    for caption, _ in course.parts(BOOK):
        assert f"**{caption}**" in staged


def test_chapters_are_the_numbered_parts_of_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    numbered = [ch["file"] for part in toc["parts"] if part.get("numbered") for ch in part["chapters"]]
    assert sorted(numbered) == sorted(f"book/{p.stem}" for p in NOTEBOOKS), "every notebook is a chapter in a part"
    assert all(part.get("caption", "").startswith("Part ") for part in toc["parts"] if part.get("numbered"))
