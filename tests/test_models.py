"""The shared small models of lessons_lib.models: losses against autograd and torch.nn, trainers, inputs."""

import math

import pytest
import torch
from fuzz_specs import Spec

from lessons_lib import models, schedules
from lessons_lib.backend import Record

# --- diagonal linear network


def _sparse_data(n=12, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, dtype=torch.float64, generator=g)
    beta = torch.zeros(d, dtype=torch.float64)
    beta[:2] = 1.0
    return X, X @ beta


def _diagonal_by_hand(X, y, lrs, *, steps, batch_size, init_scale, generator, warmup_steps):
    """The trainer's update written out as a plain loop: warm-up lr * min(1, (t + 1) / w), the same draws."""
    n, d = X.shape
    lrs = torch.tensor(lrs, dtype=X.dtype)
    u = torch.full((len(lrs), d), init_scale, dtype=X.dtype)
    v = u.clone()
    gen = torch.Generator().manual_seed(generator)
    for t in range(steps):
        if batch_size is None:
            i = torch.arange(n)
        elif batch_size == 1:
            i = torch.randint(n, (1,), generator=gen)
        else:
            i = torch.randperm(n, generator=gen)[:batch_size]
        eta = lrs * min(1.0, (t + 1) / warmup_steps) if warmup_steps else lrs
        g = ((u**2 - v**2) @ X[i].T - y[i]) @ X[i] / len(i)
        s = (2 * eta)[:, None] * g
        u, v = u - s * u, v + s * v
    return u, v


@pytest.mark.parametrize("batch_size", [None, 1, 4])
def test_diagonal_net_is_the_hand_written_loop_bit_for_bit(batch_size):
    X, y = _sparse_data()
    kw = dict(steps=300, batch_size=batch_size, init_scale=0.7, generator=3, warmup_steps=100)
    run = models.train_diagonal_net(X, y, lr=[0.01, 0.03], record_every=100, **kw)
    u, v = _diagonal_by_hand(X, y, [0.01, 0.03], **kw)
    assert torch.equal(run.u, u) and torch.equal(run.v, v)  # same warm-up values, same minibatch draws
    assert torch.equal(run.beta, u**2 - v**2) and run.record_steps.tolist() == [0, 100, 200, 300]


def test_diagonal_net_step_is_gd_on_the_square_loss():
    X, y = _sparse_data()
    g = torch.Generator().manual_seed(1)
    u, v = (torch.rand(8, dtype=torch.float64, generator=g) for _ in range(2))
    p = torch.cat([u, v]).requires_grad_()
    (0.5 * ((X @ (p[:8] ** 2 - p[8:] ** 2) - y) ** 2).mean()).backward()
    new_u, new_v = models.diagonal_net_step(u, v, X, y, lr=0.1)
    assert torch.allclose(torch.cat([new_u, new_v]), torch.cat([u, v]) - 0.1 * p.grad, atol=1e-14)


def test_warmup_steps_is_a_warmup_schedule_given_as_lr():
    X, y = _sparse_data()
    kw = dict(steps=400, batch_size=1, generator=2, record_every=100)
    by_keyword = models.train_diagonal_net(X, y, lr=0.05, warmup_steps=150, **kw)
    by_schedule = models.train_diagonal_net(X, y, lr=schedules.warmup_schedule(0.05, warmup=150), **kw)
    assert torch.allclose(by_keyword.beta, by_schedule.beta, rtol=1e-12, atol=1e-15)
    assert by_schedule.lr.shape == (400,) and float(by_schedule.lr[0]) == pytest.approx(0.05 / 150)
    assert float(by_keyword.lr) == 0.05


def test_a_diverged_diagonal_run_is_frozen_not_zeroed():
    X, y = _sparse_data(n=40, d=100)
    run = models.train_diagonal_net(X, y, lr=[0.01, 5.0], steps=600, batch_size=1, record_every=300)
    assert run.diverged.tolist() == [False, True]
    k = int(run.diverged_at[1])
    assert 0 < k < 600
    beta = run.beta[1]
    assert bool(torch.isfinite(beta).all()) and float(beta.abs().max()) > 1e3  # where it blew up, not at 0
    assert torch.equal(run.beta_history[-1, 1], beta) and torch.equal(run.beta_history[-2, 1], beta)  # frozen
    assert bool(torch.isfinite(run.trace_history).all()) and bool(torch.isfinite(run.loss_history).all())
    assert not torch.equal(run.beta_history[-1, 0], run.beta_history[-2, 0])  # the other run kept training


def test_diagonal_divergence_is_checked_after_every_step():
    X, y = _sparse_data(n=40, d=100)
    kw = dict(lr=5.0, batch_size=1, init_scale=0.5, record_every=1, blowup=1e6)
    k = int(models.train_diagonal_net(X, y, steps=600, **kw).diverged_at)
    radius = 1e6 * 0.5 * math.sqrt(200)  # blowup * ||(u_0, v_0)||
    before = models.train_diagonal_net(X, y, steps=k - 1, **kw)
    at = models.train_diagonal_net(X, y, steps=k, **kw)
    assert not bool(before.diverged) and float(torch.cat([before.u, before.v]).norm()) <= radius
    assert bool(at.diverged) and int(at.diverged_at) == k and float(torch.cat([at.u, at.v]).norm()) > radius


def test_diagonal_run_is_a_record_on_the_host():
    X, y = _sparse_data()
    run = models.train_diagonal_net(X, y, lr=[0.01, 0.02], steps=10, record_every=5)
    assert isinstance(run, Record) and run.beta.device.type == "cpu"
    assert run.trace_history.shape == (3, 2) and run.beta_history.shape == (3, 2, 8)
    one = models.train_diagonal_net(X, y, lr=0.01, steps=10, record_every=5)
    assert one.beta.shape == (8,) and one.trace_history.shape == (3,) and one.diverged.shape == ()
    assert torch.equal(one.beta, run.beta[0])  # a single run is the first run of a batch


def test_diagonal_net_bad_input_names_the_argument():
    X, y = _sparse_data()
    cases = [(dict(lr=schedules.warmup_schedule(0.1, warmup=5), warmup_steps=5), "warmup_steps"),
             (dict(lr=lambda t: torch.ones(3)), "lr"), (dict(lr=[0.1, float("nan")]), "lr"),
             (dict(lr="fast"), "lr"), (dict(lr=0.1, blowup=0.0), "blowup")]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=rf"^{name}:"):
            models.train_diagonal_net(X, y, steps=10, **kwargs)
    with pytest.raises(ValueError, match="^init_scale:"):
        models.per_run_values([1.0, 0.0], name="init_scale", like=X, positive=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_networks_train_on_cuda_and_return_on_the_host():
    X, y = (t.cuda() for t in _sparse_data())
    cpu = models.train_diagonal_net(X.cpu(), y.cpu(), lr=[0.01, 0.02], steps=50, record_every=25)
    gpu = models.train_diagonal_net(X, y, lr=[0.01, 0.02], steps=50, record_every=25)
    assert gpu.beta.device.type == "cpu" and torch.allclose(gpu.beta, cpu.beta, rtol=1e-10)
    lin = models.train_linear_net(torch.eye(3, dtype=torch.float64, device="cuda"), width=2, init_scale=0.1, lr=0.1,
                                  steps=5, generator=torch.Generator("cuda").manual_seed(0))
    assert lin.W1.device.type == lin.loss.device.type == "cpu"
    relu = models.train_relu_1d(X[:, 0], y, width=4, init_scale=0.1, lr=[0.1, 0.2], steps=5)
    assert relu.a.device.type == relu.diverged.device.type == "cpu"


# --- two-layer linear network


def _target(s=(3.0, 1.0), d=4, seed=0):
    U = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))).Q
    s = torch.tensor(s, dtype=torch.float64)
    return U[:, : len(s)] @ torch.diag(s) @ U[:, : len(s)].T, s


def test_aligned_linear_net_follows_the_scalar_gd_recursion_exactly():
    # W1 = eps E V^T, W2 = eps U E^T: each mode u = p^2 obeys u <- u (1 + lr (s - u))^2, one GD step per step
    A, s = _target()
    eps, lr, steps = 0.1, 0.05, 120
    run = models.train_linear_net(A, width=2, init_scale=eps, lr=lr, steps=steps, init="aligned", record_every=40)
    u = torch.full_like(s, eps**2)
    expected = [u]
    for k in range(1, steps + 1):
        u = u * (1 + lr * (s - u)) ** 2
        if k % 40 == 0:
            expected.append(u)
    assert run.steps.tolist() == [0, 40, 80, 120]
    assert torch.allclose(run.singular_values[:, :2], torch.stack(expected), rtol=1e-10, atol=1e-14)
    assert torch.allclose(run.u0[:2], torch.full_like(s, eps**2), rtol=1e-12)
    assert float(run.loss[0]) == pytest.approx(0.5 * float(((s - eps**2) ** 2).sum()), rel=1e-10)


def test_a_diverged_linear_run_stops_at_its_last_finite_state():
    A, _ = _target()
    kw = dict(width=4, init_scale=0.5, lr=2.0, generator=0, blowup=1e3)
    size = lambda r: float(torch.cat([r.W1.flatten(), r.W2.flatten()]).norm())  # noqa: E731
    radius = 1e3 * max(1.0, size(models.train_linear_net(A, steps=0, **kw)))
    run = models.train_linear_net(A, steps=200, **kw)
    assert run.diverged and 0 < run.diverged_at < 200
    assert int(run.steps[-1]) == run.diverged_at  # the history ends at the frozen state
    assert bool(torch.isfinite(run.loss).all()) and bool(torch.isfinite(run.W1).all()) and size(run) > radius
    before = models.train_linear_net(A, steps=run.diverged_at - 1, **kw)
    assert not before.diverged and size(before) <= radius  # checked after every step


def test_linear_run_is_a_record_on_the_host():
    A, _ = _target()
    run = models.train_linear_net(A, width=2, init_scale=0.1, lr=0.1, steps=5)
    assert isinstance(run, Record) and run.W1.device.type == "cpu" and run.singular_values.shape == (6, 4)
    assert run.diverged is False and run.diverged_at is None


def _fields_equal(a, b) -> bool:
    """Every field of two LinearNetRun records equal bit for bit (tensors by torch.equal, the rest by ==)."""
    same = lambda x, y: torch.equal(x, y) if isinstance(x, torch.Tensor) else type(x) is type(y) and x == y  # noqa: E731
    return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)


@pytest.mark.parametrize("init", ["random", "aligned"])
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_linear_net_equals_the_loop_of_single_calls(seed, init):
    # lr * s1 from 0.2 to 1.1: the last one never settles on the top mode, so a difference in rounding would show
    A, _ = _target(s=(4.0, 2.0, 1.0), d=5, seed=seed)
    lrs, kw = [0.05, 0.15, 0.275], dict(width=4, steps=300, generator=seed, init=init, record_every=7)
    runs = models.train_linear_net(A, init_scale=1e-3, lr=lrs, **kw)
    assert runs.loss.shape == (len(runs.steps), 3) and runs.singular_values.shape == (len(runs.steps), 3, 5)
    assert runs.W1.shape == (3, 4, 5) and runs.u0.shape == (3, 5) and runs.diverged.shape == (3,)
    for r, lr in enumerate(lrs):
        assert _fields_equal(runs.single(r), models.train_linear_net(A, init_scale=1e-3, lr=lr, **kw))
    # init_scale batches too, broadcast against lr, from the same standard-normal draw
    both = models.train_linear_net(A, init_scale=[1e-3, 0.1, 1.0], lr=0.1, **kw)
    for r, eps in enumerate([1e-3, 0.1, 1.0]):
        assert _fields_equal(both.single(r), models.train_linear_net(A, init_scale=eps, lr=0.1, **kw))


def test_batched_linear_runs_diverge_each_on_their_own():
    A, _ = _target()
    kw = dict(width=4, init_scale=0.5, generator=0, blowup=1e3, record_every=4)
    lrs = [0.1, 2.0, 0.2, 3.0]
    runs = models.train_linear_net(A, lr=lrs, steps=60, **kw)
    singles = [models.train_linear_net(A, lr=lr, steps=60, **kw) for lr in lrs]
    assert runs.diverged.tolist() == [s.diverged for s in singles] == [False, True, False, True]
    assert runs.diverged_at.tolist() == [s.diverged_at if s.diverged else -1 for s in singles]
    assert int(runs.steps[-1]) == 60  # the stable runs train on to the end
    assert bool(torch.isfinite(runs.loss).all()) and bool(torch.isfinite(runs.W1).all())
    for r, one in enumerate(singles):
        assert _fields_equal(runs.single(r), one)
        if one.diverged:  # frozen: every row from its divergence on holds the same last finite state
            later = runs.loss[runs.steps >= one.diverged_at, r]
            assert bool((later == one.loss[-1]).all()) and int(runs.single(r).steps[-1]) == one.diverged_at
    # when every run diverged the histories end at the last divergence
    bad = models.train_linear_net(A, lr=[2.0, 3.0], steps=200, **kw)
    assert bool(bad.diverged.all()) and int(bad.steps[-1]) == int(bad.diverged_at.max())


@pytest.mark.parametrize("kwargs,name", [
    (dict(lr=True), "lr"), (dict(lr=[0.1, True]), "lr"), (dict(lr="0.1"), "lr"), (dict(lr=["0.1"]), "lr"),
    (dict(lr=[0.1, -0.1]), "lr"), (dict(lr=-0.1), "lr"), (dict(lr=[]), "lr"), (dict(lr=[0.1, math.nan]), "lr"),
    (dict(lr=[[0.1]]), "lr"), (dict(lr=[0.1, 0.2], init_scale=[0.1, 0.2, 0.3]), "lr"),
    (dict(init_scale=[0.1, 0.0]), "init_scale"), (dict(init_scale=[]), "init_scale"),
    (dict(init_scale=[True]), "init_scale"), (dict(init_scale="0.1"), "init_scale"),
])
def test_bad_linear_net_rates_and_scales_name_the_argument(kwargs, name):
    A, _ = _target()
    with pytest.raises(ValueError, match=f"^{name}:"):
        models.train_linear_net(A, **{**dict(width=2, init_scale=0.1, lr=0.1, steps=3), **kwargs})


def test_single_names_a_bad_run_and_refuses_an_unbatched_result():
    A, _ = _target()
    runs = models.train_linear_net(A, width=2, init_scale=0.1, lr=[0.1, 0.2], steps=3)
    for bad in (2, -1, 0.5, True):
        with pytest.raises(ValueError, match="^run:"):
            runs.single(bad)
    with pytest.raises(ValueError, match="^run:"):
        models.train_linear_net(A, width=2, init_scale=0.1, lr=0.1, steps=3).single(0)
    assert models.train_linear_net(A, width=2, init_scale=0.1, lr=[0.1], steps=3).loss.shape == (4, 1)


# --- one-dimensional ReLU network

X1 = torch.linspace(-1, 1, 16, dtype=torch.float64)
Y1 = torch.relu(X1 - 0.2) - 0.5 * torch.relu(-X1)


def test_relu_loss_is_the_mean_squared_error_of_the_network():
    g = torch.Generator().manual_seed(0)
    a, w, b = (torch.randn(3, 5, dtype=torch.float64, generator=g) for _ in range(3))
    expected = 0.5 * ((models.relu_network(X1, a, w, b) - Y1) ** 2).mean(-1)
    assert torch.allclose(models.relu_loss(X1, Y1, a, w, b), expected, rtol=1e-13)


def test_relu_trainer_records_the_loss_every_step_and_the_weights_every_record_step():
    run = models.train_relu_1d(X1, Y1, width=6, init_scale=0.3, lr=0.1, steps=25, generator=1, record_every=10)
    assert run.loss.shape == (26,) and run.record_steps.tolist() == [0, 10, 20, 25] and run.a.shape == (4, 6)
    for row, k in enumerate(run.record_steps.tolist()):
        assert float(run.loss[k]) == float(models.relu_loss(X1, Y1, run.a[row], run.w[row], run.b[row]))
    a, w, b = run.a[0], run.w[0], run.b[0]  # one GD step by hand from the recorded start
    ga, gw, gb = models.relu_gradients(X1, Y1, a, w, b)
    step1 = models.train_relu_1d(X1, Y1, width=6, init_scale=0.3, lr=0.1, steps=1, generator=1)
    for new, old, grad in zip((step1.a, step1.w, step1.b), (a, w, b), (ga, gw, gb)):
        assert torch.allclose(new[-1], old - 0.1 * grad, atol=1e-15)


def test_a_diverged_relu_run_is_frozen_and_the_others_train_on():
    run = models.train_relu_1d(X1, Y1, width=10, init_scale=0.5, lr=[0.1, 200.0], steps=200, generator=0,
                               record_every=50, blowup=1e3)
    assert run.diverged.tolist() == [False, True] and 0 < int(run.diverged_at[1]) < 50
    assert int(run.diverged_at[0]) == -1 and run.loss.shape == (201, 2)
    frozen = run.loss[int(run.diverged_at[1]):, 1]
    assert bool(torch.isfinite(run.loss).all()) and bool((frozen == frozen[0]).all())
    assert torch.equal(run.a[1, 1], run.a[-1, 1]) and float(run.loss[-1, 0]) < float(run.loss[0, 0])


def test_relu_run_is_a_record_on_the_host_and_data_are_checked_once():
    run = models.train_relu_1d(X1, Y1, width=3, init_scale=0.1, lr=0.1, steps=3)
    assert isinstance(run, Record) and run.a.device.type == "cpu" and run.diverged.shape == ()
    for bad in ((X1, Y1[:-1]), (X1[:1], Y1[:1]), (X1[:, None], Y1[:, None])):
        with pytest.raises(ValueError, match="^x:"):
            models.check_xy(*bad)
    x, y = models.check_xy([0.0, 1.0], [1, 2])
    assert x.dtype == y.dtype == torch.float64


# --- tiny MLP


def _torch_mlp(problem, params):
    """The same network as torch.nn layers, with the flat parameters copied in (layer by layer, W then b)."""
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU}[problem.activation]
    layers = []
    n_layers = len(problem.sizes) - 1
    for i, (fan_in, fan_out) in enumerate(zip(problem.sizes[:-1], problem.sizes[1:])):
        layers += [torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)] + ([act()] if i < n_layers - 1 else [])
    net = torch.nn.Sequential(*layers)
    torch.nn.utils.vector_to_parameters(params, net.parameters())
    return net


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_mlp_loss_and_gradient_match_the_equivalent_torch_network(activation):
    problem = models.mlp_problem(n=10, d=3, width=4, depth=2, activation=activation, generator=1, device="cpu")
    params = problem.init(5)
    net = _torch_mlp(problem, params)
    out = net(problem.X)[:, 0]
    reference = 0.5 * ((out - problem.y) ** 2).mean()
    reference.backward()
    assert torch.allclose(problem.predict(params), out.detach(), atol=1e-14)
    assert float(problem.loss(params)) == pytest.approx(float(reference.detach()), rel=1e-12)
    grad_nn = torch.nn.utils.parameters_to_vector(p.grad for p in net.parameters())
    assert torch.allclose(torch.func.grad(problem.loss)(params), grad_nn, rtol=1e-10, atol=1e-14)
    assert problem.n_params == sum(p.numel() for p in net.parameters()) == 3 * 4 + 4 + 4 * 4 + 4 + 4 + 1


def test_mlp_init_is_lecun_scaled_with_zero_biases():
    problem = models.mlp_problem(n=8, d=200, width=200, depth=1, generator=0, device="cpu")
    W1, b1, w2, b2 = torch.split(problem.init(1), [200 * 200, 200, 200, 1])
    assert float(W1.var()) == pytest.approx(0.8**2 / 200, rel=0.05)
    assert float(w2.var()) == pytest.approx(0.8**2 / 200, rel=0.3)
    assert not b1.any() and not b2.any()


def test_mlp_problem_is_made_on_the_default_device_and_is_reproducible():
    from lessons_lib.backend import default_device

    a, b = models.mlp_problem(generator=3), models.mlp_problem(generator=3)
    assert a.X.device.type == default_device().type and a.init(0).device.type == default_device().type
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y) and torch.equal(a.init(2), b.init(2))
    smooth = models.mlp_problem(targets="smooth", generator=3, device="cpu")
    assert bool((smooth.y.abs() <= 1).all()) and not torch.equal(smooth.y, a.y.cpu())


@pytest.mark.parametrize(
    "kwargs,name",
    [(dict(activation="sigmoid"), "activation"), (dict(targets="labels"), "targets"), (dict(n=0), "n"),
     (dict(width=2.5), "width"), (dict(depth=0), "depth"), (dict(init_scale=-1.0), "init_scale"),
     (dict(generator=-1), "seed_or_generator"), (dict(dtype=torch.int64), "dtype")],
)
def test_bad_mlp_problem_input_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        models.mlp_problem(**kwargs)


def test_bad_mlp_params_shape():
    problem = models.mlp_problem(generator=0, device="cpu")
    with pytest.raises(ValueError, match="^params:"):
        problem.loss(torch.zeros(4, dtype=torch.float64))


# --- student-teacher network


def _student(seed, activation, S=2, M=4, N=5, n=7):
    gen = torch.Generator().manual_seed(seed)
    data = models.teacher_data(n_inputs=M, n_samples=n, seeds=S, generator=gen)
    W1, w2 = models.init_student(n_inputs=M, n_hidden=N, seeds=S, init_scale=1.0, generator=gen)
    return data, W1, w2, gen


@pytest.mark.parametrize("activation", ["linear", "tanh"])
@pytest.mark.parametrize("seed", [0, 1])
def test_student_gradient_is_the_autograd_gradient_of_its_loss(seed, activation):
    data, W1, w2, _ = _student(seed, activation)
    g1, g2 = models.student_grad(W1, w2, data.X, data.y, activation=activation)
    W1r, w2r = W1.clone().requires_grad_(), w2.clone().requires_grad_()
    auto1, auto2 = torch.autograd.grad(models.student_loss(W1r, w2r, data.X, data.y, activation=activation).sum(),
                                       (W1r, w2r))
    assert torch.allclose(g1, auto1, rtol=1e-12, atol=1e-15) and torch.allclose(g2, auto2, rtol=1e-12, atol=1e-15)


def test_student_update_flips_the_gradient_per_unit():
    data, W1, w2, gen = _student(3, "tanh")
    D1, D2 = models.flip_signs(4, 2, 2, gen), models.flip_signs(5, 1, 2, gen)
    g1, g2 = models.student_grad(W1, w2, data.X, data.y, activation="tanh")
    d1, d2 = models.student_update(W1, w2, data.X, data.y, lr=0.3, D1=D1, D2=D2, activation="tanh")
    assert torch.allclose(d1, -0.3 * g1 * D1[:, None, :], rtol=1e-14) and torch.allclose(d2, -0.3 * g2 * D2, rtol=1e-14)
    gd1, gd2 = models.student_update(W1, w2, data.X, data.y, lr=0.3, activation="tanh")
    assert torch.allclose(gd1, -0.3 * g1, rtol=1e-14) and torch.allclose(gd2, -0.3 * g2, rtol=1e-14)


def test_diagonal_net_records_every_500_steps_by_default_and_ends_at_the_last_record():
    X = torch.tensor([[1.0, 0.5], [0.2, -1.0], [0.3, 0.3]], dtype=torch.float64)
    run = models.train_diagonal_net(X, X @ torch.tensor([1.0, 0.0], dtype=torch.float64), lr=0.05, steps=1100)
    assert run.record_steps.tolist() == [0, 500, 1000, 1100]
    assert run.trace == run.trace_history[-1] != run.trace_history[1]
    assert run.lam_max == run.lam_max_history[-1] != run.lam_max_history[1]


def test_teacher_data_makes_three_seeds_of_a_hundred_samples_by_default():
    data = models.teacher_data(n_inputs=4)
    assert data.X.shape == (3, 100, 4) and data.y.shape == (3, 100) and data.beta.shape == (3, 4)


def test_relu_kinks_merge_nearby_kinks_at_their_slope_weighted_mean():
    """Kinks at 0.10 and 0.13 (slope changes 1 and 3) merge at (0.10 * 1 + 0.13 * 3) / 4 = 0.1225."""
    a = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)
    w = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    b = torch.tensor([-0.10, -0.13, -0.5], dtype=torch.float64)  # kinks at -b / w = 0.10, 0.13, -0.5
    where, slope = models.relu_kinks(a, w, b, x_range=(-1.0, 1.0))
    assert where.tolist() == pytest.approx([-0.5, 0.1225], rel=1e-12)
    assert slope.tolist() == pytest.approx([2.0, 4.0], rel=1e-12)


def test_teacher_data_is_linear_and_scaled():
    data = models.teacher_data(n_inputs=50, n_samples=400, seeds=2, generator=0)
    from lessons_lib.backend import default_device

    assert data.X.device.type == default_device().type and data.X.shape == (2, 400, 50) and data.y.shape == (2, 400)
    assert torch.allclose(data.y, torch.einsum("snm,sm->sn", data.X, data.beta))
    assert float(data.X.var()) == pytest.approx(0.5, rel=0.05)  # x ~ N(0, I/2)
    assert float(data.beta.var()) == pytest.approx(1 / 50, rel=0.3)  # beta* ~ N(0, I/M)
    W1, w2 = models.init_student(n_inputs=50, n_hidden=80, seeds=2, init_scale=2.0, generator=0)
    assert float(W1.var()) == pytest.approx(4 / 50, rel=0.05) and float(w2.var()) == pytest.approx(4 / 80, rel=0.3)
    written_out = 0.5 * ((torch.einsum("sn,snm,sim->si", w2, W1, data.X) - data.y) ** 2).mean()
    assert math.isclose(float(models.student_loss(W1, w2, data.X, data.y).mean()), float(written_out), rel_tol=1e-12)


def test_flip_signs_needs_a_generator_and_flips_exactly_that_many():
    D = models.flip_signs(9, 4, 6, 0)
    assert D.shape == (6, 9) and D.dtype == torch.float64 and bool(((D == -1).sum(1) == 4).all())
    assert bool(((D == 1) | (D == -1)).all()) and len({tuple(r) for r in D.tolist()}) > 1  # random positions
    assert torch.equal(D, models.flip_signs(9, 4, 6, 0))
    assert bool((models.flip_signs(3, 0, 2, 1) == 1).all()) and bool((models.flip_signs(3, 3, 2, 1) == -1).all())
    with pytest.raises(ValueError, match="^generator:"):
        models.flip_signs(9, 4, 6, None)
    with pytest.raises(ValueError, match="^flipped:"):
        models.flip_signs(9, 10, 6, 0)


@pytest.mark.parametrize("kwargs,name", [(dict(activation="relu"), "activation")])
def test_bad_student_input_names_the_argument(kwargs, name):
    data, W1, w2, _ = _student(0, "linear")
    with pytest.raises(ValueError, match=f"^{name}:"):
        models.student_loss(W1, w2, data.X, data.y, **kwargs)
    with pytest.raises(ValueError, match="^n_inputs:"):
        models.teacher_data(n_inputs=0)


def test_relu_kinks_refuses_a_reversed_range_and_negative_thresholds():
    a, w, b = torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), -torch.tensor([-0.5, 0.0, 0.5])
    assert models.relu_kinks(a, w, b, x_range=(-1.0, 1.0))[0].numel() == 3
    with pytest.raises(ValueError, match="^x_range:"):
        models.relu_kinks(a, w, b, x_range=(1.0, -1.0))  # used to return no kinks at all
    with pytest.raises(ValueError, match="^min_slope:"):
        models.relu_kinks(a, w, b, x_range=(-1.0, 1.0), min_slope=-1.0)


def test_relu_functions_promote_mixed_dtypes_and_name_bad_weights():
    x = torch.linspace(-1, 1, 6, dtype=torch.float64)
    a, w, b = torch.ones(4), torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.int64)  # float32/int64
    out = models.relu_gradients(x, x**2, a, w, b)
    assert all(g.dtype == torch.float64 and bool(torch.isfinite(g).all()) for g in out)
    with pytest.raises(ValueError, match="^w:"):
        models.relu_network(x, a, torch.ones(3), b)  # used to be a RuntimeError from deep inside torch
    with pytest.raises(ValueError, match="^a:"):
        models.relu_loss(x, x, torch.full((4,), math.nan), w, b)


def test_effective_mode_strengths_promotes_float32_weights():
    g = torch.Generator().manual_seed(0)
    W1, W2, A = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 2), (2, 3), (2, 2)))
    mixed = models.effective_mode_strengths(W1.float(), W2, A)  # used to raise "expected m1 and m2 ... same dtype"
    assert torch.allclose(mixed, models.effective_mode_strengths(W1.float().double(), W2, A), rtol=1e-12)
    with pytest.raises(ValueError, match="^W1:"):
        models.effective_mode_strengths(W1, W2.T, A)


def test_train_relu_1d_uses_its_blowup():
    x = torch.linspace(-1, 1, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="^blowup:"):
        models.train_relu_1d(x, x**2, width=4, init_scale=0.5, lr=0.05, steps=4, blowup=-1.0)  # used to be ignored
    run = models.train_relu_1d(x, x**2, width=4, init_scale=0.5, lr=50.0, steps=50, record_every=10, blowup=2.0)
    assert bool(run.diverged.all())


def test_per_run_values_refuses_bools():
    with pytest.raises(ValueError, match="^lr:"):
        models.per_run_values(True, name="lr", like=torch.zeros(2))


def test_step_functions_check_types_and_promote_mixed_dtypes():
    g = torch.Generator().manual_seed(0)
    u, v, X, y = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((5,), (5,), (6, 5), (6,)))
    ref = models.diagonal_net_step(u, v, X, y, lr=0.01)
    mixed = models.diagonal_net_step(u, v, X.float(), y, lr=0.01)  # used to raise a dtype RuntimeError
    assert all(torch.allclose(a, b, rtol=1e-6) for a, b in zip(ref, mixed))
    with pytest.raises(ValueError, match="^lr:"):
        models.diagonal_net_step(u, v, X, y, lr=True)  # a bool used to be taken as lr = 1
    with pytest.raises(ValueError, match="^X:"):
        models.diagonal_net_step(u, v, "X", y, lr=0.01)


# --- the book-wide fuzz test's baseline call of the batched result's method (tests/test_fuzz.py)

FUZZ_SPECS = {
    "models.LinearNetRun.single": Spec(lambda: dict(run=1), instance=lambda: models.train_linear_net(
        torch.eye(2, dtype=torch.float64), width=2, init_scale=0.1, lr=[0.05, 0.1], steps=3)),
}


# --- digits classification -----------------------------------------------------------------------


def test_digits_split_is_a_reproducible_disjoint_split_of_all_samples():
    a = models.digits_split(test_fraction=0.25, generator=3, device="cpu")
    b = models.digits_split(test_fraction=0.25, generator=3, device="cpu")
    c = models.digits_split(test_fraction=0.25, generator=4, device="cpu")
    assert a.X_train.shape == (1348, 64) and a.X_test.shape == (449, 64)
    assert a.X_train.dtype == torch.float32 and a.y_train.dtype == torch.long
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)
    assert float(a.X_train.min()) == 0.0 and float(a.X_train.max()) == 1.0
    rows = {tuple(r) for r in torch.cat([a.X_train, a.X_test]).tolist()}
    assert len(rows) > 1700  # (the data hold a few duplicate images)
    assert torch.bincount(torch.cat([a.y_train, a.y_test])).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174,
                                                                          180]


@pytest.mark.parametrize("kwargs, name", [(dict(test_fraction=0.0), "test_fraction"),
                                          (dict(test_fraction=1.0), "test_fraction"),
                                          (dict(test_fraction=1e-5), "test_fraction"),
                                          (dict(dtype=torch.long), "dtype")])
def test_bad_digits_split_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        models.digits_split(**kwargs)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_classifier_logits_and_loss_match_the_equivalent_torch_network(activation):
    clf = models.mlp_classifier((5, 7, 3), activation=activation)
    params = clf.init(2, dtype=torch.float64, device="cpu")
    X = torch.randn(9, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    act = torch.nn.ReLU if activation == "relu" else torch.nn.Tanh
    net = torch.nn.Sequential(torch.nn.Linear(5, 7, dtype=torch.float64), act(),
                              torch.nn.Linear(7, 3, dtype=torch.float64))
    torch.nn.utils.vector_to_parameters(params, net.parameters())
    assert torch.allclose(clf.logits(params, X), net(X).detach(), atol=1e-14)
    reference = torch.nn.functional.cross_entropy(net(X), y)
    reference.backward()
    grad_nn = torch.nn.utils.parameters_to_vector(p.grad for p in net.parameters())
    assert float(clf.loss(params, X, y)) == pytest.approx(float(reference.detach()), rel=1e-12)
    assert torch.allclose(torch.func.grad(clf.loss)(params, X, y), grad_nn, atol=1e-13)
    assert clf.n_params == 5 * 7 + 7 + 7 * 3 + 3
    assert clf.accuracy(params, X, y) == float((net(X).argmax(-1) == y).double().mean())


def test_classifier_init_is_he_scaled_for_relu_with_zero_biases():
    clf = models.mlp_classifier((400, 300, 2))
    W1, b1, W2, b2 = torch.split(clf.init(0, device="cpu"), [400 * 300, 300, 600, 2])
    assert float(W1.var()) == pytest.approx(2 / 400, rel=0.05)
    assert not b1.any() and not b2.any()
    assert clf.init(0, device="cpu").dtype == torch.float32


@pytest.mark.parametrize("kwargs, name", [(dict(sizes=(64,)), "sizes"), (dict(sizes=(64, 1)), "sizes"),
                                          (dict(sizes=(64, 0, 10)), "sizes"), (dict(activation="gelu"), "activation")])
def test_bad_classifier_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        models.mlp_classifier(**kwargs)
    with pytest.raises(ValueError, match="params"):
        models.mlp_classifier((3, 2)).logits(torch.zeros(7), torch.zeros(1, 3))


def test_mlp_activation_is_the_nonlinearity_the_classifier_applies():
    X = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    hidden = models.mlp_classifier((3, 4, 2), activation="elu")
    p2 = hidden.init(1, dtype=torch.float64)
    W1, b1, W2, b2 = torch.split(p2, [12, 4, 8, 2])
    act = models.mlp_activation("elu")
    expected = act(X @ W1.view(4, 3).T + b1) @ W2.view(2, 4).T + b2
    torch.testing.assert_close(hidden.logits(p2, X), expected, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="name"):
        models.mlp_activation("gelu")


# --- layered bias-free ReLU network (a list of weight matrices; used by Drop-Muon) ----------------


def test_layered_relu_net_matches_torch_sequential_and_is_lecun_scaled():
    W = models.layered_relu_init((400, 300, 200, 3), generator=1, dtype=torch.float64, device="cpu")
    assert [tuple(w.shape) for w in W] == [(300, 400), (200, 300), (3, 200)]
    assert float(W[0].var()) == pytest.approx(1 / 400, rel=0.05) and float(W[1].var()) == pytest.approx(1 / 300,
                                                                                                        rel=0.05)
    net = torch.nn.Sequential(torch.nn.Linear(400, 300, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(300, 200, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(200, 3, bias=False)).double()
    for layer, w in zip(net[::2], W):
        layer.weight.data.copy_(w)
    X = torch.randn(7, 400, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(models.layered_relu_forward(W, X), net(X).detach(), atol=1e-13)
    again = models.layered_relu_init((400, 300, 200, 3), generator=1, dtype=torch.float64, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(W, again))
    assert models.layered_relu_init((4, 3), generator=0, device="cpu")[0].dtype == torch.float32


def test_layered_relu_forward_differentiates_only_from_the_start_layer():
    W = [w.requires_grad_(True) for w in models.layered_relu_init((5, 6, 6, 2), generator=0, dtype=torch.float64,
                                                                  device="cpu")]
    X = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = models.layered_relu_forward(W, X, start=1)
    full = models.layered_relu_forward(W, X)
    grads = torch.autograd.grad(out.sum(), W[1:])
    assert torch.equal(out, full)
    assert all(torch.equal(g, h) for g, h in zip(grads, torch.autograd.grad(full.sum(), W[1:])))
    with pytest.raises(RuntimeError):  # layer 0 ran under no_grad: it is not in the graph
        torch.autograd.grad(out.sum(), W[0])


@pytest.mark.parametrize("call, name", [
    (lambda: models.layered_relu_init((5,)), "widths"),
    (lambda: models.layered_relu_init((5, 0, 2)), "widths"),
    (lambda: models.layered_relu_init((5, 2), dtype=torch.long), "dtype"),
    (lambda: models.layered_relu_forward([torch.zeros(3, 5), torch.zeros(2, 4)], torch.zeros(1, 5)), "weights"),
    (lambda: models.layered_relu_forward([torch.zeros(3, 5)], torch.zeros(1, 4)), "X"),
    (lambda: models.layered_relu_forward([torch.zeros(3, 5)], torch.zeros(1, 5), start=1), "start")])
def test_bad_layered_relu_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        call()


FUZZ_SPECS.update({
    "models.layered_relu_init": Spec(lambda: dict(widths=(4, 3, 2), generator=0, dtype=torch.float64, device="cpu"),
                                     skip="widths dtype device"),  # the net's own widths; dtype/device passed to torch
    "models.layered_relu_forward": Spec(lambda: dict(
        weights=models.layered_relu_init((4, 3, 2), generator=0, dtype=torch.float64, device="cpu"),
        X=torch.ones(2, 4, dtype=torch.float64), start=1)),
})
FUZZ_KNOWN_FAILURES = {
    "models.layered_relu_forward": {("X", "nan-tensor"): "the forward of every training step and of the recorded "
                                                         "loss, with no per-step NaN check: NaN in, NaN out"},
}
