"""The engine's name for what a mode hands it: :mod:`ipam_core.modes.layout` (defined there, below the engine)."""

from ipam_core.modes.layout import Layout, SetSpec, family_index, pod_range  # noqa: F401
