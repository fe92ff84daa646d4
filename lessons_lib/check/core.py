"""What every self-check shares: the verdict, comparing a value, and checking a learner's function.

A check compares the learner's value (or function) with the library's reference. The displayed
text is built only from the learner's own value and the verdict, so the expected answer never
appears in the output (tests check the repr and the HTML). Missing work (``None``, a function that
raises ``NotImplementedError``), NaN, wrong shapes and True/False where a number is asked for get a
friendly message, not a traceback. A learner's function that runs longer than ``time_limit`` seconds
(a loop that never ends) is stopped with a "took longer than" verdict: on Unix, from the main thread
(where Jupyter runs cells), by a ``SIGALRM`` timer that is removed again afterwards; elsewhere the
call is not timed.

This module imports no chapter module: the chapters' checks live in ``check/<topic>.py`` and build
on :func:`compare` or :func:`check_function`.
"""

from __future__ import annotations

import contextlib
import copy
import html
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence, Union

import torch

from ..backend import as_tensor, check_callable, check_positive

Status = Literal["correct", "close", "wrong", "not attempted"]
# plain symbols that every text font has (emoji fonts are missing on many machines)
_ICON = {"correct": "✓", "close": "≈", "wrong": "✗", "not attempted": "…"}
NONFINITE = "your answer contains NaN or infinity: did the iteration diverge?"
CLOSE_NOTE = "check rounding or an off-by-one step count"

# the inputs of one call: keyword arguments (a dict) or positional ones (a tuple)
Inputs = Union[Mapping[str, Any], tuple]


@dataclass(frozen=True)
class CheckResult:
    """The verdict of a self-check: ``status`` and a ``message`` that never holds the answer."""

    status: Status
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __repr__(self) -> str:
        return f"{_ICON[self.status]} {self.status}: {self.message}"

    def _repr_html_(self) -> str:
        colour = {"correct": "#1a7f37", "close": "#9a6700", "wrong": "#cf222e", "not attempted": "#57606a"}
        return (f'<div class="lessons-check" style="border-left:4px solid {colour[self.status]};'
                f'padding:0.2em 0.6em"><b>{_ICON[self.status]} {self.status}</b>: '
                f"{html.escape(self.message)}</div>")


def _is_bool(value) -> bool:
    """True/False, a NumPy bool or a boolean tensor or array: an answer that is not a number."""
    return isinstance(value, bool) or type(value).__name__ == "bool_" or str(getattr(value, "dtype", "")) in (
        "bool", "torch.bool")


def _as_array(value) -> torch.Tensor | None:
    """The learner's value as a float64 CPU tensor, or ``None`` if it is not numbers at all."""
    try:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
        if isinstance(value, (str, bytes, complex)) or _is_bool(value):
            return None
        return torch.as_tensor(value, dtype=torch.float64)
    except Exception:  # ragged lists, objects, complex arrays ...: all mean "not an array of reals"
        return None


def _missing(value) -> bool:
    """``None`` or ``...``: the placeholder a student notebook starts with."""
    return value is None or value is Ellipsis


def _is_number(value) -> bool:
    """A real number (a Python or numpy float or int, a one-element tensor), not a string or a bool."""
    try:
        float(value)
        return not isinstance(value, (str, bytes)) and not _is_bool(value)
    except Exception:
        return False


def _hint(hint: Callable | None, *args, fallback: str) -> str:
    """``hint(*args)``, or ``fallback`` if there is no hint or it cannot make sense of the value."""
    if hint is None:
        return fallback
    try:
        return hint(*args)
    except Exception:  # a hint must never turn a learner's odd value into a traceback
        return fallback


def not_attempted(value) -> CheckResult | None:
    """The "not attempted" verdict if ``value`` is still the placeholder (``None`` or ``...``), else ``None``."""
    if _missing(value):
        return CheckResult("not attempted", "no answer yet: replace the placeholder and run the cell again")
    return None


def compare(value, expected, *, rtol: float = 1e-6, close_rtol: float = 0.05,
            hint: Callable[[Any], str] | None = None, close_note: str = CLOSE_NOTE,
            nonfinite: str = NONFINITE) -> CheckResult:
    """Compare a learner's number or array with the expected one.

    ``correct`` within ``rtol`` (relative, in the max norm), ``close`` within ``close_rtol`` (the
    message gives the relative error and ``close_note``), otherwise ``wrong`` with ``hint(value)``,
    which must be derived from the learner's own value. ``None`` or ``...`` is "not attempted";
    NaN (an answer of the right shape that is not finite: ``nonfinite`` says what to do), a wrong
    shape or a non-number is "wrong" with a plain message; a one-element array counts as a number.
    """
    rtol, close_rtol = check_positive(rtol, name="rtol"), check_positive(close_rtol, name="close_rtol")
    want = as_tensor(expected, name="expected", device="cpu")
    if (missing := not_attempted(value)) is not None:
        return missing
    got = _as_array(value)
    if got is None and _is_bool(value):
        return CheckResult("wrong", "expected a number or an array of numbers, not True or False")
    if got is None:
        return CheckResult("wrong", f"expected a number or an array of numbers, got a {type(value).__name__}")
    if got.shape != want.shape and got.numel() == want.numel() == 1:
        got = got.reshape(want.shape)  # 0.5, [0.5] and tensor([0.5]) are the same answer
    if got.shape != want.shape:
        shape = (f"your answer has shape {tuple(got.shape)}, which is not the shape asked for"
                 if got.ndim else "your answer is a single number, but an array is asked for")
        return CheckResult("wrong", _hint(hint, value, fallback=shape))
    if not bool(torch.isfinite(got).all()):
        return CheckResult("wrong", nonfinite)
    scale = max(float(want.abs().max()) if want.numel() else 0.0, 1e-300)
    err = float((got - want).abs().max()) / scale if want.numel() else 0.0
    if err <= rtol:
        return CheckResult("correct", "well done")
    if err <= close_rtol:
        return CheckResult("close", f"relative error {err:.1e}: {close_note}")
    return CheckResult("wrong", _hint(hint, value, fallback="not right yet: re-read the question and try again"))


def _call(fn: Callable, inputs: Inputs):
    """``fn(**inputs)`` for a dict, ``fn(*inputs)`` for a tuple, on copies (a learner may edit them in place)."""
    inputs = copy.deepcopy(inputs)
    return fn(**inputs) if isinstance(inputs, Mapping) else fn(*inputs)


class _TookTooLong(BaseException):
    """Raised into a learner's function by :func:`_time_limit` (a BaseException, so ``except Exception`` in
    the learner's code does not swallow it)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise :class:`_TookTooLong` inside the block after ``seconds`` of wall time.

    Uses a ``SIGALRM`` interval timer, so only on Unix and in the main thread, and only if no other
    timer is running (pytest-timeout, an enclosing check): otherwise the block runs untimed. The
    previous handler is put back afterwards.
    """
    if (not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield
        return

    def stop(signum, frame):
        raise _TookTooLong

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)


def check_function(fn: Callable, reference: Callable, cases: Sequence[Inputs] | Mapping[str, Inputs], *,
                   rtol: float = 1e-6, close_rtol: float = 0.05,
                   hint: Callable[[Inputs, Any], str] | None = None, close_note: str = CLOSE_NOTE,
                   nonfinite: str = NONFINITE, praise: str = "", time_limit: float = 10.0,
                   error_hint: Callable[[Exception], str | None] | None = None) -> CheckResult:
    """Call the learner's ``fn`` on each case's inputs and compare with ``reference`` on the same inputs.

    A case is a dict of keyword arguments (``fn(**case)``) or a tuple of positional ones
    (``fn(*case)``); each call gets fresh copies of the inputs. ``cases`` is a sequence (a message
    names a failing case by its inputs, ``for inputs {...}``) or a mapping from a short description
    to the inputs (a message names the case by its description: for inputs such as tensors).

    The first failing case decides the verdict; ``hint(case, value)`` explains it from the learner's
    own output, with ``close_note`` and ``nonfinite`` as in :func:`compare`. The cases shown in a
    message are inputs, never outputs. When every case agrees, the message says so, followed by
    ``praise`` if given. A call that takes longer than ``time_limit`` seconds is stopped (see the
    module docstring) and the verdict is "wrong": it took longer than that. A call that raises is "wrong",
    with the exception's message and, when ``error_hint(exc)`` returns one, a hint about the usual cause.
    """
    check_callable(reference, name="reference")
    if isinstance(cases, (str, bytes)) or not isinstance(cases, (Mapping, Sequence)):
        raise ValueError(f"cases: expected a sequence or a mapping of inputs, got {type(cases).__name__}")
    for name, value in (("rtol", rtol), ("close_rtol", close_rtol), ("time_limit", time_limit)):
        check_positive(value, name=name)
    if _missing(fn):
        return CheckResult("not attempted", "define the function first, then run this check")
    if not callable(fn):
        return CheckResult("wrong", f"expected a function, got a {type(fn).__name__}")
    named = cases.items() if isinstance(cases, Mapping) else ((f"for inputs {case}", case) for case in cases)
    agree = f"all {len(cases)} test cases agree" + (f", {praise}" if praise else "")
    worst = CheckResult("correct", agree)
    for name, case in named:
        try:
            with _time_limit(time_limit):
                value = _call(fn, case)
        except _TookTooLong:
            return CheckResult("wrong", f"{name}: your function took longer than {time_limit:g} s and was stopped; "
                                        "does a loop never end?")
        except NotImplementedError:
            return CheckResult("not attempted", "the function still raises NotImplementedError: fill it in")
        except Exception as exc:  # a learner's bug is feedback, not a traceback
            extra = error_hint(exc) if error_hint is not None else None
            return CheckResult("wrong", f"{name}: calling it raised {type(exc).__name__}: {exc}"
                                        + (f"; {extra}" if extra else ""))
        if _missing(value):
            return CheckResult("not attempted", f"the function returned {value!r}: return its result")
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
        verdict = compare(value, _call(reference, case), rtol=rtol, close_rtol=close_rtol,
                          hint=(lambda v, c=case: hint(c, v)) if hint else None, close_note=close_note,
                          nonfinite=nonfinite)
        if verdict.status not in ("correct", "close"):
            return CheckResult("wrong", f"{name}: {verdict.message}")
        if verdict.status == "close" and worst.status == "correct":
            worst = CheckResult("close", f"{name}: {verdict.message}")
    return worst
