"""Equilibrium propagation without weight symmetry: nudged fixed points, Cauchy estimators, homeostasis.

A sigmoid network ``x -> h <-> out`` (hidden and output units coupled both ways) relaxes to a fixed
point ``u = W sigma(u) + drive + beta e_out (a_out - y)`` (eq-ep-relax; ``a = sigma(u)``, the nudge
``beta`` acts on the output units with the gradient of ``L = |a_out - y|^2 / 2``, with the sign of the
authors' code). Equilibrium propagation (EP) reads the *neuronal error vector* ``da/dbeta`` at
``beta = 0`` off nudged fixed points: one-sided, symmetric, or with ``N`` complex nudges on a circle
(a Cauchy integral, eq-ep-cauchy), whose bias falls like ``beta^N``. Exactly,
``da/dbeta = (D^-1 - W)^-1 grad L`` with ``D = diag(sigma'(u))``, while the true gradient (recurrent
backpropagation, RBP) needs ``(D^-1 - W^T)^-1 grad L`` (eq-ep-error): the two agree when the weights
are symmetric, and the feedback angle ``angle`` breaks that. The homeostatic loss (eq-ep-homeostasis)
measures the asymmetry of the Jacobian from two Jacobian-vector products.

References:
    Laborieux & Zenke (2024), Improving equilibrium propagation without weight symmetry through
    Jacobian homeostasis, ICLR 2024, arXiv 2309.02214 (code: Laborieux-Axel/generalized-holo-ep).
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch

from .backend import (
    Record,
    as_generator,
    check_choice,
    check_count,
    check_float_tensor,
    check_positive,
    check_real,
    default_device,
)
from .descent import adam_direction
from .run import run


@dataclass(frozen=True)
class Net:
    """A recurrent sigmoid network ``x -> h <-> out`` (stays on its device; not a host record).

    Attributes:
        W_in: input weights, shape ``(n_hidden, n_in)``.
        b: biases of the hidden and output units, shape ``(n,)`` with ``n = n_hidden + n_out``.
        W_out: forward weights hidden -> output, shape ``(n_out, n_hidden)``.
        B: feedback weights output -> hidden, shape ``(n_hidden, n_out)``.
    """

    W_in: torch.Tensor
    b: torch.Tensor
    W_out: torch.Tensor
    B: torch.Tensor

    @property
    def n_hidden(self) -> int:
        return self.W_in.shape[0]

    @property
    def n(self) -> int:
        return self.b.shape[0]

    def matrix(self) -> torch.Tensor:
        """The recurrent weight matrix ``W`` of shape ``(n, n)``, rows post-, columns presynaptic."""
        h = self.n_hidden
        W = torch.zeros(self.n, self.n, dtype=self.b.dtype, device=self.b.device)
        W[:h, h:] = self.B
        W[h:, :h] = self.W_out
        return W


def _check_net(net) -> Net:
    if not isinstance(net, Net):
        raise ValueError(f"net: expected an equilibrium.Net (from make_net), got {type(net).__name__}")
    return net


def make_net(n_in: int, n_hidden: int, n_out: int, *, angle: float, scale: float = 1.0,
             generator: int | torch.Generator = 0, dtype: torch.dtype = torch.float64,
             device: torch.device | str | None = None) -> Net:
    """A random network with feedback ``B = cos(angle) W_out^T + sin(angle) R`` (the code's ``rotate``).

    ``W_out`` and ``R`` have independent entries ``N(0, (2 scale)^2 / n_hidden)``, so ``B`` has the same
    scale as ``W_out^T`` at every angle; ``W_in`` has entries ``N(0, 1 / n_in)``, the biases are zero.
    ``scale`` is the recurrence gain: the loop gain ``W D`` of eq-ep-error has spectral radius about
    ``scale / 2`` at most (``sigma' <= 1/4``), somewhat more for a narrow output layer (the norm of a random
    rectangular block adds a factor up to ``1 + sqrt(n_out / n_hidden)``); the relaxation contracts for
    ``scale`` up to about 1.5 at the chapter's sizes.

    Args:
        n_in, n_hidden, n_out: layer sizes, each ``>= 1``.
        angle: the feedback angle in degrees, in ``[0, 90]`` (0: ``B = W_out^T``, symmetric weights).
        scale: recurrence gain ``> 0``.
        generator: int seed or ``torch.Generator``.
        dtype: ``torch.float64`` (default) or ``torch.float32``.
        device: defaults to the generator's device or :func:`default_device`.

    Returns:
        A :class:`Net`.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214 (feedback rotation, their Fig. 3).
    """
    n_in, n_hidden, n_out = (check_count(v, name=k) for k, v in
                             (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    angle = check_real(angle, name="angle")
    if not 0.0 <= angle <= 90.0:
        raise ValueError(f"angle: expected degrees in [0, 90], got {angle}")
    scale = check_positive(scale, name="scale")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    if device is None:
        device = generator.device if isinstance(generator, torch.Generator) else default_device()
    gen = as_generator(generator, device)
    kw = dict(generator=gen, dtype=dtype, device=device)
    W_in = torch.randn(n_hidden, n_in, **kw) / math.sqrt(n_in)
    W_out = torch.randn(n_out, n_hidden, **kw) * (2 * scale / math.sqrt(n_hidden))
    R = torch.randn(n_hidden, n_out, **kw) * (2 * scale / math.sqrt(n_hidden))
    a = math.radians(angle)
    B = math.cos(a) * W_out.T + math.sin(a) * R
    return Net(W_in, torch.zeros(n_hidden + n_out, dtype=dtype, device=device), W_out, B.contiguous())


def _finite(t, name: str) -> torch.Tensor:
    t = check_float_tensor(t, name=name)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or infinity")
    return t


def _check_data(net: Net, x, y, names: tuple[str, str] = ("x", "y")) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _finite(x, names[0]), _finite(y, names[1])
    if x.ndim != 2 or x.shape[1] != net.W_in.shape[1]:
        raise ValueError(f"{names[0]}: expected shape (B, {net.W_in.shape[1]}), got {tuple(x.shape)}")
    if y.ndim != 2 or y.shape != (x.shape[0], net.W_out.shape[0]):
        raise ValueError(f"{names[1]}: expected one-hot targets of shape ({x.shape[0]}, {net.W_out.shape[0]}), "
                         f"got {tuple(y.shape)}")
    return x.to(net.b), y.to(net.b)


def relax(net: Net, x: torch.Tensor, y: torch.Tensor, *, beta: float | complex = 0.0,
          steps: int = 150) -> torch.Tensor:
    """Relax the network to its (nudged) fixed point and return the activations ``a = sigma(u)``.

    Iterates ``u <- W sigma(u) + drive + beta e_out (sigma(u_out) - y)`` (eq-ep-relax) from
    ``u = drive``, where ``drive = (W_in x + b_h, b_out)``. A complex ``beta`` runs the whole
    relaxation in complex128 (the holomorphic continuation of the fixed point); a real one in the
    net's dtype.

    Args:
        net: from :func:`make_net`.
        x: inputs, shape ``(B, n_in)``.
        y: one-hot targets, shape ``(B, n_out)``.
        beta: the nudge, a real or complex number.
        steps: fixed-point iterations ``>= 1``.

    Returns:
        Activations of shape ``(B, n_hidden + n_out)``, complex128 for a complex ``beta``.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214 (discrete vector field, nudge at the output).
    """
    net = _check_net(net)
    x, y = _check_data(net, x, y)
    steps = check_count(steps, name="steps")
    if isinstance(beta, bool) or not isinstance(beta, (int, float, complex)):
        raise ValueError(f"beta: expected a real or complex number, got {type(beta).__name__}")
    if not cmath.isfinite(beta):
        raise ValueError(f"beta: must be finite, got {beta}")
    W, h = net.matrix(), net.n_hidden
    drive = torch.cat([x @ net.W_in.T + net.b[:h], net.b[h:].expand(x.shape[0], -1)], dim=1)
    y_pad = torch.cat([torch.zeros_like(drive[:, :h]), y], dim=1)
    if isinstance(beta, complex):
        W, drive, y_pad = (t.to(torch.complex128) for t in (W, drive, y_pad))
    mask = torch.zeros(net.n, dtype=W.dtype, device=W.device)
    mask[h:] = beta
    # u = W a + drive + beta e_out (a - y), folded into one matrix and one constant: u = a M + c
    M = W.T + torch.diag(mask)
    c = drive - mask * y_pad
    u = drive
    for _ in range(steps):
        u = torch.sigmoid(u) @ M + c
    return torch.sigmoid(u)


def cauchy_derivative(fn: Callable, beta: float, *, n_points: int) -> torch.Tensor:
    """Estimate ``f'(0)`` from values of ``f`` on a circle of radius ``beta`` (eq-ep-cauchy).

    ``N = 1``: ``(f(beta) - f(0)) / beta`` (one-sided, bias ``O(beta)``); ``N >= 2``:
    ``(1/N) sum_k f(beta w^k) / (beta w^k)`` with ``w = exp(2 pi i / N)`` (the trapezoidal rule for
    Cauchy's integral; ``N = 2`` is the symmetric difference, bias ``O(beta^2)``, and in general the bias
    is ``O(beta^N)``). Real points are passed as Python floats, the others as complex numbers; the
    result is the real part.

    Args:
        fn: a map from a number to a tensor, holomorphic near 0 and real on the real axis.
        beta: radius ``> 0``.
        n_points: ``N >= 1``.

    Returns:
        The estimate, a real tensor of ``fn``'s shape.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214 (holomorphic EP, ``du_dbeta``).
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a callable, got {type(fn).__name__}")
    beta = check_positive(beta, name="beta")
    n_points = check_count(n_points, name="n_points")
    if n_points == 1:
        return ((torch.as_tensor(fn(beta)) - torch.as_tensor(fn(0.0))) / beta).real
    total = 0.0
    for k in range(n_points):
        z = beta * cmath.exp(2j * math.pi * k / n_points)
        if abs(z.imag) < 1e-14 * beta:  # a real point (k = 0, and k = N/2 for even N): stay real
            z = z.real
        total = total + torch.as_tensor(fn(z)) / z
    return (total / n_points).real


def _loss_grad(net: Net, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``dL/da`` for ``L = |a_out - y|^2 / 2``, padded with zeros on the hidden units, shape ``(B, n)``."""
    h = net.n_hidden
    return torch.cat([torch.zeros_like(a[:, :h]), a[:, h:] - y], dim=1)


def ep_error_vector(net: Net, x: torch.Tensor, y: torch.Tensor, *, beta: float, n_points: int,
                    steps: int = 150) -> torch.Tensor:
    """EP's estimate of ``da/dbeta`` at ``beta = 0`` from nudged fixed points (eq-ep-cauchy).

    Args:
        net, x, y: as in :func:`relax`.
        beta: nudge radius ``> 0``.
        n_points: number of nudges ``N >= 1`` (1: one-sided, 2: symmetric, more: complex nudges).
        steps: relaxation steps per fixed point.

    Returns:
        Shape ``(B, n)``, real.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214.
    """
    _check_net(net)
    return cauchy_derivative(lambda b: relax(net, x, y, beta=b, steps=steps), beta, n_points=n_points)


def jacobian(net: Net, x: torch.Tensor, y: torch.Tensor, *, steps: int = 150) -> torch.Tensor:
    """The Jacobian ``J = W - D^-1`` of the field at the free fixed point, written in the activations.

    The fixed point solves ``G(a) = W a + drive - sigma^-1(a) = 0``; ``J = dG/da = W - D^-1`` with
    ``D = diag(sigma'(u))``, so ``da/dbeta = -J^-1 grad L`` and RBP's vector is ``-J^-T grad L``
    (eq-ep-error). Its antisymmetric part is that of ``W`` (and of the authors' ``W - I``): for this
    network Jacobian homeostasis is weight alignment. ``y`` does not enter at ``beta = 0``.

    Returns:
        Shape ``(B, n, n)``.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214.
    """
    a = relax(net, x, y, steps=steps)
    return net.matrix() - torch.diag_embed(1.0 / (a * (1 - a)))


def exact_error_vector(net: Net, x: torch.Tensor, y: torch.Tensor, *, steps: int = 150) -> torch.Tensor:
    """The exact ``da/dbeta`` at ``beta = 0``: ``(D^-1 - W)^-1 grad L`` by a dense solve (eq-ep-error).

    Returns:
        Shape ``(B, n)``.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214 (their ``N = 0``, forward-mode ground truth).
    """
    a = relax(net, x, y, steps=steps)
    J = net.matrix() - torch.diag_embed(1.0 / (a * (1 - a)))
    return torch.linalg.solve(-J, _loss_grad(net, a, y))


def rbp_error_vector(net: Net, x: torch.Tensor, y: torch.Tensor, *, steps: int = 150) -> torch.Tensor:
    """Recurrent backprop's error vector ``(D^-1 - W^T)^-1 grad L`` (eq-ep-error), same sign as EP's.

    Paired with the activations by :func:`weight_gradient` it gives the true gradient of
    ``L(a*)``; it equals :func:`exact_error_vector` when ``W`` is symmetric.

    Returns:
        Shape ``(B, n)``.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214 (``delta_rbp``).
    """
    a = relax(net, x, y, steps=steps)
    J = net.matrix() - torch.diag_embed(1.0 / (a * (1 - a)))
    return torch.linalg.solve(-J.transpose(-1, -2), _loss_grad(net, a, y))


def _check_square(J) -> torch.Tensor:
    J = _finite(J, "J")
    if J.ndim not in (2, 3) or J.shape[-1] != J.shape[-2] or J.shape[-1] == 0:
        raise ValueError(f"J: expected a square matrix (n, n) or a batch (B, n, n), got {tuple(J.shape)}")
    return J


def homeostatic_loss(J: torch.Tensor, *, n_probes: int, generator: int | torch.Generator = 0) -> torch.Tensor:
    """Monte-Carlo homeostatic loss ``mean_eps (|J eps|^2 - eps^T J^2 eps) / n`` (eq-ep-homeostasis).

    Two Jacobian-vector products per probe ``eps ~ N(0, I)``; its expectation is
    ``(|J|_F^2 - tr J^2) / n = |J - J^T|_F^2 / (2n)`` (:func:`jacobian_asymmetry`).

    Args:
        J: shape ``(n, n)`` or ``(B, n, n)``.
        n_probes: number of probes ``>= 1``.
        generator: int seed or ``torch.Generator`` (on ``J``'s device). Use a stream independent of the
            one that drew ``J``: with the same seed the first probes are ``J``'s own rows and bias the estimate.

    Returns:
        Shape ``()`` or ``(B,)``.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214 (``homeo_loss``).
    """
    J = _check_square(J)
    n_probes = check_count(n_probes, name="n_probes")
    gen = as_generator(generator, J.device)
    eps = torch.randn(n_probes, J.shape[-1], generator=gen, dtype=J.dtype, device=J.device)
    Je = eps @ J.transpose(-1, -2)     # rows: J eps
    JJe = Je @ J.transpose(-1, -2)     # rows: J (J eps)
    return ((Je * Je).sum(-1) - (eps * JJe).sum(-1)).mean(-1) / J.shape[-1]


def jacobian_asymmetry(J: torch.Tensor) -> torch.Tensor:
    """``|J - J^T|_F^2 / (2n)``, the expectation of the homeostatic loss (eq-ep-homeostasis).

    Args:
        J: shape ``(n, n)`` or ``(B, n, n)``.

    Returns:
        Shape ``()`` or ``(B,)``.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214.
    """
    J = _check_square(J)
    return ((J - J.transpose(-1, -2)) ** 2).sum((-1, -2)) / (2 * J.shape[-1])


def cosine(u: torch.Tensor, v: torch.Tensor) -> float:
    """Cosine between two tensors of the same shape, flattened (batch included)."""
    u, v = _finite(u, "u"), _finite(v, "v")
    if u.shape != v.shape:
        raise ValueError(f"v: expected the shape of u, {tuple(u.shape)}, got {tuple(v.shape)}")
    nu, nv = float(u.norm()), float(v.norm())
    if nu == 0 or nv == 0:
        raise ValueError("u: the cosine of a zero tensor is undefined")
    return float((u.flatten() @ v.flatten().to(u)) / (nu * nv))


def weight_gradient(net: Net, x: torch.Tensor, a: torch.Tensor, delta: torch.Tensor) -> Net:
    """``g = (dF/dw)^T delta / B``: the weight update for an error vector ``delta`` (eq-ep-error).

    With ``F = W a + drive - u``: ``dW = delta a^T``, ``dW_in = delta_h x^T``, ``db = delta``, averaged
    over the batch. With ``delta`` from :func:`rbp_error_vector` this is the exact gradient of the mean
    of ``L(a*)``; with EP's vector it is EP's update.

    Args:
        net: the network.
        x: inputs ``(B, n_in)``; a: free fixed-point activations ``(B, n)``; delta: ``(B, n)``.

    Returns:
        The gradient as a :class:`Net` of the same shapes.
    """
    net = _check_net(net)
    x, a, delta = (_finite(t, k).to(net.b) for k, t in (("x", x), ("a", a), ("delta", delta)))
    if a.shape != delta.shape or a.shape != (x.shape[0], net.n):
        raise ValueError(f"delta: expected the shape of a, ({x.shape[0]}, {net.n}), got a {tuple(a.shape)} "
                         f"and delta {tuple(delta.shape)}")
    h, m = net.n_hidden, x.shape[0]
    return Net(delta[:, :h].T @ x / m, delta.mean(0), delta[:, h:].T @ a[:, :h] / m,
               delta[:, :h].T @ a[:, h:] / m)


@dataclass(frozen=True)
class Training(Record):
    """What :func:`train` returns (on the host).

    Attributes:
        steps: recorded steps ``(K,)``.
        accuracy: test accuracy at those steps ``(K,)``.
        cos_rbp: cosine between EP's error vector and RBP's on the test inputs ``(K,)``.
        asymmetry: ``|J - J^T|_F^2 / (2n)`` ``(K,)``.
        diverged, diverged_at: as in :mod:`lessons_lib.run`.
    """

    steps: torch.Tensor
    accuracy: torch.Tensor
    cos_rbp: torch.Tensor
    asymmetry: torch.Tensor
    diverged: torch.Tensor
    diverged_at: torch.Tensor


_FIELDS = ("W_in", "b", "W_out", "B")


def _error_iterate(net: Net, a: torch.Tensor, g: torch.Tensor, *, transpose: bool, steps: int) -> torch.Tensor:
    """``(D^-1 - W)^-1 g`` (or with ``W^T``) by the fixed-point iteration ``delta <- D (g + W delta)``.

    The iteration contracts exactly when the relaxation does (same loop gain ``D W``); this is how the
    authors' ``delta_rbp`` computes RBP, and cheaper than a dense solve per example.
    """
    W = net.matrix()
    Wt = W if transpose else W.T  # rows of delta times Wt: (W delta) per example, or (W^T delta)
    D = a * (1 - a)
    delta = D * g
    for _ in range(steps):
        delta = D * (g + delta @ Wt)
    return delta


def train(net: Net, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor, y_test: torch.Tensor, *,
          estimator: Literal["ep", "rbp"] = "ep", lr: float = 1e-3, steps: int = 300, batch: int = 64,
          homeostasis: float = 0.0, relax_steps: int = 40, record_every: int = 25,
          generator: int | torch.Generator = 0) -> Training:
    """Train with EP's exact error vector (the paper's ``N = 0``) and Adam, plus a homeostatic penalty.

    Each step: relax a minibatch, take ``delta = (D^-1 - W)^-1 grad L`` (what EP estimates, biased by the
    asymmetry; with ``estimator="rbp"`` the true ``(D^-1 - W^T)^-1 grad L`` instead), form
    :func:`weight_gradient` and add ``homeostasis`` times the gradient of
    ``|W - W^T|_F^2 / (2n)`` (the expected homeostatic loss of eq-ep-homeostasis, which for this network
    only depends on the weights), then one Adam step. Forward and feedback weights are both trained.

    Args:
        net: the start; X, y: training inputs ``(M, n_in)`` and one-hot targets ``(M, n_out)``;
        X_test, y_test: the held-out set on which accuracy and ``cos(EP, RBP)`` are recorded.
        estimator: ``"ep"`` (EP's exact ``da/dbeta``, biased by asymmetry) or ``"rbp"`` (the true gradient).
        lr: Adam's learning rate ``> 0``; steps: updates; batch: minibatch size.
        homeostasis: the penalty's coefficient ``>= 0``.
        relax_steps: relaxation steps per fixed point; record_every: recording interval.
        generator: int seed or ``torch.Generator`` (minibatch order).

    Returns:
        A :class:`Training`.

    References:
        Laborieux & Zenke (2024), arXiv 2309.02214 (their Fig. 4a-d: 90 degrees, coefficient 0 against 1).
    """
    net = _check_net(net)
    X, y = _check_data(net, X, y, ("X", "y"))
    X_test, y_test = _check_data(net, X_test, y_test, ("X_test", "y_test"))
    estimator = check_choice(estimator, ("ep", "rbp"), name="estimator")
    lr = check_positive(lr, name="lr")
    homeostasis = check_positive(homeostasis, name="homeostasis", allow_zero=True)
    steps, batch = check_count(steps, name="steps", minimum=0), check_count(batch, name="batch")
    relax_steps, record_every = check_count(relax_steps, name="relax_steps"), check_count(record_every,
                                                                                        name="record_every")
    gen = as_generator(generator, X.device)
    n_params = len(_FIELDS)

    def unpack(state):
        return Net(*state[:n_params])

    def step(state, t, lr_t):
        p = unpack(state)
        idx = torch.randint(X.shape[0], (min(batch, X.shape[0]),), generator=gen, device=X.device)
        xb, yb = X[idx], y[idx]
        a = relax(p, xb, yb, steps=relax_steps)
        delta = _error_iterate(p, a, _loss_grad(p, a, yb), transpose=estimator == "rbp", steps=relax_steps)
        g = weight_gradient(p, xb, a, delta)
        grads = [getattr(g, f) for f in _FIELDS]
        if homeostasis > 0:  # d/dW of |W - W^T|^2 / (2n) = 2 (W - W^T) / n, on the two coupled blocks
            k = 2 * homeostasis / p.n
            grads[2] = grads[2] + k * (p.W_out - p.B.T)
            grads[3] = grads[3] + k * (p.B - p.W_out.T)
        new_p, new_m, new_v = [], [], []
        for i, gi in enumerate(grads):
            d, m, v = adam_direction(gi, state[n_params + i], state[2 * n_params + i], t + 1)
            new_p.append(state[i] - lr_t * d)
            new_m.append(m)
            new_v.append(v)
        return tuple(new_p + new_m + new_v)

    def record(state, t):
        p = unpack(state)
        a = relax(p, X_test, y_test, steps=relax_steps)
        g = _loss_grad(p, a, y_test)
        ep = _error_iterate(p, a, g, transpose=False, steps=relax_steps)
        rbp = _error_iterate(p, a, g, transpose=True, steps=relax_steps)
        acc = (a[:, p.n_hidden:].argmax(1) == y_test.argmax(1)).to(a.dtype).mean()
        norms = float(ep.norm()) * float(rbp.norm())  # both vanish only if every unit saturates: they agree
        cos = float((ep.flatten() @ rbp.flatten()) / norms) if norms > 0 else float(ep.norm() == rbp.norm())
        return {"accuracy": acc, "cos_rbp": torch.tensor(cos),
                "asymmetry": jacobian_asymmetry(p.matrix())}

    params = [getattr(net, f) for f in _FIELDS]
    state0 = tuple(params + [torch.zeros_like(p) for p in params] * 2)
    out = run(step, state0, steps=steps, lr=lr, record=record, record_every=record_every)
    hist = out.history
    return Training(out.steps, hist["accuracy"], hist["cos_rbp"], hist["asymmetry"], out.diverged, out.diverged_at)
