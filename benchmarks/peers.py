"""Peers and scaling for ``bench.py``: our curvature tools and CBO against what people would use instead.

* Curvature: :func:`lessons_lib.curvature.sharpness` (Lanczos on Hessian-vector products) and
  :func:`lessons_lib.curvature.hessian_trace` (Hutchinson, 100 probes) against the dense route,
  ``torch.autograd.functional.hessian`` followed by ``torch.linalg.eigvalsh``, on a one-hidden-layer
  tanh network whose width sets the parameter count ``n``. Accuracy is relative to the dense result.
* CBO: ``benchmarks/cbo_vs_cbx.py`` (written with the CBO chapter) times ``lessons_lib.cbo`` against
  cbx on the same Rastrigin problem; here we only call its ``run``.
* Scaling: time against problem size on log-log axes, the slope fitted over the larger half of the
  sizes, and a PNG next to results.md.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, repeats: int) -> tuple[float, object]:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    out = fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x over the larger half of the points (at least 2)."""
    pts = sorted((float(a), float(b)) for a, b in zip(x, y) if a and b and a > 0 and b > 0)
    if len(pts) > 3:
        pts = pts[(len(pts) - 1) // 2:]  # the asymptotic regime: drop the smallest sizes
    if len(pts) < 2:
        return float("nan")
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


# -- curvature against a dense Hessian ---------------------------------------------------------------
def mlp_loss(hidden: int, *, d_in: int = 8, n_data: int = 64, seed: int = 0, device=None,
             dtype=torch.float64):
    """A tanh network ``x -> w2 . tanh(W1 x + b1) + b2`` with MSE loss on fixed random data.

    Returns ``(loss_fn, params)`` with ``params`` flat of shape ``(hidden * (d_in + 2) + 1,)``.
    """
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n_data, d_in, generator=g, dtype=dtype)
    y = torch.sin(X @ torch.randn(d_in, generator=g, dtype=dtype))
    n = hidden * (d_in + 2) + 1
    params = 0.7 * torch.randn(n, generator=g, dtype=dtype)
    X, y, params = X.to(device), y.to(device), params.to(device)
    h, d = hidden, d_in

    def loss_fn(p: torch.Tensor) -> torch.Tensor:
        W1 = p[: h * d].reshape(h, d)
        b1 = p[h * d: h * d + h]
        w2 = p[h * d + h: h * d + 2 * h]
        out = torch.tanh(X @ W1.T + b1) @ w2 + p[-1]
        return 0.5 * ((out - y) ** 2).mean()

    return loss_fn, params


def curvature_peer(widths, *, device, repeats: int = 3, probes: int = 100, dense_max: int = 12_000,
                   log=print) -> list[dict]:
    """Time and accuracy of sharpness + Hutchinson trace against the dense Hessian, per width."""
    from lessons_lib import curvature

    rows = []
    for hidden in widths:
        loss_fn, params = mlp_loss(hidden, device=device)
        n = params.numel()
        reps = repeats if n <= 3000 else 1
        row = {"n": n}
        # each lambda is timed at once, inside this iteration: the default arguments only say so to the linter
        row["sharp_s"], sh = _time(lambda f=loss_fn, p=params: curvature.sharpness(f, p, tol=1e-6, max_iter=100),
                                   device, reps)
        row["trace_s"], tr = _time(lambda f=loss_fn, p=params: curvature.hessian_trace(f, p, n_probes=probes,
                                                                                       generator=0), device, reps)
        row.update(lam=sh.value, lam_iters=sh.iterations, lam_converged=sh.converged, tr=tr.value, tr_err=tr.stderr)
        if n <= dense_max:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit deprecation noise inside autograd.functional
                row["hess_s"], H = _time(lambda f=loss_fn, p=params: torch.autograd.functional.hessian(f, p),
                                         device, reps)
            row["eig_s"], evals = _time(lambda H=H: torch.linalg.eigvalsh(H), device, reps)
            lam_d, tr_d = float(evals[-1]), float(torch.trace(H))
            row.update(lam_dense=lam_d, tr_dense=tr_d,
                       lam_rel=abs(sh.value - lam_d) / max(abs(lam_d), 1e-300),
                       tr_rel=abs(tr.value - tr_d) / max(abs(tr_d), 1e-300))
            del H, evals
        rows.append(row)
        dense = f"dense {row['hess_s'] + row['eig_s']:.3f} s" if "hess_s" in row else "dense skipped"
        log(f"  curvature n={n:6d}: sharpness {row['sharp_s']:.3f} s, trace {row['trace_s']:.3f} s, {dense}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def crossover(rows: list[dict]) -> str:
    """Smallest measured n from which sharpness + trace beat the dense route at every larger n."""
    both = [r for r in rows if "hess_s" in r]
    if not both:
        return "no dense measurement"
    faster = [r["sharp_s"] + r["trace_s"] < r["hess_s"] + r["eig_s"] for r in both]
    if all(faster):
        return f"sharpness + trace are faster at every measured size (n >= {both[0]['n']})"
    if not faster[-1]:
        return f"the dense route is still faster at the largest measured size (n = {both[-1]['n']})"
    i = len(faster) - 1
    while i > 0 and faster[i - 1]:
        i -= 1
    lo, hi = both[i - 1]["n"], both[i]["n"]
    return f"between n = {lo} and n = {hi}: sharpness + trace are faster from n = {hi} on"


def curvature_markdown(rows: list[dict], plot: Path | None, device) -> str:
    out = [
        "Loss: one-hidden-layer tanh network, MSE on 64 fixed points, float64, on "
        f"{device}. Ours: `curvature.sharpness` (Lanczos, tol 1e-6) and `curvature.hessian_trace` "
        "(Hutchinson, 100 Rademacher probes). Dense: `torch.autograd.functional.hessian` (default "
        "arguments) then `torch.linalg.eigvalsh`, which gives both numbers exactly. Times are medians of 3 "
        "calls after a warm-up (1 call above n = 3000).",
        "",
        "| n params | sharpness (s) | trace (s) | dense Hessian (s) | eigvalsh (s) | ours / dense time "
        "| λmax rel. error | Lanczos steps | trace rel. error (± 1 s.e.) |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ours = r["sharp_s"] + r["trace_s"]
        if "hess_s" in r:
            dense = r["hess_s"] + r["eig_s"]
            se = r["tr_err"] / max(abs(r["tr_dense"]), 1e-300)
            out.append(f"| {r['n']} | {r['sharp_s']:.4f} | {r['trace_s']:.4f} | {r['hess_s']:.4f} | {r['eig_s']:.4f} "
                       f"| {ours / dense:.2f} | {r['lam_rel']:.1e} | {r['lam_iters']} "
                       f"| {r['tr_rel']:.1e} (± {se:.1e}) |")
        else:
            out.append(f"| {r['n']} | {r['sharp_s']:.4f} | {r['trace_s']:.4f} | skipped | skipped | – | – "
                       f"| {r['lam_iters']} | – |")
    out += ["", f"**Crossover:** {crossover(rows)}."]
    return "\n".join(out)


def curvature_scaling(rows: list[dict], plot: Path | None) -> tuple[str, dict]:
    n = [r["n"] for r in rows]
    series = {"sharpness (Lanczos)": [r["sharp_s"] for r in rows],
              "trace (Hutchinson)": [r["trace_s"] for r in rows]}
    dense = [r for r in rows if "hess_s" in r]
    if dense:
        series["dense Hessian"] = [r["hess_s"] for r in dense]
        series["eigvalsh"] = [r["eig_s"] for r in dense]
    slopes = {}
    for name, ys in series.items():
        xs = n if len(ys) == len(n) else [r["n"] for r in dense]
        slopes[name] = (xs, ys, loglog_slope(xs, ys))
    if plot is not None:
        _plot(plot, {k: (v[0], v[1]) for k, v in slopes.items()}, xlabel="parameters n",
              title="curvature tools: time against parameter count")
    text = ["| method | log-log slope of time vs n |", "|:--|--:|"]
    text += [f"| {name} | {s:.2f} |" for name, (_, _, s) in slopes.items()]
    return "\n".join(text), {k: v[2] for k, v in slopes.items()}


# -- CBO ------------------------------------------------------------------------------------------
def load_cbo_vs_cbx():
    """The CBO chapter's peer script as a module, or None when it is not there yet."""
    path = ROOT / "benchmarks" / "cbo_vs_cbx.py"
    if not path.is_file():
        return None
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location("cbo_vs_cbx", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cbo_peer(*, tiny: bool, log=print) -> str:
    try:
        mod = load_cbo_vs_cbx()
    except Exception as exc:  # noqa: BLE001  (a half-written peer script must not stop the bench)
        return f"`benchmarks/cbo_vs_cbx.py` failed to import: `{type(exc).__name__}: {exc}`."
    if mod is None:
        return "Not measured: `benchmarks/cbo_vs_cbx.py` (written with the CBO chapter) is not there yet."
    kwargs = dict(runs=4, steps=300) if tiny else {}
    t0 = time.perf_counter()
    try:
        r = mod.run(**kwargs)
    except Exception as exc:  # noqa: BLE001
        return f"`cbo_vs_cbx.run({kwargs})` failed: `{type(exc).__name__}: {exc}`."
    log(f"  cbo_vs_cbx.run: {time.perf_counter() - t0:.1f} s")

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    lines = [
        f"`benchmarks/cbo_vs_cbx.run({', '.join(f'{k}={v}' for k, v in kwargs.items())})`: Rastrigin d = {r.get('d')}, "
        f"N = {r.get('N')}, {r.get('runs')} runs, {r.get('steps')} steps"
        + (f", torch threads {r['threads']}" if "threads" in r else "") + ".",
        "",
        "| implementation | time (s) | success rate |",
        "|:--|--:|--:|",
        f"| lessons_lib.cbo | {fmt(r.get('ours_s'), '.3f')} | {fmt(r.get('ours_success'), '.0%')} |",
        f"| cbx {r.get('cbx_version') or ''} | {fmt(r.get('cbx_s'), '.3f')} | {fmt(r.get('cbx_success'), '.0%')} |",
        "",
    ]
    if r.get("cbx_s") is None:
        lines.append("**cbx is not installed** (`pip install cbx==1.0.4`), so the ratio is not measured.")
    else:
        ratio = r["ratio"]
        equal = r.get("ours_success") is not None and r["ours_success"] >= r["cbx_success"] - 0.1
        verdict = "meets" if ratio >= 1.5 and equal else "misses"
        lines.append(f"**Speed ratio cbx / ours: {ratio:.2f}×** (goal ≥ 1.5× at equal success: {verdict}).")
    return "\n".join(lines)


def cbo_scaling(*, tiny: bool, device, plot: Path | None, log=print) -> tuple[str, dict]:
    """Time of ``cbo.cbo_minimize`` against N·d (steps fixed) and against steps (N, d fixed)."""
    try:
        from lessons_lib import cbo
    except ImportError:
        return "Not measured: `lessons_lib.cbo` does not exist yet.", {}
    try:
        from lessons_lib.landscapes import rastrigin
    except ImportError:
        def rastrigin(x):
            return 10 * x.shape[-1] + (x * x - 10 * torch.cos(2 * math.pi * x)).sum(-1)

    runs = 4 if tiny else 20
    base_steps = 100 if tiny else 500
    sizes = [(10, 2), (20, 5), (40, 10)] if tiny else [(10, 2), (20, 5), (40, 10), (80, 20), (160, 40), (320, 40)]
    step_grid = [50, 100, 200] if tiny else [250, 500, 1000, 2000, 4000]

    def once(N, d, steps):
        X0 = cbo.init_particles(runs, N, d, generator=0, device=device)

        def go():
            return cbo.cbo_minimize(rastrigin, X0, alpha=30.0, lam=1.0, sigma=1.0, dt=0.01, steps=steps,
                                    noise_type="anisotropic", generator=0, record_every=steps)

        return _time(go, device, 1 if tiny else 3)[0]

    try:
        by_size = [(N * d, once(N, d, base_steps)) for N, d in sizes]
        by_steps = [(s, once(40, 10, s)) for s in step_grid]
    except Exception as exc:  # noqa: BLE001  (the CBO module is being written alongside)
        return f"`lessons_lib.cbo.cbo_minimize` failed: `{type(exc).__name__}: {exc}`.", {}
    log("  cbo scaling: " + ", ".join(f"N·d={x}: {t:.3f} s" for x, t in by_size))
    s_size = loglog_slope(*zip(*by_size))
    s_steps = loglog_slope(*zip(*by_steps))
    if plot is not None:
        _plot(plot, {f"{base_steps} steps, N·d varies": tuple(zip(*by_size))}, xlabel="N·d (steps fixed)",
              title="CBO: time against problem size", second=("steps (N=40, d=10)", tuple(zip(*by_steps))))
    text = [
        f"`cbo.cbo_minimize` on Rastrigin, {runs} runs batched, anisotropic noise, on {device}; "
        "median of 3 calls after a warm-up.",
        "",
        "| N | d | N·d | steps | time (s) |", "|--:|--:|--:|--:|--:|",
    ]
    text += [f"| {N} | {d} | {N * d} | {base_steps} | {t:.4f} |" for (N, d), (_, t) in zip(sizes, by_size)]
    text += [f"| 40 | 10 | 400 | {s} | {t:.4f} |" for s, t in by_steps]
    text += ["", f"Log-log slope: time vs N·d **{s_size:.2f}**, time vs steps **{s_steps:.2f}** "
             "(1 = linear; below 1 = fixed per-step overhead still dominates)."]
    return "\n".join(text), {"N·d": s_size, "steps": s_steps}


def _plot(path: Path, series: dict, *, xlabel: str, title: str, second=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 2 if second else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 3.8), squeeze=False)
    ax = axes[0, 0]
    for name, (x, y) in series.items():
        ax.loglog(x, y, "o-", label=f"{name} (slope {loglog_slope(x, y):.2f})")
    ax.set(xlabel=xlabel, ylabel="seconds", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if second:
        name, (x, y) = second
        ax2 = axes[0, 1]
        ax2.loglog(x, y, "o-", color="C2", label=f"slope {loglog_slope(x, y):.2f}")
        ax2.set(xlabel=name, ylabel="seconds", title="CBO: time against steps")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
