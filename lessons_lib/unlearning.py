"""Unlearning that resists relearning: NPO with sharpness-aware or randomized smoothing (unlearning.ipynb).

A classifier is told to *forget* one class of the digits data and keep the others. Negative preference
optimisation (NPO) pushes the forget samples' loss up relative to the pretrained reference model
(eq-unlearn-npo); a *relearning attack* then fine-tunes the result on a handful of forget samples and
watches the forgotten class come back. Fan, Jia, Zhang, Ramakrishna, Hong & Liu (2025), *Towards LLM
Unlearning Resilient to Relearning Attacks: A Sharpness-Aware Minimization Perspective and Beyond*,
ICML 2025, arXiv 2502.05374, make the forget objective hold over a neighbourhood of the parameters:
sharpness-aware (SAM) or randomized smoothing (RS) of the forget gradient (eq-unlearn-sam). StableUN
(Wu, Liu, Gao, Wang & Ding 2025, *Beyond Sharp Minima: Robust LLM Unlearning via Feedback-Guided
Multi-Point Optimization*, arXiv 2509.20230) combines several such points with a retain gradient
through a gradient projection whose rule is not public; ``method="multipoint"`` is *our reading* of it
(SAM and RS points averaged, then the PCGrad projection of eq-unlearn-pcgrad), labelled as such.

The model is a 64-64-10 ReLU MLP on flat float32 parameters (:func:`lessons_lib.models.mlp_classifier`),
so :mod:`lessons_lib.curvature` measures the forget loss's sharpness; training goes through
:func:`lessons_lib.run.run` with Adam's direction from :func:`lessons_lib.descent.adam_direction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import grad

from . import curvature, models
from .backend import Record, as_generator, check_count, check_float_tensor, check_positive
from .descent import adam_direction
from .run import run

#: the chapter's network: 64 pixels, 64 hidden ReLU units, 10 classes
MODEL = models.mlp_classifier((64, 64, 10))
METHODS = ("npo", "npo_sam", "npo_rs", "multipoint", "ga")


def digits_split(*, test_fraction: float = 0.3, generator: int | torch.Generator = 0) -> models.DigitsSplit:
    """The digits data split for this chapter: :func:`lessons_lib.models.digits_split` with 30 % held out.

    A thin wrapper (float32 inputs, default device) kept so the chapter's calls read as its equations do.
    """
    return models.digits_split(test_fraction=test_fraction, generator=generator)


def _check_data(X, y=None):
    X = check_float_tensor(X, name="X")
    if X.ndim != 2 or X.shape[1] != MODEL.sizes[0] or not bool(torch.isfinite(X).all()):
        raise ValueError(f"X: expected finite inputs of shape (n, {MODEL.sizes[0]}), got shape {tuple(X.shape)}")
    if y is not None and (not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != X.shape[:1]
                          or (y.numel() and not (0 <= int(y.min()) and int(y.max()) < MODEL.sizes[-1]))):
        raise ValueError(f"y: expected {X.shape[0]} labels 0..{MODEL.sizes[-1] - 1} (long), got {y!r:.60}")
    return X, y


def mlp_logits(theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Logits of the chapter's 64-64-10 MLP (:data:`MODEL`) at flat parameters ``theta``, shape ``(n, 10)``.

    A checked wrapper over :meth:`lessons_lib.models.MLPClassifier.logits`.
    """
    return MODEL.logits(_check_theta(theta), _check_data(X)[0])


def accuracy(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the inputs ``X`` classified as their labels ``y`` by the MLP at ``theta`` (NaN for no inputs)."""
    theta, (X, y) = _check_theta(theta), _check_data(X, y)
    if y.numel() == 0:
        return float("nan")
    return MODEL.accuracy(theta, X, y)


def _nll(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample negative log-likelihood, shape ``(n,)`` (unchecked: used under ``torch.func.grad``)."""
    return torch.nn.functional.cross_entropy(MODEL.logits(theta, X), y.to(theta.device), reduction="none")


def _npo(theta, X, y, ref_nll, beta):
    return -(2.0 / beta) * torch.nn.functional.logsigmoid(beta * (_nll(theta, X, y) - ref_nll)).mean()


def _adam_step(grad_fn: Callable[[torch.Tensor, int], torch.Tensor]):
    """A :func:`run` step on the state ``(theta, m, v)`` that moves along Adam's direction of ``grad_fn``."""

    def step(state, t, lr):
        theta, m, v = state
        p, m, v = adam_direction(grad_fn(theta, t), m, v, t + 1)
        return theta - lr * p, m, v

    return step


def _optimise(grad_fn, theta0: torch.Tensor, *, steps: int, lr: float, record=None):
    zeros = torch.zeros_like(theta0)
    return run(_adam_step(grad_fn), (theta0, zeros, zeros.clone()), steps=steps, lr=lr,
               record=record or (lambda s, t: {}), record_every=max(steps, 1))


def _check_split(split) -> models.DigitsSplit:
    if not isinstance(split, models.DigitsSplit):
        raise ValueError(f"split: expected a DigitsSplit (from digits_split), got {type(split).__name__}")
    return split


def _check_theta(theta, name: str = "theta") -> torch.Tensor:
    theta = check_float_tensor(theta, name=name)
    if theta.shape != (MODEL.n_params,) or not bool(torch.isfinite(theta).all()):
        raise ValueError(f"{name}: expected finite flat parameters of shape ({MODEL.n_params},), got shape "
                         f"{tuple(theta.shape)}")
    return theta


def _check_class(forget_class) -> int:
    if isinstance(forget_class, bool) or not isinstance(forget_class, int) or not 0 <= forget_class <= 9:
        raise ValueError(f"forget_class: expected a digit 0..9, got {forget_class!r}")
    return forget_class


def pretrain(split: models.DigitsSplit, *, steps: int = 600, lr: float = 1e-2,
             generator: int | torch.Generator = 0) -> torch.Tensor:
    """Train the MLP on every training digit with full-batch Adam: the reference model ``theta_ref``.

    Args:
        split: the data, from :func:`digits_split`.
        steps: Adam steps on the mean cross-entropy.
        lr: Adam's learning rate, ``> 0``.
        generator: seed of the initialisation (He-normal weights, zero biases).

    Returns:
        The flat parameters, shape ``(MODEL.n_params,)`` (test accuracy about 0.96 to 0.98).
    """
    split = _check_split(split)
    steps, lr = check_count(steps, name="steps"), check_positive(lr, name="lr")
    theta0 = MODEL.init(as_generator(generator, split.X_train.device), device=split.X_train.device)
    g = grad(lambda th: MODEL.loss(th, split.X_train, split.y_train))
    return _optimise(lambda th, t: g(th), theta0, steps=steps, lr=lr).state[0]


def npo_loss(theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, ref_nll: torch.Tensor, *,
             beta: float = 1.0) -> torch.Tensor:
    """The NPO forget loss (eq-unlearn-npo), ``-(2/beta) mean log sigmoid(beta (l_theta - l_ref))``.

    ``l`` is the per-sample negative log-likelihood of the forget samples; at ``theta = theta_ref`` the loss is
    ``(2/beta) log 2``, and it falls towards 0 as the forget samples' likelihood drops below the reference's.
    Its gradient is the gradient-ascent one, ``-(grad l)``, weighted by ``2 sigmoid(-beta (l - l_ref))``: the
    weight vanishes once a sample is well forgotten, which is why NPO saturates (Zhang, Lin, Bai & Mei 2024,
    *Negative Preference Optimization*, arXiv 2404.05868; used by Fan et al. 2025, arXiv 2502.05374).

    Args:
        theta: flat parameters.
        X: forget inputs, shape ``(n, 64)``.
        y: their labels, long, shape ``(n,)``.
        ref_nll: the reference model's per-sample NLL on the same samples, shape ``(n,)``.
        beta: inverse temperature, ``> 0``.

    Returns:
        A scalar tensor.
    """
    beta = check_positive(beta, name="beta")
    theta, (X, y) = _check_theta(theta), _check_data(X, y)
    ref_nll = check_float_tensor(ref_nll, name="ref_nll")
    if ref_nll.shape != y.shape or not bool(torch.isfinite(ref_nll).all()):
        raise ValueError(f"ref_nll: expected {tuple(y.shape)} finite values (one per forget sample), got shape "
                         f"{tuple(ref_nll.shape)}")
    return _npo(theta, X, y, ref_nll.to(theta), beta)


def sam_gradient(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *,
                 rho: float) -> torch.Tensor:
    """The sharpness-aware gradient (eq-unlearn-sam): ``grad L(theta + rho g / ||g||)`` with ``g = grad L(theta)``.

    Two passes: one gradient at ``theta`` to find the worst-case direction of the first-order model, one at the
    perturbed point (Foret, Kleiner, Mobahi & Neyshabur 2021, *Sharpness-Aware Minimization*, arXiv 2010.01412;
    the unlearning use: Fan et al. 2025, arXiv 2502.05374). ``rho = 0`` or a zero gradient gives ``grad L(theta)``.

    Args:
        loss_fn: a scalar function of flat parameters.
        theta: the point, shape ``(n,)``.
        rho: the perturbation radius, ``>= 0``.

    Returns:
        The gradient at the perturbed point, shape ``(n,)``.
    """
    if not callable(loss_fn):
        raise ValueError(f"loss_fn: expected a callable theta -> scalar, got {type(loss_fn).__name__}")
    theta = check_float_tensor(theta, name="theta")
    if theta.ndim != 1 or not bool(torch.isfinite(theta).all()):
        raise ValueError(f"theta: expected a finite vector, got shape {tuple(theta.shape)}")
    rho = check_positive(rho, name="rho", allow_zero=True)
    value = loss_fn(theta)
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        raise ValueError(f"loss_fn: expected a scalar tensor, got {type(value).__name__} "
                         f"{tuple(getattr(value, 'shape', ()))}")
    g_fn = grad(loss_fn)
    g = g_fn(theta)
    norm = g.norm()
    if rho == 0.0 or not float(norm) > 0.0:
        return g
    return g_fn(theta + rho * g / norm)


def pcgrad(g_f: torch.Tensor, g_r: torch.Tensor) -> torch.Tensor:
    """Project out the part of ``g_f`` that opposes ``g_r`` (eq-unlearn-pcgrad; Yu et al. 2020, arXiv 2001.06782).

    ``g_f - min(0, <g_f, g_r>) / ||g_r||^2 g_r``: unchanged when the two agree, orthogonal to ``g_r`` when they
    conflict, so the result never has a negative inner product with ``g_r``. A zero ``g_r`` leaves ``g_f`` alone.
    Used here as *our reading* of StableUN's unpublished projection.
    """
    g_f, g_r = check_float_tensor(g_f, name="g_f"), check_float_tensor(g_r, name="g_r")
    if g_f.shape != g_r.shape:
        raise ValueError(f"g_r: expected the shape of g_f, {tuple(g_f.shape)}, got {tuple(g_r.shape)}")
    for x, name in ((g_f, "g_f"), (g_r, "g_r")):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    dot, rr = (g_f * g_r).sum(), (g_r * g_r).sum()
    if not float(rr) > 0.0:
        return g_f.clone()
    return g_f - torch.clamp(dot, max=0.0) / rr * g_r


def npo_weights(theta: torch.Tensor, theta_ref: torch.Tensor, split: models.DigitsSplit, *, forget_class: int = 3,
                beta: float = 1.0, rho: float = 0.0) -> torch.Tensor:
    """Per-sample weights ``2 sigmoid(-beta (l_theta - l_ref))`` of NPO's forget gradient (eq-unlearn-npo).

    The NPO gradient is gradient ascent's on each forget sample's NLL, scaled by this weight: 1 at the reference,
    about ``2 exp(-beta Delta l)`` once a sample's NLL has risen by ``Delta l`` (Zhang, Lin, Bai & Mei 2024,
    arXiv 2404.05868). With ``rho > 0`` the weights are taken at the SAM point ``theta + rho g/||g||`` of the
    NPO loss (eq-unlearn-sam), where NPO+SAM evaluates its forget gradient.

    Args:
        theta: the parameters at which to weigh.
        theta_ref: the reference (pretrained) parameters.
        split: the data; the forget set is the training images of ``forget_class``.
        forget_class: the forgotten digit.
        beta: NPO's inverse temperature ``> 0``.
        rho: SAM radius ``>= 0`` (0: at ``theta`` itself).

    Returns:
        The weights, float tensor of shape ``(n_forget,)``, each in ``(0, 2)``.
    """
    theta, theta_ref = _check_theta(theta), _check_theta(theta_ref, "theta_ref")
    split, forget_class = _check_split(split), _check_class(forget_class)
    beta, rho = check_positive(beta, name="beta"), check_positive(rho, name="rho", allow_zero=True)
    Xf, yf = _sets(split, forget_class)[:2]
    ref = _nll(theta_ref, Xf, yf).detach()
    if rho > 0:
        theta = _sam_point(lambda th: _npo(th, Xf, yf, ref, beta), theta, rho=rho)
    return (2.0 * torch.sigmoid(-beta * (_nll(theta, Xf, yf) - ref))).detach()


def _sam_point(loss_fn: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, *, rho: float) -> torch.Tensor:
    """The SAM evaluation point ``theta + rho g/||g||`` of eq-unlearn-sam (``theta`` itself if ``g = 0``)."""
    g = grad(loss_fn)(theta)
    norm = g.norm()
    return theta if not float(norm) > 0.0 else theta + rho * g / norm


@dataclass(frozen=True)
class UnlearnRun(Record):
    """What :func:`unlearn` returns.

    Attributes:
        theta: the unlearned parameters, shape ``(MODEL.n_params,)``.
        forget_accuracy: test accuracy on the forgotten class.
        retain_accuracy: test accuracy on the other classes.
        forget_nll: mean NLL of the forget class's training samples (how deep the forgetting went).
        method: the method's name.
        diverged: whether the run left :func:`lessons_lib.run.run`'s ball (then frozen at its last finite state).
        diverged_at: the step at which it did, ``-1`` if it did not.
    """

    theta: torch.Tensor
    forget_accuracy: float
    retain_accuracy: float
    forget_nll: float
    method: str
    diverged: bool = False
    diverged_at: int = -1


def _sets(split, forget_class):
    f_tr, f_te = split.y_train == forget_class, split.y_test == forget_class
    return (split.X_train[f_tr], split.y_train[f_tr], split.X_train[~f_tr], split.y_train[~f_tr],
            split.X_test[f_te], split.y_test[f_te], split.X_test[~f_te], split.y_test[~f_te])


def unlearn(theta0: torch.Tensor, split: models.DigitsSplit, *, forget_class: int = 3, method: str = "npo",
            steps: int = 150, lr: float = 1e-3, beta: float = 1.0, gamma: float = 1.0, rho: float = 0.5,
            sigma: float = 0.3, n_points: int = 4, generator: int | torch.Generator = 0,
            noise: torch.Tensor | None = None) -> UnlearnRun:
    """Unlearn one class with full-batch Adam on ``L_f + gamma L_r`` (eq-unlearn-npo, eq-unlearn-sam).

    ``L_r`` is the mean NLL of the retained training digits. The forget gradient ``g_f`` depends on ``method``:

    * ``"npo"``: ``grad L_f`` of the NPO loss (reference ``theta0``);
    * ``"npo_sam"``: :func:`sam_gradient` of it with radius ``rho`` (Fan et al. 2025's NPO+SAM);
    * ``"npo_rs"``: the mean of ``grad L_f(theta + sigma xi_j)`` over ``n_points`` Gaussian ``xi_j`` (NPO+RS;
      ``sigma`` is tau in eq-unlearn-sam);
    * ``"multipoint"``: the mean of the SAM gradient and the ``n_points`` RS gradients, then projected by
      :func:`pcgrad` against ``gamma grad L_r`` (our reading of StableUN, arXiv 2509.20230, not its rule);
    * ``"ga"``: gradient ascent, ``L_f = -`` mean NLL of the forget samples.

    Args:
        theta0: the pretrained parameters (also the NPO reference).
        split: the data.
        forget_class: the digit to forget.
        method: one of ``"npo"``, ``"npo_sam"``, ``"npo_rs"``, ``"multipoint"``, ``"ga"``.
        steps: Adam steps; lr: Adam's learning rate ``> 0``.
        beta: NPO's inverse temperature ``> 0``; gamma: weight of the retain loss ``>= 0``.
        rho: SAM radius ``>= 0``; sigma: RS noise scale ``>= 0`` (tau in eq-unlearn-sam); n_points: RS copies ``>= 1``.
        generator: seed or generator of the RS noise.
        noise: optional injected standard normal draws, shape ``(steps, n_points, n)``, used instead of
            ``generator``.

    Returns:
        An :class:`UnlearnRun` with test accuracies on the forgotten and the retained classes.
    """
    theta0, split, forget_class = _check_theta(theta0, "theta0"), _check_split(split), _check_class(forget_class)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    steps, lr = check_count(steps, name="steps"), check_positive(lr, name="lr")
    beta, gamma = check_positive(beta, name="beta"), check_positive(gamma, name="gamma", allow_zero=True)
    rho, sigma = check_positive(rho, name="rho", allow_zero=True), check_positive(sigma, name="sigma", allow_zero=True)
    n_points = check_count(n_points, name="n_points")
    n = theta0.numel()
    if noise is not None:
        noise = check_float_tensor(noise, name="noise")
        if noise.shape != (steps, n_points, n):
            raise ValueError(f"noise: expected shape ({steps}, {n_points}, {n}), got {tuple(noise.shape)}")
    gen = as_generator(generator, theta0.device)
    Xf, yf, Xr, yr, Xf_te, yf_te, Xr_te, yr_te = _sets(split, forget_class)
    ref = _nll(theta0, Xf, yf).detach()
    if method == "ga":
        def loss_f(th):
            return -_nll(th, Xf, yf).mean()
    else:
        def loss_f(th):
            return _npo(th, Xf, yf, ref, beta)
    grad_f = grad(loss_f)
    grad_r = grad(lambda th: MODEL.loss(th, Xr, yr))

    def smoothed(th, t):
        xi = noise[t] if noise is not None else torch.randn(n_points, n, generator=gen, dtype=th.dtype,
                                                            device=th.device)
        return torch.stack([grad_f(th + sigma * x) for x in xi])

    def direction(th, t):
        g_r = gamma * grad_r(th)
        if method in ("npo", "ga"):
            g_f = grad_f(th)
        elif method == "npo_sam":
            g_f = sam_gradient(loss_f, th, rho=rho)
        elif method == "npo_rs":
            g_f = smoothed(th, t).mean(0)
        else:
            points = torch.cat([sam_gradient(loss_f, th, rho=rho)[None], smoothed(th, t)])
            g_f = pcgrad(points.mean(0), g_r)
        return g_f + g_r

    out = _optimise(direction, theta0, steps=steps, lr=lr)
    theta = out.state[0]
    return UnlearnRun(theta=theta, diverged=bool(out.diverged), diverged_at=int(out.diverged_at),
                      forget_accuracy=MODEL.accuracy(theta, Xf_te, yf_te),
                      retain_accuracy=MODEL.accuracy(theta, Xr_te, yr_te),
                      forget_nll=float(_nll(theta, Xf, yf).mean()), method=method)


def relearn(theta: torch.Tensor, split: models.DigitsSplit, *, forget_class: int = 3, k: int = 10, steps: int = 30,
            lr: float = 1e-3, generator: int | torch.Generator = 0) -> torch.Tensor:
    """The relearning attack: full-batch Adam on the mean NLL of ``k`` forget-class training samples.

    Args:
        theta: the unlearned parameters.
        split: the data.
        forget_class: the forgotten digit.
        k: number of forget samples the attacker holds (drawn by ``generator``), ``1 <= k <=`` their count.
        steps: attack steps; lr: Adam's learning rate ``> 0``.
        generator: seed or generator of the draw of the ``k`` samples.

    Returns:
        Test accuracy on the forgotten class before and after each step, float64 tensor of shape ``(steps + 1,)``.
    """
    theta, split, forget_class = _check_theta(theta), _check_split(split), _check_class(forget_class)
    k, steps = check_count(k, name="k"), check_count(steps, name="steps")
    lr = check_positive(lr, name="lr")
    Xf, yf, _, _, Xf_te, yf_te, _, _ = _sets(split, forget_class)
    if k > len(yf):
        raise ValueError(f"k: the forget class has only {len(yf)} training samples, got k = {k}")
    pick = torch.randperm(len(yf), generator=as_generator(generator, "cpu"))[:k].to(yf.device)
    g = grad(lambda th: MODEL.loss(th, Xf[pick], yf[pick]))
    out = run(_adam_step(lambda th, t: g(th)), (theta, torch.zeros_like(theta), torch.zeros_like(theta)),
              steps=steps, lr=lr, record=lambda s, t: {"acc": torch.tensor(MODEL.accuracy(s[0], Xf_te, yf_te),
                                                                           dtype=torch.float64)})
    return out.history["acc"]


def forget_sharpness(theta: torch.Tensor, split: models.DigitsSplit, *, forget_class: int = 3,
                     max_iter: int = 60) -> float:
    """Top Hessian eigenvalue of the forget loss (mean NLL of the forget-class training digits) at ``theta``.

    Lanczos on Hessian-vector products (:func:`lessons_lib.curvature.sharpness`, eq-curv-sharpness), the same
    start and budget for every method so that the numbers compare.
    """
    theta, split, forget_class = _check_theta(theta), _check_split(split), _check_class(forget_class)
    max_iter = check_count(max_iter, name="max_iter")
    Xf, yf = _sets(split, forget_class)[:2]
    return float(curvature.sharpness(lambda th: MODEL.loss(th, Xf, yf), theta, max_iter=max_iter, tol=1e-4,
                                     generator=0))
