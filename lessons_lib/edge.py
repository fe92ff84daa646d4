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
cores): the sharpness starts at 0.15-0.6 of ``2 / lr``, reaches it within 120 steps, overshoots it
(peaks of 2-3.8 times ``2 / lr`` for seeds 0-2) with loss spikes, and over the last third stays within
a few percent of it; ``lr = 0.03`` stays below it.

References:
    Cohen, Kaur, Li, Kolter, Talwalkar (2021), Gradient Descent on Neural Networks Typically Occurs
    at the Edge of Stability, ICLR, arXiv:2103.00065 (``cohen2021gradient``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import grad_and_value

from . import curvature, models
from .backend import Record, as_generator, check_count, check_positive
from .descent import check_lr
from .run import run

#: The task and its network live in :mod:`lessons_lib.models`; these names are kept for the chapters.
MLPProblem = models.MLPProblem
mlp_problem = models.mlp_problem
Activation = models.MLPActivation
Targets = models.MLPTargets
#: Size of the random kick added to the warm start of each sharpness measurement.
_KICK = 0.1


@dataclass(frozen=True)
class EdgeRun(Record):
    """A full-batch GD run with sharpness measurements, from :func:`edge_of_stability`.

    Attributes:
        lr: the learning rate ``eta``.
        loss: ``L(theta_k)`` for ``k = 0 .. K``, shape ``(K + 1,)``; at divergence it ends at
            ``k = diverged_at``, the iterate the run is frozen at.
        sharpness_steps: steps ``k`` where the sharpness was measured, shape ``(m,)`` (long).
        sharpness: ``lambda_max(grad^2 L(theta_k))`` at those steps, shape ``(m,)``.
        sharpness_converged: whether each measurement met its Lanczos tolerance, shape ``(m,)``.
        params: the last iterate, shape ``(n_params,)``; at divergence the one the run is frozen at.
        diverged: whether the run blew up.
        diverged_at: the first step whose iterate left the blow-up ball or was not finite, in the
            one meaning of :mod:`lessons_lib.run` (``None`` if the run did not diverge).
    """

    lr: float
    loss: torch.Tensor
    sharpness_steps: torch.Tensor
    sharpness: torch.Tensor
    sharpness_converged: torch.Tensor
    params: torch.Tensor
    diverged: bool = False
    diverged_at: int | None = None

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
    top eigenvector plus a small random kick from ``generator``, a safeguard: at the edge the top two
    eigenvalues come within a few percent of each other, and a start orthogonal to the top one would
    never find it. In our runs (lr 0.2 and 0.4, seeds 0-2, 1,366 measurements) the kick changed no
    measurement by more than 4e-7, and every warm-started value matches a cold-start Lanczos.
    In a period-two oscillation the two phases have different sharpness; an even
    ``sharpness_every`` always samples the same phase, as Cohen et al. did.

    Divergence has the book's one meaning (:mod:`lessons_lib.run`): the run stops at the first
    step whose iterate is not finite or leaves the ball of radius ``blowup * max(1, ||theta_0||)``.

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
        blowup: divergence radius relative to ``max(1, ||theta_0||)``.

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
        theta0 = problem.init(gen)
    else:
        if not isinstance(params0, torch.Tensor) or params0.shape != (problem.n_params,):
            got = tuple(params0.shape) if isinstance(params0, torch.Tensor) else type(params0).__name__
            raise ValueError(f"params0: expected a tensor of shape ({problem.n_params},), got {got}")
        theta0 = params0.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(theta0).all()):
        raise ValueError("params0: contains NaN or infinite values")

    grad_value = grad_and_value(problem.loss)
    top_vector = [torch.randn(theta0.shape, generator=gen, dtype=dtype, device=device)]
    sharp: list = []  # (step, value, converged) of every measurement
    last_grad: dict = {}  # the gradient at step t, computed with the loss by `record` and reused by `step`

    def record(theta, t):
        g, f = grad_value(theta)
        last_grad[t] = g
        if t % every == 0:
            v = top_vector[0]
            kick = torch.randn(theta.shape, generator=gen, dtype=dtype, device=device)
            top = curvature.sharpness(problem.loss, theta, v0=v / v.norm() + _KICK * kick / kick.norm(),
                                      tol=tol, max_iter=max_iter)
            sharp.append((t, top.value, top.converged))
            top_vector[0] = top.vector
        return {"loss": f.detach()}

    def step(theta, t, eta):
        g = last_grad.pop(t, None)  # recorded at every step; computed here should that ever change
        return theta - eta * (grad_value(theta)[0] if g is None else g)

    out = run(step, theta0, steps=steps, lr=lr, record=record, blowup=blowup)
    where, values, converged = zip(*sharp)
    return EdgeRun(
        lr=lr,
        loss=out.history["loss"],
        sharpness_steps=torch.tensor(where, dtype=torch.long),
        sharpness=torch.tensor(values, dtype=dtype),
        sharpness_converged=torch.tensor(converged, dtype=torch.bool),
        params=out.state.detach(),
        diverged=bool(out.diverged),
        diverged_at=out.diverged_step,
    )
