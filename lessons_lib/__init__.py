"""lessons_lib: reference implementations behind the book *Optimization Dynamics*.

Topic modules hold the maths (``quadratic``, ``descent`` ...); ``backend`` and ``curvature`` are
the shared core; ``plotting``, ``explore`` and ``check`` are presentation and import no topic
module's plotting. Import submodules explicitly, e.g. ``from lessons_lib import curvature``.
"""

__version__ = "0.1.0"

from .backend import as_generator, default_device, scale  # noqa: E402,F401
