"""Straight-through estimators for binary networks: the error against the stability of a surrogate gradient.

A binary network computes ``sign(x)`` in its forward pass, whose derivative is zero almost everywhere. A
straight-through estimator (STE) keeps the sign forward and passes a *surrogate* derivative backward. ReSTE
(rectified STE) reads the surrogate as the derivative of an "equivalent forward" ``f_o(x) = sign(x) |x|^(1/o)``:
``o = 1`` is the clipped identity of the plain STE, ``o -> infinity`` the sign itself. Raising ``o`` lowers the
estimating error ``||f_o(w) - sign(w)||`` and raises the variance of the gradients.

This module holds the estimator (a :class:`torch.autograd.Function` with a custom backward), its two indicators,
the cosine schedule of ``o``, and a small binary MLP trained on the digits with Adam through
:func:`lessons_lib.run.run`.

References:
    Wu, Zheng, Liu & Zheng (2023), Estimator Meets Equilibrium Perspective: A Rectified Straight Through
    Estimator for Binary Neural Networks Training, ICCV 2023, arXiv:2308.06689.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

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

Schedule = Literal["cosine", "constant"]


def _check_o(o, name: str = "o") -> float:
    o = check_real(o, name=name)
    if not o >= 1.0:
        raise ValueError(f"{name}: expected a number >= 1 (o = 1 is the plain STE), got {o}")
    return o


def _finite(x, name: str) -> torch.Tensor:
    x = check_float_tensor(x, name=name)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return x


def _check_t_interval(t, interval) -> tuple[float, float]:
    t = check_positive(t, name="t")
    interval = check_positive(interval, name="interval")
    if interval >= t:
        raise ValueError(f"interval: expected a number below t = {t}, got {interval}")
    return t, interval


def _sign(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with sign(0) = +1: exactly +-1 everywhere."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def reste_forward(x, *, o: float) -> torch.Tensor:
    """The equivalent forward ``f_o(x) = sign(x) |x|^(1/o)`` of ReSTE (eq-straight-through-equivalent).

    ``o = 1`` gives the identity, ``o -> infinity`` the sign function; ``f_o(0) = 0``.

    Args:
        x: float tensor, any shape.
        o: the exponent ``o >= 1``.

    Returns:
        ``f_o(x)``, the shape of ``x``.

    References:
        Wu, Zheng, Liu & Zheng (2023), ReSTE, arXiv:2308.06689.
    """
    x = _finite(x, "x")
    o = _check_o(o)
    return _sign(x) * x.abs().pow(1.0 / o)


def reste_surrogate(x, *, o: float, t: float = 1.5, interval: float = 0.1) -> torch.Tensor:
    """The ReSTE surrogate derivative of sign at ``x`` (eq-straight-through-reste).

    ``(1/o) |x|^((1-o)/o)`` (the derivative of ``f_o``) for ``interval < |x| <= t``; the chord
    ``interval^(1/o) / interval`` of ``f_o`` over ``[0, interval]`` for ``|x| <= interval``, which avoids the
    infinite slope of ``f_o`` at 0 when ``o > 1``; and 0 for ``|x| > t``. With ``o = 1, t = 1`` it is the
    plain STE, the indicator of ``|x| <= 1``.

    Args:
        x: float tensor, any shape.
        o: exponent ``o >= 1``.
        t: the clipping threshold ``> interval``.
        interval: half-width ``> 0`` of the linear segment around 0.

    Returns:
        The surrogate derivative, the shape of ``x``.

    References:
        Wu, Zheng, Liu & Zheng (2023), ReSTE, arXiv:2308.06689.
    """
    x = _finite(x, "x")
    o = _check_o(o)
    t, interval = _check_t_interval(t, interval)
    a = x.abs()
    chord = interval ** (1.0 / o) / interval
    power = a.clamp(min=interval).pow((1.0 - o) / o) / o
    out = torch.where(a <= interval, torch.full_like(x, chord), power)
    return torch.where(a <= t, out, torch.zeros_like(x))


class _ReSTESign(torch.autograd.Function):
    """sign forward, ReSTE surrogate backward (eq-straight-through-reste)."""

    @staticmethod
    def forward(ctx, x, o, t, interval):
        ctx.save_for_backward(x)
        ctx.args = (o, t, interval)
        return _sign(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        o, t, interval = ctx.args
        return grad_output * reste_surrogate(x, o=o, t=t, interval=interval), None, None, None


def binarize(x, *, o: float, t: float = 1.5, interval: float = 0.1) -> torch.Tensor:
    """``sign(x)`` forward (exactly +-1, sign(0) = +1), the ReSTE surrogate backward (eq-straight-through-reste).

    The backward multiplies the upstream gradient by :func:`reste_surrogate`. The plain STE
    (eq-straight-through-ste) is ``o = 1, t = 1``.

    Args:
        x: float tensor, any shape (may require grad).
        o: exponent ``o >= 1``.
        t: clipping threshold ``> interval``.
        interval: half-width ``> 0`` of the chord segment around 0.

    Returns:
        A tensor of +-1 of the shape of ``x``.

    References:
        Wu, Zheng, Liu & Zheng (2023), ReSTE, arXiv:2308.06689.
    """
    x = _finite(x, "x")
    o = _check_o(o)
    t, interval = _check_t_interval(t, interval)
    return _ReSTESign.apply(x, o, t, interval)


def estimating_error(w, *, o: float) -> float:
    """The estimating error ``sum_l ||f_o(w_l) - sign(w_l)||_2`` (eq-straight-through-error).

    Args:
        w: a float tensor, or a sequence of them (one per layer; their errors are summed).
        o: exponent ``o >= 1``.

    Returns:
        The error, a float; it falls strictly in ``o`` unless every entry is 0 or +-1.

    References:
        Wu, Zheng, Liu & Zheng (2023), ReSTE, arXiv:2308.06689.
    """
    layers = [w] if isinstance(w, torch.Tensor) else list(w) if isinstance(w, (list, tuple)) else None
    if not layers:
        raise ValueError(f"w: expected a float tensor or a non-empty sequence of them, got {type(w).__name__}")
    o = _check_o(o)
    total = 0.0
    for layer in layers:
        layer = _finite(layer, "w")
        total += float((reste_forward(layer, o=o) - _sign(layer)).double().norm())
    return total


def o_schedule(epoch, *, epochs: int, o_end: float) -> torch.Tensor:
    """The cosine schedule ``o(e) = 1 + (1 - cos(pi e / (2T))) (o_end - 1)`` (eq-straight-through-schedule).

    It rises from ``o(0) = 1`` (the STE) to ``o(T) = o_end``, slowly at first.

    Args:
        epoch: epoch(s) ``e`` in ``[0, T]``, a number or a tensor.
        epochs: ``T >= 1``.
        o_end: final exponent ``>= 1``.

    Returns:
        ``o(e)``, float64, the shape of ``epoch``.

    References:
        Wu, Zheng, Liu & Zheng (2023), ReSTE, arXiv:2308.06689.
    """
    epochs = check_count(epochs, name="epochs")
    o_end = _check_o(o_end, "o_end")
    if isinstance(epoch, bool):
        raise ValueError("epoch: expected a number or a tensor of numbers, got a bool")
    try:
        e = torch.as_tensor(epoch, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"epoch: expected a number or a tensor of numbers, got {epoch!r}") from None
    if not bool(torch.isfinite(e).all()) or bool((e < 0).any()) or bool((e > epochs).any()):
        raise ValueError(f"epoch: expected values in [0, epochs = {epochs}]")
    return 1.0 + (1.0 - torch.cos(math.pi / 2 * e / epochs)) * (o_end - 1.0)


def _check_sizes(sizes) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in sizes if not isinstance(s, bool) and int(s) == s)
    except (TypeError, ValueError):
        raise ValueError(f"sizes: expected a sequence of layer widths, got {sizes!r}") from None
    if len(sizes) < 4 or min(sizes) < 1:
        raise ValueError(f"sizes: expected >= 4 positive widths (input, >= 2 hidden, output), got {sizes}")
    return sizes


def init_binary_mlp(sizes: Sequence[int] = (64, 256, 256, 256, 10), *, generator: int | torch.Generator = 0,
                    dtype: torch.dtype = torch.float32, device=None) -> tuple[torch.Tensor, ...]:
    """Latent weights of the binary MLP: every ``W_l ~ N(0, 1/fan_in)``, biases 0.

    The layout is ``(W_0, b_0, W_1, ..., W_{L-2}, W_{L-1}, b_{L-1})``: a full-precision first layer with a bias,
    ``L - 2`` binary layers without bias, a full-precision last layer with a bias. ``W_l`` has shape
    ``(sizes[l + 1], sizes[l])``.

    Args:
        sizes: widths ``(d_in, h_1, ..., h_{L-1}, d_out)``, at least 4 of them (one binary layer).
        generator: seed or generator of the draw.
        dtype: floating dtype (float32: a network).
        device: where the tensors live (default: the generator's device, else the default device).

    Returns:
        The tuple of parameters.
    """
    sizes = _check_sizes(sizes)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    if isinstance(generator, torch.Generator) and device is None:
        device = generator.device
    device = torch.device(device) if device is not None else default_device()
    gen = as_generator(generator, device)
    params = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = torch.randn(fan_out, fan_in, generator=gen, device=device, dtype=torch.float64) / math.sqrt(fan_in)
        params.append(W.to(dtype))
        if k in (0, len(sizes) - 2):
            params.append(torch.zeros(fan_out, dtype=dtype, device=device))
    return tuple(params)


def _check_params(params) -> tuple[torch.Tensor, ...]:
    if not isinstance(params, (tuple, list)) or len(params) < 5:
        raise ValueError("params: expected the tuple of init_binary_mlp (W_0, b_0, binary W's, W_last, b_last)")
    params = tuple(check_float_tensor(p, name="params") for p in params)
    shapes_ok = params[0].ndim == 2 and params[1].shape == params[0].shape[:1] and params[-2].ndim == 2
    shapes_ok = shapes_ok and params[-1].shape == params[-2].shape[:1]
    widths = [params[0].shape[1], params[0].shape[0]]
    for W in params[2:-2]:
        shapes_ok = shapes_ok and W.ndim == 2 and W.shape[1] == widths[-1]
        widths.append(W.shape[0] if W.ndim == 2 else -1)
    if not (shapes_ok and params[-2].shape[1] == widths[-1]):
        raise ValueError("params: the shapes do not chain as init_binary_mlp's layout (W_0, b_0, ..., W_last, b_last)")
    return params


def _batch_norm(h: torch.Tensor, mean=None, var=None) -> torch.Tensor:
    if mean is None:
        mean, var = h.mean(dim=0), h.var(dim=0, unbiased=False)
    return (h - mean) / torch.sqrt(var + 1e-5)


def binary_mlp_logits(params, X, *, o: float, t: float = 1.5, interval: float = 0.1,
                      reference: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of the binary MLP (eq-straight-through-layer).

    ``a_1 = B(BN(W_0 x + b_0))``; for each binary layer ``a_{l+1} = B(BN(alpha_l B(W_l) a_l))`` with
    ``alpha_l = mean|W_l|`` (held constant in the backward pass); logits ``W_{L-1} a_{L-1} + b_{L-1}``. ``B`` is
    :func:`binarize` with ``(o, t, interval)``, for weights and activations alike. Batch norm has no affine
    parameters and uses the statistics of ``reference`` (default: the batch ``X`` itself).

    Args:
        params: the tuple of :func:`init_binary_mlp`.
        X: inputs, shape ``(n, d_in)``.
        o, t, interval: the estimator's knobs (see :func:`binarize`).
        reference: inputs ``(m, d_in)`` whose statistics batch norm uses (the training set at evaluation).

    Returns:
        Logits, shape ``(n, d_out)``.
    """
    params = _check_params(params)
    X = _finite(X, "X").to(params[0].dtype)
    if X.ndim != 2 or X.shape[1] != params[0].shape[1]:
        raise ValueError(f"X: expected shape (n, {params[0].shape[1]}), got {tuple(X.shape)}")
    if reference is not None:
        reference = _finite(reference, "reference").to(params[0].dtype)
        if reference.ndim != 2 or reference.shape[1] != X.shape[1]:
            raise ValueError(f"reference: expected shape (m, {X.shape[1]}), got {tuple(reference.shape)}")
    o = _check_o(o)
    t, interval = _check_t_interval(t, interval)
    return _logits(params, X, o, t, interval, reference)


def _logits(params, X, o, t, interval, reference=None):
    def layer(x, r, lin):
        h = lin(x)
        if r is None:
            return binarize(_batch_norm(h), o=o, t=t, interval=interval), None
        hr = lin(r)
        stats = hr.mean(dim=0), hr.var(dim=0, unbiased=False)
        B = lambda z: binarize(_batch_norm(z, *stats), o=o, t=t, interval=interval)  # noqa: E731
        return B(h), B(hr)

    W0, b0, *binary, W_last, b_last = params
    a, r = layer(X, reference, lambda z: z @ W0.T + b0)
    for W in binary:
        Wb = W.abs().mean().detach() * binarize(W, o=o, t=t, interval=interval)
        a, r = layer(a, r, lambda z, Wb=Wb: z @ Wb.T)
    return a @ W_last.T + b_last


def _loss_and_grads(params, X, y, o, t, interval):
    with torch.enable_grad():
        leaves = tuple(p.detach().requires_grad_(True) for p in params)
        loss = torch.nn.functional.cross_entropy(_logits(leaves, X, o, t, interval), y)
        return loss.detach(), torch.autograd.grad(loss, leaves)


def _check_labels(X, y, name_X="X", name_y="y"):
    X = _finite(X, name_X)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != X.shape[:1] or X.ndim != 2:
        raise ValueError(f"{name_y}: expected a long tensor of one label per row of {name_X} ({X.shape[0]}), "
                         f"got {getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}")
    return X, y


def gradient_variance(params, X, y, *, o: float, t: float = 1.5, interval: float = 0.1) -> float:
    """The gradient-stability indicator ``sum_l Var(|dL/dW_l|)`` over the binary layers, on one batch
    (eq-straight-through-variance).

    ``L`` is the mean cross-entropy of :func:`binary_mlp_logits` on ``(X, y)``; the variance is taken over the
    entries of each binary layer's latent-weight gradient (population variance).

    Args:
        params: the tuple of :func:`init_binary_mlp`.
        X: inputs ``(n, d_in)``; y: labels ``(n,)``, long.
        o, t, interval: the estimator's knobs (see :func:`binarize`).

    Returns:
        The summed variance, a float.

    References:
        Wu, Zheng, Liu & Zheng (2023), ReSTE, arXiv:2308.06689.
    """
    params = _check_params(params)
    X, y = _check_labels(X, y)
    X = X.to(params[0].dtype)
    if X.shape[1] != params[0].shape[1]:
        raise ValueError(f"X: expected shape (n, {params[0].shape[1]}), got {tuple(X.shape)}")
    o = _check_o(o)
    t, interval = _check_t_interval(t, interval)
    _, grads = _loss_and_grads(params, X, y, o, t, interval)
    return float(sum(g.abs().double().var(unbiased=False) for g in grads[2:-2]))


@dataclass(frozen=True)
class BinaryRun(Record):
    """What :func:`train_binary_mlp` returns (on the host).

    Attributes:
        epochs: recorded epochs ``0 .. T``, shape ``(K,)``.
        o: the exponent in force at each recorded epoch, ``(K,)``.
        train_loss: cross-entropy on the whole training set, ``(K,)``.
        test_accuracy: ``(K,)``.
        estimating_error: ``sum_l ||f_o(W_l) - sign(W_l)||`` over the binary layers at the ``o`` in force
            (ReSTE's code uses ``o_end`` throughout; the final values agree), ``(K,)``.
        gradient_variance: ``sum_l Var|dL/dW_l|`` on a fixed training batch, ``(K,)``.
        params: the final latent parameters (tuple).
        diverged, diverged_at: as in :class:`lessons_lib.run.Run` (``diverged_at`` counts mini-batch steps).
    """

    epochs: torch.Tensor
    o: torch.Tensor
    train_loss: torch.Tensor
    test_accuracy: torch.Tensor
    estimating_error: torch.Tensor
    gradient_variance: torch.Tensor
    params: tuple
    diverged: bool
    diverged_at: int


def train_binary_mlp(X, y, X_test, y_test, *, o_end: float, epochs: int = 40, lr: float = 1e-3,
                     sizes: Sequence[int] = (64, 256, 256, 256, 10), batch_size: int = 128,
                     schedule: Schedule = "cosine", t: float = 1.5, interval: float = 0.1,
                     generator: int | torch.Generator = 0) -> BinaryRun:
    """Train the binary MLP with Adam and the ReSTE estimator, ``o`` following eq-straight-through-schedule.

    Each epoch shuffles the training set (from ``generator``) into mini-batches; within epoch ``e`` every step
    uses ``o(e)`` (cosine schedule) or ``o_end`` throughout (``schedule="constant"``). The loop is
    :func:`lessons_lib.run.run`; the indicators are recorded at the start of every epoch and at the end, with
    the ``o`` of that epoch (``o_end`` at the end).

    Args:
        X, y: training inputs ``(n, d_in)`` and long labels ``(n,)``.
        X_test, y_test: test inputs and labels.
        o_end: final exponent ``>= 1``; ``1`` keeps the plain clipped-identity slope (with threshold ``t``).
        epochs: ``T >= 1``.
        lr: Adam's learning rate ``> 0``.
        sizes: widths, see :func:`init_binary_mlp`.
        batch_size: mini-batch size.
        schedule: ``"cosine"`` or ``"constant"``.
        t, interval: the estimator's threshold and chord half-width.
        generator: seed or generator of the initialisation and the shuffles.

    Returns:
        A :class:`BinaryRun`.

    References:
        Wu, Zheng, Liu & Zheng (2023), ReSTE, arXiv:2308.06689.
    """
    X, y = _check_labels(X, y)
    X_test, y_test = _check_labels(X_test, y_test, "X_test", "y_test")
    X_test = X_test.to(X.dtype)
    o_end = _check_o(o_end, "o_end")
    epochs = check_count(epochs, name="epochs")
    lr = check_positive(lr, name="lr")
    sizes = _check_sizes(sizes)
    if sizes[0] != X.shape[1] or X_test.shape[1] != X.shape[1]:
        raise ValueError(f"sizes: the input width {sizes[0]} must match X ({X.shape[1]}) and X_test")
    batch_size = check_count(batch_size, name="batch_size")
    schedule = check_choice(schedule, ("cosine", "constant"), name="schedule")
    t, interval = _check_t_interval(t, interval)
    gen = as_generator(generator, X.device)
    params0 = init_binary_mlp(sizes, generator=gen, dtype=X.dtype, device=X.device)
    n, P = X.shape[0], len(params0)
    per_epoch = math.ceil(n / batch_size)
    probe = slice(0, min(n, 256))  # the fixed batch of the variance indicator

    def o_at(epoch: int) -> float:
        return o_end if schedule == "constant" else float(o_schedule(epoch, epochs=epochs, o_end=o_end))

    order = {}

    def step(state, k, eta):
        params, m, v = state[:P], state[P:2 * P], state[2 * P:]
        epoch, i = divmod(k, per_epoch)
        if i == 0:
            order["perm"] = torch.randperm(n, generator=gen, device=X.device)
        idx = order["perm"][i * batch_size:(i + 1) * batch_size]
        _, grads = _loss_and_grads(params, X[idx], y[idx], o_at(epoch), t, interval)
        new = [adam_direction(g, mk, vk, k + 1) for g, mk, vk in zip(grads, m, v)]
        return (tuple(p - eta * d for p, (d, _, _) in zip(params, new)) + tuple(mk for _, mk, _ in new)
                + tuple(vk for _, _, vk in new))

    def record(state, k):
        params = state[:P]
        o = o_at(min(math.ceil(k / per_epoch), epochs))
        with torch.no_grad():
            loss = torch.nn.functional.cross_entropy(_logits(params, X, o, t, interval), y)
            test = _logits(params, X_test, o, t, interval, reference=X)
            acc = (test.argmax(dim=1) == y_test).double().mean()
        grads = _loss_and_grads(params, X[probe], y[probe], o, t, interval)[1]
        var = sum(g.abs().double().var(unbiased=False) for g in grads[2:-2])
        err = sum((reste_forward(W, o=o) - _sign(W)).double().norm() for W in params[2:-2])
        return {"epoch": torch.tensor(k / per_epoch, dtype=torch.float64), "o": torch.tensor(o, dtype=torch.float64),
                "loss": loss.double(), "acc": acc, "err": err, "var": var}

    zeros = tuple(torch.zeros_like(p) for p in params0)
    out = run(step, params0 + zeros + zeros, steps=epochs * per_epoch, lr=lr, record=record,
              record_every=per_epoch)
    h = out.history
    return BinaryRun(epochs=h["epoch"], o=h["o"], train_loss=h["loss"], test_accuracy=h["acc"],
                     estimating_error=h["err"], gradient_variance=h["var"], params=tuple(out.state[:P]),
                     diverged=bool(out.diverged), diverged_at=int(out.diverged_at))
