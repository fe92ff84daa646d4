"""Explorer controls and their grids: what a learner can set, and which values the frames are drawn at.

A control has a *grid*: the values a live slider snaps to and the static page precomputes (thinned to the
page's frame budget by :func:`static_grid`). Snapping the live slider to the same grid is what lets a live
explorer cache its frames and show the very pictures of the static page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from ..backend import check_count, check_real

Kind = Literal["linear", "log", "choice", "toggle"]


@dataclass(frozen=True)
class Control:
    """One explorer control: its kind, the grid of values it takes on the static page, its default.

    Build controls with :func:`linear`, :func:`log`, :func:`choice` and :func:`toggle`.
    """

    kind: Kind
    values: tuple
    default: Any
    label: str | None = None

    @property
    def slider(self) -> bool:
        """Whether the control is shown as a slider: a numeric range, or a choice among numbers."""
        if self.kind in ("linear", "log"):
            return True
        return self.kind == "choice" and len(self.values) > 1 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)

    def format(self, value) -> str:
        """Human-readable value, as shown next to a slider."""
        if self.kind in ("linear", "log"):
            return f"{check_real(value, name='value'):.3g}"
        return str(value)


def _grid_control(kind: Kind, values: list[float], value, label) -> Control:
    if value is None:
        value = values[(len(values) - 1) // 2]
    value = check_real(value, name="value")
    lo, hi = min(values), max(values)
    if not lo <= value <= hi:
        raise ValueError(f"value: default {value:g} lies outside the range [{lo:g}, {hi:g}]")
    near = [v for v in values if math.isclose(value, v, rel_tol=1e-9, abs_tol=1e-15)]
    if near:
        value = near[0]  # snap to the grid, so the default frame is one of the static frames
    else:
        values = sorted(values + [value])
    return Control(kind, tuple(values), value, label)


def _check_range(start, stop, num) -> tuple[float, float]:
    num = check_count(num, name="num")
    start, stop = check_real(start, name="start"), check_real(stop, name="stop")
    if not stop > start and num > 1:
        raise ValueError(f"stop: must exceed start ({start:g}), got {stop:g}")
    return start, stop


def linear(start: float, stop: float, num: int = 9, *, value: float | None = None,
           label: str | None = None) -> Control:
    """A linear slider from ``start`` to ``stop``; the static page gets ``num`` evenly spaced stops."""
    start, stop = _check_range(start, stop, num)
    values = [start + (stop - start) * i / max(num - 1, 1) for i in range(num)]
    return _grid_control("linear", values, value, label)


def log(start: float, stop: float, num: int = 9, *, value: float | None = None,
        label: str | None = None) -> Control:
    """A log-scale slider from ``start`` to ``stop`` (both > 0), ``num`` geometric stops.

    Each stop is rounded to 12 significant digits, so a stop that is a round number in exact arithmetic is
    exactly that number (``log(0.125, 4, 21)`` passes through 1.0, not 0.9999999999999998), and a product of
    stops such as ``lr * a`` lands exactly on 1 or 2 where it should.
    """
    if not (check_real(start, name="start") > 0 and check_real(stop, name="stop") > 0):
        raise ValueError(f"start: a log slider needs start > 0 and stop > 0, got {start!r}, {stop!r}")
    a, b = (math.log10(v) for v in _check_range(start, stop, num))
    values = [float(f"{10 ** (a + (b - a) * i / max(num - 1, 1)):.12g}") for i in range(num)]
    return _grid_control("log", values, value, label)


def choice(options: Sequence, *, value=None, label: str | None = None) -> Control:
    """A dropdown over ``options`` (shown with ``str``)."""
    if isinstance(options, (str, bytes)) or not hasattr(options, "__iter__"):
        raise ValueError(f"options: expected a sequence of options, got {type(options).__name__}")
    options = tuple(options)
    if not options:
        raise ValueError("options: a choice needs at least one option")
    if value is None:
        value = options[0]
    if value not in options:
        raise ValueError(f"value: {value!r} is not one of the options {options!r}")
    return Control("choice", options, value, label)


def toggle(value: bool = False, *, label: str | None = None) -> Control:
    """A checkbox: ``draw`` receives ``False`` or ``True``."""
    if not isinstance(value, bool):
        raise ValueError(f"value: a toggle's default must be a bool, got {value!r}")
    return Control("toggle", (False, True), value, label)


def as_control(name: str, spec) -> Control:
    if isinstance(spec, Control):
        return spec
    if isinstance(spec, bool):
        return toggle(spec)
    if isinstance(spec, (list, tuple)) and spec:
        return choice(spec)
    raise ValueError(
        f"{name}: expected a Control (linear, log, choice, toggle), a non-empty list of options or "
        f"a bool, got {spec!r}"
    )


def thin(values: tuple, default, count: int) -> tuple:
    """``count`` values spread evenly over ``values``, always keeping ``default`` and both ends."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"values: expected a non-empty sequence of grid values, got {type(values).__name__}")
    values = tuple(values)
    count = check_count(count, name="count")
    if default not in values:
        raise ValueError(f"default: {default!r} is not one of the values")
    n = len(values)
    if count >= n:
        return values
    keep = {round(i * (n - 1) / max(count - 1, 1)) for i in range(count)}
    d = values.index(default)
    if d not in keep:  # replace the kept index nearest to the default
        keep.remove(min(keep - {0, n - 1} or keep, key=lambda i: abs(i - d)))
        keep.add(d)
    return tuple(values[i] for i in sorted(keep))


def static_grid(controls: Mapping[str, Control], max_frames: int) -> dict[str, tuple]:
    """The grid of values drawn for a static page, thinned to at most ``max_frames`` frames (a pure function).

    Sliders are thinned first, the one with most stops first; choices and toggles are kept whole
    unless they alone exceed the cap. Every control keeps its default and both ends.
    """
    cap = check_count(max_frames, name="max_frames")
    if not isinstance(controls, Mapping) or not all(isinstance(c, Control) for c in controls.values()):
        raise ValueError(f"controls: expected a mapping of name -> Control, got {type(controls).__name__}")
    counts = {k: len(c.values) for k, c in controls.items()}
    while math.prod(counts.values()) > cap:
        sliders = [k for k in counts if controls[k].kind in ("linear", "log") and counts[k] > 2]
        pool = sliders or [k for k in counts if counts[k] > 1]
        if not pool:
            break
        k = max(pool, key=lambda name: counts[name])
        counts[k] -= 1
    return {k: thin(c.values, c.default, counts[k]) for k, c in controls.items()}


def defaults(controls: Mapping[str, Control]) -> dict[str, Any]:
    """Each control's default value."""
    return {k: c.default for k, c in controls.items()}
