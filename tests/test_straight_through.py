"""Tests of lessons_lib.straight_through: the ReSTE estimator, its indicators and the binary MLP on the digits.

Claims (Wu, Zheng, Liu & Zheng 2023, ReSTE, arXiv:2308.06689, as measured for the chapter):
1. the forward pass is exactly +-1 for every o; o = 1, t = 1 is the clipped identity (the STE);
2. the backward pass is the upstream gradient times the surrogate, whose closed form is the derivative of
   f_o = sign(x)|x|^(1/o) on interval < |x| <= t, the chord of f_o inside, 0 beyond t;
3. on a fixed net 64-128-128-128-10 and one batch, the estimating error falls and the gradient variance rises
   strictly over o = 1, 2, 4, 6 (3 seeds); the variances are within a factor 2 of 1.3e-6, 1.1e-5, 4.6e-5, 8.0e-5;
4. trained with the cosine o-schedule, test accuracy >= 0.9 for o_end in {1, 3, 6} (3 seeds); no ordering.
"""

from __future__ import annotations

import math

import pytest
import torch
from checkcases import Case
from fuzz_specs import Spec, randn

from lessons_lib import check, models
from lessons_lib import straight_through as S

O_VALUES = (1.0, 2.0, 4.0, 6.0)
ISSUE_VARIANCE = (1.3e-6, 1.1e-5, 4.6e-5, 8.0e-5)  # fixed net 64-128-128-128-10 at o = 1, 2, 4, 6


@pytest.fixture(scope="module")
def digits():
    return models.digits_split(generator=0, device="cpu")


def _x():
    return torch.linspace(-2.5, 2.5, 501, dtype=torch.float64)


# --- claim 1: the forward pass ----------------------------------------------------------------------------

@pytest.mark.parametrize("o", [1.0, 2.5, 6.0, 50.0])
def test_forward_is_exactly_plus_or_minus_one(o):
    x = torch.cat([_x(), torch.tensor([0.0, -0.0, 1e-30, -1e-30], dtype=torch.float64)])
    b = S.binarize(x, o=o)
    assert set(b.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(b, torch.where(x >= 0, 1.0, -1.0).to(b.dtype))


def test_o_one_t_one_is_the_clipped_identity_of_the_ste():
    """The STE's backward is that of hardtanh (identity clipped at |x| <= 1), here checked by autograd."""
    x = _x()
    assert torch.equal(S.reste_surrogate(x, o=1.0, t=1.0), (x.abs() <= 1).to(x.dtype))
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    up = randn(len(x), seed=3)
    ga = torch.autograd.grad(S.binarize(xa, o=1.0, t=1.0), xa, up)[0]
    gb = torch.autograd.grad(torch.nn.functional.hardtanh(xb), xb, up)[0]
    inside = x.abs() != 1.0  # hardtanh's derivative at the kink is 0, the STE's is 1
    assert torch.equal(ga[inside], gb[inside])
    # with the default t = 1.5 the slope 1 reaches further
    assert torch.equal(S.reste_surrogate(x, o=1.0), (x.abs() <= 1.5).to(x.dtype))


# --- claim 2: the backward pass ---------------------------------------------------------------------------

@pytest.mark.parametrize("o, t, interval", [(2.0, 1.5, 0.1), (3.0, 1.5, 0.1), (6.0, 1.2, 0.2)])
def test_surrogate_is_the_derivative_of_the_equivalent_forward_and_its_chord_near_zero(o, t, interval):
    x = _x()
    mid = (x.abs() > interval) & (x.abs() <= t)
    leaf = x[mid].clone().requires_grad_(True)
    (deriv,) = torch.autograd.grad(S.reste_forward(leaf, o=o).sum(), leaf)  # autograd oracle: entry by entry
    s = S.reste_surrogate(x, o=o, t=t, interval=interval)
    torch.testing.assert_close(s[mid], deriv, rtol=1e-12, atol=0)
    chord = float(S.reste_forward(torch.tensor(interval, dtype=torch.float64), o=o)) / interval
    assert torch.allclose(s[x.abs() <= interval], torch.tensor(chord, dtype=torch.float64), rtol=1e-14)
    assert bool((s[x.abs() > t] == 0).all())
    # the chord is o times the slope at the segment's edge: the surrogate jumps there (for o > 1)
    assert chord == pytest.approx(o * (interval ** ((1 - o) / o) / o), rel=1e-12)


@pytest.mark.parametrize("o", [1.0, 3.0, 6.0])
def test_backward_is_upstream_times_surrogate(o):
    x = randn(7, 9, seed=1)
    up = randn(7, 9, seed=2)
    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(S.binarize(leaf, o=o), leaf, up)
    assert torch.equal(g, up * S.reste_surrogate(x, o=o))
    # and by hand, written out: (1/o)|x|^((1-o)/o) between 0.1 and 1.5, 0.1^(1/o)/0.1 inside, 0 beyond
    a = x.abs()
    by_hand = torch.where(a <= 0.1, 0.1 ** (1 / o) / 0.1, a.pow((1 - o) / o) / o) * (a <= 1.5)
    torch.testing.assert_close(g, up * by_hand, rtol=1e-12, atol=0)


def test_surrogate_is_finite_at_zero_for_every_o():
    zero = torch.zeros(3, dtype=torch.float64)
    for o in (1.0, 2.0, 100.0):
        assert bool(torch.isfinite(S.reste_surrogate(zero, o=o)).all())


def test_equivalent_forward_runs_from_the_identity_to_the_sign():
    x = _x()
    assert torch.equal(S.reste_forward(x, o=1.0), x)
    away = x[x.abs() > 5e-3]  # |x|^(1/o) -> 1 for every x != 0, slowest near 0
    far = S.reste_forward(away, o=1e4)
    assert float((far - torch.sign(away)).abs().max()) < 1e-3


# --- claim 3: error against variance on a fixed net -------------------------------------------------------

def test_estimating_error_closed_form_and_strict_fall():
    w = torch.tensor([0.25, -4.0, 0.0, 1.0], dtype=torch.float64)
    # |w|^(1/2) = 0.5, 2, 0, 1: the gaps to sign(w) are 0.5, 1, 1, 0
    assert S.estimating_error(w, o=2.0) == pytest.approx(math.sqrt(0.25 + 1 + 1), rel=1e-14)
    assert S.estimating_error([w, w], o=2.0) == pytest.approx(2 * math.sqrt(2.25), rel=1e-14)
    v = randn(50, seed=4)
    errors = [S.estimating_error(v, o=o) for o in (1.0, 1.5, 2.0, 4.0, 6.0, 20.0)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    signs = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    assert S.estimating_error(signs, o=1.0) == S.estimating_error(signs, o=6.0) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_error_falls_and_variance_rises_with_o_on_a_fixed_net(seed, digits):
    """Measured (seeds 0, 1, 2): variance 0.86-1.01e-6, 7.7-9.0e-6, 4.5-5.1e-5, 0.99-1.13e-4 at o = 1, 2, 4, 6."""
    params = S.init_binary_mlp((64, 128, 128, 128, 10), generator=seed, device="cpu")
    X, y = digits.X_train[:256], digits.y_train[:256]
    variances = [S.gradient_variance(params, X, y, o=o) for o in O_VALUES]
    errors = [S.estimating_error(list(params[2:-2]), o=o) for o in O_VALUES]
    assert all(a < b for a, b in zip(variances, variances[1:])), variances
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    for got, want in zip(variances, ISSUE_VARIANCE):
        assert want / 2 < got < 2 * want, (got, want)


def test_gradient_variance_is_that_of_the_autograd_gradients_of_the_binary_layers(digits):
    params = S.init_binary_mlp((64, 32, 32, 32, 10), generator=5, device="cpu")
    X, y = digits.X_train[:64], digits.y_train[:64]
    leaves = [p.clone().requires_grad_(True) for p in params]
    loss = torch.nn.functional.cross_entropy(S.binary_mlp_logits(leaves, X, o=3.0), y)
    grads = torch.autograd.grad(loss, leaves)
    want = sum(float(g.abs().double().var(unbiased=False)) for g in grads[2:4])
    assert S.gradient_variance(params, X, y, o=3.0) == pytest.approx(want, rel=1e-6)
    assert len(params) == 6 and params[2].shape == params[3].shape == (32, 32)


def test_binary_layers_see_only_the_signs_of_their_weights(digits):
    """Shuffling a binary layer's magnitudes (signs and mean |W| kept) leaves the logits exactly unchanged; changing
    one sign changes them."""
    params = list(S.init_binary_mlp((64, 16, 16, 16, 10), generator=0, device="cpu"))
    X = digits.X_train[:32]
    before = S.binary_mlp_logits(params, X, o=2.0)
    W = params[2]
    mags = W.abs().flatten()[torch.randperm(W.numel(), generator=torch.Generator().manual_seed(1))].reshape(W.shape)
    shuffled = list(params)
    shuffled[2] = torch.sign(W) * mags
    assert torch.allclose(S.binary_mlp_logits(shuffled, X, o=2.0), before, rtol=1e-5, atol=1e-5)
    flipped = list(params)
    flipped[2] = W.clone()
    flipped[2][:, 0] = -flipped[2][:, 0]
    assert not torch.allclose(S.binary_mlp_logits(flipped, X, o=2.0), before, rtol=1e-3, atol=1e-3)


def test_init_has_variance_one_over_fan_in():
    params = S.init_binary_mlp((64, 256, 256, 256, 10), generator=0, device="cpu")
    for W in params[2:4]:
        assert float(W.var()) * 256 == pytest.approx(1.0, abs=0.02)
    assert params[0].shape == (256, 64) and params[1].shape == (256,) and params[-1].shape == (10,)


# --- the schedule -----------------------------------------------------------------------------------------

def test_o_schedule_is_the_cosine_rise_from_one_to_o_end():
    e = torch.arange(11)
    o = S.o_schedule(e, epochs=10, o_end=3.0)
    assert float(o[0]) == 1.0 and float(o[-1]) == pytest.approx(3.0, rel=1e-15)
    assert bool((o[1:] > o[:-1]).all())
    assert float(S.o_schedule(5, epochs=10, o_end=3.0)) == pytest.approx(1 + 2 * (1 - math.sqrt(0.5)), rel=1e-14)
    assert bool((S.o_schedule(e, epochs=10, o_end=1.0) == 1).all())


# --- training ---------------------------------------------------------------------------------------------

def _small_run(digits, **kwargs):
    base = dict(o_end=3.0, epochs=2, sizes=(64, 32, 32, 32, 10), generator=0)
    base.update(kwargs)
    return S.train_binary_mlp(digits.X_train[:256], digits.y_train[:256], digits.X_test, digits.y_test, **base)


def test_training_records_every_epoch_with_its_o_and_is_deterministic(digits):
    a, b = _small_run(digits), _small_run(digits)
    assert torch.equal(a.test_accuracy, b.test_accuracy) and torch.equal(a.params[2], b.params[2])
    assert a.epochs.tolist() == [0.0, 1.0, 2.0] and not a.diverged and a.diverged_at == -1
    torch.testing.assert_close(a.o, S.o_schedule(torch.arange(3), epochs=2, o_end=3.0))
    assert bool(torch.isfinite(a.gradient_variance).all()) and bool((a.estimating_error > 0).all())
    assert float(a.train_loss[-1]) < float(a.train_loss[0])
    c = _small_run(digits, generator=1)
    assert not torch.equal(a.params[2], c.params[2])
    const = _small_run(digits, schedule="constant")
    assert const.o.tolist() == [3.0, 3.0, 3.0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_mlp_reaches_ninety_percent_for_every_o_end(seed, digits):
    """The notebook's quick setting (64-128-128-128-10, 10 epochs): about 1 s a run."""
    for o_end in (1.0, 3.0, 6.0):
        r = S.train_binary_mlp(digits.X_train, digits.y_train, digits.X_test, digits.y_test, o_end=o_end,
                               epochs=10, sizes=(64, 128, 128, 128, 10), generator=seed)
        assert not r.diverged and float(r.test_accuracy[-1]) >= 0.9, (o_end, r.test_accuracy[-1])



def test_alpha_cancels_in_batch_norm(digits):
    """Batch norm without learned scale is invariant to a positive factor, so alpha_l = mean|W_l| cancels: scaling
    one binary layer's latent weights by 10 and another's by 0.1 leaves the logits unchanged."""
    params = list(S.init_binary_mlp((64, 16, 16, 16, 10), generator=0, device="cpu"))
    X = digits.X_train[:32]
    before = S.binary_mlp_logits(params, X, o=2.0)
    scaled = list(params)
    scaled[2], scaled[3] = 10.0 * params[2], 0.1 * params[3]
    assert torch.allclose(S.binary_mlp_logits(scaled, X, o=2.0), before, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_cosine_schedule_beats_a_constant_o_end_from_the_start(digits):
    """The notebook's quick setting, o_end = 6: the cosine rise from o = 1 ends at 0.94-0.95 test accuracy, o = 6
    held constant from the first step at 0.88-0.91 (measured, seeds 0-2); the schedule wins by >= 0.02 in every
    seed, with the same final error (same o) and a larger final variance for the constant run."""
    for seed in (0, 1, 2):
        kw = dict(o_end=6.0, epochs=10, sizes=(64, 128, 128, 128, 10), generator=seed)
        cos = S.train_binary_mlp(digits.X_train, digits.y_train, digits.X_test, digits.y_test, **kw)
        const = S.train_binary_mlp(digits.X_train, digits.y_train, digits.X_test, digits.y_test,
                                   schedule="constant", **kw)
        assert float(cos.test_accuracy[-1]) >= float(const.test_accuracy[-1]) + 0.02, seed
        assert float(cos.estimating_error[-1]) == pytest.approx(float(const.estimating_error[-1]), rel=0.02)
        assert float(const.gradient_variance[-1]) > float(cos.gradient_variance[-1]), seed


@pytest.mark.slow
def test_binary_mlp_at_the_full_size_reaches_ninety_percent(digits):
    """64-256-256-256-10, 40 epochs (about 7 s alone): measured 0.953 at o_end = 6, seed 0 (0.953-0.973 over o_end
    in {1, 3, 6} and seeds 0-2)."""
    r = S.train_binary_mlp(digits.X_train, digits.y_train, digits.X_test, digits.y_test, o_end=6.0, generator=0)
    assert float(r.test_accuracy[-1]) >= 0.9 and float(r.o[-1]) == pytest.approx(6.0)


# --- bad input --------------------------------------------------------------------------------------------

def test_bad_input_names_the_argument(digits):
    x = randn(4)
    with pytest.raises(ValueError, match="^o:"):
        S.binarize(x, o=0.5)
    with pytest.raises(ValueError, match="^interval:"):
        S.reste_surrogate(x, o=2.0, t=0.1, interval=0.2)
    with pytest.raises(ValueError, match="^t:"):
        S.reste_surrogate(x, o=2.0, t=-1.0)
    with pytest.raises(ValueError, match="^x:"):
        S.reste_forward([1.0, 2.0], o=2.0)
    with pytest.raises(ValueError, match="^w:"):
        S.estimating_error([], o=2.0)
    with pytest.raises(ValueError, match="^epoch:"):
        S.o_schedule(11, epochs=10, o_end=3.0)
    with pytest.raises(ValueError, match="^sizes:"):
        S.init_binary_mlp((64, 10, 10), generator=0)
    params = S.init_binary_mlp((64, 8, 8, 10), generator=0, device="cpu")
    with pytest.raises(ValueError, match="^params:"):
        S.gradient_variance(params[:4], digits.X_train[:8], digits.y_train[:8], o=2.0)
    with pytest.raises(ValueError, match="^X:"):
        S.binary_mlp_logits(params, digits.X_train[:8, :10], o=2.0)
    with pytest.raises(ValueError, match="^y:"):
        S.gradient_variance(params, digits.X_train[:8], digits.y_train[:7], o=2.0)
    with pytest.raises(ValueError, match="^schedule:"):
        _small_run(digits, schedule="linear")
    with pytest.raises(ValueError, match="^lr:"):
        _small_run(digits, lr=0.0)


# --- the self-check ---------------------------------------------------------------------------------------

def _backward(x, g, o, t, interval, *, scale=1.0, upstream=True, sign=1.0, clip=True, chord=True, factor=True):
    a = x.abs()
    mid = a.clamp(min=interval).pow((1 - o) / o) / (o if factor else 1.0)
    inner = interval ** (1 / o) / interval if chord else interval ** ((1 - o) / o) / o
    s = torch.where(a <= interval, torch.full_like(x, inner), mid)
    if clip:
        s = torch.where(a <= t, s, torch.zeros_like(s))
    return sign * scale * (g if upstream else 1.0) * s


_EXPECTED = [v for case in check.straight_through.BACKWARD_CASES.values() for v in _backward(*case).tolist()]
_INPUTS = sorted({v for case in check.straight_through.BACKWARD_CASES.values()
                  for v in case[0].tolist() + case[1].tolist() + list(case[2:])})

CHECK_CASES = {
    "reste_backward": Case(
        _backward, lambda x, g, o, t, i: _backward(x, g, o, t, i, scale=1.01),
        (lambda x, g, o, t, i: _backward(x, g, o, t, i, upstream=False),
         lambda x, g, o, t, i: _backward(x, g, o, t, i, clip=False),
         lambda x, g, o, t, i: _backward(x, g, o, t, i, chord=False)),
        expected=_EXPECTED, inputs=_INPUTS, function=True,
        nan=lambda x, g, o, t, i: torch.full_like(x, float("nan")),
        hints=((lambda x, g, o, t, i: _backward(x, g, o, t, i, upstream=False), "chain rule"),
               (lambda x, g, o, t, i: _backward(x, g, o, t, i, clip=False), "not zero beyond t"),
               (lambda x, g, o, t, i: _backward(x, g, o, t, i, chord=False), "tangent"),
               (lambda x, g, o, t, i: _backward(x, g, o, t, i, sign=-1.0), "wrong sign"),
               (lambda x, g, o, t, i: _backward(x, g, o, t, i, factor=False), "carries 1/o"))),
}


def test_reste_backward_check_accepts_the_library_and_names_a_missing_chord():
    assert check.reste_backward(lambda x, g, o, t, i: g * S.reste_surrogate(x, o=o, t=t, interval=i))
    naive = check.reste_backward(lambda x, g, o, t, i: g * x.abs().pow((1 - o) / o) / o * (x.abs() <= t))
    assert naive.status == "wrong" and "chord" in naive.message


# --- divergence and fuzz cases (collected by tests/test_divergence.py and tests/test_fuzz.py) -------------

def _runner(mult):
    """Adam on a tiny binary net (64-16-16-10, 64 samples, 2 epochs of one step) with lr = mult * 1e-2, the
    scale of a stable Adam step for weights of order 1/sqrt(fan_in). Adam's step is about lr per coordinate
    whatever the gradient, so the weights grow linearly in lr: at 10x and 1e6x they stay inside the divergence
    ball (1e6 times the initial norm) and the run is wrecked but bounded; at 1e300x the first step leaves it.
    The case checks its own: no flag below 1e300x, the flag at step 1 with the initial weights at 1e300x."""
    d = models.digits_split(generator=0, device="cpu")
    r = S.train_binary_mlp(d.X_train[:64], d.y_train[:64], d.X_test[:32], d.y_test[:32], o_end=3.0, epochs=2,
                           lr=mult * 1e-2, sizes=(64, 16, 16, 10), generator=0)
    if mult >= 1e300:
        p0 = S.init_binary_mlp((64, 16, 16, 10), generator=torch.Generator().manual_seed(0), device="cpu")
        assert r.diverged and r.diverged_at == 1 and torch.equal(r.params[2], p0[2]), (r.diverged, r.diverged_at)
    else:
        assert not r.diverged, (mult, r.diverged_at)
    assert bool(torch.isfinite(r.train_loss).all()) and bool(torch.isfinite(r.gradient_variance).all())
    return r


DIVERGENCE_CASES = {"straight_through.train_binary_mlp": (_runner, None, ())}  # its own checks above
NOT_RUNNERS = {}


def _params():
    return S.init_binary_mlp((3, 4, 4, 2), generator=0, dtype=torch.float64, device="cpu")


def _xy():
    return dict(X=randn(6, 3), y=torch.tensor([0, 1, 0, 1, 1, 0]))


FUZZ_SPECS = {
    "straight_through.reste_forward": Spec(lambda: dict(x=randn(5), o=2.0), positive="o"),
    "straight_through.reste_surrogate": Spec(lambda: dict(x=randn(5), o=2.0, t=1.5, interval=0.1),
                                             positive="o t interval"),
    "straight_through.binarize": Spec(lambda: dict(x=randn(5), o=2.0, t=1.5, interval=0.1), positive="o t interval"),
    "straight_through.estimating_error": Spec(lambda: dict(w=randn(5), o=2.0), positive="o"),
    "straight_through.o_schedule": Spec(lambda: dict(epoch=3, epochs=10, o_end=3.0), positive="o_end",
                                        nonneg="epoch"),
    "straight_through.init_binary_mlp": Spec(lambda: dict(sizes=(3, 4, 4, 2), generator=0, dtype=torch.float64,
                                                          device="cpu"), skip="sizes dtype device"),
    # sizes: a tuple of widths; dtype, device: passed on to torch
    "straight_through.binary_mlp_logits": Spec(lambda: dict(params=_params(), X=randn(6, 3), o=2.0, t=1.5,
                                                            interval=0.1, reference=randn(8, 3, seed=1)),
                                               positive="o t interval", skip="params reference"),
    # params: the tuple of init_binary_mlp; reference: None is valid (the batch's own statistics)
    "straight_through.gradient_variance": Spec(lambda: dict(params=_params(), **_xy(), o=2.0, t=1.5, interval=0.1),
                                               positive="o t interval", skip="params"),
    "straight_through.train_binary_mlp": Spec(lambda: dict(**_xy(), X_test=randn(4, 3, seed=2),
                                                           y_test=torch.tensor([1, 0, 1, 0]), o_end=2.0, epochs=1,
                                                           lr=1e-3, sizes=(3, 4, 4, 2), batch_size=4,
                                                           schedule="cosine", t=1.5, interval=0.1, generator=0),
                                              positive="o_end lr t interval", skip="sizes"),
    "check.straight_through.reste_backward": Spec(lambda: dict(fn=lambda x, g, o, t, i: g), skip="fn"),
    # fn: the learner's function
}
FUZZ_OPT_OUT = {}
