"""Measuring a run, not making one: first crossings, plateaus, log-log slopes, steps to a tolerance.

These helpers read histories returned by the trainers (tensors indexed by recorded steps) and
never train anything themselves.
"""

from __future__ import annotations

# --- first crossings and steps to a tolerance ------------------------------------------------------

# --- plateaus --------------------------------------------------------------------------------------

# --- log-log slopes --------------------------------------------------------------------------------
