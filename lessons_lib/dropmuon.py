"""Drop-Muon: Muon's orthogonalised momentum step, applied to a random suffix of layers.

Muon (Jordan et al. 2024) keeps, per weight matrix ``W`` (shape ``(rows, cols)``), an exponential
moving average ``M <- mu M + (1 - mu) G`` of its gradient ``G``, forms the Nesterov look-ahead
``U = (1 - mu) G + mu M``, replaces ``U`` by an approximation of its polar factor ``U V^T`` (five
steps of a quintic Newton-Schulz iteration, eq-dropmuon-ns) and steps
``W <- W - lr sqrt(max(1, rows / cols)) NS(U)`` (eq-dropmuon-muon). These are the semantics of
``torch.optim.Muon`` with ``weight_decay=0``, computed here in the input's dtype instead of bfloat16.

Drop-Muon (Gruntkowska, Maziane, Qu & Richtarik 2025) draws, at every step, a start layer ``s`` and
updates layers ``s, ..., b - 1`` (0-based) only (eq-dropmuon-suffix): back-propagation stops at layer
``s``, and the layers below keep their weights *and* their momenta. With a uniform ``s`` a step
updates ``(b + 1) / 2`` layers on average (eq-dropmuon-cost).

References:
    Gruntkowska, Maziane, Qu & Richtarik (2025), Drop-Muon: Update Less, Converge Faster,
    arXiv:2510.02239.
    Jordan, Jin, Boza, You, Cesista, Newhouse & Bernstein (2024), Muon: An optimizer for hidden
    layers in neural networks, https://kellerjordan.github.io/posts/muon/.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from . import models
from .backend import Record, as_generator, check_count, check_flag, check_float_tensor, check_positive, check_real
from .run import run

Dist = Literal["full", "uniform", "geometric"]
DISTS = ("full", "uniform", "geometric")
#: The quintic Newton-Schulz coefficients (c1, c3, c5) of Muon.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
EPS = 1e-7


def newton_schulz(G: torch.Tensor, *, steps: int = 5) -> torch.Tensor:
    """Muon's approximate orthogonalisation of ``G``: ``steps`` quintic Newton-Schulz iterations.

    ``X_0 = G / ||G||_F``, then ``X <- c1 X + (c3 X X^T + c5 (X X^T)^2) X`` with
    ``(c1, c3, c5) = (3.4445, -4.7750, 2.0315)`` (eq-dropmuon-ns). Each step maps every singular value
    ``sigma`` of ``X`` to ``p(sigma) = c1 sigma + c3 sigma^3 + c5 sigma^5`` and keeps the singular vectors,
    so the result is ``U p^k(Sigma / ||G||_F) V^T``: after five steps every singular value of
    ``G / ||G||_F`` above about 0.002 ends between 0.68 and 1.20; smaller ones grow by at most ``c1^5``
    (about 480) and stay well below one. A tall ``G`` is iterated transposed
    (so ``X X^T`` is the smaller Gram matrix), as in ``torch.optim.Muon``.

    Args:
        G: a real matrix, shape ``(rows, cols)`` (or a batch ``(..., rows, cols)``).
        steps: number of iterations ``>= 0``.

    Returns:
        A tensor of ``G``'s shape, dtype and device.

    References:
        Jordan et al. (2024), Muon: An optimizer for hidden layers in neural networks.
    """
    check_float_tensor(G, name="G")
    if G.ndim < 2:
        raise ValueError(f"G: expected a matrix, got shape {tuple(G.shape)}")
    steps = check_count(steps, name="steps", minimum=0)
    if not bool(torch.isfinite(G).all()):
        raise ValueError("G: contains NaN or infinite values")
    return _newton_schulz(G, steps)


def _newton_schulz(G: torch.Tensor, steps: int) -> torch.Tensor:
    c1, c3, c5 = NS_COEFFICIENTS
    tall = G.shape[-2] > G.shape[-1]
    X = G.mT if tall else G
    X = X / torch.linalg.matrix_norm(X, keepdim=True).clamp(min=EPS)
    for _ in range(steps):
        A = X @ X.mT
        X = c1 * X + (c3 * A + c5 * A @ A) @ X
    return X.mT if tall else X


def sample_start(n_layers: int, *, dist: Dist = "uniform", generator: int | torch.Generator = 0,
                 size: int | None = None, ratio: float = 0.5) -> int | torch.Tensor:
    """Draw Drop-Muon's start layer ``s`` (0-based): the step updates layers ``s, ..., n_layers - 1``.

    * ``"full"``: ``s = 0`` always (every layer: plain Muon);
    * ``"uniform"``: ``s`` uniform on ``{0, ..., b - 1}``, so ``b - s`` layers, ``(b + 1) / 2`` on
      average (eq-dropmuon-cost);
    * ``"geometric"``: towards the deep layers, ``P(s = j)`` proportional to ``ratio^(b - 1 - j)``: the
      last layer alone is the likeliest suffix.

    Args:
        n_layers: the number of layers ``b >= 1``.
        dist: ``"full"``, ``"uniform"`` or ``"geometric"``.
        generator: seed or CPU generator of the draws.
        size: ``None`` for one draw (an ``int``), or a number of draws (a long tensor of that length).
        ratio: the geometric distribution's ratio, in ``(0, 1]`` (1 is uniform).

    Returns:
        ``s`` as an ``int``, or a long tensor of shape ``(size,)`` on the CPU.

    References:
        Gruntkowska, Maziane, Qu & Richtarik (2025), Drop-Muon: Update Less, Converge Faster, arXiv:2510.02239.
    """
    b = check_count(n_layers, name="n_layers")
    if dist not in DISTS:
        raise ValueError(f"dist: expected one of {DISTS}, got {dist!r}")
    n = 1 if size is None else check_count(size, name="size")
    ratio = check_positive(ratio, name="ratio")
    if ratio > 1:
        raise ValueError(f"ratio: expected a number in (0, 1], got {ratio}")
    gen = as_generator(generator, "cpu")
    if dist == "full":
        s = torch.zeros(n, dtype=torch.long)
    elif dist == "uniform":
        s = torch.randint(b, (n,), generator=gen)
    else:
        s = torch.multinomial(start_probabilities(b, dist="geometric", ratio=ratio), n, replacement=True,
                              generator=gen)
    return int(s[0]) if size is None else s


def start_probabilities(n_layers: int, *, dist: Dist = "uniform", ratio: float = 0.5) -> torch.Tensor:
    """``P(s = j)`` for ``j = 0, ..., b - 1`` under :func:`sample_start`'s ``dist``, float64, shape ``(b,)``."""
    b = check_count(n_layers, name="n_layers")
    if dist not in DISTS:
        raise ValueError(f"dist: expected one of {DISTS}, got {dist!r}")
    ratio = check_positive(ratio, name="ratio")
    if ratio > 1:
        raise ValueError(f"ratio: expected a number in (0, 1], got {ratio}")
    if dist == "full":
        return torch.nn.functional.one_hot(torch.tensor(0), b).double()
    if dist == "uniform":
        return torch.full((b,), 1.0 / b, dtype=torch.float64)
    w = ratio ** torch.arange(b - 1, -1, -1, dtype=torch.float64)
    return w / w.sum()


def expected_layers(n_layers: int, *, dist: Dist = "uniform", ratio: float = 0.5) -> float:
    """The mean number of layers a step updates, ``E[b - s]`` (eq-dropmuon-cost); ``(b + 1) / 2`` when uniform."""
    p = start_probabilities(n_layers, dist=dist, ratio=ratio)
    return float((p * torch.arange(n_layers, 0, -1, dtype=torch.float64)).sum())


@dataclass(frozen=True)
class MuonState:
    """Muon's per-layer state: ``momenta[i]`` has the shape of weight ``i`` (zeros at the start)."""

    momenta: tuple


def init(params: Sequence[torch.Tensor]) -> MuonState:
    """Zero momenta for weight matrices ``params`` (eq-dropmuon-muon)."""
    params = _check_params(params, name="params")
    return MuonState(tuple(torch.zeros_like(W) for W in params))


def _check_params(params, *, name: str) -> list[torch.Tensor]:
    if not isinstance(params, (list, tuple)) or not params:
        raise ValueError(f"{name}: expected a non-empty list of weight matrices, got {type(params).__name__}")
    for W in params:
        check_float_tensor(W, name=name)
        if W.ndim != 2:
            raise ValueError(f"{name}: every weight must be a matrix, got shape {tuple(W.shape)}")
    return list(params)


def layer_scale(shape: Sequence[int]) -> float:
    """Muon's learning-rate factor ``sqrt(max(1, rows / cols))`` of a weight of shape ``(rows, cols)``."""
    rows, cols = shape[-2], shape[-1]
    return math.sqrt(max(1.0, rows / cols))


def update(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None], state: MuonState, *, start: int,
           lr: float, momentum: float = 0.95, nesterov: bool = True,
           ns_steps: int = 5) -> tuple[list[torch.Tensor], MuonState]:
    """One Drop-Muon step on the layers ``start, ..., b - 1`` (eq-dropmuon-suffix); pure.

    For each updated layer ``i`` (eq-dropmuon-muon): ``M_i <- mu M_i + (1 - mu) G_i``;
    ``U_i = (1 - mu) G_i + mu M_i`` with ``nesterov`` (else ``U_i = M_i``);
    ``W_i <- W_i - lr sqrt(max(1, rows / cols)) NS(U_i)``. This is ``torch.optim.Muon`` with
    ``weight_decay=0`` (which runs Newton-Schulz in bfloat16; here it runs in the weights' dtype).
    A layer below ``start``, or one whose gradient is ``None``, is frozen: its weight and its
    momentum are returned as the very same tensors, bit-identical (the momentum does not decay).

    Args:
        params: ``b`` weight matrices ``W_i``.
        grads: ``b`` gradients of the same shapes, or ``None`` for a layer without one.
        state: the :class:`MuonState` of :func:`init`.
        start: the first updated layer, ``0 <= start < b`` (0 updates every layer: plain Muon).
        lr: the step ``lr >= 0``.
        momentum: ``mu`` in ``[0, 1)``.
        nesterov: whether to step along the look-ahead ``U`` or along ``M``.
        ns_steps: Newton-Schulz iterations.

    Returns:
        ``(params, state)``: new lists; frozen entries are the input tensors themselves.

    References:
        Gruntkowska, Maziane, Qu & Richtarik (2025), Drop-Muon: Update Less, Converge Faster, arXiv:2510.02239.
    """
    params = _check_params(params, name="params")
    b = len(params)
    if not isinstance(grads, (list, tuple)) or len(grads) != b:
        raise ValueError(f"grads: expected a list of {b} gradients (or None), got {type(grads).__name__}")
    if not isinstance(state, MuonState) or len(state.momenta) != b:
        raise ValueError(f"state: expected the MuonState of init for {b} layers")
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < b:
        raise ValueError(f"start: expected an integer in [0, {b - 1}], got {start!r}")
    lr = check_positive(lr, name="lr", allow_zero=True)
    momentum = check_real(momentum, name="momentum")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum}")
    nesterov = check_flag(nesterov, name="nesterov")
    ns_steps = check_count(ns_steps, name="ns_steps", minimum=0)
    for i, G in enumerate(grads):
        if G is None:
            continue
        check_float_tensor(G, name="grads")
        if G.shape != params[i].shape or not bool(torch.isfinite(G).all()):
            raise ValueError(f"grads: layer {i} has shape {tuple(G.shape)} (its weight {tuple(params[i].shape)}) "
                             "or values that are not finite")
    for i, M in enumerate(state.momenta):
        if not isinstance(M, torch.Tensor) or M.shape != params[i].shape:
            raise ValueError(f"state: momentum {i} does not have its weight's shape")
    return _update(params, grads, state, start, lr, momentum, nesterov, ns_steps)


def _update(params, grads, state, start, lr, momentum, nesterov, ns_steps):
    new_w, new_m = list(params), list(state.momenta)
    for i in range(start, len(params)):
        G = grads[i]
        if G is None:
            continue
        M = state.momenta[i].lerp(G, 1 - momentum)
        U = G.lerp(M, momentum) if nesterov else M
        new_w[i] = params[i] - lr * layer_scale(params[i].shape) * _newton_schulz(U, ns_steps)
        new_m[i] = M
    return new_w, MuonState(tuple(new_m))


def digits_data(*, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training part of the shared digits split: ``X`` of shape ``(1348, 64)`` in ``[0, 1]``, labels ``y``."""
    split = models.digits_split(dtype=dtype, device=device)
    return split.X_train, split.y_train


@dataclass(frozen=True)
class DropMuonRun(Record):
    """What :func:`train` returns (on the host).

    Attributes:
        loss: cross-entropy on the whole training set before the first step and after each, shape ``(T + 1,)``.
        layer_updates: cumulative number of layer updates, shape ``(T + 1,)`` (``b`` per step for Muon).
        seconds: cumulative training time (sampling, forward, backward, update; not the recorded
            loss), shape ``(T + 1,)``.
        starts: the start layer ``s`` of every step, long, shape ``(T,)``.
        weights: the final weight matrices.
        diverged, diverged_at: as in :mod:`lessons_lib.run`.
    """

    loss: torch.Tensor
    layer_updates: torch.Tensor
    seconds: torch.Tensor
    starts: torch.Tensor
    weights: tuple
    diverged: bool
    diverged_at: int | None

    def best_within(self, layer_updates: float) -> float:
        """The lowest recorded loss among the records made within a budget of ``layer_updates``.

        A biased statistic when two runs record at different rates per layer update: see :meth:`end_within`.
        """
        within = self.layer_updates <= check_positive(layer_updates, name="layer_updates", allow_zero=True)
        return float(self.loss[within].min())

    def end_within(self, layer_updates: float, *, last: int = 10, over_layer_updates: float | None = None) -> float:
        """The mean loss at the end of a budget of ``layer_updates``: over the ``last`` records made within it
        (fewer if fewer exist) or, if ``over_layer_updates`` is given, over every record made in the budget's
        last ``over_layer_updates`` layer updates (at least the last record).

        Unlike :meth:`best_within`, this does not favour the run that records more often: the minimum of a noisy
        curve falls with the number of records, and a cheaper step records more of them per layer update. The
        window is a choice: ``last`` records span fewer layer updates for the run with cheaper steps, a window
        in layer updates spans the same cost for both.
        """
        budget = check_positive(layer_updates, name="layer_updates", allow_zero=True)
        last = check_count(last, name="last")
        loss, cost = self.loss[self.layer_updates <= budget], self.layer_updates[self.layer_updates <= budget]
        if over_layer_updates is None:
            return float(loss[-last:].mean())
        window = cost > budget - check_positive(over_layer_updates, name="over_layer_updates")
        window[-1] = True
        return float(loss[window].mean())

    def first_below(self, level: float, *, axis: Literal["steps", "layer_updates", "seconds"] = "layer_updates"):
        """The ``axis`` value at the first record with loss below ``level``, or ``None`` if never."""
        if axis not in ("steps", "layer_updates", "seconds"):
            raise ValueError(f"axis: expected 'steps', 'layer_updates' or 'seconds', got {axis!r}")
        below = torch.nonzero(self.loss < check_real(level, name="level"))
        if not len(below):
            return None
        k = int(below[0])
        return float(k if axis == "steps" else getattr(self, axis)[k])


def train(widths: Sequence[int], X: torch.Tensor, y: torch.Tensor, *, lr: float, steps: int, batch: int = 64,
          dist: Dist = "uniform", generator: int | torch.Generator = 0, momentum: float = 0.95,
          nesterov: bool = True, ns_steps: int = 5, ratio: float = 0.5, threads: int | None = 1) -> DropMuonRun:
    """Train a bias-free ReLU network of ``widths`` on ``(X, y)`` with Drop-Muon (eq-dropmuon-suffix).

    The weights start at :func:`lessons_lib.models.layered_relu_init` (``N(0, 1 / fan_in)``). Each step
    draws ``s`` from ``dist`` (:func:`sample_start`) and a mini-batch of ``batch`` rows (with
    replacement), runs the layers below ``s`` under ``no_grad``, back-propagates the mean cross-entropy
    into layers ``s, ...`` only and applies :func:`update`. ``generator`` seeds three independent
    streams (initialisation, batches, starts), so runs with different ``dist`` and one seed start from
    the same weights and see the same batches. The loop is :func:`lessons_lib.run.run`.

    Args:
        widths: ``(d_in, h_1, ..., n_classes)``; ``b = len(widths) - 1`` layers.
        X: inputs, shape ``(n, widths[0])``; the weights live on its device, in its dtype.
        y: long labels, shape ``(n,)``.
        lr, momentum, nesterov, ns_steps: Muon's, as in :func:`update`.
        steps: number of steps ``T``.
        batch: mini-batch size.
        dist, ratio: the start's distribution, as in :func:`sample_start`.
        generator: an int seed or a CPU generator.
        threads: torch's intra-op threads during the run (restored afterwards), or ``None`` to leave
            them alone. One thread is the default: on two shared cores a second thread made small
            steps many times slower.

    Returns:
        A :class:`DropMuonRun`.

    References:
        Gruntkowska, Maziane, Qu & Richtarik (2025), Drop-Muon: Update Less, Converge Faster, arXiv:2510.02239.
    """
    widths = tuple(widths) if isinstance(widths, (list, tuple)) else widths
    check_float_tensor(X, name="X")
    if X.ndim != 2 or not isinstance(widths, tuple) or len(widths) < 2 or X.shape[1] != widths[0]:
        raise ValueError(f"X: expected shape (n, widths[0]) for widths {widths!r}, got {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("X: contains NaN or infinite values")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != X.shape[:1]:
        raise ValueError(f"y: expected a long tensor of {X.shape[0]} labels")
    if int(y.min()) < 0 or int(y.max()) >= widths[-1]:
        raise ValueError(f"y: labels must lie in [0, {widths[-1] - 1}]")
    steps = check_count(steps, name="steps", minimum=0)
    batch = check_count(batch, name="batch")
    lr = check_positive(lr, name="lr", allow_zero=True)
    if dist not in DISTS:
        raise ValueError(f"dist: expected one of {DISTS}, got {dist!r}")
    sample_start(len(widths) - 1, dist=dist, generator=0, ratio=ratio)  # checks ratio
    if threads is not None:
        threads = check_count(threads, name="threads")
    seeds = torch.randint(2**62, (3,), generator=as_generator(generator, "cpu")).tolist()
    weights0 = models.layered_relu_init(widths, generator=seeds[0], dtype=X.dtype, device=X.device)
    b = len(weights0)
    update(weights0, [None] * b, init(weights0), start=0, lr=lr, momentum=momentum, nesterov=nesterov,
           ns_steps=ns_steps)  # checks the optimiser's arguments once, before the loop
    batches = torch.Generator().manual_seed(seeds[1])
    starts_gen = torch.Generator().manual_seed(seeds[2])
    y = y.to(X.device)
    starts, layers, seconds = [], [0], [0.0]

    def step(state, t, eta):
        tic = time.perf_counter()
        W, M = list(state[:b]), MuonState(tuple(state[b:]))
        s = sample_start(b, dist=dist, generator=starts_gen, ratio=ratio)
        rows = torch.randint(X.shape[0], (batch,), generator=batches).to(X.device)
        live = [w.detach().requires_grad_(True) for w in W[s:]]
        with torch.enable_grad():
            loss = torch.nn.functional.cross_entropy(models.layered_relu_forward(W[:s] + live, X[rows], start=s),
                                                     y[rows])
            grads = torch.autograd.grad(loss, live)
        W, M = _update(W, [None] * s + list(grads), M, s, eta, momentum, nesterov, ns_steps)
        if X.device.type == "cuda":
            torch.cuda.synchronize(X.device)
        starts.append(s)
        layers.append(layers[-1] + b - s)
        seconds.append(seconds[-1] + time.perf_counter() - tic)
        return tuple(W) + M.momenta

    def record(state, t):
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(models.layered_relu_forward(list(state[:b]), X), y)
        return {"loss": loss.double()}

    previous = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        r = run(step, tuple(weights0) + init(weights0).momenta, steps=steps, lr=lr, record=record)
    finally:
        torch.set_num_threads(previous)
    k = r.steps
    return DropMuonRun(loss=r.history["loss"], layer_updates=torch.tensor(layers, dtype=torch.long)[k],
                       seconds=torch.tensor(seconds, dtype=torch.float64)[k],
                       starts=torch.tensor(starts[:int(k[-1])], dtype=torch.long), weights=tuple(r.state[:b]),
                       diverged=bool(r.diverged), diverged_at=r.diverged_step)
