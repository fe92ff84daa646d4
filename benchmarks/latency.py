"""Explorer latency for ``make bench``, measured through ``lessons_lib.explore``'s display hook.

``install(path, max_points)`` runs before a chapter's first cell (``runner.py --setup``). Each explorer
the chapter then displays is measured three ways, and one JSON line per explorer is appended to ``path``:

* **warm-up**: from an empty cache, the time to render every frame of the grid (what the live
  explorer does in the kernel's idle time after its first display);
* **warm**: one update per grid point with the frame cached: the Image widget refresh (live) or the
  cache lookup (no widget);
* **cold**: the cache emptied again, one update per grid point, each a first visit: compute (where
  not yet computed by a batched call), draw, render, encode and refresh.

``max_points`` (> 0) thins the grid as the static page does, for quick checks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from lessons_lib import explore


def _points(ex: explore.Explorer, max_points: int) -> list[dict]:
    if not max_points:
        return ex.grid_points()
    grid = ex.static_grid(max_points)
    names = list(grid)
    import itertools

    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[k] for k in names))]


def measure(ex: explore.Explorer, max_points: int = 0) -> dict:
    """Time ``ex``'s updates cold and warm at every grid point (or ``max_points`` of them)."""
    points = _points(ex, max_points)
    live = ex.view is not None

    def update(values):
        t0 = time.perf_counter()
        if live:
            ex.view.show(values)
        else:
            ex.frame(**values)
        return time.perf_counter() - t0

    ex.clear_cache()
    t0 = time.perf_counter()
    for p in points:
        ex.frame(**p)
    warmup = time.perf_counter() - t0
    warm = [update(p) for p in points]
    ex.clear_cache()
    cold, draws = [], []
    for p in points:
        cold.append(update(p))
        draws.append(ex.renderer.split[0])
    if live:
        ex.view.show(ex.defaults())  # leave the default view showing
    name = getattr(ex.draw, "__name__", "draw")
    return {"draw": name, "controls": list(ex.controls), "grid": len(ex.grid_points()), "points": len(points),
            "refresh": live, "compute": ex.compute is not None, "vectorize": ex.vectorize, "warmup_s": warmup,
            "warm_s": warm, "cold_s": cold, "draw_s": draws}


def install(path: str | Path, max_points: int = 0) -> None:
    """Measure every explorer displayed from now on; append one JSON line each to ``path``."""
    path = Path(path)

    def hook(ex: explore.Explorer) -> None:
        record = measure(ex, max_points)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    explore.add_display_hook(hook)
