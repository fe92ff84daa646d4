"""Mutation score of the test suite: plant one-line bugs in a module and count how many its tests catch.

Not part of ``make test`` (it runs a module's tests once per mutant). Usage::

    .venv/bin/python benchmarks/mutation.py                      # every module, into benchmarks/results.md
    .venv/bin/python benchmarks/mutation.py --modules run descent check.core --per-module 20 --no-write

For each module ``lessons_lib/<m>.py`` (or ``lessons_lib/<pkg>/<m>.py``) the script lists mutation sites in
the code that computes, leaving out docstrings and the argument checks that end in ``raise``:

* arithmetic operators swapped (``+`` <-> ``-``, ``*`` <-> ``/``, ``**`` -> ``*``);
* comparisons moved by one (``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``);
* float constants scaled by 1.01 (``0.0`` left out) and int constants moved by one;
* a unary minus dropped;
* ``and`` <-> ``or``.

It draws up to ``--per-module`` sites (seeded, spread over the file), writes each mutant into a scratch copy
of the repository and runs the module's tests there (``tests/test_<m>.py`` plus the tests that import the
module by name, capped by ``--max-test-files``) with ``pytest -x``. A mutant is *killed* when the tests fail
or time out (three times the clean run). The score is killed / tried. Surviving mutants are listed so that a
test can be written for each (some are equivalent mutants: a change no test could see).
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lessons_lib"
PRESENTATION = {"plotting", "explore", "__init__"}

SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult}
SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Lt: "<", ast.LtE: "<=",
          ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class Mutant:
    line: int
    col: int
    kind: str
    description: str


def _skipped_lines(tree: ast.AST) -> set[int]:
    """Lines of docstrings and of ``if ...: raise`` argument checks (mutating them is noise)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            skip.update(range(body[0].lineno, body[0].end_lineno + 1))
        if isinstance(node, ast.If) and any(isinstance(b, ast.Raise) for b in node.body):
            skip.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, ast.Raise):
            skip.update(range(node.lineno, node.end_lineno + 1))
    return skip


def mutation_sites(source: str) -> list[Mutant]:
    tree = ast.parse(source)
    skip = _skipped_lines(tree)
    sites = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        if line is None or line in skip:
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in SWAP_BIN:
            new = SWAP_BIN[type(node.op)]
            sites.append(Mutant(line, node.col_offset, "binop", f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAP_CMP:
            op = type(node.ops[0])
            sites.append(Mutant(line, node.col_offset, "compare", f"{SYMBOL[op]} -> {SYMBOL[SWAP_CMP[op]]}"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            if node.value == 0.0 and type(node.value) is float:
                continue  # 0.0 * 1.01 is 0.0: the same program
            if type(node.value) is float:
                sites.append(Mutant(line, node.col_offset, "const", f"{node.value!r} -> {node.value * 1.01!r}"))
            else:
                sites.append(Mutant(line, node.col_offset, "const", f"{node.value!r} -> {node.value + 1!r}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sites.append(Mutant(line, node.col_offset, "neg", "drop unary minus"))
        elif isinstance(node, ast.BoolOp):
            new = "or" if isinstance(node.op, ast.And) else "and"
            sites.append(Mutant(line, node.col_offset, "boolop", f"{'and' if new == 'or' else 'or'} -> {new}"))
    # sorted on every field: a set's order depends on the string hash seed, and a seeded sample must not
    return sorted(set(sites), key=lambda m: (m.line, m.col, m.kind, m.description))


class _Apply(ast.NodeTransformer):
    def __init__(self, mutant: Mutant):
        self.m = mutant
        self.done = False

    def _here(self, node, kind, symbol=None):
        # nested operations can start at the same column (``a * b + c``): the operator tells them apart
        return (not self.done and getattr(node, "lineno", None) == self.m.line
                and node.col_offset == self.m.col and self.m.kind == kind
                and (symbol is None or self.m.description.startswith(f"{symbol} ->")))

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if type(node.op) in SWAP_BIN and self._here(node, "binop", SYMBOL[type(node.op)]):
            node.op, self.done = SWAP_BIN[type(node.op)](), True
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        if len(node.ops) == 1 and type(node.ops[0]) in SWAP_CMP and self._here(node, "compare",
                                                                              SYMBOL[type(node.ops[0])]):
            node.ops, self.done = [SWAP_CMP[type(node.ops[0])]()], True
        return node

    def visit_Constant(self, node):
        if self._here(node, "const", repr(node.value)):
            self.done = True
            return ast.copy_location(ast.Constant(node.value * 1.01 if type(node.value) is float else node.value + 1),
                                     node)
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if self._here(node, "neg"):
            self.done = True
            return node.operand
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if self._here(node, "boolop"):
            node.op, self.done = (ast.Or() if isinstance(node.op, ast.And) else ast.And()), True
        return node


def apply(source: str, mutant: Mutant) -> str:
    tree = ast.parse(source)
    t = _Apply(mutant)
    tree = t.visit(tree)
    if not t.done:
        raise RuntimeError(f"mutation site not found: {mutant}")
    return ast.unparse(ast.fix_missing_locations(tree))


def modules() -> list[Path]:
    paths = [p for p in sorted(LIB.glob("*.py")) if p.stem not in PRESENTATION]
    paths += [p for p in sorted(LIB.glob("*/*.py")) if p.stem != "__init__" and p.parent.name not in PRESENTATION]
    return paths


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_files(path: Path, cap: int) -> list[Path]:
    """``tests/test_<m>.py`` first, then test files that import the module by name (at most ``cap``).

    The self-checks are the exception: ``check/core.py`` is tested by ``tests/test_check.py`` and each
    ``check/<topic>.py`` by the ``CHECK_CASES`` that ``tests/test_course.py`` runs (its unmarked part)
    together with the self-check tests beside its chapter's, ``tests/test_<topic>.py`` (both, whatever ``cap``).
    """
    name = path.stem
    tests = ROOT / "tests"
    if path.parent.name == "check":
        if name == "core":
            return [tests / "test_check.py", tests / "test_course.py"][:cap]
        beside = tests / f"test_{name}.py"
        return [tests / "test_course.py"] + ([beside] if beside.exists() else [])
    own = tests / f"test_{name}.py"
    files = [own] if own.exists() else []
    pattern = re.compile(rf"\b(import|from)\b[^\n]*\b{re.escape(name)}\b")
    for p in sorted((ROOT / "tests").glob("test_*.py")):
        if p not in files and pattern.search(p.read_text()):
            files.append(p)
    slow = {"test_device_audit.py", "test_bench.py", "test_lab.py", "test_browser.py", "test_site.py"}
    return [f for f in files if f.name not in slow][:cap]


def run_tests(repo: Path, files: list[Path], timeout: float) -> tuple[bool, float]:
    """Run the tests in the scratch ``repo``; return (passed, seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo), "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
           "not slow and not site and not course and not cuda", *[str(repo / "tests" / f.name) for f in files]]
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - start
    return out.returncode == 0, time.perf_counter() - start


def score_module(path: Path, *, per_module: int, max_test_files: int, seed: int, scratch: Path) -> dict:
    source = path.read_text()
    sites = mutation_sites(source)
    files = test_files(path, max_test_files)
    result = {"module": module_name(path), "sites": len(sites), "tests": [f.name for f in files],
              "tried": 0, "killed": 0, "survivors": [], "seconds": 0.0}
    if not files or not sites:
        return result
    rng = random.Random(f"{seed}:{path.stem}")
    chosen = sites if len(sites) <= per_module else sorted(rng.sample(sites, per_module), key=lambda m: m.line)
    target = scratch / path.relative_to(ROOT)
    ok, clean = run_tests(scratch, files, timeout=1800)
    if not ok:
        result["error"] = "the clean tests fail"
        return result
    start = time.perf_counter()
    lines = source.splitlines()
    try:
        for m in chosen:
            target.write_text(apply(source, m))
            passed, _ = run_tests(scratch, files, timeout=3 * clean + 30)
            result["tried"] += 1
            if passed:
                result["survivors"].append(f"line {m.line}: {m.description}  `{lines[m.line - 1].strip()[:70]}`")
                print(f"  survived: {result['module']} {result['survivors'][-1]}", flush=True)
            else:
                result["killed"] += 1
    finally:
        target.write_text(source)
    result["seconds"] = time.perf_counter() - start
    return result


_HINT_TOL = ("boundary: a hint's threshold moved by 1 % (or < to <=); only an answer placed within that 1 % of the "
             "threshold would get another hint, and a hint's threshold is not worth pinning to the percent")
_RADIUS = ("boundary: only a run that peaks between 1e6 and 1.01e6 times its start tells the default radius apart; "
           "runs that diverge grow geometrically past both")
_AT_ONE = "the verdict at exactly |1 - lr lambda| = 1 is never asked: that lr is the right answer, which gets no hint"

#: Survivors that no test could kill, by module and a piece of the mutated line and the change, with the reason.
EQUIVALENT = {
    ("lessons_lib.check.stability", 'verdict = "diverges" if float(q.abs().max()) > 1', "> -> >="): _AT_ONE,
    ("lessons_lib.check.quadratic", 'side = "diverges" if abs(q) > 1', "> -> >="): _AT_ONE,
    ("lessons_lib.check.drift", "if abs(z.imag) < 1e-12 and factor < 0", "< -> <="): _HINT_TOL,
    ("lessons_lib.check.drift", "if abs(z.imag) < 1e-12 and factor < 0", "1e-12 -> 1.01e-12"): _HINT_TOL,
    ("lessons_lib.check.drift", "if abs(implied - factor) <= 1e-6 * max(abs(factor), 1.0)", "<= -> <"): _HINT_TOL,
    ("lessons_lib.check.drift", "if abs(implied - factor) <= 1e-6 * max(abs(factor), 1.0)", "* -> /"): _HINT_TOL,
    ("lessons_lib.check.drift", "if abs(implied - factor) <= 1e-6 * max(abs(factor), 1.0)",
     "1e-06 -> 1.0099999999999999e-06"): _HINT_TOL,
    ("lessons_lib.check.drift", "if abs(implied - factor) <= 1e-6 * max(abs(factor), 1.0)", "1.0 -> 1.01"): _HINT_TOL,
    ("lessons_lib.check.curl", "return abs(v - x) <= 0.02 * max(abs(x), 1e-3)", "<= -> <"): _HINT_TOL,
    ("lessons_lib.check.curl", "return abs(v - x) <= 0.02 * max(abs(x), 1e-3)", "0.001 -> 0.00101"): _HINT_TOL,
    ("lessons_lib.check.cbo", "if torch.allclose(v, X.mean(0), rtol=1e-9", "1e-09 -> 1.01e-09"): _HINT_TOL,
    ("lessons_lib.check.cbo", "if torch.allclose(v, cbo.consensus_point(X, -fX", "1e-06 -> 1.0099999999999999e-06"):
        _HINT_TOL,
    ("lessons_lib.check.cbo", "if torch.allclose(v, cbo.consensus_point(X, -fX", "1e-12 -> 1.01e-12"): _HINT_TOL,
    ("lessons_lib.check.saddles", "if i != mode - 1 and abs(sv / si - 1) < 0.05", "0.05 -> 0.0505"): _HINT_TOL,
    ("lessons_lib.check.saddles", "if sv > 1.5 * s[0]", "1.5 -> 1.5150000000000001"): _HINT_TOL,
    ("lessons_lib.check.saddles", 'order = "weaker modes are learned later" if sv > target', "> -> >="):
        "a step that half-learns exactly the target's strength is the right answer, which gets no hint",
    ("lessons_lib.check.curl", "return abs(v - x) <= 0.02 * max(abs(x), 1e-3)", "0.02 -> 0.0202"): _HINT_TOL,
    ("lessons_lib.check.curl", "the manifold would be {'stable' if", "> -> >="):
        "only a learner's value of exactly 0 reads differently, and lambda_min = 0 is the marginal case either way",
    ("lessons_lib.check.wsd", "sched = schedules.wsd_schedule(peak, total=steps, warmup=0", "0 -> 1"):
        "a one-step warm-up reaches the peak at step 0, (0 + 1) / 1: the same schedule",
    ("lessons_lib.check.wsd", "pick = next((f for f in offered if _is_number(answer) and math.isclose",
     "1e-06 -> 1.0099999999999999e-06"): _HINT_TOL,
    ("lessons_lib.check.wsd", "if excess <= 1e-12", "<= -> <"):
        "the best pick's excess is exactly 0, every other pick's is far above 1e-12",
    ("lessons_lib.check.wsd", "if excess <= close_rtol", "<= -> <"): _HINT_TOL,
    ("lessons_lib.check.wsd", "longer = i + 1 < len(offered) and losses[offered[i + 1]] < losses[pick", "< -> <="):
        "two fractions' expected losses are never exactly equal, so < and <= pick the same direction",
    ("lessons_lib.check.cbo", "X = 3 * torch.rand(6, 2, generator=g, dtype=torch.float64) - 1.5",
     "1.5 -> 1.5150000000000001"):
        "boundary: the first cases' particles shift by 1 % of their range: every verdict and hint on them is the same "
        "(a test holds the cases to their descriptions)",
    ("lessons_lib.check.saddles", "lo, hi = math.log(math.e * init_scale**2), math.log(1e12)",
     "1000000000000.0 -> 1010000000000.0"): "the bisection's upper end moves by 1 %; the 200 halvings converge to the "
                                            "same strength",
    ("lessons_lib.check.saddles", "mid = 0.5 * (lo + hi)", "0.5 -> 0.505"):
        "a slightly uneven split still shrinks the bracket every step: 200 steps converge to the same strength",
    ("lessons_lib.curvature", "small = J @ J.mT if n <= p", "<= -> <"):
        "at n = p both products are the same p x p matrix",
    ("lessons_lib.curvature", "residual <= tol * max(1.", "1.0 -> 1.01"):
        "boundary: moves the threshold by 1 % only where |lambda| < 1.01 and only for a residual within 1 % of it",
    ("lessons_lib.wsd", "nxt = (cum[prev] < u)", "< -> <="):
        "u is a continuous uniform draw: it equals a cumulative probability with probability 0",
    ("lessons_lib.wsd", "sched = wsd_s_schedule(peak, checkpoints=checkpoints, warmup=0", "0 -> 1"):
        "a one-step warm-up reaches the peak at step 0, (0 + 1) / 1: the same schedule",
    ("lessons_lib.wsd", "if not size <= radius", "<= -> <"):
        "only a state exactly on the blow-up radius differs, which no run reaches",
    ("lessons_lib.quadratic", "if p < 0 or p > 2", "< -> <="):
        "p = 0 is answered as 'flat' two lines earlier, so the branch never sees it",
    ("lessons_lib.quadratic", "if p < 0 or p > 2", "> -> >="):
        "p = 2 is answered as 'two-cycle' two lines earlier, so the branch never sees it",
    ("lessons_lib.landscapes", "torch.where(b > 0, 1 - torch.exp", "> -> >="):
        "at b = 0 the wall's factor 1 - exp(-9 b^2) is already 0, so both branches give the same value",
    ("lessons_lib.schedules", "or [pieces[-1]]", "drop unary minus"):
        "every caller's piece lengths sum to the schedule's positive total, so a piece is always kept",
    ("lessons_lib.cbo", "keep_particles: bool = False, blowup: float = 1e100", "1e+100 -> 1.01e+100"):
        "boundary: a swarm that leaves 1e100 grows by far more than 1 % a step (beyond lam dt = 2, or by the noise), "
        "so the two radii flag the same step",
    ("lessons_lib.models", "blowup: float = 1e6) -> ReluRun", "1000000.0 -> 1010000.0"):
        _RADIUS,
    ("lessons_lib.stability", "blowup: float = 1e6) -> PerturbationGrowth", "1000000.0 -> 1010000.0"):
        _RADIUS,
    ("lessons_lib.run", "if math.isinf(blowup * max(1.0", "* -> /"):
        "the branch only sets an infinite radius, which blowup * size0 already is whenever the product overflows",
}


def equivalent(module: str, survivor: str) -> str:
    """The reason a surviving mutant is equivalent, or ``""``."""
    return next((why for (m, code, change), why in EQUIVALENT.items()
                 if m == module and code in survivor and f": {change}  " in survivor), "")


def read_before(path: Path) -> dict[str, str]:
    """``module -> "killed/tried"`` from an earlier run's output (its table rows), to show next to this run."""
    before = {}
    for m in re.finditer(r"^\| `([\w.]+)` \| \d+ \| (\d+) \| (\d+) \|", path.read_text(), re.M):
        before[m.group(1)] = f"{m.group(3)}/{m.group(2)}"
    for m in re.finditer(r"^([\w.]+)\s+(\d+/\d+)\s+\(", path.read_text(), re.M):  # the progress lines
        before.setdefault(m.group(1), m.group(2))
    return before


def markdown(results: list[dict], args) -> str:
    before = read_before(Path(args.before)) if args.before else {}
    rows = ["## Mutation score", "",
            f"`benchmarks/mutation.py --per-module {args.per_module} --max-test-files {args.max_test_files}` "
            f"(seed {args.seed}): one-line bugs planted in each module's computing code (docstrings and `raise` "
            "checks left out); a mutant is killed when the module's tests fail. Not part of `make test`.", "",
            "| module | sites | tried | killed | score | before | tests run |", "|---|---|---|---|---|---|---|"]
    for r in results:
        score = f"{r['killed'] / r['tried']:.0%}" if r["tried"] else r.get("error", "no tests")
        rows.append(f"| `{r['module']}` | {r['sites']} | {r['tried']} | {r['killed']} | {score} | "
                    f"{before.get(r['module'], '')} | {', '.join(r['tests'])} |")
    tried = sum(r["tried"] for r in results)
    killed = sum(r["killed"] for r in results)
    if tried:
        rows.append(f"| **all** | | {tried} | {killed} | {killed / tried:.0%} | |")
    surv = [(r["module"], s) for r in results for s in r["survivors"]]
    if surv:
        rows += ["", "Surviving mutants (*equivalent*: no test could tell the mutant from the code, see "
                 "`EQUIVALENT` in the script):", ""]
        rows += [f"- `{m}` {s}" + (f" *equivalent: {why}*" if (why := equivalent(m, s)) else "") for m, s in surv]
    return "\n".join(rows) + "\n"


def write_section(text: str, path: Path) -> None:
    old = path.read_text() if path.exists() else ""
    start = old.find("## Mutation score")
    if start >= 0:
        end = old.find("\n## ", start + 1)
        old = old[:start] + (old[end + 1:] if end >= 0 else "")
    path.write_text(old.rstrip("\n") + "\n\n" + text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="*", help="modules under lessons_lib, e.g. wsd check.core (default: all)")
    ap.add_argument("--per-module", type=int, default=25)
    ap.add_argument("--max-test-files", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print the table instead of updating results.md")
    ap.add_argument("--before", help="an earlier run's output (its table or progress lines): shown as 'before'")
    args = ap.parse_args(argv)
    paths = [p for p in modules() if not args.modules or module_name(p).removeprefix("lessons_lib.") in args.modules]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "repo"
        for sub in ("lessons_lib", "tests", "book", "benchmarks", "tools"):
            shutil.copytree(ROOT / sub, scratch / sub, ignore=shutil.ignore_patterns("__pycache__", "_build"))
        for f in ROOT.iterdir():  # the top-level files the tests read: requirements*.txt, README.md, Makefile ...
            if f.is_file() and not f.name.startswith("."):
                shutil.copy(f, scratch / f.name)
        for path in paths:
            r = score_module(path, per_module=args.per_module, max_test_files=args.max_test_files,
                             seed=args.seed, scratch=scratch)
            results.append(r)
            score = f"{r['killed']}/{r['tried']}" if r["tried"] else r.get("error", "no tests")
            print(f"{r['module']:32s} {score:>8s}  ({r['seconds']:.0f} s)", flush=True)
    text = markdown(results, args)
    if args.no_write:
        print(text)
    else:
        write_section(text, ROOT / "benchmarks" / "results.md")
        print("written to benchmarks/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
