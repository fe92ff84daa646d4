"""The live explorer: ipywidgets controls above an ``Image`` that shows the frame of the current values.

Sliders snap to the control's grid (the static page's values, unthinned), so every frame a learner can
reach can be cached: after the first display the explorer renders the rest of its grid in the kernel's
idle time, nearest values first, one frame per event-loop turn, so slider moves are served between two
frames and later moves come from the cache.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from . import Explorer


def control_widget(name: str, c, w):
    """The ipywidget of one control: a slider over the grid for numbers, a menu for categories."""
    desc = c.label or name
    style = {"description_width": "initial"}
    if c.slider:
        options = [(c.format(v), v) for v in c.values]
        return w.SelectionSlider(options=options, value=c.default, description=desc, continuous_update=True,
                                 style=style, layout=w.Layout(width="auto", min_width="16em"))
    if c.kind == "choice":
        return w.Dropdown(options=[(c.format(v), v) for v in c.values], value=c.default, description=desc,
                          style=style)
    return w.Checkbox(value=c.default, description=desc, indent=False)


class LiveView:
    """The widget tree of one explorer and the background warm-up of its frame cache."""

    def __init__(self, explorer: Explorer):
        import ipywidgets as w

        self.explorer = explorer
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.controls = {k: control_widget(k, c, w) for k, c in explorer.controls.items()}
        self.first_s = self.show(explorer.defaults())
        for ctrl in self.controls.values():
            ctrl.observe(self._changed, names="value")
        box = w.HBox(list(self.controls.values()), layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([box, self.image])
        self._warming = False

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def show(self, values: dict) -> float:
        """Put the frame of ``values`` in the image; returns the seconds it took."""
        t0 = time.perf_counter()
        self.image.value = self.explorer.frame(**values)
        return time.perf_counter() - t0

    def _changed(self, _change) -> None:  # a learner's move: its time goes to the explorer's ``timings``
        self.explorer.timings.append(self.show(self.values()))

    def warm_later(self, delay: float = 0.05) -> bool:
        """Render the rest of the grid in the kernel's idle time; False where no event loop runs, or where
        ``LESSONS_WARM=0`` switches the warm-up off (batch runs nobody watches, such as nbgrader's autograde)."""
        if os.environ.get("LESSONS_WARM", "1").strip().lower() in ("0", "false", "no", "off"):
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._warming:
            return True
        self._warming = True
        todo = self.explorer.uncached(near=self.values())

        def step():
            while todo and self.explorer.is_cached(todo[0]):
                todo.pop(0)
            if not todo:
                self._warming = False
                return
            self.explorer.frame(**todo.pop(0))
            loop.call_later(0.0, step)

        loop.call_later(delay, step)
        return True
