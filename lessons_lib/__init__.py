"""lessons_lib: reference implementations behind the book *Optimization Dynamics*.

The modules form layers, and imports only go down (``tests/test_structure.py`` enforces it):

- the core, which every chapter may use: ``backend`` (device, generators, scale, the ``Record`` base),
  ``run`` (the one training loop), ``descent``, ``quadratic``, ``curvature``, ``landscapes``,
  ``schedules``, ``models``, ``measure`` and ``distributed`` (processes under torch.distributed); core
  modules import only each other;
- topic modules, one per chapter (``stability``, ``drift``, ``wsd``, ``saddles``, ``curl``, ``cbo``,
  ``edge``, ...), which import only the core, never each other;
- presentation: ``plotting`` and ``explore``, the only modules that import matplotlib or ipywidgets;
  they import only ``backend``;
- ``check``: the exercise self-checks (``check.core`` and one module per chapter), which may import
  topic modules; nothing in the library imports it.

Import submodules explicitly, e.g. ``from lessons_lib import curvature``.
"""

__version__ = "0.1.0"

from .backend import as_generator, default_device, scale  # noqa: E402,F401
