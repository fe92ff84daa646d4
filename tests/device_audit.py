"""Run a notebook on the CPU as if lessons_lib's default device were a GPU: a device audit.

    python tests/device_audit.py book/<chapter>.ipynb     (exit status 1 on any finding)

CI has no GPU, yet every chapter must run unchanged with ``LESSONS_DEVICE=cuda``. The audit sets
``LESSONS_DEVICE=cpu:0``, which torch treats as the CPU but which lets us tell tensors apart: a torch
function mode labels tensors made on that default device "device", tensors made on the plain host
"host" (factories without a device, ``.cpu()``, NumPy), and propagates the labels through every torch
call (results of torch.func internals stay unlabelled and are never flagged). It then raises where
CUDA would: NumPy conversion of a device tensor (matplotlib, ``.numpy()``), or an operation that mixes
device and host tensors that are not scalars. Explorers are exercised too, through
every static frame.
"""
import os
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]

SENT = torch.device("cpu", 0)
FACTORIES = {"tensor", "as_tensor", "zeros", "ones", "arange", "linspace", "logspace", "randn", "rand", "empty",
             "eye", "full", "randint", "randperm", "from_numpy", "zeros_like", "ones_like", "empty_like", "full_like",
             "randn_like", "rand_like", "normal"}
SKIP = {"__get__", "__set__", "__setitem__", "__getitem__", "item", "__float__", "__bool__", "__int__", "tolist",
        "__format__", "__repr__", "__len__", "size", "dim", "__index__", "__iter__", "numel", "__hash__",
        "__deepcopy__", "__reduce_ex__", "__array_wrap__", "copy_", "__setstate__"}

def state(t):
    return getattr(t, "_dev", None) if isinstance(t, torch.Tensor) else None

def mark(out, value):
    if isinstance(out, torch.Tensor):
        try: out._dev = value
        except Exception: pass
    elif isinstance(out, (tuple, list)):
        for o in out: mark(o, value)
    return out

def flat(args, kwargs):
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (list, tuple)): yield from a
        else: yield a

def is_sent(d):
    return d is not None and (d == SENT or str(d) == "cpu:0")

class Mode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name == "__get__" and getattr(func, "__self__", None) is torch.Tensor.device:
            return SENT if state(args[0]) is True else func(*args, **kwargs)
        tens = [a for a in flat(args, kwargs) if isinstance(a, torch.Tensor)]
        states = [state(a) for a in tens]
        if name in ("numpy", "__array__") and True in states:
            raise TypeError("AUDIT: can't convert a default-device tensor to numpy")
        if name == "cpu":
            out = func(*args, **kwargs)
            out = out.clone() if out is args[0] else out
            return mark(out, False)
        if name == "to":
            out = func(*args, **kwargs)
            if out is args[0]: out = out.clone()
            dest = state(args[0])
            for a in list(args[1:]) + list(kwargs.values()):
                if isinstance(a, torch.Tensor): dest = state(a)
                elif isinstance(a, (torch.device, str)) and not isinstance(a, bool):
                    if is_sent(a): dest = True
                    elif str(a).startswith("cpu"): dest = False
            return mark(out, dest)
        if name not in SKIP:
            dev = [a for a, s in zip(tens, states) if s is True and a.dim() > 0]
            host = [a for a, s in zip(tens, states) if s is False and a.dim() > 0]
            if dev and host:
                raise RuntimeError(f"AUDIT: {name} mixes default-device and host tensors")
        out = func(*args, **kwargs)
        if name in FACTORIES and not any(s is True for s in states):
            d = kwargs.get("device")
            return mark(out, True if is_sent(d) else (False if d is None or str(d).startswith("cpu") else None))
        if True in states: return mark(out, True)
        if states and all(s is False for s in states): return mark(out, False)
        return out

def run(path: Path) -> dict:
    """Execute the notebook in-process (benchmarks/runner.py, the GPU check's executor) under the audit.

    Returns the runner's record: ``ok`` is False at the first finding, with the error and traceback.
    Explorers are displayed as on the site, so every static frame's ``draw`` is audited too.
    """
    os.environ["LESSONS_STATIC"] = "1"
    os.environ["LESSONS_DEVICE"] = "cpu:0"
    if os.environ.get("AUDIT_NO_HOST"):  # to show what the audit catches without backend.to_host
        import lessons_lib.backend as backend
        backend.to_host = lambda record: None
    sys.path.insert(0, str(ROOT))
    from benchmarks.runner import run_inprocess

    with Mode():
        return run_inprocess(Path(path).resolve())


if __name__ == "__main__":
    result = run(Path(sys.argv[1]))
    if not result["ok"]:
        print(result["error"])
        print(result["traceback"])
    print(f"device audit of {sys.argv[1]}: {'clean' if result['ok'] else 'a finding'} in {result['seconds']:.1f} s")
    sys.exit(0 if result["ok"] else 1)
