"""Benchmark: the checkerboard sign network (129 parameters, 0-1 loss) trained by PolyStep, OpenAI-ES and CMA-ES.

All three start from the same 0.5 N(0, I) draw and spend 258 forward passes per generation: PolyStep
(lessons_lib.polystep, one particle, r = 2, eps = 0.02), OpenAI-ES (antithetic, z-scored, sigma = 0.5,
lr = 0.2) and CMA-ES from the ``cma`` package (popsize 258, sigma0 = 0.5). The number reported is the
best training accuracy of any candidate evaluated, as in the chapter. Not wired into ``make bench``: run it
by hand (about 10 s per seed for PolyStep and OpenAI-ES on one loaded core; CMA-ES's covariance update in 129
dimensions adds a few seconds more).

    python benchmarks/polystep_signnet.py               # seeds 0-2, 200 generations
    python benchmarks/polystep_signnet.py --quick       # seed 0, 20 generations (a smoke run)
"""

from __future__ import annotations

import argparse
import time

import cma
import numpy as np
import torch

from lessons_lib import polystep as ps


def cma_es(X: torch.Tensor, y: torch.Tensor, *, generations: int, seed: int) -> float:
    """Best training accuracy of CMA-ES on the sign network's 0-1 loss, from the same start as train_sign_net."""
    size = ps.sign_net_size(32)
    x0 = 0.5 * torch.randn(size, generator=torch.Generator(device="cpu").manual_seed(seed), dtype=X.dtype)
    es = cma.CMAEvolutionStrategy(x0.double().numpy(), 0.5, {"popsize": 2 * size, "seed": seed + 1,
                                                               "verbose": -9})
    best = 1.0
    for _ in range(generations):
        cand = es.ask()
        P = torch.tensor(np.array(cand), dtype=X.dtype)
        loss = (ps.sign_net_predict(P, X) != y).to(X.dtype).mean(-1)
        best = min(best, float(loss.min()))
        es.tell(cand, loss.double().tolist())
    return 1 - best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="seed 0, 20 generations")
    args = parser.parse_args()
    seeds, generations = ((0,), 20) if args.quick else ((0, 1, 2), 200)
    torch.set_num_threads(1)
    print(f"{'seed':>4} {'PolyStep':>9} {'OpenAI-ES':>9} {'CMA-ES':>8} {'seconds':>8}")
    for seed in seeds:
        start = time.perf_counter()
        X, y = ps.checkerboard(400, generator=seed)
        # train_sign_net draws its start from a CPU generator seeded with `seed`, as cma_es does
        a = ps.train_sign_net(X, y, method="polystep", generations=generations, generator=seed).best_accuracy
        b = ps.train_sign_net(X, y, method="openai_es", generations=generations, generator=seed).best_accuracy
        c = cma_es(X, y, generations=generations, seed=seed)
        print(f"{seed:>4} {a:>9.3f} {b:>9.3f} {c:>8.3f} {time.perf_counter() - start:>8.1f}")


if __name__ == "__main__":
    main()
