import math
import re

import numpy as np
import pytest
import torch

from lessons_lib import check


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def shown_numbers(result) -> list[float]:
    """Every number in what the learner sees (the text and the HTML's visible message)."""
    return [float(m) for m in NUMBER.findall(repr(result) + " " + result.message)]


def leaks(result, expected: float, own: float | None = None) -> bool:
    """Does the learner see the expected value (other than as their own answer)?"""
    return any(math.isclose(v, expected, rel_tol=2e-3) and not (own is not None and math.isclose(v, own))
               for v in shown_numbers(result))


def test_compare_verdicts():
    assert check.compare(2.0, 2.0).status == "correct"
    assert check.compare(2.02, 2.0).status == "close"
    assert "relative error 1.0e-02" in check.compare(2.02, 2.0).message
    assert check.compare(3.0, 2.0).status == "wrong"
    assert check.compare(None, 2.0).status == "not attempted"
    assert check.compare(float("nan"), 2.0).status == "wrong"
    assert "NaN" in check.compare(float("nan"), 2.0).message
    assert "shape" in check.compare([1.0, 2.0], [1.0, 2.0, 3.0]).message
    assert check.compare("two", 2.0).status == "wrong"
    assert bool(check.compare(2.0, 2.0)) and not bool(check.compare(3.0, 2.0))


@pytest.mark.parametrize("a", [0.5, 4.0, 10.0])
def test_critical_lr_check_never_reveals_the_answer(a):
    right = 2 / a
    for value, status in [(right, "correct"), (right * 1.01, "close"), (right * 0.5, "wrong"),
                          (right * 1.5, "wrong"), (None, "not attempted")]:
        res = check.critical_lr(value, a=a)
        assert res.status == status
        assert not leaks(res, right, own=value)
        assert res._repr_html_().count(res.message.replace("'", "&#x27;")) == 1
    wrong = check.critical_lr(right * 0.5, a=a)
    assert "still converges" in wrong.message  # the hint comes from the learner's own value
    assert "diverges" in check.critical_lr(right * 1.5, a=a).message


def test_gd_iterates_check():
    def right(a, x0, lr, steps):
        xs = [x0]
        for _ in range(steps):
            xs.append(xs[-1] - lr * a * xs[-1])
        return xs

    def off_by_one(a, x0, lr, steps):
        return right(a, x0, lr, steps)[1:]

    def wrong_sign(a, x0, lr, steps):
        xs = [x0]
        for _ in range(steps):
            xs.append(xs[-1] + lr * a * xs[-1])
        return xs

    def todo(a, x0, lr, steps):
        raise NotImplementedError()

    def crashes(a, x0, lr, steps):
        return 1 / 0

    assert check.gd_iterates(right).status == "correct"
    assert check.gd_iterates(lambda **k: torch.tensor(right(**k))).status == "correct"
    assert check.gd_iterates(lambda **k: np.array(right(**k))).status == "correct"
    r = check.gd_iterates(off_by_one)
    assert r.status == "wrong" and "steps + 1" in r.message
    r = check.gd_iterates(wrong_sign)
    assert r.status == "wrong" and "multiplies x by 1.5" in r.message
    assert check.gd_iterates(todo).status == "not attempted"
    assert check.gd_iterates(None).status == "not attempted"
    assert check.gd_iterates(lambda **k: None).status == "not attempted"
    r = check.gd_iterates(crashes)
    assert r.status == "wrong" and "ZeroDivisionError" in r.message


def test_messages_of_gd_check_hold_no_expected_iterates():
    def wrong_sign(a, x0, lr, steps):
        return [x0 * (1 + lr * a) ** k for k in range(steps + 1)]

    res = check.gd_iterates(wrong_sign, cases=[dict(a=1.0, x0=1.0, lr=0.3, steps=5)])
    assert res.status == "wrong"
    # the reference iterates are 0.7**k: none of them is shown
    for k in range(1, 6):
        assert not leaks(res, 0.7**k)
