"""Exercise self-checks: they say correct, close or wrong, with a hint, and never the answer.

``check/core.py`` holds what every check shares (:class:`CheckResult`, :func:`compare`,
:func:`check_function`); each chapter with a code exercise has its own ``check/<topic>.py``, named
after its topic module. Notebooks call ``check.<name>(...)``: every public function of a
``check/<topic>.py`` is found here by name, without a list to keep up to date, and its file is
imported on first use (so importing ``check`` does not import every chapter's module).

A new check builds on :func:`compare` or :func:`check_function` with a hint computed from the
learner's value, and its behaviour case (right, near and two wrong values) goes into
``CHECK_CASES`` at the end of ``tests/test_<topic>.py``; a check without one fails
tests/test_course.py (book/how-to-use.md, "For authors").
"""

from __future__ import annotations

import ast
import functools
import importlib
import pathlib
from types import ModuleType
from typing import Callable

from .core import CheckResult, Status, check_function, compare, not_attempted

__all__ = ["CheckResult", "Status", "check_function", "compare", "not_attempted", "index"]

_HERE = pathlib.Path(__file__).resolve().parent
_SHARED = {"__init__", "core"}


@functools.lru_cache(maxsize=None)
def index() -> dict[str, str]:
    """Every self-check: its name and the topic of the ``check/<topic>.py`` that defines it.

    Read from the files' syntax trees (their public top-level functions), so nothing is imported.

    Raises:
        ImportError: if two topic files define a check of the same name.
    """
    found: dict[str, str] = {}
    for path in sorted(_HERE.glob("*.py")):
        if path.stem in _SHARED or path.stem.startswith("_"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                if node.name in found:
                    raise ImportError(f"check.{node.name} is defined in check/{found[node.name]}.py "
                                      f"and check/{path.stem}.py")
                found[node.name] = path.stem
    return found


def __getattr__(name: str) -> Callable | ModuleType:
    """``check.<name>`` for a check in any ``check/<topic>.py``, and ``check.<topic>`` for the file itself."""
    topic = index().get(name)
    if topic is not None:
        return getattr(importlib.import_module(f"{__name__}.{topic}"), name)
    if name in set(index().values()):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(index()) | set(index().values()))
