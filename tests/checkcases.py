"""How a self-check must behave, and the one test of whether its message shows a number it must not.

Each chapter's ``tests/test_<topic>.py`` ends with a ``CHECK_CASES`` dict: check name -> :class:`Case`
(tests/test_course.py collects them and runs the same behaviour tests over all). The leak helpers
read what the learner sees: the repr and the visible text of the HTML.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

# a number as a message may write it: 3, -0.5, .25, 1e-06, 2.5E+03
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Case:
    """One check's behaviour: called as ``check.<name>(value, **args)`` for every value below."""

    right: Any
    close: Any                  # None where a near value does not exist (a discrete choice has one)
    wrong: tuple                # two (or more) different wrong values: their hints must differ
    expected: list[float]       # the numbers a message must never show
    inputs: list[float] = field(default_factory=list)  # numbers of the question, which may be shown
    args: dict = field(default_factory=dict)           # the check's keyword arguments besides the answer
    function: bool = False      # the learner hands in a function
    nan: Any = float("nan")     # an answer of the right shape that is not finite
    rtol: float = 1e-6               # this far off (relative) is still "correct"
    close_rtol: float | None = 0.02  # this far off (relative) is still "close", a little farther wrong; None: a choice
    # (wrong value, words its hint must contain): pins each hint branch to the mistake it diagnoses
    hints: tuple = ()


def shown(result) -> str:
    """What the learner sees of a check's result: its repr and the visible text of its HTML."""
    return repr(result) + " " + html.unescape(re.sub(r"<[^>]+>", " ", result._repr_html_()))


def numbers(text: str) -> list[float]:
    """Every number written in ``text``."""
    return [float(m) for m in NUMBER.findall(text)]


def shows(result, values: Iterable[float], *, allowed: Iterable[float] = (), rel_tol: float = 2e-3,
          abs_tol: float = 1e-9) -> list[float]:
    """The numbers the learner sees that are one of ``values`` (within ``rel_tol``), unless they are also
    one of ``allowed`` (the question's own numbers, the learner's value), to ``1e-9``. Empty: nothing leaks."""
    values, allowed = list(values), list(allowed)
    return [v for v in numbers(shown(result))
            if any(math.isclose(v, e, rel_tol=rel_tol, abs_tol=abs_tol) for e in values)
            and not any(math.isclose(v, a, rel_tol=1e-9) for a in allowed)]


def leaks(result, case: Case, own: Any = None) -> list[float]:
    """The expected numbers of ``case`` that ``result`` shows, other than the question's and ``own``'s numbers."""
    own_numbers = numbers(str(own)) if own is not None and not callable(own) else []
    return shows(result, case.expected, allowed=case.inputs + own_numbers)
