"""Small models shared by several chapters, each with its loss, gradient and trainer.

Every trainer here is a step function handed to :func:`lessons_lib.run.run`, so divergence has the
book's one meaning (see :mod:`lessons_lib.run`). Data factories without tensor inputs create their
tensors on :func:`lessons_lib.backend.default_device`; everything else follows its inputs' device.
Result records come back on the host (:class:`lessons_lib.backend.Record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from .backend import DTYPE, as_generator, check_count, check_positive, default_device

# --- diagonal linear network ---------------------------------------------------------------------

# --- two-layer linear network --------------------------------------------------------------------

# --- one-dimensional ReLU network ----------------------------------------------------------------

# --- tiny MLP (flat parameter vector) ------------------------------------------------------------

MLPActivation = Literal["tanh", "relu", "elu"]
MLPTargets = Literal["random", "smooth"]
_MLP_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "elu": torch.nn.functional.elu}


@dataclass(frozen=True)
class MLPProblem:
    """A synthetic square-loss regression task for a fully connected network with flat parameters.

    The network is ``f(x) = W_L s(... s(W_1 x + b_1) ...) + b_L`` with activation ``s``; its
    parameters live in one flat vector, layer by layer, each weight (row-major, shape
    ``(fan_out, fan_in)``) followed by its bias. The flat vector is what the curvature tools
    (Hessian-vector products, Lanczos) and :func:`lessons_lib.run.run` work on.

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
    activation: MLPActivation
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
        act = _MLP_ACTIVATIONS[self.activation]
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
    activation: MLPActivation = "tanh",
    targets: MLPTargets = "random",
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
    if activation not in _MLP_ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_MLP_ACTIVATIONS)}, got {activation!r}")
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



# --- student-teacher network ---------------------------------------------------------------------

StudentActivation = Literal["linear", "tanh"]
_STUDENT_ACTIVATIONS = {
    "linear": (lambda z: z, torch.ones_like),
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
}


@dataclass(frozen=True)
class TeacherData:
    """Training sets of ``S`` independent linear teachers ``y = beta* . x``, batched over seeds.

    Attributes:
        X: inputs ``x ~ N(0, I/2)``, shape ``(S, n, M)``.
        y: teacher outputs, shape ``(S, n)``.
        beta: teacher weights ``beta* ~ N(0, I/M)``, shape ``(S, M)``.
    """

    X: torch.Tensor
    y: torch.Tensor
    beta: torch.Tensor


def teacher_data(*, n_inputs: int, n_samples: int = 100, seeds: int = 3,
                 generator: int | torch.Generator = 0) -> TeacherData:
    """``n_samples`` points ``x ~ N(0, I/2)`` labelled by a linear teacher ``beta* ~ N(0, I/M)``, per seed.

    Draws ``X`` and then ``beta`` from ``generator``; an int seed makes a generator on
    :func:`~lessons_lib.backend.default_device`, a generator keeps its own device.

    Returns:
        A :class:`TeacherData` in float64 on the generator's device.
    """
    M = check_count(n_inputs, name="n_inputs")
    n, S = check_count(n_samples, name="n_samples"), check_count(seeds, name="seeds")
    gen = as_generator(generator)
    f64 = dict(dtype=torch.float64, device=gen.device)
    X = torch.randn(S, n, M, generator=gen, **f64) / math.sqrt(2)
    beta = torch.randn(S, M, generator=gen, **f64) / math.sqrt(M)
    return TeacherData(X, (X @ beta[..., None])[..., 0], beta)


def init_student(*, n_inputs: int, n_hidden: int, seeds: int = 3, init_scale: float = 2.0,
                 generator: int | torch.Generator = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Student weights ``W1 ~ N(0, init_scale^2 / M)``, shape ``(S, N, M)``, then ``w2 ~ N(0, init_scale^2 / N)``,
    shape ``(S, N)``, drawn in that order from ``generator`` (an int seed draws on the default device)."""
    M, N = check_count(n_inputs, name="n_inputs"), check_count(n_hidden, name="n_hidden")
    S, init_scale = check_count(seeds, name="seeds"), check_positive(init_scale, name="init_scale")
    gen = as_generator(generator)
    f64 = dict(dtype=torch.float64, device=gen.device)
    W1 = torch.randn(S, N, M, generator=gen, **f64) * init_scale / math.sqrt(M)
    w2 = torch.randn(S, N, generator=gen, **f64) * init_scale / math.sqrt(N)
    return W1, w2


def flip_signs(n: int, flipped: int, S: int, generator: int | torch.Generator) -> torch.Tensor:
    """``S`` sign vectors of length ``n`` with ``flipped`` entries ``-1`` at random positions, shape ``(S, n)``.

    Args:
        n: length of each vector.
        flipped: how many entries are ``-1``, in ``[0, n]``.
        S: number of vectors (one random permutation each, drawn in order).
        generator: seed or generator; required (the global RNG is never used).
    """
    if generator is None:
        raise ValueError("generator: flip_signs needs an int seed or a torch.Generator")
    n, S = check_count(n, name="n"), check_count(S, name="S")
    if isinstance(flipped, bool) or not isinstance(flipped, int) or not 0 <= flipped <= n:
        raise ValueError(f"flipped: expected an int in [0, n = {n}], got {flipped!r}")
    gen = as_generator(generator)
    order = torch.stack([torch.randperm(n, generator=gen, device=gen.device) for _ in range(S)])
    return torch.where(order < flipped, -1.0, 1.0).to(torch.float64)


def _student_activation(activation: str):
    if activation not in _STUDENT_ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_STUDENT_ACTIVATIONS)}, got {activation!r}")
    return _STUDENT_ACTIVATIONS[activation]


def student_loss(W1: torch.Tensor, w2: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *,
                 activation: StudentActivation = "linear") -> torch.Tensor:
    """``L = 1/(2n) sum_i (w2 . phi(W1 x_i) - y_i)^2`` per seed, for ``W1`` ``(S, N, M)``, ``w2`` ``(S, N)``,
    ``X`` ``(S, n, M)``, ``y`` ``(S, n)``; shape ``(S,)``."""
    phi, _ = _student_activation(activation)
    return 0.5 * (((phi(X @ W1.mT) * w2[:, None, :]).sum(-1) - y) ** 2).mean(-1)


def student_update(W1: torch.Tensor, w2: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *, lr: float,
                   D1: torch.Tensor | None = None, D2: torch.Tensor | None = None,
                   activation: StudentActivation = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """One presynaptic sign-flipped learning step (eq-curl-updates), back-propagated by hand.

    With ``z = W1 x``, ``h = phi(z)``, ``e = w2 . h - y`` and ``delta1 = (w2 e) * phi'(z)`` over a
    batch of ``B`` points: ``dw2 = -lr D2 sum_b e_b h_b / B`` and ``dW1 = -lr sum_b delta1_b x_b^T D1 / B``.
    ``D1 = D2 = None`` (every sign ``+1``) is a gradient step on :func:`student_loss`.

    Args:
        W1, w2: student weights, shapes ``(S, N, M)`` and ``(S, N)``.
        X, y: a batch per seed, shapes ``(S, B, M)`` and ``(S, B)``.
        lr: the learning rate ``eta``.
        D1, D2: signs ``+-1`` per input ``(S, M)`` and per hidden unit ``(S, N)``.
        activation: ``"linear"`` or ``"tanh"``.

    Returns:
        The increments ``(dW1, dw2)``, shapes ``(S, N, M)`` and ``(S, N)``.
    """
    phi, dphi = _student_activation(activation)
    z = X @ W1.mT  # (S, B, N)
    h = phi(z)
    e = (h * w2[:, None, :]).sum(-1) - y  # (S, B)
    B = X.shape[1]
    step1 = lr * ((e[..., None] * w2[:, None, :] * dphi(z)).mT @ X / B)
    step2 = lr * (e[..., None] * h).sum(1) / B
    if D1 is not None:
        step1 = step1 * D1[:, None, :]
    if D2 is not None:
        step2 = step2 * D2
    return -step1, -step2


def student_grad(W1: torch.Tensor, w2: torch.Tensor, X: torch.Tensor, y: torch.Tensor, *,
                 activation: StudentActivation = "linear") -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient ``(dL/dW1, dL/dw2)`` of :func:`student_loss`, written out (see :func:`student_update`)."""
    dW1, dw2 = student_update(W1, w2, X, y, lr=1.0, activation=activation)
    return -dW1, -dw2
