"""Explorers: one ``draw`` function, shown as live ipywidgets or as a static HTML slider.

``explore(draw, lr=log(1e-3, 1, 13), a=linear(0.5, 4, 8))`` returns an :class:`Explorer`. Its
display depends on where the notebook runs:

* **live kernel** (the default): ipywidgets controls wired to ``draw`` with
  ``interactive_output``; each change redraws the figure in place in an ``Image`` widget. Nothing
  else is drawn, so the first display costs one draw.
* **static build** (``LESSONS_STATIC=1``, set by ``make book`` and ``make test``): every
  combination of the controls' grid values is drawn once, encoded as a palette PNG, and packed into
  a self-contained HTML block with native ``<input type=range>``, ``<select>`` and checkbox
  elements and a few lines of inline JavaScript that swap the frame. No kernel, no CDN, no request.
  Without JavaScript the default frame shows. The grid is thinned to respect ``max_frames`` and
  ``max_bytes``, and the explorer says so when it happens.

The draw function holds no maths: it calls the library, plots, and returns a matplotlib Figure.
"""

from __future__ import annotations

import base64
import gc
import html
import io
import itertools
import json
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .backend import check_count, check_positive, check_real, static_build

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
    """A log-scale slider from ``start`` to ``stop`` (both > 0), ``num`` geometric stops."""
    if not (check_real(start, name="start") > 0 and check_real(stop, name="stop") > 0):
        raise ValueError(f"start: a log slider needs start > 0 and stop > 0, got {start!r}, {stop!r}")
    a, b = (math.log10(v) for v in _check_range(start, stop, num))
    values = [10 ** (a + (b - a) * i / max(num - 1, 1)) for i in range(num)]
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


def _as_control(name: str, spec) -> Control:
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


def _thin(values: tuple, default, count: int) -> tuple:
    """``count`` values spread evenly over ``values``, always keeping ``default`` and both ends."""
    n = len(values)
    if count >= n:
        return values
    keep = {round(i * (n - 1) / max(count - 1, 1)) for i in range(count)}
    d = values.index(default)
    if d not in keep:  # replace the kept index nearest to the default
        keep.remove(min(keep - {0, n - 1} or keep, key=lambda i: abs(i - d)))
        keep.add(d)
    return tuple(values[i] for i in sorted(keep))


def figure_png(fig: Figure, *, dpi: float, palette: int | None = None,
               canvas: FigureCanvasAgg | None = None) -> bytes:
    """Encode ``fig`` as PNG bytes and close it; ``palette`` colours quantise it (smaller pages).

    The figure is rendered once on an Agg canvas (``savefig`` renders twice when the figure has a
    layout engine). Passing the previous frame's ``canvas`` reuses its renderer and with it
    matplotlib's per-renderer cache of text metrics, which halves the cost of redrawing tick labels.
    """
    from PIL import Image

    if not isinstance(fig, Figure):
        raise ValueError(f"fig: expected a matplotlib Figure, got {type(fig).__name__}")
    dpi = check_positive(dpi, name="dpi")

    plt.close(fig)
    fig.dpi = dpi
    if canvas is None:
        canvas = FigureCanvasAgg(fig)
    else:
        canvas.figure = fig
        fig.set_canvas(canvas)
    canvas.draw()
    img = Image.frombuffer("RGBA", canvas.get_width_height(physical=True), canvas.buffer_rgba(),
                           "raw", "RGBA", 0, 1)
    img = img.convert("RGB")  # the house style's figures are opaque
    out = io.BytesIO()
    if palette is None:  # a live frame: fast compression (the bytes only travel to the local front end)
        img.save(out, format="PNG", compress_level=1)
    else:
        img.quantize(colors=palette, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


@dataclass
class Explorer:
    """A figure with controls; see the module docstring. Build with :func:`explore`."""

    draw: Callable[..., Figure]
    controls: dict[str, Control]
    max_frames: int = 64
    max_bytes: int = 1_400_000
    dpi: float = 80
    palette: int = 96
    timings: list[float] = field(default_factory=list)  # seconds per live update (draw + encode)
    _widget: Any = field(default=None, repr=False)
    _image: Any = field(default=None, repr=False)
    _controls: dict = field(default_factory=dict, repr=False)
    _layout: Any = field(default=None, repr=False)
    _canvas: Any = field(default=None, repr=False)
    _split: tuple = field(default=(0.0, 0.0), repr=False)

    # -- drawing ---------------------------------------------------------------------------
    def defaults(self) -> dict[str, Any]:
        return {k: c.default for k, c in self.controls.items()}

    def frame(self, *, palette: int | None = None, **values) -> bytes:
        """Call ``draw(**values)`` (missing controls take their defaults) and return PNG bytes.

        This is the cost of one live update, so it is kept lean (see ``make bench``): the layout is
        solved once, the Agg canvas is reused, titles sit at a fixed height, and the cyclic garbage
        collector is paused during the redraw. Without the pause, collections in the middle of a
        redraw promote the figure's objects to the oldest generation, and freeing them later takes a
        full collection (200+ ms with torch loaded); instead the closed figure is freed at once.
        """
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"values: unknown control(s) {sorted(unknown)}; known: {sorted(self.controls)}")
        enabled = gc.isenabled()
        gc.disable()
        try:
            # matplotlib places titles by measuring every tick label on each draw; the explorers
            # have no top-side ticks, so y = 1 is the same place, found for free
            t0 = time.perf_counter()
            with plt.rc_context({"axes.titley": 1.0}):
                fig = self.draw(**{**self.defaults(), **values})
            if not isinstance(fig, Figure):
                raise ValueError(f"draw: must return a matplotlib Figure, got {type(fig).__name__}")
            t1 = time.perf_counter()
            png = self._encode(fig, palette)
            self._split = (t1 - t0, time.perf_counter() - t1)  # (draw, render + encode), for make bench
            return png
        finally:
            if enabled:
                gc.enable()
                gc.collect(1)

    def _encode(self, fig: Figure, palette: int | None) -> bytes:
        # Constrained layout costs half of a redraw. Frames of one explorer share their layout, so it
        # is solved once (on the first frame) and reused while the figure keeps the same axes.
        shape = (tuple(fig.get_size_inches()), len(fig.axes))
        if self._layout is not None and self._layout[0] == shape:
            fig.set_layout_engine("none")
            for ax, pos in zip(fig.axes, self._layout[1]):
                ax.set_position(pos)
            png = figure_png(fig, dpi=self.dpi, palette=palette, canvas=self._canvas)
            self._canvas = fig.canvas
            return png
        axes = list(fig.axes)
        png = figure_png(fig, dpi=self.dpi, palette=palette, canvas=self._canvas)
        self._canvas = fig.canvas
        self._layout = (shape, [ax.get_position() for ax in axes])
        return png

    # -- static ----------------------------------------------------------------------------
    def static_grid(self, max_frames: int | None = None) -> dict[str, tuple]:
        """The grid of values drawn for the static page, thinned to at most ``max_frames`` frames.

        Sliders are thinned first, the one with most stops first; choices and toggles are kept whole
        unless they alone exceed the cap.
        """
        cap = self.max_frames if max_frames is None else check_count(max_frames, name="max_frames")
        grid = {k: c.values for k, c in self.controls.items()}
        counts = {k: len(v) for k, v in grid.items()}
        while math.prod(counts.values()) > cap:
            sliders = [k for k in counts if self.controls[k].kind in ("linear", "log") and counts[k] > 2]
            pool = sliders or [k for k in counts if counts[k] > 1]
            if not pool:
                break
            k = max(pool, key=lambda name: counts[name])
            counts[k] -= 1
        return {k: _thin(v, self.controls[k].default, counts[k]) for k, v in grid.items()}

    def static_html(self) -> str:
        """Render every grid frame and return the self-contained HTML explorer."""
        full = math.prod(len(c.values) for c in self.controls.values())
        cap = self.max_frames
        for _ in range(4):
            grid = self.static_grid(cap)
            names = list(grid)
            images: list[str] = []
            seen: dict[bytes, int] = {}
            frames: dict[str, int] = {}
            for combo in itertools.product(*(range(len(grid[k])) for k in names)):
                png = self.frame(palette=self.palette, **{k: grid[k][i] for k, i in zip(names, combo)})
                if png not in seen:
                    seen[png] = len(images)
                    images.append(base64.b64encode(png).decode("ascii"))
                frames["-".join(map(str, combo))] = seen[png]
            total = sum(len(s) for s in images)
            if total <= self.max_bytes:
                break
            n = len(frames)
            cap = max(1, min(n - 1, int(n * self.max_bytes / total * 0.9)))
        else:
            raise RuntimeError(f"explorer: could not fit its frames in max_bytes={self.max_bytes}")
        return self._html(grid, frames, images, full)

    def _html(self, grid, frames, images, full) -> str:
        uid = "lx-" + uuid.uuid4().hex[:10]
        names = list(grid)
        default_idx = [grid[k].index(self.controls[k].default) for k in names]
        default_img = images[frames["-".join(map(str, default_idx))]]
        rows = []
        for k, i in zip(names, default_idx):
            c = self.controls[k]
            label = html.escape(c.label or k)
            if c.kind in ("linear", "log"):
                rows.append(
                    f'<label>{label} <input type="range" min="0" max="{len(grid[k]) - 1}" step="1" '
                    f'value="{i}" data-control="{html.escape(k)}" aria-label="{label}">'
                    f"<output>{html.escape(c.format(grid[k][i]))}</output></label>"
                )
            elif c.kind == "choice":
                opts = "".join(
                    f'<option value="{j}"{" selected" if j == i else ""}>{html.escape(str(v))}</option>'
                    for j, v in enumerate(grid[k])
                )
                rows.append(f'<label>{label} <select data-control="{html.escape(k)}">{opts}</select></label>')
            else:
                rows.append(
                    f'<label><input type="checkbox" data-control="{html.escape(k)}"'
                    f'{" checked" if i else ""}> {label}</label>'
                )
        n = len(frames)
        note = f"{n} precomputed frames"
        if n < full:
            note += f" (grid thinned from {full} to {n} to keep the page light; run the notebook for every value)"
        data = {
            "labels": {k: [self.controls[k].format(v) for v in grid[k]] for k in names},
            "frames": frames,
            "images": images,
        }
        payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        return (
            f'<div class="lessons-explorer" id="{uid}">'
            f"<style>#{uid}{{font-family:sans-serif;font-size:0.9em;max-width:100%}}"
            f"#{uid} .lx-controls{{display:flex;flex-wrap:wrap;gap:0.4em 1.4em;margin-bottom:0.3em}}"
            f"#{uid} label{{display:inline-flex;align-items:center;gap:0.4em}}"
            f"#{uid} output{{min-width:3.5em;font-variant-numeric:tabular-nums}}"
            f"#{uid} img{{max-width:100%;height:auto;background:#fff}}"
            f"#{uid} .lx-note{{color:#666;font-size:0.85em;margin:0}}</style>"
            f'<form class="lx-controls" onsubmit="return false">{"".join(rows)}</form>'
            f'<img class="lx-frame" alt="explorer frame" src="data:image/png;base64,{default_img}">'
            f'<p class="lx-note">{html.escape(note)}.</p>'
            f'<script type="application/json" class="lx-data">{payload}</script>'
            f"<script>{_JS}</script></div>"
        )

    # -- live ------------------------------------------------------------------------------
    def _update(self, **values) -> None:
        t0 = time.perf_counter()
        self._image.value = self.frame(**values)
        self.timings.append(time.perf_counter() - t0)

    def widget(self):
        """The live ipywidgets view (built once): controls above an Image updated in place."""
        if self._widget is not None:
            return self._widget
        import ipywidgets as w

        self._image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        t0 = time.perf_counter()
        self._image.value = self.frame()  # the first draw also tells us how slow a redraw is
        continuous = time.perf_counter() - t0 < 0.1
        ctrls = {}
        for k, c in self.controls.items():
            desc = c.label or k
            common = dict(description=desc, continuous_update=continuous,
                          style={"description_width": "initial"})
            if c.kind == "linear":
                lo, hi = c.values[0], c.values[-1]
                step = (hi - lo) / 200 if hi > lo else 1.0
                ctrls[k] = w.FloatSlider(value=c.default, min=lo, max=hi, step=step,
                                         readout_format=".3g", **common)
            elif c.kind == "log":
                lo, hi = math.log10(c.values[0]), math.log10(c.values[-1])
                ctrls[k] = w.FloatLogSlider(value=c.default, base=10, min=lo, max=hi,
                                            step=(hi - lo) / 200 or 0.01, readout_format=".3g", **common)
            elif c.kind == "choice":
                ctrls[k] = w.Dropdown(options=list(c.values), value=c.default, description=desc)
            else:
                ctrls[k] = w.Checkbox(value=c.default, description=desc, indent=False)
        out = w.interactive_output(self._update, ctrls)
        self.timings.clear()  # interactive_output redraws once at start; keep only user moves
        self._controls = ctrls
        box = w.HBox(list(ctrls.values()), layout=w.Layout(flex_flow="row wrap"))
        self._widget = w.VBox([box, self._image, out])
        return self._widget

    def bench_latency(self, path: str, max_points: int | None = None) -> dict:
        """Time one live update (``draw`` + PNG encode + canvas refresh) at every grid point.

        The benchmark (``make bench``) sets ``LESSONS_BENCH_LATENCY=<file>``; each displayed explorer
        then calls this before showing itself and appends one JSON line to ``path``. With a live
        widget the refresh is the ``Image`` update sent to the front end; without one (static build,
        no ipywidgets) only ``draw`` and the encode are timed. ``max_points`` (or
        ``LESSONS_BENCH_GRID``) thins the grid as the static page does, for quick checks.
        """
        grid = {k: c.values for k, c in self.controls.items()}
        full = math.prod(len(v) for v in grid.values())
        if max_points:
            grid = self.static_grid(max_points)
        names = list(grid)
        times, draws = [], []
        for combo in itertools.product(*(grid[k] for k in names)):
            values = dict(zip(names, combo))
            if self._image is not None:
                self._update(**values)
                times.append(self.timings.pop())
            else:
                t0 = time.perf_counter()
                self.frame(**values)
                times.append(time.perf_counter() - t0)
            draws.append(self._split[0])
        if self._image is not None:
            self._image.value = self.frame()  # leave the default view showing
        record = {"draw": getattr(self.draw, "__name__", "draw"), "controls": names, "grid": full,
                  "points": len(times), "refresh": self._image is not None, "times_s": times,
                  "draw_s": draws}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return record

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = f"<Explorer over {', '.join(self.controls)}>"
        bench = os.environ.get("LESSONS_BENCH_LATENCY", "").strip()
        if static_build():
            if bench:
                self.bench_latency(bench, int(os.environ.get("LESSONS_BENCH_GRID", "0") or 0))
            return {"text/html": self.static_html(), "text/plain": text}
        bundle = dict(self.widget()._repr_mimebundle_())
        if bench:
            self.bench_latency(bench, int(os.environ.get("LESSONS_BENCH_GRID", "0") or 0))
        png = base64.b64encode(self._image.value).decode("ascii")
        bundle["text/html"] = (
            f'<img alt="explorer default frame" src="data:image/png;base64,{png}">'
            "<p><em>Run the notebook in a live kernel to move the controls.</em></p>"
        )
        bundle["text/plain"] = text
        return bundle


_JS = (
    "(function(){var r=document.currentScript.parentNode;"
    "var d=JSON.parse(r.querySelector('script.lx-data').textContent);"
    "var img=r.querySelector('img.lx-frame');var ins=r.querySelectorAll('[data-control]');"
    "function at(e){return e.type==='checkbox'?(e.checked?1:0):parseInt(e.value,10);}"
    "function up(){var key=[];ins.forEach(function(e){var i=at(e);key.push(i);"
    "var o=e.parentNode.querySelector('output');if(o)o.textContent=d.labels[e.dataset.control][i];});"
    "var f=d.frames[key.join('-')];if(f!==undefined){img.src='data:image/png;base64,'+d.images[f];"
    "img.dataset.frame=key.join('-');}}"
    "ins.forEach(function(e){e.addEventListener('input',up);e.addEventListener('change',up);});"
    "r.classList.add('lx-ready');})();"
)


def explore(draw: Callable[..., Figure], *, max_frames: int = 64, max_bytes: int = 1_400_000,
            dpi: float = 80, **controls) -> Explorer:
    """Make an explorer of ``draw`` over ``controls`` (keyword name -> Control).

    Args:
        draw: ``draw(**values) -> matplotlib.figure.Figure``; holds no maths, only library calls
            and plotting.
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
    if not controls:
        raise ValueError("controls: an explorer needs at least one control (the control grid is empty)")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise ValueError(f"max_frames: expected an integer >= 1, got {max_frames!r}")
    max_bytes = check_count(max_bytes, name="max_bytes")
    dpi = check_positive(dpi, name="dpi")
    parsed = {k: _as_control(k, v) for k, v in controls.items()}
    return Explorer(draw, parsed, max_frames=max_frames, max_bytes=int(max_bytes), dpi=dpi)
