import base64
import json
import math
import re
import time

import matplotlib.pyplot as plt
import pytest
import torch

from lessons_lib import explore as ex
from lessons_lib import plotting, quadratic

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def make_draw(calls=None):
    def draw(lr, a, mode="lines", show=True):
        if calls is not None:
            calls.append((lr, a, mode, show))
        traj = quadratic.gd_scalar(a, 1.0, lr=lr, steps=10, blowup=100.0)
        fig, ax = plotting.figure(width=4, height=2.5, title=f"lr*a = {lr * a:.3g}")
        style = "o-" if mode == "lines" else "o"
        ax.plot(traj.params[:, 0].numpy(), style)
        if show:
            ax.set_ylim(-3, 3)
        return fig

    return draw


def payload(html):
    m = re.search(r'<script type="application/json" class="lx-data">(.*?)</script>', html, re.S)
    assert m, "static explorer has no frame data"
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_linear_and_log_grids():
    c = ex.linear(0, 1, 5)
    assert c.values == (0.0, 0.25, 0.5, 0.75, 1.0) and c.default == 0.5
    g = ex.log(0.125, 4.0, 11, value=2**-1.5)
    assert g.values[0] == pytest.approx(0.125) and g.values[-1] == pytest.approx(4.0)
    ratios = [b / a for a, b in zip(g.values, g.values[1:])]
    assert all(r == pytest.approx(math.sqrt(2)) for r in ratios)
    assert g.default in g.values  # snapped onto the grid
    off = ex.linear(0, 1, 3, value=0.3)
    assert off.default == 0.3 and 0.3 in off.values and len(off.values) == 4


@pytest.mark.parametrize(
    "make,arg",
    [(lambda: ex.log(0, 1), "start"), (lambda: ex.log(1, 10, 0), "num"), (lambda: ex.linear(1, 0), "stop"),
     (lambda: ex.linear(0, 1, value=2), "value"), (lambda: ex.choice([]), "options"),
     (lambda: ex.choice(["a"], value="b"), "value"), (lambda: ex.toggle(1), "value")],
)
def test_bad_controls_name_the_argument(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_explore_bad_input():
    with pytest.raises(ValueError, match="controls"):
        ex.explore(make_draw())
    with pytest.raises(ValueError, match="draw"):
        ex.explore("nope", lr=ex.linear(0, 1))
    with pytest.raises(ValueError, match="lr"):
        ex.explore(make_draw(), lr=3.0)
    with pytest.raises(ValueError, match="max_frames"):
        ex.explore(make_draw(), lr=ex.linear(0, 1), max_frames=0)
    e = ex.explore(lambda lr: "not a figure", lr=ex.linear(0, 1))
    with pytest.raises(ValueError, match="draw: must return a matplotlib Figure"):
        e.frame()
    with pytest.raises(ValueError, match="values"):
        ex.explore(make_draw(), lr=ex.linear(0.1, 1), a=ex.linear(1, 2)).frame(beta=2)


def test_shorthand_controls():
    e = ex.explore(make_draw(), lr=ex.linear(0.1, 1, 3), a=ex.log(1, 4, 3), mode=["lines", "dots"], show=True)
    assert e.controls["mode"].kind == "choice" and e.controls["show"].kind == "toggle"
    assert e.defaults() == {"lr": 0.55, "a": 2.0, "mode": "lines", "show": True}


def test_thin_keeps_ends_and_default():
    values = tuple(range(11))
    for count in range(3, 11):
        for default in (0, 3, 7, 10):
            kept = ex.thin(values, default, count)
            assert len(kept) == count and kept[0] == 0 and kept[-1] == 10 and default in kept
    assert 3 in ex.thin(values, 3, 2) and len(ex.thin(values, 3, 2)) == 2
    with pytest.raises(ValueError, match="^default:"):
        ex.thin(values, 11, 3)


def test_static_grid_respects_cap_and_keeps_choices_whole():
    e = ex.explore(make_draw(), lr=ex.log(0.01, 1, 21), a=ex.linear(1, 5, 9), mode=["lines", "dots"],
                   max_frames=30)
    grid = e.static_grid()
    assert math.prod(len(v) for v in grid.values()) <= 30
    assert grid["mode"] == ("lines", "dots")
    assert e.controls["lr"].default in grid["lr"] and e.controls["a"].default in grid["a"]


def test_static_html_is_self_contained_and_complete():
    calls = []
    e = ex.explore(make_draw(calls), lr=ex.linear(0.1, 1.1, 4), a=ex.log(0.5, 2, 3), show=True)
    html = e.static_html()
    data = payload(html)
    assert len(data["frames"]) == 4 * 3 * 2 == len(calls)
    assert len(data["images"]) <= len(data["frames"])
    assert html.count('type="range"') == 2 and html.count('type="checkbox"') == 1
    assert "http://" not in html and "https://" not in html and "<script src" not in html
    # the default frame is shown without JavaScript
    default_key = "-".join(str(i) for i in (1, 1, 1))
    src = re.search(r'<img class="lx-frame"[^>]*src="data:image/png;base64,([^"]+)"', html).group(1)
    assert src == data["images"][data["frames"][default_key]]
    assert base64.b64decode(src)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "thinned" not in html
    # each frame is a different picture here
    assert len(set(data["images"])) >= 20


def test_static_html_says_when_thinned_and_stays_under_budget():
    e = ex.explore(make_draw(), lr=ex.linear(0.1, 1.1, 10), a=ex.linear(0.5, 2, 10), max_frames=12)
    html = e.static_html()
    assert len(payload(html)["frames"]) <= 12
    assert "thinned from 100 to" in html
    small = ex.explore(make_draw(), lr=ex.linear(0.1, 1.1, 8), a=ex.linear(0.5, 2, 2), max_bytes=20_000)
    h2 = small.static_html()
    assert sum(len(s) for s in payload(h2)["images"]) <= 20_000
    assert "thinned" in h2


def test_every_grid_corner_draws():
    e = ex.explore(make_draw(), lr=ex.log(0.05, 1.5, 5), a=ex.log(0.25, 4, 5))
    for lr in (0.05, 1.5):
        for a in (0.25, 4.0):
            assert e.frame(lr=lr, a=a)[:4] == b"\x89PNG"


def test_live_display_draws_once_and_is_fast():
    import ipywidgets  # noqa: F401  (a chapter imports it in its setup cell; time the display only)

    make_draw()(0.1, 1.0)  # warm matplotlib's font cache, as the chapter's earlier figures do
    grid = dict(lr=ex.log(0.01, 2, 41), a=ex.log(0.1, 10, 41))  # 1681 frames on a static page
    t0 = time.perf_counter()
    ex.explore(make_draw(), **grid).frame()  # one first frame of a fresh explorer: the unit of time
    one_frame = time.perf_counter() - t0
    calls = []
    e = ex.explore(make_draw(calls), **grid)
    t0 = time.perf_counter()
    bundle = e._repr_mimebundle_()
    elapsed = time.perf_counter() - t0
    assert WIDGET_MIME in bundle and "text/html" in bundle
    assert "lessons-explorer" not in bundle["text/html"]  # no static frames in a live kernel
    assert len(calls) <= 2  # the initial draw (and interactive_output's first call), never the grid
    # a ratio, not a wall-clock limit, so a busy machine slows both alike: measured 1.0-2.0 first frames
    # (two draws) on 2 cores; drawing the grid would take about a thousand
    assert elapsed < 6 * one_frame, (elapsed, one_frame)


def live_parts(e):
    """The widgets a learner sees: the controls by description, and the image."""
    box, image = e.widget().children
    return {c.description: c for c in box.children}, image


def test_live_sliders_snap_to_the_grid_and_redraw_in_place():
    calls = []
    e = ex.explore(make_draw(calls), lr=ex.log(0.05, 1.5, 9), a=ex.linear(0.5, 4, 8))
    sliders, image = live_parts(e)
    assert [v for _, v in sliders["lr"].options] == list(e.controls["lr"].values)  # the static page's stops
    before, n = image.value, len(calls)
    sliders["lr"].value = e.controls["lr"].values[-2]
    assert calls[-1][0] == e.controls["lr"].values[-2] and len(calls) == n + 1
    assert image.value != before and len(e.timings) == 1
    sliders["a"].value = e.controls["a"].values[0]
    assert calls[-1][1] == e.controls["a"].values[0] and len(e.timings) == 2
    sliders["a"].value = e.controls["a"].default  # back to a frame already seen: from the cache, no draw
    sliders["lr"].value = e.controls["lr"].default
    assert len(calls) == n + 2 and image.value == before
    assert e.widget() is e.widget()  # built once
    assert plt.get_fignums() == []  # frames are closed, nothing leaks into the notebook


def test_warm_renders_the_grid_once_and_later_moves_draw_nothing():
    calls = []
    e = ex.explore(make_draw(calls), lr=ex.linear(0.1, 1.1, 3), a=ex.linear(1, 2, 2))
    e.frame()
    assert e.uncached(near=e.defaults())[0] != e.defaults()
    first = e.uncached(near={"lr": 0.1, "a": 1.0})
    assert first[0] == {"lr": 0.1, "a": 1.0} and len(first) == 5  # nearest first, the default already drawn
    assert e.warm() == 5 and len(calls) == 6 and e.warm() == 0
    for p in e.grid_points():
        e.frame(**p)
    assert len(calls) == 6
    e.clear_cache()
    e.frame()
    assert len(calls) == 7
    assert e.widget() is not None and e.view.warm_later() is False  # no event loop runs here: nothing scheduled


def test_compute_is_cached_by_values_and_batched_over_one_axis():
    computed, drawn = [], []

    def compute(lr, a):
        computed.append((lr, a))
        return [quadratic.gd_scalar(a, 1.0, lr=v, steps=10, blowup=100.0).params[:, 0] for v in lr]

    def draw(xs, lr, a):
        drawn.append((lr, a))
        fig, ax = plotting.figure(width=3, height=2, title=f"lr = {lr:.2g}")
        ax.plot(xs.numpy())
        return fig

    e = ex.explore(draw, compute=compute, vectorize="lr", lr=ex.linear(0.1, 1.1, 4), a=ex.linear(1, 2, 2))
    e.frame()
    assert computed == [(e.controls["lr"].values, e.controls["a"].default)]  # the whole lr axis in one call
    for lr in e.controls["lr"].values:
        e.frame(lr=lr)
    assert len(computed) == 1 and len(drawn) == 4
    assert torch.equal(e.data(lr=0.1), quadratic.gd_scalar(e.controls["a"].default, 1.0, lr=0.1, steps=10,
                                                            blowup=100.0).params[:, 0])
    e.frame(lr=0.5)  # off the grid: computed with the axis, once
    assert len(computed) == 2 and 0.5 in computed[-1][0]
    e.frame(a=2.0)
    assert len(computed) == 3
    bad = ex.explore(draw, compute=lambda lr, a: [1], vectorize="lr", lr=ex.linear(0.1, 1.1, 4), a=ex.linear(1, 2, 2))
    with pytest.raises(ValueError, match="^compute: with vectorize='lr' it must return one item per value"):
        bad.frame()
    with pytest.raises(ValueError, match="^vectorize:"):
        ex.explore(draw, vectorize="lr", lr=ex.linear(0.1, 1.1, 4))
    with pytest.raises(ValueError, match="^vectorize:"):
        ex.explore(draw, compute=compute, vectorize="b", lr=ex.linear(0.1, 1.1, 4))
    with pytest.raises(ValueError, match="^compute:"):
        ex.explore(draw, compute=3, lr=ex.linear(0.1, 1.1, 4))
    with pytest.raises(ValueError, match="^compute:"):
        ex.explore(make_draw(), lr=ex.linear(0.1, 1.1, 4), a=ex.linear(1, 2, 2)).data()


def test_display_hooks_see_each_displayed_explorer(monkeypatch):
    seen = []
    hook = seen.append
    ex.add_display_hook(hook)
    try:
        e = ex.explore(make_draw(), lr=ex.linear(0.1, 1.1, 3), a=ex.linear(1, 2, 2))
        e._repr_mimebundle_()
        monkeypatch.setenv("LESSONS_STATIC", "1")
        s = ex.explore(make_draw(), lr=ex.linear(0.1, 1.1, 3), a=ex.linear(1, 2, 2))
        s._repr_mimebundle_()
        assert seen == [e, s] and e.view is not None and s.view is None
    finally:
        ex.remove_display_hook(hook)
    with pytest.raises(ValueError, match="^hook:"):
        ex.add_display_hook(3)


def test_live_and_static_frames_show_the_same_picture():
    import io

    import numpy as np
    from PIL import Image

    e = ex.explore(make_draw(), lr=ex.linear(0.1, 1.1, 3), a=ex.linear(1, 2, 2))
    for p in e.grid_points():
        live = np.asarray(Image.open(io.BytesIO(e.frame(**p))).convert("RGB"), dtype=float)
        static = np.asarray(Image.open(io.BytesIO(e.frame(palette=e.palette, **p))).convert("RGB"), dtype=float)
        assert live.shape == static.shape and np.abs(live - static).mean() < 2.0  # the palette's rounding only


def test_static_page_numbers_are_sliders_with_labels_and_a_fixed_frame_size():
    def draw(lr, batch, kind):
        return make_draw()(lr, 1.0)

    e = ex.explore(draw, lr=ex.log(0.1, 1, 3), batch=[1, 4, 40], kind=["sgd", "gd"])
    html = e.static_html()
    assert html.count('type="range"') == 2 and html.count("<select") == 1  # numbers slide, categories are menus
    assert re.search(r'<img class="lx-frame" alt="explorer frame" width="\d+" height="\d+"', html)
    assert 'aria-label="batch"' in html and 'aria-valuetext="1"' in html
    sliders, _ = live_parts(e)
    assert type(sliders["batch"]).__name__ == "SelectionSlider" and type(sliders["kind"]).__name__ == "Dropdown"


def test_static_mode_from_environment(monkeypatch):
    monkeypatch.setenv("LESSONS_STATIC", "1")
    e = ex.explore(make_draw(), lr=ex.linear(0.1, 1.1, 3), a=ex.linear(1, 2, 2))
    bundle = e._repr_mimebundle_()
    assert WIDGET_MIME not in bundle
    assert 'class="lessons-explorer"' in bundle["text/html"]


def test_frame_renders_the_same_pixels_as_savefig():
    # figure_png renders once on a reused Agg canvas instead of savefig's two passes; the picture must not change
    import io

    import numpy as np
    from PIL import Image

    draw = make_draw()
    e = ex.explore(draw, lr=ex.log(0.05, 1.5, 3), a=ex.log(0.25, 4, 3))
    for lr, a in [(0.05, 0.25), (1.5, 4.0), (0.05, 4.0)]:  # the second frame on reuses layout and canvas
        fig = draw(lr, a)
        if e.renderer.layout is not None:
            fig.set_layout_engine("none")
            for ax, pos in zip(fig.axes, e.renderer.layout):
                ax.set_position(pos)
        buf = io.BytesIO()
        with plt.rc_context({"axes.titley": 1.0}):
            fig.savefig(buf, format="png", dpi=e.dpi)
        plt.close(fig)
        ref = np.asarray(Image.open(buf).convert("RGB"), dtype=int)
        got = np.asarray(Image.open(io.BytesIO(e.frame(lr=lr, a=a))).convert("RGB"), dtype=int)
        assert got.shape == ref.shape and np.abs(got - ref).max() <= 1
    assert not plt.get_fignums()  # every frame's figure is closed


def test_frame_pauses_gc_and_restores_it():
    import gc

    e = ex.explore(make_draw(), lr=ex.linear(0.1, 1, 2), a=ex.linear(1, 2, 2))
    seen = []
    e.draw = lambda **v: (seen.append(gc.isenabled()), make_draw()(**v))[1]
    assert gc.isenabled()
    e.frame()
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        e.frame()
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
    e.draw = lambda **v: 1 / 0
    e.clear_cache()
    with pytest.raises(ZeroDivisionError):
        e.frame()
    assert gc.isenabled()


def test_slider_values_are_real_numbers():
    with pytest.raises(ValueError, match="^stop:"):
        ex.linear(0.1, "1.0", 3)  # a numeric string used to be taken as a number
    with pytest.raises(ValueError, match="^value:"):
        ex.linear(0.1, 1.0, 3).format(True)
    with pytest.raises(ValueError, match="^fig:"):
        ex.figure_png(None, dpi=20)  # used to be an AttributeError


def test_lessons_warm_0_switches_the_idle_time_warm_up_off(monkeypatch):
    import asyncio

    calls = []
    e = ex.explore(make_draw(calls), lr=ex.linear(0.1, 1.1, 3), a=ex.linear(1, 2, 2))
    e.widget()

    async def scheduled():
        return e.view.warm_later()

    monkeypatch.setenv("LESSONS_WARM", "0")
    assert asyncio.run(scheduled()) is False  # an event loop runs, but the warm-up is off
    monkeypatch.setenv("LESSONS_WARM", "1")
    assert asyncio.run(scheduled()) is True
