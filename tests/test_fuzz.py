"""Bad-input fuzz test over every public callable of ``lessons_lib``.

Every public function of every module (and the public methods of public classes) is found by introspection, so a
new chapter's module is covered without being listed here. Each one needs a baseline call in ``fuzz_specs.py``;
from it, every argument (also those left at a number, string or bool default) is replaced in turn by values of
the families below, chosen by the argument's kind (given in the spec or inferred from the baseline value):

- numbers: ``True``, a numeric string, a complex value, NaN, inf, None; negative and zero where positive;
- counts: 2.5, 3.0, ``"5"``, ``True``, -1, None;
- tensors: a NaN tensor, a complex tensor, a string, None, an extra leading dimension; float32 and int64 copies
  (mixed with the float64 arguments: they must be promoted or refused clearly);
- choices: an unknown option; callables: a non-callable; generators: None (never the global RNG); flags: a string.

Outcome rules. A ValueError or TypeError whose message names an argument of the callable is a clear refusal. An
input that must be refused and is not (it returns) fails, and so does any other exception type, a message that
names no argument, a call that runs past the per-call timeout, and NaN or inf in the output. Inputs that are
acceptable equivalents (float32, int64, NumPy scalars, a tensor of another shape where shapes are free) may return,
with a finite output, or be refused clearly. All failures of one callable are reported in one assertion message.
Known failures are listed with a reason in ``fuzz_specs.KNOWN_FAILURES``; the test is strict about that list, so it
only shrinks: an entry that now passes fails the test until it is removed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
import re
import signal
import warnings

import numpy as np
import pytest
import torch
from collect import collect
from fuzz_specs import KNOWN_FAILURES, OPT_OUT, SPECS

import lessons_lib

# A new chapter keeps its specs in its own tests/test_<topic>.py: FUZZ_SPECS, FUZZ_OPT_OUT and
# FUZZ_KNOWN_FAILURES dicts of the same form as those of tests/fuzz_specs.py (collected by tests/collect.py).
for _attribute, _into in (("FUZZ_SPECS", SPECS), ("FUZZ_OPT_OUT", OPT_OUT), ("FUZZ_KNOWN_FAILURES", KNOWN_FAILURES)):
    for _name, (_stem, _value) in collect(_attribute, skip=("test_fuzz",)).items():
        assert _name not in _into, f"{_attribute}[{_name!r}] of {_stem}.py is also in tests/fuzz_specs.py"
        _into[_name] = _value

TIMEOUT_S = 10
UNSET = inspect.Parameter.empty


def public_callables() -> dict[str, object]:
    """Every public function defined in a module of lessons_lib, and every public method of its public classes,
    keyed ``module.function`` or ``module.Class.method`` (without the ``lessons_lib.`` prefix)."""
    found = {}
    for info in pkgutil.walk_packages(lessons_lib.__path__, "lessons_lib."):
        module = importlib.import_module(info.name)
        short = info.name.removeprefix("lessons_lib.")
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                found[f"{short}.{name}"] = obj
            elif inspect.isclass(obj):
                for meth_name, meth in vars(obj).items():
                    if not meth_name.startswith("_") and inspect.isfunction(meth):
                        found[f"{short}.{name}.{meth_name}"] = meth
    return found


CALLABLES = public_callables()


# ---------------------------------------------------------------------------------------------------------------
# Families of bad (and of acceptable-equivalent) values, by kind of argument.
# Each family is (name, make(value) -> probe, expect) with expect "reject" (must be refused clearly) or
# "accept" (may return a finite result, or be refused clearly).


def _nan_like(t: torch.Tensor) -> torch.Tensor:
    out = t.clone().to(torch.float64 if not t.is_floating_point() else t.dtype)
    out.view(-1)[0] = math.nan
    return out


def _int_like(t: torch.Tensor) -> torch.Tensor:
    """An int64 tensor of the same shape and with the same signs, never zero (so it is not degenerate)."""
    return torch.where(t < 0, -1, 1).to(torch.int64) * torch.clamp(t.abs().round(), min=1).to(torch.int64)


def _number_families(positive: bool, nonneg: bool):
    fams = [
        ("bool", lambda v: True, "reject"),
        ("numeric-string", lambda v: str(float(v)), "reject"),
        ("complex", lambda v: complex(float(v), 1.0), "reject"),
        ("nan", lambda v: math.nan, "reject"),
        ("inf", lambda v: math.inf, "reject"),
        ("none", lambda v: None, "reject"),
        ("numpy-scalar", lambda v: np.float64(v), "accept"),
    ]
    if positive or nonneg:
        fams.append(("negative", lambda v: -abs(float(v)) - 1.0, "reject"))
    if positive:
        fams.append(("zero", lambda v: 0.0, "reject"))
    return fams


FAMILIES = {
    "number": _number_families(False, False),
    "positive": _number_families(True, False),
    "nonneg": _number_families(False, True),
    "count": [
        ("non-integer", lambda v: v + 0.5, "reject"),
        ("integral-float", lambda v: float(v), "reject"),
        ("numeric-string", lambda v: str(v), "reject"),
        ("bool", lambda v: True, "reject"),
        ("negative", lambda v: -1, "reject"),
        ("none", lambda v: None, "reject"),
        ("numpy-int", lambda v: np.int64(v), "accept"),
    ],
    "tensor": [
        ("nan-tensor", _nan_like, "reject"),
        ("complex-tensor", lambda t: t.to(torch.complex128), "reject"),
        ("string", lambda t: "abc", "reject"),
        ("none", lambda t: None, "reject"),
        ("extra-dim", lambda t: t.unsqueeze(0).expand(2, *t.shape).clone(), "accept"),
        ("float32", lambda t: t.to(torch.float32), "accept"),
        ("int64", _int_like, "accept"),
    ],
    "array": [
        ("nan-element", lambda a: [math.nan, *list(a)[1:]], "reject"),
        ("string-element", lambda a: ["abc", *list(a)[1:]], "reject"),
        ("none", lambda a: None, "reject"),
        ("shorter", lambda a: list(a)[:-1], "accept"),
    ],
    "choice": [("unknown-choice", lambda v: "no-such-option", "reject"), ("non-string", lambda v: 3, "reject")],
    "callable": [("non-callable", lambda v: 3, "reject"), ("string", lambda v: "f", "reject"),
                 ("none", lambda v: None, "reject")],
    "generator": [("none", lambda v: None, "reject"), ("non-integer", lambda v: 2.5, "reject"),
                  ("negative", lambda v: -1, "reject")],
    "flag": [("string", lambda v: "yes", "reject")],
    "object": [("none", lambda v: None, "reject"), ("number", lambda v: 3, "reject")],
}


def infer_kind(name: str, value, spec) -> str | None:
    if name in spec.kinds:
        return spec.kinds[name]
    if name in spec.positive.split():
        return "positive"
    if name in spec.nonneg.split():
        return "nonneg"
    if name == "generator" or isinstance(value, torch.Generator):
        return "generator"
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, int):
        return "count"
    if isinstance(value, float):
        return "number"
    if isinstance(value, torch.Tensor):
        return "tensor" if value.is_floating_point() else None
    if isinstance(value, str):
        return "choice"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return "array"
    if callable(value):
        return "callable"
    return "object"


# ---------------------------------------------------------------------------------------------------------------
# Running one call and classifying what happened.


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def nonfinite(result, depth: int = 0, nan_fields: tuple[str, ...] = ()) -> bool:
    """True if ``result`` (a tensor, array, number or a record/tuple/dict of them) holds NaN or inf, outside the
    record fields named in ``nan_fields``."""
    if depth > 4:
        return False
    if isinstance(result, torch.Tensor):
        return result.is_floating_point() and not bool(torch.isfinite(result).all())
    if isinstance(result, np.ndarray):
        return result.dtype.kind == "f" and not bool(np.isfinite(result).all())
    if isinstance(result, float):
        return not math.isfinite(result)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return any(nonfinite(getattr(result, f.name), depth + 1, nan_fields) for f in dataclasses.fields(result)
                   if f.name not in nan_fields)
    if isinstance(result, (list, tuple)):
        return any(nonfinite(r, depth + 1, nan_fields) for r in result[:64])
    if isinstance(result, dict):
        return any(nonfinite(r, depth + 1, nan_fields) for r in list(result.values())[:64])
    return False


def call(fn, args: tuple, kwargs: dict, names: set[str], nan_fields: tuple[str, ...] = ()) -> str:
    """Run ``fn`` and return "clear", "returned", "returned NaN", "hang" or a description of an unclear error."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn(*args, **kwargs)
    except _Hang:
        return f"hang (> {TIMEOUT_S} s)"
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        if any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", msg) for n in names):
            return "clear"
        return f"{type(exc).__name__} naming no argument: {msg[:120]!r}"
    except Exception as exc:  # noqa: BLE001 - any other type is the finding
        return f"{type(exc).__name__}: {str(exc)[:120]!r}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return "returned NaN/inf" if nonfinite(result, nan_fields=nan_fields) else "returned"


def probes(qualname: str):
    """Yield (argument, family, expect, args, kwargs) for every probe of one callable, the baseline first."""
    spec = SPECS[qualname]
    fn = CALLABLES[qualname]
    params = inspect.signature(fn).parameters
    base = spec.call()
    yield "(baseline)", "valid", "valid", base
    # arguments left at a number, string or bool default are probed too, from the default value
    defaults = {k: p.default for k, p in params.items()
                if k not in base and k != "self" and isinstance(p.default, (bool, int, float, str))}
    for arg, value in {**base, **defaults}.items():
        if arg in spec.skip.split() or arg == "self":
            continue
        kind = infer_kind(arg, value, spec)
        if kind is None:
            continue
        default = params[arg].default if arg in params else UNSET
        for family, make, expect in FAMILIES[kind]:
            if family == "none" and default is None:
                continue  # None is the documented default
            try:
                probe = make(value)
            except Exception:  # noqa: BLE001 - a family that does not apply to this value
                continue
            yield arg, family, expect, {**base, arg: probe}


def verdict(expect: str, outcome: str) -> bool:
    if outcome == "clear":
        return True
    if outcome == "returned":
        return expect in ("accept", "valid")
    return False


def run_callable(qualname: str) -> tuple[list[tuple[str, str, str]], int]:
    """All failing probes of one callable as (argument, family, outcome), and the number of calls made."""
    fn = CALLABLES[qualname]
    spec = SPECS[qualname]
    names = set(inspect.signature(fn).parameters) | {"seed_or_generator", "LESSONS_DEVICE"}
    failures, calls = [], 0
    for arg, family, expect, kwargs in probes(qualname):
        names_here = names | set(kwargs) | ({kwargs["name"]} if isinstance(kwargs.get("name"), str) else set())
        args = (spec.instance(),) if spec.instance is not None else ()
        torch.manual_seed(0)  # a call that (wrongly) draws from the global RNG still gives one answer
        outcome = call(fn, args, kwargs, names_here, tuple(spec.nan_fields.split()))
        calls += 1
        if expect == "valid" and outcome != "returned":
            return [("(baseline)", "valid", outcome)], calls
        if not verdict(expect, outcome):
            failures.append((arg, family, outcome))
    return failures, calls


def test_every_public_callable_has_a_spec_or_an_opt_out():
    missing = sorted(set(CALLABLES) - set(SPECS) - set(OPT_OUT))
    assert not missing, (
        "These public callables have no bad-input baseline: add a cheap valid call for each to FUZZ_SPECS at the end "
        "of the chapter's tests/test_<topic>.py (SPECS in tests/fuzz_specs.py for the core), or a FUZZ_OPT_OUT entry "
        f"with a reason if it takes nothing worth probing: {missing}"
    )
    stale = sorted((set(SPECS) | set(OPT_OUT) | set(KNOWN_FAILURES)) - set(CALLABLES))
    assert not stale, f"fuzz_specs.py names callables that no longer exist: {stale}"
    both = sorted(set(SPECS) & set(OPT_OUT))
    assert not both, f"both a spec and an opt-out: {both}"


@pytest.mark.parametrize("qualname", sorted(SPECS))
def test_bad_inputs_are_refused_clearly(qualname):
    failures, _ = run_callable(qualname)
    known = KNOWN_FAILURES.get(qualname, {})
    found = {(arg, family) for arg, family, _ in failures}
    new = [f for f in failures if (f[0], f[1]) not in known]
    fixed = sorted(set(known) - found)
    lines = [f"  {arg}={family}: {outcome}" for arg, family, outcome in new]
    assert not new, f"{qualname}: {len(new)} bad input(s) not refused clearly:\n" + "\n".join(lines)
    assert not fixed, f"{qualname}: these KNOWN_FAILURES now pass; remove them from tests/fuzz_specs.py: {fixed}"
