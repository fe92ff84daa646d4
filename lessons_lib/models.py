"""Small models shared by several chapters, each with its loss, gradient and trainer.

Every trainer here is a step function handed to :func:`lessons_lib.run.run`, so divergence has the
book's one meaning (see :mod:`lessons_lib.run`). Data factories without tensor inputs create their
tensors on :func:`lessons_lib.backend.default_device`; everything else follows its inputs' device.
Result records come back on the host (:class:`lessons_lib.backend.Record`).
"""

from __future__ import annotations

# --- diagonal linear network ---------------------------------------------------------------------

# --- two-layer linear network --------------------------------------------------------------------

# --- one-dimensional ReLU network ----------------------------------------------------------------

# --- tiny MLP (flat parameter vector) ------------------------------------------------------------

# --- student-teacher network ---------------------------------------------------------------------
