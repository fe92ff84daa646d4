"""Repository-wide rules: layout, stripped notebooks, import direction, labels, citations, pins."""

import ast
import json
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIB = ROOT / "lessons_lib"
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
PRESENTATION = {"plotting", "explore"}  # may import matplotlib/ipywidgets, never topic modules
CORE = {"__init__", "backend", "curvature", "descent"}


def module_imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            names.add(base)
            if node.level and not node.module:
                names.update("." + a.name for a in node.names)
    return names


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


@pytest.mark.parametrize("path", sorted(LIB.glob("*.py")), ids=lambda p: p.name)
def test_import_direction(path):
    imports = module_imports(path)
    name = path.stem
    if name in PRESENTATION:
        local = {i.lstrip(".").split(".")[0] for i in imports if i.startswith(".")}
        assert local <= {"backend"}, f"{name} imports topic modules {local - {'backend'}}"
    else:
        gui = {i for i in imports if i.split(".")[0] in ("matplotlib", "ipywidgets")}
        assert not gui, f"topic module {name} imports {gui}"


def test_no_topic_module_imports_gui_at_runtime():
    # the import-direction rule, checked on the imported modules too (catches indirect imports)
    import subprocess
    import sys

    topics = [p.stem for p in LIB.glob("*.py") if p.stem not in PRESENTATION | {"__init__", "check"}]
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
    for path in LIB.glob("*.py"):
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


def test_toc_lists_every_page_and_only_existing_ones():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {toc["root"]}
    for part in toc["parts"]:
        files.update(ch["file"] for ch in part["chapters"])
    on_disk = {f"book/{p.stem}" for p in BOOK.iterdir() if p.suffix in (".md", ".ipynb")}
    # pages that tools/course.py writes into _stage at build time (generated from the notebooks, so they
    # cannot go stale); tests/test_course.py checks that they are generated and never committed
    generated = {"book/teaching"}
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
    assert "LESSONS_DEVICE=cuda" in json.dumps(gpu[0]) + gpu_runs or gpu[0].get("env", {}).get("LESSONS_DEVICE") == "cuda"
