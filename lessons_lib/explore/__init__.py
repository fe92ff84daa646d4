"""Explorers: a figure with controls, shown as live ipywidgets or as a static HTML slider.

``explore(draw, lr=log(1e-3, 1, 13), a=linear(0.5, 4, 8))`` returns an :class:`Explorer`. Its display
depends on where the notebook runs:

* **live kernel** (the default): ipywidgets controls; sliders snap to each control's grid. A change
  shows the frame of the new values in an ``Image`` widget. Frames are cached, and after the first
  display the rest of the grid is rendered in the kernel's idle time, so later moves are a lookup.
* **static build** (``LESSONS_STATIC=1``, set by ``make book`` and ``make test``): every combination of
  the grid values is drawn once, as a palette PNG, and packed into a self-contained HTML block with
  native sliders, menus and checkboxes (:mod:`.static`). No kernel, no CDN, no request. The grid is
  thinned to respect ``max_frames`` and ``max_bytes``, and the explorer says so when it happens.

**Compute apart from drawing.** ``explore(draw, compute=compute, **controls)``: ``compute(**values)``
returns the data a frame needs and is cached by the control values; ``draw(data, **values)`` only plots.
With ``vectorize="lr"`` the compute is vectorised over that control: it receives the whole tuple of its grid
values and returns one item per value, so a grid is precomputed in one batched call (all learning rates
of a model in one run). Without ``compute``, ``draw(**values)`` does both.

Both forms call the same code path (:meth:`Explorer.frame`), so they show the same pictures.
``add_display_hook`` lets a tool (the benchmark) see each explorer as it is displayed; the display path
reads no environment variable of its own besides ``LESSONS_STATIC`` and ``LESSONS_WARM=0``, which switches the
live explorer's idle-time warm-up off where nobody moves a slider (nbgrader's autograde, the course tests).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from matplotlib.figure import Figure

from ..backend import check_count, check_positive, static_build
from .controls import Control, as_control, choice, defaults, linear, log, static_grid, thin, toggle
from .render import Renderer, figure_png
from .static import page, render_frames

__all__ = ["Control", "Explorer", "Renderer", "add_display_hook", "choice", "explore", "figure_png", "linear", "log",
           "remove_display_hook", "static_grid", "thin", "toggle"]

_HOOKS: list[Callable[["Explorer"], None]] = []


def add_display_hook(hook: Callable[["Explorer"], None]) -> None:
    """Call ``hook(explorer)`` whenever an explorer is displayed, after its live widget is built
    (or before its static page is rendered). Used by ``benchmarks/latency.py``."""
    if not callable(hook):
        raise ValueError(f"hook: expected a callable, got {type(hook).__name__}")
    if hook not in _HOOKS:
        _HOOKS.append(hook)


def remove_display_hook(hook: Callable[["Explorer"], None]) -> None:
    """Undo :func:`add_display_hook` (no error if ``hook`` was not added)."""
    if hook in _HOOKS:
        _HOOKS.remove(hook)


@dataclass
class Explorer:
    """A figure with controls; see the module docstring. Build with :func:`explore`."""

    draw: Callable[..., Figure]
    controls: dict[str, Control]
    compute: Callable[..., Any] | None = None
    vectorize: str | None = None
    max_frames: int = 64
    max_bytes: int = 1_400_000
    dpi: float = 80
    palette: int = 96
    timings: list[float] = field(default_factory=list)  # seconds per live update a learner made
    renderer: Renderer = field(default=None, repr=False)
    view: Any = field(default=None, repr=False)  # the LiveView, once displayed live
    _data: dict = field(default_factory=dict, repr=False)
    _frames: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.renderer is None:
            self.renderer = Renderer(self.dpi)

    # -- values and data -------------------------------------------------------------------
    def defaults(self) -> dict[str, Any]:
        return defaults(self.controls)

    def values(self, **values) -> dict[str, Any]:
        """``values`` with the missing controls at their defaults, in the controls' order."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"values: unknown control(s) {sorted(unknown)}; known: {sorted(self.controls)}")
        return {k: values.get(k, c.default) for k, c in self.controls.items()}

    @staticmethod
    def _key(values: dict) -> tuple:
        return tuple(values.items())

    def data(self, **values) -> Any:
        """``compute(**values)``, cached by the values; with ``vectorize``, the whole axis is computed at once."""
        if self.compute is None:
            raise ValueError("compute: this explorer has none (its draw computes and plots)")
        values = self.values(**values)
        key = self._key(values)
        if key not in self._data:
            if self.vectorize is None:
                self._data[key] = self.compute(**values)
            else:
                axis = self.controls[self.vectorize].values
                if values[self.vectorize] not in axis:
                    axis = axis + (values[self.vectorize],)
                items = self.compute(**{**values, self.vectorize: axis})
                if len(items) != len(axis):
                    raise ValueError(f"compute: with vectorize={self.vectorize!r} it must return one item per "
                                     f"value ({len(axis)}), got {len(items)}")
                for v, item in zip(axis, items):
                    self._data[self._key({**values, self.vectorize: v})] = item
        return self._data[key]

    def figure(self, **values) -> Figure:
        """The figure of ``values`` (missing controls at their defaults), not yet rendered."""
        values = self.values(**values)
        if self.compute is None:
            return self.draw(**values)
        return self.draw(self.data(**values), **values)

    # -- frames ----------------------------------------------------------------------------
    def frame(self, *, palette: int | None = None, **values) -> bytes:
        """PNG bytes of the frame of ``values``; live frames (``palette=None``) are cached."""
        values = self.values(**values)
        key = self._key(values)
        if palette is None and key in self._frames:
            return self._frames[key]
        png = self.renderer.png(lambda: self.figure(**values), palette=palette)
        if palette is None:
            self._frames[key] = png
        return png

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the controls' grid values (what a live explorer can reach)."""
        names = list(self.controls)
        return [dict(zip(names, combo)) for combo in itertools.product(*(c.values for c in self.controls.values()))]

    def is_cached(self, values: dict) -> bool:
        return self._key(self.values(**values)) in self._frames

    def uncached(self, near: dict | None = None) -> list[dict[str, Any]]:
        """The grid points without a cached frame, those fewest slider steps from ``near`` first."""
        points = [p for p in self.grid_points() if not self.is_cached(p)]
        if near:
            index = {k: {v: i for i, v in enumerate(c.values)} for k, c in self.controls.items()}
            here = {k: index[k].get(v, 0) for k, v in self.values(**near).items()}
            points.sort(key=lambda p: sum(abs(index[k][v] - here[k]) for k, v in p.items()))
        return points

    def warm(self) -> int:
        """Render every grid frame not yet cached, now; returns how many were rendered."""
        todo = self.uncached()
        for p in todo:
            self.frame(**p)
        return len(todo)

    def clear_cache(self) -> None:
        """Forget the cached data and frames (a cold start, for ``make bench``)."""
        self._data.clear()
        self._frames.clear()

    # -- static ----------------------------------------------------------------------------
    def static_grid(self, max_frames: int | None = None) -> dict[str, tuple]:
        """The grid of values drawn for the static page, thinned to at most ``max_frames`` frames."""
        return static_grid(self.controls, self.max_frames if max_frames is None else max_frames)

    def static_html(self) -> str:
        """Render every grid frame and return the self-contained HTML explorer."""
        full = math.prod(len(c.values) for c in self.controls.values())
        cap = self.max_frames
        for _ in range(4):
            grid = self.static_grid(cap)
            frames, images = render_frames(grid, lambda **v: self.frame(palette=self.palette, **v))
            total = sum(4 * math.ceil(len(png) / 3) for png in images)  # their base64 size
            if total <= self.max_bytes:
                return page(self.controls, grid, frames, images, full)
            n = len(frames)
            cap = max(1, min(n - 1, int(n * self.max_bytes / total * 0.9)))
        raise RuntimeError(f"explorer: could not fit its frames in max_bytes={self.max_bytes}")

    # -- live ------------------------------------------------------------------------------
    def widget(self):
        """The live ipywidgets view (built once): controls above an Image of the current frame."""
        if self.view is None:
            from .live import LiveView

            self.view = LiveView(self)
        return self.view.widget

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = f"<Explorer over {', '.join(self.controls)}>"
        if static_build():
            for hook in list(_HOOKS):
                hook(self)
            return {"text/html": self.static_html(), "text/plain": text}
        bundle = dict(self.widget()._repr_mimebundle_())
        for hook in list(_HOOKS):
            hook(self)
        self.view.warm_later()
        import base64

        png = base64.b64encode(self.frame()).decode("ascii")
        bundle["text/html"] = (
            f'<img alt="explorer default frame" src="data:image/png;base64,{png}">'
            "<p><em>Run the notebook in a live kernel to move the controls.</em></p>"
        )
        bundle["text/plain"] = text
        return bundle


def explore(draw: Callable[..., Figure], *, compute: Callable[..., Any] | None = None,
            vectorize: str | None = None,
            max_frames: int = 64, max_bytes: int = 1_400_000, dpi: float = 80, **controls) -> Explorer:
    """Make an explorer of ``draw`` over ``controls`` (keyword name -> Control).

    Args:
        draw: ``draw(**values) -> Figure``, or with ``compute``, ``draw(data, **values) -> Figure``;
            holds no maths, only library calls and plotting.
        compute: ``compute(**values) -> data``, cached by the values (see the module docstring).
        vectorize: the name of one control over which ``compute`` is vectorised: it then receives
            that control's whole grid as a tuple and returns a sequence with one item per value.
        max_frames: cap on the static frames; larger grids are thinned (the page says so).
        max_bytes: cap on the base64 frame data of the static page (default 1.4 MB, under the
            book's 1.5 MB per explorer).
        dpi: resolution of each frame.
        **controls: one :class:`Control` per keyword argument of ``draw``; a bool is shorthand
            for :func:`toggle`, a list for :func:`choice`.

    Returns:
        An :class:`Explorer`; displaying it shows the live or static form.
    """
    if not callable(draw):
        raise ValueError(f"draw: expected a callable returning a Figure, got {type(draw).__name__}")
    if compute is not None and not callable(compute):
        raise ValueError(f"compute: expected a callable returning the data of a frame, got {type(compute).__name__}")
    if not controls:
        raise ValueError("controls: an explorer needs at least one control (the control grid is empty)")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise ValueError(f"max_frames: expected an integer >= 1, got {max_frames!r}")
    max_bytes = check_count(max_bytes, name="max_bytes")
    dpi = check_positive(dpi, name="dpi")
    parsed = {k: as_control(k, v) for k, v in controls.items()}
    if vectorize is not None:
        if compute is None:
            raise ValueError("vectorize: needs a compute function to vectorise")
        if vectorize not in parsed:
            raise ValueError(f"vectorize: expected the name of a control, one of {sorted(parsed)}, got {vectorize!r}")
    return Explorer(draw, parsed, compute=compute, vectorize=vectorize, max_frames=max_frames, max_bytes=int(max_bytes),
                    dpi=dpi)

