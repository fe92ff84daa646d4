"""Zeroth-order learning: gradients estimated from random probes and function values.

A zeroth-order (ZO) method never asks for ``grad f``. It perturbs the parameters (or the units of a
network) along random probe directions ``v``, reads how much the loss changes, and moves along the
probes in proportion. The central two-point estimator with ``K`` probes (eq-zo-two-point) is

    g_hat = (1/K) sum_k [f(x + sigma v_k) - f(x - sigma v_k)] / (2 sigma) * v_k .

With Gaussian probes it tends, as ``sigma -> 0``, to the *forward gradient* ``(grad f . v) v`` (one
Jacobian-vector product per probe); with Rademacher (+-1) probes it is SPSA. On a quadratic the
central difference is exact, so the estimator is unbiased for every ``sigma``. Its quality falls with
the dimension ``d``: one probe's cosine with the gradient has mean ``sqrt(2 / (pi d))``
(eq-zo-cosine), and the error's mean square is ``(d + 1) ||grad f||^2 / K`` for Gaussian probes,
``(d - 1) ||grad f||^2 / K`` for Rademacher ones (eq-zo-variance). Perturbing the *outputs* of a layer
(node perturbation) instead of its weights probes ``n_out`` numbers instead of ``n_out n_in``, which is
why it aligns about ``sqrt(n_in)`` times better (eq-zo-node).

The module holds the estimators, a measurement of their cosines, ZO descent on a quadratic and a
trainer of a digits MLP by backprop, forward gradient, SPSA or node perturbation at a matched budget of
forward passes (eq-zo-budget).

References:
    Garcia Fernandez, Ahmad & van Gerven (2025), A Unified Perspective on Optimization in Machine
    Learning and Neuroscience: From Gradient Descent to Neural Adaptation, arXiv:2510.18812.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch.func import jvp, vmap

from . import models
from .backend import (
    Record,
    as_generator,
    check_callable,
    check_choice,
    check_count,
    check_float_tensor,
    check_positive,
    progress,
)
from .run import run

Fn = Callable[[torch.Tensor], torch.Tensor]
Probe = Literal["gaussian", "rademacher"]
Method = Literal["forward", "two_point", "spsa"]
Trainer = Literal["backprop", "forward", "spsa", "node"]

#: forward passes per probe (per step for backprop) counted by :func:`train_digits` (eq-zo-budget)
PASSES = {"backprop": 3, "forward": 2, "spsa": 2, "node": 2}


def _check_x(x, name: str = "x") -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if x.ndim != 1 or x.numel() == 0:
        raise ValueError(f"{name}: expected a vector of shape (d,), got shape {tuple(x.shape)}")
    _check_finite(x, name)
    return x


def _check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _probes(shape, *, probe: str, like: torch.Tensor, generator) -> torch.Tensor:
    gen = as_generator(generator, like.device)
    v = torch.randn(shape, generator=gen, dtype=like.dtype, device=like.device)
    return v if probe == "gaussian" else torch.sign(v) + (v == 0).to(v)


def _check_noise(noise, shape, like: torch.Tensor) -> torch.Tensor:
    noise = check_float_tensor(noise, name="noise")
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise: expected shape {tuple(shape)}, got {tuple(noise.shape)}")
    return noise.to(like)


def _values(f: Fn, X: torch.Tensor) -> torch.Tensor:
    out = f(X)
    if not isinstance(out, torch.Tensor) or out.shape != X.shape[:-1]:
        raise ValueError(f"f: expected f of a (..., d) tensor to have shape {tuple(X.shape[:-1])}, got "
                         f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out


def two_point_estimate(f: Fn, x, *, sigma: float, n_probes: int = 1, probe: Probe = "gaussian",
                       generator: int | torch.Generator = 0, noise: torch.Tensor | None = None) -> torch.Tensor:
    """The central two-point gradient estimate (eq-zo-two-point).

    ``g_hat = (1/K) sum_k [f(x + sigma v_k) - f(x - sigma v_k)] / (2 sigma) v_k`` with ``K = n_probes``
    probes ``v_k``, standard Gaussian (``probe="gaussian"``, Gaussian smoothing) or +-1 entries
    (``probe="rademacher"``, SPSA). ``f`` is evaluated once, on all ``2K`` points stacked.

    Args:
        f: the function, mapping ``(..., d)`` to ``(...)``.
        x: the point, shape ``(d,)``.
        sigma: probe radius ``> 0``.
        n_probes: ``K >= 1``.
        probe: ``"gaussian"`` or ``"rademacher"``.
        generator: seed or generator of the probes.
        noise: the probes themselves, shape ``(K, d)`` (then ``probe`` and ``generator`` are unused).

    Returns:
        ``g_hat``, shape ``(d,)``.

    References:
        Garcia Fernandez, Ahmad & van Gerven (2025), arXiv:2510.18812; Spall (1992) for SPSA.
    """
    f, x = check_callable(f, name="f"), _check_x(x)
    sigma = check_positive(sigma, name="sigma")
    K = check_count(n_probes, name="n_probes")
    probe = check_choice(probe, ("gaussian", "rademacher"), name="probe")
    v = _probes((K, x.numel()), probe=probe, like=x, generator=generator) if noise is None else \
        _check_noise(noise, (K, x.numel()), x)
    both = _values(f, torch.stack([x + sigma * v, x - sigma * v]))
    return ((both[0] - both[1]) / (2 * sigma)) @ v / K


def forward_gradient(f: Fn, x, *, n_probes: int = 1, generator: int | torch.Generator = 0,
                     noise: torch.Tensor | None = None) -> torch.Tensor:
    """The forward gradient ``(1/K) sum_k (grad f(x) . v_k) v_k`` with Gaussian probes (eq-zo-two-point, sigma -> 0).

    Each directional derivative ``grad f . v_k`` is one Jacobian-vector product (forward-mode
    differentiation, :func:`torch.func.jvp`): no backward pass. It is unbiased, ``E[v v^T] = I``.

    Args:
        f: the function, ``(..., d) -> (...)``; here called on ``(d,)``.
        x: the point, shape ``(d,)``.
        n_probes: ``K >= 1``.
        generator: seed or generator of the probes.
        noise: the probes, shape ``(K, d)``.

    Returns:
        The estimate, shape ``(d,)``.

    References:
        Baydin, Pearlmutter, Syme, Wood & Torr (2022), Gradients without backpropagation, arXiv:2202.08587;
        Garcia Fernandez, Ahmad & van Gerven (2025), arXiv:2510.18812.
    """
    f, x = check_callable(f, name="f"), _check_x(x)
    K = check_count(n_probes, name="n_probes")
    v = _probes((K, x.numel()), probe="gaussian", like=x, generator=generator) if noise is None else \
        _check_noise(noise, (K, x.numel()), x)
    slopes = vmap(lambda t: jvp(f, (x,), (t,))[1])(v)
    return slopes.to(v) @ v / K


def cosine_theory(d: int) -> float:
    """``E|cos(v, g)| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))`` for an isotropic ``v`` in ``d`` dimensions.

    The equation is eq-zo-cosine.
    It is about ``sqrt(2 / (pi d))`` for large ``d``; it is the mean cosine of a one-probe forward
    gradient with the true gradient.
    """
    d = check_count(d, name="d")
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


def probe_cosines(f: Fn, x, *, method: Method = "forward", n_probes: int = 1, n_repeats: int = 1000,
                  sigma: float = 1e-3, generator: int | torch.Generator = 0) -> torch.Tensor:
    """Cosines between ``n_repeats`` independent estimates and the autograd gradient (eq-zo-cosine).

    Args:
        f: the function, ``(..., d) -> (...)``.
        x: the point, shape ``(d,)`` (the gradient there must not be zero).
        method: ``"forward"`` (:func:`forward_gradient`), ``"two_point"`` (Gaussian probes) or ``"spsa"``
            (Rademacher probes) of :func:`two_point_estimate`.
        n_probes: ``K >= 1`` probes per estimate.
        n_repeats: number of independent estimates.
        sigma: probe radius of the two-point methods.
        generator: seed or generator.

    Returns:
        The cosines, shape ``(n_repeats,)``.
    """
    f, x = check_callable(f, name="f"), _check_x(x)
    method = check_choice(method, ("forward", "two_point", "spsa"), name="method")
    K, R = check_count(n_probes, name="n_probes"), check_count(n_repeats, name="n_repeats")
    sigma = check_positive(sigma, name="sigma")
    g = torch.func.grad(lambda p: f(p))(x).to(x)
    if float(g.norm()) == 0.0:
        raise ValueError("x: the gradient of f is zero there; a cosine needs a non-zero gradient")
    v = _probes((R, K, x.numel()), probe="rademacher" if method == "spsa" else "gaussian", like=x,
                generator=generator)
    if method == "forward":
        slopes = vmap(vmap(lambda t: jvp(f, (x,), (t,))[1]))(v)
    else:
        both = _values(f, torch.stack([x + sigma * v, x - sigma * v]))
        slopes = (both[0] - both[1]) / (2 * sigma)
    est = torch.einsum("rk,rkd->rd", slopes.to(v), v) / K
    return est @ g / (est.norm(dim=-1) * g.norm()).clamp(min=torch.finfo(x.dtype).tiny)


def _layer_args(W, x, target):
    W = _check_finite(check_float_tensor(W, name="W"), "W")
    if W.ndim != 2:
        raise ValueError(f"W: expected a matrix (n_out, n_in), got shape {tuple(W.shape)}")
    x = _check_finite(check_float_tensor(x, name="x"), "x").to(W)
    if x.shape[-1:] != W.shape[1:] or x.ndim not in (1, 2):
        raise ValueError(f"x: expected shape (n_in,) or (n, n_in) with n_in = {W.shape[1]}, got {tuple(x.shape)}")
    target = _check_finite(check_float_tensor(target, name="target"), "target").to(W)
    if target.shape != x.shape[:-1] + W.shape[:1]:
        raise ValueError(f"target: expected shape {tuple(x.shape[:-1] + W.shape[:1])}, got {tuple(target.shape)}")
    X, T = x.reshape(-1, W.shape[1]), target.reshape(-1, W.shape[0])
    return W, X, T


def layer_loss(W, x, target) -> torch.Tensor:
    """``(1/n) sum_i (1/2) ||W x_i - target_i||^2`` of a linear layer (eq-zo-node).

    ``x`` is ``(n_in,)`` or ``(n, n_in)``; ``target`` is ``(n_out,)`` or ``(n, n_out)``.
    """
    W, X, T = _layer_args(W, x, target)
    return 0.5 * ((X @ W.T - T) ** 2).sum(-1).mean()


def node_perturbation(W, x, target, *, sigma: float, generator: int | torch.Generator = 0,
                      noise: torch.Tensor | None = None) -> torch.Tensor:
    """Node perturbation of a linear layer: probe the outputs, not the weights (eq-zo-node).

    Each sample's outputs ``y_i = W x_i`` are moved by ``+-sigma xi_i`` (``xi_i`` standard Gaussian, one
    per sample); the central difference of that sample's loss gives ``delta_i ~ grad_y L_i . xi_i`` and the
    estimate is ``(1/n) sum_i delta_i xi_i x_i^T``: ``n_out`` numbers probed per sample.

    Args:
        W: weights, shape ``(n_out, n_in)``.
        x: inputs, ``(n_in,)`` or ``(n, n_in)``.
        target: targets, ``(n_out,)`` or ``(n, n_out)``; the loss is :func:`layer_loss`.
        sigma: probe radius ``> 0``.
        generator: seed or generator.
        noise: the output probes ``xi``, shape ``(n, n_out)``.

    Returns:
        The estimate of ``dL/dW``, shape ``(n_out, n_in)``.

    References:
        Fiete & Seung (2006), Gradient learning in spiking neural networks by dynamic perturbation of
        conductances, Physical Review Letters 97, 048104; Garcia Fernandez, Ahmad & van Gerven (2025),
        arXiv:2510.18812.
    """
    W, X, T = _layer_args(W, x, target)
    sigma = check_positive(sigma, name="sigma")
    xi = _probes(T.shape, probe="gaussian", like=W, generator=generator) if noise is None else \
        _check_noise(noise, T.shape, W)
    Y = X @ W.T
    delta = (((Y + sigma * xi - T) ** 2).sum(-1) - ((Y - sigma * xi - T) ** 2).sum(-1)) / (4 * sigma)
    return (delta[:, None] * xi).T @ X / X.shape[0]


def weight_perturbation(W, x, target, *, sigma: float, generator: int | torch.Generator = 0,
                        noise: torch.Tensor | None = None) -> torch.Tensor:
    """Weight perturbation of a linear layer: one Gaussian probe of all ``n_out n_in`` weights (eq-zo-node).

    ``(L(W + sigma Xi) - L(W - sigma Xi)) / (2 sigma) Xi``, the two-point estimate (eq-zo-two-point) of
    :func:`layer_loss` in the weights.

    Args:
        W, x, target, sigma, generator: as in :func:`node_perturbation`.
        noise: the weight probe ``Xi``, shape ``(n_out, n_in)``.

    Returns:
        The estimate of ``dL/dW``, shape ``(n_out, n_in)``.
    """
    W, X, T = _layer_args(W, x, target)
    sigma = check_positive(sigma, name="sigma")
    Xi = _probes(W.shape, probe="gaussian", like=W, generator=generator) if noise is None else \
        _check_noise(noise, W.shape, W)
    up, down = layer_loss(W + sigma * Xi, X, T), layer_loss(W - sigma * Xi, X, T)
    return (up - down) / (2 * sigma) * Xi


def quadratic_problem(d: int, *, kappa: float = 1.0, dtype: torch.dtype = torch.float64,
                      device=None) -> torch.Tensor:
    """Eigenvalues of a diagonal quadratic ``f(x) = (1/2) sum_i h_i x_i^2``: ``d`` values log-spaced from
    ``1/kappa`` to 1, shape ``(d,)`` (``kappa >= 1`` is the condition number)."""
    d = check_count(d, name="d")
    kappa = check_positive(kappa, name="kappa")
    if kappa < 1:
        raise ValueError(f"kappa: a condition number is >= 1, got {kappa}")
    return torch.logspace(-math.log10(kappa), 0.0, d, dtype=dtype, device=device)


@dataclass(frozen=True)
class ZODescent(Record):
    """ZO descent on a diagonal quadratic.

    Attributes:
        steps: recorded steps ``(S,)``.
        loss: ``f`` at those steps, ``(S, R)``.
        diverged, diverged_at: per run, ``(R,)`` (see :mod:`lessons_lib.run`).
    """

    steps: torch.Tensor
    loss: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def zo_descent(h, x0, *, lr: float, steps: int, method: Literal["gd", "forward", "spsa"] = "forward",
               n_probes: int = 1, runs: int = 1, generator: int | torch.Generator = 0,
               record_every: int = 1) -> ZODescent:
    """Descend ``f(x) = (1/2) sum_i h_i x_i^2`` along the estimate: ``x <- x - lr g_hat`` (eq-zo-two-point).

    ``method="gd"`` uses the exact gradient, ``"forward"`` Gaussian probes, ``"spsa"`` Rademacher probes
    (on a quadratic the central two-point estimate equals the forward gradient with the same probes, for
    every ``sigma``). Runs are batched and draw independent probes.

    Args:
        h: curvatures, shape ``(d,)`` (see :func:`quadratic_problem`).
        x0: start, shape ``(d,)``, shared by the runs.
        lr: step size ``> 0``.
        steps: number of steps ``>= 1``.
        method: ``"gd"``, ``"forward"`` or ``"spsa"``.
        n_probes: ``K`` probes per step.
        runs: independent runs ``R``.
        generator: seed or generator.
        record_every: recording interval.

    Returns:
        A :class:`ZODescent`; a run that leaves ``1e6`` times its start's radius is frozen and flagged.
    """
    h = check_float_tensor(h, name="h")
    if h.ndim != 1 or not bool((h > 0).all()):
        raise ValueError("h: expected a vector of positive curvatures")
    x0 = _check_x(x0, "x0").to(h)
    if x0.shape != h.shape:
        raise ValueError(f"x0: expected shape {tuple(h.shape)}, got {tuple(x0.shape)}")
    lr = check_positive(lr, name="lr")
    method = check_choice(method, ("gd", "forward", "spsa"), name="method")
    K, R = check_count(n_probes, name="n_probes"), check_count(runs, name="runs")
    steps = check_count(steps, name="steps")
    gen = as_generator(generator, h.device)

    def step(x, t, eta):
        g = h * x
        if method != "gd":
            v = _probes((R, K, h.numel()), probe="rademacher" if method == "spsa" else "gaussian", like=h,
                        generator=gen)
            g = torch.einsum("rk,rkd->rd", torch.einsum("rd,rkd->rk", g, v), v) / K
        return x - eta * g

    out = run(step, x0.expand(R, -1).clone(), steps=steps, lr=lr, batched=True, record_every=record_every,
              record=lambda x, t: {"loss": 0.5 * (h * x * x).sum(-1)})
    return ZODescent(steps=out.steps, loss=out.history["loss"], diverged=out.diverged, diverged_at=out.diverged_at)


# --- a digits MLP at a matched budget of forward passes ----------------------------------------------------------

def _forward(params, X, sizes, act, xi=None, sigma=0.0):
    """Logits, the inputs of each layer and (with ``xi``) pre-activations moved by ``sigma xi``."""
    shapes = models.mlp_shapes(sizes)
    chunks = torch.split(params, [math.prod(s) for s in shapes])
    h, inputs = X, []
    for i in range(len(sizes) - 1):
        inputs.append(h)
        h = h @ chunks[2 * i].view(shapes[2 * i]).T + chunks[2 * i + 1]
        if xi is not None:
            h = h + sigma * xi[i]
        if i < len(sizes) - 2:
            h = act(h)
    return h, inputs


def node_perturbation_mlp(model: models.MLPClassifier, params, X, y, *, sigma: float,
                          generator: int | torch.Generator = 0, noise: Sequence[torch.Tensor] | None = None
                          ) -> torch.Tensor:
    """Node-perturbation estimate of the mean cross-entropy's gradient, two forward passes (eq-zo-node).

    Two passes whose pre-activations ``a_l`` of every layer are moved by ``+sigma xi_l`` and ``-sigma xi_l``
    (``xi_l`` standard Gaussian, independent per sample and unit): the central difference of eq-zo-node.
    With ``delta_i = (L_i(+) - L_i(-)) / (2 sigma)`` the estimate of layer ``l`` is
    ``(1/n) sum_i delta_i xi_{l,i} [x_{l,i}^T, 1]``, ``x_{l,i}`` the mean of layer ``l``'s inputs in the two
    passes (the clean input up to ``O(sigma^2)`` for smooth activations): unbiased up to ``O(sigma^2)``.

    Args:
        model: an :class:`~lessons_lib.models.MLPClassifier`.
        params: flat parameters ``(P,)``.
        X: inputs ``(n, sizes[0])``; y: labels ``(n,)``.
        sigma: perturbation ``> 0``.
        generator: seed or generator.
        noise: the ``xi_l``, one ``(n, sizes[l + 1])`` tensor per layer.

    Returns:
        The estimate, flat ``(P,)``.
    """
    if not isinstance(model, models.MLPClassifier):
        raise ValueError(f"model: expected an MLPClassifier, got {type(model).__name__}")
    params = _check_finite(check_float_tensor(params, name="params"), "params")
    X = _check_finite(check_float_tensor(X, name="X"), "X").to(params)
    if params.shape != (model.n_params,):
        raise ValueError(f"params: expected shape ({model.n_params},), got {tuple(params.shape)}")
    if X.ndim != 2 or X.shape[1] != model.sizes[0]:
        raise ValueError(f"X: expected shape (n, {model.sizes[0]}), got {tuple(X.shape)}")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != X.shape[:1]:
        raise ValueError(f"y: expected a long tensor of {X.shape[0]} labels")
    sigma = check_positive(sigma, name="sigma")
    widths = [(X.shape[0], s) for s in model.sizes[1:]]
    if noise is None:
        gen = as_generator(generator, params.device)
        xi = [torch.randn(w, generator=gen, dtype=params.dtype, device=params.device) for w in widths]
    else:
        if len(noise) != len(widths):
            raise ValueError(f"noise: expected {len(widths)} tensors, one per layer")
        xi = [_check_noise(z, w, params) for z, w in zip(noise, widths)]
    act = models.mlp_activation(model.activation)
    y = y.to(params.device)
    up, inputs_up = _forward(params, X, model.sizes, act, xi, sigma)
    down, inputs_down = _forward(params, X, model.sizes, act, xi, -sigma)
    ce = torch.nn.functional.cross_entropy
    delta = (ce(up, y, reduction="none") - ce(down, y, reduction="none")) / (2 * sigma)
    parts = []
    for z, a, b in zip(xi, inputs_up, inputs_down):
        inp = (a + b) / 2
        dz = delta[:, None] * z / X.shape[0]
        parts += [(dz.T @ inp).flatten(), dz.sum(0)]
    return torch.cat(parts)


@dataclass(frozen=True)
class DigitsRun(Record):
    """One digits-MLP training run at a budget of forward passes.

    Attributes:
        method: ``"backprop"``, ``"forward"``, ``"spsa"`` or ``"node"``.
        passes: forward passes spent at each record, ``(S,)``.
        loss: full training-set loss at each record, ``(S,)``.
        test_accuracy: accuracy on the held-out digits at the end.
        diverged, diverged_at: as in :mod:`lessons_lib.run`.
    """

    method: str
    passes: torch.Tensor
    loss: torch.Tensor
    test_accuracy: float
    diverged: torch.Tensor
    diverged_at: torch.Tensor


def train_digits(method: Trainer, *, lr: float, passes: int = 6000, batch_size: int = 64, n_probes: int = 1,
                 sigma: float = 1e-3, sizes: Sequence[int] = (64, 32, 10), records: int = 30,
                 data: models.DigitsSplit | None = None, generator: int | torch.Generator = 0) -> DigitsRun:
    """Train a digits MLP by SGD on one estimate per minibatch, at a budget of forward passes (eq-zo-budget).

    A step costs ``PASSES[method] * n_probes`` forward passes (3 for backprop, which is one forward and
    one backward pass counted as two; 2 per probe for a Jacobian-vector product, a two-point SPSA
    difference or node perturbation's passes at ``+sigma xi`` and ``-sigma xi``), so the run takes
    ``passes // cost`` steps. The update is ``params <- params - lr g_hat`` with ``g_hat`` the exact
    minibatch gradient, :func:`forward_gradient`, :func:`two_point_estimate` with Rademacher probes, or
    :func:`node_perturbation_mlp`.

    Args:
        method: ``"backprop"``, ``"forward"``, ``"spsa"`` or ``"node"``.
        lr: step size ``> 0``.
        passes: budget of forward passes.
        batch_size: minibatch size.
        n_probes: probes per step (not used by backprop).
        sigma: probe radius of SPSA and node perturbation.
        sizes: widths of the MLP.
        records: about how many loss records to keep.
        data: a :func:`~lessons_lib.models.digits_split` (default: split 0 on the CPU); its device is used.
        generator: seed of the initialisation, the minibatches and the probes.

    Returns:
        A :class:`DigitsRun`.
    """
    method = check_choice(method, tuple(PASSES), name="method")
    lr = check_positive(lr, name="lr")
    budget, B = check_count(passes, name="passes"), check_count(batch_size, name="batch_size")
    K, records = check_count(n_probes, name="n_probes"), check_count(records, name="records")
    sigma = check_positive(sigma, name="sigma")
    model = models.mlp_classifier(sizes)
    data = models.digits_split(generator=0, device="cpu") if data is None else data
    if not isinstance(data, models.DigitsSplit):
        raise ValueError(f"data: expected a DigitsSplit, got {type(data).__name__}")
    cost = PASSES[method] * (1 if method == "backprop" else K)
    steps = budget // cost
    if steps < 1:
        raise ValueError(f"passes: {budget} forward passes buy no step of {method} (one costs {cost})")
    Xtr, ytr = data.X_train, data.y_train
    gen = as_generator(generator, Xtr.device)
    params0 = model.init(gen, dtype=Xtr.dtype, device=Xtr.device)

    def step(p, t, eta):
        idx = torch.randint(Xtr.shape[0], (B,), generator=gen, device=Xtr.device)
        X, y = Xtr[idx], ytr[idx]
        f = lambda q: model.loss(q, X, y)  # noqa: E731
        if method == "backprop":
            g = torch.func.grad(f)(p)
        elif method == "forward":
            g = forward_gradient(f, p, n_probes=K, generator=gen)
        elif method == "spsa":
            def batch_f(Q):  # f on (..., P): the 2K probe points in one batched pass
                return vmap(f)(Q.reshape(-1, Q.shape[-1])).reshape(Q.shape[:-1])
            g = two_point_estimate(batch_f, p, sigma=sigma, n_probes=K, probe="rademacher", generator=gen)
        else:
            g = sum(node_perturbation_mlp(model, p, X, y, sigma=sigma, generator=gen) for _ in range(K)) / K
        return p - eta * g

    out = run(step, params0, steps=steps, lr=lr, record_every=max(1, steps // records),
              record=lambda p, t: {"loss": model.loss(p, Xtr, ytr).detach()})
    acc = model.accuracy(out.state, data.X_test, data.y_test)
    return DigitsRun(method=method, passes=out.steps * cost, loss=out.history["loss"], test_accuracy=acc,
                     diverged=out.diverged, diverged_at=out.diverged_at)


def train_all(lrs: dict, *, passes: int = 6000, seeds: Sequence[int] = (0,), **kwargs) -> dict:
    """:func:`train_digits` for each ``method: lr`` of ``lrs`` and each seed: ``{method: [DigitsRun, ...]}``."""
    if not isinstance(lrs, dict) or not lrs:
        raise ValueError("lrs: expected a non-empty dict method -> learning rate")
    out: dict = {}
    for method, lr in progress(list(lrs.items()), desc="methods"):
        out[method] = [train_digits(method, lr=lr, passes=passes, generator=int(s), **kwargs) for s in seeds]
    return out
