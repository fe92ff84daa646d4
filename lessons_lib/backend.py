"""Device, dtype, randomness and problem-scale defaults shared by every module.

The library never calls ``.cuda()``: tensors are created on :func:`default_device` (CUDA when
available, overridable with ``LESSONS_DEVICE``) and every computation follows the device of its
inputs. Randomness always comes from an explicit :class:`torch.Generator` built by
:func:`as_generator`; no function touches torch's global RNG.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Literal

import numpy as np
import torch

#: Default dtype for the small analytic toys (initialisations of 1e-6 need float64).
DTYPE = torch.float64

Scale = Literal["quick", "full"]


def default_device() -> torch.device:
    """Return the device the book computes on.

    ``LESSONS_DEVICE`` (``cpu``, ``cuda`` or ``cuda:<n>``) wins when set; otherwise CUDA is used
    when available, else the CPU. (``cpu:0`` is the CPU too; the device audit in ``tests/`` uses it.)

    Raises:
        ValueError: if ``LESSONS_DEVICE`` names a device torch does not know or one the book does not
            run on (``mps``, ``meta``, ...), or CUDA is requested but not available.
    """
    name = os.environ.get("LESSONS_DEVICE", "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"LESSONS_DEVICE={name!r} is not a torch device name: {exc}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"LESSONS_DEVICE={name!r}: the book runs on 'cpu' or 'cuda[:n]', not {device.type!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"LESSONS_DEVICE={name!r} asks for CUDA, but torch sees no CUDA device")
    return device


def as_generator(
    seed_or_generator: int | torch.Generator | None, device: torch.device | str | None = None
) -> torch.Generator:
    """Turn an integer seed (or an existing generator) into a :class:`torch.Generator`.

    Args:
        seed_or_generator: a non-negative ``int`` seed, or a ``torch.Generator`` which is returned
            unchanged (so that a caller can thread one generator through several calls).
        device: device of the generator when a seed is given; defaults to :func:`default_device`.
            Random tensors must be drawn on the generator's device.

    Returns:
        A generator seeded deterministically: the same seed always gives the same stream.

    Raises:
        ValueError: if ``seed_or_generator`` is None, a negative int, a bool or another type, or
            if a given generator lives on a different device than ``device``.
    """
    if isinstance(seed_or_generator, torch.Generator):
        if device is not None and torch.device(device).type != seed_or_generator.device.type:
            raise ValueError(
                f"generator: lives on {seed_or_generator.device}, but device={device!s} was requested"
            )
        return seed_or_generator
    if isinstance(seed_or_generator, bool) or not isinstance(seed_or_generator, int):
        raise ValueError(
            "seed_or_generator: expected an int seed or a torch.Generator, got "
            f"{type(seed_or_generator).__name__}; pass an explicit seed, never rely on global RNG"
        )
    if seed_or_generator < 0:
        raise ValueError(f"seed_or_generator: a seed must be >= 0, got {seed_or_generator}")
    try:
        device = torch.device(device) if device is not None else default_device()
        gen = torch.Generator(device=device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: cannot make a generator on {device!r} ({exc})") from None
    gen.manual_seed(seed_or_generator)
    return gen


def scale() -> Scale:
    """Return the problem scale: ``"quick"`` (default) or ``"full"`` when ``LESSONS_SCALE=full``.

    Quick runs every chapter in under 45 s on two CPU cores; full reproduces the papers' settings
    more closely and is meant for a GPU.

    Raises:
        ValueError: if ``LESSONS_SCALE`` is set to anything other than ``quick`` or ``full``.
    """
    value = os.environ.get("LESSONS_SCALE", "quick").strip().lower() or "quick"
    if value not in ("quick", "full"):
        raise ValueError(f"LESSONS_SCALE={value!r}: expected 'quick' or 'full'")
    return value  # type: ignore[return-value]


def pick(quick, full):
    """Return ``quick`` or ``full`` according to :func:`scale` (a chapter's one-line size switch)."""
    return full if scale() == "full" else quick


def as_tensor(x, *, name: str, dtype: torch.dtype | None = DTYPE, device=None) -> torch.Tensor:
    """Convert ``x`` to a real tensor, keeping the device of a tensor input, and reject NaN/inf.

    Strings, complex values and non-numeric objects are refused (a complex tensor would otherwise
    lose its imaginary part silently in the cast).

    Raises:
        ValueError: naming ``name`` if ``x`` cannot be converted, is complex, or holds NaN/inf.
    """
    if isinstance(x, (str, bytes, bool, np.bool_)) or x is None:
        raise ValueError(f"{name}: cannot be converted to a tensor (expected numbers, got {type(x).__name__})")
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{name}: expected real values, got a complex tensor")
        t = x.to(dtype=dtype) if dtype is not None else x
        if device is not None:
            t = t.to(device)
    else:
        try:
            is_complex = np.iscomplexobj(x)
        except (TypeError, ValueError):
            is_complex = False  # ragged or odd input: torch's conversion below says what is wrong
        if is_complex:
            raise ValueError(f"{name}: expected real values, got complex ones")
        try:
            t = torch.as_tensor(x, dtype=dtype, device=device if device is not None else default_device())
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{name}: cannot be converted to a tensor ({exc})") from None
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t


def as_tensors(*, dtype: torch.dtype | None = DTYPE, **named) -> tuple[torch.Tensor, ...]:
    """:func:`as_tensor` on each keyword argument, in order: ``u, v = as_tensors(u=u, v=v)``.

    Every result has ``dtype`` (float64 by default, so float32 or int64 inputs mixed with float64 ones are
    promoted) and the device of the first tensor among the inputs (else :func:`default_device`).

    Raises:
        ValueError: naming the argument that cannot be converted, is complex, or holds NaN/inf.
    """
    device = next((x.device for x in named.values() if isinstance(x, torch.Tensor)), None)
    return tuple(as_tensor(x, name=name, dtype=dtype, device=device) for name, x in named.items())


def check_float_tensor(x, *, name: str) -> torch.Tensor:
    """Return ``x`` if it is a real floating-point tensor; else raise a ValueError naming ``name``.

    No NaN check: for losses and fields evaluated under torch.func or every step of a loop, where a
    data-dependent check cannot run (or would turn divergence into an exception). Elsewhere use
    :func:`as_tensor`.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = f"a tensor of dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a real floating-point tensor, got {got}")
    return x


def check_real(value, *, name: str) -> float:
    """Return ``value`` as a finite Python float, or raise a ValueError naming ``name``.

    Ints, floats, NumPy scalars and 0-d real tensors are numbers; bools, strings and complex values
    are not (``lr=True`` or ``lr="0.5"`` is a mistake, not a learning rate).
    """
    if isinstance(value, (bool, str, bytes, complex)) or value is None:
        raise ValueError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.ndim > 0 or value.dtype == torch.bool or value.is_complex():
            raise ValueError(f"{name}: expected a real number, got a tensor of shape {tuple(value.shape)} "
                             f"and dtype {value.dtype}")
    elif not isinstance(value, numbers.Real) or isinstance(value, np.bool_):
        raise ValueError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    return v


def check_positive(value: float, *, name: str, allow_zero: bool = False) -> float:
    """Return ``float(value)`` or raise a ValueError naming ``name`` if it is not a (strictly) positive
    finite real number (see :func:`check_real` for what counts as a number)."""
    v = check_real(value, name=name)
    if v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be {bound}, got {v}")
    return v


def check_count(value: int, *, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer ``>= minimum``; else raise a ValueError naming ``name``.

    Python and NumPy integers count; bools, floats (even ``3.0``) and strings do not.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def check_flag(value, *, name: str) -> bool:
    """Return ``value`` as a bool if it is one (Python or NumPy); else raise a ValueError naming ``name``.

    ``1``, ``"yes"`` or ``None`` are not flags: a switch is ``True`` or ``False``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_choice(value, choices, *, name: str):
    """Return ``value`` if it is one of ``choices``; else raise a ValueError naming ``name`` and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_callable(value, *, name: str):
    """Return ``value`` if it is callable; else raise a ValueError naming ``name``."""
    if not callable(value):
        raise ValueError(f"{name}: expected a callable, got {type(value).__name__}")
    return value


def static_build() -> bool:
    """True while the notebooks are executed for the static website (``LESSONS_STATIC=1``).

    ``make book`` and ``make test`` set it. Explorers then precompute their frames, and progress
    bars stay silent; in a live kernel (the default) explorers show ipywidgets instead. ``on``/``off``
    and ``0``/``false``/``no`` are understood too; any other value is refused (ValueError), so a typo
    never silently builds live explorers.
    """
    value = os.environ.get("LESSONS_STATIC", "").strip().lower()
    if value not in ("", "0", "false", "no", "off", "1", "true", "yes", "on"):
        raise ValueError(f"LESSONS_STATIC={value!r}: expected 1/true/yes/on or 0/false/no/off (or unset)")
    return value in ("1", "true", "yes", "on")


def progress(iterable, **kwargs):
    """Wrap ``iterable`` in a ``tqdm.auto`` progress bar in a live kernel; silent on the site."""
    from tqdm.auto import tqdm

    disable = kwargs.pop("disable", False)  # popped first: the caller's flag must not be passed twice
    return tqdm(iterable, disable=static_build() or disable, **kwargs)


_HOST = torch.device("cpu")


def to_host(record) -> None:
    """Move the tensors of a result record (a dataclass) to the CPU, in place; frozen ones too.

    Runners compute on their inputs' device or :func:`default_device`, but the records they return
    are read by notebooks: plotted with matplotlib, turned into NumPy arrays, compared with tensors
    the reader made on the CPU. Keeping records on the host makes the same notebook run unchanged
    with ``LESSONS_DEVICE=cuda``. Tensors inside lists, tuples and dicts are moved too.
    """

    def host(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu() if value.device != _HOST else value
        if isinstance(value, (list, tuple)):
            return type(value)(host(v) for v in value)
        if isinstance(value, dict):
            return {k: host(v) for k, v in value.items()}
        return value

    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        moved = host(value)
        if moved is not value:
            object.__setattr__(record, f.name, moved)


@dataclasses.dataclass(frozen=True)
class Record:
    """Base of every result record the library returns: a frozen dataclass that lives on the host.

    Its ``__post_init__`` moves every tensor field to the CPU with :func:`to_host`, so a subclass
    needs no code of its own for it. A subclass that defines ``__post_init__`` calls
    ``super().__post_init__()``.
    """

    def __post_init__(self):
        to_host(self)
