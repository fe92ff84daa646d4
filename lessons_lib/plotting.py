"""The book's figure style and a few drawing helpers. No maths lives here.

* An opaque white background, so figures read in the site's light and dark themes alike.
* One fixed colour per method across the whole book (:data:`COLORS`): GD is always blue, SGD
  always orange, gradient flow always black, and so on.
* Divergence is drawn as such (:func:`mark_divergence`): a marker where the run left the plot and
  a clipped axis, never an empty plot.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .backend import check_count, check_flag, check_positive

#: One colour per method, fixed across the book (colour-blind-safe Okabe-Ito palette).
COLORS: dict[str, str] = {
    "gd": "#0072B2",  # blue
    "sgd": "#E69F00",  # orange
    "gradient flow": "#000000",  # black
    "modified flow": "#CC79A7",  # pink
    "principal flow": "#D55E00",  # vermillion
    "cbo": "#009E73",  # green
    "curl": "#56B4E9",  # sky blue
    "adam": "#F0E442",  # yellow
    "capped": "#117733",  # dark green: a step capped at a radius (ghosts of softmax)
    "clipped": "#AA4499",  # purple: gradient-norm clipping
    "bo-rep": "#44AA99",  # teal: normalised momentum steps (BO-REP)
    "newton": "#882255",  # wine: Newton-type steps with an exact or approximate Hessian
    "m-fac": "#332288",  # indigo
    "sinkhorn": "#88CCEE",  # cyan: Sinkhorn's matrix scaling (block ascent)
    "sns": "#882255",  # wine, as Newton: Sinkhorn-Newton-Sparse with the whole Hessian
    "langevin": "#CC6677",  # rose: Langevin chains (last iterate)
    "langevin average": "#999933",  # olive: the average of a chain's iterates
    "sns sparse": "#117733",  # dark green: Sinkhorn-Newton-Sparse with a sparsified Hessian
    "dadao": "#117733",  # dark green: DADAO's accelerated decentralised runs
    "gossip": "#E69F00",  # orange, as SGD: gossip averaging with local gradient steps, the baseline
    "n-pg-igt": "#117733",  # dark green: normalised policy gradient with implicit gradient transport
    "harpg": "#882255",  # wine, as Newton: Hessian-aided momentum (a Hessian-vector product per step)
    "theory": "#777777",  # grey, for closed forms and bounds
    "unstable": "#D55E00",  # vermillion, for divergence and stability limits
}

STYLE: dict = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (7.0, 3.6),
    "figure.constrained_layout.use": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "axes.prop_cycle": mpl.cycler(color=[COLORS[k] for k in ("gd", "sgd", "cbo", "modified flow",
                                                              "principal flow", "curl")]),
}


def use_style() -> None:
    """Apply the book's matplotlib style globally (call once in a chapter's setup cell)."""
    mpl.rcParams.update(STYLE)


def color(method: str) -> str:
    """The book-wide colour of ``method`` (case-insensitive), e.g. ``color("GD")``."""
    if not isinstance(method, str):
        raise ValueError(f"method: expected a method name (str), got {type(method).__name__}")
    key = method.lower()
    if key not in COLORS:
        raise ValueError(f"method: no house colour for {method!r}; known: {sorted(COLORS)}")
    return COLORS[key]


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 7.0, height: float = 3.4,
           title: str | None = None, **kwargs) -> tuple[Figure, np.ndarray | Axes]:
    """A house-style figure: ``plt.subplots`` with the style applied and a takeaway ``title``."""
    ncols, nrows = check_count(ncols, name="ncols"), check_count(nrows, name="nrows")
    width, height = check_positive(width, name="width"), check_positive(height, name="height")
    use_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)
    if title:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig, axes


def mark_divergence(ax: Axes, x: Sequence[float], y: Sequence[float], *, limit: float,
                    color: str = COLORS["unstable"], label: str | None = "diverged") -> None:
    """Clip ``ax`` to ``|y| <= limit`` and mark where the curve ``(x, y)`` first leaves it.

    Draw the curve first; this adds an upward (or downward) triangle at the exit point, so a
    divergent run is shown as such rather than as an empty or auto-scaled plot.
    """
    if not isinstance(ax, Axes):
        raise ValueError(f"ax: expected matplotlib Axes, got {type(ax).__name__}")
    limit = check_positive(limit, name="limit")
    try:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y: expected sequences of numbers x and y ({exc})") from None
    if x.ndim != 1 or y.shape != x.shape or not np.all(np.isfinite(x)):
        raise ValueError(f"x: expected finite x and a y of one shape (n,), got {x.shape} and {y.shape}")
    out = np.flatnonzero(~np.isfinite(y) | (np.abs(y) > limit))
    ax.set_ylim(-limit if np.nanmin(np.where(np.isfinite(y), y, 0)) < 0 else ax.get_ylim()[0], limit)
    if out.size:
        i = out[0]
        sign = 1.0 if not np.isfinite(y[i]) or y[i] > 0 else -1.0
        ax.plot([x[i]], [sign * limit], marker="^" if sign > 0 else "v", color=color, ms=10,
                ls="none", clip_on=False, zorder=5, label=label)


def loss_grid(loss, xlim: tuple[float, float], ylim: tuple[float, float], *, n: int = 200,
              batched: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate a loss of two parameters on an ``n x n`` grid, for contour and image plots.

    Args:
        loss: maps a tensor of points of shape ``(m, 2)`` to ``(m,)`` values when ``batched``, else a
            single point of shape ``(2,)`` to a scalar (then it is called point by point, which is
            slow; ``torch.vmap(loss)`` turns a loss of one point into a batched one).
        xlim, ylim: the box ``(low, high)`` on each axis.
        n: grid points per axis.
        batched: whether ``loss`` takes a batch of points.

    Returns:
        ``X, Y, Z`` as NumPy arrays of shape ``(n, n)`` (``Z[i, j]`` is the loss at ``(X[i, j], Y[i, j])``),
        ready for ``ax.contour(X, Y, Z)``. The points are made on
        :func:`~lessons_lib.backend.default_device`.

    Raises:
        ValueError: naming ``loss``, ``n``, ``xlim`` or ``ylim`` for a bad argument, or ``loss`` when it
            does not return one value per point.
    """
    import torch

    from .backend import default_device

    if not callable(loss):
        raise ValueError(f"loss: expected a callable, got {type(loss).__name__}")
    batched = check_flag(batched, name="batched")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n: expected an integer >= 2, got {n!r}")
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        try:
            low, high = (float(v) for v in lim)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected two numbers (low, high), got {lim!r}") from None
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"{name}: expected (low, high) with low < high, got {lim!r}")
    X, Y = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    points = torch.as_tensor(np.stack([X.ravel(), Y.ravel()], axis=1), dtype=torch.float64, device=default_device())
    with torch.no_grad():
        if batched:
            Z = loss(points)
        else:
            Z = torch.stack([torch.as_tensor(loss(p)) for p in points])
    Z = torch.as_tensor(Z).detach()
    if Z.numel() != n * n:
        raise ValueError(f"loss: expected one value per grid point ({n * n}), got shape {tuple(Z.shape)}; "
                         "a loss of one point needs batched=False or torch.vmap")
    Z = Z.cpu().double().reshape(n, n).numpy()
    return X, Y, Z
