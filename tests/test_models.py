"""The shared small models of lessons_lib.models: losses against autograd and torch.nn, trainers, inputs."""

import math

import pytest
import torch

from lessons_lib import models

# --- diagonal linear network

# --- two-layer linear network

# --- one-dimensional ReLU network

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
