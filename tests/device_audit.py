"""Run the chapters on the CPU as if lessons_lib's default device were a GPU: a device audit.

CI has no GPU, yet every chapter must run unchanged with ``LESSONS_DEVICE=cuda``. The audit sets
``LESSONS_DEVICE=cpu:0``, which torch treats as the CPU but which lets us tell tensors apart: a torch
function mode labels tensors made on that default device "device", tensors made on the plain host
"host" (factories without a device, ``.cpu()``, NumPy), and propagates the labels through every torch
call (results of torch.func internals stay unlabelled and are never flagged). It then raises where
CUDA would: NumPy conversion of a device tensor (matplotlib, ``.numpy()``), or an operation that mixes
device and host tensors that are not scalars. With ``LESSONS_STATIC=1`` every static frame of every
explorer is drawn, so the explorers' ``draw`` functions are audited too.

The audit runs inside the one execution of each chapter that ``make test`` does (nbmake): the
Makefile starts the kernels with :func:`kernel_env`'s variables, and the IPython startup file
``tests/audit_kernel/profile_default/startup/00-device-audit.py`` calls :func:`activate` when
``LESSONS_DEVICE_AUDIT=1``. Changing the labels changes no number, so the executed notebooks (and the
site built from them) are those of a run without the audit.

One chapter on its own, in a kernel started the same way (exit status 1 on a finding):

    python tests/device_audit.py book/<chapter>.ipynb
    pytest tests/test_device_audit.py -k <chapter>          (marked slow: make unit skips it)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]
# the IPYTHONDIR whose startup file switches the audit on in a kernel (when LESSONS_DEVICE_AUDIT=1)
KERNEL_DIR = ROOT / "tests" / "audit_kernel"

SENT = torch.device("cpu", 0)
FACTORIES = {"tensor", "as_tensor", "zeros", "ones", "arange", "linspace", "logspace", "randn", "rand", "empty",
             "eye", "full", "randint", "randperm", "from_numpy", "zeros_like", "ones_like", "empty_like", "full_like",
             "randn_like", "rand_like", "normal"}
SKIP = {"__get__", "__set__", "__setitem__", "__getitem__", "item", "__float__", "__bool__", "__int__", "tolist",
        "__format__", "__repr__", "__len__", "size", "dim", "__index__", "__iter__", "numel", "__hash__",
        "__deepcopy__", "__reduce_ex__", "__array_wrap__", "copy_", "__setstate__"}


def state(t):
    """A tensor's label: True (made on the default device), False (on the host) or None (unknown)."""
    return getattr(t, "_dev", None) if isinstance(t, torch.Tensor) else None


def mark(out, value):
    if isinstance(out, torch.Tensor):
        try:
            out._dev = value
        except Exception:  # noqa: BLE001  (some tensor subclasses refuse attributes: they stay unlabelled)
            pass
    elif isinstance(out, (tuple, list)):
        for o in out:
            mark(o, value)
    return out


def flat(args, kwargs):
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def is_sent(d) -> bool:
    return d is not None and (d == SENT or str(d) == "cpu:0")


def _destination(args, kwargs):
    """The label of ``tensor.to(...)``'s result: that of a tensor argument, or of a device argument."""
    dest = state(args[0])
    for a in list(args[1:]) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            dest = state(a)
        elif isinstance(a, (torch.device, str)):
            if is_sent(a):
                dest = True
            elif str(a).startswith("cpu"):
                dest = False
    return dest


class Mode(TorchFunctionMode):
    """Labels tensors by origin and raises where CUDA would (see the module docstring).

    It runs on every torch call of a chapter, so it is written for speed: one pass over the arguments, and
    the dimension checks only when device and host tensors meet.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", None) or str(func)
        if name == "__get__" and getattr(func, "__self__", None) is torch.Tensor.device:
            return SENT if state(args[0]) is True else func(*args, **kwargs)
        tens = []
        for a in (*args, *kwargs.values()) if kwargs else args:
            if isinstance(a, torch.Tensor):
                tens.append(a)
            elif isinstance(a, (list, tuple)):
                tens.extend(b for b in a if isinstance(b, torch.Tensor))
        dev = host = False  # whether any argument is labelled device / host
        for a in tens:
            s = getattr(a, "_dev", None)
            if s is True:
                dev = True
            elif s is False:
                host = True
        if dev and name in ("numpy", "__array__"):
            raise TypeError("AUDIT: can't convert a default-device tensor to numpy")
        if name in ("cpu", "to"):
            out = func(*args, **kwargs)
            if out is args[0]:
                out = out.clone()
            return mark(out, False if name == "cpu" else _destination(args, kwargs))
        if dev and host and name not in SKIP:
            if (any(state(a) is True and a.dim() > 0 for a in tens)
                    and any(state(a) is False and a.dim() > 0 for a in tens)):
                raise RuntimeError(f"AUDIT: {name} mixes default-device and host tensors")
        out = func(*args, **kwargs)
        if not dev and name in FACTORIES:
            d = kwargs.get("device")
            return mark(out, True if is_sent(d) else (False if d is None or str(d).startswith("cpu") else None))
        if dev or (host and all(state(a) is False for a in tens)):
            mark(out, dev)
        return out


def activate() -> Mode:
    """Switch the audit on for the rest of this process (the kernel's startup file calls this).

    ``AUDIT_NO_HOST=1`` also disables ``backend.to_host``, to show what the audit catches without it.
    """
    if os.environ.get("LESSONS_DEVICE") != "cpu:0":
        raise RuntimeError("the device audit needs LESSONS_DEVICE=cpu:0 (kernel_env sets it)")
    if os.environ.get("AUDIT_NO_HOST"):
        import lessons_lib.backend as backend

        backend.to_host = lambda record: None
    mode = Mode()
    mode.__enter__()  # never exited: the kernel runs every cell under it
    return mode


def kernel_env(env: dict | None = None, *, audit: bool = True) -> dict:
    """``env`` (default: this process's) plus what a kernel needs to run a chapter as ``make test`` does."""
    env = dict(os.environ if env is None else env)
    env.update(LESSONS_STATIC="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), IPYTHONDIR=str(KERNEL_DIR))
    if audit:
        env.update(LESSONS_DEVICE_AUDIT="1", LESSONS_DEVICE="cpu:0")
    else:
        env.pop("LESSONS_DEVICE_AUDIT", None)
    return env


def run(path: Path, *, timeout: float = 600, audit: bool = True, env: dict | None = None) -> dict:
    """Execute a notebook in a fresh kernel started with :func:`kernel_env` (the audit on by default).

    Returns ``{"ok", "seconds", "error", "nb"}``: ``ok`` is False at the first failing cell, whose error
    (an ``AUDIT:`` message for a finding) is in ``error``; ``nb`` is the executed notebook.
    """
    import nbclient
    import nbformat

    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=int(timeout), kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute(env=kernel_env(env, audit=audit))
    except nbclient.exceptions.CellExecutionError as exc:
        return {"ok": False, "seconds": time.perf_counter() - t0, "error": f"{exc.ename}: {exc.evalue}", "nb": nb}
    return {"ok": True, "seconds": time.perf_counter() - t0, "error": None, "nb": nb}


if __name__ == "__main__":
    result = run(Path(sys.argv[1]))
    if not result["ok"]:
        print(result["error"])
    print(f"device audit of {sys.argv[1]}: {'clean' if result['ok'] else 'a finding'} in {result['seconds']:.1f} s")
    sys.exit(0 if result["ok"] else 1)
