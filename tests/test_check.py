"""lessons_lib.check: the shared verdicts (check/core.py), finding the chapters' checks, and the import rule.

The chapters' checks themselves are tested by tests/test_course.py over the ``CHECK_CASES`` at the end
of each tests/test_<topic>.py.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import pathlib

import numpy as np
import pytest
import torch
from checkcases import numbers, shown, shows
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lessons_lib import check

CHECK_DIR = pathlib.Path(check.__file__).resolve().parent
CORE = {"backend", "run", "descent", "quadratic", "curvature", "landscapes", "schedules", "models", "measure"}


# --- compare ---------------------------------------------------------------------------------------

def test_compare_verdicts():
    assert check.compare(2.0, 2.0).status == "correct"
    assert check.compare(2.02, 2.0).status == "close"
    assert "relative error 1.0e-02" in check.compare(2.02, 2.0).message
    assert check.compare(3.0, 2.0).status == "wrong"
    assert check.compare(None, 2.0).status == "not attempted"
    assert check.compare(..., 2.0).status == "not attempted"
    assert check.compare(float("nan"), 2.0).status == "wrong"
    assert "NaN" in check.compare(float("nan"), 2.0).message
    assert check.compare(float("nan"), 2.0, nonfinite="it overflowed").message == "it overflowed"
    assert "shape" in check.compare([1.0, 2.0], [1.0, 2.0, 3.0]).message
    assert check.compare("two", 2.0).status == "wrong"
    assert check.compare([2.0], 2.0).status == "correct" and check.compare(torch.tensor([2.0]), 2.0)
    assert bool(check.compare(2.0, 2.0)) and not bool(check.compare(3.0, 2.0))


def test_hints_come_from_the_learners_value_and_never_raise():
    res = check.compare(3.0, 2.0, hint=lambda v: f"with {v} the factor is {1 - v:.3g}")
    assert res.message == "with 3.0 the factor is -2"
    res = check.compare(3.0, 2.0, hint=lambda v: 1 / 0)  # a broken hint falls back to a plain message
    assert res.status == "wrong" and "try again" in res.message


def test_the_html_shows_the_message_once_escaped():
    for res in (check.compare(3.0, 2.0, hint=lambda v: "a <b> & 'c'"), check.compare(2.0, 2.0)):
        html = res._repr_html_()
        assert html.count(res.message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                          .replace("'", "&#x27;")) == 1
        assert res.status in shown(res) and res.message in shown(res)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda x: abs(x) < 1e300)


@st.composite
def answers(draw):
    """An expected value and a learner's value: far off, near (close) or equal, as numbers or arrays."""
    n = draw(st.integers(0, 4))
    expected = draw(finite if n == 0 else st.lists(finite, min_size=n, max_size=n))
    kind = draw(st.sampled_from(["other", "near", "same", "shape", "nonfinite"]))
    want = np.asarray(expected, dtype=np.float64)
    if kind == "other":
        value = draw(finite if n == 0 else st.lists(finite, min_size=n, max_size=n))
    elif kind == "near":
        value = (want * (1 + draw(st.floats(-0.06, 0.06)))).tolist()
    elif kind == "same":
        value = want.tolist()
    elif kind == "shape":
        value = draw(st.lists(finite, min_size=0, max_size=5))
    else:
        value = np.full(want.shape, draw(st.sampled_from([np.nan, np.inf, -np.inf]))).tolist()
    return expected, value


@settings(max_examples=200, deadline=None)
@given(answers(), st.booleans())
def test_compare_never_shows_the_expected_value(pair, with_hint):
    expected, value = pair
    hint = (lambda v: f"with your value {v} it is not right") if with_hint else None
    res = check.compare(value, expected, hint=hint)
    want = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    got = np.atleast_1d(np.asarray(value, dtype=np.float64))
    # what may be shown: the learner's own numbers and shape, and the relative error of a close answer
    allowed = numbers(str(value)) + list(got.shape)
    if got.shape == want.shape and np.isfinite(got).all() and want.size:
        err = float(np.abs(got - want).max()) / max(float(np.abs(want).max()), 1e-300)
        allowed.append(float(f"{err:.1e}"))
    assume(not any(math.isclose(e, a, rel_tol=2e-3, abs_tol=1e-9) for e in want for a in allowed))
    assert not shows(res, want.tolist(), allowed=allowed), (value, expected, res)
    # and every number shown is one of those
    assert all(any(math.isclose(v, a, rel_tol=1e-9) for a in allowed) for v in numbers(shown(res))), res


# --- check_function -----------------------------------------------------------------------------------

def _square(x, *, c=0.0):
    return x * x + c


def test_check_function_takes_keyword_positional_and_named_cases():
    assert check.check_function(_square, _square, [dict(x=2.0), dict(x=3.0, c=1.0)]).status == "correct"
    assert check.check_function(_square, _square, [(2.0,), (3.0,)]).status == "correct"
    res = check.check_function(lambda x: x * x + 1, _square, {"a small x": (0.5,)})
    assert res.status == "wrong" and res.message.startswith("a small x: ")
    res = check.check_function(lambda x, c=0.0: x * x * 1.01, _square, [dict(x=2.0)])
    assert res.status == "close" and res.message.startswith("for inputs {'x': 2.0}: relative error")
    res = check.check_function(_square, _square, [(1.0,)], praise="even the hard one")
    assert res.message == "all 1 test cases agree, even the hard one"


def test_check_function_hands_each_call_fresh_inputs():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def edits_in_place(x):
        y = 2 * x
        x.zero_()  # a learner's side effect: neither the reference nor the next case may see it
        return y

    res = check.check_function(edits_in_place, lambda x: 2 * x, [(x,), (x,)])
    assert res.status == "correct" and torch.equal(x, torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_check_function_hint_sees_the_case_and_the_value():
    res = check.check_function(lambda x: -x, lambda x: x, [(2.0,)], hint=lambda case, v: f"{case} gave {v}")
    assert res.message == "for inputs (2.0,): (2.0,) gave -2.0"
    res = check.check_function(lambda x: [float("nan")], lambda x: [x], [(2.0,)], nonfinite="it blew up")
    assert res.message.endswith("it blew up")


def _todo(*args, **kwargs):
    raise NotImplementedError


MISTAKES = [(None, "not attempted", "define"), (..., "not attempted", "define"), ("my_fn", "wrong", "a str"),
            (3.0, "wrong", "a float"), (_todo, "not attempted", "NotImplementedError"),
            (lambda *a, **k: None, "not attempted", "returned None"),
            (lambda *a, **k: ..., "not attempted", "Ellipsis"), (lambda *a, **k: 1 / 0, "wrong", "ZeroDivisionError")]


@pytest.mark.parametrize("value,status,phrase", MISTAKES)
def test_every_function_check_answers_the_same_mistake_the_same_way(value, status, phrase):
    res = check.check_function(value, _square, [(2.0,)])
    assert res.status == status and phrase in res.message
    functional = [name for name, topic in check.index().items()
                  if "fn" in inspect.signature(getattr(check, name)).parameters]
    assert {"gd_iterates", "stable_consensus_point"} <= set(functional)
    for name in functional:
        other = getattr(check, name)(value)
        assert (other.status, phrase in other.message) == (status, True), (name, other)


# --- the package: chapters' checks found by name, and the import rule ----------------------------------

def test_every_public_function_of_a_topic_file_is_a_check():
    found = check.index()
    for path in sorted(CHECK_DIR.glob("*.py")):
        if path.stem in ("__init__", "core"):
            continue
        module = importlib.import_module(f"lessons_lib.check.{path.stem}")
        public = {name for name, fn in inspect.getmembers(module, inspect.isfunction)
                  if fn.__module__ == module.__name__ and not name.startswith("_")}
        assert public, f"check/{path.name} defines no check"
        assert public == {n for n, t in found.items() if t == path.stem}, path.name
        for name in public:
            assert getattr(check, name) is getattr(module, name)
            assert name in dir(check)
    assert check.cbo is importlib.import_module("lessons_lib.check.cbo")
    with pytest.raises(AttributeError, match="no_such_check"):
        check.no_such_check  # noqa: B018


def test_finding_the_checks_imports_nothing(monkeypatch):
    # check/__init__.py and core.py import no chapter (test below), and finding the checks imports none either
    import builtins

    imported = []
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def spy(real):
        return lambda name, *args, **kwargs: imported.append(name) or real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", spy(real_import))
    monkeypatch.setattr(importlib, "import_module", spy(real_import_module))
    check.index.cache_clear()
    assert "critical_lr" in check.index()
    assert not [m for m in imported if "lessons_lib" in m or m in CORE or m in check.index().values()], imported


def test_a_check_name_in_two_topic_files_is_an_error(tmp_path, monkeypatch):
    for name in ("one", "two"):
        (tmp_path / f"{name}.py").write_text("def same(answer):\n    pass\n")
    monkeypatch.setattr(check, "_HERE", tmp_path)
    check.index.cache_clear()
    try:
        with pytest.raises(ImportError, match="same"):
            check.index()
    finally:
        monkeypatch.undo()
        check.index.cache_clear()
    assert "critical_lr" in check.index()


def _lib_imports(path: pathlib.Path) -> set[str]:
    """The lessons_lib modules that a file of lessons_lib/check/ imports, as ``quadratic`` or ``check.core``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            full = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ["lessons_lib", "lessons_lib.check"][node.level == 1] if node.level else ""
            module = ".".join(filter(None, [base, node.module]))
            # `from lessons_lib import cbo` and `from .. import cbo` import modules, `from .core import x` a name
            full = [f"{module}.{a.name}" for a in node.names] if module in ("lessons_lib", "lessons_lib.check") \
                else [module]
        else:
            continue
        names.update(m.split(".", 1)[1] for m in full if m.startswith("lessons_lib."))
    return names


@pytest.mark.parametrize("path", sorted(CHECK_DIR.glob("*.py")), ids=lambda p: p.name)
def test_check_files_import_the_core_and_at_most_their_own_chapter(path):
    imports = _lib_imports(path)
    if path.stem == "core":
        assert imports <= {"backend"}, imports
    elif path.stem == "__init__":
        assert imports <= {"check.core"}, imports
    else:
        assert "check.core" in imports
        other = imports - CORE - {"check.core", path.stem}
        assert not other, f"check/{path.name} imports {other}: a topic's check imports only its own chapter"


def test_the_import_rule_sees_a_foreign_chapter(tmp_path):
    bad = tmp_path / "stability.py"
    bad.write_text("from .. import quadratic, wsd\nfrom .core import compare\nfrom lessons_lib import cbo\n")
    assert _lib_imports(bad) == {"quadratic", "wsd", "check.core", "cbo"}


# --- answers that are not numbers, and functions that never return ---------------------------------

@pytest.mark.parametrize("answer", [True, False, np.bool_(True), torch.tensor(True), np.array([True, False]),
                                    torch.tensor([True])])
def test_true_or_false_is_never_a_correct_number(answer):
    # True == 1.0 and 2.0 * True == 2.0: without the bool rule these were "correct"
    for res in (check.compare(answer, 1.0), check.compare(answer, [1.0, 0.0]), check.critical_lr(answer, a=2.0)):
        assert res.status == "wrong" and "True or False" in res.message
    assert check.principal_coefficient(answer, lr=0.1, lam=1.0).status == "wrong"
    assert check.compare(1, 1.0).status == "correct" and check.compare(np.int64(1), 1.0).status == "correct"


def test_a_function_that_never_returns_is_stopped_with_a_verdict():
    import signal
    import time

    def forever(x):
        while True:
            try:
                x = x + 1
            except Exception:  # a learner's broad except does not swallow the stop
                pass

    before = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    res = check.check_function(forever, lambda x: x, [dict(x=1.0)], time_limit=0.3)
    assert time.perf_counter() - start < 3
    assert res.status == "wrong" and "took longer than 0.3 s" in res.message and "x" in res.message
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    # a quick function is not affected, and the timer is gone afterwards
    assert check.check_function(lambda x: x, lambda x: x, [dict(x=1.0)], time_limit=0.3).status == "correct"
    time.sleep(0.4)


def test_a_checks_own_problem_arguments_are_validated_whatever_the_answer():
    from lessons_lib import landscapes
    from lessons_lib.check import core
    from lessons_lib.check import wsd as check_wsd

    with pytest.raises(ValueError, match="^rtol:"):
        core.compare(1.0, 1.0, rtol=-1.0)  # a negative tolerance used to make every answer "close" or "wrong"
    with pytest.raises(ValueError, match="^valley:"):  # used to answer "not attempted" without looking
        check_wsd.best_decay_fraction(None, fractions=[0.1, 0.5], valley=None, x0=1.0, peak=0.1, steps=10, sigma=1.0)
    with pytest.raises(ValueError, match="^peak:"):
        check_wsd.best_decay_fraction(0.1, fractions=[0.1, 0.5], valley=landscapes.river_valley(), x0=1.0,
                                      peak=True, steps=10, sigma=1.0)
    with pytest.raises(ValueError, match="^reference:"):
        core.check_function(lambda x: x, None, [(1.0,)])


def test_close_means_within_five_percent_by_default():
    assert check.compare(1.0498, 1.0).status == "close"
    assert check.compare(1.0502, 1.0).status == "wrong"
    assert check.compare(1.0 + 0.9e-6, 1.0).status == "correct" and check.compare(1.0 + 1.1e-6, 1.0).status == "close"
