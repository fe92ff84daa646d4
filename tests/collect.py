"""Cases that live beside their chapter: gather a dict that several tests/test_<topic>.py files define.

A chapter's tests end with the cases that the book-wide tests run for it: ``CHECK_CASES`` (its self-checks,
run by tests/test_course.py), ``DIVERGENCE_CASES`` (its runners far past stability, run by
tests/test_divergence.py) and ``FUZZ_SPECS`` (baseline calls of its public functions, run by
tests/test_fuzz.py). Adding a chapter then touches only its own files.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def collect(attribute: str, *, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, object]]:
    """``attribute`` of every tests/test_*.py that assigns it at the start of a line, merged.

    Files are imported by their stem from tests/, as pytest imports them. A key defined in two files is
    an error.

    Returns:
        key -> (the defining test file's stem, value).
    """
    defines = re.compile(rf"^{re.escape(attribute)}\b.*=", re.M)
    found: dict[str, tuple[str, object]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        if path.stem in skip or not defines.search(path.read_text()):
            continue
        module = sys.modules.get(path.stem) or importlib.import_module(path.stem)
        for key, value in getattr(module, attribute).items():
            assert key not in found, f"{attribute}[{key!r}] is defined in both {found[key][0]}.py and {path.name}"
            found[key] = (path.stem, value)
    return found
