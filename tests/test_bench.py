"""The benchmark harness keeps working: `make bench` on one chapter with a tiny grid, and the Jupyter-free
notebook runner that benchmarks/gpu_check.sh relies on. The numbers themselves are not asserted (this is
not a timed test); that every table is there and holds numbers is. The bench run takes 17-40 s, so it is
marked slow (make slow, part of make test, runs it)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUM = r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"
CHAPTER = "learning-rate-and-curvature"

# Simulates the GPU box: importing anything Jupyter raises, as if it were not installed.
NO_JUPYTER = """
import sys
BLOCK = {"IPython", "ipywidgets", "ipykernel", "nbformat", "nbclient", "jupyter_client", "jupyter_core",
         "comm", "matplotlib_inline"}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Block())
"""


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"results.md has no '## {title}' section"
    return m.group(1)


def row(body: str, first: str) -> list[str]:
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].strip("`*") == first:
            return cells
    raise AssertionError(f"no table row starting with {first!r} in:\n{body}")


@pytest.mark.slow
def test_make_bench_tiny_on_one_chapter(tmp_path):
    out = tmp_path / "results.md"
    args = f"--chapters {CHAPTER} --tiny --out {out}"
    if shutil.which("make") and (ROOT / ".venv" / "bin" / "python").exists():
        cmd = ["make", "-s", "-o", ".venv/.installed", "bench", f"BENCH_ARGS={args}"]
    else:  # no make or no .venv: the same harness, called directly
        cmd = [sys.executable, "benchmarks/bench.py", *args.split()]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "LESSONS_DEVICE": "cpu"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = out.read_text()

    header = text.split("\n## ", 1)[0]
    for key in ("**CPU:**", "**torch:**", "**device:** cpu"):
        assert key in header

    chapters = row(section(text, "Chapter execution time"), CHAPTER)
    assert re.fullmatch(NUM, chapters[1]) and float(chapters[1]) > 0 and chapters[-1] == "ok", chapters
    assert re.fullmatch(NUM, row(section(text, "Chapter execution time"), "total")[1].strip("*"))

    lat = row(section(text, "Explorer latency"), CHAPTER)
    assert lat[1] == "`draw_parabola`" and int(lat[3]) >= 2
    assert all(re.fullmatch(NUM, c) for c in lat[4:10]), lat  # warm and cold median and p95, in draw, warm-up
    assert lat[-1] in ("meets", "**misses**")
    assert "Slowest first visits (cold p95): " in section(text, "Explorer latency")

    weight = section(text, "Static weight")
    if (ROOT / "_build" / "html" / "book" / f"{CHAPTER}.html").is_file():
        w = row(weight, CHAPTER)
        assert re.fullmatch(NUM, w[3]) and re.match(r"\d+ \(\d+\)", w[4]), w  # MB, frames (distinct)
    else:
        assert "make book" in weight

    assert "Skipped" in section(text, "Build")

    curv = section(text, "Peers: sharpness and Hessian trace against a dense Hessian")
    r = row(curv, "101")
    assert all(re.fullmatch(NUM, c) for c in r[1:7]), r
    assert float(r[6]) < 1e-6  # Lanczos agrees with eigvalsh
    assert "**Crossover:**" in curv

    cbo = section(text, "Peers: CBO against cbx")
    if (ROOT / "benchmarks" / "cbo_vs_cbx.py").is_file():
        assert re.fullmatch(NUM, row(cbo, "lessons_lib.cbo")[1]), cbo
    else:
        assert "not there yet" in cbo

    scaling = section(text, "Scaling")
    slope = row(scaling, "sharpness (Lanczos)")
    assert re.fullmatch(r"-?" + NUM, slope[1]), slope
    assert (tmp_path / "results-curvature.png").read_bytes()[:4] == b"\x89PNG"


NOTEBOOK_CELLS = [
    "%matplotlib inline\nimport matplotlib.pyplot as plt\nfrom lessons_lib.explore import explore, linear\nx = 2",
    "fig, ax = plt.subplots()\nax.plot([0, x])\nplt.show()",
    "def draw(a):\n    fig, ax = plt.subplots()\n    ax.plot([0, a])\n    return fig\n\n"
    "explore(draw, a=linear(0, 1, 3))",
    "from IPython.display import display, HTML\ndisplay(HTML('<b>ok</b>'))\nx + 1",
]


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None}
                    for c in cells] + [{"cell_type": "markdown", "metadata": {}, "source": "# end"}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def run_inprocess(nb: Path, tmp_path: Path, setup: str = "", **env) -> dict:
    (tmp_path / "block").mkdir(exist_ok=True)
    (tmp_path / "block" / "sitecustomize.py").write_text(NO_JUPYTER)
    out = tmp_path / f"{nb.stem}.json"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "block"), str(ROOT)]),
               "LESSONS_STATIC": "1", **env}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "runner.py"), str(nb), "--executor", "auto",
                           "--json", str(out), "--setup", setup],
                          capture_output=True, text=True, timeout=120, env=environ)
    result = json.loads(out.read_text())
    assert (proc.returncode == 0) == result["ok"]
    return result


def test_runner_executes_notebooks_without_jupyter(tmp_path):
    lat = tmp_path / "lat.jsonl"
    setup = (f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import latency; "
             f"latency.install({str(lat)!r})")
    result = run_inprocess(write_notebook(tmp_path / "ok.ipynb", NOTEBOOK_CELLS), tmp_path, setup=setup)
    assert result["ok"], result
    assert result["executor"] == "inprocess" and len(result["cells"]) == 4
    rec = json.loads(lat.read_text())  # the explorer, shown as a cell's value, was measured through the hook
    assert rec["draw"] == "draw" and rec["points"] == 3 and not rec["refresh"]
    assert len(rec["warm_s"]) == len(rec["cold_s"]) == len(rec["draw_s"]) == 3 and rec["warmup_s"] > 0

    broken = write_notebook(tmp_path / "broken.ipynb", ["y = 1", "y / 0", "raise SystemExit('not reached')"])
    result = run_inprocess(broken, tmp_path)
    assert not result["ok"] and result["error"].startswith("code cell 1 (y / 0): ZeroDivisionError")
    assert len(result["cells"]) == 2


def test_latency_measures_cold_warm_and_warm_up_through_the_display_hook(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import latency
    import matplotlib.pyplot as plt

    from lessons_lib import explore

    calls = []

    def draw(a):
        calls.append(a)
        fig, ax = plt.subplots()
        ax.plot([0, a])
        return fig

    e = explore.explore(draw, a=explore.linear(0, 1, 4))
    rec = latency.measure(e)
    assert rec["points"] == rec["grid"] == 4 and not rec["refresh"] and rec["draw"] == "draw"
    assert len(calls) == 8  # the warm-up and the cold pass draw every point; the warm pass draws none
    assert max(rec["warm_s"]) < min(rec["cold_s"])  # a cached frame is a lookup
    assert latency.measure(e, max_points=2)["points"] == 2
    path = tmp_path / "lat.jsonl"
    latency.install(path)
    try:
        e._repr_mimebundle_()  # a live display: the refresh of the Image widget is timed too
    finally:
        explore._HOOKS.clear()
    live = json.loads(path.read_text())
    assert live["refresh"] and live["points"] == 4


def test_a_run_of_some_sections_keeps_the_others_in_their_place(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench

    out = tmp_path / "results.md"
    bench.write(out, ["- first run"], {"chapters": "T1", "latency": "L1"})
    (out.open("a")).write("## Mutation score\n\nM1\n")  # written by another tool
    bench.write(out, ["- second run"], {"latency": "L2"})
    found = bench.sections(out.read_text())
    assert found == [("Chapter execution time", "T1"), ("Explorer latency", "L2"), ("Mutation score", "M1")]
    assert "kept from the previous results file" in out.read_text() and "second run" in out.read_text()

