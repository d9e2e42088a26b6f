"""The engine's rule functions, as the migration calls them: one source, two ways to run it.

The engine runs these compiled inside its event loop. The migration calls them once per
operator carve or agent decision from Python, where Numba's dispatcher and the arrays it
needs cost more than the rule itself (measured: ``first_open`` 15,000 calls in a 5,000-node
plan). So it runs the Python function each kernel was compiled from (``py_func``): the same
source, not a copy. With the JIT off the kernel is that function already.
"""

from __future__ import annotations

from ipam_core.kernels.carve import first_open_set as _first_open_set
from ipam_core.modes.multi_pool import cidrs_to_carve as _cidrs_to_carve
from ipam_core.modes.multi_pool import gives_back_unused as _gives_back_unused
from ipam_core.modes.multi_pool import still_pending as _still_pending


def source_of(kernel):
    """The Python function a ``@kjit`` kernel was compiled from.

    Parameters
    ----------
    kernel : numba dispatcher or function
        A compiled kernel (or a plain function when the JIT is off).

    Returns
    -------
    callable
    """
    return getattr(kernel, "py_func", kernel)


first_open_set = source_of(_first_open_set)
gives_back_unused = source_of(_gives_back_unused)
cidrs_to_carve = source_of(_cidrs_to_carve)
still_pending = source_of(_still_pending)

__all__ = ["cidrs_to_carve", "first_open_set", "gives_back_unused", "source_of", "still_pending"]
