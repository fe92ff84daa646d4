"""Real autograding: nbgrader's own pipeline, with its gradebook, on the course that `make student` writes.

Per chapter (parametrised, so `pytest -n 2` grades two chapters at once; each has its own temporary course
and gradebook), the test runs what an instructor runs:

1. ``nbgrader generate_assignment`` on the chapter's source notebook (tools/course.py write_nbgrader);
2. submissions copied from the release. Every chapter gets *wrong*: each code exercise holds a typical mistake
   (:data:`TYPICAL_MISTAKES` below, or :func:`mistaken`'s spoilt solution for a self-check not listed there),
   and each written answer the instructor's solution. :data:`FULL_RUN`, one chapter, also gets *solutions*
   (every answer cell holds the instructor's solution) and *blank* (the release as handed out);
3. ``nbgrader autograde`` (every submitted notebook executed, all of it: no chapter is skipped);
4. the grader gives each written answer full marks in the gradebook, as a person would in formgrader;
5. ``nbgrader export`` to CSV.

Then: a wrong submission loses exactly the points of the code exercises (their self-checks say "wrong", not a
crash), keeps the rest, and runs without an error outside the exercise cells; the solutions score full marks on
every grade cell; the blank submission scores zero; the CSV's totals say the same. Without the course
requirements (nbgrader) the whole module is skipped.

Why one submission per chapter, not three: the other two are each already run on every chapter elsewhere, at the
price of a whole execution per chapter. The solutions are the instructor's notebooks, which ``make execute`` runs
and whose self-checks tests/test_course.py requires to say *correct*; the blank release is the student notebook
(the same ClearSolutions stubs), which test_course runs to check the stubs say *not attempted* and nothing else
fails. What nbgrader itself adds, the grading of each kind of submission, is the same for every chapter and is
checked on :data:`FULL_RUN`. The wrong submission is the one that needs every chapter: its typical mistake is
chapter by chapter, and it runs the whole chapter under nbgrader's executor (a cell timeout, the course's own
``lessons_lib``).

Run time (2 cores, `-n 2`): generate about 15 s, autograde 10-60 s per chapter; about 4 minutes in all.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest

pytest.importorskip("nbgrader")

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))
BIN = pathlib.Path(sys.executable).parent

_spec = importlib.util.spec_from_file_location("course", ROOT / "tools" / "course.py")
course = sys.modules.setdefault("course", importlib.util.module_from_spec(_spec))
if not hasattr(course, "write_nbgrader"):
    _spec.loader.exec_module(course)

pytestmark = [pytest.mark.course, pytest.mark.slow]

# the chapter graded with all three submissions (solutions, blank, wrong): the quickest to execute
FULL_RUN = "learning-rate-and-curvature"
SOLUTION = "<SOLUTION>"  # in a mistake: the solution's own lines, which the mistake then spoils
# A typical mistake for each self-check: the lines that replace the solution lines between the markers
# (indented as they are). Written from the solution where possible, so an edited exercise keeps its mistake.
TYPICAL_MISTAKES = {
    "critical_lr": f"{SOLUTION}\nanswer = answer / 2  # 1/a: the rate that jumps to the minimum, not the limit",
    "gd_iterates": "xs = [x0]\nfor _ in range(steps):\n    xs.append(xs[-1] - lr * xs[-1])  # forgot the curvature a\n"
                   "return xs",
    "largest_stable_lr": f"{SOLUTION}\nanswer = 2 / float(torch.linalg.eigvalsh(H_ex)[0])  # the flattest direction",
    "principal_coefficient": f"{SOLUTION}\nanswer = complex(answer).real  # log |1 - h lambda|: the phase dropped",
    "curl_lambda_min": f"{SOLUTION}\nanswer = -answer  # the sign of K's eigenvalue flipped",
    # a function of the solution's lines where the mistake sits inside them
    "curl_stability_matrix": lambda sol: sol.replace("return first + second",
                                                     "return first + W1.T @ W1  # the hidden signs D2 forgotten"),
    "drop_step": f"{SOLUTION}\nanswer = math.log(1.5 / eps**2 - 1) / (2 * lr * 1.5)  # mode 2's strength",
    "best_decay_fraction": f"{SOLUTION}\nanswer = max(fractions)  # 'the longer the decay, the better'",
    "gamma_search": lambda sol: sol.replace("return x_plus, 2 * gamma", "return x_plus, gamma  # gamma not doubled"),
    "sinkhorn_sweep": lambda sol: sol.replace("eta * (x_new[:, None] - C)", "eta * (x[:, None] - C)"),  # old x
    "upper_step": lambda sol: sol.replace("m_new.norm(dim=-1, keepdim=True)", "m_new.norm()  # one norm for the batch"),
    "ihvp": lambda sol: sol.replace("denom.append(m + g @ v)", "denom.append(1 + g @ v)  # the 1/m weight forgotten"),
    "capped_step": lambda sol: sol.replace("(a.amax(-1) - a.amin(-1)).max()", "(a.amax(-1) - a.amin(-1)).mean()"),
    "spherical_step": lambda sol: sol.replace("lr * tangent(grad)", "lr * grad"),  # the gradient not projected
    "lm_correct": lambda sol: sol.replace("return d * eps.norm(dim=-1, keepdim=True) / d.norm(dim=-1, keepdim=True)",
                                          "return d  # each row's length not restored"),
    "sliding_prox": lambda sol: sol.replace("(beta * (1 + p) + mu)", "(beta * (1 + p))  # chi forgotten"),
    "one_loop_step": lambda sol: sol.replace("lam + eta * (", "lam - eta * ("),  # descent on the multiplier
    "msvr_step": lambda sol: sol.replace("(alpha + gamma) * h_new - gamma * h_old",
                                         "alpha * h_new  # the correction gamma * (h_new - h_old) dropped"),
    "dropmuon_update": lambda sol: sol.replace("M = momentum * M + (1 - momentum) * G",
                                               "M = momentum * M + G  # a sum, not Muon's average"),
    "least_squares_backward": lambda sol: sol.replace(
        "return -(torch.outer(r, lam) + torch.outer(A_lam, omega)), A_lam",
        "return -torch.outer(A_lam, omega), A_lam  # the shortcut: the term in r dropped"),
    "dadao_event": lambda sol: sol.replace("dadao.flow(state, tau, params)  # advance lazily to the event's time",
                                           "state  # the flow before the event forgotten"),
    "capo_hessian": lambda sol: sol.replace("return A * (vu**2 - uFu)", "return A * vu**2  # the Fisher part only"),
    "igt_direction": "return (1 - eta) * d_prev + eta * grad(theta)  # sampled at theta_t: no transport",
    "stable_consensus_point": "w = torch.exp(-alpha * fX)  # not shifted: overflows or underflows\n"
                              "return (w[:, None] * X).sum(0) / w.sum()",
    "two_point": lambda sol: sol.replace("/ (2 * sigma)", "/ sigma  # the central difference spans 2 sigma"),
    "plan_and_barycentre": lambda sol: sol.replace("W = torch.softmax(-C / eps, dim=-1)",
                                                   "W = torch.softmax(C / eps, dim=-1)  # favours the highest cost"),
    "reste_backward": lambda sol: sol.replace(
        "return grad_output * torch.where(a <= t, slope, torch.zeros_like(x))",
        "return grad_output * slope  # no cut-off beyond t"),
    "cauchy_mean": "if n_points == 1:\n    return (f(beta) - f(0.0)) / beta\n"
                   "zs = [beta * cmath.exp(2j * math.pi * k / n_points) for k in range(n_points)]\n"
                   "return sum(f(z) / z for z in zs).real  # summed over the nudges, not averaged",
    "sam_forget_gradient": lambda sol: sol.replace(
        "return grad_fn(theta + rho * g / g.norm())",
        "return grad_fn(theta - rho * g / g.norm())  # perturbed downhill"),
    "min_and_wc_acc": lambda sol: sol.replace("acc[task_of_eval > i, i]", "acc[task_of_eval >= i, i]"),
    "relu_grad_interval": "zero = torch.zeros_like(g_lo)\nactive = (lo + hi) / 2 >= 0  # the midpoint decides: "
                          "unstable neurons treated as stable\nreturn torch.where(active, g_lo, zero), "
                          "torch.where(active, g_hi, zero)",
    "jvp_penalty": lambda sol: sol.replace("/ u.shape[-1]", ""),  # forgot to divide by n
    "conjugate_gradients": "x = x0.clone()\nfor _ in range(steps):\n    r = b - A @ x\n"
                           "    x = x + (r @ r) / (r @ A @ r) * r  # steepest descent: no conjugate directions\n"
                           "return x",
}


def read(path):
    return nbformat.read(path, as_version=4)


def nbgrader(course_dir: pathlib.Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    env.pop("LESSONS_STATIC", None)
    env["LESSONS_WARM"] = "0"  # autograde runs live explorers that nobody moves: no idle-time warm-up of their grids
    run = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course_dir, env=env, capture_output=True, text=True,
                         timeout=1800)
    log = run.stdout + run.stderr
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{log[-4000:]}"
    assert "[ERROR]" not in log, log[-4000:]
    return log


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def split_solution(source: str) -> tuple[list[str], str, list[str], list[str]]:
    """(lines before BEGIN, BEGIN's indentation, the solution lines, lines after END) of a solution cell."""
    lines = source.split("\n")
    begin = next(i for i, ln in enumerate(lines) if course.BEGIN in ln)
    end = next(i for i, ln in enumerate(lines) if course.END in ln)
    indent = lines[begin][:len(lines[begin]) - len(lines[begin].lstrip())]
    return lines[:begin], indent, lines[begin + 1:end], lines[end + 1:]


def solved(source: str) -> str:
    """The instructor's solution as a student would hand it in: the cell without the marker lines."""
    return "\n".join(ln for ln in source.split("\n") if course.BEGIN not in ln and course.END not in ln)


def mistaken(source: str, check_name: str) -> str:
    """The solution cell ``source`` with a typical mistake in place of its solution lines.

    A self-check without an entry in :data:`TYPICAL_MISTAKES` gets the solution spoilt: a value becomes
    ``2 * value + 1``; a function's body runs as before and returns twice its result plus one.
    """
    before, indent, lines, after = split_solution(source)
    sol = "\n".join(ln[len(indent):] if ln.startswith(indent) else ln for ln in lines)
    mistake = TYPICAL_MISTAKES.get(check_name)
    if callable(mistake):
        mistake = mistake(sol)
        assert mistake != sol, f"the typical mistake for {check_name} no longer matches its solution"
    elif mistake is not None:
        mistake = mistake.replace(SOLUTION, sol)
    elif indent:  # the body of a function
        mistake = ("def _right():\n" + textwrap.indent(sol, "    ") +
                   "\nimport numpy as _np\nreturn 2 * _np.asarray(_right(), dtype=float) + 1")
    else:
        names = [m[1] for ln in before if (m := re.match(r"^([A-Za-z_]\w*)\s*=", ln))]
        assert names, f"no placeholder before {course.BEGIN} to spoil: {before}"
        mistake = f"{sol}\n{names[-1]} = 2 * {names[-1]} + 1"
    return "\n".join(before + [indent + ln if ln else ln for ln in mistake.split("\n")] + after)


def check_of(nb, grade_id: str) -> str:
    """The self-check a test cell calls."""
    cell = next(c for c in nb.cells if meta(c).get("grade_id") == grade_id)
    return course.CHECK_CALL.search(cell.source)["name"]


def submit(course_dir: pathlib.Path, stem: str, student: str, source_nb, how: str) -> None:
    folder = course_dir / "submitted" / student / stem
    shutil.copytree(course_dir / "release" / stem, folder)
    nb = read(folder / f"{stem}.ipynb")
    answers = {meta(c)["grade_id"]: c for c in source_nb.cells if meta(c).get("solution")}
    for cell in nb.cells:
        grade_id = meta(cell).get("grade_id")
        if not meta(cell).get("solution") or how == "blank":
            continue
        original = answers[grade_id].source
        if cell.cell_type == "markdown" or how == "solutions":
            cell.source = solved(original)
        else:
            check_id = grade_id.replace("-answer", "-check", 1)
            cell.source = solved(mistaken(original, check_of(source_nb, check_id)))
    nbformat.write(nb, folder / f"{stem}.ipynb")


def said(cell) -> str:
    """What a cell showed, without its stderr (a warning a wrong answer raises comes before the verdict)."""
    return "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("name") != "stderr")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_nbgrader_generate_autograde_and_export(tmp_path, path):
    from nbgrader.api import Gradebook

    stem, course_dir = path.stem, tmp_path / "course"
    course.write_nbgrader(BOOK, course_dir, only=[stem])
    source_nb = read(course_dir / "source" / stem / f"{stem}.ipynb")
    cells = {gid: m["points"] for gid, m in course.grade_cells(source_nb).items()}
    code = {gid: p for gid, p in cells.items() if not course.grade_cells(source_nb)[gid]["solution"]}
    manual = {gid: p for gid, p in cells.items() if gid not in code}
    exs = course.exercises(path)[0]
    assert code and all(p > 0 for p in cells.values())
    assert {ex.label for ex in exs} == {gid.rsplit("-", 1)[0] for gid in manual} | {
        re.sub(r"-check(-\d+)?$", "", gid) for gid in code}, "every exercise has its grade cell"
    assert sum(cells.values()) == sum(ex.minutes for ex in exs)  # one point per minute

    nbgrader(course_dir, "generate_assignment", stem)
    release = read(course_dir / "release" / stem / f"{stem}.ipynb")
    text = "\n".join(c.source for c in release.cells)
    assert course.BEGIN not in text and "{solution}" not in text and "% teaching:" not in text
    public = {ln.strip() for c in source_nb.cells if not meta(c).get("solution") for ln in c.source.split("\n")}
    for c in source_nb.cells:
        if meta(c).get("solution"):
            hidden = split_solution(c.source)[2] if c.cell_type == "code" else c.source.split("\n")
            for line in {ln.strip() for ln in hidden} - public:
                assert len(line) < 12 or line not in text, f"a solution line in the release: {line}"

    students = {"wrong": "wrong"}
    if stem == FULL_RUN:
        students = {"solutions": "solutions", "blank": "blank", **students}
    for student, how in students.items():
        submit(course_dir, stem, student, source_nb, how)
    nbgrader(course_dir, "autograde", stem)

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        scores = {}
        for student in students:
            grades = {gid: gb.find_grade(gid, stem, stem, student) for gid in cells}
            scores[student] = {gid: g.score for gid, g in grades.items()}
            for gid in code:
                assert not grades[gid].needs_manual_grade, (student, gid)
            for gid in manual:  # an answer written in needs a person; an untouched one is zero
                assert grades[gid].needs_manual_grade is (student != "blank"), (student, gid)
                if student != "blank":
                    grades[gid].manual_score = grades[gid].max_score  # the grader agrees with the solution
            gb.db.commit()
        final = {s: {gid: gb.find_grade(gid, stem, stem, s).score for gid in cells} for s in students}

    assert final["wrong"] == {**cells, **{gid: 0 for gid in code}}, "the wrong answers must lose exactly their points"
    if "solutions" in students:
        assert {gid: final["solutions"][gid] for gid in code} == code, "the solutions lose autograded points"
        assert final["solutions"] == cells
        assert scores["solutions"] == {**cells, **{gid: 0 for gid in manual}}  # before the grader's marks
    if "blank" in students:
        assert all(v == 0 for v in final["blank"].values()), final["blank"]

    graded = {s: read(course_dir / "autograded" / s / stem / f"{stem}.ipynb") for s in students}
    for student, nb in graded.items():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            errors = [o.ename for o in cell.outputs if o.output_type == "error"]
            gid = meta(cell).get("grade_id")
            if gid in code:
                verdict = {"solutions": "✓ correct", "blank": "… not attempted", "wrong": "✗ wrong"}[student]
                assert said(cell).startswith(verdict), (student, gid, said(cell))
                assert errors == ([] if student == "solutions" else ["AssertionError"]), (student, gid, errors)
            elif meta(cell).get("solution") and student == "blank":
                assert errors in ([], ["NotImplementedError"]), (student, gid, errors)
            else:
                assert not errors, (student, i, cell.source, errors)

    nbgrader(course_dir, "export", "--to", str(tmp_path / "grades.csv"))
    rows = {r["student_id"]: r for r in csv.DictReader((tmp_path / "grades.csv").open())}
    total = sum(cells.values())
    assert set(rows) == set(students) and all(r["assignment"] == stem for r in rows.values())
    expected = {"solutions": (total, total), "blank": (0.0, total), "wrong": (total - sum(code.values()), total)}
    assert {s: (float(r["score"]), float(r["max_score"])) for s, r in rows.items()} == {
        s: expected[s] for s in students}
    print(f"{stem}: of {total} points, " + ", ".join(f"{s} {rows[s]['score']}" for s in students) +
          f" (code exercises {sum(code.values())} points)")


def test_the_full_run_chapter_is_a_chapter():
    assert FULL_RUN in {p.stem for p in CHAPTERS}, f"FULL_RUN names no chapter: {FULL_RUN}"


def test_typical_mistakes_replace_the_solution_lines():
    src = "a = 2.0\nanswer = None\n### BEGIN SOLUTION\nanswer = 2 / a\n### END SOLUTION"
    assert solved(mistaken(src, "critical_lr")) == "a = 2.0\nanswer = None\nanswer = 2 / a\nanswer = answer / 2" \
        "  # 1/a: the rate that jumps to the minimum, not the limit"
    assert solved(mistaken(src, "unlisted")).endswith("answer = 2 / a\nanswer = 2 * answer + 1")
    fn = "def f(x):\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n    ### END SOLUTION"
    spoilt = solved(mistaken(fn, "unlisted"))
    namespace: dict = {}
    exec(spoilt, namespace)
    assert float(namespace["f"](1.0)) == 5.0  # 2 * (1 + 1) + 1
    exec(solved(fn), namespace)
    assert namespace["f"](1.0) == 2.0
