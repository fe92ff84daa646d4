"""Drawing a frame: a matplotlib Figure rendered once on an Agg canvas and encoded as PNG bytes.

The cost of a live update lives here, so it is kept lean (``make bench`` measures it): the layout is
solved once per explorer, the Agg canvas and its text cache are reused, titles sit at a fixed height,
live frames use fast PNG compression, and the cyclic garbage collector is paused during a redraw.
"""

from __future__ import annotations

import gc
import io
import time
from typing import Callable

import matplotlib.pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..backend import check_callable, check_count, check_positive


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


class Renderer:
    """Renders one explorer's figures: reuses the first frame's layout and the Agg canvas.

    ``split`` holds the last frame's ``(draw, render + encode)`` seconds, for ``make bench``.
    """

    def __init__(self, dpi: float):
        self.dpi = check_positive(dpi, name="dpi")
        self._layout = None
        self._canvas = None
        self.split = (0.0, 0.0)

    @property
    def layout(self) -> list | None:
        """The axes positions solved on the first frame and reused since (``None`` before a frame)."""
        return None if self._layout is None else list(self._layout[1])

    def png(self, make: Callable[[], Figure], *, palette: int | None = None) -> bytes:
        """Call ``make()`` for a Figure and return its PNG bytes (``palette`` colours: a static frame).

        The cyclic garbage collector is paused during the redraw. Without the pause, collections in
        the middle of a redraw promote the figure's objects to the oldest generation, and freeing
        them later takes a full collection (200+ ms with torch loaded); instead the closed figure is
        freed at once.
        """
        check_callable(make, name="make")
        if palette is not None:
            palette = check_count(palette, name="palette", minimum=2)
        enabled = gc.isenabled()
        gc.disable()
        try:
            t0 = time.perf_counter()
            # matplotlib places titles by measuring every tick label on each draw; the explorers
            # have no top-side ticks, so y = 1 is the same place, found for free
            with plt.rc_context({"axes.titley": 1.0}):
                fig = make()
            if not isinstance(fig, Figure):
                raise ValueError(f"draw: must return a matplotlib Figure, got {type(fig).__name__}")
            t1 = time.perf_counter()
            png = self._encode(fig, palette)
            self.split = (t1 - t0, time.perf_counter() - t1)
            return png
        finally:
            if enabled:
                gc.enable()
                gc.collect(1)

    def _encode(self, fig: Figure, palette: int | None) -> bytes:
        # Constrained layout costs half of a redraw. Frames of one explorer share their layout, so it
        # is solved once (on the first frame) and reused while the figure keeps the same axes.
        shape = (tuple(fig.get_size_inches()), len(fig.axes))
        reuse = self._layout is not None and self._layout[0] == shape
        if reuse:
            fig.set_layout_engine("none")
            for ax, pos in zip(fig.axes, self._layout[1]):
                ax.set_position(pos)
        axes = list(fig.axes)
        png = figure_png(fig, dpi=self.dpi, palette=palette, canvas=self._canvas)
        self._canvas = fig.canvas
        if not reuse:
            self._layout = (shape, [ax.get_position() for ax in axes])
        return png
