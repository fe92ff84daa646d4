"""Baseline calls for the bad-input fuzz test (tests/test_fuzz.py).

Every public callable of lessons_lib needs an entry in SPECS (a cheap valid call: a few steps, tiny tensors) or in
OPT_OUT (with the reason it takes nothing worth probing). The kind of each argument is inferred from its baseline
value (float: a real number, int: a count, float tensor, str: a choice, list of numbers, callable, generator, bool
flag, other object); ``positive``/``nonneg`` name the numbers that must be > 0 / >= 0, ``kinds`` overrides the
inference and ``skip`` names arguments that are not probed (each with its reason in a comment).

KNOWN_FAILURES lists probes that still fail, callable -> {(argument, family): reason}; the test fails when one of
them passes, so the list only shrinks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import matplotlib.pyplot as plt
import torch

from lessons_lib import (
    cbo,
    curl,
    explore,
    landscapes,
    models,
    run,
    saddles,
    schedules,
    stability,
    wsd,
)


@dataclasses.dataclass
class Spec:
    call: Callable[[], dict[str, Any]]
    positive: str = ""
    nonneg: str = ""
    kinds: dict[str, str] = dataclasses.field(default_factory=dict)
    skip: str = ""
    instance: Callable[[], Any] | None = None
    nan_fields: str = ""  # record fields that hold NaN by design


def t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def randn(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def spd() -> torch.Tensor:
    return t([2.0, 0.5], [0.5, 1.0])


def bowl(x):
    return (x ** 2).sum(-1)


def bowl1(x):
    return (x ** 2).sum()


def mlp():
    return models.mlp_problem(n=8, d=3, width=4, depth=2, generator=0)


def clf():
    return models.mlp_classifier((3, 4, 2))


def clf_data() -> dict:
    return dict(params=clf().init(0, dtype=torch.float64, device="cpu"), X=randn(5, 3),
                y=torch.tensor([0, 1, 0, 1, 1]))


def valley():
    return landscapes.river_valley(mu=0.01, a=10.0)


def task():
    return wsd.bigram_task(vocab=8, branching=2, generator=0)


def sched():
    return schedules.constant_schedule(0.1)


def student():
    return dict(W1=randn(3, 2, 4, seed=1), w2=randn(3, 2, seed=2), X=randn(3, 10, 4, seed=3), y=randn(3, 10, seed=4))


def diag():
    return dict(u=randn(5, seed=1) + 1, v=randn(5, seed=2) + 1, X=randn(6, 5, seed=3))


def relu():
    return dict(a=randn(4, seed=1), w=randn(4, seed=2) + 2, b=randn(4, seed=3))


def xy():
    return dict(x=torch.linspace(-1, 1, 8, dtype=torch.float64), y=torch.linspace(-1, 1, 8, dtype=torch.float64) ** 2)


def _draw(lr=0.1):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, lr])
    return fig


def explorer():
    return explore.explore(_draw, lr=explore.linear(0.1, 1.0, 3), max_frames=4)


def computed_explorer():
    return explore.explore(lambda data, lr: _draw(data), compute=lambda lr: [2 * v for v in lr], vectorize="lr",
                           lr=explore.linear(0.1, 1.0, 3), max_frames=4)


def cbo_result():
    return cbo.cbo_minimize(bowl, cbo.init_particles(2, 5, 2, generator=0), alpha=10.0, sigma=0.5, dt=0.1, steps=3,
                            generator=0)


def check_case():
    return dict(fn=lambda a, x0, lr, steps: x0 * (1 - lr * a) ** torch.arange(steps + 1))


SPECS: dict[str, Spec] = {
    # backend
    "backend.as_generator": Spec(lambda: dict(seed_or_generator=0, device="cpu"), kinds=dict(
        seed_or_generator="generator", device="choice")),
    "backend.as_tensor": Spec(lambda: dict(x=[1.0, 2.0], name="x"), skip="name"),  # name is the caller's label
    "backend.as_tensors": Spec(lambda: dict(u=t(1.0, 2.0), v=[1.0, 2.0])),
    "backend.check_flag": Spec(lambda: dict(value=True, name="v"), skip="name"),
    "backend.check_float_tensor": Spec(lambda: dict(x=t(1.0, 2.0), name="x"), skip="name"),
    "backend.check_real": Spec(lambda: dict(value=0.5, name="v"), skip="name"),
    "backend.check_positive": Spec(lambda: dict(value=0.5, name="v", allow_zero=False), positive="value",
                                   skip="name allow_zero"),
    "backend.check_count": Spec(lambda: dict(value=3, name="v", minimum=1), skip="name minimum"),
    "backend.check_choice": Spec(lambda: dict(value="a", choices=("a", "b"), name="v"), skip="name choices"),
    "backend.check_callable": Spec(lambda: dict(value=bowl, name="v"), skip="name"),
    # cbo
    "cbo.check_noise_type": Spec(lambda: dict(noise_type="anisotropic")),
    "cbo.consensus_weights": Spec(lambda: dict(fX=randn(2, 5), alpha=10.0), nonneg="alpha"),
    "cbo.consensus_point": Spec(lambda: dict(X=randn(2, 5, 3), fX=randn(2, 5), alpha=10.0), nonneg="alpha"),
    "cbo.cbo_step": Spec(lambda: dict(X=randn(2, 5, 3), f=bowl, alpha=10.0, lam=1.0, sigma=0.5, dt=0.1,
                                      generator=0), positive="dt", nonneg="alpha lam sigma"),
    "cbo.alpha_schedule": Spec(lambda: dict(alpha=1.0, steps=3, growth=1.5, alpha_max=100.0),
                               positive="growth alpha_max", nonneg="alpha"),
    "cbo.cbo_minimize": Spec(lambda: dict(f=bowl, X0=randn(2, 5, 2), alpha=10.0, sigma=0.5, dt=0.1, steps=3,
                                          generator=0), positive="dt blowup", nonneg="alpha lam sigma"),
    "cbo.init_particles": Spec(lambda: dict(runs=2, n=3, d=2, low=-3.0, high=3.0, generator=0)),
    "cbo.prox_quadratic": Spec(lambda: dict(x=t(1.0, 2.0), tau=0.5, a=2.0), nonneg="tau"),
    "cbo.hopping_tau": Spec(lambda: dict(alpha=10.0, sigma=0.5), positive="sigma", nonneg="alpha"),
    "cbo.consensus_hopping": Spec(lambda: dict(f=bowl, x0=t(1.0, 2.0), alpha=10.0, sigma=0.5, n_samples=8, steps=3,
                                               generator=0), positive="sigma", nonneg="alpha"),
    "cbo.log_growth": Spec(lambda: dict(sigma=1.0, dt=0.01, d=3, noise_type="isotropic", lam=1.0, n_samples=100,
                                        generator=0), positive="dt", nonneg="sigma lam"),
    "cbo.median_log_offset": Spec(lambda: dict(particles=randn(2, 1, 4, 3), consensus=randn(2, 1, 3),
                                               noise_type="anisotropic")),
    "cbo.spread": Spec(lambda: dict(X=randn(2, 5, 3))),
    "cbo.CBOResult.error": Spec(lambda: dict(x_star=0.0), instance=cbo_result),
    "cbo.CBOResult.success": Spec(lambda: dict(x_star=0.0, tol=0.25), instance=cbo_result, positive="tol"),
    "cbo.CBOResult.success_rate": Spec(lambda: dict(x_star=0.0, tol=0.25), instance=cbo_result, positive="tol"),
    # check (the learner's answer or function gets a verdict, never an error: tests/test_check.py covers it)
    "check.cbo.stable_consensus_point": Spec(lambda: dict(fn=lambda X, fX, alpha: X[0]), skip="fn"),
    "check.cbo.one_cbo_step": Spec(lambda: dict(fn=lambda X, fX, alpha, lam, sigma, dt, xi, noise_type: X), skip="fn"),
    "check.core.not_attempted": Spec(lambda: dict(value=1.0), skip="value"),
    "check.core.compare": Spec(lambda: dict(value=1.0, expected=1.0, rtol=1e-6, close_rtol=0.05),
                               positive="rtol close_rtol", skip="value close_note nonfinite"),  # free text
    "check.core.check_function": Spec(lambda: dict(fn=bowl1, reference=bowl1, cases=[(t(1.0, 2.0),)], rtol=1e-6),
                                      positive="rtol close_rtol", skip="fn close_note nonfinite praise"),
    "check.curl.curl_lambda_min": Spec(lambda: dict(answer=0.1, W1=randn(2, 3), w2=randn(2), D1=t(1.0, -1.0, 1.0),
                                                    D2=t(1.0, 1.0)),
                                       skip="answer"),
    "check.curl.curl_stability_matrix": Spec(lambda: dict(fn=lambda W1, w2, D1, D2: W1.T @ W1), skip="fn"),
    "check.drift.principal_coefficient": Spec(lambda: dict(answer=0.1, lr=0.1, lam=2.0), nonneg="lr",
                                              skip="answer"),
    "check.drift.principal_field": Spec(lambda: dict(fn=bowl1), skip="fn"),
    "check.quadratic.critical_lr": Spec(lambda: dict(answer=1.0, a=2.0), positive="a", skip="answer"),
    "check.quadratic.gd_iterates": Spec(lambda: check_case(), skip="fn"),
    "check.quadratic.hvp": Spec(lambda: dict(fn=lambda loss_fn, x, v: v), skip="fn"),
    "check.quadratic.power_sharpness": Spec(lambda: dict(fn=lambda loss_fn, x, v0, iters: 1.0), skip="fn"),
    "check.saddles.drop_step": Spec(lambda: dict(answer=10, spectrum=t(3.0, 1.0), mode=1, init_scale=1e-3, lr=0.1),
                                    positive="init_scale", nonneg="lr", skip="answer"),
    "check.saddles.mode_strengths": Spec(lambda: dict(fn=lambda s, z0, lr, steps: s), skip="fn"),
    "check.stability.largest_stable_lr": Spec(lambda: dict(answer=0.5, H=spd()), skip="answer"),
    "check.stability.minibatch_mean_square_radius": Spec(
        lambda: dict(fn=lambda g, lr, batch_size: 1.0), skip="fn"),
    "check.wsd.best_decay_fraction": Spec(lambda: dict(answer=0.3, fractions=[0.1, 0.5], valley=valley(), x0=10.0,
                                                       peak=0.15, steps=20, sigma=3.0),
                                          positive="peak", nonneg="sigma", skip="answer"),
    # curl
    "curl.chain_field": Spec(lambda: dict(w=t(0.5, 0.5), a=1.0, flipped=True)),
    "curl.scalar_chain": Spec(lambda: dict(w0=t(0.5, 0.5), a=1.0, lr=0.1, steps=3), nonneg="lr blowup"),
    "curl.learning_field_jacobian": Spec(lambda: dict(field=lambda w: -w, w=t(0.5, 0.5))),
    "curl.curl_fraction": Spec(lambda: dict(J=spd())),
    "curl.stability_matrix": Spec(lambda: dict(W1=randn(2, 3), w2=randn(2), D1=t(1.0, -1.0, 1.0), D2=t(1.0, 1.0))),
    "curl.train_student_teacher": Spec(lambda: dict(n_inputs=3, n_hidden=2, lr=0.05, steps=4, seeds=2,
                                                    record_every=2, generator=0),
                                       nonneg="lr blowup init_scale"),
    "curl.sign_census": Spec(lambda: dict(configs=[dict(n_inputs=3, n_hidden=2)], steps=4, seeds=2, generator=0),
                             positive="tol", skip="configs"),
    "curl.network_field": Spec(lambda: dict(params=randn(8), X=randn(10, 3), y=randn(10), D1=t(1.0, -1.0, 1.0),
                                            D2=t(1.0, 1.0))),
    "curl.StudentTeacherRun.learned": Spec(lambda: dict(tol=1e-6), positive="tol", instance=lambda: curl.
                                           train_student_teacher(n_inputs=3, n_hidden=2, steps=4, record_every=2)),
    # curvature
    "curvature.hvp": Spec(lambda: dict(loss_fn=bowl1, params=t(1.0, 2.0), v=t(1.0, 0.0))),
    "curvature.hessian": Spec(lambda: dict(loss_fn=bowl1, params=t(1.0, 2.0))),
    "curvature.sharpness": Spec(lambda: dict(loss_fn=bowl1, params=t(1.0, 2.0), tol=1e-6, max_iter=5, generator=0),
                                positive="tol"),
    "curvature.hessian_trace": Spec(lambda: dict(loss_fn=bowl1, params=t(1.0, 2.0), n_probes=3, generator=0)),
    "curvature.gauss_newton": Spec(lambda: dict(J=randn(3, 2))),
    # descent
    "descent.check_lr": Spec(lambda: dict(lr=0.1), nonneg="lr"),
    "descent.iterate": Spec(lambda: dict(step=lambda x: x - 0.1 * 2 * x, loss_fn=bowl, x0=t(1.0, 2.0), lr=0.1,
                                         steps=3), nonneg="lr blowup"),
    "descent.adam_direction": Spec(lambda: dict(g=t(1.0, -2.0), m=t(0.0, 0.0), v=t(0.0, 0.0), t=1, eps=1e-8),
                                   positive="eps", skip="betas"),  # betas: a pair, tested by name in test_descent
    "descent.gd": Spec(lambda: dict(loss_fn=bowl1, x0=t(1.0, 2.0), lr=0.1, steps=3), nonneg="lr blowup"),
    # drift
    "drift.gradient_flow": Spec(lambda: dict(loss=bowl1, theta0=t(1.0, 2.0), times=t(0.0, 0.5, 1.0)),
                                positive="blowup rtol"),
    "drift.modified_flow_field": Spec(lambda: dict(loss=bowl1, theta=t(1.0, 2.0), lr=0.1, order=1), nonneg="lr"),
    "drift.modified_flow": Spec(lambda: dict(loss=bowl1, theta0=t(1.0, 2.0), lr=0.1, times=t(0.0, 0.5, 1.0)),
                                nonneg="lr blowup rtol"),
    "drift.principal_flow_coefficients": Spec(lambda: dict(H=spd(), lr=0.1), nonneg="lr"),
    "drift.principal_flow_quadratic": Spec(lambda: dict(H=spd(), theta0=t(1.0, 2.0), lr=0.1,
                                                        times=t(0.0, 0.5, 1.0)), nonneg="lr"),
    "drift.principal_vector_field": Spec(lambda: dict(g=t(1.0, 2.0), H=spd(), lr=0.1), positive="lr"),
    "drift.principal_flow_field": Spec(lambda: dict(loss=bowl1, theta=t(1.0, 2.0), lr=0.1), positive="lr"),
    "drift.principal_flow": Spec(lambda: dict(loss=bowl1, theta0=t(1.0, 2.0), lr=0.1, times=t(0.0, 0.5, 1.0)),
                                 positive="lr blowup rtol imag_tol"),
    "drift.drift_adjusted_lr": Spec(lambda: dict(loss=bowl1, theta=t(1.0, 2.0)), positive="scale cap", nonneg="power"),
    "drift.dal_descent": Spec(lambda: dict(loss=bowl1, theta0=t(1.0, 2.0), steps=3), positive="scale cap blowup",
                              nan_fields="lr"),  # Trajectory.lr is NaN: no single learning rate
    "drift.factorisation_loss": Spec(lambda: dict(theta=t(1.0, 2.0))),
    "drift.factorisation_gd": Spec(lambda: dict(u0=1.0, v0=0.5, lr=0.1, steps=5), nonneg="lr tol"),
    "drift.quartic_loss": Spec(lambda: dict(theta=t(1.0, 2.0), nonlinearity=1.0, a=4.0)),
    "drift.drift_errors": Spec(lambda: dict(loss=bowl1, theta0=t(1.0, 2.0), lrs=[0.1, 0.05], T=0.5, order=1),
                               positive="T"),
    # edge
    "edge.edge_of_stability": Spec(lambda: dict(problem=mlp(), lr=0.1, steps=4, sharpness_every=2, max_iter=5,
                                                generator=0), nonneg="lr tol blowup"),
    # explore
    "explore.controls.linear": Spec(lambda: dict(start=0.1, stop=1.0, num=3, value=0.55)),
    "explore.controls.log": Spec(lambda: dict(start=0.1, stop=1.0, num=3), positive="start stop"),
    "explore.controls.choice": Spec(lambda: dict(options=["a", "b"], value="a"), skip="value"),
    "explore.controls.toggle": Spec(lambda: dict(value=False)),
    "explore.controls.thin": Spec(lambda: dict(values=(1.0, 2.0, 3.0, 4.0), default=2.0, count=3),
                                      skip="default values"),  # grid values may be any option (choice)
    "explore.controls.static_grid": Spec(lambda: dict(controls={"lr": explore.linear(0.1, 1.0, 3)}, max_frames=2)),
    "explore.render.figure_png": Spec(lambda: dict(fig=_draw(), dpi=20), positive="dpi"),
    "explore.render.Renderer.png": Spec(lambda: dict(make=_draw, palette=8), instance=lambda: explore.Renderer(20),
                                        positive="palette"),
    "explore.explore": Spec(lambda: dict(draw=_draw, max_frames=4, dpi=20, lr=explore.linear(0.1, 1.0, 3)),
                            positive="dpi", skip="lr"),
    "explore.controls.Control.format": Spec(lambda: dict(value=0.5), instance=lambda: explore.linear(0.1, 1.0, 3)),
    "explore.Explorer.frame": Spec(lambda: dict(lr=0.1), instance=explorer, skip="lr"),
    "explore.Explorer.figure": Spec(lambda: dict(lr=0.1), instance=explorer, skip="lr"),
    "explore.Explorer.values": Spec(lambda: dict(lr=0.1), instance=explorer, skip="lr"),
    "explore.Explorer.data": Spec(lambda: dict(lr=0.1), instance=computed_explorer, skip="lr"),
    "explore.Explorer.is_cached": Spec(lambda: dict(values={"lr": 0.1}), instance=explorer, skip="values"),
    "explore.Explorer.uncached": Spec(lambda: dict(near={"lr": 0.1}), instance=explorer, skip="near"),
    "explore.Explorer.static_grid": Spec(lambda: dict(max_frames=2), instance=explorer),
    # landscapes
    "landscapes.river_valley": Spec(lambda: dict(mu=0.01, a=10.0, amplitude=0.0, k=1.0), positive="mu a"),
    "landscapes.rastrigin": Spec(lambda: dict(x=randn(3, 2), amplitude=10.0)),
    "landscapes.grand_canyon": Spec(lambda: dict(x=randn(3, 2))),
    "landscapes.RiverValley.bed": Spec(lambda: dict(x=t(0.5, 1.0)), instance=valley),
    "landscapes.RiverValley.river": Spec(lambda: dict(theta=randn(3, 2)), instance=valley),
    "landscapes.RiverValley.hill": Spec(lambda: dict(theta=randn(3, 2)), instance=valley),
    "landscapes.RiverValley.loss": Spec(lambda: dict(theta=randn(3, 2)), instance=valley),
    "landscapes.RiverValley.grad": Spec(lambda: dict(theta=randn(3, 2)), instance=valley),
    # measure
    "measure.first_crossing": Spec(lambda: dict(history=t([0.0, 0.0], [0.5, 0.2], [1.0, 0.9]), targets=t(1.0, 1.0),
                                                fraction=0.5)),
    "measure.steps_below": Spec(lambda: dict(loss=t(1.0, 0.5, 0.1), tol=0.2), positive="tol"),
    "measure.plateau_levels": Spec(lambda: dict(s=t(3.0, 1.0))),
    "measure.plateau_losses": Spec(lambda: dict(loss=t(1.0, 0.9, 0.8, 0.5, 0.5, 0.5, 0.1), times=[0, 3, 6])),
    "measure.count_plateaus": Spec(lambda: dict(loss=t(1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.1), lr=0.1),
                                   nonneg="lr max_rate min_duration floor"),
    "measure.loglog_slope": Spec(lambda: dict(x=t(1.0, 2.0, 4.0), y=t(1.0, 4.0, 16.0))),
    # models
    "models.rates_and_scales": Spec(lambda: dict(lr=0.1, init_scale=0.5, like=randn(2, 3)), nonneg="lr",
                                    positive="init_scale", skip="like"),
    "models.per_run_values": Spec(lambda: dict(values=0.1, name="lr", like=randn(2, 3)),
                                  skip="name like positive"),  # set by the library's own callers
    "models.diagonal_net_jacobian": Spec(diag),
    "models.weighted_l1": Spec(lambda: dict(beta=randn(5), X=randn(6, 5))),
    "models.diagonal_net_step": Spec(lambda: dict(**diag(), y=randn(6, seed=4), lr=0.01), nonneg="lr"),
    "models.train_diagonal_net": Spec(lambda: dict(X=randn(6, 5), y=randn(6, seed=4), lr=0.01, steps=4,
                                                   record_every=2, generator=0),
                                      nonneg="lr init_scale blowup"),
    "models.effective_mode_strengths": Spec(lambda: dict(W1=randn(3, 2), W2=randn(2, 3), A=randn(2, 2))),
    "models.train_linear_net": Spec(lambda: dict(A=randn(2, 2), width=3, init_scale=0.1, lr=0.05, steps=4),
                                    positive="init_scale blowup", nonneg="lr"),
    "models.check_xy": Spec(xy),
    "models.check_diagonal_net": Spec(diag),
    "models.check_relu_weights": Spec(lambda: dict(**relu(), like=None), skip="like"),  # the library's own tensor
    "models.check_student": Spec(student),
    "models.relu_network": Spec(lambda: dict(x=t(0.1, 0.5), **relu())),
    "models.relu_loss": Spec(lambda: dict(**xy(), **relu())),
    "models.relu_gradients": Spec(lambda: dict(**xy(), **relu())),
    "models.relu_kinks": Spec(lambda: dict(**relu(), x_range=(-1.0, 1.0)), nonneg="min_slope merge margin"),
    "models.ReluRun.kinks": Spec(lambda: dict(k=1, run=None), instance=lambda: models.train_relu_1d(
        **xy(), width=4, init_scale=0.5, lr=0.05, steps=4, record_every=2), kinds=dict(k="nonneg")),
    "models.train_relu_1d": Spec(lambda: dict(**xy(), width=4, init_scale=0.5, lr=0.05, steps=4, record_every=2),
                                 positive="init_scale blowup", nonneg="lr"),
    "models.MLPProblem.predict": Spec(lambda: dict(params=mlp().init(0)), instance=mlp),
    "models.MLPProblem.loss": Spec(lambda: dict(params=mlp().init(0)), instance=mlp),
    "models.MLPProblem.init": Spec(lambda: dict(generator=0), instance=mlp),
    "models.mlp_shapes": Spec(lambda: dict(sizes=[3, 4, 2]), skip="sizes"),  # the nets' own widths
    "models.mlp_activation": Spec(lambda: dict(name="tanh")),
    "models.digits_split": Spec(lambda: dict(test_fraction=0.25, generator=0), positive="test_fraction"),
    "models.mlp_classifier": Spec(lambda: dict(sizes=[3, 4, 2], activation="relu"), skip="sizes"),
    "models.MLPClassifier.logits": Spec(lambda: {k: v for k, v in clf_data().items() if k != "y"}, instance=clf),
    "models.MLPClassifier.loss": Spec(clf_data, instance=clf),
    "models.MLPClassifier.accuracy": Spec(clf_data, instance=clf),
    "models.MLPClassifier.init": Spec(lambda: dict(generator=0), instance=clf),
    "models.mlp_problem": Spec(lambda: dict(n=8, d=3, width=4, depth=2, init_scale=0.8, generator=0),
                               positive="init_scale"),
    "models.teacher_data": Spec(lambda: dict(n_inputs=3, n_samples=5, seeds=2, generator=0)),
    "models.init_student": Spec(lambda: dict(n_inputs=3, n_hidden=2, seeds=2, init_scale=2.0, generator=0),
                                positive="init_scale"),
    "models.flip_signs": Spec(lambda: dict(n=4, flipped=2, S=2, generator=0), kinds=dict(flipped="nonneg")),
    "models.student_loss": Spec(student),
    "models.student_update": Spec(lambda: dict(**student(), lr=0.05), nonneg="lr"),
    "models.student_grad": Spec(student),
    # plotting
    "plotting.color": Spec(lambda: dict(method="gd")),
    "plotting.figure": Spec(lambda: dict(ncols=2, nrows=1, width=4.0, height=2.0, title="t"),
                            positive="width height", skip="title"),
    "plotting.mark_divergence": Spec(lambda: dict(ax=plt.subplots()[1], x=[1.0, 2.0], y=[1.0, 1e9], limit=1e6),
                                     positive="limit", skip="color label"),
    "plotting.loss_grid": Spec(lambda: dict(loss=bowl, xlim=(-1.0, 1.0), ylim=(-1.0, 1.0), n=5)),
    # quadratic
    "quadratic.check_hessian": Spec(lambda: dict(H=spd()), skip="name"),
    "quadratic.quadratic_loss": Spec(lambda: dict(H=spd())),
    "quadratic.gd_quadratic": Spec(lambda: dict(H=spd(), x0=t(1.0, 2.0), lr=0.1, steps=3), nonneg="lr blowup"),
    "quadratic.gd_scalar": Spec(lambda: dict(a=2.0, x0=1.0, lr=0.1, steps=3), nonneg="lr blowup"),
    "quadratic.contraction_factor": Spec(lambda: dict(lr=0.1, a=2.0), nonneg="lr"),
    "quadratic.regime": Spec(lambda: dict(lr=0.1, a=2.0, rtol=1e-9), positive="rtol", nonneg="lr"),
    "quadratic.critical_lr": Spec(lambda: dict(H=spd())),
    "quadratic.optimal_lr": Spec(lambda: dict(H=spd())),
    "quadratic.convergence_rate": Spec(lambda: dict(H=spd(), lr=0.1), nonneg="lr"),
    "quadratic.rotated_hessian": Spec(lambda: dict(eigenvalues=[2.0, 1.0], angle=0.3)),
    "quadratic.steps_to_tolerance": Spec(lambda: dict(lr=0.1, a=2.0, tol=1e-3), positive="tol", nonneg="lr"),
    # run
    "run.learning_rates": Spec(lambda: dict(lr=0.1, steps=3), nonneg="lr"),
    "run.run": Spec(lambda: dict(step=lambda x, k, lr: x - lr * x, state0=t(1.0, 2.0), steps=3, lr=0.1),
                    positive="blowup", nonneg="lr", skip="state0"),
    "run.per_run": Spec(lambda: dict(values=0.1, like=randn(2, 3))),
    "run.Run.on_grid": Spec(lambda: dict(steps=3, record_every=1), instance=lambda: run.run(
        lambda x, k, lr: x - lr * x, t(1.0, 2.0), steps=3, lr=0.1)),
    # saddles
    "saddles.random_target": Spec(lambda: dict(s=t(3.0, 1.0), d_out=2, d_in=3, generator=0)),
    "saddles.saxe_mode_strength": Spec(lambda: dict(s=t(3.0, 1.0), t=t(0.5, 1.0), init_scale=1e-3),
                                       positive="init_scale"),
    "saddles.saxe_learning_time": Spec(lambda: dict(s=t(3.0, 1.0), init_scale=1e-3, lr=0.1), positive="init_scale",
                                       nonneg="lr"),
    "saddles.half_times": Spec(lambda: dict(run=saddles.train_diagonal_net_sparse(t(1.0, 0.5), init_scale=0.1, lr=0.05,
                                                                               steps=4), s=t(1.0, 0.5))),
    "saddles.train_diagonal_net_sparse": Spec(lambda: dict(beta_star=t(1.0, 0.5), init_scale=0.1, lr=0.05, steps=4),
                                              positive="init_scale", nonneg="lr"),
    "saddles.diagonal_learning_time": Spec(lambda: dict(beta_star=t(1.0, 0.5), init_scale=0.1, lr=0.05),
                                           positive="init_scale", nonneg="lr"),
    "saddles.best_single_unit": Spec(lambda: dict(**xy(), grid=16)),
    "saddles.best_single_unit_loss": Spec(xy),
    # schedules
    "schedules.warmup_schedule": Spec(lambda: dict(peak=0.1, warmup=3), positive="peak"),
    "schedules.decay_schedule": Spec(lambda: dict(peak=0.1, length=3, final=0.0), positive="peak",
                                     nonneg="final"),
    "schedules.join_schedules": Spec(lambda: dict(schedules=[sched(), sched()], boundaries=[3]), skip="schedules"),
    "schedules.constant_schedule": Spec(lambda: dict(peak=0.1, warmup=0), positive="peak"),
    "schedules.cosine_schedule": Spec(lambda: dict(peak=0.1, total=5, warmup=1), positive="peak", nonneg="final"),
    "schedules.wsd_schedule": Spec(lambda: dict(peak=0.1, total=10, warmup=1, decay_frac=0.2), positive="peak",
                                   nonneg="final decay_frac"),
    "schedules.wsd_branch_plan": Spec(lambda: dict(checkpoints=[10, 20], decay_frac=0.2), nonneg="decay_frac"),
    "schedules.wsd_s_plan": Spec(lambda: dict(checkpoints=[10, 20], decay_frac=0.2), nonneg="decay_frac"),
    "schedules.wsd_s_schedule": Spec(lambda: dict(peak=0.1, checkpoints=[10, 20], warmup=1, decay_frac=0.2),
                                     positive="peak", nonneg="final decay_frac"),
    "schedules.schedule_values": Spec(lambda: dict(schedule=sched(), total=5)),
    "schedules.area": Spec(lambda: dict(schedule=sched(), total=5)),
    # stability
    "stability.contraction_factors": Spec(lambda: dict(H=spd(), lr=0.1), nonneg="lr"),
    "stability.mean_square_operator": Spec(lambda: dict(g=randn(4, 3), lr=0.1, batch_size=2), nonneg="lr"),
    "stability.mean_square_radius": Spec(lambda: dict(g=randn(4, 3), lr=0.1, batch_size=2), nonneg="lr"),
    "stability.sparse_regression": Spec(lambda: dict(n=6, d=5, support=2, n_test=4, generator=0)),
    "stability.top_direction": Spec(diag),
    "stability.perturbation_growth": Spec(lambda: dict(**diag(), y=randn(6, seed=4), lr=0.01, steps=3),
                                          nonneg="lr eps"),
    "stability.SparseRegression.test_mse": Spec(lambda: dict(beta=randn(5)), instance=lambda: stability.
                                                sparse_regression(n=6, d=5, support=2, n_test=4)),
    # wsd
    "wsd.stationary_hill_loss": Spec(lambda: dict(lr=0.1, a=2.0, sigma=0.5), nonneg="lr a sigma"),
    "wsd.river_progress": Spec(lambda: dict(x0=1.0, mu=0.01, lrs=t(0.1, 0.1)), positive="mu"),
    "wsd.sgd_valley": Spec(lambda: dict(valley=valley(), start=[10.0, 0.5], schedule=sched(), steps=4, sigma=0.5,
                                        replicas=2, generator=0), positive="blowup", nonneg="sigma"),
    "wsd.bigram_task": Spec(lambda: dict(vocab=8, deterministic_frac=0.5, branching=2, generator=0),
                            nonneg="deterministic_frac"),
    "wsd.train_bigram": Spec(lambda: dict(task=task(), schedule=sched(), steps=4, batch=4, seeds=2, record_every=2,
                                          generator=0), positive="blowup"),
    "wsd.compare_wsd_s": Spec(lambda: dict(task=task(), peak=0.1, checkpoints=[4, 8], decay_frac=0.5, seeds=2,
                                           batch=4, generator=0), positive="peak", nonneg="decay_frac"),
    "wsd.expected_valley_loss": Spec(lambda: dict(valley=valley(), x0=10.0, schedule=sched(), steps=5, sigma=0.5),
                                     nonneg="sigma"),
    "wsd.check_valley": Spec(lambda: dict(valley=valley())),
    "wsd.check_task": Spec(lambda: dict(task=task())),
    "wsd.BigramTask.excess": Spec(lambda: dict(logits=randn(8, 8)), instance=task),
    # distributed (no process is started)
    "distributed.worker_env": Spec(lambda: dict(rank=0, world_size=2, port=29500), nonneg="rank",
                                   positive="world_size port", skip="addr"),
}

OPT_OUT: dict[str, str] = {
    "distributed.free_port": "takes only a host name and asks the operating system",
    "distributed.backend_for": "maps a device to a backend name; torch.device rejects a bad device itself",
    "distributed.launch": "starts processes; its bad module, world_size and timeout are tested in "
                          "tests/test_distributed.py",
    "distributed.serve": "the body of a worker process, run only under launch or torchrun (tests/test_distributed.py)",
    "backend.default_device": "takes no argument (LESSONS_DEVICE is tested in tests/test_backend.py)",
    "backend.scale": "takes no argument (LESSONS_SCALE is tested in tests/test_backend.py)",
    "backend.pick": "returns one of two arbitrary values",
    "backend.static_build": "takes no argument",
    "backend.progress": "wraps any iterable in tqdm",
    "backend.to_host": "moves the tensors of a record the library made itself",
    "plotting.use_style": "takes no argument",
    "explore.Explorer.defaults": "takes no argument",
    "explore.Explorer.static_html": "takes no argument",
    "explore.Explorer.widget": "takes no argument (needs a live kernel)",
    "explore.Explorer.grid_points": "takes no argument",
    "explore.Explorer.warm": "takes no argument",
    "explore.Explorer.clear_cache": "takes no argument",
    "explore.add_display_hook": "takes a callable; a non-callable is refused by name (tests/test_explore.py)",
    "explore.remove_display_hook": "takes a callable that was added, or anything else as a no-op",
    "explore.controls.as_control": "what explore() does with each keyword; fuzzed through explore.explore",
    "explore.controls.defaults": "reads the defaults of controls made by linear/log/choice/toggle",
    "explore.static.page": "a step of Explorer.static_html, from the grid and frames it made itself",
    "explore.static.png_size": "reads the header of a PNG that figure_png made",
    "explore.static.render_frames": "a step of Explorer.static_html, over its own grid and frame function",
    "explore.live.control_widget": "builds the ipywidget of a control made by linear/log/choice/toggle",
    "explore.live.LiveView.show": "the live view's update (needs ipywidgets), called with the widgets' own values",
    "explore.live.LiveView.values": "takes no argument",
    "explore.live.LiveView.warm_later": "schedules the warm-up on the kernel's event loop (tests/test_explore.py)",
}


def _known(reason: str, *probes: str) -> dict[tuple[str, str], str]:
    """``{(argument, family): reason}`` from ``"argument=family"`` strings."""
    return {tuple(p.split("=", 1)): reason for p in probes}


# Probes that still fail, each with the reason it is not fixed yet. The fuzz test fails when one of them passes.
KNOWN_FAILURES: dict[str, dict[tuple[str, str], str]] = {
    "backend.check_float_tensor": _known(
        "by design: the type check for torch.func and per-step code does not look for NaN",
        "x=nan-tensor",
    ),
    **dict.fromkeys((
        "cbo.cbo_step", "cbo.spread",
    ), _known(
        "evaluated every step inside cbo_minimize, where an overflowing swarm is divergence data, not bad input",
        "X=nan-tensor",
    )),
    "cbo.consensus_point": _known(
        "evaluated every step inside cbo_minimize, where an overflowing swarm is divergence data, not bad input",
        "X=nan-tensor", "fX=nan-tensor",
    ),
    "cbo.consensus_weights": _known(
        "evaluated every step inside cbo_minimize, where an overflowing swarm is divergence data, not bad input",
        "fX=nan-tensor",
    ),
    "curl.chain_field": _known(
        "field evaluated every step of scalar_chain and under torch.func: no NaN check there",
        "w=nan-tensor",
    ),
    "curl.network_field": _known(
        "a field differentiated by torch.func.jacrev: params cannot be checked for NaN there",
        "params=nan-tensor",
    ),
    "descent.adam_direction": _known(
        "per-step primitive of the Adam runs (every step, where a NaN state is divergence data): NaN in, NaN out",
        "g=nan-tensor", "m=nan-tensor", "v=nan-tensor",
    ),
    "descent.iterate": _known(
        "lr is a label here: NaN documents a varying rate (dal_descent)",
        "lr=nan",
    ),
    **dict.fromkeys((
        "drift.factorisation_loss", "drift.quartic_loss",
    ), _known(
        "a loss differentiated by torch.func (no data-dependent check possible): NaN in, NaN out",
        "theta=nan-tensor",
    )),
    "drift.modified_flow_field": _known(
        "evaluated by the ODE integrator at every step, which stops on a non-finite field: NaN in, NaN out",
        "theta=nan-tensor",
    ),
    **dict.fromkeys((
        "landscapes.RiverValley.bed", "landscapes.grand_canyon", "landscapes.rastrigin",
    ), _known(
        "point-wise landscape run on whole swarms every step and under torch.func: NaN in, NaN out",
        "x=nan-tensor",
    )),
    **dict.fromkeys((
        "landscapes.RiverValley.grad", "landscapes.RiverValley.hill", "landscapes.RiverValley.loss",
        "landscapes.RiverValley.river",
    ), _known(
        "point-wise landscape run on whole swarms every step and under torch.func: NaN in, NaN out",
        "theta=nan-tensor",
    )),
    **dict.fromkeys((
        "models.MLPProblem.loss", "models.MLPProblem.predict",
    ), _known(
        "differentiated by torch.func inside the sharpness estimate (no data-dependent check): NaN in, NaN out",
        "params=nan-tensor",
    )),
    **dict.fromkeys((
        "models.MLPClassifier.logits", "models.MLPClassifier.loss", "models.MLPClassifier.accuracy",
    ), _known(
        "differentiated by torch.func (JVPs, per-sample gradients; no data-dependent check): NaN in, NaN out",
        "params=nan-tensor", "X=nan-tensor",
    )),
    "models.diagonal_net_step": _known(
        "step function run every step by run.py: no per-step checks (cost; divergence is data); its runner validates",
        "u=nan-tensor", "v=nan-tensor", "X=nan-tensor", "y=nan-tensor",
    ),
    "models.student_update": _known(
        "step function run every step by run.py: no per-step checks (cost; divergence is data); its runner validates",
        "W1=nan-tensor", "w2=nan-tensor", "X=nan-tensor", "y=nan-tensor",
    ),
    "plotting.mark_divergence": _known(
        "NaN in y is what it marks (a diverged run)",
        "y=nan-element",
    ),
    "run.per_run": _known(
        "like only lends its shape (its values are never read), and this runs every step",
        "like=nan-tensor",
    ),
}
