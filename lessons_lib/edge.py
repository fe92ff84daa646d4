"""The edge of stability: full-batch GD on a tiny MLP drives the sharpness up to ``2 / lr``.

Gradient descent ``theta_{k+1} = theta_k - lr * grad L(theta_k)`` is stable on a quadratic only while
``lr * lambda_max < 2``. Cohen et al. (2021) observed that on neural networks full-batch GD at a
constant learning rate first *sharpens* (``lambda_max`` of the loss Hessian rises, "progressive
sharpening") until it reaches ``2 / lr``, and then stays there: the sharpness rises to about
``2 / lr`` and hovers there (``lambda_max ~ 2 / lr``, eq-stab-eos), while the loss keeps decreasing
over long times but non-monotonically, with steps that increase it.

:func:`mlp_problem` builds a synthetic square-loss regression task for a small MLP (no downloads);
:func:`edge_of_stability` runs GD on it and measures the sharpness along the way. The quick setting
is the default problem with ``lr`` in ``{0.2, 0.4}`` for 600 steps (about 1.5 s a run on two CPU
cores): the sharpness starts at 0.15-0.6 of ``2 / lr``, reaches it within 120 steps and over the
last third stays within a few percent of it; ``lr = 0.03`` stays below it.

References:
    Cohen, Kaur, Li, Kolter, Talwalkar (2021), Gradient Descent on Neural Networks Typically Occurs
    at the Edge of Stability, ICLR, arXiv:2103.00065 (``cohen2021gradient``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch.func import grad_and_value

from . import curvature
from .backend import DTYPE, as_generator, check_count, check_positive, default_device, to_host
from .descent import check_lr

Activation = Literal["tanh", "relu", "elu"]
Targets = Literal["random", "smooth"]
#: Size of the random kick added to the warm start of each sharpness measurement.
_KICK = 0.1
_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "elu": torch.nn.functional.elu}


@dataclass(frozen=True)
class MLPProblem:
    """A synthetic square-loss regression task for a fully connected network with flat parameters.

    The network is ``f(x) = W_L s(... s(W_1 x + b_1) ...) + b_L`` with activation ``s``; its
    parameters live in one flat vector, layer by layer, each weight (row-major, shape
    ``(fan_out, fan_in)``) followed by its bias.

    Attributes:
        X: inputs, shape ``(n, d)``.
        y: targets, shape ``(n,)``.
        sizes: layer widths ``(d, width, ..., width, 1)``.
        activation: name of the hidden activation.
        init_scale: weights start as ``N(0, init_scale**2 / fan_in)``; biases start at 0.
    """

    X: torch.Tensor
    y: torch.Tensor
    sizes: tuple[int, ...]
    activation: Activation
    init_scale: float

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Parameter shapes in flat order: ``(fan_out, fan_in)`` then ``(fan_out,)`` per layer."""
        out: list[tuple[int, ...]] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            out += [(fan_out, fan_in), (fan_out,)]
        return tuple(out)

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return sum(math.prod(s) for s in self.shapes)

    def predict(self, params: torch.Tensor) -> torch.Tensor:
        """Network outputs on ``X`` for flat ``params`` of shape ``(n_params,)``; shape ``(n,)``."""
        if params.shape != (self.n_params,):
            raise ValueError(f"params: expected shape ({self.n_params},), got {tuple(params.shape)}")
        act = _ACTIVATIONS[self.activation]
        chunks = torch.split(params, [math.prod(s) for s in self.shapes])
        h = self.X.to(params)
        n_layers = len(self.sizes) - 1
        for i in range(n_layers):
            h = h @ chunks[2 * i].view(self.shapes[2 * i]).T + chunks[2 * i + 1]
            if i < n_layers - 1:
                h = act(h)
        return h[:, 0]

    def loss(self, params: torch.Tensor) -> torch.Tensor:
        """Square loss ``L = 1/(2n) sum_i (f(x_i) - y_i)^2`` (half the mean squared error)."""
        return 0.5 * ((self.predict(params) - self.y.to(params)) ** 2).mean()

    def init(self, generator: int | torch.Generator = 0) -> torch.Tensor:
        """Random flat parameters: weights ``N(0, init_scale**2 / fan_in)`` (LeCun), zero biases.

        Args:
            generator: seed or generator, on the device of ``X``.

        Returns:
            Tensor of shape ``(n_params,)`` with the dtype and device of ``X``.
        """
        gen = as_generator(generator, self.X.device)
        parts = []
        for shape in self.shapes:
            if len(shape) == 2:
                w = torch.randn(shape, generator=gen, dtype=self.X.dtype, device=self.X.device)
                parts.append((w * (self.init_scale / math.sqrt(shape[1]))).flatten())
            else:
                parts.append(torch.zeros(shape, dtype=self.X.dtype, device=self.X.device))
        return torch.cat(parts)


def mlp_problem(
    *,
    n: int = 64,
    d: int = 8,
    width: int = 16,
    depth: int = 3,
    activation: Activation = "tanh",
    targets: Targets = "random",
    init_scale: float = 0.8,
    generator: int | torch.Generator = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = DTYPE,
) -> MLPProblem:
    """A synthetic regression task for a ``depth``-hidden-layer MLP, generated from a seed.

    Inputs are ``x_i ~ N(0, I_d)``. ``targets="random"`` draws ``y_i ~ N(0, 1)`` independently of
    ``x_i`` (random labels: a hard task that the network has to memorise, which makes progressive
    sharpening strong); ``targets="smooth"`` uses ``y_i = sin(2 w^T x_i / sqrt(d))`` for a random
    unit-variance ``w`` (an easier task that sharpens more slowly: at ``lr = 0.2`` it reaches
    ``2 / lr`` after 150-500 steps instead of 50-120).

    Args:
        n: number of data points.
        d: input dimension.
        width: hidden width.
        depth: number of hidden layers.
        activation: ``"tanh"``, ``"relu"`` or ``"elu"``.
        targets: ``"random"`` or ``"smooth"``.
        init_scale: gain of the LeCun-normal weight initialisation used by :meth:`MLPProblem.init`;
            0.8 puts the initial sharpness at about 1.5-3, below ``2 / lr = 5`` for lr 0.4.
        generator: seed or generator for the data.
        device: where the data live; defaults to :func:`~lessons_lib.backend.default_device`.
        dtype: floating dtype of the data (float64 by default).

    Returns:
        An :class:`MLPProblem`.
    """
    n, d = check_count(n, name="n"), check_count(d, name="d")
    width, depth = check_count(width, name="width"), check_count(depth, name="depth")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    if targets not in ("random", "smooth"):
        raise ValueError(f"targets: expected 'random' or 'smooth', got {targets!r}")
    init_scale = check_positive(init_scale, name="init_scale")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    device = torch.device(device) if device is not None else default_device()
    gen = as_generator(generator, device)
    X = torch.randn(n, d, generator=gen, dtype=dtype, device=device)
    if targets == "random":
        y = torch.randn(n, generator=gen, dtype=dtype, device=device)
    else:
        w = torch.randn(d, generator=gen, dtype=dtype, device=device)
        y = torch.sin(2 * X @ w / math.sqrt(d))
    return MLPProblem(X, y, (d,) + (width,) * depth + (1,), activation, init_scale)


@dataclass(frozen=True)
class EdgeRun:
    """A full-batch GD run with sharpness measurements, from :func:`edge_of_stability`.

    Attributes:
        lr: the learning rate ``eta``.
        loss: ``L(theta_k)`` for ``k = 0 .. K``, shape ``(K + 1,)``; at divergence only the
            finite values before ``diverged_at``.
        sharpness_steps: steps ``k`` where the sharpness was measured, shape ``(m,)`` (long).
        sharpness: ``lambda_max(grad^2 L(theta_k))`` at those steps, shape ``(m,)``.
        sharpness_converged: whether each measurement met its Lanczos tolerance, shape ``(m,)``.
        params: the last finite iterate, shape ``(n_params,)``.
        diverged: whether the run blew up.
        diverged_at: the first step whose iterate was non-finite, left the blow-up ball or had a
            loss above the blow-up level (``None`` if the run did not diverge).
    """

    lr: float
    loss: torch.Tensor
    sharpness_steps: torch.Tensor
    sharpness: torch.Tensor
    sharpness_converged: torch.Tensor
    params: torch.Tensor
    diverged: bool = False
    diverged_at: int | None = None

    def __post_init__(self):
        to_host(self)  # records are read on the host (see backend.to_host)

    @property
    def threshold(self) -> float:
        """The stability threshold ``2 / lr`` of eq-stab-eos (``inf`` when ``lr = 0``)."""
        return 2.0 / self.lr if self.lr > 0 else math.inf

    @property
    def ratio(self) -> torch.Tensor:
        """Sharpness in units of the threshold, ``lr * lambda_max / 2``, shape ``(m,)``."""
        return self.sharpness * (self.lr / 2)

    @property
    def edge_reached_at(self) -> int | None:
        """First measured step with ``lambda_max >= 2 / lr`` (``None`` if GD stayed stable)."""
        hit = torch.nonzero(self.ratio >= 1)
        return int(self.sharpness_steps[hit[0, 0]]) if len(hit) else None


def edge_of_stability(
    problem: MLPProblem,
    *,
    lr: float,
    steps: int,
    sharpness_every: int = 10,
    generator: int | torch.Generator = 0,
    params0: torch.Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 50,
    blowup: float = 1e6,
) -> EdgeRun:
    """Full-batch GD at constant ``lr`` on ``problem``, tracking the sharpness (eq-stab-eos).

    The update is ``theta_{k+1} = theta_k - lr * grad L(theta_k)`` on the whole data set. Cohen et
    al. (2021) found that the sharpness ``lambda_max(grad^2 L)`` first rises (progressive
    sharpening) and then, once it reaches the threshold ``2 / lr``, rises no further: it hovers at
    about ``2 / lr`` (``lambda_max ~ 2 / lr``, eq-stab-eos), and the loss decreases
    non-monotonically. ``lr`` is ``eta``; ``2 / lr`` is :attr:`EdgeRun.threshold`.

    The sharpness is the top Ritz value of a Lanczos iteration (as in
    :func:`lessons_lib.curvature.sharpness`) on Hessian-vector products, started from the previous
    top eigenvector plus a random kick from ``generator``. At the edge the top two eigenvalues
    cross within a few percent of each other; a pure warm start, or ``tol=1e-4``, then sometimes
    stops on the second one (errors of 0.5-3 % were seen), which the kick and ``tol=1e-6`` avoid.
    In a period-two oscillation the two phases have different sharpness; an even
    ``sharpness_every`` always samples the same phase, as Cohen et al. did.

    Divergence is data: the run stops at the first step whose iterate is not finite, leaves the
    ball of radius ``blowup * max(1, ||theta_0||)`` or has a loss above ``blowup * max(1, L_0)``.

    Args:
        problem: the task, from :func:`mlp_problem`.
        lr: learning rate ``eta >= 0``.
        steps: number of GD steps ``K >= 1``.
        sharpness_every: measure the sharpness at steps ``0, s, 2 s, ... <= K``.
        generator: seed or generator for ``problem.init`` (when ``params0`` is None) and for the
            Lanczos start vectors.
        params0: optional start, shape ``(n_params,)``; defaults to ``problem.init(generator)``.
        tol: Lanczos stops when the eigen-residual is below ``tol * max(1, lambda)``.
        max_iter: cap on Hessian-vector products per measurement.
        blowup: divergence level (see above).

    Returns:
        An :class:`EdgeRun`.

    References:
        Cohen et al. (2021), Gradient Descent on Neural Networks Typically Occurs at the Edge of
        Stability, arXiv:2103.00065.
    """
    if not isinstance(problem, MLPProblem):
        raise ValueError(f"problem: expected an MLPProblem from mlp_problem(), got {type(problem).__name__}")
    lr = check_lr(lr)
    steps = check_count(steps, name="steps", minimum=1)
    every = check_count(sharpness_every, name="sharpness_every", minimum=1)
    tol = check_positive(tol, name="tol")
    max_iter = check_count(max_iter, name="max_iter")
    blowup = check_positive(blowup, name="blowup")
    device, dtype = problem.X.device, problem.X.dtype
    gen = as_generator(generator, device)
    if params0 is None:
        theta = problem.init(gen)
    else:
        if not isinstance(params0, torch.Tensor) or params0.shape != (problem.n_params,):
            got = tuple(params0.shape) if isinstance(params0, torch.Tensor) else type(params0).__name__
            raise ValueError(f"params0: expected a tensor of shape ({problem.n_params},), got {got}")
        theta = params0.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(theta).all()):
        raise ValueError("params0: contains NaN or infinite values")

    step_fn = grad_and_value(problem.loss)
    radius = blowup * max(1.0, float(theta.norm()))
    losses: list[torch.Tensor] = []
    where: list[int] = []
    values: list[float] = []
    converged: list[bool] = []
    v = torch.randn(theta.shape, generator=gen, dtype=dtype, device=device)
    last, diverged_at = theta, None
    ceiling = math.inf
    for k in range(steps + 1):
        g, f = step_fn(theta)
        if k == 0:
            ceiling = blowup * max(1.0, float(f))
        # one host sync per step; a NaN/inf iterate has a NaN/inf norm and fails the radius test
        if not bool(torch.isfinite(f) & (f <= ceiling) & (theta.norm() <= radius)):
            diverged_at = k
            break
        losses.append(f.detach())
        last = theta
        if k % every == 0:
            kick = torch.randn(theta.shape, generator=gen, dtype=dtype, device=device)
            top = curvature.sharpness(problem.loss, theta, v0=v / v.norm() + _KICK * kick / kick.norm(),
                                      tol=tol, max_iter=max_iter)
            where.append(k)
            values.append(top.value)
            converged.append(top.converged)
            v = top.vector
        if k < steps:
            theta = theta - lr * g
    return EdgeRun(
        lr=lr,
        loss=torch.stack(losses) if losses else torch.empty(0, dtype=dtype, device=device),
        sharpness_steps=torch.tensor(where, dtype=torch.long, device=device),
        sharpness=torch.tensor(values, dtype=dtype, device=device),
        sharpness_converged=torch.tensor(converged, dtype=torch.bool, device=device),
        params=last.detach(),
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
    )

