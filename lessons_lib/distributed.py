"""Process helpers for real multi-process runs: launch ``python -m <module>`` workers under torch.distributed.

A chapter that runs an algorithm on several processes (one per node of a graph, say) writes its worker as the
``__main__`` of its module and calls :func:`launch` from the notebook, from pytest or from a script read on stdin.
The workers are started with :mod:`subprocess` as ``python -m <module> <payload> <outdir>``, never with
``multiprocessing``'s spawn, which re-imports the caller's ``__main__`` (a notebook kernel or ``<stdin>`` has none
that can be re-imported). Each worker gets the environment variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and ``OMP_NUM_THREADS=1``, so the same worker also runs under
``torchrun`` unchanged, on one host or across hosts::

    torchrun --nnodes 2 --nproc-per-node 2 --node-rank 0 --master-addr HOST0 --master-port 29500 \\
        -m <module> payload.pt outdir        # and --node-rank 1 on the second host

Worker side, in ``<module>``::

    if __name__ == "__main__":
        distributed.serve(work)        # work(payload, rank, world_size) -> a picklable result

:func:`serve` reads the payload (a file written with ``torch.save``), joins the process group (gloo on the CPU,
NCCL on CUDA), calls ``work``, writes ``result-<rank>.pt`` into the output folder, meets the others at a barrier
and leaves the group. :func:`launch` waits for all workers with a timeout, kills them all if one fails or time runs
out (raising with the failing worker's last lines of stderr), and returns the results in rank order.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import torch

from .backend import check_count, check_positive

_ROOT = pathlib.Path(__file__).resolve().parents[1]  # the folder holding the lessons_lib package
TIMEOUT_VAR = "LESSONS_DIST_TIMEOUT"  # launch passes its timeout to the workers' process group through this


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it), for ``MASTER_PORT``.

    The port is released before it is returned, so another program may take it before rank 0 binds it (a race
    that cannot be closed from here); :func:`launch` then fails with the workers' rendezvous error, and a second
    call picks another port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def worker_env(rank: int, world_size: int, port: int, *, addr: str = "127.0.0.1") -> dict[str, str]:
    """The environment of worker ``rank`` on one host: torchrun's variables and one thread per process.

    Args:
        rank: the worker's rank, ``0 <= rank < world_size``.
        world_size: the number of workers.
        port: the rendezvous port of rank 0 (``MASTER_PORT``).
        addr: the rendezvous address (``MASTER_ADDR``).

    Returns:
        A copy of ``os.environ`` with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
        ``MASTER_ADDR``, ``MASTER_PORT`` and ``OMP_NUM_THREADS=1`` set, and the folder holding ``lessons_lib``
        first on ``PYTHONPATH``.
    """
    world_size = check_count(world_size, name="world_size")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank: expected an int in [0, {world_size}), got {rank!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port: expected a TCP port in (0, 65536), got {port!r}")
    env = dict(os.environ)
    env.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world_size),
               MASTER_ADDR=addr, MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT)] + [p for p in [env.get("PYTHONPATH", "")] if p])
    return env


def launch(module: str, payload: Any, *, world_size: int, timeout: float = 60.0,
           python: str | None = None) -> list[Any]:
    """Run ``python -m <module> <payload file> <outdir>`` on ``world_size`` local processes; return their results.

    Args:
        module: a module whose ``__main__`` calls :func:`serve` (``"lessons_lib.dadao"``).
        payload: anything ``torch.save`` can write; every worker receives the same one.
        world_size: the number of worker processes, ``>= 1``.
        timeout: seconds for the whole run (start-up included), ``> 0``; past it every worker is killed.
        python: the interpreter (default: the running one, ``sys.executable``).

    Returns:
        The workers' results (what their ``work`` returned), in rank order.

    Raises:
        ValueError: for a bad argument.
        RuntimeError: if a worker exits with an error (its last lines of stderr are in the message).
        TimeoutError: if the workers have not all finished after ``timeout`` seconds.
    """
    if not isinstance(module, str) or not module.replace(".", "").replace("_", "").isalnum():
        raise ValueError(f"module: expected a dotted module name, got {module!r}")
    world_size = check_count(world_size, name="world_size")
    timeout = check_positive(timeout, name="timeout")
    port = free_port()  # racy (see free_port), rare on one machine
    with tempfile.TemporaryDirectory(prefix="lessons-dist-") as tmp:
        folder = pathlib.Path(tmp)
        torch.save(payload, folder / "payload.pt")
        procs, logs = [], []
        try:
            for rank in range(world_size):
                log = open(folder / f"stderr-{rank}.txt", "wb")
                logs.append(log)
                env = worker_env(rank, world_size, port)
                env[TIMEOUT_VAR] = repr(float(timeout))  # serve's collective timeout: the run's own
                procs.append(subprocess.Popen(
                    [python or sys.executable, "-m", module, str(folder / "payload.pt"), str(folder)],
                    env=env, cwd=str(_ROOT), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=log))
            deadline = time.monotonic() + timeout
            while any(p.poll() is None for p in procs):
                failed = [r for r, p in enumerate(procs) if p.returncode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"worker {failed[0]} of {module} failed:\n"
                                       + _tail(folder / f"stderr-{failed[0]}.txt"))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{module}: the {world_size} workers did not finish within {timeout:g} s")
                time.sleep(0.02)
            failed = [r for r, p in enumerate(procs) if p.returncode != 0]
            if failed:
                raise RuntimeError(f"worker {failed[0]} of {module} failed:\n"
                                   + _tail(folder / f"stderr-{failed[0]}.txt"))
            return [torch.load(folder / f"result-{rank}.pt", weights_only=False) for rank in range(world_size)]
        finally:
            for p in procs:  # only the processes started here
                if p.poll() is None:
                    p.kill()
                    p.wait()
            for log in logs:
                log.close()


def _tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no stderr)"


def backend_for(device: torch.device | str) -> str:
    """The torch.distributed backend for tensors on ``device``: ``"nccl"`` on CUDA, ``"gloo"`` on the CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def serve(work: Callable[[Any, int, int], Any], *, device: torch.device | str = "cpu",
          timeout: float | None = None, argv: list[str] | None = None) -> None:
    """The body of a worker's ``__main__``: join the group, run ``work``, write the result, leave.

    Reads ``argv = [payload file, output folder]`` (default ``sys.argv[1:]``) and the rank and world size from
    the environment (torchrun's variables, or :func:`worker_env`'s), joins the default process group with
    :func:`backend_for` ``(device)`` and a ``timeout``, calls ``work(payload, rank, world_size)``, saves its
    return value as ``<output folder>/result-<rank>.pt``, waits at a barrier and destroys the group. The
    ``timeout`` (seconds) of the group's collectives defaults to :func:`launch`'s, passed in the environment
    variable ``LESSONS_DIST_TIMEOUT``, or 60 s where that is unset (under ``torchrun``).
    """
    import torch.distributed as dist

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: python -m <module> <payload.pt> <output folder>")
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_VAR, "60"))
    timeout = check_positive(timeout, name="timeout")
    payload = torch.load(argv[0], weights_only=False)
    torch.set_num_threads(1)
    dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=timeout))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        result = work(payload, rank, world)
        torch.save(result, pathlib.Path(argv[1]) / f"result-{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()
